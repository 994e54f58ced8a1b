"""A run's own record as the command that redoes it: config.json -> train.run arguments, a retrain of a
committed run on this machine, and the comparison that says whether it reproduced exactly (byte-identical
predictions on every evaluation).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import torch

from wbcbench.core.environment import same_host_class
from wbcbench.core.names import eval_dir_name
from wbcbench.engine.train import read_record, run
from wbcbench.runs.collect import resolve_dir
from wbcbench.runs.records import train_args
from wbcbench.runs.rundir import evaluations, is_done

#: committed runs recorded on the project's other host class, one per model family (tests/test_reproduce.py)
REFERENCES = "results/reproduce-refs"


def reproduce(run_dir: str | os.PathLike, out: str | os.PathLike, data_root=None, quiet: bool = True,
              weights=None, test_sets=None) -> Path:
    """Train again, here, the run recorded in `run_dir`/config.json, into `out` (a finished copy there is
    reused). On the CPU it uses the recorded thread count; the CPU type matters too (environment.py), so
    byte-identical results are expected only on a host of the recorded class. `weights`: where the
    recorded weights file lies on this machine, if the run had one. `test_sets`: evaluate only these (a
    cheaper check: training is the same). Compare the two runs with `compare_runs`."""
    config = read_record(run_dir)
    args = train_args(config)
    if weights is not None:
        args["weights"] = weights
    if test_sets is not None:
        args["test_sets"] = test_sets
    threads = (config.get("environment") or {}).get("torch_threads")
    before = torch.get_num_threads()
    if threads and config.get("device", "cpu") == "cpu":
        torch.set_num_threads(int(threads))
    try:
        return run(**args, out=out, device=config.get("device"), resume=True, data_root=data_root, quiet=quiet)
    finally:
        torch.set_num_threads(before)


def compare_runs(committed: str | os.PathLike, retrained: str | os.PathLike) -> pd.DataFrame:
    """Per evaluation of `committed`: its accuracy, the same evaluation's in `retrained` (matched by the
    test set and method recorded in metrics.json, whatever the folder names), and whether the two
    predictions files are byte-identical (what "reproduced exactly" means here)."""
    theirs = evaluations(retrained)
    rows = []
    for (test, mode), (_, folder) in evaluations(committed).items():
        other = theirs.get((test, mode), (None, None))[1]
        pa = folder / "predictions.csv"
        pb = other / "predictions.csv" if other is not None else None
        rows.append({"evaluation": eval_dir_name(test, mode),
                     "accuracy (committed)": json.loads((folder / "metrics.json").read_text()).get("accuracy"),
                     "accuracy (retrained)": None if other is None else
                     json.loads((other / "metrics.json").read_text()).get("accuracy"),
                     "identical predictions": pb is not None and pa.is_file() and pb.is_file()
                     and pa.read_bytes() == pb.read_bytes()})
    return pd.DataFrame(rows, columns=["evaluation", "accuracy (committed)", "accuracy (retrained)",
                                       "identical predictions"])


def _recorded_here(run_dir: Path) -> bool:
    """Was this committed run recorded on a machine of this one's host class (so a retrain is byte-identical)?"""
    return same_host_class((read_record(run_dir).get("environment") or {}))


def retrained_checkpoint(runs_dir="results/cpu", model: str = "resnet18_bn", seed: int = 0, retrain_into=None,
                         data_root=None, references=REFERENCES) -> tuple[Path | None, str]:
    """The trained network of a finished run of `model` and `seed` under `runs_dir`, and a sentence saying
    where it came from.

    Checkpoints are never committed. When the run's `model.pt` is not on this machine and `retrain_into`
    is a folder, the run is trained again from its committed config.json into that folder (kept there for
    the next build) and the sentence says whether its predictions match the committed ones: the study's own
    run when it was recorded on this kind of machine, else the same run recorded here under `references`
    (results/reproduce-refs), with what a different CPU changes. Returns (None, why) when there is no such
    finished run."""
    root = resolve_dir(runs_dir)
    runs = [r for r in sorted(root.glob(f"{model}-*-s{seed}-*")) if is_done(r)] if root.is_dir() else []
    if not runs:
        return None, f"no finished `{model}` seed-{seed} run in `{runs_dir}`"
    committed = runs[0]
    if (committed / "model.pt").is_file():
        return committed, f"the run's own checkpoint, `{committed}/model.pt`"
    if retrain_into is None:
        return None, f"`{committed}` has no model.pt on this machine (checkpoints are not committed)"
    again = reproduce(committed, retrain_into, data_root=data_root)
    reference = committed
    if not _recorded_here(committed):
        ref_root = resolve_dir(references)
        here = ref_root / committed.name if ref_root.is_dir() else None
        if here is not None and is_done(here) and _recorded_here(here):
            reference = here
    cmp = compare_runs(reference, again)
    same = int(cmp["identical predictions"].sum())
    diff = (cmp["accuracy (retrained)"].astype(float) - cmp["accuracy (committed)"].astype(float)).abs()
    worst = float(diff.max()) if len(cmp) else float("nan")
    where = ("the committed run's" if reference == committed else
             f"the same run recorded on this kind of machine (`{references}`; the study's own was recorded on "
             f"{(read_record(committed).get('environment') or {}).get('cpu', 'another CPU')}, and a different CPU "
             "model changes the floating-point results, see the reproducibility chapter)")
    return again, (f"`{committed.name}` trained again on this machine from its committed config.json (checkpoints "
                   f"are not committed): its predictions are identical to {where} on {same} of "
                   f"{len(cmp)} evaluations" + ("" if same == len(cmp) else
                                               f", and accuracies differ by at most {100 * worst:.1f} points"))
