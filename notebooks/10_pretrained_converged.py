# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The converged pretrained study
#
# [**▶ Open in Colab**](https://colab.research.google.com/github/wbc-benchmark/wbc-benchmark/blob/main/notebooks/10_pretrained_converged.ipynb)
#
# The [low-budget study](07_pretrained.ipynb) measured more than normalisation: its BN fine-tuned networks
# ended training less accurate than the frozen-BN ones, its class-balanced training met imbalanced test sets,
# and the cells of BCCD and JTSC fill far more of the frame than PBC's. This study removes the three, by the
# second addendum of the [analysis plan](../book/analysis_plan.md), fixed before any of its runs existed:
#
# - every arm is trained **to convergence** on all of `pbc:train` (its natural class mix), 96 px crops,
#   8 epochs, and checked on seed 0 before the other seeds run (section 2);
# - the arms are EfficientNet-Lite0, -Lite1 and -Lite2 with **BN fine-tuned**, **BN frozen** at ImageNet
#   statistics, and **frozen BN with only the last stages trained**, and Lite0 with BN fine-tuned trained with
#   **colour jitter**, **scale augmentation** (a zoom by a factor drawn from [1/2, 2]) or both; five seeds each,
#   but for the plan's rule that drops Lite1 from seeds 1–4 if seed 0 projects the grid past 10 hours (it did:
#   section 7 gives the projection, and with Lite1 untested a claim holds on a domain only where it holds on
#   both Lite0 and Lite2);
# - each run is tested on `pbc:test` and the four shifted domains in the standard way and with test-time
#   methods that use only the new domain's unlabelled images: **AdaBN**, **TENT** (batches of 64),
#   **rescaling** to the training domain's cell scale, rescaling then AdaBN, and stain normalisation
#   (**Macenko** or **Reinhard**) fitted once per domain;
# - a claim (V1–V6) gets **one word per domain** from its three networks, and *holds* or *contradicted*
#   also needs the bootstrap over the domain's test images to agree with the paired t-test over seeds.
#
# The metric is the plan's primary one throughout: balanced accuracy over the classes with at least 5 test
# images, in %. Every number below is from the runs on disk when the page is built, and the first line says
# how much of the grid that is.

# %% tags=["remove-cell"]
# Set-up, the same in every notebook but for the data it reads (wbcbench/colab.py writes it): a fresh Colab
# runtime first clones the repository (WBCBENCH_REPO_URL / WBCBENCH_REPO_BRANCH override its URL / branch).
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("google") and importlib.util.find_spec("google.colab") and not os.path.isdir("wbcbench"):
    subprocess.run('[ -d wbc-benchmark ] || git clone -q --depth 1 -b "${WBCBENCH_REPO_BRANCH:-main}" '
                   '"${WBCBENCH_REPO_URL:-https://github.com/wbc-benchmark/wbc-benchmark}" wbc-benchmark',
                   shell=True, check=True)
    sys.path.insert(0, os.path.abspath("wbc-benchmark"))
from wbcbench.colab import setup  # noqa: E402  (importable once cloned)

# on Colab: install the clone, download the data, work inside the clone
ROOT = setup(data=[])

# %% tags=["parameters", "hide-input"]
runs_dir = "results/cpu-pretrained-v2"  # wbcbench sweep --grid cpu-pretrained-v2 --out results/cpu-pretrained-v2

# %% tags=["hide-input"]
# ruff: noqa: E501  (a figure's caption and alt text stand on its cell's one header line, as jupytext writes it)
from pathlib import Path

import pandas as pd
from IPython.display import Markdown

from wbcbench.analysis import pretrained_v2 as V2
from wbcbench.analysis import recipes
from wbcbench.analysis.stats import mean_ci
from wbcbench.analysis.verdict import MIN_PAIRS, PRIMARY_METRIC, grid_progress, grid_variants, variant_seeds
from wbcbench.core.names import IN_DOMAIN, SHIFTED_DOMAINS, STANDARD, method_label, ordered, row_label
from wbcbench.core.profiles import get_profile
from wbcbench.report import forest, plots, run_tables, verdict_text
from wbcbench.report.tables import fmt_gain, for_reader, summary_table, to_markdown, wide_table
from wbcbench.report.words import (
    arm_name,
    arms_named,
    by_word,
    domain_name,
    in_words,
    listed,
    recipe_name,
    shown_domain_words,
)
from wbcbench.runs.collect import load_runs
from wbcbench.sweep.grids import get_grid

