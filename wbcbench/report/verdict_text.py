"""The plan's verdicts in words: one sentence per comparison and per claim, the rules as applied, progress
of a grid, and the pretrained study's recipe tables and recommendation. Numbers come from
wbcbench.analysis; this module only words them."""
from __future__ import annotations

import pandas as pd

from wbcbench.analysis import cpu_study, pretrained_study
from wbcbench.analysis.verdict import (
    ALPHA,
    BESIDE_METRICS,
    METRIC_NAMES,
    MIN_PAIRS,
    ONE_CLASS_SHARE,
    PRIMARY_METRIC,
    ROBUSTNESS,
    TEST_TIME,
    WORDS,
    claim_summary,
    grid_progress,
)
from wbcbench.core.names import IN_DOMAIN, SHIFTED_DOMAINS, row_label
from wbcbench.report.tables import fmt_gain, pct
from wbcbench.report.words import by_word, domain_name, evaluated_name, label_name, listed, recipe_name
from wbcbench.sweep.grids import get_grid


def _pp(x: float) -> str:
    return "–" if pd.isna(x) else f"{x * 100:+.1f} pp"


def _pct(x: float) -> str:
    return "–" if pd.isna(x) else f"{x * 100:.1f}%"


def _p(name: str, x: float) -> str:
    return f"{name} –" if pd.isna(x) else (f"{name} < 0.001" if x < 0.001 else f"{name} = {x:.3f}")


def _interval(r) -> str:
    return "no interval" if pd.isna(r["lo"]) else f"95% CI [{_pp(r['lo'])[:-3]}, {_pp(r['hi'])[:-3]}] pp"


def comparison_sentence(r) -> str:
    """One comparison of verdict_table in words, with its effect, interval and p-values."""
    head = f"{r['label_a']} vs {r['label_b']} on {r['test_set']}: **{r['word']}**"
    if "word_t" in r and isinstance(r["word_t"], str) and r["word_t"] != r["word"]:
        head += (f" (the t-test alone: {r['word_t']}; the 95% bootstrap interval over test images, "
                 f"[{r['boot_lo'] * 100:+.1f}, {r['boot_hi'] * 100:+.1f}] pp, does not agree)")
    unit = "runs" if r["kind"] == TEST_TIME else "seeds"
    if r["word"] == "undetermined":
        return f"{head} ({r['n']} paired {unit[:-1] if r['n'] == 1 else unit}; the test needs {MIN_PAIRS})."
    if r["kind"] == ROBUSTNESS:
        what = (f"drop from {IN_DOMAIN} {_pp(r['drop_a'])[1:]} vs {_pp(r['drop_b'])[1:]}, effect {_pp(r['effect'])} "
                f"(positive: {r['a']} loses less), {_interval(r)}; on {r['test_set']} itself "
                f"{_pct(r['score_a'])} vs {_pct(r['score_b'])}")
    else:
        what = (f"gain {_pp(r['effect'])}, {_interval(r)} ({_pct(r['score_a'])} vs {_pct(r['score_b'])})")
    beside = f"accuracy {_pp(r['effect_accuracy'])}, macro-F1 {_pp(r['effect_macro_f1'])}"
    if r["word"] == "uninformative":
        return (f"{head}: both score at most the majority-class accuracy ({_pct(r['accuracy_a'])} and "
                f"{_pct(r['accuracy_b'])} vs {_pct(r['majority'])}) and put {_pct(r['top_share_a'])} and "
                f"{_pct(r['top_share_b'])} of the images into one class; not tested ({what}).")
    return f"{head}: {what}; paired t over {r['n']} {unit}, {_p('p', r['p'])}, {_p('Holm p', r['p_holm'])}; {beside}."


def _evidence(r) -> str:
    """'+19.9 pp, 95% CI [+12.6, +27.3] pp, Holm p = 0.008': a decided comparison's effect and test."""
    return f"{_pp(r.effect)}, {_interval(r._asdict())}, {_p('Holm p', r.p_holm)}"


