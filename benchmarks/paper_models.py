"""Every model of the paper through the real trainer with the `paper` profile, on whatever device there is.

    python benchmarks/paper_models.py                           # all paper models, 3 epochs each
    python benchmarks/paper_models.py --models resnet50,vit_b_16 --epochs 2 --out results/gpu/paper_models.csv

Why: the paper's grid (10 models x 10 seeds x 100 epochs at 224 px) only runs on a GPU, so before anyone
spends GPU hours on it, this checks on the GPU at hand that each model trains (AMP, channels_last, the
loader's device-side normalisation, checkpoints) and evaluates. It also measures what a paper run will
cost there: training images/s (the last epoch, after cuDNN has chosen its kernels), peak GPU memory, and
the time of one paper run, extrapolated as 100 epochs of Raabin-WBC Train.
Models start from random weights (`--no-pretrained`): speed does not depend on the weights, and
hub weights may be out of reach. Accuracy after a few epochs on a few hundred images is only checked to
be a real number, not reported as a result. It is a benchmark, not a test.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from wbcbench import models
from wbcbench.core.atomic import write_csv
from wbcbench.core.errors import WbcError
from wbcbench.core.names import eval_dir_name
from wbcbench.core.profiles import PROFILES
from wbcbench.data import datasets
from wbcbench.engine import train
from wbcbench.sweep.grids import PAPER_MODELS

#: the paper grid's models
MODELS = tuple(PAPER_MODELS)


def measure(model: str, epochs: int, train_set: str, tests: list[str], device, data_root, out: Path) -> dict:
    row = {"model": model, "device": str(device), "epochs": epochs}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    run = train.run(model=model, profile="paper", seed=0, train_set=train_set, test_sets=tests, out=out,
                    device=str(device), data_root=data_root, quiet=True, epochs=epochs, warmup_epochs=1,
                    pretrained=False)
    row["wall_s"] = time.perf_counter() - t0
    log = pd.read_csv(run / "log.csv")
    row["train_images"] = int(round(log["images_per_s"].iloc[-1] * log["seconds"].iloc[-1]))
    row["images_per_s"] = float(log["images_per_s"].iloc[-1])
    row["first_epoch_s"], row["last_epoch_s"] = float(log["seconds"].iloc[0]), float(log["seconds"].iloc[-1])
    row["loss_first"], row["loss_last"] = float(log["train_loss"].iloc[0]), float(log["train_loss"].iloc[-1])
    if device.type == "cuda":
        row["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    for t in tests:
        m = json.loads((run / "eval" / eval_dir_name(t) / "metrics.json").read_text())
        assert 0.0 <= m["accuracy"] <= 1.0, (model, t, m["accuracy"])
        row[f"{t} n"], row[f"{t} accuracy"] = m["n"], m["accuracy"]
    raabin = datasets.DATASETS["raabin:train"].expected_total
    row["paper_run_minutes_est"] = PROFILES["paper"]["epochs"] * raabin / row["images_per_s"] / 60
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train", default="pbc:train")
    ap.add_argument("--test", default="pbc:test,bccd")
    ap.add_argument("--device", default=None, help="auto (default), cpu, cuda, ...")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", default=None, help="CSV to write (default: print only)")
    a = ap.parse_args(argv)
    dev = train.resolve_device(a.device)
    names = [m for m in a.models.split(",") if m]
    for m in names:
        models.get_model_config(m)  # unknown names fail before anything runs
    tests = [t for t in a.test.split(",") if t]
    info = {"torch": torch.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"}
    print(json.dumps(info), flush=True)
    rows, failed = [], []
    with tempfile.TemporaryDirectory(prefix="wbcbench-paper-models-") as tmp:
        for m in names:
            try:
                r = measure(m, a.epochs, a.train, tests, dev, a.data_root, Path(tmp))
            except Exception as e:  # noqa: BLE001 - one broken model must not hide the others
                failed.append(m)
                r = {"model": m, "device": str(dev), "error": f"{type(e).__name__}: {e}"[:500]}
            rows.append(info | r)
            print(json.dumps(rows[-1], default=float), flush=True)
    df = pd.DataFrame(rows)
    if a.out:
        write_csv(a.out, df)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        cols = [c for c in ("model", "images_per_s", "peak_gpu_mib", "last_epoch_s", "paper_run_minutes_est",
                            "error") if c in df.columns]
        print(df[cols].round(1).to_string(index=False))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except WbcError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