#: Lite0's arms (V2.ARMS, simplest first), then Lite1's and Lite2's
ARM_ORDER = [*V2.ARMS, *sorted(v for v in grid_variants(V2.GRID) if v not in V2.ARMS)]
VAL = V2.CHECK_SET
NOTHING = "_No run of the grid has finished yet._"


def method_name(mode: str) -> str:
    return "standard evaluation" if mode == STANDARD else method_label(mode)


assert set(grid_variants(V2.GRID)) == set(ARM_ORDER) and all(arm_name(a) != a for a in ARM_ORDER)

runs, skipped = load_runs(runs_dir)
v2 = V2.v2_runs(runs)
have_runs = len(v2) > 0
progress = grid_progress(runs, V2.GRID)
seeds_per_arm = v2.groupby("model")["seed"].nunique() if have_runs else pd.Series(dtype=int)
waiting = [arm_name(a) for a in ARM_ORDER if a not in seeds_per_arm.index]
text = f"**{verdict_text.progress_sentence(runs, runs_dir, grid=V2.GRID)}**"
if have_runs:
    text += " Finished seeds per arm: " + "; ".join(
        f"{arm_name(a)} {seeds_per_arm[a]}" for a in ARM_ORDER if a in seeds_per_arm.index) + "."
    text += f" No run yet: {listed(waiting, '; ')}." if waiting else ""
else:
    text += " " + NOTHING
text += f" Unfinished or unreadable run folders, not counted: {len(skipped)}." if skipped else ""
assert progress["finished"] == v2.groupby(["model", "seed"]).ngroups <= progress["total"]
Markdown(text)

# %% [markdown]
# ## 1. The claims, domain by domain
#
# Each claim is tested on Lite0, Lite1 and Lite2 on each shifted domain (Lite1 ran one seed, so its
# comparisons are undetermined): robustness claims (V1, V2) on the score on the shifted domain, paired by seed;
# test-time claims (V3–V6) on the gain, paired by run (V6: rescaling then AdaBN against AdaBN alone). Holm
# within each claim; *holds* or *contradicted* also needs the 95% bootstrap interval over the domain's test
# images to exclude 0 the same way. On a domain the claim **holds** when it holds on at least two networks and
# is contradicted on none, is **contradicted** in the reverse case, **mixed** when both happen,
# **uninformative** when on every network both sides score at most the majority-class accuracy and put most
# images into one class, **undetermined** while fewer than 2 seeds are paired, and **inconclusive** otherwise;
# *inconclusive (none tested)* marks a domain where no network's comparison could be tested (each uninformative
# or undetermined). The [glossary](../book/glossary.md) defines each word.

# %% tags=["hide-input"]
verdict = V2.verdict(runs) if have_runs else None
if have_runs:
    words = V2.domain_words(verdict)
    assert list(words["claim"]) == [c.id for c in V2.CLAIMS]
    assert set(words[list(SHIFTED_DOMAINS)].stack()) <= set(V2.DOMAIN_WORDS), words
    for cid, d in ((c, d) for c in words["claim"] for d in SHIFTED_DOMAINS):  # undetermined = too few seeds
        g = verdict[(verdict["claim"] == cid) & (verdict["test_set"] == d)]
        assert (words.set_index("claim").loc[cid, d] == "undetermined") == g["n"].lt(MIN_PAIRS).all(), (cid, d)
    assert (verdict.loc[verdict["word"] == "holds", "boot_lo"] > 0).all()  # the bootstrap agrees with every word
    assert (verdict.loc[verdict["word"] == "contradicted", "boot_hi"] < 0).all()
    lines = [f"- {verdict_text.domain_claim_sentence(r)}" for _, r in shown_domain_words(verdict).iterrows()]
    pairs = int(verdict["n"].max())
    note = ("" if pairs >= MIN_PAIRS else f"\n\nSo far no comparison has more than {pairs} paired seed"
            f"{'s' * (pairs != 1)} and a test needs {MIN_PAIRS}: every word reads *undetermined* until the next "
            "seeds land.")
    text = "\n".join(lines) + note
