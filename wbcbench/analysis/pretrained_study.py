"""The pretrained study (notebooks/07_pretrained, 08_new_lab): the paper's claims on ImageNet EfficientNet-Lite
networks, and the recipe to deploy in a new lab, by the addendum of the analysis plan
(book/analysis_plan.md) and by nothing else. The rules of the plan are the constants and functions here,
on top of wbcbench.analysis.cpu_study's paired tests, Holm and words.

A *recipe* is (training-time augmentation, test-time method) on EfficientNet-Lite0 with BN fine-tuned; the rule
that recommends one is wbcbench.analysis.recipes'.
"""
from __future__ import annotations

import pandas as pd

from wbcbench.analysis import recipes
from wbcbench.analysis.verdict import ROBUSTNESS, TEST_TIME, Claim, grid_runs, variant, verdict_table
from wbcbench.core.names import STANDARD
from wbcbench.sweep.grids import REMEDIES

GRID = "cpu-pretrained"
LITE = tuple(f"efficientnet_lite{v}" for v in (0, 1, 2))
CLAIMS = (
    Claim("P1", "BN frozen at ImageNet statistics holds up better than BN fine-tuned", ROBUSTNESS,
          tuple((f"{m}_freezebn", STANDARD, m, STANDARD) for m in LITE)),
    Claim("P2", "frozen BN with only the last stages trained holds up better than BN fine-tuned", ROBUSTNESS,
          tuple((f"{m}_freezebn_last", STANDARD, m, STANDARD) for m in LITE)),
    Claim("P3", "AdaBN recovers accuracy of the fine-tuned BN networks", TEST_TIME,
          tuple((m, "adabn", m, STANDARD) for m in LITE)),
    Claim("P4", "TENT recovers accuracy of the fine-tuned BN networks", TEST_TIME,
          tuple((m, "tent", m, STANDARD) for m in LITE)),
)

BASE = "efficientnet_lite0"
TRAINING = ("none", *REMEDIES)                           # in this order: ties go to the earlier (simpler)
TEST_METHODS = (STANDARD, "adabn", "tent", "macenko", "reinhard")
RULE = recipes.RecipeRule(GRID, tuple((variant(BASE, a), m) for a in TRAINING for m in TEST_METHODS))
RECIPES, PLAIN, RECIPE_BY_LABEL = RULE.recipes, RULE.plain, RULE.by_label
MAX_IN_DOMAIN_COST = RULE.max_in_domain_cost


def pretrained_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The cpu-pretrained grid's rows of a collect() table, `model` as its variant (efficientnet_lite0+hed)."""
    return grid_runs(runs, GRID)


def verdict(runs: pd.DataFrame) -> pd.DataFrame:
    """verdict_table for the claims P1-P4 on the grid's runs."""
    return verdict_table(pretrained_runs(runs), CLAIMS, grid=None)


def recipe_tests(runs: pd.DataFrame) -> pd.DataFrame:
    """recipes.recipe_tests under this study's rule."""
    return recipes.recipe_tests(runs, RULE)


def recipe_means(runs: pd.DataFrame) -> pd.DataFrame:
    """recipes.recipe_means under this study's rule (gate: the recipe's own pbc:test score)."""
    return recipes.recipe_means(runs, RULE)


def choose(means: pd.DataFrame, domains) -> str | None:
    """recipes.choose under this study's rule."""
    return recipes.choose(means, domains, RULE)


def held_out(runs: pd.DataFrame) -> pd.DataFrame:
    """recipes.held_out under this study's rule."""
    return recipes.held_out(runs, RULE)


def deploy_command(label: str, images: str = "YOUR_IMAGES", out: str = "predictions.csv") -> str:
    """recipes.deploy_command under this study's rule."""
    return recipes.deploy_command(label, RULE, images, out)


def recommendation(runs: pd.DataFrame) -> dict:
    """recipes.recommendation under this study's rule."""
    return recipes.recommendation(runs, RULE)


RUN_BUDGET_S = 240.0  # the study's bound on one run (training and every evaluation), in seconds
PILOT_METRIC = "pbc:val balanced accuracy"
PILOT_MARGIN = 0.01  # within 1 point of the best pilot score


def pilot_choice(pilot: pd.DataFrame) -> pd.DataFrame:
    """The plan's budget rule on study_tables.pilot_table's rows: per finished pilot run its cost (training
    images x pixels: subset x 5 classes x epochs x crop^2) and whether it is chosen, the cheapest run within
    PILOT_MARGIN of the best pbc:val balanced accuracy (on equal cost, the higher score). Empty without
    finished runs."""
    done = pilot[pilot["status"] == "done"].dropna(subset=[PILOT_METRIC]).copy() if len(pilot) else pilot
    if not len(done):
        return pd.DataFrame(columns=[*pilot.columns, "cost (Mpx)", "chosen"])
    done["cost (Mpx)"] = (done["train subset (images/class)"] * 5 * done["epochs"] * done["crop px"] ** 2) / 1e6
    ok = done[done[PILOT_METRIC] >= done[PILOT_METRIC].max() - PILOT_MARGIN]
    done["chosen"] = done.index == ok.sort_values(["cost (Mpx)", PILOT_METRIC], ascending=[True, False]).index[0]
    return done.reset_index(drop=True)
