"""Intervals and differences over seeds (wbcbench.stats) against numbers worked out by hand; scipy is
only used for the t quantile."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats as st

from wbcbench.stats import compare, mean_ci


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


def test_no_interval_without_two_seeds_a_side_and_zero_spread_is_exact():
    r = compare([0.9], [0.2, 0.3])
    assert r["diff"] == pytest.approx(0.65) and math.isnan(r["ci95"]) and math.isnan(r["lo"])
    assert math.isnan(compare([], [0.2, 0.3])["diff"])
    one = compare(pd.Series([0.7], index=[4]), pd.Series([0.6], index=[4]), paired=True)
    assert one["n"] == 1 and one["diff"] == pytest.approx(0.1) and math.isnan(one["ci95"]) and math.isnan(one["df"])
    z = compare([0.5, 0.5], [0.25, 0.25, 0.25])
    assert z["ci95"] == 0.0 and z["df"] == 3.0 and z["lo"] == z["hi"] == pytest.approx(0.25)