Markdown(text if have_runs else NOTHING)

# %% mystnb={"figure": {"caption": "Every comparison of the claims V1-V6 on each shifted domain: the paired effect in percentage points, positive in the claimed direction (for V1 and V2, how much higher the frozen-BN arm scores on the shifted domain than BN fine-tuned; for V3-V6, what the method gains), mean over seeds (point) and 95% Student-t interval (bar), coloured by the comparison's word (Holm within the claim, and the bootstrap over test images agreeing); dashed, no effect. A claim holds on a domain when at least two networks' comparisons hold there and none is contradicted.", "name": "fig-converged-claims"}, "image": {"alt": "Forest plot with six stacked panels, one per claim V1 to V6. Each panel has one band per EfficientNet-Lite network (Lite0, Lite1, Lite2), holding four points, one per shifted domain (LISC circle, BCCD square, JTSC triangle, CellaVision diamond), each with its confidence interval and coloured by the word it got: holds, contradicted, inconclusive, uninformative or undetermined. Lite1's points have no bar: it ran one seed. A dashed vertical line marks zero effect."}} tags=["hide-input"]
(plots.show(forest.claims_forest(in_words(verdict))) if have_runs else Markdown(NOTHING))

# %% [markdown]
# ## 2. Did every arm converge?
#
# The plan's check, on seed 0 of every arm and before any later seed runs: training accuracy in the last
# epoch within 1 point of the epoch before, for every arm; at least 97% balanced accuracy on `pbc:val` for
# the BN fine-tuned arms. An arm that fails sends every arm back for 12 epochs.

# %% tags=["hide-input"]
first = v2[v2["seed"] == 0] if have_runs else v2
logs = {d: pd.read_csv(Path(d) / "log.csv") for d in first["run_dir"].unique()}
conv = V2.convergence_check(runs, logs)
assert len(conv) == first["model"].nunique() == len(logs), "one row per arm with a finished seed 0"
assert conv["epochs"].eq(get_profile(get_grid(V2.GRID)["profile"])["epochs"]).all(), conv
assert conv[["train acc, last", "train acc, before", f"{VAL} balanced accuracy"]].stack().between(0, 1).all()
if len(conv):
    shown = conv.assign(arm=[arm_name(a) for a in conv["arm"]],
                        change=[f"{(a - b) * 100:+.1f}" for a, b in zip(conv["train acc, last"],
                                                                         conv["train acc, before"])],
                        passes=["yes" if p else "no" for p in conv["passes"]])
    shown = shown[["arm", "epochs", "train acc, before", "train acc, last", "change", f"{VAL} balanced accuracy",
                   "passes"]]
    shown = for_reader(shown, percent=["train acc, before", "train acc, last", f"{VAL} balanced accuracy"],
                       names={"train acc, before": "training accuracy, epoch before last",
                              "train acc, last": "training accuracy, last epoch",
                              "change": "change (pp)"})
    failed = [arm_name(a) for a, p in zip(conv["arm"], conv["passes"]) if not p]
    text = to_markdown(shown) + "\n\n" + (
        f"All {len(conv)} arms with a finished seed 0 pass: the {conv['epochs'].iloc[0]}-epoch budget stands"
        + (f" so far ({len(conv)} of {len(ARM_ORDER)} arms checked)." if len(conv) < len(ARM_ORDER) else ".")
        if not failed else f"Failing the check: {listed(failed, '; ')}. By the plan every arm is trained for 12 "
        "epochs instead, and these runs are reported, not used.")  # 12: the plan's fallback budget (its addendum)
    later = [arm_name(a) for a in ARM_ORDER if a not in set(conv["arm"])]
    text += f" Not checked yet (seed 0 not finished): {listed(later, '; ')}." if later else ""
Markdown(text if len(conv) else NOTHING)

# %% [markdown]
# ## 3. Scores
#
# Standard evaluation (no test-time method), balanced accuracy over the classes with at least 5 test images,
# mean ± 95% Student-t interval over seeds, against each domain's chance level, 1 over the number of classes it
# has with at least 5 images; the table below gives the numbers (an arm with one seed has
# no interval: its score alone).

