"""The findings page: plain sentences with absolute levels, and what a lab should do, computed from a
pretrained study's committed runs. The book reports the converged study once its grid is complete and the
low-budget study until then; every number and word here comes from the study's own analysis module."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from wbcbench.analysis import pretrained_study, pretrained_v2, recipes
from wbcbench.analysis.verdict import MIN_PAIRS, PRIMARY_METRIC, grid_progress, grid_runs, variant_seeds
from wbcbench.core.names import IN_DOMAIN, SHIFTED_DOMAINS, STANDARD, row_label
from wbcbench.core.paths import REPO_ROOT
from wbcbench.core.profiles import get_profile
from wbcbench.report import verdict_text
from wbcbench.report.run_tables import chance_levels
from wbcbench.report.tables import fmt_gain, summary_table
from wbcbench.report.verdict_text import supported_on
from wbcbench.report.words import (
    NUMBERS,
    arm_parts,
    arms_named,
    by_word,
    domain_name,
    holds_only_where,
    in_words,
    listed,
    model_parts,
    recipe_name,
    shown_domain_words,
)


@dataclass(frozen=True)
class Study:
    """A pretrained study as the findings page needs it: where its runs are, its grid and its analysis."""
    name: str
    runs_dir: str
    grid: str
    profile: str
    verdict: Callable[[pd.DataFrame], pd.DataFrame]
    recommendation: Callable[[pd.DataFrame], dict]
    rule: object      # its recipes.RecipeRule
    frozen: str       # claim id: BN frozen vs fine-tuned
    last: str         # claim id: frozen BN, last stages trained vs fine-tuned
    adabn: str        # claim id: AdaBN
    tent: str         # claim id: TENT
    held_out: Callable[[pd.DataFrame], pd.DataFrame] | None = None  # its leave-one-domain-out table
    caveat: str = ""  # what else differs between its arms, said beside its numbers
    per_domain: bool = False  # its plan words each claim per domain, with no word over domains
    more: tuple[str, ...] = ()  # claim ids the findings also word (the converged study's rescaling claims)


LOW_BUDGET = Study(
    "low-budget pretrained study", "results/cpu-pretrained", pretrained_study.GRID, "cpu-pretrained",
    pretrained_study.verdict, pretrained_study.recommendation, pretrained_study.RULE, "P1", "P2", "P3", "P4",
    held_out=pretrained_study.held_out,
    caveat="three things besides normalisation differ: its BN fine-tuned networks end training less accurate "
    "than the frozen-BN ones, BCCD's and JTSC's cells fill far more of the frame than PBC's (the data chapter "
    "measures it), and its class-balanced training meets test sets whose classes are not; the converged study, "
    "which removes all three, replaces it when its grid is complete")
CONVERGED = Study(
    "converged pretrained study", "results/cpu-pretrained-v2", pretrained_v2.GRID, "cpu-pretrained-v2",
    pretrained_v2.verdict, pretrained_v2.recommendation, pretrained_v2.RULE, "V1", "V2", "V3", "V4",
    held_out=pretrained_v2.held_out, per_domain=True, more=("V5", "V6"))


def current_study(load, root: Path = REPO_ROOT) -> tuple[Study, pd.DataFrame]:
    """(study, its runs): the converged study once every run of its grid is finished, else the low-budget one.
    `load` is runs.collect.load_runs (passed in, so that this floor reads no run folder itself)."""
    if (root / CONVERGED.runs_dir).is_dir():
        runs, _ = load(root / CONVERGED.runs_dir)
        g = grid_progress(runs, CONVERGED.grid)
        if g["total"] and g["finished"] >= g["total"]:
            return CONVERGED, runs
    runs, _ = load(root / LOW_BUDGET.runs_dir)
    return LOW_BUDGET, runs


def arm_runs(study: Study, runs: pd.DataFrame) -> pd.DataFrame:
    """The study's three BN arms of every network, without training augmentation: what the findings report."""
    r = grid_runs(runs, study.grid)
    return r[~r["model"].str.contains("+", regex=False)]


def levels(study: Study, runs: pd.DataFrame, metric: str = PRIMARY_METRIC) -> pd.DataFrame:
    """Per test domain (in-domain first): the lowest and highest mean score over seeds of arm_runs in the
    standard evaluation, the number of arms, and chance there."""
    r = arm_runs(study, runs)
    s = summary_table(r, eval_mode=STANDARD, metrics=(metric,))
    chance = chance_levels(r, metric)
    rows = []
    for t in (IN_DOMAIN, *SHIFTED_DOMAINS):
        m = s.loc[s["test_set"] == t, f"{metric}_mean"]
        rows.append({"test_set": t, "low": m.min(), "high": m.max(), "arms": len(m), "chance": chance.get(t)})
    return pd.DataFrame(rows).set_index("test_set")