def _deciding(v: pd.DataFrame, claim: str) -> str:
    """'; holds for a vs b on LISC (+19.9 pp, 95% CI [...] pp, Holm p = 0.008); ...' for every comparison of
    `claim` that holds or is contradicted ('' when none is)."""
    g = v[(v["claim"] == claim) & v["word"].isin(["holds", "contradicted"])]
    return "".join(f"; {w} for {r.label_a} vs {r.label_b} on {r.test_set} ({_evidence(r)})"
                   for w, r in zip(g["word"], g.itertuples(index=False)))


def claim_sentence(s, v: pd.DataFrame) -> str:
    """One claim of claim_summary in words: its word, the counts, and the comparisons that decided it."""
    counts = ", ".join(f"{w} {s[w]}" for w in WORDS if s[w])
    return (f"({s['claim']}) {s['statement']}: **{s['verdict']}** (overall word, one comparison holding "
            f"suffices; {s['comparisons']} comparisons: {counts})"
            f"{_deciding(v, s['claim'])}.")


def _by_network(v: pd.DataFrame, claim: str) -> str:
    """'EfficientNet-Lite0 holds on BCCD (+6.9 pp, 95% CI [...] pp, Holm p = 0.002) and JTSC (...), contradicted on
    CellaVision (...); EfficientNet-Lite2 holds on LISC (...)': the comparisons of `claim` (in words) that hold or
    are contradicted, network by network ('' when none is)."""
    g = v[(v["claim"] == claim) & v["word"].isin(["holds", "contradicted"])]
    out = []
    for net, rows in g.groupby(g["label_b"].str.split(", ").str[0], sort=False):
        said = [f"{w} on " + listed([f"{r.test_set} ({_evidence(r)})" for r in rows[rows["word"] == w].itertuples()])
                for w in ("holds", "contradicted") if (rows["word"] == w).any()]
        out.append(f"{net} {', '.join(said)}")
    return "; ".join(out)


def domain_claim_sentence(r, v: pd.DataFrame | None = None) -> str:
    """One claim of a study worded per domain (a row of pretrained_v2.domain_words), with no word over
    domains: '**(V1)** statement: *holds* on LISC; *inconclusive* on ...', then, given the verdict `v` (in
    words), the comparisons that hold or are contradicted, network by network."""
    deciding = "" if v is None else _by_network(v, r["claim"])
    if deciding:
        deciding = ". The comparisons that hold or are contradicted: " + deciding
    return f"**({r['claim']})** {r['statement']}: {by_word(r, emphasis=True)}{deciding}."


#: the plan's single word per claim, named for what it says (one holding comparison suffices)
OVERALL = "overall word (one comparison holding suffices)"


def claims_table(v: pd.DataFrame, counts: bool = True) -> pd.DataFrame:
    """claim_summary as the book and the README show it: the overall word's header says what it means, and the
    counts of comparisons per word follow (without `counts`, the comparisons' total is left out too)."""
    t = claim_summary(v).rename(columns={"verdict": OVERALL})
    return t if counts else t.drop(columns="comparisons")


def claim_sentences(v: pd.DataFrame) -> list[str]:
    """claim_sentence of every claim, in claim order."""
    return [claim_sentence(s, v) for _, s in claim_summary(v).iterrows()]


def verdict_sentences(v: pd.DataFrame, claims: bool = True) -> str:
    """Markdown: per claim its sentence, then one bullet per comparison, then holm_note. Without `claims`
    (a page that shows claim_summary's table beside it) each claim's verdict is not repeated: its bullets
    follow its id only."""
    out = []
    for _, s in claim_summary(v).iterrows():
        out.append((claim_sentence(s, v) if claims else f"**Claim ({s['claim']})**, every comparison:") + "\n")
        out += [f"- {comparison_sentence(r)}" for _, r in v[v["claim"] == s["claim"]].iterrows()]
        out.append("")
    note = holm_note(v)
    return "\n".join(out + ([note, ""] if note else []))