# %% mystnb={"figure": {"caption": "Every arm's balanced accuracy (classes with at least 5 test images) on the training lab's held-out cells and on the four other labs, standard evaluation: mean over seeds (point) and 95% Student-t interval (bar); dashed, each domain's chance level.", "name": "fig-converged-scores"}, "image": {"alt": "Dot plot in five panels, one per test domain (PBC held-out test, LISC, BCCD, JTSC, CellaVision). Each panel lists the twelve arms (EfficientNet-Lite0 with BN fine-tuned, BN frozen, frozen BN with the last stages trained, and with colour jitter, scale augmentation or both; Lite1 and Lite2 with the three BN treatments), each as a point with its confidence interval; a dashed vertical line marks chance. On PBC every arm is near 100%; on the other labs the arms spread between chance and about 70%."}} tags=["hide-input"]
summary = summary_table(v2[v2["eval_mode"] == STANDARD] if have_runs else v2, metrics=(PRIMARY_METRIC,),
                        model_order=ARM_ORDER)
chance = run_tables.chance_levels(v2, PRIMARY_METRIC)
(plots.show(forest.arms_dot_chart(summary[summary["test_set"] != VAL], chance, PRIMARY_METRIC)) if have_runs
 else Markdown(NOTHING))

# %% tags=["hide-input"]
table = wide_table(summary, PRIMARY_METRIC, seeds=True, chance=chance)
if have_runs:
    assert table.index[-1] == "chance (1/classes)" and set(summary["test_set"]) <= set(chance)
    assert summary["seeds"].between(1, len(get_grid(V2.GRID)["seeds"])).all()
    assert summary[f"{PRIMARY_METRIC}_mean"].between(0, 1).all()
    table.index = [arm_name(a) if a in ARM_ORDER else a for a in table.index]
    table.index.name = "arm"
Markdown(to_markdown(table, index=True) if have_runs else NOTHING)

# %% [markdown]
# ## 4. What each test-time method costs at home and gains away
#
# Each method minus the standard evaluation of the same run, in percentage points, mean over seeds and 95%
# Student-t interval (no interval with one seed). On `pbc:test` and `pbc:val` a negative number is what the
# method costs on the training lab's own images; on the shifted domains a positive one is what it gains there.
# BN methods (AdaBN, TENT, rescaling + AdaBN) apply only where BN statistics are fine-tuned.

# %% tags=["hide-input"]
DOMAINS = (IN_DOMAIN, VAL, *SHIFTED_DOMAINS)
gains = pd.concat([run_tables.method_gains(v2, m, PRIMARY_METRIC, domains=DOMAINS) for m in V2.TEST_METHODS[1:]],
                  ignore_index=True) if have_runs else pd.DataFrame()
if have_runs:
    assert not (gains["model"].str.contains("freezebn") & gains["method"].isin(V2.BN_ONLY)).any()
    assert gains["gain"].between(-1, 1).all() and gains["seeds"].ge(1).all()
    cells = gains.assign(cell=[fmt_gain(d, lo, hi) for d, lo, hi in zip(gains["gain"], gains["lo"], gains["hi"])])
    wide = cells.pivot_table(index=["model", "method"], columns="test_set", values="cell", aggfunc="first")
    wide = wide[ordered(wide.columns)]
    assert wide.notna().all().all(), "every method is evaluated on every test set of each run"
    seeds = cells.groupby(["model", "method"])["seeds"].min()
    order = sorted(wide.index, key=lambda k: (ARM_ORDER.index(k[0]), V2.TEST_METHODS.index(k[1])))
    wide = wide.loc[order]
    wide.insert(0, "seeds", seeds.reindex(wide.index).to_numpy())
    wide.insert(0, "method", [method_name(m) for _, m in wide.index])
    wide.insert(0, "arm", [arm_name(a) for a, _ in wide.index])
    text = to_markdown(wide.reset_index(drop=True))
Markdown(text if have_runs else NOTHING)

# %% [markdown]
# TENT with batches of 64 against exact AdaBN on the same run (TENT minus AdaBN, pp): how far the plan's
# TENT setting is from re-estimating the statistics on the whole domain.

