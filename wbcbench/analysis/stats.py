"""Confidence intervals over seeds, differences between two sets of seeds with their t-test p-value
(Student t throughout), and Holm's step-down correction for a family of such tests.

A seed (or a run) is the unit of replication: every interval and test here is over seeds, never over
test images.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

NAN = float("nan")


def mean_ci(values, confidence: float = 0.95) -> dict:
    """Mean, half-width of the Student-t confidence interval, and standard error over seeds; None and NaN
    values are left out. With one value the interval is undefined (nan)."""
    v = np.asarray([x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))], float)
    n = len(v)
    if n == 0:
        return {"mean": NAN, "ci95": NAN, "sem": NAN, "n": 0}
    mean = float(v.mean())
    if n == 1:
        return {"mean": mean, "ci95": NAN, "sem": NAN, "n": 1}
    sem = float(v.std(ddof=1) / math.sqrt(n))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1) * sem)
    return {"mean": mean, "ci95": half, "sem": sem, "n": n}


def _t_pvalue(diff: float, sem: float, dof: float) -> float:
    """Two-sided p of t = diff / sem. No spread at all (sem 0) makes t infinite (p 0) unless the difference
    is 0 too (p 1): scipy would answer nan there, and "every seed moved by the same amount" is a result."""
    if math.isnan(diff) or math.isnan(sem) or math.isnan(dof):
        return NAN
    if sem == 0:
        return 1.0 if diff == 0 else 0.0
    return float(2 * stats.t.sf(abs(diff / sem), dof))


def _paired(a: pd.Series, b: pd.Series, confidence: float) -> dict:
    shared = sorted(set(a.index) & set(b.index))
    d = a.loc[shared].to_numpy(dtype=float) - b.loc[shared].to_numpy(dtype=float)
    d = d[~np.isnan(d)]
    c = mean_ci(d, confidence)
    dof = float(c["n"] - 1) if c["n"] >= 2 else NAN
    return {"test": "paired t", "n": c["n"], "diff": c["mean"], "ci95": c["ci95"], "df": dof,
            "p": _t_pvalue(c["mean"], c["sem"], dof)}


def _welch(a: pd.Series, b: pd.Series, confidence: float) -> dict:
    na, nb = len(a), len(b)
    out = {"test": "Welch t", "n": min(na, nb), "diff": float(a.mean() - b.mean()) if na and nb else NAN,
           "ci95": NAN, "df": NAN, "p": NAN}
    if na < 2 or nb < 2:
        return out
    sa, sb = float(a.var(ddof=1)) / na, float(b.var(ddof=1)) / nb
    if sa + sb == 0:  # no spread on either side: the difference is exact
        return {**out, "df": float(na + nb - 2), "ci95": 0.0, "p": _t_pvalue(out["diff"], 0.0, na + nb - 2)}
    dof = (sa + sb) ** 2 / ((sa ** 2 / (na - 1) if sa else 0.0) + (sb ** 2 / (nb - 1) if sb else 0.0))
    se = math.sqrt(sa + sb)
    return {**out, "df": float(dof), "ci95": float(stats.t.ppf(0.5 + confidence / 2, dof) * se),
            "p": _t_pvalue(out["diff"], se, dof)}


def compare(a, b, paired: bool = False, confidence: float = 0.95) -> dict:
    """Difference of means a - b with its Student-t confidence interval.

    `a`, `b`: one value per seed (a pd.Series indexed by seed, or a sequence: seeds 0, 1, ...).
    paired: a paired t over the per-seed differences of the seeds both sides have (the same trained
    networks evaluated two ways); else Welch's t (unequal variances, Welch-Satterthwaite degrees of
    freedom). Returns test, n (pairs, or the smaller side), diff, ci95 (half-width), lo, hi, df and p (the
    two-sided t-test of diff = 0); interval and p are nan with fewer than 2 pairs (2 seeds a side)."""
    a, b = (x if isinstance(x, pd.Series) else pd.Series(np.asarray(x, dtype=float)) for x in (a, b))
    out = (_paired if paired else _welch)(a, b, confidence)
    return {**out, "lo": out["diff"] - out["ci95"], "hi": out["diff"] + out["ci95"]}


def holm(pvalues) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order: the i-th smallest of m p-values becomes
    max over j <= i of min(1, (m - j + 1) * p_(j)). Rejecting where the adjusted p < alpha keeps the
    family-wise error rate at alpha for any dependence between the tests. NaN (a test not made) stays NaN
    and is not counted in m."""
    p = [float(x) if x is not None else NAN for x in pvalues]
    idx = sorted((i for i, x in enumerate(p) if not math.isnan(x)), key=lambda i: p[i])
    m, out, running = len(idx), [NAN] * len(p), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out
