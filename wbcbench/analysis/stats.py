"""Confidence intervals over seeds, differences between two sets of seeds with their t-test p-value, and
Holm's step-down correction for a family of such tests: a thin layer over scipy.stats (ttest_1samp,
ttest_rel, ttest_ind and their confidence_interval) that fixes the return shapes the studies read.

A seed (or a run) is the unit of replication: every interval and test here is over seeds, never over
test images.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

NAN = float("nan")


def _quiet(test, *args, **kwargs):
    """scipy warns of precision loss when the values are (nearly) identical, which seed-level scores on a
    finite test set often are; the result is still the t-test's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return test(*args, **kwargs)


def _half_width(result, centre: float, confidence: float) -> float:
    return float(result.confidence_interval(confidence).high - centre)


def mean_ci(values, confidence: float = 0.95) -> dict:
    """Mean, half-width of the Student-t confidence interval, and standard error over seeds; None and NaN
    values are left out. With one value the interval is undefined (nan)."""
    v = np.asarray([NAN if x is None else x for x in values], float)
    v = v[~np.isnan(v)]
    n = len(v)
    if n < 2:
        return {"mean": float(v.mean()) if n else NAN, "ci95": NAN, "sem": NAN, "n": n}
    mean = float(v.mean())
    return {"mean": mean, "ci95": _half_width(_quiet(stats.ttest_1samp, v, 0.0), mean, confidence),
            "sem": float(stats.sem(v)), "n": n}


def _p(result) -> float:
    """The two-sided p; scipy's nan for t = 0/0 (no spread and no difference at all) becomes 1: the
    observation is the null hypothesis itself, and the test stays in its Holm family. No spread with a
    difference is scipy's t = +-inf, p = 0."""
    p = float(result.pvalue)
    return 1.0 if math.isnan(p) else p


def _paired(a: pd.Series, b: pd.Series, confidence: float) -> dict:
    shared = sorted(set(a.index) & set(b.index))
    x, y = a.loc[shared].to_numpy(dtype=float), b.loc[shared].to_numpy(dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    out = {"test": "paired t", "n": len(x), "diff": float((x - y).mean()) if len(x) else NAN, "ci95": NAN,
           "df": NAN, "p": NAN}
    if len(x) < 2:
        return out
    r = _quiet(stats.ttest_rel, x, y)
    return {**out, "ci95": _half_width(r, out["diff"], confidence), "df": float(r.df), "p": _p(r)}


def _welch(a: pd.Series, b: pd.Series, confidence: float) -> dict:
    x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
    out = {"test": "Welch t", "n": min(len(x), len(y)), "diff": float(x.mean() - y.mean()) if len(x) and len(y)
           else NAN, "ci95": NAN, "df": NAN, "p": NAN}
    if len(x) < 2 or len(y) < 2:
        return out
    r = _quiet(stats.ttest_ind, x, y, equal_var=False)
    return {**out, "ci95": _half_width(r, out["diff"], confidence), "df": float(r.df), "p": _p(r)}


def compare(a, b, paired: bool = False, confidence: float = 0.95) -> dict:
    """Difference of means a - b with its Student-t confidence interval.

    `a`, `b`: one value per seed (a pd.Series indexed by seed, or a sequence: seeds 0, 1, ...).
    paired: scipy's ttest_rel over the seeds both sides have, pairs with a NaN left out (the same trained
    networks evaluated two ways); else scipy's Welch ttest_ind (unequal variances, Welch-Satterthwaite
    degrees of freedom). Returns test, n (pairs, or the smaller side), diff, ci95 (half-width), lo, hi, df
    and p (two-sided, of diff = 0); interval and p are nan with fewer than 2 pairs (2 seeds a side)."""
    a, b = (x if isinstance(x, pd.Series) else pd.Series(np.asarray(x, dtype=float)) for x in (a, b))
    out = (_paired if paired else _welch)(a, b, confidence)
    return {**out, "lo": out["diff"] - out["ci95"], "hi": out["diff"] + out["ci95"]}


def holm(pvalues) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order: the i-th smallest of m p-values becomes
    max over j <= i of min(1, (m - j + 1) * p_(j)). Rejecting where the adjusted p < alpha keeps the
    family-wise error rate at alpha for any dependence between the tests. NaN (a test not made) stays NaN
    and is not counted in m. (scipy has only Benjamini-Hochberg, false_discovery_control.)"""
    p = [float(x) if x is not None else NAN for x in pvalues]
    idx = sorted((i for i, x in enumerate(p) if not math.isnan(x)), key=lambda i: p[i])
    m, out, running = len(idx), [NAN] * len(p), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out