# %% tags=["hide-input"]
if have_runs:
    per_run = v2[v2["eval_mode"].isin(["adabn", "tent"])].pivot_table(
        index=["model", "seed", "run_dir", "test_set"], columns="eval_mode", values=PRIMARY_METRIC)
    rows = []
    if {"adabn", "tent"} <= set(per_run.columns):
        diff = (per_run["tent"] - per_run["adabn"]).dropna().groupby(["model", "test_set", "seed"]).mean()
        for (arm, test), g in diff.groupby(["model", "test_set"]):
            c = mean_ci(g.tolist())
            rows.append({"arm": arm, "test_set": test, "cell": fmt_gain(c["mean"], c["mean"] - c["ci95"],
                                                                        c["mean"] + c["ci95"]), "seeds": c["n"]})
    tent = pd.DataFrame(rows, columns=["arm", "test_set", "cell", "seeds"])
    assert set(tent["arm"]) <= {a for a in ARM_ORDER if "freezebn" not in a}
    if len(tent):
        tent_wide = tent.pivot_table(index="arm", columns="test_set", values="cell", aggfunc="first")
        tent_wide = tent_wide.loc[[a for a in ARM_ORDER if a in tent_wide.index], ordered(tent_wide.columns)]
        tent_wide.insert(0, "seeds", tent.groupby("arm")["seeds"].min().reindex(tent_wide.index).to_numpy())
        tent_wide.index = [arm_name(a) for a in tent_wide.index]
        tent_wide.index.name = "arm"
text = NOTHING if not have_runs else "_No BN fine-tuned run has finished yet._"
if have_runs and len(tent):
    shifted = diff[diff.index.get_level_values("test_set").isin(SHIFTED_DOMAINS)] * 100
    same = int((shifted.abs() < 0.05).sum())
    text = (to_markdown(tent_wide, index=True) + "\n\nTENT here updates the network after each batch of 64 "
            "images, so every batch after a domain's first is predicted by an adapted network. With batches of 64 it "
            f"differs from AdaBN: on the shifted domains a run's TENT minus its AdaBN score ranges from {shifted.min():+.1f}"
            f" to {shifted.max():+.1f} points over {len(shifted)} run × domain pairs, {same} of them within 0.05 "
            "points, so V4 tests a remedy of its own.")
Markdown(text)

# %% [markdown]
# ## 5. The recommendation (v2)
#
# A recipe is one trained arm of Lite0 with one test-time method. The rule: among the recipes whose arm
# loses at most 2 points on `pbc:test` in standard evaluation against the plain recipe (Lite0, BN
# fine-tuned, standard evaluation), the one with the highest mean score over the four shifted domains;
# **supported** when its tests against the plain recipe (one Holm family for every recipe, with the
# bootstrap requirement) hold on at least one domain and are contradicted on none. Then each domain held
# out in turn: the recipe chosen on the other three, and what it gains on the held-out one over the plain
# recipe, which is what a lab it has never seen can expect.

# %% tags=["hide-input"]
rec = V2.recommendation(runs) if have_runs else {"recipe": None}
means = recipes.recipe_means(runs, V2.RULE)
ready = means[list(SHIFTED_DOMAINS)].notna().all(axis=1) & means["gate"].notna()
plain = recipe_name(V2.RULE, row_label(*V2.RULE.plain))
if rec["recipe"] is None:
    text = f"No recipe can be chosen yet: the plain recipe ({plain}) has no finished run."
