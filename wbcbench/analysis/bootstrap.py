"""Intervals over test images: what the interval over seeds leaves out, the test set's own sampling (CellaVision
has 100 images). A percentile bootstrap (scipy.stats.bootstrap) resamples a domain's images with replacement,
recomputes every run's primary metric on the resample, and averages the paired differences over seeds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from wbcbench.core.classes import CLASSES
from wbcbench.core.errors import WbcError
from wbcbench.core.metrics import MIN_CLASS_SUPPORT

N_RESAMPLES = 2000
SEED = 0
LEVEL = 0.95


def read_predictions(eval_dir) -> pd.DataFrame:
    """An evaluation's predictions.csv (path, label, prediction, ...), sorted by path."""
    path = Path(eval_dir) / "predictions.csv"
    if not path.is_file():
        raise WbcError(f"{path} not found: the bootstrap needs each evaluation's per-image predictions")
    return pd.read_csv(path).sort_values("path", kind="stable").reset_index(drop=True)


def _correct(pred: pd.DataFrame, paths: np.ndarray, where: str) -> np.ndarray:
    if len(pred) != len(paths) or not np.array_equal(pred["path"].to_numpy(), paths):
        raise WbcError(f"{where}: the evaluations of one comparison list different images")
    return (pred["label"].to_numpy() == pred["prediction"].to_numpy()).astype(np.float64)


def paired_interval(pairs, n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL,
                    where: str = "bootstrap") -> tuple[float, float]:
    """(lo, hi) of the mean over seeds of balanced accuracy (classes with >= MIN_CLASS_SUPPORT images in the
    domain) of side a minus side b, from `pairs` = [(predictions a, predictions b), ...], one pair per seed, every
    frame over the same images. One resample of images serves every run, so runs stay paired."""
    pairs = list(pairs)
    if not pairs:
        return float("nan"), float("nan")
    first = pairs[0][0]
    paths, labels = first["path"].to_numpy(), first["label"].to_numpy()
    counts = pd.Series(labels).value_counts()
    classes = [c for c in CLASSES if counts.get(c, 0) >= MIN_CLASS_SUPPORT]
    onehot = np.stack([labels == c for c in classes], axis=1).astype(np.float64)          # images x classes
    diff = np.stack([_correct(a, paths, where) - _correct(b, paths, where) for a, b in pairs])  # seeds x images

    def statistic(idx, axis=-1):
        idx = np.asarray(idx, dtype=np.intp)                 # (..., images): one resample per leading index
        hot = onehot[idx]                                    # (..., images, classes)
        gap = np.moveaxis(diff[:, idx], 0, -2) @ hot         # (..., seeds, classes): summed correct a - b
        with np.errstate(invalid="ignore", divide="ignore"):
            recall_gap = gap / hot.sum(axis=-2)[..., None, :]  # a class absent from a resample: nan, left out
        return np.nanmean(recall_gap, axis=-1).mean(axis=-1)

    res = stats.bootstrap((np.arange(len(paths)),), statistic, vectorized=True, paired=False, batch=100,
                          n_resamples=n_resamples, confidence_level=level, method="percentile",
                          random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
