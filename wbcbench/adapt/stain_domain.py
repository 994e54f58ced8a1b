"""Stain normalisation fitted once per domain, as labs use it: the new domain's stain statistics are estimated
from its pooled, unlabelled images, and every image of the domain is mapped with that one estimate to the training
domain's (wbcbench.adapt.stain.training_reference). Per-image estimates (wbcbench.adapt.stain.normalise) let each
cell's own content (a basophil is far darker than a neutrophil) move its colours.

* `macenko_domain`: the domain's stain vectors and 99th-percentile stain amounts (Macenko et al. 2009), fitted on
  its pooled images; each image's optical density (relative to its own background, as in wbcbench.adapt.stain) is
  unmixed with the domain's vectors, its amounts scaled by reference / domain, and rebuilt with the reference's
  vectors and background.
* `reinhard_domain`: the domain's pooled LAB means and standard deviations (Reinhard et al. 2001); each image's LAB
  channels are standardised with the domain's statistics and given the reference's.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from wbcbench.adapt import stain
from wbcbench.core.errors import WbcError

SAMPLE = 500   # images pooled for a domain's fit (a seeded sample when the domain has more)
DOMAIN_METHODS = {"macenko_domain": "macenko", "reinhard_domain": "reinhard"}
MIN_OD = 0.6   # summed optical density above which off_plane_od counts a pixel (white cells and red cells alike)


def domain_reference(images, method: str, sample: int = SAMPLE, seed: int = 0) -> stain.StainReference:
    """`method`'s statistics ('macenko' or 'reinhard') of a domain, fitted on a seeded sample of its images."""
    a = np.asarray(images)
    idx = np.arange(len(a)) if len(a) <= sample else np.sort(
        np.random.default_rng(seed).choice(len(a), sample, replace=False))
    return stain.fit_reference(a[idx], method)


def _macenko(image: np.ndarray, domain: stain.StainReference, reference: stain.StainReference):
    prepared = stain._prepare(image)
    if prepared is None:
        return None
    od = -np.log((prepared[0].reshape(-1, 3) + 1) / stain.IO)
    with stain._strict():
        try:
            amounts = np.linalg.lstsq(domain.values["stains"], od.T, rcond=None)[0]
            amounts *= (reference.values["max_conc"] / domain.values["max_conc"])[:, None]
            out = stain.IO * np.exp(-reference.values["stains"] @ amounts)
        except stain._FAILURES:
            return None
    out = np.minimum(out, 255).T.reshape(image.shape) * (reference.values["background"] / stain.IO)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _reinhard(image: np.ndarray, domain: stain.StainReference, reference: stain.StainReference):
    utils = stain._torchstain().numpy.utils
    with stain._strict():
        try:
            labs = utils.lab_split(utils.rgb2lab(image.astype(np.float32) / 255))
            moved = [(c - m) / s * rs + rm for c, m, s, rm, rs in
                     zip(labs, domain.values["means"], domain.values["stds"], reference.values["means"],
                         reference.values["stds"])]
            rgb = utils.lab2rgb(utils.lab_merge(*moved))
        except stain._FAILURES:
            return None
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


class OffPlane(NamedTuple):
    """off_plane_od's answer: `share`, the off-plane part's mean length over the optical density's mean length;
    `off_mean` and `od_mean`, the mean off-plane and total optical density per RGB channel (3,)."""

    share: float
    off_mean: np.ndarray
    od_mean: np.ndarray


def off_plane_od(images, domain: stain.StainReference, min_od: float = MIN_OD) -> OffPlane:
    """What Macenko's two stains cannot hold: the part of each stained pixel's optical density off the plane of
    `domain`'s two stain vectors (a single direction, their cross product), over every stained pixel of
    `images`. OD is taken as _macenko takes it, against each image's own background; stained pixels have a
    summed OD above `min_od`. Rebuilding an image from its stain amounts drops exactly this part, whatever
    reference it is mapped to."""
    stains = domain.values["stains"]
    projector = stains @ np.linalg.pinv(stains)
    off_norm = od_norm = 0.0
    off_sum, od_sum, n = np.zeros(3), np.zeros(3), 0
    for image in stain._check_images(images, "the off-plane optical density"):
        prepared = stain._prepare(image)
        if prepared is None:
            continue
        od = -np.log((prepared[0].reshape(-1, 3) + 1) / stain.IO)
        od = od[od.sum(axis=1) > min_od]
        off = od - od @ projector.T
        off_norm += np.linalg.norm(off, axis=1).sum()
        od_norm += np.linalg.norm(od, axis=1).sum()
        off_sum += off.sum(axis=0)
        od_sum += od.sum(axis=0)
        n += len(od)
    if n == 0:
        raise WbcError("none of these images has stained pixels to measure")
    return OffPlane(off_norm / od_norm, off_sum / n, od_sum / n)


def normalise_domain(images, domain: stain.StainReference, reference: stain.StainReference) -> stain.Normalised:
    """Every image mapped with the domain's one estimate to `reference` (same method); an image where the method
    cannot work is returned unchanged and flagged, as in wbcbench.adapt.stain.normalise."""
    if domain.method != reference.method:
        raise WbcError(f"a {domain.method} domain estimate cannot map to a {reference.method} reference")
    a = stain._check_images(images, "per-domain stain normalisation")
    one = _macenko if domain.method == "macenko" else _reinhard
    out, fell_back = np.empty(a.shape, np.uint8), np.zeros(len(a), bool)
    for i in range(len(a)):
        res = one(np.ascontiguousarray(a[i]), domain, reference)
        if res is None or res.shape != a[i].shape:
            out[i], fell_back[i] = a[i], True
        else:
            out[i] = res
    return stain.Normalised(out, fell_back)


def normalised_domain(images, method: str, reference: stain.StainReference, ds=None) -> stain.Normalised:
    """`method` ('macenko_domain' or 'reinhard_domain') on a domain's images, fitted on them; cached with the
    decoded images of dataset `ds` when given (the same for every run and seed)."""
    if method not in DOMAIN_METHODS:
        raise WbcError(f"unknown per-domain stain method {method!r}; choose from {', '.join(DOMAIN_METHODS)}")

    def compute(a):
        return normalise_domain(a, domain_reference(a, DOMAIN_METHODS[method]), reference)

    if ds is None:
        return compute(stain._check_images(images, method))
    return stain.cached_normalised(ds, images, f"{method}-s{SAMPLE}-{stain.reference_key(reference)}", compute)