else:
    assert rec["recipe"] in V2.RULE.by_label and ready[rec["recipe"]]
    assert not rec["supported"] or ("holds" in rec["words"].values() and "contradicted" not in rec["words"].values())
    n = int(means.loc[ready, "seeds"].min())
    among = (f"among the {int(ready.sum())} of {len(means)} recipes that have runs on all four shifted domains"
             + ("" if progress["finished"] >= progress["total"] else " so far"))
    if rec["recipe"] == row_label(*V2.RULE.plain):
        text = (f"The rule chooses the plain recipe, **{plain}**, {among}: no other recipe within the gate "
                "scores higher.")
    else:
        text = (f"The rule chooses **{recipe_name(V2.RULE, rec['recipe'])}**, {among}. Against the plain recipe "
                "it is " + ("**supported**" if rec["supported"] else "**not supported**")
                + f" ({by_word(rec['words'], emphasis=True)}).")
    if n < MIN_PAIRS:
        text += (f" With {n} seed{'s' * (n != 1)} per recipe the tests cannot decide yet (they need {MIN_PAIRS} "
                 "paired seeds), and the choice may change as seeds land.")
    tests = V2.recipe_tests(runs)
    mine = tests[tests["label_a"] == rec["recipe"]].set_index("test_set").reindex(list(SHIFTED_DOMAINS))
    if rec["recipe"] != row_label(*V2.RULE.plain) and mine["word"].notna().any():
        assert dict(mine["word"].dropna()) == rec["words"]
        shown = pd.DataFrame({
            "gain over plain (pp) [95% CI over seeds]": [fmt_gain(*x) for x in zip(mine["effect"], mine["lo"],
                                                                                      mine["hi"])],
            "Holm p": [("–" if pd.isna(p) else "< 0.001" if p < 0.001 else f"{p:.3f}") for p in mine["p_holm"]],
            "bootstrap over test images (pp)": [("–" if pd.isna(lo) else f"[{lo * 100:+.1f}, {hi * 100:+.1f}]")
                                                for lo, hi in zip(mine["boot_lo"], mine["boot_hi"])],
            "word": mine["word"].fillna("–").tolist()}, index=[domain_name(d) for d in SHIFTED_DOMAINS])
        shown.index.name = "shifted domain"
        text += (f"\n\nThe tests behind that word, on the same images the rule chose on (one Holm family: every "
                 f"recipe against the plain one on every shifted domain, {int(tests['p_holm'].notna().sum())} of "
                 f"{len(tests)} comparisons tested):\n\n" + to_markdown(shown, index=True))
    text += ("\n\nTrain it and apply it to a folder of your own unlabelled images:\n\n```bash\n"
             + rec["command"] + "\n```")
    held = V2.held_out(runs)
    assert list(held["held-out domain"]) == list(SHIFTED_DOMAINS)
    text += "\n\n" + to_markdown(verdict_text.held_out_table(held, V2.RULE))
Markdown(text)

# %% [markdown]
# ## 6. Every comparison
#
# Each comparison of each claim in words, with its effect, intervals and p-values (open the output to read
# them). For V1 and V2 the "gain" is the difference of the two arms' scores on the shifted domain.

# %% tags=["hide-input", "hide-output"]
if have_runs:
    named = in_words(verdict)
    downgraded = named[named["word"] != named["word_t"]]
    text = verdict_text.verdict_sentences(named, claims=False)
    if len(downgraded):
        text += "\n**Inconclusive because the bootstrap over test images disagreed with the t-test:** " + "; ".join(
            f"{r.label_a} vs {r.label_b} on {r.test_set} (t-test: {r.word_t}; bootstrap 95% interval "
            f"[{r.boot_lo * 100:+.1f}, {r.boot_hi * 100:+.1f}] pp)" for r in downgraded.itertuples(index=False)) + "."
    assert len(verdict) == sum(len(c.comparisons) for c in V2.CLAIMS) * len(SHIFTED_DOMAINS)
    assert downgraded["word"].eq("inconclusive").all() and downgraded["word_t"].isin(["holds", "contradicted"]).all()
Markdown(text if have_runs else NOTHING)

# %% [markdown]
# ## 7. The grid's compute
#
# Per trained arm, from its finished runs on disk: runs and, as a mean per run, the wall time of its executed notebook,
# the seconds spent training (the epoch times of `log.csv`) and evaluating (the rest: every test
# set with every test-time method), on this project's 2-core CPU machine. Runs that shared the machine with
# other jobs, or whose sweep was paused, took longer than they would alone: the last column counts the runs
# with a training epoch over twice their median epoch.

