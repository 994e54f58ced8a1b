"""The analysis plan's verdict engine (book/analysis_plan.md), shared by every study: a claim is a set of
comparisons "a beats b"; robustness claims are tested on the drop from in-domain (pbc:test minus the shifted
domain, paired by seed), test-time claims on the gain on the shifted domain (the method minus the same run's
standard evaluation, paired by run), score claims on the shifted-domain score (paired by seed); a two-sided
paired t-test per comparison, Holm within each claim, and the plan's words. Works for any subset of a grid,
including none. Each study (cpu_study, pretrained_study) names its grid and claims."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from wbcbench.analysis.stats import compare, holm
from wbcbench.core.names import IN_DOMAIN, SHIFTED_DOMAINS, row_label
from wbcbench.sweep.grids import entry_seeds, get_grid, grid_size

PRIMARY_METRIC = "balanced_accuracy_min5"   # decides every verdict
BESIDE_METRICS = ("accuracy", "macro_f1")   # shown beside it, never decide
STUDY_METRICS = (PRIMARY_METRIC, *BESIDE_METRICS, "balanced_accuracy")
METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_f1": "macro-F1",
                "balanced_accuracy_min5": "balanced accuracy (classes with ≥ 5 images)"}
ALPHA = 0.05          # family-wise, within each claim (Holm)
MIN_PAIRS = 2         # fewer paired seeds: undetermined
ONE_CLASS_SHARE = 0.5  # "more than half of the domain's images into one predicted class"

ROBUSTNESS = "drop from in-domain"
TEST_TIME = "gain on the shifted domain"
SCORE = "score on the shifted domain"  # two trainings compared where the practitioner sees them, paired by seed
WORDS = ("holds", "contradicted", "inconclusive", "uninformative", "undetermined")
CLAIM_WORDS = ("holds", "contradicted", "mixed", "inconclusive")


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: every comparison (a, eval mode of a, b, eval mode of b) says a beats b."""
    id: str
    statement: str
    kind: str  # ROBUSTNESS, TEST_TIME or SCORE
    comparisons: tuple


VERDICT_COLUMNS = ["claim", "statement", "kind", "a", "mode_a", "b", "mode_b", "label_a", "label_b", "test_set",
                   "n", "effect", "lo", "hi", "p", "p_holm", "word", "uninformative",
                   *[f"effect_{m}" for m in BESIDE_METRICS], "score_a", "score_b", "drop_a", "drop_b",
                   "accuracy_a", "accuracy_b", "majority", "top_share_a", "top_share_b"]


# what the verdict reads of a collect() table
_NUMERIC = (*STUDY_METRICS, "top_prediction_share", "majority_baseline")
_RUN_COLUMNS = ["model", "profile", "train", "seed", "eval_mode", "test_set", "run_dir", "eval_dir", *_NUMERIC]


def variant(model: str, augment=None) -> str:
    """What the study calls a trained network: the model name, `+<augment>` when trained with one."""
    return model if augment is None or augment == "none" or pd.isna(augment) else f"{model}+{augment}"


def grid_variants(grid: str) -> list[str]:
    """The variants a grid trains: its model entries with their augmentation override, in grid order."""
    return [variant(e) if isinstance(e, str) else variant(e[0], dict(e[1]).get("augment"))
            for e in get_grid(grid)["models"]]


def variant_seeds(grid: str) -> dict[str, list[int]]:
    """Each variant of a grid with the seeds its entry runs at (all the grid's seeds, or those its entry keeps)."""
    g = get_grid(grid)
    return {v: entry_seeds(e, g["seeds"]) for v, e in zip(grid_variants(grid), g["models"])}


def with_variants(runs: pd.DataFrame) -> pd.DataFrame:
    """A collect() table with `model` renamed to its variant (a copy; unchanged without an augment column)."""
    if "augment" not in runs.columns:
        return runs
    out = runs.copy()
    out["model"] = [variant(m, a) for m, a in zip(out["model"], out["augment"])]
    return out


