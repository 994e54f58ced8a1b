"""The converged pretrained study (grid `cpu-pretrained-v2`), by the second addendum of the analysis plan
(book/analysis_plan.md) and by nothing else: claims V1-V6 on EfficientNet-Lite0/1/2 trained to convergence,
each comparison's word requiring the bootstrap over test images to agree with the paired t-test, one word per
claim per domain, the convergence check on seed 0, and the recommendation v2 (its in-domain gate on the arm's
standard score)."""
from __future__ import annotations

import pandas as pd

from wbcbench.analysis import recipes
from wbcbench.analysis.bootstrap import paired_interval, read_predictions
from wbcbench.analysis.pretrained_study import BASE, LITE
from wbcbench.analysis.verdict import SCORE, TEST_TIME, Claim, grid_runs, variant, verdict_table
from wbcbench.core.names import SHIFTED_DOMAINS, STANDARD

GRID = "cpu-pretrained-v2"
CLAIMS = (
    Claim("V1", "BN frozen at ImageNet statistics scores higher on the new domain than BN fine-tuned", SCORE,
          tuple((f"{m}_freezebn", STANDARD, m, STANDARD) for m in LITE)),
    Claim("V2", "frozen BN with only the last stages trained scores higher than BN fine-tuned", SCORE,
          tuple((f"{m}_freezebn_last", STANDARD, m, STANDARD) for m in LITE)),
    Claim("V3", "AdaBN raises the fine-tuned network's score on the new domain", TEST_TIME,
          tuple((m, "adabn", m, STANDARD) for m in LITE)),
    Claim("V4", "TENT (batches of 64) raises the fine-tuned network's score on the new domain", TEST_TIME,
          tuple((m, "tent", m, STANDARD) for m in LITE)),
    Claim("V5", "rescaling to the training domain's cell scale raises the fine-tuned network's score", TEST_TIME,
          tuple((m, "scale", m, STANDARD) for m in LITE)),
    Claim("V6", "rescaling, then AdaBN, raises the score more than AdaBN alone", TEST_TIME,
          tuple((m, "scale+adabn", m, "adabn") for m in LITE)),
)

#: Lite0's trained arms, simplest first, and the test-time methods; BN methods only where BN statistics adapt.
ARMS = (BASE, f"{BASE}_freezebn", f"{BASE}_freezebn_last", variant(BASE, "colour"), variant(BASE, "scale"),
        variant(BASE, "colour+scale"))
TEST_METHODS = (STANDARD, "adabn", "tent", "scale", "scale+adabn", "macenko_domain", "reinhard_domain")
BN_ONLY = ("adabn", "tent", "scale+adabn")
RULE = recipes.RecipeRule(GRID, tuple((a, m) for a in ARMS for m in TEST_METHODS
                                      if not ("freezebn" in a and m in BN_ONLY)), gate_standard=True)
DOMAIN_WORDS = ("holds", "contradicted", "mixed", "inconclusive", "uninformative", "undetermined")

# the convergence check of the plan, on seed 0 of every arm
PLATEAU = 0.01          # last epoch's training accuracy within 1 point of the epoch before
MIN_VAL_BALANCED = 0.97  # BN fine-tuned arms on pbc:val
CHECK_SET = "pbc:val"
MAX_HOURS = 10           # the grid's projected time from seed 0 past which Lite1 runs at seed 0 only


def v2_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The cpu-pretrained-v2 grid's rows of a collect() table, `model` as its variant."""
    return grid_runs(runs, GRID)


def _eval_dirs(runs: pd.DataFrame, model: str, mode: str, test: str) -> pd.Series:
    """seed -> eval_dir of `model` evaluated with `mode` on `test` (the first run of a seed run twice)."""
    g = runs[(runs["model"] == model) & (runs["eval_mode"] == mode) & (runs["test_set"] == test)]
    return g.sort_values("run_dir").groupby("seed")["eval_dir"].first()


