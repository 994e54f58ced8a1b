"""Intervals and differences over seeds (wbcbench.analysis.stats, a layer over scipy.stats) against numbers
worked out by hand (scipy gives the t quantile), the zero-spread edge and what the verdict engine makes of it,
and Holm against the textbook."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from runfolders import runs_frame
from scipy import stats as st

from wbcbench.analysis import verdict
from wbcbench.analysis.stats import compare, holm, mean_ci


def test_mean_ci_student_t():
    s = mean_ci([0.8, 0.9, 1.0])
    # sd = 0.1, sem = 0.1/sqrt(3), t_{0.975, 2} = 4.302653
    assert s["mean"] == pytest.approx(0.9)
    assert s["sem"] == pytest.approx(0.1 / math.sqrt(3))
    assert s["ci95"] == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-5)
    assert math.isnan(mean_ci([0.5])["ci95"]) and mean_ci([])["n"] == 0


def test_mean_ci_leaves_out_missing_values_and_takes_the_confidence():
    s = mean_ci([0.8, None, float("nan"), 1.0], confidence=0.9)
    # two values: mean 0.9, sd 0.141421, sem 0.1, t_{0.95, 1} = 6.313752
    assert s["n"] == 2 and s["mean"] == pytest.approx(0.9)
    assert s["ci95"] == pytest.approx(6.313752 * 0.1, rel=1e-5)


def test_welch_by_hand():
    # a: 0.6, 0.7, 0.8 -> mean 0.70, sample variance 0.01; b: 0.3, 0.4 -> mean 0.35, sample variance 0.005
    r = compare([0.6, 0.7, 0.8], [0.3, 0.4])
    se2 = 0.01 / 3 + 0.005 / 2
    dof = se2 ** 2 / ((0.01 / 3) ** 2 / 2 + 0.0025 ** 2)  # Welch-Satterthwaite: 2.8824
    assert dof == pytest.approx(2.8824, abs=1e-4)
    half = st.t.ppf(0.975, dof) * math.sqrt(se2)
    assert r["test"] == "Welch t" and r["n"] == 2
    assert r["diff"] == pytest.approx(0.35) and r["df"] == pytest.approx(dof) and r["ci95"] == pytest.approx(half)
    assert (r["lo"], r["hi"]) == (pytest.approx(0.35 - half), pytest.approx(0.35 + half))


def test_paired_uses_only_the_shared_seeds():
    a = pd.Series([0.6, 0.65, 0.8], index=[0, 1, 2])
    b = pd.Series([0.5, 0.6, 0.7, 0.9], index=[0, 1, 2, 3])   # seed 3 has no partner: left out
    r = compare(a, b, paired=True)
    # differences 0.1, 0.05, 0.1: mean 0.083333, sd 0.028868, se 0.016667, t(0.975, 2) = 4.302653
    assert r["test"] == "paired t" and r["n"] == 3 and r["df"] == 2
    assert r["diff"] == pytest.approx(0.083333, abs=1e-6)
    assert r["ci95"] == pytest.approx(4.302653 * 0.016667, abs=1e-5)
    assert r["lo"] == pytest.approx(0.011622, abs=1e-5)
    # Welch over all seeds of the same numbers: a wider interval that includes 0
    w = compare(a, b)
    assert w["test"] == "Welch t" and w["lo"] < 0 < w["hi"]


def test_no_interval_without_two_seeds_a_side():
    r = compare([0.9], [0.2, 0.3])
    assert r["diff"] == pytest.approx(0.65) and math.isnan(r["ci95"]) and math.isnan(r["lo"])
    assert math.isnan(r["p"]) and math.isnan(r["df"])
    assert math.isnan(compare([], [0.2, 0.3])["diff"])
    one = compare(pd.Series([0.7], index=[4]), pd.Series([0.6], index=[4]), paired=True)
    assert one["n"] == 1 and one["diff"] == pytest.approx(0.1) and math.isnan(one["ci95"]) and math.isnan(one["df"])
    assert math.isnan(one["p"])


def test_p_values_are_scipys_t_tests():
    a, b = [0.6, 0.65, 0.8, 0.71], [0.5, 0.6, 0.7, 0.69]
    assert compare(a, b, paired=True)["p"] == pytest.approx(st.ttest_rel(a, b).pvalue)
    assert compare(a, [0.3, 0.4, 0.45])["p"] == pytest.approx(st.ttest_ind(a, [0.3, 0.4, 0.45], equal_var=False).pvalue)
    # by hand: differences 0.1, 0.05, 0.1 -> t = 0.083333 / 0.016667 = 5.0 on 2 df, two-sided p = 0.037750
    assert compare([0.6, 0.65, 0.8], [0.5, 0.6, 0.7], paired=True)["p"] == pytest.approx(0.037750, abs=1e-6)
    assert math.isnan(compare([0.6], [0.5], paired=True)["p"]) and math.isnan(compare([0.6], [0.5, 0.4])["p"])
    # NaN values are left out of the pairs, not propagated
    r = compare(pd.Series([0.6, float("nan"), 0.8, 0.7]), pd.Series([0.5, 0.5, 0.6, 0.65]), paired=True)
    assert r["n"] == 3 and r["p"] == pytest.approx(st.ttest_rel([0.6, 0.8, 0.7], [0.5, 0.6, 0.65]).pvalue)


def test_zero_spread_paired_difference():
    """Every seed moved by exactly the same amount: the differences have no spread and t = diff / 0.
    scipy's answer, kept: t = +-inf, p = 0, a zero-width interval; it is the limit of the same differences up to
    float noise, which give an ordinary tiny p. No difference at all is t = 0/0 (scipy: nan); compare says
    p = 1 there, so that the comparison stays in its claim's Holm family."""
    a, b = [0.75, 0.5, 0.25], [0.5, 0.25, 0.0]  # binary fractions: every difference is exactly 0.25
    assert (np.subtract(a, b) == 0.25).all() and st.sem(np.subtract(a, b)) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's precision-loss warning is not passed on
        r = compare(a, b, paired=True)
    assert (r["n"], r["df"], r["diff"], r["ci95"], r["lo"], r["hi"], r["p"]) == (3, 2.0, 0.25, 0.0, 0.25, 0.25, 0.0)
    with pytest.warns(RuntimeWarning, match="Precision loss"):
        assert r["p"] == st.ttest_rel(a, b).pvalue
    # 0.1 each up to float noise (sem 3.7e-17): not the zero-spread case, the same verdict
    near = compare([0.6, 0.7, 0.8], [0.5, 0.6, 0.7], paired=True)
    assert st.sem(np.subtract([0.6, 0.7, 0.8], [0.5, 0.6, 0.7])) > 0 and 0 < near["p"] < 1e-20
    assert math.isnan(st.ttest_rel([0.6, 0.7], [0.6, 0.7]).pvalue)
    none = compare([0.6, 0.7], [0.6, 0.7], paired=True)
    assert (none["diff"], none["ci95"], none["p"]) == (0.0, 0.0, 1.0)
    # Welch: no spread on either side; the Welch-Satterthwaite df is 0/0, which scipy reports as 1
    w = compare([0.5, 0.5], [0.25, 0.25, 0.25])
    assert (w["diff"], w["ci95"], w["lo"], w["hi"], w["p"], w["df"]) == (0.25, 0.0, 0.25, 0.25, 0.0, 1.0)
    assert compare([0.5, 0.5], [0.5, 0.5, 0.5])["p"] == 1.0
    assert mean_ci([0.25] * 4) == {"mean": 0.25, "ci95": 0.0, "sem": 0.0, "n": 4}