# %% tags=["hide-input"]
timing = run_tables.grid_time(runs_dir)
if len(timing):
    t = timing[timing["model"] != "all"].set_index("model")
    assert t["runs"].le(len(get_grid(V2.GRID)["seeds"])).all() and t["runs"].sum() == timing["runs"].iloc[-1]
    assert (t["training total (h)"] <= t["total (h)"]).dropna().all(), "training is part of a run's wall time"
    t = t.loc[[a for a in ARM_ORDER if a in t.index] + [a for a in t.index if a not in ARM_ORDER]]
    shown = pd.DataFrame({"runs": t["runs"], "mean run (s)": (t["total (h)"] * 3600 / t["runs"]).round().astype("Int64"),
                          "of it training (s)": (t["training total (h)"] * 3600 / t["runs"]).round().astype("Int64"),
                          "of it evaluating (s)": ((t["total (h)"] - t["training total (h)"]) * 3600
                                                     / t["runs"]).round().astype("Int64"),
                          "evaluation share (%)": (100 * (1 - t["training total (h)"] / t["total (h)"])).round()
                          .astype("Int64"),
                          "total (h)": t["total (h)"].round(2),
                          "runs slowed by other work": t["slowed runs"]})
    shown.index = [arm_name(a) if a in ARM_ORDER else a for a in shown.index]
    shown.index.name = "arm"
    total = timing.iloc[-1]
    share = shown["evaluation share (%)"].astype(float)
    text = to_markdown(shown, index=True) + (
        f"\n\nIn all, {int(total['runs'])} runs took {total['total (h)']:.1f} h, "
        f"{total['training total (h)']:.1f} h of it training. The median arm spent {share.median():.0f}% of its "
        f"run outside training: evaluating every test set with every method, and starting up "
        f"({share.min():.0f}–{share.max():.0f}% across arms).")
    if set(ARM_ORDER) <= set(t.index):   # the plan projects from seed 0 of every arm
        grid = get_grid(V2.GRID)
        runs_of = {a: len(seeds) for a, seeds in variant_seeds(V2.GRID).items()}
        first_time = run_tables.grid_time(runs_dir, seeds=[0]).set_index("model")
        first = first_time["median run (s)"]
        planned = first[list(ARM_ORDER)].sum() * len(grid["seeds"]) / 3600
        as_run = sum(first[a] * runs_of[a] for a in ARM_ORDER) / 3600
        cut = [a for a in ARM_ORDER if runs_of[a] < len(grid["seeds"])]
        over = planned > V2.MAX_HOURS
        text += (f" Projected from each arm's seed-0 run, every arm at all {len(grid['seeds'])} seeds takes about "
                 f"{planned:.1f} h on this machine, {'past' if over else 'within'} the plan's {V2.MAX_HOURS} h")
        if over and cut:
            done = progress["finished"] >= progress["total"]
            text += (f": by the plan, {arms_named(cut, ARM_ORDER)} run at seed 0 only (their comparisons are "
                     f"undetermined: a test needs {MIN_PAIRS} seeds), and the grid as run "
                     + (f"was projected to take about {as_run:.1f} h (it took {total['total (h)']:.1f} h)." if done else
                        f"takes about {as_run:.1f} h."))
        elif over:
            text += (": the plan drops EfficientNet-Lite1 from seeds 1–4, and the grid does not do so yet "
                     "(its Lite1 entries need `seeds: [0]` in `wbcbench/sweep/grids.py`).")
        elif cut:
            text += f", yet the grid runs {arms_named(cut, ARM_ORDER)} at seed 0 only, which the plan does not ask."
        else:
            text += "."
        slowed = int(first_time.loc[list(ARM_ORDER), "slowed runs"].sum())
        if slowed:
            text += (f" {slowed} of the {len(ARM_ORDER)} seed-0 runs were slowed by other work on the machine (an "
                     "epoch over twice the run's median epoch), so these hours overstate what the grid takes alone.")
    else:
        text += (" The plan's projection of the whole grid (EfficientNet-Lite1 is dropped from seeds 1–4 if seed 0 "
                 f"projects it past 10 h) waits for seed 0 of every arm: {len(set(ARM_ORDER) & set(t.index))} of "
                 f"{len(ARM_ORDER)} have a finished run.")
Markdown(text if len(timing) else NOTHING)

# %% [markdown]
# ## 8. How to rerun
#
# The whole grid in one command (seed-major and resumable: finished runs are skipped, an interrupted run
# resumes from its checkpoint), then this page:
#
# ```bash
# wbcbench sweep --grid cpu-pretrained-v2 --out results/cpu-pretrained-v2
# jupyter-book build .
# ```
