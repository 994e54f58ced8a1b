"""What differs between the test domains before any model sees them: class composition and colour.

Counts come from the files on disk (not the registry); colour statistics from a class-balanced sample
decoded through wbcbench.data.cache.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from wbcbench.core.classes import CLASSES
from wbcbench.core.errors import WbcError
from wbcbench.data.cache import load_images
from wbcbench.data.datasets import DATASETS, balanced_indices, get_dataset


def available_domains(data_root=None, names=None) -> list[str]:
    """Registered datasets that load here (split names like pbc:train excluded unless asked for)."""
    names = names or [n for n in DATASETS if ":" not in n or n.startswith("raabin:")]
    ok = []
    for n in names:
        try:
            get_dataset(n, data_root)
            ok.append(n)
        except WbcError:
            pass
    return ok


def class_counts_table(names, data_root=None) -> pd.DataFrame:
    """Images per class per domain, counted from the files on disk (not from the registry)."""
    rows = []
    for n in names:
        ds = get_dataset(n, data_root)
        c = ds.class_counts()
        rows.append({"dataset": n, **c, "total": len(ds),
                     "majority share (%)": round(100 * max(c.values()) / len(ds), 1)})
    return pd.DataFrame(rows)


def _rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) floats in [0, 1] -> HSV in [0, 1] (hue as a fraction of the circle)."""
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    mx, mn = rgb.max(1), rgb.min(1)
    d = mx - mn
    h = np.zeros_like(mx)
    nz = d > 1e-12
    rm = nz & (mx == r)
    gm = nz & (mx == g) & ~rm
    bm = nz & ~rm & ~gm
    h[rm] = ((g - b)[rm] / d[rm]) % 6
    h[gm] = (b - r)[gm] / d[gm] + 2
    h[bm] = (r - g)[bm] / d[bm] + 4
    h = h / 6.0
    s = np.where(mx > 1e-12, d / np.maximum(mx, 1e-12), 0.0)
    return np.stack([h, s, mx], 1)


def domain_sample(name: str, per_class: int, data_root=None, seed: int = 0):
    """A class-balanced subset of a domain (up to `per_class` images of each class)."""
    ds = get_dataset(name, data_root)
    return ds.subset(balanced_indices(ds.labels, per_class, seed=seed), name=f"{name}[{per_class}/class]")


def colour_stats(names, size: int = 32, per_class: int = 20, data_root=None) -> pd.DataFrame:
    """Per image mean R, G, B and H, S, V of a class-balanced sample of every domain, decoded once through
    wbcbench.data.cache at `size` px: the colour shift between staining/imaging setups, in numbers."""
    rows = []
    for n in names:
        ds = domain_sample(n, per_class, data_root)
        x = np.asarray(load_images(ds, size), dtype=np.float32) / 255.0
        rgb = x.reshape(len(x), -1, 3).mean(1)
        hsv_px = _rgb_to_hsv(x.reshape(-1, 3)).reshape(len(x), -1, 3)
        hsv = hsv_px.mean(1)
        # hue is an angle: average it on the circle (saturation-weighted), else pink (h~0.95 and h~0.02)
        # would average to green
        ang = np.exp(2j * np.pi * hsv_px[..., 0]) * hsv_px[..., 1]
        # in degrees in (-180, 180], 0 = red: stained smears sit around red/magenta, so means across images
        # do not wrap
        hsv[:, 0] = np.degrees(np.angle(ang.sum(1)))
        for i in range(len(x)):
            rows.append({"dataset": n, "class": CLASSES[int(ds.labels[i])],
                         "R": rgb[i, 0], "G": rgb[i, 1], "B": rgb[i, 2],  # 0-1; H in degrees; S, V 0-1
                         "H": hsv[i, 0], "S": hsv[i, 1], "V": hsv[i, 2]})
    return pd.DataFrame(rows)


def colour_summary(stats: pd.DataFrame) -> pd.DataFrame:
    """Per domain: the mean of each per-image colour statistic, and the number of images."""
    g = stats.groupby("dataset", sort=False)[["R", "G", "B", "H", "S", "V"]]
    out = g.mean().round(3)
    out.columns = [f"mean {c}" for c in out.columns]
    out["n"] = g.size()
    return out.reset_index()
