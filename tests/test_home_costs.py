"""What each remedy costs at home (wbcbench.report.home_costs) against its definition, on a hand-made collect()
table: training remedies paired by seed against the BN fine-tuned arm, test-time methods against the standard
evaluation of the same run, means and Student-t intervals over seeds."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from wbcbench.analysis.verdict import PRIMARY_METRIC
from wbcbench.report.home_costs import home_cost_table, home_costs

LITE0 = "efficientnet_lite0"


def _rows(model, seed, scores):
    """collect() rows of one run: {(test_set, eval_mode): score}."""
    return [{"model": model, "seed": seed, "run_dir": f"{model}-s{seed}", "test_set": t, "eval_mode": m,
             PRIMARY_METRIC: v} for (t, m), v in scores.items()]


@pytest.fixture
def table():
    rows = []
    base = {0: 0.98, 1: 0.97, 2: 0.99}
    for s, b in base.items():
        rows += _rows(LITE0, s, {("pbc:test", "standard"): b, ("pbc:test", "adabn"): b - 0.01 * (s + 1),
                                 ("lisc", "standard"): 0.5, ("lisc", "adabn"): 0.7})
        rows += _rows(f"{LITE0}_freezebn", s, {("pbc:test", "standard"): b + 0.005})
    rows += _rows(f"{LITE0}+colour", 0, {("pbc:test", "standard"): 0.90})     # one seed only
    rows += _rows(f"{LITE0}+colour", 7, {("pbc:test", "standard"): 0.10})     # a seed the base lacks
    return pd.DataFrame(rows)


def test_training_remedies_are_paired_by_seed_with_the_bn_fine_tuned_arm(table):
    c = home_costs(table).set_index(["remedy", "network"])
    frozen = c.loc[("BN frozen", "EfficientNet-Lite0")]
    assert frozen["kind"] == "training" and frozen["seeds"] == 3
    assert frozen["change"] == pytest.approx(0.005) and frozen["lo"] == pytest.approx(0.005)  # no spread
    colour = c.loc[("colour jitter", "EfficientNet-Lite0")]
    assert colour["seeds"] == 1 and colour["change"] == pytest.approx(0.90 - 0.98) and np.isnan(colour["lo"])


def test_test_time_methods_are_the_method_minus_the_standard_evaluation_of_the_same_run(table):
    c = home_costs(table).set_index(["remedy", "network"]).loc[("AdaBN", "EfficientNet-Lite0")]
    d = np.array([-0.01, -0.02, -0.03])
    half = stats.t.ppf(0.975, 2) * stats.sem(d)
    assert c["kind"] == "test time" and c["seeds"] == 3
    assert c["change"] == pytest.approx(d.mean()) and c["hi"] - c["lo"] == pytest.approx(2 * half)
    # only the home domain counts: LISC's +20 points is not a cost
    assert not (home_costs(table)["change"] > 0.1).any()


def test_the_table_has_a_cell_per_remedy_and_network_and_a_dash_where_none(table):
    t = home_cost_table(home_costs(table))
    assert list(t.columns) == ["when", "remedy", "EfficientNet-Lite0"]
    cells = t.set_index("remedy")["EfficientNet-Lite0"]
    assert cells["colour jitter"] == "-8.0 (1 seed)"
    assert cells["AdaBN"].startswith("-2.0 [") and cells["AdaBN"].endswith("(3 seeds)")
    lite2 = pd.concat([table, pd.DataFrame(_rows("efficientnet_lite2", 0, {("pbc:test", "standard"): 0.9,
                                                                             ("pbc:test", "tent"): 0.9}))])
    wide = home_cost_table(home_costs(lite2)).set_index("remedy")
    assert wide.loc["colour jitter", "EfficientNet-Lite2"] == "–"
    assert wide.loc["TENT", "EfficientNet-Lite2"] == "+0.0 (1 seed)"
    assert home_cost_table(home_costs(table.iloc[:0])).empty
    tiny = pd.DataFrame(_rows(LITE0, 5, {("pbc:test", "standard"): 0.9, ("pbc:test", "tent"): 0.8996}))
    assert home_cost_table(home_costs(tiny)).set_index("remedy").loc["TENT", "EfficientNet-Lite0"] == "+0.0 (1 seed)"