def holm_note(v: pd.DataFrame) -> str:
    """Why a comparison that several claims test has one p and a different Holm p in each: Holm adjusts
    within each claim's family, the claim's tested comparisons. '' when no comparison is shared."""
    key = ["label_a", "label_b"]
    shared = v.groupby(key, sort=False)["claim"].unique()
    shared = shared[shared.map(len) > 1]
    if not len(shared):
        return ""
    parts = []
    for (a, b), cl in shared.items():
        rows = v[(v["label_a"] == a) & (v["label_b"] == b) & v["p_holm"].notna()]
        text = f"{a} vs {b} is tested by claims " + " and ".join(f"({c})" for c in cl)
        if len(rows):
            ex = rows[rows["test_set"] == rows["test_set"].iloc[0]]
            text += (f": on {ex['test_set'].iloc[0]} {_p('p', ex['p'].iloc[0])} in each, "
                     + " and ".join(f"{_p('Holm p', h)} in ({c})" for c, h in zip(ex["claim"], ex["p_holm"])))
        parts.append(text)
    families = []
    for c in dict.fromkeys(c for cl in shared for c in cl):
        g = v[v["claim"] == c]
        pairs = len(g[key].drop_duplicates())
        families.append(f"claim ({c}) has {len(g)} comparisons ({pairs} pair{'s' if pairs > 1 else ''} × "
                        f"{g['test_set'].nunique()} shifted domains), {int(g['p_holm'].notna().sum())} of them tested")
    return ("**Why one comparison has several Holm p.** " + "; ".join(parts) + ". Holm adjusts each p within its "
            "claim's family, the claim's tested comparisons (uninformative and undetermined ones left out): "
            + ", ".join(families) + "; a larger family asks more of each p.")


def progress_sentence(runs: pd.DataFrame, runs_dir, grid: str = cpu_study.GRID) -> str:
    """'N of 40 runs finished', naming what the verdict leaves out."""
    g = grid_progress(runs, grid)
    text = f"{g['finished']} of {g['total']} runs of the `{grid}` grid finished in `{runs_dir}`"
    if g["others"]:
        text += f"; runs of models no longer in the grid are not counted ({', '.join(g['others'])})"
    if g["repeated"]:
        text += f"; seeds with more than one finished run, averaged: {', '.join(g['repeated'])}"
    return text + "."


def rules_markdown() -> str:
    """The analysis plan's rules as this code applies them (from the constants above), for the study pages."""
    seeds = get_grid(cpu_study.GRID)["seeds"]
    lines = [
        f"- **unit**: one run = one (model, seed), seeds {seeds[0]}–{seeds[-1]}; models paired by seed, a "
        "test-time method paired with the same run evaluated without it",
        f"- **primary metric**: {METRIC_NAMES[PRIMARY_METRIC]} (`{PRIMARY_METRIC}`); beside it, never deciding: "
        + ", ".join(METRIC_NAMES[m] for m in BESIDE_METRICS),
        f"- **robustness claims** on the {ROBUSTNESS} (`{IN_DOMAIN}` minus the shifted domain); **test-time "
        f"claims** on the {TEST_TIME} (method minus standard evaluation); shifted domains: "
        + ", ".join(f"`{d}`" for d in SHIFTED_DOMAINS),
        f"- **test**: two-sided paired t per comparison, Holm within each claim at family-wise α = {ALPHA}; "
        "effect = mean paired difference (positive = the claimed direction) with its 95% Student-t interval",
        f"- **uninformative**: every evaluation in the comparison has mean accuracy ≤ the majority-class "
        f"accuracy and > {ONE_CLASS_SHARE:.0%} of the images in one predicted class (left out of Holm); "
        f"**undetermined**: fewer than {MIN_PAIRS} paired seeds",
        "- **a claim** holds: ≥ 1 comparison holds, none contradicted; contradicted: the reverse; mixed: both; "
        "inconclusive: otherwise",
    ]
    return "\n".join([*lines, claims_markdown(cpu_study.CLAIMS)])


