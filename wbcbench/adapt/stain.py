"""Test-time stain normalisation of target images to the training domain (the pretrained study's test-time
remedy).

Methods (torchstain's numpy backend, deterministic):
* `macenko`: Macenko et al., "A method for normalizing histology slides for quantitative analysis", ISBI
  2009. Each image's two stain vectors (optical density directions, found from the extreme angles of its
  stained pixels in the plane of the two largest OD eigenvectors) and stain amounts are estimated, then the
  image is rebuilt with the reference's stain vectors and the reference's 99th-percentile stain amounts.
  Written for haematoxylin & eosin; a Romanowsky (May-Gruenwald-Giemsa / Wright) blood smear has the same
  two-dye structure (a basic blue-violet dye on nuclei, eosin on cytoplasm and red cells).
  One addition: optical density is taken relative to each image's own background colour (the per-channel
  99th-percentile intensity), as Ruifrok & Johnston (2001) define OD against the incident light per channel,
  and the result is given the reference's background colour. torchstain assumes a white background at
  Io = 240 in every channel, but PBC's (CellaVision) is peach, about (255, 230, 205), and BCCD's bluish,
  about (209, 208, 224): that cast is no stain, so Macenko's two-stain reconstruction drops it, and a PBC
  image normalised to itself moves by 11-26 of 255 levels on average; with the background step, by about 5.
* `reinhard`: Reinhard et al., "Color transfer between images", IEEE CG&A 21(5) 2001: each image's LAB
  channels are standardised and given the reference's mean and standard deviation.

The reference is fitted on TRAINING-domain images only: a fixed class-balanced sample of `pbc:train`
(`per_class` images per class, sample seed 0, the same for every run and seed: the reference is part of the
method, not of a run's randomness). Its pixels are pooled and fitted as one image: a single reference image
shows one cell type (a basophil is far darker than a neutrophil), and averaging per-image stain matrices
needs their order and sign matched and renormalised, while pooling is what Macenko's method does on a slide.

Images come and go as the cache stores them: uint8 (N, H, W, 3). An image where the method cannot work
(too few stained pixels, as a near-white or background-only crop, or a numerical failure) is returned
unchanged and flagged in `Normalised.fell_back`: no image makes it raise (only input that is not uint8
(N, H, W, 3) images does, with a WbcError).
"""
from __future__ import annotations

import hashlib
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import NamedTuple

import numpy as np

from wbcbench.core.atomic import atomic_path
from wbcbench.core.errors import WbcError, unknown
from wbcbench.core.names import STAIN_METHODS
from wbcbench.data.cache import cache_path, load_dataset
from wbcbench.data.datasets import Dataset, balanced_indices

VERSION = 1                        # bump when the normalisation changes: cached normalised sets are rebuilt
REFERENCE_SET = "pbc:train"
IO, ALPHA, BETA = 240, 1, 0.15     # Macenko's (and torchstain's) light intensity, angle percentile, OD floor
MIN_STAINED = 0.01                 # an image needs >= 1% of its pixels (and >= 50) stained for Macenko
BACKGROUND_PERCENTILE = 99         # per channel: the image's background (incident light) colour
MIN_SPREAD = 1e-6                  # OD variance along the stain plane's second axis: below it, no plane
MIN_BACKGROUND = 32                # a darker 'background' in any channel: not a bright-field image
MIN_LAB_STD = 0.5                  # LAB units: a channel with less spread cannot be standardised (Reinhard)
_FAILURES = (ValueError, np.linalg.LinAlgError, IndexError, FloatingPointError)  # what the method raises on an image


def _torchstain():
    try:
        import torchstain
        import torchstain.numpy  # noqa: F401 - its normalisers and LAB utilities
    except ImportError:
        raise WbcError("stain normalisation needs torchstain: pip install torchstain") from None
    return torchstain


def _normaliser(method: str):
    """A fresh torchstain normaliser (numpy backend: deterministic, no torch threads)."""
    ts = _torchstain()
    if method == "macenko":
        return ts.normalizers.MacenkoNormalizer(backend="numpy")
    return ts.normalizers.ReinhardNormalizer(backend="numpy")


def _check_images(images, what: str) -> np.ndarray:
    a = np.asarray(images)
    if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3:
        raise WbcError(f"{what}: expected uint8 images (N, H, W, 3), got {a.dtype} {a.shape}")
    if len(a) == 0:
        raise WbcError(f"{what}: no images")
    return a


@contextmanager
def _strict():
    """NaN anywhere (an empty stained-pixel set, a zero spread, a zero stain amount) raises instead of
    reaching torchstain's silent cast to uint8; overflow of exp() only saturates, as the clip to 255 does.
    torchstain's warnings are silenced: a failure is reported (fell_back) or raised, not printed."""
    with warnings.catch_warnings(), np.errstate(invalid="raise", divide="raise", over="ignore", under="ignore"):
        warnings.simplefilter("ignore")
        yield


