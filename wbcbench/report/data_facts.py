"""The data's facts that the book's prose states (split sizes, duplicates, class mixes), counted from the data
folder's manifests when the book is built, so that no such number is typed into a page."""
from __future__ import annotations

import numpy as np

from wbcbench.core.classes import CLASSES
from wbcbench.data.datasets import get_dataset
from wbcbench.data.duplicates import SPLITS, duplicate_groups


def split_sizes(data_root=None) -> str:
    """'6169 / 1030 / 3099': PBC's training, validation and test split sizes."""
    return " / ".join(str(len(get_dataset(s, data_root))) for s in SPLITS)


def duplicates(data_root=None) -> tuple[int, int]:
    """(sets of byte-identical PBC images, how many of them hold two classes)."""
    g = duplicate_groups(data_root)
    return int(g["group"].nunique()), int(g.groupby("group")["label"].nunique().gt(1).sum())


def class_count(domain: str, cls: str, data_root=None) -> int:
    return int(np.sum(get_dataset(domain, data_root).labels == CLASSES.index(cls)))


def class_share(domain: str, cls: str, data_root=None) -> str:
    """'59%': the share of a domain's images in one class."""
    ds = get_dataset(domain, data_root)
    return f"{np.mean(ds.labels == CLASSES.index(cls)):.0%}"
