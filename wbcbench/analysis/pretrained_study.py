"""The pretrained study (notebooks/07_pretrained, 08_new_lab): the paper's claims on ImageNet EfficientNet-Lite
networks, and the recipe to deploy in a new lab, by the addendum of the analysis plan
(book/analysis_plan.md) and by nothing else. The rules of the plan are the constants and functions here,
on top of wbcbench.analysis.cpu_study's paired tests, Holm and words.

A *recipe* is (training-time augmentation, test-time method) on EfficientNet-Lite0 with BN fine-tuned. The
recommendation for a lab is chosen on the other shifted domains only (leave one domain out), so its score
on the held-out domain estimates what it gains in a lab it has never seen.
"""
from __future__ import annotations

import shlex

import pandas as pd

from wbcbench.analysis.stats import compare
from wbcbench.analysis.verdict import (
    PRIMARY_METRIC,
    ROBUSTNESS,
    SCORE,
    TEST_TIME,
    Claim,
    grid_runs,
    variant,
    verdict_table,
)
from wbcbench.core.names import IN_DOMAIN, SHIFTED_DOMAINS, STANDARD, row_label
from wbcbench.sweep.grids import REMEDIES, get_grid

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
MAX_IN_DOMAIN_COST = 0.02                                # a recipe may lose at most 2 points on pbc:test
RECIPES = tuple((variant(BASE, a), m) for a in TRAINING for m in TEST_METHODS)
PLAIN = RECIPES[0]
RECIPE_BY_LABEL = {row_label(m, mode): (m, mode) for m, mode in RECIPES}  # 'efficientnet_lite0+hed + TENT' -> ...
RECIPE_CLAIM = Claim("R", "the recipe scores higher in a new lab than the plain recipe", SCORE,
                     tuple((*r, *PLAIN) for r in RECIPES[1:]))


def pretrained_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The cpu-pretrained grid's rows of a collect() table, `model` as its variant (efficientnet_lite0+hed)."""
    return grid_runs(runs, GRID)


def verdict(runs: pd.DataFrame) -> pd.DataFrame:
    """study.verdict_table for the claims P1-P4 on the grid's runs."""
    return verdict_table(pretrained_runs(runs), CLAIMS, grid=None)


def recipe_tests(runs: pd.DataFrame) -> pd.DataFrame:
    """Every recipe against the plain one on each shifted domain (score on the domain, paired by seed), one
    Holm family: study.verdict_table's rows and words."""
    return verdict_table(pretrained_runs(runs), (RECIPE_CLAIM,), grid=None)


def recipe_means(runs: pd.DataFrame) -> pd.DataFrame:
    """Per recipe (rows, in RECIPES order, label as index) and domain (columns: pbc:test, then the shifted
    domains): the primary metric's mean over seeds (a seed run twice averaged first); 'seeds': the fewest
    seeds of any domain."""
    r = pretrained_runs(runs)
    rows = {}
    for model, mode in RECIPES:
        g = r[(r["model"] == model) & (r["eval_mode"] == mode)]
        per = g.groupby(["test_set", "seed"])[PRIMARY_METRIC].mean().groupby("test_set")
        means, seeds = per.mean(), per.size()
        rows[row_label(model, mode)] = {**{d: means.get(d) for d in (IN_DOMAIN, *SHIFTED_DOMAINS)},
                                        "seeds": int(seeds.min()) if len(seeds) else 0}
    return pd.DataFrame.from_dict(rows, orient="index", columns=[IN_DOMAIN, *SHIFTED_DOMAINS, "seeds"])


def choose(means: pd.DataFrame, domains) -> str | None:
    """The plan's choice: the recipe with the highest mean of its domain means over `domains`, among those
    with every one of them and an in-domain mean at most MAX_IN_DOMAIN_COST below the plain recipe's; the
    earlier recipe on a tie. None when no recipe qualifies (the plain one not run yet, say)."""
    plain = means.loc[row_label(*PLAIN), IN_DOMAIN] if row_label(*PLAIN) in means.index else float("nan")
    if pd.isna(plain):
        return None
    best, best_score = None, float("-inf")
    for label, row in means.iterrows():
        scores = row[list(domains)]
        if scores.isna().any() or pd.isna(row[IN_DOMAIN]) or row[IN_DOMAIN] < plain - MAX_IN_DOMAIN_COST:
            continue
        if scores.mean() > best_score:
            best, best_score = label, scores.mean()
    return best


def _per_seed(runs: pd.DataFrame, label: str, domain: str) -> pd.Series:
    model, mode = RECIPE_BY_LABEL[label]
    g = runs[(runs["model"] == model) & (runs["eval_mode"] == mode) & (runs["test_set"] == domain)]
    return g.groupby("seed")[PRIMARY_METRIC].mean()


def held_out(runs: pd.DataFrame) -> pd.DataFrame:
    """Leave one shifted domain out: per domain, the recipe chosen on the other three, its score there and
    the plain recipe's, and the paired gain (mean over seeds, 95% t-interval)."""
    means, r = recipe_means(runs), pretrained_runs(runs)
    rows = []
    for d in SHIFTED_DOMAINS:
        label = choose(means, [x for x in SHIFTED_DOMAINS if x != d])
        row = {"held-out domain": d, "chosen on the other three": label or "–"}
        if label is not None:
            c = compare(_per_seed(r, label, d), _per_seed(r, row_label(*PLAIN), d), paired=True)
            row.update({"score": means.loc[label, d], "plain": means.loc[row_label(*PLAIN), d], "gain": c["diff"],
                        "lo": c["lo"], "hi": c["hi"], "seeds": c["n"]})
        rows.append(row)
    return pd.DataFrame(rows, columns=["held-out domain", "chosen on the other three", "score", "plain", "gain",
                                       "lo", "hi", "seeds"])


def deploy_command(label: str, images: str = "YOUR_IMAGES", out: str = "predictions.csv") -> str:
    """The one command that trains `label`'s network with the study's profile and applies it, with its
    test-time method, to a folder of unlabelled images (`wbcbench train` prints the run folder last)."""
    model, mode = RECIPE_BY_LABEL[label]
    base, _, augment = model.partition("+")
    train = ["wbcbench", "train", "--model", base, "--profile", get_grid(GRID)["profile"], "--seed", "0",
             "--test", IN_DOMAIN, "--quiet", "--out", "runs"] + (["--augment", augment] if augment else [])
    predict = ["--images", images, "--out", out] + ([] if mode == STANDARD else ["--adapt", mode])
    return f'wbcbench predict --checkpoint "$({shlex.join(train)} | tail -n 1)" {shlex.join(predict)}'


def recommendation(runs: pd.DataFrame) -> dict:
    """The recipe chosen on all four shifted domains, whether the Holm family supports it (>= 1 'holds' and
    no 'contradicted' among its gains), and its command; recipe None before the plain recipe has runs."""
    label = choose(recipe_means(runs), SHIFTED_DOMAINS)
    if label is None:
        return {"recipe": None, "supported": False, "words": {}, "command": None}
    tests = recipe_tests(runs)
    mine = tests[tests["label_a"] == label]
    words = dict(zip(mine["test_set"], mine["word"]))
    supported = label != row_label(*PLAIN) and "holds" in words.values() and "contradicted" not in words.values()
    return {"recipe": label, "supported": supported, "words": words, "command": deploy_command(label)}


RUN_BUDGET_S = 240.0  # the bound on one run (training and every evaluation), in seconds
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