def test_verdict_engine_on_zero_spread():
    """What the verdict engine does with the zero-spread cases: a gain of exactly 0.25 on every seed holds
    (p 0); no difference on any seed is inconclusive with p 1 and counts in Holm's m, which here keeps a third
    comparison (raw p 0.0378) from holding: 2 x 0.0378 > 0.05, where leaving it out (nan) would give 1 x."""
    base = np.array([0.25, 0.5, 0.375])
    rows = [("base", "standard", "lisc", s, v) for s, v in enumerate(base)]
    for model, gain in (("exact", [0.25] * 3), ("same", [0.0] * 3), ("noisy", [0.1, 0.05, 0.1])):
        rows += [(model, "standard", "lisc", s, v) for s, v in enumerate(base + gain)]
    claim = verdict.Claim("z", "each beats base", verdict.SCORE,
                          tuple((m, "standard", "base", "standard") for m in ("exact", "same", "noisy")))
    v = verdict.verdict_table(runs_frame(rows), [claim], grid=None, domains=("lisc",)).set_index("a")
    assert v.loc["exact", ["n", "effect", "lo", "hi", "p", "p_holm", "word"]].tolist() == [
        3, 0.25, 0.25, 0.25, 0.0, 0.0, "holds"]
    assert v.loc["same", ["effect", "p", "p_holm", "word"]].tolist() == [0.0, 1.0, 1.0, "inconclusive"]
    p_noisy = st.ttest_rel(base + [0.1, 0.05, 0.1], base).pvalue
    assert v.loc["noisy", "p"] == pytest.approx(p_noisy) and p_noisy < verdict.ALPHA
    assert v.loc["noisy", "p_holm"] == pytest.approx(2 * p_noisy) and v.loc["noisy", "word"] == "inconclusive"


def test_holm_by_hand():
    # the textbook example (Holm 1979 as in Wikipedia's "Holm-Bonferroni method"): at alpha 0.05, H4 (0.005 <
    # 0.05/4) and H1 (0.01 < 0.05/3) are rejected, H3 (0.03 > 0.05/2) is not, and so neither is H2.
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> 0.06, monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [q < 0.05 for q in holm([0.01, 0.04, 0.03, 0.005])] == [True, False, False, True]
    # NaN is a test not made: it stays NaN and does not count in m (m = 3 here); ties: 0.2 x3, 0.2 x2 -> 0.6
    # (monotone), 0.5 x1 -> 0.6
    out = holm([0.5, float("nan"), 0.2, 0.2])
    assert math.isnan(out[1]) and [out[0], *out[2:]] == pytest.approx([0.6, 0.6, 0.6])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # 0.5 x2 = 1.0 (capped), 0.6 x1 -> 1.0 (monotone)
    assert holm([]) == [] and holm([0.03]) == [0.03] and math.isnan(holm([None])[0])


def test_holm_rejects_exactly_as_the_step_down_procedure():
    """Holm (1979): order the p-values, reject H_(1), H_(2), ... while p_(i) <= alpha / (m - i + 1), stop at
    the first that fails. The adjusted p-values must reject exactly those, at every alpha."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = list(rng.uniform(0, 0.1, size=int(rng.integers(1, 9))))
        adj = holm(p)
        for alpha in (0.01, 0.05, 0.1):
            rejected, order = set(), sorted(range(len(p)), key=lambda i: p[i])
            for rank, i in enumerate(order):
                if p[i] > alpha / (len(p) - rank):
                    break
                rejected.add(i)
            assert {i for i, q in enumerate(adj) if q <= alpha} == rejected
        assert all(q >= x for q, x in zip(adj, p))  # never below the raw p-value
