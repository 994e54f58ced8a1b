"""The recommendation for a new lab, by the analysis plan: a *recipe* is a trained arm with a test-time method;
the recipe for a lab is chosen on the other shifted domains only (leave one domain out), so its score on the
held-out domain estimates what it gains in a lab it has never seen. One rule object per study
(pretrained_study's low-budget rule, pretrained_v2's rule) holds its recipes and its in-domain gate."""
from __future__ import annotations

import shlex
from dataclasses import dataclass

import pandas as pd

from wbcbench.analysis.stats import compare
from wbcbench.analysis.verdict import PRIMARY_METRIC, SCORE, Claim, grid_runs, verdict_table
from wbcbench.core.names import IN_DOMAIN, SHIFTED_DOMAINS, STANDARD, row_label
from wbcbench.sweep.grids import get_grid


@dataclass(frozen=True)
class RecipeRule:
    """`recipes`: (variant, test-time mode) in preference order, the plain recipe first (ties go to the earlier,
    simpler one). `gate_standard`: the in-domain gate reads the arm's standard pbc:test score (a lab adapts to
    its own images, not to the training lab's) instead of the recipe's own."""
    grid: str
    recipes: tuple
    gate_standard: bool = False
    max_in_domain_cost: float = 0.02    # a recipe may lose at most 2 points on pbc:test

    @property
    def plain(self) -> tuple:
        return self.recipes[0]

    @property
    def by_label(self) -> dict:
        """'efficientnet_lite0+hed + TENT' -> (variant, mode)."""
        return {row_label(m, mode): (m, mode) for m, mode in self.recipes}

    @property
    def claim(self) -> Claim:
        return Claim("R", "the recipe scores higher in a new lab than the plain recipe", SCORE,
                     tuple((*r, *self.plain) for r in self.recipes[1:]))


def recipe_tests(runs: pd.DataFrame, rule: RecipeRule) -> pd.DataFrame:
    """Every recipe against the plain one on each shifted domain (score on the domain, paired by seed), one
    Holm family: verdict_table's rows and words."""
    return verdict_table(grid_runs(runs, rule.grid), (rule.claim,), grid=None)


def recipe_means(runs: pd.DataFrame, rule: RecipeRule) -> pd.DataFrame:
    """Per recipe (rows, in recipe order, label as index) and domain (columns: pbc:test, then the shifted
    domains): the primary metric's mean over seeds (a seed run twice averaged first); 'gate': the pbc:test
    score the in-domain gate reads; 'seeds': the fewest seeds of any domain."""
    r = grid_runs(runs, rule.grid)
    rows = {}
    for model, mode in rule.recipes:
        g = r[(r["model"] == model) & (r["eval_mode"] == mode)]
        per = g.groupby(["test_set", "seed"])[PRIMARY_METRIC].mean().groupby("test_set")
        means, seeds = per.mean(), per.size()
        rows[row_label(model, mode)] = {**{d: means.get(d) for d in (IN_DOMAIN, *SHIFTED_DOMAINS)},
                                        "seeds": int(seeds.min()) if len(seeds) else 0}
    out = pd.DataFrame.from_dict(rows, orient="index", columns=[IN_DOMAIN, *SHIFTED_DOMAINS, "seeds"])
    standard = {m: out.loc[row_label(m, STANDARD), IN_DOMAIN] if row_label(m, STANDARD) in out.index else float("nan")
                for m, _ in rule.recipes}
    out.insert(len(out.columns) - 1, "gate", [standard[m] if rule.gate_standard else out.loc[row_label(m, mode),
                                              IN_DOMAIN] for m, mode in rule.recipes])
    return out


def choose(means: pd.DataFrame, domains, rule: RecipeRule) -> str | None:
    """The plan's choice: the recipe with the highest mean of its domain means over `domains`, among those
    with every one of them and a gate score at most `max_in_domain_cost` below the plain recipe's; the earlier
    recipe on a tie. None when no recipe qualifies (the plain one not run yet, say)."""
    plain = means.loc[row_label(*rule.plain), "gate"] if row_label(*rule.plain) in means.index else float("nan")
    if pd.isna(plain):
        return None
    best, best_score = None, float("-inf")
    for label, row in means.iterrows():
        scores = row[list(domains)]
        if scores.isna().any() or pd.isna(row["gate"]) or row["gate"] < plain - rule.max_in_domain_cost:
            continue
        if scores.mean() > best_score:
            best, best_score = label, scores.mean()
    return best


def _per_seed(runs: pd.DataFrame, rule: RecipeRule, label: str, domain: str) -> pd.Series:
    model, mode = rule.by_label[label]
    g = runs[(runs["model"] == model) & (runs["eval_mode"] == mode) & (runs["test_set"] == domain)]
    return g.groupby("seed")[PRIMARY_METRIC].mean()


def held_out(runs: pd.DataFrame, rule: RecipeRule) -> pd.DataFrame:
    """Leave one shifted domain out: per domain, the recipe chosen on the other three, its score there and
    the plain recipe's, and the paired gain (mean over seeds, 95% t-interval)."""
    means, r = recipe_means(runs, rule), grid_runs(runs, rule.grid)
    plain = row_label(*rule.plain)
    rows = []
    for d in SHIFTED_DOMAINS:
        label = choose(means, [x for x in SHIFTED_DOMAINS if x != d], rule)
        row = {"held-out domain": d, "chosen on the other three": label or "–"}
        if label is not None:
            c = compare(_per_seed(r, rule, label, d), _per_seed(r, rule, plain, d), paired=True)
            row.update({"score": means.loc[label, d], "plain": means.loc[plain, d], "gain": c["diff"],
                        "lo": c["lo"], "hi": c["hi"], "seeds": c["n"]})
        rows.append(row)
    return pd.DataFrame(rows, columns=["held-out domain", "chosen on the other three", "score", "plain", "gain",
                                       "lo", "hi", "seeds"])


def deploy_command(label: str, rule: RecipeRule, images: str = "YOUR_IMAGES", out: str = "predictions.csv") -> str:
    """The one command that trains `label`'s network with the study's profile and applies it, with its
    test-time method, to a folder of unlabelled images (`wbcbench train` prints the run folder last)."""
    model, mode = rule.by_label[label]
    base, _, augment = model.partition("+")
    train = ["wbcbench", "train", "--model", base, "--profile", get_grid(rule.grid)["profile"], "--seed", "0",
             "--test", IN_DOMAIN, "--quiet", "--out", "runs"] + (["--augment", augment] if augment else [])
    predict = ["--images", images, "--out", out] + ([] if mode == STANDARD else ["--adapt", mode])
    return f'wbcbench predict --checkpoint "$({shlex.join(train)} | tail -n 1)" {shlex.join(predict)}'


def recommendation(runs: pd.DataFrame, rule: RecipeRule, tests: pd.DataFrame | None = None) -> dict:
    """The recipe chosen on all four shifted domains, whether its Holm family (`tests`, default recipe_tests)
    supports it (>= 1 'holds' and no 'contradicted' among its gains), and its command; recipe None before the
    plain recipe has runs."""
    label = choose(recipe_means(runs, rule), SHIFTED_DOMAINS, rule)
    if label is None:
        return {"recipe": None, "supported": False, "words": {}, "command": None}
    tests = recipe_tests(runs, rule) if tests is None else tests
    mine = tests[tests["label_a"] == label]
    words = dict(zip(mine["test_set"], mine["word"]))
    supported = label != row_label(*rule.plain) and "holds" in words.values() and "contradicted" not in words.values()
    return {"recipe": label, "supported": supported, "words": words, "command": deploy_command(label, rule)}