def claim_lines(study: Study, v: pd.DataFrame) -> list[str]:
    """The study's claims as its plan words them, each with the comparisons that hold or are contradicted: per
    domain for the converged study (its plan has no word over domains), one word each for the low-budget one."""
    named = in_words(v)
    if study.per_domain:
        return [verdict_text.domain_claim_sentence(r, named) for _, r in shown_domain_words(v).iterrows()]
    return verdict_text.claim_sentences(named)


def comparison_rule(study: Study) -> str:
    """When a comparison holds under the study's plan."""
    return ("a comparison holds when its paired t-test over seeds favours the claim with a Holm-adjusted p below "
            "0.05 (Holm over the claim's comparisons)"
            + (" and the 95% bootstrap interval over the domain's test images excludes 0 the same way"
               if study.per_domain else "") + ", and is contradicted in the mirror case")


def domain_rule(study: Study) -> str:
    """Where the per-domain rule comes from, for the study the page reports."""
    if study.per_domain:
        seeds = variant_seeds(study.grid)
        cut = [a for a, s in seeds.items() if len(s) < MIN_PAIRS]
        short = f"; {arms_named(cut, seeds)} run too few seeds for a test, so {holds_only_where(cut, seeds)}"
        return "the second addendum's rule" + (short if cut else "")
    return ("the second addendum's rule; the low-budget study's runs predate it, so for that study these per-domain "
            "words summarise its comparisons' words, and its plan's own verdict is one word per claim")


def _range(row) -> str:
    lo, hi = round(row["low"] * 100), round(row["high"] * 100)
    return f"{lo}%" if lo == hi else f"{lo}–{hi}%"


def domain_words(study: Study, runs: pd.DataFrame) -> pd.DataFrame:
    """The study's claims x shifted domains, one word each (pretrained_v2.domain_word: a claim holds on a
    domain when the comparisons of at least two of its three networks hold there and none is contradicted)."""
    return shown_domain_words(study.verdict(runs)).set_index("claim")


def _claim(words: pd.DataFrame, claim: str, lower: bool = False) -> str:
    """'AdaBN raises ...: holds on LISC; inconclusive on BCCD, JTSC and CellaVision'."""
    statement = words.loc[claim, "statement"]
    first = statement[:1].lower() if lower else statement[:1].upper()
    return f"{first}{statement[1:]}: {by_word(words.loc[claim, list(SHIFTED_DOMAINS)].to_dict())}"


def _same(words: pd.DataFrame, v: pd.DataFrame, a: str, b: str) -> bool:
    """Do two claims read alike: the same word on every domain, and effects against them on the same domains?"""
    def notes(c):
        return re.sub(r"[-+]?\d+\.\d", "x", _against(v, c))
    return words.loc[a, list(SHIFTED_DOMAINS)].tolist() == words.loc[b, list(SHIFTED_DOMAINS)].tolist() and \
        notes(a) == notes(b)


def _against(v: pd.DataFrame, claim: str) -> str:
    """'; on CellaVision it goes the other way on both networks tested (EfficientNet-Lite0 -11.0 pp,
    contradicted; EfficientNet-Lite2 -7.7 pp, inconclusive)' for every domain where every network with a test
    (at least two) has its mean effect against the claim; each with the plan's word."""
    parts = []
    for d in SHIFTED_DOMAINS:
        g = v[(v["claim"] == claim) & (v["test_set"] == d) & (v["word"] != "undetermined")]
        if len(g) >= 2 and g["effect"].notna().all() and (g["effect"] < 0).all():
            nets = "; ".join(f"{(model_parts(b) or (b,))[0]} {e * 100:+.1f} pp, {w}"
                             for b, e, w in zip(g["b"], g["effect"], g["word"]))
            every = "both" if len(g) == 2 else f"all {NUMBERS.get(len(g), len(g))}"
            parts.append(f"on {domain_name(d)} it goes the other way on {every} networks tested ({nets})")
    return "".join(f"; {p}" for p in parts)


