"""Gather finished runs into one tidy table. A run without its `done` marker is never counted."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .classes import CLASSES
from .metrics import mean_ci
from .rundir import DONE

SCALARS = ("n", "accuracy", "balanced_accuracy", "balanced_accuracy_min5", "macro_f1", "nll", "ece",
           "majority_baseline")


def collect(root) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """(table with one row per finished run x test set x eval mode, [(run_dir, why skipped)])."""
    rows, skipped = [], []
    for cfg_path in sorted(Path(root).rglob("config.json")):
        run = cfg_path.parent
        if not (run / DONE).is_file():
            skipped.append((str(run), "unfinished (no done marker)"))
            continue
        try:
            cfg = json.loads(cfg_path.read_text())
            for m_path in sorted((run / "eval").glob("*/metrics.json")):
                m = json.loads(m_path.read_text())
                row = {"model": cfg["model"], "profile": cfg["profile"], "seed": cfg["seed"],
                       "train": cfg["train"], "test_set": m["test_set"], "eval_mode": m["eval_mode"]}
                row.update({k: m.get(k) for k in SCALARS})
                row.update({f"recall_{c}": m["per_class_recall"].get(c) for c in CLASSES})
                row.update(commit=(cfg.get("code") or {}).get("commit"), device=cfg.get("device"),
                           run_dir=str(run), eval_dir=str(m_path.parent))
                rows.append(row)
        except (OSError, ValueError, KeyError) as e:
            skipped.append((str(run), f"unreadable: {type(e).__name__}: {e}"))
    return pd.DataFrame(rows), skipped


def summarize(df: pd.DataFrame, metrics=("accuracy", "balanced_accuracy"), by=("model", "test_set", "eval_mode")):
    """Mean, Student-t 95% CI half-width and standard error over seeds for each group."""
    out = []
    for key, g in df.groupby(list(by), sort=False):
        row = dict(zip(by, key))
        for m in metrics:
            s = mean_ci(g[m].tolist())
            row.update({f"{m}_mean": s["mean"], f"{m}_ci95": s["ci95"], f"{m}_sem": s["sem"]})
        row["seeds"] = int(g["seed"].nunique())
        out.append(row)
    return pd.DataFrame(out)