def grid_runs(runs: pd.DataFrame, grid: str) -> pd.DataFrame:
    """The rows of a collect() table that the verdict counts, `model` as its variant: the grid's variants,
    profile, training set and seeds, each variant at its own entry's seeds (runs of models no longer in the
    grid, or at seeds the grid no longer runs them at, are shown in tables, never tested)."""
    if runs is None or not len(runs):
        return pd.DataFrame(columns=_RUN_COLUMNS)
    g = get_grid(grid)
    runs = with_variants(runs)
    seeds = {v: set(s) for v, s in variant_seeds(grid).items()}
    keep = (runs["model"].isin(grid_variants(grid)) & (runs["profile"] == g["profile"])
            & (runs["train"] == g["train"])
            & pd.Series([s in seeds.get(m, ()) for m, s in zip(runs["model"], runs["seed"])], index=runs.index,
                        dtype=bool))
    return runs[keep].reset_index(drop=True)


def grid_progress(runs: pd.DataFrame, grid: str) -> dict:
    """finished: (variant, seed) runs of the grid that have finished, of `total`; others: models with
    finished runs that the grid does not have; repeated: (variant, seed) pairs with more than one run."""
    total = grid_size(grid)["runs"]
    if runs is None or not len(runs):
        return {"finished": 0, "total": total, "others": [], "repeated": []}
    per = grid_runs(runs, grid).groupby(["model", "seed"])["run_dir"].nunique()
    return {"finished": int(len(per)), "total": total,
            "others": sorted(set(with_variants(runs)["model"]) - set(grid_variants(grid))),
            "repeated": [f"{m} seed {s}" for (m, s), k in per.items() if k > 1]}


def _side(runs: pd.DataFrame, model: str, mode: str, test: str, kind: str) -> pd.DataFrame:
    """Per run of `model` evaluated with `mode`: the tested quantity per metric (q_<metric>: the drop from
    IN_DOMAIN, or the score on `test`), and on `test` the primary score, accuracy, top share and majority."""
    g = runs[(runs["model"] == model) & (runs["eval_mode"] == mode)]
    on = g[g["test_set"] == test].set_index("run_dir")
    src = g[g["test_set"] == IN_DOMAIN].set_index("run_dir").reindex(on.index)
    num = {c: pd.to_numeric(on[c], errors="coerce") for c in _NUMERIC}
    out = pd.DataFrame({"seed": on["seed"], "score": num[PRIMARY_METRIC], "accuracy": num["accuracy"],
                        "top_share": num["top_prediction_share"], "majority": num["majority_baseline"]})
    for m in (PRIMARY_METRIC, *BESIDE_METRICS):
        out[f"q_{m}"] = pd.to_numeric(src[m], errors="coerce") - num[m] if kind == ROBUSTNESS else num[m]
    return out.dropna(subset=[f"q_{PRIMARY_METRIC}"])


def _by_seed(side: pd.DataFrame) -> pd.DataFrame:
    return side.groupby("seed").mean(numeric_only=True)  # a seed run twice counts once, averaged


def _is_uninformative(sides) -> bool:
    """The plan's rule: every evaluation in the comparison has mean accuracy not above the majority-class
    accuracy and, on average over seeds, more than half of the images in one predicted class (the class its
    predictions put most images into, seed by seed). An unknown share (no predictions.csv) is not > half."""
    return all(s["accuracy"].mean() <= s["majority"].mean() and s["top_share"].mean() > ONE_CLASS_SHARE
               for s in sides)


