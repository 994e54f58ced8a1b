"""Same seed on the same device gives identical results: checked on the device at hand, with what it costs.

    python benchmarks/determinism.py --models resnet50,vit_b_16 --out results/gpu/determinism.csv

The CPU side is covered by the test suite (bitwise-identical metrics and predictions, resume included).
This script covers CUDA, which CI does not have. For each model, `paper` profile (`--profile`), random weights, a few
epochs, every run in its own `wbcbench train` process:

  det A, det B  two runs with the same seed (WBCBENCH_DETERMINISTIC=1, the default): their predictions
                files must be byte-identical;
  killed        the same run SIGKILLed while writing its first checkpoint (tests/kill_at_rename.py),
                then resumed with --resume: byte-identical to det A as well;
  fast A, B     two runs with WBCBENCH_DETERMINISTIC=0 (cuDNN autotuning, nondeterministic kernels): is
                there a difference, and how much faster are they?

Speed is the mean training images/s over epochs 2.. of each run, from its log.csv. The det and fast runs
are interleaved (det A, fast A, det B, fast B), so a change in machine load hits both alike. The cost of
determinism is reported as the ratio fast/det. It is a benchmark, not a test: exit status 1 means an
identity that should hold did not.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from wbcbench.core.atomic import write_csv
from wbcbench.engine.reproduce import compare_runs
from wbcbench.engine.train import DETERMINISTIC_ENV

CLI = [sys.executable, "-m", "wbcbench.cli"]
# the CLI that SIGKILLs itself instead of renaming a complete temp file of the named file into place
KILL_AT_RENAME = [sys.executable, str(Path(__file__).resolve().parents[1] / "tests" / "kill_at_rename.py")]


def run(out: Path, model: str, profile: str, epochs: int, tests: str, env: dict,
        resume=False, cli=CLI) -> subprocess.CompletedProcess:
    cmd = [*cli, "train", "--model", model, "--profile", profile, "--seed", "0", "--test", tests,
           "--epochs", str(epochs), "--no-pretrained", "--quiet", "--out", str(out)] + (["--resume"] if resume else [])
    return subprocess.run(cmd, capture_output=True, text=True, env=os.environ | env)


def only_run(out: Path) -> Path:
    (d,) = [p for p in out.iterdir() if p.is_dir()]
    return d


def ok(r: subprocess.CompletedProcess, what: str) -> None:
    if r.returncode != 0:
        raise RuntimeError(f"{what}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")


def identical(a: Path, b: Path) -> bool:
    """Byte-identical predictions on every evaluation of `a` (reproduce.compare_runs, as in the BN chapter)."""
    return bool(compare_runs(a, b)["identical predictions"].all())


def speed(run_dir: Path) -> float:
    log = pd.read_csv(run_dir / "log.csv")
    return float(log["images_per_s"].iloc[1:].mean() if len(log) > 1 else log["images_per_s"].iloc[0])


def check(model: str, profile: str, epochs: int, tests: str, tmp: Path) -> dict:
    row = {"model": model, "profile": profile, "epochs": epochs}
    dirs = {}
    for name, flag in (("det A", "1"), ("fast A", "0"), ("det B", "1"), ("fast B", "0")):
        out = tmp / model / name.replace(" ", "_")
        ok(run(out, model, profile, epochs, tests, {DETERMINISTIC_ENV: flag}), name)
        dirs[name] = only_run(out)
    out = tmp / model / "killed"
    r = run(out, model, profile, epochs, tests, {}, cli=[*KILL_AT_RENAME, "checkpoint.pt"])
    row["killed at first checkpoint"] = r.returncode == -signal.SIGKILL
    ok(run(out, model, profile, epochs, tests, {}, resume=True), "resume")
    dirs["resumed"] = only_run(out)
    row["evaluations"] = len(compare_runs(dirs["det A"], dirs["det B"]))
    row["det A == det B"] = identical(dirs["det A"], dirs["det B"])
    row["resumed == det A"] = identical(dirs["det A"], dirs["resumed"])
    row["fast A == fast B"] = identical(dirs["fast A"], dirs["fast B"])
    row["fast A == det A"] = identical(dirs["det A"], dirs["fast A"])
    cfg = json.loads((dirs["det A"] / "config.json").read_text())
    row["recorded deterministic"] = cfg["environment"].get("deterministic")
    row["device"] = cfg["device"]
    det = (speed(dirs["det A"]) + speed(dirs["det B"])) / 2
    fast = (speed(dirs["fast A"]) + speed(dirs["fast B"])) / 2
    row.update({"det images_per_s": det, "fast images_per_s": fast, "ratio fast/det": fast / det})
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet50,vgg16_bn,vit_b_16")
    ap.add_argument("--profile", default="paper", help="paper (default); smoke for a quick look on a CPU")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--test", default="pbc:test,bccd")
    ap.add_argument("--out", default=None, help="CSV to write, after every model (default: print only)")
    a = ap.parse_args(argv)
    rows, bad = [], False
    with tempfile.TemporaryDirectory(prefix="wbcbench-determinism-") as tmp:
        for m in [m for m in a.models.split(",") if m]:
            try:
                row = check(m, a.profile, a.epochs, a.test, Path(tmp))
                bad |= not (row["det A == det B"] and row["resumed == det A"] and row["killed at first checkpoint"])
            except Exception as e:  # noqa: BLE001 - one broken model must not hide the others
                row, bad = {"model": m, "error": f"{type(e).__name__}: {e}"[:500]}, True
            rows.append(row)
            print(json.dumps(row), flush=True)
            if a.out:
                write_csv(a.out, pd.DataFrame(rows))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
