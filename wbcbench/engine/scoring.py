"""The benchmark's table, and scoring predictions made anywhere (no torch here).

One row per model x test-time method x domain, with the columns of COLUMNS: the keys (study, model, method,
label, domain, complete, seeds), then the metrics of every run's metrics.json (wbcbench.runs.collect.SCALARS:
n, accuracy, balanced accuracy, the primary balanced accuracy over the classes with >= 5 images, macro-F1,
NLL, ECE, the majority baseline) and the recall of each class. One builder (`row`, `tidy`) serves
`evaluate_model` (wbcbench.engine.benchmark), `score` (predictions from any framework) and the book's
reference rows (wbcbench.report.reference), so `pd.concat` puts any of them beside the others.

`score` reads a table with columns `domain, path, prediction` (and optionally `p_<class>` for each class of
wbcbench.core.classes.CLASSES): `path` relative to the domain's root, as the dataset lists it (the manifest's
`path`, e.g. `Neutrophil/BNE_191112.jpg` for pbc:test) and as `wbcbench predict --images <root>` writes it.
It scores whole domains only: a domain with images missing is refused unless `partial=True`, and then its
rows say `complete=False`.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from wbcbench.core.atomic import write_csv
from wbcbench.core.classes import CLASSES, NUM_CLASSES, class_index
from wbcbench.core.errors import WbcError
from wbcbench.core.metrics import compute_metrics
from wbcbench.core.names import STANDARD, ordered, row_label
from wbcbench.data.datasets import get_dataset
from wbcbench.data.duplicates import scored
from wbcbench.runs.collect import SCALARS

RECALLS = tuple(f"recall_{c}" for c in CLASSES)
KEYS = ("study", "model", "method", "label", "domain", "complete", "seeds")
METRICS = (*SCALARS, *RECALLS)
COLUMNS = (*KEYS, *METRICS)
REQUIRED = ("domain", "path", "prediction")
PROBABILITIES = tuple(f"p_{c}" for c in CLASSES)
SUM_TOLERANCE = 1e-3   # |sum of a row's p_<class> - 1| allowed (rounding in a CSV)
_SHOWN = 5             # rows named per problem; the rest are counted


def flat_metrics(metrics: dict) -> dict:
    """The METRICS of a wbcbench.core.metrics.compute_metrics dict, as collect() flattens a metrics.json."""
    return {**{k: metrics.get(k) for k in SCALARS},
            **{f"recall_{c}": metrics["per_class_recall"].get(c) for c in CLASSES}}


def row(metrics: dict, *, model: str, domain: str, method: str = STANDARD, study=None, complete: bool = True,
        seeds: int = 1) -> dict:
    """One row of the table from flat `metrics` (flat_metrics, or a collect() row's metric columns)."""
    return {"study": study, "model": model, "method": method, "label": row_label(model, method),
            "domain": domain, "complete": bool(complete), "seeds": int(seeds), **{k: metrics.get(k) for k in METRICS}}


def tidy(rows) -> pd.DataFrame:
    """The table of `rows` (row()): COLUMNS in order, metrics as floats (a missing value is NaN), n an int."""
    df = pd.DataFrame(list(rows), columns=list(COLUMNS))
    for c in METRICS:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    df["n"] = df["n"].round().astype("Int64")
    df["seeds"] = df["seeds"].astype(int)
    df["complete"] = df["complete"].astype(bool)
    return df


# ---------------------------------------------------------------------------------------------------------
# Predictions from anywhere


def _where(df: pd.DataFrame, idx) -> str:
    return f"{df.index.name or 'row'} {idx}"


def _listed(what: str, items: list[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return f"{len(items)} {what}: {'; '.join(items[:_SHOWN])}{more}"


def _relative(path: str, root: Path) -> str:
    """`path` as the dataset lists it: '/'-separated, no leading './', relative to `root` when absolute."""
    p = path.strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    if os.path.isabs(p):
        try:
            p = Path(p).resolve().relative_to(root.resolve()).as_posix()
        except (ValueError, OSError):
            pass
    return p


def _class_of(name: str) -> int | None:
    try:
        return class_index(name)
    except WbcError:
        return None


def read_predictions(path) -> pd.DataFrame:
    """A predictions CSV as `score` takes it, every cell a string, indexed by its line in the file (for
    messages); a missing, unreadable or empty file is a WbcError."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise WbcError(f"predictions file {path} not found") from None
    except pd.errors.EmptyDataError:
        raise WbcError(f"predictions file {path} is empty") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise WbcError(f"cannot read predictions file {path}: {' '.join(str(e).split())}") from None
    df.index = pd.RangeIndex(2, len(df) + 2, name="line")  # line 1 is the header
    return df


def _probabilities(df: pd.DataFrame, problems: list[str]) -> np.ndarray | None:
    """The p_<class> columns as floats (N, classes), or None without them; bad rows go to `problems`."""
    present = [c for c in PROBABILITIES if c in df.columns]
    if not present:
        return None
    if len(present) < NUM_CLASSES:
        missing = [c for c in PROBABILITIES if c not in df.columns]
        raise WbcError(f"predictions have {', '.join(present)} but not {', '.join(missing)}: give a probability "
                       f"for every class ({', '.join(PROBABILITIES)}) or none")
    p = df[list(PROBABILITIES)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(p).all(1) | (p < 0).any(1) | (np.abs(p.sum(1) - 1) > SUM_TOLERANCE)
    if bad.any():
        problems.append(_listed(f"row(s) whose p_<class> are not probabilities summing to 1 (within "
                                f"{SUM_TOLERANCE:g})", [_where(df, i) for i in df.index[bad]]))
    return p


def _check(df: pd.DataFrame, data_root) -> tuple[dict, np.ndarray, np.ndarray | None, list[str]]:
    """({domain: (dataset, positions of its rows, positions in the dataset)}, class of every row, the
    probabilities or None, [problems]): every problem of `df` found, none raised."""
    problems: list[str] = []
    p = _probabilities(df, problems)
    empty = (df[list(REQUIRED)].apply(lambda s: s.str.strip()) == "").any(axis=1).to_numpy()
    if empty.any():
        problems.append(_listed("row(s) with an empty domain, path or prediction",
                                [_where(df, i) for i in df.index[empty]]))
    classes = {v: _class_of(v) for v in set(df["prediction"])}
    preds = np.array([-1 if e or classes[v] is None else classes[v] for v, e in zip(df["prediction"], empty)],
                     np.int64)
    unknown = (preds < 0) & ~empty
    if unknown.any():
        problems.append(_listed(f"row(s) predicting an unknown class (expected one of {', '.join(CLASSES)})",
                                [f"{_where(df, i)}: {v!r}" for i, v in zip(df.index[unknown],
                                                                           df["prediction"][unknown])]))
    if p is not None:
        ok = (preds >= 0) & np.isfinite(p).all(1)
        low = np.zeros(len(df), bool)
        low[ok] = p[ok, preds[ok]] < p[ok].max(1)
        if low.any():
            problems.append(_listed("row(s) whose prediction is not their most probable class",
                                    [_where(df, i) for i in df.index[low]]))
    domains, not_in, found = {}, [], []
    for name in ordered(df["domain"][~empty].str.strip()):
        try:
            ds = get_dataset(name, data_root)
        except WbcError as e:
            problems.append(f"domain {name!r}: {e}")
            continue
        at = {q: i for i, q in enumerate(ds.paths)}
        rows = np.flatnonzero((df["domain"].str.strip() == name).to_numpy() & ~empty)
        rel = [_relative(df["path"].iat[r], ds.root) for r in rows]
        pos = np.array([at.get(q, -1) for q in rel], np.int64)
        not_in += [f"{_where(df, df.index[r])}: {name} {q}" for r, q, i in zip(rows, rel, pos) if i < 0]
        found += [(r, name, q) for r, q, i in zip(rows, rel, pos) if i >= 0]
        domains[name] = (ds, rows[pos >= 0], pos[pos >= 0])
    if not_in:
        problems.append(_listed("row(s) naming a path that is not an image of their domain (paths are relative "
                                "to the domain's folder, as its manifest lists them)", not_in))
    found.sort()
    again = pd.DataFrame(found, columns=["row", "domain", "path"]).duplicated(["domain", "path"]).to_numpy()
    if again.any():
        problems.append(_listed("row(s) predicting an image that an earlier row predicts",
                                [f"{_where(df, df.index[r])}: {name} {q}"
                                 for (r, name, q), d in zip(found, again) if d]))
    return domains, preds, p, problems


def score(predictions, *, name: str = "predictions", data_root=None, partial: bool = False) -> pd.DataFrame:
    """The benchmark's table (one row per domain; wbcbench.engine.scoring.COLUMNS) of `predictions`: a
    DataFrame, or the path of a CSV, with columns `domain` (a dataset name such as `pbc:test`, `lisc`, or an
    ImageFolder path), `path` (relative to the domain's folder, as its manifest lists it) and `prediction` (a
    class of wbcbench.CLASSES), and optionally `p_<class>` for every class (then NLL and ECE are scored too;
    without them they are NaN). Refuses, in one WbcError naming the rows, a path not in its domain, an
    unknown class, an image predicted twice, or a domain with images missing (`partial=True` scores what
    there is, and the rows say `complete=False`). `name` labels the rows. Labels come from the datasets,
    never from the table."""
    df = read_predictions(predictions) if isinstance(predictions, (str, os.PathLike)) else predictions.copy()
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise WbcError(f"predictions lack column(s) {', '.join(missing)}; they have {', '.join(map(str, df.columns))} "
                       f"(expected {', '.join(REQUIRED)}, and optionally {', '.join(PROBABILITIES)})")
    if not len(df):
        raise WbcError("predictions hold no rows")
    df[list(REQUIRED)] = df[list(REQUIRED)].fillna("").astype(str)
    domains, preds, p, problems = _check(df, data_root)
    incomplete = {name: len(ds) - len(np.unique(pos)) for name, (ds, _, pos) in domains.items()
                  if len(np.unique(pos)) < len(ds)}
    if incomplete and not partial:
        problems.append("domain(s) with images not predicted (a partial score misleads; score them all, or pass "
                        "partial=True / --partial): " + "; ".join(f"{d}: {k} of {len(domains[d][0])} images missing"
                                                                  for d, k in incomplete.items()))
    if problems:
        raise WbcError(f"cannot score these predictions ({len(df)} rows; nothing was scored): " + "; ".join(problems))
    out = []
    for domain, (ds, rows, pos) in domains.items():
        keep = scored(domain, [ds.paths[i] for i in pos], data_root)   # as every evaluation counts them
        rows, labels = rows[keep], ds.labels[pos][keep]
        metrics = compute_metrics(labels, np.eye(NUM_CLASSES)[preds[rows]])
        if p is not None:
            q = p[rows] / p[rows].sum(1, keepdims=True)
            metrics.update({k: compute_metrics(labels, q)[k] for k in ("nll", "ece")})
        else:
            metrics.update(nll=math.nan, ece=math.nan)
        out.append(row(flat_metrics(metrics), model=name, domain=domain, complete=domain not in incomplete))
    return tidy(out)


SHOWN_COLUMNS = ("label", "domain", "complete", "n", "accuracy", "balanced_accuracy_min5", "macro_f1",
                 "majority_baseline")


def summary_text(table: pd.DataFrame) -> str:
    """The table's main columns as aligned text, metrics to four decimals."""
    cols = [c for c in SHOWN_COLUMNS if c in table.columns and (c != "complete" or not table[c].all())]
    return table[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}")


def main_score(csv, *, name: str = "predictions", data_root=None, partial: bool = False, out=None) -> int:
    """CLI: `wbcbench score PREDICTIONS.csv [--partial] [--name NAME] [--out TABLE.csv]`."""
    table = score(os.fspath(csv), name=name, data_root=data_root, partial=partial)
    if out is not None:
        write_csv(out, table)
    print(summary_text(table))
    if not table["complete"].all():
        print("partial: some domains were scored on part of their images (complete=False)")
    return 0
