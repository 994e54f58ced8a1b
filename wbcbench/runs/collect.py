"""Gather run directories into tables: finished runs as one tidy table (a run without its `done` marker is
never counted), means over seeds, and the index of every run folder for the book's appendix."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from wbcbench.core.classes import CLASSES
from wbcbench.core.errors import WbcError
from wbcbench.core.paths import REPO_ROOT, checkout
from wbcbench.core.profiles import setting
from wbcbench.core.project import REPO_BRANCH
from wbcbench.runs.rundir import adapt_methods, is_done

SCALARS = ("n", "accuracy", "balanced_accuracy", "balanced_accuracy_min5", "macro_f1", "nll", "ece",
           "majority_baseline")


def resolve_dir(path) -> Path:
    """A results folder given relative to the working directory or, failing that, to the checkout when the
    package runs from one (notebooks execute in notebooks/); an installed package has only the former."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    root = checkout()
    return p if root is None else root / p


def read_json(path):
    """The JSON in `path`, or None when it is missing or unreadable (a run being written, a torn copy)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def run_records(root) -> list[tuple[Path, dict | None]]:
    """(run directory, its config.json or None when unreadable) of every run folder under `root`, in path
    order; none when `root` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [(p.parent, cfg if isinstance(cfg := read_json(p), dict) else None)
            for p in sorted(root.rglob("config.json"))]


def top_prediction_share(eval_dir) -> float | None:
    """Share of the scored test images put into the most-predicted class, from eval/<folder>/predictions.csv
    (column `prediction`; the images metrics.json lists as left out are not counted); None without a readable
    file. The analysis plan's rule for a domain that cannot inform a comparison reads it (a network that calls
    most cells one class)."""
    try:
        pred = pd.read_csv(Path(eval_dir) / "predictions.csv", usecols=["path", "prediction"])
        left_out = set((read_json(Path(eval_dir) / "metrics.json") or {}).get("left_out") or ())
    except (OSError, ValueError):
        return None
    pred = pred.loc[~pred["path"].isin(left_out), "prediction"]
    return float(pred.value_counts().iloc[0] / len(pred)) if len(pred) else None


def collect(root) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """(table with one row per finished run x test set x eval mode, [(run_dir, why skipped)]): the scalars
    of each metrics.json, per-class recall, and the share of images in the most-predicted class.
    WbcError when `root` is not a folder (a typo would otherwise read as "no runs")."""
    if not Path(root).is_dir():
        raise WbcError(f"run folder {root} does not exist" if not Path(root).exists() else f"{root} is not a folder")
    rows, skipped = [], []
    for run, cfg in run_records(root):
        if not is_done(run):
            skipped.append((str(run), "unfinished (no done marker)"))
            continue
        if cfg is None:
            skipped.append((str(run), "unreadable: config.json is not a readable JSON object"))
            continue
        run_rows = []  # a run counts whole or not at all: an unreadable evaluation skips all of it
        try:
            for m_path in sorted((run / "eval").glob("*/metrics.json")):
                m = json.loads(m_path.read_text())
                row = {"model": cfg["model"], "profile": cfg["profile"], "seed": cfg["seed"],
                       "train": cfg["train"], "test_set": m["test_set"], "eval_mode": m["eval_mode"],
                       "augment": setting(cfg.get("hparams") or {}, "augment")}
                row.update({k: m.get(k) for k in SCALARS})
                row.update({f"recall_{c}": m["per_class_recall"].get(c) for c in CLASSES})
                row["top_prediction_share"] = top_prediction_share(m_path.parent)
                row.update(commit=(cfg.get("code") or {}).get("commit"), device=cfg.get("device"),
                           run_dir=str(run), eval_dir=str(m_path.parent))
                run_rows.append(row)
        except (OSError, ValueError, KeyError) as e:
            skipped.append((str(run), f"unreadable: {type(e).__name__}: {e}"))
            continue
        rows.extend(run_rows)
    return pd.DataFrame(rows), skipped


def load_runs(runs_dir, profile: str | None = None) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """collect() over `runs_dir` (see resolve_dir), keeping one profile when given. An absent folder is
    simply empty here: a chapter built before any run has finished shows empty tables."""
    root = resolve_dir(runs_dir)
    if not root.is_dir():
        return pd.DataFrame(), []
    df, skipped = collect(root)
    if profile is not None and len(df):
        df = df[df["profile"] == profile].reset_index(drop=True)
    return df, skipped


def _notebook_link(run: Path, rel: Path, repo_url: str | None) -> str:
    nbs = sorted(run.glob("*.ipynb"))
    if not nbs:
        return "–"
    target = f"{rel.as_posix()}/{nbs[0].name}"
    return f"[{nbs[0].name}]({repo_url.rstrip('/')}/blob/{REPO_BRANCH}/{target})" if repo_url else target


def run_index(results_dir, repo_url: str | None = None) -> pd.DataFrame:
    """Every run directory (finished or not) under `results_dir` with its parameters, test sets, status and
    a link to its executed notebook (any *.ipynb in the run directory), relative to the repository."""
    rows = []
    for run, cfg in run_records(resolve_dir(results_dir)):
        if cfg is None:
            rows.append({"run": run.name, "status": "unreadable config.json"})
            continue
        hp = cfg.get("hparams") or {}
        try:
            rel = run.resolve().relative_to(REPO_ROOT)
        except ValueError:
            rel = run
        rows.append({
            "run": run.name, "model": cfg.get("model"), "augment": setting(hp, "augment"),
            "profile": cfg.get("profile"), "seed": cfg.get("seed"),
            "train": cfg.get("train"), "test": ", ".join(cfg.get("test") or []),
            "epochs": hp.get("epochs"), "lr": hp.get("lr"), "batch": hp.get("batch_size"),
            "crop": hp.get("crop_size"), "adabn": "adabn" in adapt_methods(cfg), "device": cfg.get("device"),
            "commit": ((cfg.get("code") or {}).get("commit") or "")[:8],
            "status": "done" if is_done(run) else "unfinished",
            "notebook": _notebook_link(run, Path(rel), repo_url), "path": str(rel),
        })
    return pd.DataFrame(rows)