def background(image: np.ndarray) -> np.ndarray:
    """The per-channel background intensity (3,) of one uint8 image: its 99th-percentile pixel values."""
    return np.percentile(image.reshape(-1, 3), BACKGROUND_PERCENTILE, axis=0)


def _to_white(image: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """float image whose background is Io in every channel, the white torchstain's Macenko assumes."""
    return np.clip(image.astype(np.float64) * (IO / bg), 0, 255)


def _enough_stain(image: np.ndarray) -> bool:
    """Enough stained pixels, spread over a plane of OD space (Macenko's stain plane; a flat crop has none)."""
    od = -np.log((image.reshape(-1, 3).astype(np.float64) + 1) / IO)
    od = od[np.all(od >= BETA, axis=1)]
    if len(od) < max(50, MIN_STAINED * image.shape[0] * image.shape[1]):
        return False
    return bool(np.linalg.eigvalsh(np.cov(od.T))[1] > MIN_SPREAD)


def _prepare(image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(white-balanced float image, its background) for Macenko, or None where Macenko cannot apply: a dark
    'background' (not a bright-field image) or too few stained pixels (a near-white or empty crop)."""
    bg = background(image)
    if bg.min() < MIN_BACKGROUND:
        return None
    white = _to_white(image, bg)
    return (white, bg) if _enough_stain(white) else None


@dataclass(frozen=True)
class StainReference:
    """What a target image is normalised to. macenko: `stains` (3, 2) unit OD vectors (H, E columns),
    `max_conc` (2,) and `background` (3,); reinhard: LAB `means` (3,) and `stds` (3,). `n_images`: how many
    images were pooled."""

    method: str
    values: dict
    n_images: int

    def normaliser(self):
        norm = _normaliser(self.method)
        if self.method == "macenko":
            norm.HERef, norm.maxCRef = self.values["stains"].copy(), self.values["max_conc"].copy()
        else:
            norm.target_means, norm.target_stds = self.values["means"].copy(), self.values["stds"].copy()
        return norm


class Normalised(NamedTuple):
    images: np.ndarray      # uint8 (N, H, W, 3)
    fell_back: np.ndarray   # bool (N,): returned unnormalised

    @property
    def n_fell_back(self) -> int:
        return int(self.fell_back.sum())


def reference_indices(labels, per_class: int = 10) -> np.ndarray:
    """The fixed class-balanced sample of the training set the reference is fitted on (sample seed 0)."""
    return balanced_indices(labels, per_class, seed=0)


def _fit(norm, method: str, a: np.ndarray) -> dict:
    if method == "reinhard":
        norm.fit(np.ascontiguousarray(a).reshape(-1, a.shape[2], 3))  # (N*H, W, 3): one tall image
        return {"means": np.asarray(norm.target_means, float), "stds": np.asarray(norm.target_stds, float)}
    prepared = [p for p in map(_prepare, a) if p is not None]
    if not prepared:
        raise ValueError("no image has a bright background and enough stained pixels")
    norm.fit(np.concatenate([w for w, _ in prepared]), Io=IO, alpha=ALPHA, beta=BETA)
    return {"stains": np.asarray(norm.HERef, float), "max_conc": np.asarray(norm.maxCRef, float),
            "background": np.median([bg for _, bg in prepared], axis=0)}


def fit_reference(images, method: str = "macenko") -> StainReference:
    """Fit `method`'s reference on training-domain images (uint8 N, H, W, 3), their pixels pooled."""
    if method not in STAIN_METHODS:
        raise unknown("stain normalisation method", method, STAIN_METHODS)
    a = _check_images(images, "stain reference")
    norm = _normaliser(method)
    try:
        with _strict():
            values = _fit(norm, method, a)
    except _FAILURES as e:
        raise WbcError(f"cannot fit a {method} stain reference on these {len(a)} images: {e}") from None
    if not all(np.all(np.isfinite(v)) for v in values.values()) or ("stds" in values and values["stds"].min() <= 0):
        raise WbcError(f"cannot fit a {method} stain reference on these {len(a)} images: degenerate statistics")
    return StainReference(method, values, len(a))


def training_reference(method: str = "macenko", size: int = 96, per_class: int = 10,
                       data_root: str | os.PathLike | None = None, train_set: str = REFERENCE_SET) -> StainReference:
    """The reference a run uses: `per_class` images per class of its training set at `size` px."""
    ds, images = load_dataset(train_set, data_root, size=size)
    return fit_reference(images[reference_indices(ds.labels, per_class)], method)


def _normalise_one(norm, reference: StainReference, image: np.ndarray) -> np.ndarray | None:
    """One image normalised, or None where the method does not apply or fails numerically."""
    with _strict():
        try:
            if reference.method == "reinhard":
                if _lab_std(image).min() < MIN_LAB_STD:  # a flat or grey image: standardising amplifies noise
                    return None
                out = np.asarray(norm.normalize(image))
                return out if out.shape == image.shape and out.dtype == np.uint8 else None
            prepared = _prepare(image)
            if prepared is None:
                return None
            out = norm.normalize(prepared[0], Io=IO, alpha=ALPHA, beta=BETA, stains=False)[0]
        except _FAILURES:
            return None
    out = np.rint(np.asarray(out, np.float64) * (reference.values["background"] / IO))
    return np.clip(out, 0, 255).astype(np.uint8) if out.shape == image.shape else None


def _lab_std(image: np.ndarray) -> np.ndarray:
    """Per-channel spread of one image in torchstain's LAB scaling, the statistics Reinhard standardises."""
    utils = _torchstain().numpy.utils
    return np.array([c.std() for c in utils.lab_split(utils.rgb2lab(image.astype(np.float32) / 255))])


def macenko_stain_vectors(image: np.ndarray) -> np.ndarray:
    """One uint8 image's Macenko stain vectors (3, 2), H then E, unit OD directions relative to its own
    background (as normalise finds them); NaN where it has none."""
    prepared = _prepare(image)
    if prepared is None:
        return np.full((3, 2), np.nan)
    norm = _normaliser("macenko")
    with _strict():
        try:
            norm.fit(prepared[0], Io=IO, alpha=ALPHA, beta=BETA)
        except _FAILURES:
            return np.full((3, 2), np.nan)
    return np.asarray(norm.HERef, float)


def stain_angles(vectors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Angles in degrees between matching columns (stains) of two (3, k) sets of OD vectors."""
    a = vectors / np.linalg.norm(vectors, axis=0, keepdims=True)
    b = reference / np.linalg.norm(reference, axis=0, keepdims=True)
    return np.degrees(np.arccos(np.clip((a * b).sum(axis=0), -1.0, 1.0)))


def normalise(images, reference: StainReference) -> Normalised:
    """Every image of `images` (uint8 N, H, W, 3) normalised to `reference`; those where the method fails
    are returned as they were and flagged, so a test set keeps all its images and its size."""
    a = _check_images(images, "stain normalisation")
    norm = reference.normaliser()
    out = np.empty(a.shape, np.uint8)
    fell_back = np.zeros(len(a), bool)
    for i in range(len(a)):
        img = np.ascontiguousarray(a[i])
        res = _normalise_one(norm, reference, img)
        if res is None:
            out[i], fell_back[i] = img, True
        else:
            out[i] = res
    return Normalised(out, fell_back)


def _torchstain_version() -> str:
    """The installed distribution's version (torchstain.__version__ lags behind its releases)."""
    _torchstain()
    try:
        return metadata.version("torchstain")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source checkout on the path
        return "unknown"


def reference_key(reference: StainReference) -> str:
    """A short hash of everything a normalised image depends on: method, reference, constants, versions."""
    h = hashlib.sha256(f"v{VERSION} {reference.method} {IO} {ALPHA} {BETA} {BACKGROUND_PERCENTILE} "
                       f"{MIN_STAINED} {MIN_SPREAD} {MIN_BACKGROUND} {MIN_LAB_STD} "
                       f"torchstain={_torchstain_version()}".encode())
    for k in sorted(reference.values):
        h.update(k.encode() + np.ascontiguousarray(reference.values[k], np.float64).tobytes())
    return h.hexdigest()[:12]


def normalised_dataset(ds: Dataset, images: np.ndarray, reference: StainReference) -> Normalised:
    """`normalise(images, reference)` for the decoded images of `ds`, cached beside the decoded-image cache:
    the result is the same for every run and seed, and Macenko manages only ~40 images/s on 2 cores."""
    return cached_normalised(ds, images, f"{reference.method}-{reference_key(reference)}",
                             lambda a: normalise(a, reference))


def cached_normalised(ds: Dataset, images: np.ndarray, tag: str, compute) -> Normalised:
    """compute(images) -> Normalised, cached on disk under the decoded-image cache of `ds` by `tag` (which must
    name everything the result depends on). One file holds the images and then the fell-back flags, written
    atomically, so a cache is whole or absent."""
    a = _check_images(images, f"stain normalisation of {ds.name!r}")
    base = cache_path(ds, a.shape[1])
    path = base.with_name(f"{base.stem}-{tag}.u8")
    n_px = int(np.prod(a.shape))
    if path.is_file() and path.stat().st_size == n_px + len(a):
        return Normalised(np.memmap(path, np.uint8, "r", shape=a.shape),
                          np.fromfile(path, np.uint8, offset=n_px).astype(bool))
    out = compute(a)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(out.images.tobytes())
            f.write(out.fell_back.astype(np.uint8).tobytes())
    return out
