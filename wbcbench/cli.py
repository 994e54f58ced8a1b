"""`wbcbench` command line. Every user error ends with one line naming the culprit and exit status 2,
before anything is written. The profile flags of `train` (--epochs, --weight-decay, --[no-]hflip, ...)
are generated from profiles.SETTINGS, the same schema the sweep, the notebook and the rerun commands use."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wbcbench import models
from wbcbench.core import names
from wbcbench.core.atomic import write_csv
from wbcbench.core.errors import WbcError
from wbcbench.core.paths import data_root
from wbcbench.core.profiles import PROFILES, SETTINGS, flag, parse_flag_value
from wbcbench.data import datasets, verify
from wbcbench.data.download import DOWNLOADS, main_download
from wbcbench.data.raabin import main_import_raabin
from wbcbench.engine import evaluate, train
from wbcbench.engine.predict import main_predict, predict_methods
from wbcbench.engine.scoring import main_score
from wbcbench.runs import collect, rundir
from wbcbench.sweep import runner
from wbcbench.sweep.grids import BUNDLED_TESTS


def _cmd_data(a):
    """list / verify read an existing data root (a missing one is one clear error, not a table of "not
    available"); download / import-raabin create it, so they must not ask for it first."""
    if a.action == "download":
        return main_download(a.names, a.data_root)
    if a.action == "import-raabin":
        return main_import_raabin(a.paths, a.data_root)
    data_root(a.data_root)
    if a.action == "list":
        print(datasets.list_datasets(a.data_root).to_string(index=False))
        return 0
    reports = verify.verify(None, a.data_root) if not a.names else [verify.verify(n, a.data_root) for n in a.names]
    bad = []
    for r in reports:
        print(verify.describe(r))
        if r.get("ok") is False or (a.names and not r.get("available", True)):
            print(json.dumps(r, indent=2, default=str))
            bad.append(r["name"])
    if bad:
        raise WbcError(f"data verification failed for: {', '.join(bad)} (details above)")
    return 0


def _cmd_predict(a):
    return main_predict(a.checkpoint, a.images, a.out, adapt=a.adapt, device=a.device, quiet=a.quiet,
                        data_root=a.data_root)


def _cmd_score(a):
    return main_score(a.predictions, name=a.name, data_root=a.data_root, partial=a.partial, out=a.out)


def _cmd_models(a):
    print(models.describe_models().to_string(index=False))
    return 0


def train_kwargs(a) -> dict:
    """train.run's keyword arguments for parsed `wbcbench train` arguments: only the profile flags given
    (one left out keeps the profile's value; `--train-subset-per-class None` is a value of its own)."""
    return dict(model=a.model, profile=a.profile, seed=a.seed, train_set=a.train,
                test_sets=datasets.parse_test_sets(a.test), out=a.out, device=a.device, resume=a.resume,
                data_root=a.data_root, quiet=a.quiet, adapt=names.parse_adapt(a.adapt), weights=a.weights,
                **{name: getattr(a, name) for name in SETTINGS if hasattr(a, name)})


def _cmd_train(a):
    print(train.run(**train_kwargs(a)))
    return 0


def _cmd_eval(a):
    """Into a finished run directory (no --out): adds the evaluations it lacks, without retraining.
    With --out: evaluates the checkpoint and writes under OUT/eval/. Prints the metrics either way."""
    tests, methods = datasets.parse_test_sets(a.test), names.parse_adapt(a.adapt)
    target = Path(a.checkpoint)
    if a.out is None and rundir.is_done(target):
        train.add_evaluations(target, tests, methods, a.device, a.data_root, progress=not a.quiet)
        wanted = {(t, m) for t in tests for m in (names.STANDARD, *methods)}
        results = {names.eval_dir_name(t, m): json.loads((folder / "metrics.json").read_text())
                   for (t, m), (_, folder) in rundir.evaluations(target).items() if (t, m) in wanted}
    else:
        if a.out:  # an unwritable --out fails now, not after the evaluation
            try:
                Path(a.out).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise WbcError(f"cannot write to --out {a.out}: {e.strerror or e}") from None
        net, cfg, dev = train.load_model(a.checkpoint, a.device)
        results = evaluate.evaluate_all(net, dict(cfg, test=tests, adapt=methods), a.out, dev, a.data_root, a.quiet)
    for name, m in results.items():
        print(f"{name}: accuracy {m['accuracy']:.4f}, balanced accuracy {m['balanced_accuracy']:.4f}, n={m['n']}")
    return 0


def _cmd_collect(a):
    df, skipped = collect.collect(a.dir)
    if a.csv:
        write_csv(a.csv, df)
    cols = [c for c in ("model", "profile", "seed", "test_set", "eval_mode", "accuracy", "balanced_accuracy")
            if c in df.columns]
    print(df[cols].to_string(index=False) if len(df) else "no finished runs")
    print(f"{df['run_dir'].nunique() if len(df) else 0} finished runs; {len(skipped)} skipped", file=sys.stderr)
    for run, why in skipped:
        print(f"  skipped {run}: {why}", file=sys.stderr)
    return 0


def _flag_type(name: str):
    """argparse's `type` for a numeric setting (profiles.parse_flag_value: `None` where the setting allows
    it); named after the setting's type, so a bad value reads "invalid int value: 'x'"."""
    def parse(text):
        return parse_flag_value(name, text)
    parse.__name__ = SETTINGS[name].type.__name__
    return parse


def add_setting_flags(parser) -> None:
    """One flag per profile setting (--epochs N, --weight-decay X, --hflip/--no-hflip, ...). A flag not
    given is absent from the parsed arguments, meaning "the profile's value" (so None can be a value of
    its own). Ranges are checked by profiles.get_profile, before any write."""
    for name, s in SETTINGS.items():
        if s.type is bool:
            parser.add_argument(flag(name), action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=f"{s.help} (default: the profile's)")
        elif s.type is str:
            parser.add_argument(flag(name), choices=s.choices, default=argparse.SUPPRESS,
                                help=f"{s.help} (default: the profile's, else {s.default})")
        else:
            parser.add_argument(flag(name), type=_flag_type(name), default=argparse.SUPPRESS,
                                metavar="N" if s.type is int else "X",
                                help=f"{s.help}; {s.allowed()} (default: the profile's)")


def _add_adapt_flags(parser) -> None:
    parser.add_argument("--adapt", default=None, metavar="METHODS",
                        help="also evaluate with these test-time methods, comma-separated: "
                             f"{', '.join(names.ADAPT_METHODS)}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wbcbench", description=__doc__)
    p.add_argument("--data-root",
                   help="folder with pbc/, lisc/, ... (default: $WBCBENCH_DATA, ../shared/wbc-data, ./data)")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="list, verify, download or import the datasets")
    actions = d.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every registered dataset and whether it is here")
    actions.add_parser("verify", help="check counts and md5s of the datasets here").add_argument(
        "names", nargs="*", help="datasets to verify (default: all available)")
    actions.add_parser("download", help="fetch datasets from their public sources, md5-checked").add_argument(
        "names", nargs="+", metavar="NAME", help=f"{', '.join(DOWNLOADS)}, or all (also comma-separated)")
    actions.add_parser("import-raabin", help="put your Raabin-WBC download in place, counts checked").add_argument(
        "paths", nargs="+", metavar="PATH",
        help="Train.zip, TestA.zip, TestB.zip, or folders holding Train/TestA/TestB")
    for action in actions.choices.values():  # `data download all --data-root DIR` as well as before `data`
        action.add_argument("--data-root", default=argparse.SUPPRESS, help="folder with pbc/, lisc/, ...")
        action.set_defaults(func=_cmd_data)

    sub.add_parser("models", help="list the registered models").set_defaults(func=_cmd_models)

    t = sub.add_parser("train", help="train one run and test it on every test set")
    t.add_argument("--model", required=True)
    t.add_argument("--profile", default="cpu", help=f"training profile: {', '.join(PROFILES)} (default: cpu)")
    t.add_argument("--seed", type=int, default=0, help="an integer >= 0")
    t.add_argument("--train", default="pbc:train", help="training set: a dataset name or ImageFolder path")
    t.add_argument("--test", default=BUNDLED_TESTS, help="comma-separated dataset names or ImageFolder paths")
    t.add_argument("--out", default="runs")
    t.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    _add_adapt_flags(t)
    t.add_argument("--quiet", action="store_true")
    t.add_argument("--weights", default=None,
                   help="a local ImageNet state-dict file (offline stand-in for --pretrained)")
    add_setting_flags(t)
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="evaluate a trained model (its run directory, or a model.pt)")
    e.add_argument("--checkpoint", required=True,
                   help="a finished run directory (the evaluations it lacks are added to it) or a model.pt")
    e.add_argument("--test", required=True, help="dataset names or ImageFolder paths, comma-separated")
    e.add_argument("--out", default=None, help="write metrics and predictions under OUT/eval/ instead")
    e.add_argument("--device", default=None)
    _add_adapt_flags(e)
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_cmd_eval)

    c = sub.add_parser("collect", help="one table of all finished runs under DIR")
    c.add_argument("dir")
    c.add_argument("--csv", help="also write the table to this CSV file")
    c.set_defaults(func=_cmd_collect)

    r = sub.add_parser("predict", help="predict the class of every image in a folder tree (no labels needed)")
    r.add_argument("--checkpoint", required=True, help="a finished run directory or its model.pt")
    r.add_argument("--images", required=True, help="a folder of images, searched recursively")
    r.add_argument("--out", required=True, help="the CSV to write: path, prediction, p_<class> per image")
    r.add_argument("--adapt", default=None, metavar="METHOD",
                   help="adapt the model to these images first (a new lab's statistics): "
                        f"{', '.join(predict_methods())}")
    r.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=_cmd_predict)

    sc = sub.add_parser("score", help="score predictions made anywhere (a CSV: domain,path,prediction[,p_<class>])")
    sc.add_argument("predictions", metavar="PREDICTIONS.csv",
                    help="one row per test image: domain (pbc:test, lisc, ... or an ImageFolder path), path "
                         "(relative to the domain's folder), prediction (a class name); optional p_<class> columns")
    sc.add_argument("--name", default="predictions", help="the name the table gives these predictions")
    sc.add_argument("--partial", action="store_true",
                    help="score domains with images missing too (the table marks them complete=False)")
    sc.add_argument("--out", default=None, help="also write the whole table to this CSV file")
    sc.add_argument("--data-root", default=argparse.SUPPRESS, help="folder with pbc/, lisc/, ...")
    sc.set_defaults(func=_cmd_score)

    s = sub.add_parser("sweep", help="run a grid of runs through the training notebook (papermill)")
    runner.add_arguments(s)
    s.set_defaults(func=runner.main)
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
