"""The data chapter's cell-scale figures: each domain's nucleus extent (wbcbench.data.scale) as a fraction of
the image side, and sample cells with their measured nucleus drawn, so the measurement can be checked by eye."""
from __future__ import annotations

import numpy as np
import pandas as pd

from wbcbench.data import scale
from wbcbench.data.cache import load_images
from wbcbench.data.domains import domain_sample
from wbcbench.report.plots import PNGFigure, _alt, _fit, image_grid_png


def domain_extents(names, size: int = 96, per_class: int = 60, data_root=None, seed: int = 0) -> pd.DataFrame:
    """Tidy (domain, extent): the nucleus extent of a class-balanced sample of each domain's images (at most
    `per_class` per class, seeded), measured on the images as the cache stores them at `size` px."""
    rows = []
    for name in names:
        ds = domain_sample(name, per_class, data_root, seed=seed)
        rows += [{"domain": name, "extent": e} for e in scale.extents(load_images(ds, size))]
    return pd.DataFrame(rows, columns=["domain", "extent"])


def scale_summary(extents: pd.DataFrame, reference: str = "pbc:train") -> pd.DataFrame:
    """Per domain: images measured, median extent, its interquartile range, and the rescaling factor the
    `scale` test-time method would apply (reference median over the domain's)."""
    g = extents.dropna().groupby("domain", sort=False)["extent"]
    out = pd.DataFrame({"images": g.size(), "median": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75)})
    if reference in out.index:
        out["rescaling factor"] = out.loc[reference, "median"] / out["median"]
    return out


def scale_chart(extents: pd.DataFrame):
    """Box plots of each domain's nucleus extent (% of the image side), domains in the given order."""
    alt = _alt()
    d = extents.dropna().assign(percent=lambda f: f["extent"] * 100)
    order = list(dict.fromkeys(d["domain"]))
    chart = alt.Chart(d).mark_boxplot(extent="min-max", size=22).encode(
        y=alt.Y("domain:N", sort=order, title=None),
        x=alt.X("percent:Q", title="Nucleus extent (% of the image side)", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("domain:N", sort=order, legend=None),
    ).properties(width=560, height=28 * len(order))
    return _fit(chart)


def overlay_grid(names, per_domain: int = 6, size: int = 96, data_root=None, seed: int = 0) -> PNGFigure:
    """One row per domain: `per_domain` cells (one class after another) with their measured nucleus tinted
    and boxed."""
    rows = []
    for name in names:
        ds = domain_sample(name, max(1, per_domain // 5 + 1), data_root, seed=seed)
        images = load_images(ds, size)
        pick = np.random.default_rng(seed).permutation(len(ds))[:per_domain]
        rows.append([scale.overlay(np.asarray(images[i]), side=size) for i in sorted(pick)])
    return PNGFigure(image_grid_png(rows, list(names), scale=1))