def seeds_phrase(per_arm: pd.Series) -> str:
    """'5 seeds', or with arms that have fewer (the converged grid runs Lite1 at seed 0 only, by the plan's
    10-hour rule): "5 seeds; EfficientNet-Lite1's three arms 1 seed, too few for a test, so each claim's word
    rests on the other networks". `per_arm`: arm id -> its number of seeds."""
    most = int(per_arm.max())
    text = f"{most} seed{'s' * (most != 1)}"
    for n in sorted(set(per_arm[per_arm < most]), reverse=True):
        fewer = per_arm[per_arm == n]
        text += f"; {arms_named(fewer.index, per_arm.index)} {n} seed{'s' * (n != 1)}"
        if n < MIN_PAIRS:
            text += f", too few for a test, so {holds_only_where(fewer.index, per_arm.index)}"
    return text


def sentences(study: Study, runs: pd.DataFrame, v: pd.DataFrame | None = None) -> list[str]:
    """The findings: in-domain level, shifted levels against chance, what frozen BN does, what test-time BN
    adaptation does, the study's other claims (`more`, one sentence), and which study this is. `v`: the study's
    verdict when the caller has it already."""
    lv = levels(study, runs)
    v = study.verdict(runs) if v is None else v
    words = shown_domain_words(v).set_index("claim")
    near = [d for d in SHIFTED_DOMAINS if lv.loc[d, "high"] < 2 * lv.loc[d, "chance"]]
    far = [d for d in SHIFTED_DOMAINS if d not in near]
    chance_in = lv.loc[IN_DOMAIN, "chance"]
    n_arms = int(lv.loc[IN_DOMAIN, "arms"])
    p = get_profile(study.profile)

    def level(d):
        return f"{domain_name(d)} {_range(lv.loc[d])} (chance {lv.loc[d, 'chance']:.0%})"
    shifted = listed([level(d) for d in far])
    if near:
        shifted += ("; " if far else "") + listed([level(d) for d in near]) + ", never twice chance"
    parts = [arm_parts(m) for m in sorted(arm_runs(study, runs)["model"].unique())]
    families = listed(dict.fromkeys(p[0] for p in parts if p))
    trainings = listed(dict.fromkeys(p[1].replace(", last", " and only the last") for p in parts if p), last="or")
    per_arm = arm_runs(study, runs).groupby("model")["seed"].nunique()
    out = [
        f"Trained on PBC, the {NUMBERS.get(n_arms, n_arms)} networks of the study ({families}, each with "
        f"{trainings}) classify held-out PBC cells at {_range(lv.loc[IN_DOMAIN])} balanced accuracy "
        f"(chance {chance_in:.0%}).",
        f"On other labs' images the same networks score far lower: {shifted}.",
        f"{_claim(words, study.frozen)}{_against(v, study.frozen)}; {_claim(words, study.last, lower=True)}"
        f"{_against(v, study.last)}.",
        f"{_claim(words, study.adabn)}{_against(v, study.adabn)}. "
        + (f"TENT: the same words per domain{_against(v, study.tent)}." if _same(words, v, study.adabn, study.tent)
           else f"{_claim(words, study.tent)}{_against(v, study.tent)}."),
        *([" ".join(f"{_claim(words, c)}{_against(v, c)}." for c in study.more)] if study.more else []),
        f"These numbers come from the {study.name} ({p['epochs']} epochs at {p['crop_size']} px on CPU, "
        + ("all of pbc:train" if not p.get("train_subset_per_class") else
           f"{p['train_subset_per_class']} training images per class")
        + f", {seeds_phrase(per_arm)})"
        + (f", in which {study.caveat}" if study.caveat else "") + ".",
    ]
    return out


def lead(study: Study, runs: pd.DataFrame, rec: dict | None = None) -> str:
    """The page's first sentence: the gap in numbers, and whether any remedy of the study is shown to close it.
    `rec`: the study's recommendation when the caller has it already (the converged one bootstraps)."""
    rec = study.recommendation(runs) if rec is None else rec
    lv = levels(study, runs)
    away = lv.loc[list(SHIFTED_DOMAINS)]
    if rec.get("supported"):
        higher = [d for d in SHIFTED_DOMAINS if rec["words"].get(d) == "holds"]
        n, of = NUMBERS.get(len(higher), len(higher)), NUMBERS.get(len(SHIFTED_DOMAINS))
        remedy = (f"one remedy — {recipe_name(study.rule, rec['recipe'])} — scores higher than the plain recipe on "
                  f"{'all' if len(higher) == len(SHIFTED_DOMAINS) else n} of the {of} other labs whose images chose "
                  f"it: {supported_on(rec['words']).removeprefix('higher on ')}; the first box below says what it "
                  "gained on labs it was not chosen on")
    else:
        remedy = "the remedy the plan's rule chooses is not shown to help"
    return (f"Networks trained on one lab's white blood cells score {_range(lv.loc[IN_DOMAIN])} balanced accuracy on "
            f"that lab's held-out cells but {round(away['low'].min() * 100)}–{round(away['high'].max() * 100)}% on "
            f"other labs' images (the {NUMBERS.get(int(lv.loc[IN_DOMAIN, 'arms']))} trained arms without augmentation "
            f"or test-time methods), and {remedy}.")