def _comparison(runs: pd.DataFrame, claim: Claim, a: str, ma: str, b: str, mb: str, test: str) -> dict:
    """One row of verdict_table before Holm: the pairs, the paired test and what is shown beside it."""
    sa, sb = _side(runs, a, ma, test, claim.kind), _side(runs, b, mb, test, claim.kind)
    if claim.kind == TEST_TIME:  # paired by run, then a seed run twice counts once
        both = sa.index.intersection(sb.index)
        sa, sb = _by_seed(sa.loc[both]), _by_seed(sb.loc[both])
    else:
        sa, sb = _by_seed(sa), _by_seed(sb)
        seeds = sa.index.intersection(sb.index)
        sa, sb = sa.loc[seeds], sb.loc[seeds]
    # effect > 0 is the claimed direction: a loses less (b's drop minus a's), or the method gains
    first, second = (sb, sa) if claim.kind == ROBUSTNESS else (sa, sb)
    r = compare(first[f"q_{PRIMARY_METRIC}"], second[f"q_{PRIMARY_METRIC}"], paired=True)
    row = {"claim": claim.id, "statement": claim.statement, "kind": claim.kind, "a": a, "mode_a": ma, "b": b,
           "mode_b": mb, "label_a": row_label(a, ma), "label_b": row_label(b, mb), "test_set": test,
           "n": r["n"], "effect": r["diff"], "lo": r["lo"], "hi": r["hi"], "p": r["p"], "p_holm": float("nan"),
           "uninformative": bool(len(sa)) and _is_uninformative((sa, sb)),
           **{f"effect_{m}": compare(first[f"q_{m}"], second[f"q_{m}"], paired=True)["diff"] for m in BESIDE_METRICS},
           "majority": pd.concat([sa["majority"], sb["majority"]]).mean()}
    for tag, s in (("a", sa), ("b", sb)):
        row.update({f"score_{tag}": s["score"].mean(), f"accuracy_{tag}": s["accuracy"].mean(),
                    f"top_share_{tag}": s["top_share"].mean(),
                    f"drop_{tag}": s[f"q_{PRIMARY_METRIC}"].mean() if claim.kind == ROBUSTNESS else float("nan")})
    return row


def _word(r: dict) -> str:
    if r["n"] < MIN_PAIRS:
        return "undetermined"
    if r["uninformative"]:
        return "uninformative"
    if r["p_holm"] < ALPHA and r["effect"] != 0:
        return "holds" if r["effect"] > 0 else "contradicted"
    return "inconclusive"


def verdict_table(runs: pd.DataFrame, claims, grid: str | None, domains=SHIFTED_DOMAINS) -> pd.DataFrame:
    """One row per claim x comparison x shifted domain, by the analysis plan: paired effect (percentage
    points / 100, positive = the claimed direction) with its 95% t-interval, the paired t-test's p, its Holm
    adjustment within the claim (over the comparisons that are neither undetermined nor uninformative), the
    word, and beside them the accuracy and macro-F1 effects, each side's score, drop, accuracy and share of
    images in its most-predicted class. Only the grid's runs count (grid_runs; grid=None: `runs` as given)."""
    runs = grid_runs(runs, grid) if grid is not None else runs
    rows = []
    for claim in claims:
        rows_c = [_comparison(runs, claim, *c, t) for c in claim.comparisons for t in domains]
        tested = [r for r in rows_c if r["n"] >= MIN_PAIRS and not r["uninformative"]]
        for r, adj in zip(tested, holm([r["p"] for r in tested])):
            r["p_holm"] = adj
        rows += [{**r, "word": _word(r)} for r in rows_c]
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def claim_word(words) -> str:
    """The plan's word for a claim from the words of its comparisons."""
    words = set(words)
    if "holds" in words:
        return "mixed" if "contradicted" in words else "holds"
    return "contradicted" if "contradicted" in words else "inconclusive"


def claim_summary(v: pd.DataFrame) -> pd.DataFrame:
    """Per claim: its word, what it is tested on, and how many comparisons got each word."""
    rows = []
    for cid, g in v.groupby("claim", sort=False):
        counts = g["word"].value_counts()
        rows.append({"claim": cid, "statement": g["statement"].iloc[0], "tested on": g["kind"].iloc[0],
                     "verdict": claim_word(g["word"]), "comparisons": len(g),
                     **{w: int(counts.get(w, 0)) for w in WORDS}})
    return pd.DataFrame(rows, columns=["claim", "statement", "tested on", "verdict", "comparisons", *WORDS])