def with_bootstrap(v: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """verdict_table rows with the bootstrap interval over test images (boot_lo, boot_hi; nan where a side has
    no predictions) and the plan's word: 'holds' or 'contradicted' only when that interval agrees."""
    out = v.copy()
    lo, hi = [], []
    for r in v.itertuples(index=False):
        a, b = _eval_dirs(runs, r.a, r.mode_a, r.test_set), _eval_dirs(runs, r.b, r.mode_b, r.test_set)
        seeds = a.index.intersection(b.index)
        if r.word in ("undetermined", "uninformative") or not len(seeds):
            lo.append(float("nan"))
            hi.append(float("nan"))
            continue
        pairs = [(read_predictions(a[s]), read_predictions(b[s])) for s in seeds]
        interval = paired_interval(pairs, where=f"{r.label_a} vs {r.label_b} on {r.test_set}")
        lo.append(interval[0])
        hi.append(interval[1])
    out["boot_lo"], out["boot_hi"] = lo, hi
    t_word = out["word"]
    out["word_t"] = t_word
    disagree = ((t_word == "holds") & ~(out["boot_lo"] > 0)) | ((t_word == "contradicted") & ~(out["boot_hi"] < 0))
    out.loc[disagree, "word"] = "inconclusive"
    return out


def verdict(runs: pd.DataFrame) -> pd.DataFrame:
    """V1-V6 on the grid's runs: verdict_table's rows with the bootstrap requirement."""
    r = v2_runs(runs)
    return with_bootstrap(verdict_table(r, CLAIMS, grid=None), r)


def domain_word(words) -> str:
    """A claim's word on one domain from its networks' comparison words there (the plan's rule)."""
    words = list(words)
    n_holds, n_contra = words.count("holds"), words.count("contradicted")
    if words and all(w == "uninformative" for w in words):
        return "uninformative"
    if words and all(w == "undetermined" for w in words):
        return "undetermined"
    if n_holds and n_contra:
        return "mixed"
    if n_holds >= 2:
        return "holds"
    if n_contra >= 2:
        return "contradicted"
    return "inconclusive"


def domain_words(v: pd.DataFrame) -> pd.DataFrame:
    """Claims (rows, with their statement) x shifted domains: the claim's word on each domain."""
    rows = []
    for cid, g in v.groupby("claim", sort=False):
        words = {d: domain_word(g.loc[g["test_set"] == d, "word"]) for d in SHIFTED_DOMAINS}
        rows.append({"claim": cid, "statement": g["statement"].iloc[0], **words})
    return pd.DataFrame(rows, columns=["claim", "statement", *SHIFTED_DOMAINS])


def recipe_tests(runs: pd.DataFrame) -> pd.DataFrame:
    """Every recipe against the plain one on each shifted domain, one Holm family, with the bootstrap
    requirement."""
    return with_bootstrap(recipes.recipe_tests(runs, RULE), v2_runs(runs))


def recommendation(runs: pd.DataFrame) -> dict:
    """recipes.recommendation under the v2 rule, supported by the bootstrap-checked family."""
    return recipes.recommendation(runs, RULE, tests=recipe_tests(runs))


def held_out(runs: pd.DataFrame) -> pd.DataFrame:
    """recipes.held_out under the v2 rule."""
    return recipes.held_out(runs, RULE)


def convergence_check(runs: pd.DataFrame, logs: dict) -> pd.DataFrame:
    """The plan's check on seed 0 of every arm: `logs` maps run_dir -> its log.csv as a frame. Per arm: the last
    two epochs' training accuracy, the pbc:val balanced accuracy, and whether the arm passes (plateau for every
    arm, the pbc:val bar for BN fine-tuned arms)."""
    r = v2_runs(runs)
    first = r[(r["seed"] == 0) & (r["eval_mode"] == STANDARD) & (r["test_set"] == CHECK_SET)]
    rows = []
    for run in first.sort_values("model").itertuples(index=False):
        log = logs.get(run.run_dir)
        acc = log["train_accuracy"].tolist() if log is not None and len(log) >= 2 else [float("nan")] * 2
        fine_tuned = "freezebn" not in run.model
        plateau = abs(acc[-1] - acc[-2]) <= PLATEAU
        val = run.balanced_accuracy
        rows.append({"arm": run.model, "epochs": len(log) if log is not None else 0, "train acc, last": acc[-1],
                     "train acc, before": acc[-2], f"{CHECK_SET} balanced accuracy": val,
                     "passes": bool(plateau and (not fine_tuned or val >= MIN_VAL_BALANCED))})
    return pd.DataFrame(rows, columns=["arm", "epochs", "train acc, last", "train acc, before",
                                       f"{CHECK_SET} balanced accuracy", "passes"])