def claims_markdown(claims) -> str:
    """One bullet per claim: its statement, every comparison it makes, and what it is tested on."""
    return "\n".join(f"- claim ({c.id}) {c.statement}: "
                     + ", ".join(f"{evaluated_name(a, ma)} vs {evaluated_name(b, mb)}"
                                 for a, ma, b, mb in c.comparisons)
                     + f" ({c.kind})" for c in claims)


def recipe_tables(tests: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """recipe_tests as two recipe x shifted-domain tables, in RECIPES order: the gain '+x [lo, hi]' (pp)
    and the plan's word."""
    cells = tests.assign(gain=[fmt_gain(e, lo, hi) for e, lo, hi in zip(tests["effect"], tests["lo"], tests["hi"])])
    order = list(pretrained_study.RECIPE_BY_LABEL)[1:]
    return tuple(cells.pivot(index="label_a", columns="test_set", values=v).reindex(order)[list(SHIFTED_DOMAINS)]
                 .rename_axis(index="recipe", columns=None) for v in ("gain", "word"))


def held_out_table(held: pd.DataFrame, rule=pretrained_study.RULE) -> pd.DataFrame:
    """pretrained_study.held_out (or pretrained_v2's, with its recipes.RecipeRule) as the book shows it: domains
    and recipes in words, scores in %, the gain as '+x [lo, hi]' (pp)."""
    if held is None or not len(held):
        return held
    out = held.drop(columns=["gain", "lo", "hi"]).assign(score=[pct(x) for x in held["score"]],
                                                         plain=[pct(x) for x in held["plain"]])
    out["held-out domain"] = out["held-out domain"].map(domain_name)
    out["chosen on the other three"] = [recipe_name(rule, x) if x in rule.by_label else label_name(x)
                                        for x in out["chosen on the other three"]]
    out.insert(out.columns.get_loc("plain") + 1, "gain over plain (pp) [95% CI]",
               [fmt_gain(d, lo, hi) for d, lo, hi in zip(held["gain"], held["lo"], held["hi"])])
    return out.rename(columns={"score": "chosen recipe's score (%)", "plain": "plain recipe's score (%)"})


def recommendation_sentence(rec: dict, rule=pretrained_study.RULE) -> str:
    """A study's recommendation (pretrained_study's or pretrained_v2's, with its recipes.RecipeRule) in one
    sentence, the recipe in words, with its Holm words per shifted domain."""
    if rec["recipe"] is None:
        return "no recipe can be chosen yet (the plain recipe has no runs)."
    name = recipe_name(rule, rec["recipe"]) if rec["recipe"] in rule.by_label else rec["recipe"]
    if rec["recipe"] == row_label(*rule.plain):
        return f"the plan's rule chooses the plain recipe, **{name}**: no remedy beat it."
    words = by_word(rec["words"])
    if all(rec["words"].get(d, "undetermined") == "undetermined" for d in SHIFTED_DOMAINS):
        return (f"with the runs so far the plan's rule would choose **{name}**; too few seeds to test it "
                f"against the plain recipe yet ({words}).")
    if rec["supported"]:
        return (f"the plan's rule chooses **{name}** by its mean over the four shifted domains, and on those same "
                f"images the Holm-corrected tests against the plain recipe find it {supported_on(rec['words'])}: what "
                "the plan calls supported.")
    return f"the plan's rule chooses **{name}**, not shown to help by the Holm-corrected tests against the plain " \
           f"recipe ({words})."


def supported_on(words: dict) -> str:
    """A supported recipe's words per domain, the domains where it scores higher first: 'higher on JTSC and
    CellaVision (inconclusive on LISC; uninformative on BCCD)'."""
    higher = [domain_name(d) for d in SHIFTED_DOMAINS if words.get(d) == "holds"]
    rest = [d for d in SHIFTED_DOMAINS if words.get(d) != "holds"]
    others = by_word(words, domains=rest, notes={
        "uninformative": ", where both recipes score at most the majority-class accuracy, so it is not tested"})
    return f"higher on {listed(higher)}" + (f" ({others})" if rest else "")
