"""Exact duplicates across the PBC splits, found by the md5s of the shipped manifests, and the images every
evaluation leaves out because of them: a `pbc:val` or `pbc:test` image whose bytes equal a `pbc:train` image's
(the network has seen it), and both images of a pair that appears under two labels (the label cannot be right
twice). Predictions are still made for them; only the metrics leave them out (book/analysis_plan.md)."""
from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import numpy as np
import pandas as pd

from wbcbench.data.datasets import get_dataset

SPLITS = ("pbc:train", "pbc:val", "pbc:test")
EVALUATED = ("pbc:val", "pbc:test")


def duplicate_groups(data_root=None) -> pd.DataFrame:
    """Every set of byte-identical PBC images (split, path, label, md5, group), one row per image, groups in
    md5 order; images without an md5 are not compared."""
    where = defaultdict(list)
    for split in SPLITS:
        ds = get_dataset(split, data_root)
        for path, label, md5 in zip(ds.paths, ds.labels.tolist(), ds.md5s):
            if md5:
                where[md5].append((split, path, label))
    rows = []
    for g, md5 in enumerate(sorted(m for m, occ in where.items() if len(occ) > 1)):
        rows += [{"group": g, "split": s, "path": p, "label": y, "md5": md5} for s, p, y in where[md5]]
    return pd.DataFrame(rows, columns=["group", "split", "path", "label", "md5"])


def excluded(data_root=None) -> pd.DataFrame:
    """The evaluation images left out, with why: (split, path, reason)."""
    rows = []
    for _, g in duplicate_groups(data_root).groupby("group"):
        in_train = (g["split"] == "pbc:train").any()
        two_labels = g["label"].nunique() > 1
        for r in g.itertuples(index=False):
            if r.split not in EVALUATED:
                continue
            if two_labels:
                rows.append((r.split, r.path, "the same image under another label"))
            elif in_train:
                rows.append((r.split, r.path, "the same image is in pbc:train"))
    return pd.DataFrame(rows, columns=["split", "path", "reason"]).sort_values(["split", "path"], ignore_index=True)


def excluded_paths(name: str, data_root=None) -> frozenset:
    """The paths of evaluation set `name` (e.g. 'pbc:test') that its metrics leave out; empty for other sets."""
    if name not in EVALUATED:
        return frozenset()
    return _excluded_paths(name, None if data_root is None else str(data_root))


@lru_cache(maxsize=8)
def _excluded_paths(name: str, data_root: str | None) -> frozenset:
    ex = excluded(data_root)
    return frozenset(ex.loc[ex["split"] == name, "path"])


def scored(name: str, paths, data_root=None) -> np.ndarray:
    """Boolean mask over `paths` of evaluation set `name`: True for the images its metrics count."""
    left_out = excluded_paths(name, data_root)
    return np.array([p not in left_out for p in paths], dtype=bool)