def held_out_sentence(study: Study, runs: pd.DataFrame) -> str:
    """'Chosen without seeing the lab it is scored on ..., the rule gained LISC +8.9 pp [+3.1, +14.7], ...': the
    leave-one-domain-out gains over the plain recipe ('' without them)."""
    held = study.held_out(runs) if study.held_out else None
    if held is None or not held["gain"].notna().any():
        return ""
    gains = listed([f"{domain_name(d)} {fmt_gain(g, lo, hi)} pp" for d, g, lo, hi in
                    zip(held["held-out domain"], held["gain"], held["lo"], held["hi"]) if pd.notna(g)])
    same = held["chosen on the other three"].nunique() == 1
    return ("Chosen without seeing the lab it is scored on (each lab held out in turn, the recipe chosen on the "
            "other three" + ("" if same else ", not always this one") + f"), the rule gained {gains} over the plain "
            "recipe (mean over seeds, 95% CI over seeds, test-image sampling not included): the fairer estimate of "
            "what a new lab gains.")


def _scores(study: Study, runs: pd.DataFrame, label: str) -> str:
    """'94% on PBC (held-out test) but LISC 52%, BCCD 34%, ...': a recipe's mean scores over seeds."""
    means = recipes.recipe_means(runs, study.rule).loc[label]
    shifted = ", ".join(f"{domain_name(d)} {means[d]:.0%}" for d in SHIFTED_DOMAINS if pd.notna(means[d]))
    return f"{means[IN_DOMAIN]:.0%} on {domain_name(IN_DOMAIN)} but {shifted}"


def lab_box(study: Study, runs: pd.DataFrame, rec: dict | None = None) -> str:
    """Markdown for 'What a lab should do', from the study's recommendation rule (`rec`, as for lead)."""
    rec = study.recommendation(runs) if rec is None else rec
    lines = []
    if rec["recipe"] is None:
        lines.append("The study has no runs of its plain recipe yet, so it recommends nothing.")
    elif rec["recipe"] == row_label(*study.rule.plain):
        lines.append(f"No remedy beat the plain recipe, **{recipe_name(study.rule, rec['recipe'])}**, on the other "
                     "labs: the plan's rule keeps it.")
        lines.append(f"It scores {_scores(study, runs, rec['recipe'])} (balanced accuracy, mean over seeds).")
    else:
        name = recipe_name(study.rule, rec["recipe"])
        if rec.get("supported"):
            lines.append(f"Use **{name}**. The plan's rule chose it by its mean over all four other labs' images, "
                         "the same images its tests and the scores below come from; against the plain recipe those "
                         f"tests find it {supported_on(rec['words'])}.")
        else:
            lines.append(f"No remedy is shown to help. The plan's rule picks **{name}** as the best bet, but "
                         f"against the plain recipe it is {by_word(rec['words'])}.")
        held = held_out_sentence(study, runs)
        if held:
            lines.append(held)
        lines.append(f"On the images it was chosen on it scores {_scores(study, runs, rec['recipe'])} (balanced "
                     "accuracy, mean over seeds): not a differential count to report without checking it in your "
                     "own lab.")
    lines.append("Whatever you deploy, label a sample of your own cells and score the network on them (`wbcbench "
                 "score`) before trusting it: on another lab's images these networks can fall to chance. "
                 "Fine-tuning on a lab's own labelled cells was not tested here.")
    if rec.get("command"):
        command = rec["command"].replace(" --checkpoint", " \\\n    --checkpoint").replace(
            " --images", " \\\n    --images")
        lines.append(f"Train and apply the chosen recipe:\n\n```bash\n{command}\n```")
    return "\n\n".join(lines)
