"""What each remedy of the converged pretrained study costs on the training lab's own images, for the methods
page: a remedy that raises a new lab's score is only worth having if it does not break the lab it came from.

Training-time remedies (BN frozen, frozen BN with the last stages trained, the augmentations) are the arm's
standard `pbc:test` score minus the BN fine-tuned arm's, paired by seed; test-time methods are the method minus
the standard evaluation of the same run. Means over seeds with their 95% Student-t interval, in the plan's
primary metric."""
from __future__ import annotations

import pandas as pd

from wbcbench.analysis import pretrained_v2 as V2
from wbcbench.analysis.pretrained_study import LITE
from wbcbench.analysis.stats import mean_ci
from wbcbench.analysis.verdict import PRIMARY_METRIC, variant
from wbcbench.core.names import IN_DOMAIN, STANDARD, method_label
from wbcbench.report.run_tables import method_gains
from wbcbench.report.tables import fmt_gain
from wbcbench.report.words import AUGMENTS, arm_parts

COLUMNS = ["remedy", "kind", "network", "change", "lo", "hi", "seeds"]
#: the training choices each network was trained with, besides BN fine-tuned (suffix or augmentation)
TRAINING_REMEDIES = (("_freezebn", ""), ("_freezebn_last", ""), ("", "colour"), ("", "scale"), ("", "colour+scale"))


def _standard(v2: pd.DataFrame, arm: str, test: str, metric: str) -> pd.Series:
    """seed -> `arm`'s standard score on `test` (a seed run twice averaged)."""
    g = v2[(v2["model"] == arm) & (v2["eval_mode"] == STANDARD) & (v2["test_set"] == test)]
    return pd.to_numeric(g[metric], errors="coerce").groupby(g["seed"]).mean().dropna()


def _row(remedy: str, kind: str, network: str, diffs) -> dict:
    c = mean_ci(list(diffs))
    return {"remedy": remedy, "kind": kind, "network": network, "change": c["mean"],
            "lo": c["mean"] - c["ci95"], "hi": c["mean"] + c["ci95"], "seeds": c["n"]}


def home_costs(v2: pd.DataFrame, test: str = IN_DOMAIN, metric: str = PRIMARY_METRIC) -> pd.DataFrame:
    """Per remedy and network, its change of `metric` on `test` against the BN fine-tuned network evaluated the
    standard way (pretrained_v2.v2_runs rows). A remedy without a finished pair has no row."""
    rows = []
    for family in LITE:
        base = _standard(v2, family, test, metric)
        for suffix, augment in TRAINING_REMEDIES:
            arm = variant(family + suffix, augment or None)
            d = (_standard(v2, arm, test, metric) - base).dropna()
            if len(d):
                name = arm_parts(family + suffix)[1] if suffix else AUGMENTS[augment]
                rows.append(_row(name, "training", arm_parts(family)[0], d))
        for method in V2.TEST_METHODS[1:]:
            g = method_gains(v2[v2["model"] == family], method, metric, domains=(test,))
            for r in g.itertuples(index=False):
                rows.append({"remedy": method_label(method), "kind": "test time", "network": arm_parts(family)[0],
                             "change": r.gain, "lo": r.lo, "hi": r.hi, "seeds": r.seeds})
    return pd.DataFrame(rows, columns=COLUMNS)


def home_cost_table(costs: pd.DataFrame) -> pd.DataFrame:
    """home_costs as remedy x network cells '-1.2 [-2.0, -0.4] (5 seeds)' or '+0.4 (1 seed)' (change in pp,
    interval), remedies in the order they were computed, '–' where a network lacks the remedy or has no pair."""
    if costs is None or not len(costs):
        return pd.DataFrame()
    def cell(c, lo, hi, n):   # a change that rounds to zero reads +0.0, never -0.0
        text = f"{fmt_gain(c, lo, hi)} ({n} seeds)" if n > 1 else f"{c * 100:+.1f} (1 seed)"
        return "+0.0" + text[4:] if text.startswith("-0.0") else text

    cells = costs.assign(cell=[cell(*r) for r in zip(costs["change"], costs["lo"], costs["hi"], costs["seeds"])])
    order = list(dict.fromkeys(zip(cells["kind"], cells["remedy"])))
    wide = cells.pivot_table(index=["kind", "remedy"], columns="network", values="cell", aggfunc="first")
    networks = [n for n in (arm_parts(f)[0] for f in LITE) if n in wide.columns]
    wide = wide.loc[order, networks].fillna("–").reset_index()
    wide.columns.name = None
    return wide.rename(columns={"kind": "when"})
