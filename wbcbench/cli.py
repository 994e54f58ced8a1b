"""`wbcbench` command line. Every user error ends with one line naming the culprit and exit status 2."""
from __future__ import annotations

import argparse
import json
import sys

from .errors import WbcError


def _cmd_data(a):
    from . import datasets
    from .paths import data_root
    data_root(a.data_root)  # a missing root is one clear error, not a table of "not available"
    if a.action == "list":
        print(datasets.list_datasets(a.data_root).to_string(index=False))
        return 0
    reports = datasets.verify(None, a.data_root) if not a.names else [datasets.verify(n, a.data_root) for n in a.names]
    for r in reports:
        state = "not available" if not r.get("available", True) else ("ok" if r["ok"] else "FAILED")
        print(f"{r['name']}: {state}")
        if r.get("ok") is False or (a.names and not r.get("available", True)):
            print(json.dumps(r, indent=2, default=str))
    bad = [r["name"] for r in reports if r.get("ok") is False or (a.names and not r.get("available", True))]
    if bad:
        raise WbcError(f"data verification failed for: {', '.join(bad)} (details above)")
    return 0


def _cmd_models(a):
    from . import models
    print(models.describe_models().to_string(index=False))
    return 0


def _overrides(a) -> dict:
    return {k: getattr(a, k) for k in ("epochs", "batch_size", "lr", "stored_size", "crop_size", "mixup_alpha",
                                       "train_subset_per_class", "pretrained")}


def _cmd_train(a):
    from .train import train
    run = train(model=a.model, profile=a.profile, seed=a.seed, train=a.train, test=a.test, out=a.out,
                device=a.device, resume=a.resume, data_root=a.data_root, quiet=a.quiet, adabn=a.adabn, weights=a.weights,
                **_overrides(a))
    print(run)
    return 0


def _cmd_eval(a):
    from .train import evaluate_all, load_model
    if a.out:  # an unwritable --out fails now, not after the evaluation
        from pathlib import Path
        try:
            Path(a.out).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WbcError(f"cannot write to --out {a.out}: {e.strerror or e}") from None
    net, cfg, dev = load_model(a.checkpoint, a.device)
    cfg = dict(cfg, test=[t for t in a.test.split(",") if t], adabn=a.adabn)
    res = evaluate_all(net, cfg, a.out, dev, a.data_root, a.quiet)
    for name, m in res.items():
        print(f"{name}: accuracy {m['accuracy']:.4f}, balanced accuracy {m['balanced_accuracy']:.4f}, "
              f"n={m['n']}")
    return 0


def _cmd_collect(a):
    from .collect import collect
    df, skipped = collect(a.dir)
    if a.csv:
        from .atomic import write_csv
        write_csv(a.csv, df)
    cols = [c for c in ("model", "profile", "seed", "test_set", "eval_mode", "accuracy", "balanced_accuracy")
            if c in df.columns]
    print(df[cols].to_string(index=False) if len(df) else "no finished runs")
    print(f"{df['run_dir'].nunique() if len(df) else 0} finished runs; {len(skipped)} skipped", file=sys.stderr)
    for run, why in skipped:
        print(f"  skipped {run}: {why}", file=sys.stderr)
    return 0


def _cmd_sweep(a):
    from .sweep import main as sweep_main
    return sweep_main(a)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wbcbench", description=__doc__)
    p.add_argument("--data-root", help="folder with pbc/, lisc/, ... (default: $WBCBENCH_DATA, ../shared/wbc-data, ./data)")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="list or verify the datasets")
    d.add_argument("action", choices=["list", "verify"])
    d.add_argument("names", nargs="*", help="datasets to verify (default: all available)")
    d.set_defaults(func=_cmd_data)

    sub.add_parser("models", help="list the registered models").set_defaults(func=_cmd_models)

    t = sub.add_parser("train", help="train one run and test it on every test set")
    t.add_argument("--model", required=True)
    t.add_argument("--profile", default="cpu")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--train", default="pbc:train")
    t.add_argument("--test", default="pbc:test,lisc,bccd,jtsc,cellavision")
    t.add_argument("--out", default="runs")
    t.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    t.add_argument("--adabn", action="store_true", help="also evaluate with BN statistics adapted to each test set")
    t.add_argument("--quiet", action="store_true")
    for name, typ in (("epochs", int), ("batch-size", int), ("lr", float), ("stored-size", int), ("crop-size", int),
                      ("mixup-alpha", float), ("train-subset-per-class", int)):
        t.add_argument(f"--{name}", type=typ, default=None, help="override the profile")
    t.add_argument("--weights", default=None, help="a local ImageNet state-dict file (offline stand-in for --pretrained)")
    t.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=None,
                   help="start from ImageNet weights (default: the profile's choice)")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="evaluate a trained model (model.pt or its run directory)")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--test", required=True, help="dataset names or ImageFolder paths, comma-separated")
    e.add_argument("--out", default=None, help="write metrics and predictions under OUT/eval/")
    e.add_argument("--device", default=None)
    e.add_argument("--adabn", action="store_true")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_cmd_eval)

    c = sub.add_parser("collect", help="one table of all finished runs under DIR")
    c.add_argument("dir")
    c.add_argument("--csv", help="also write the table to this CSV file")
    c.set_defaults(func=_cmd_collect)

    s = sub.add_parser("sweep", help="run a grid of runs through the training notebook (papermill)")
    from .sweep import add_arguments as _sweep_arguments
    _sweep_arguments(s)
    s.set_defaults(func=_cmd_sweep)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WbcError as e:
        print(f"wbcbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wbcbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
