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
# # The from-scratch CPU study: does batch normalisation break under domain shift?
#
# [**▶ Open in Colab**](https://colab.research.google.com/github/wbc-benchmark/wbc-benchmark/blob/main/notebooks/06_cpu_study.ipynb)
#
# Tsutsui, Su & Wen report that white-blood-cell classifiers with batch normalisation (BN) lose much more
# accuracy on images from other hospitals, stains and microscopes than the same networks without BN
# statistics (frozen BN, GroupNorm, no normalisation, a ViT), and that the damage comes from the BN
# running statistics. This chapter asks the same question on the data available here, on CPU:
#
# - every model is trained on `pbc:train` (the PBC smears, WBCAtt split) and tested on `pbc:test` (same
#   domain) and on four **shifted domains**: `lisc`, `bccd`, `jtsc`, `cellavision`;
# - a ResNet-18 is trained from scratch with each normalisation layer (BN, GroupNorm, InstanceNorm,
#   LayerNorm, none), next to a small ViT from scratch and an ImageNet-pretrained EfficientNet-Lite0
#   fine-tuned with BN in train mode or with BN frozen at its ImageNet statistics; the models with BN
#   running statistics are also evaluated with test-time methods: **AdaBN** (statistics re-estimated on
#   each target domain), **TENT** (entropy minimisation of the BN affine parameters) and test-time batch
#   statistics;
# - the model after the last epoch is tested (as in the paper), five seeds per model; seed *k* draws the
#   training subset and initialises the network, so two models' runs of one seed share their images.
#
# **Read these results for what they are:** small images (48 px crops instead of 224 px), a few epochs on a
# class-balanced subset of PBC, networks trained from scratch (only EfficientNet-Lite0 starts from
# ImageNet weights), on two CPU cores. They test the paper's *question* on other data with smaller models;
# they are not the paper's experiment, and section 8 lists what differs. Everything below is computed
# from the run folders on disk when the page is built, for whatever part of the grid has finished, and
# every sentence that states a result is generated from the verdict table of section 7.

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
runs_dir = "results/cpu"         # the grid's run folders (wbcbench sweep --grid cpu-study --out results/cpu)
pilot_dir = "results/cpu-pilot"  # the runs on pbc:val that chose the cpu profile

# %% tags=["hide-input"]
# ruff: noqa: E501  (a figure's caption and alt text stand on its cell's one header line, as jupytext writes it)
from IPython.display import Markdown

from wbcbench.analysis import cpu_study
from wbcbench.report import forest, plots, run_tables, verdict_text
from wbcbench.report.paper import PAPER_COUNTERPARTS, paper_orientation
from wbcbench.report.tables import METHOD_NAMES, STANDARD, for_reader, summary_table, to_markdown, wide_table
from wbcbench.report.words import arm_name, domain_name, in_words, rows_in_words
from wbcbench.runs.collect import load_runs

# %% [markdown]
# ## The rules, fixed before any result
#
# The rules: see the [analysis plan](../book/analysis_plan.md) chapter, fixed before the rerun grid
# existed. As `wbcbench.analysis.cpu_study` applies them (listed from its constants, not typed here):

# %% tags=["hide-input"]
Markdown(verdict_text.rules_markdown())

# %% tags=["hide-input"]
runs, skipped = load_runs(runs_dir)
have_runs = len(runs) > 0
progress = cpu_study.grid_progress(runs)
Markdown(f"**{verdict_text.progress_sentence(runs, runs_dir)}** Unfinished or unreadable run folders, not counted: "
         f"{len(skipped)}." + ("" if have_runs else " Start the grid (section 9) and re-run this notebook; the "
                               "tables and figures stay empty until then, and every comparison reads "
                               "*undetermined*."))

# %% [markdown]
# ## 1. The protocol that was actually run
#
# Read from the `config.json` of every run folder (finished or not), not from the code: the training
# settings (one row per distinct setting, with the models that used it) and, per model, which seeds have
# finished.

# %% tags=["hide-input"]
settings, seeds = run_tables.study_protocol(runs_dir)
Markdown(to_markdown(for_reader(settings)) if len(settings) else "_no run folders yet_")

# %% tags=["hide-input"]
Markdown(to_markdown(seeds) if len(seeds) else "_no run folders yet_")

# %% [markdown]
# ### How the `cpu` profile was chosen
#
# Resolution, epochs and the training subset were fixed *before* the grid was run, from ResNet-18 (BN) runs
# trained on `pbc:train` and scored on `pbc:val` only (no shifted domain and no `pbc:test` image was
# looked at). The aim was the smallest setting that is close to the best `pbc:val` accuracy and keeps one
# ResNet-18 run within about 3 minutes, so that the grid fits in about 2 hours on two cores. Training
# seconds are the sum of the epoch times in each run's `log.csv`, measured on a shared machine (other jobs
# ran at the same time), so they are indicative only.

# %% tags=["hide-input"]
pilot = run_tables.pilot_table(pilot_dir)
Markdown(to_markdown(for_reader(pilot.round({"training seconds": 0}),
                                percent=["pbc:val accuracy", "pbc:val balanced accuracy"]))
         if len(pilot) else f"_no pilot runs in `{pilot_dir}`_")

# %% tags=["hide-input"]
if len(pilot):
    assert set(pilot["status"]) <= {"done", "unfinished"}
    done = pilot[pilot["status"] == "done"]
    assert done["pbc:val accuracy"].between(0, 1).all()
if len(settings):
    assert seeds["seeds finished"].sum() <= (runs["run_dir"].nunique() if have_runs else 0)  # one run per seed at most
    assert set(settings["train"]) == {"pbc:train"}, "the study trains on pbc:train only"

# %% [markdown]
# ## 2. The tables
#
# Rows are models; a row `model + AdaBN` (or `+ TENT`, `+ batch stats`) is the same trained network
# evaluated with that test-time method, right under its standard evaluation. Each cell is the mean over
# seeds ± the half-width of the 95% Student-t confidence interval (seeds - 1 degrees of freedom), in %;
# with a single seed there is no interval and the cell says so. The last row is each domain's chance level:
# for accuracy the majority-class share (always predicting the most frequent class), for the balanced
# accuracies 1/K over the K classes counted (macro-F1 has no such row).
#
# The first table is the plan's primary metric, **balanced accuracy over the classes with at least 5 test
# images**: some classes are nearly absent from some domains, and one image of a class with one or three
# then moves plain balanced accuracy by up to 20 points. Accuracy, macro-F1 and plain balanced accuracy
# follow, beside it. The test-image counts per class, from the runs' own metrics:

# %% tags=["hide-input"]
Markdown(to_markdown(run_tables.domain_class_counts(runs)) if have_runs else "_no runs yet_")

# %% tags=["hide-input"]
summary = summary_table(runs, metrics=cpu_study.STUDY_METRICS, model_order=cpu_study.STUDY_MODELS)
tables = {m: wide_table(summary, m, seeds=True, chance=run_tables.chance_levels(runs, m) if have_runs else None)
          for m in cpu_study.STUDY_METRICS}
Markdown("\n\n".join(f"### {cpu_study.METRIC_NAMES[m].capitalize()} (%), mean ± 95% CI (Student t) over seeds\n\n"
                      + (to_markdown(rows_in_words(t), index=True) if have_runs else "_no runs yet_") for m, t in tables.items()))

# %% tags=["hide-input"]
if have_runs:
    last = {"accuracy": "majority baseline", "macro_f1": None}
    for m, t in tables.items():
        row = last.get(m, "chance (1/classes)")
        assert t.index[-1] == (row or t.index[-1]) and set(t.index) - {row} == set(summary["label"])
    assert summary["accuracy_mean"].between(0, 1).all() and (summary["seeds"] >= 1).all()
    # the CI is undefined exactly where there is one seed
    assert (summary["accuracy_ci95"].isna() == (summary["seeds"] == 1)).all()
else:
    assert all(t.empty for t in tables.values())

# %% [markdown]
# ## 3. How much each model loses under shift
#
# The robustness claims are tested on this drop: for every run, the primary metric on `pbc:test` minus
# the same metric on a shifted domain (adapted rows: both adapted), then mean and 95% Student-t interval
# over seeds. A longer bar to the right is a larger drop; a point without a bar has one seed.

# %% mystnb={"figure": {"caption": "Drop of the primary metric from pbc:test to each shifted domain, in percentage points, per model and test-time method: mean over seeds (point) and 95% Student-t interval (bar); dashed, no drop.", "name": "fig-cpu-drop"}, "image": {"alt": "Dot plot, one panel per shifted domain: each model's drop from its in-domain score in percentage points, coloured by evaluation (standard, AdaBN, batch statistics, TENT), with 95% intervals."}} tags=["hide-input"]
drops = run_tables.domain_drops(runs, cpu_study.PRIMARY_METRIC)
plots.show(plots.drop_chart(drops, cpu_study.PRIMARY_METRIC)) if len(drops) else Markdown("_no chart: no runs yet_")

# %% tags=["hide-input"]
if len(drops):
    assert set(drops["test_set"]) <= set(cpu_study.SHIFTED_DOMAINS)
    assert (drops["drop_lo"] <= drops["drop_mean"]).all() and (drops["drop_mean"] <= drops["drop_hi"]).all()

# %% [markdown]
# ## 4. What each test-time method gains
#
# The test-time claims are tested on this gain: the method's primary metric minus the same run's standard
# evaluation, in percentage points, mean over seeds with its 95% Student-t interval, for every domain
# (`pbc:test` shows what a method costs in-domain). Test-time batch statistics are shown beside AdaBN and
# TENT; the plan makes no claim about them.

# %% tags=["hide-input"]
methods = [m for m in summary["eval_mode"].unique() if m != STANDARD] if have_runs else []
gains = {m: run_tables.method_gains(runs, m) for m in methods}
Markdown("\n\n".join(f"**{METHOD_NAMES.get(m, m)}** (gain in pp, [95% CI])\n\n"
                      + to_markdown(rows_in_words(run_tables.gain_table(g)), index=True) for m, g in gains.items())
         if gains else "_no test-time evaluations yet_")

# %% tags=["hide-input"]
for g in gains.values():
    ci = g.dropna(subset=["lo"])
    assert ((ci["lo"] <= ci["gain"]) & (ci["gain"] <= ci["hi"])).all()
    assert set(g["test_set"]) <= {cpu_study.IN_DOMAIN, *cpu_study.SHIFTED_DOMAINS}

# %% [markdown]
# ## 5. Which classes fail: per-class recall on the shifted domains
#
# Recall of each class, averaged over seeds (grey = the class has no test image in that domain). Recall
# of a class with 1 or 3 images (see the counts above) is a coarse number.

# %% mystnb={"figure": {"caption": "Recall of each class on each shifted domain, mean over seeds, per model and test-time method (grey: the class has no test image there).", "name": "fig-cpu-recall"}, "image": {"alt": "Heatmaps, one per shifted domain: rows are models, columns the five classes, each cell the mean recall written in it."}} tags=["hide-input"]
recall = run_tables.recall_by_class(runs)
plots.show(plots.recall_heatmap(recall)) if len(recall) else Markdown("_no chart: no runs yet_")

# %% tags=["hide-input"]
if len(recall):
    r = recall["recall"].dropna()
    assert r.between(0, 1).all()
    assert recall.loc[recall["images"] == 0, "recall"].isna().all()

# %% [markdown]
# ## 6. Confusion matrices of the best and the worst model
#
# The models are ranked by their mean primary metric over the four shifted domains (standard
# evaluation; only models with results on all four are ranked; a model with few seeds can rank first or
# last by chance, so the number of seeds is shown). The matrices are summed over seeds (rows:
# true class, colour: share of the row, numbers: image counts).

# %% tags=["hide-input"]
ranking = run_tables.rank_models(summary)
Markdown(to_markdown(for_reader(ranking.assign(model=ranking["model"].map(arm_name)), percent=[ranking.columns[1]], names={
    ranking.columns[1]: f"mean {cpu_study.METRIC_NAMES[cpu_study.PRIMARY_METRIC]} over the shifted domains"}))
         if len(ranking) else "_no ranking: no runs yet_")

# %% mystnb={"figure": {"caption": "Confusion matrices of the best and the worst model on each shifted domain, summed over seeds: rows are the true class, colour the share of the row, numbers the image counts.", "name": "fig-cpu-confusion"}, "image": {"alt": "Eight 5 by 5 confusion matrices, the best and the worst model on each shifted domain, each cell with its image count."}} tags=["hide-input"]
confusions = {}
if len(ranking):
    picks = [("best", ranking["model"].iloc[0]), ("worst", ranking["model"].iloc[-1])]
    for tag, model in picks[: 1 if len(ranking) == 1 else 2]:
        for t in cpu_study.SHIFTED_DOMAINS:
            cm, n = run_tables.summed_confusion(runs, model, t)
            if cm is not None:
                confusions[f"{tag}: {arm_name(model)} | {domain_name(t)} ({n} seed{'s' if n > 1 else ''})"] = cm
plots.show(plots.confusion_chart(confusions, columns=2)) if confusions else Markdown("_no matrices: no runs yet_")

# %% tags=["hide-input"]
if confusions:
    best = ranking["model"].iloc[0]
    for t in cpu_study.SHIFTED_DOMAINS:
        cm, n = run_tables.summed_confusion(runs, best, t)
        per_seed = runs[(runs["model"] == best) & (runs["test_set"] == t) & (runs["eval_mode"] == "standard")]
        assert cm.sum() == per_seed["n"].sum() and n == len(per_seed)

# %% [markdown]
# ## 7. The verdict
#
# Computed by `cpu_study.verdict_table` from the rules above and nothing else: one row per claim, comparison and
# shifted domain. Robustness comparisons are paired by seed on the drop from `pbc:test`; test-time ones by
# run on the gain; the effect is positive in the claimed direction; p is the two-sided paired t-test, Holm
# p its adjustment within the claim, so a comparison that two claims share (GroupNorm against BN, in (a)
# and (b)) has one p and one Holm p per claim. Only runs of the grid's models count. Every comparison
# first, as a figure; then, per claim, its word and how many comparisons got each word:

# %% mystnb={"figure": {"caption": "Every comparison of the CPU study's claims (a)-(f) on each shifted domain: the paired effect in percentage points, positive in the claimed direction (for a robustness claim, how much less the first network drops from pbc:test; for a test-time claim, what the method gains), mean over seeds (point) and 95% Student-t interval (bar), coloured by the plan's word; dashed, no effect.", "name": "fig-cpu-claims"}, "image": {"alt": "Forest plot with one panel per claim, stacked. Each panel has one band per comparison, such as ResNet-18 with GroupNorm vs ResNet-18 with BatchNorm, holding four points, one per shifted domain (LISC circle, BCCD square, JTSC triangle, CellaVision diamond), each with its confidence interval and coloured by the word it got: holds, contradicted, inconclusive, uninformative or undetermined. A dashed vertical line marks zero effect."}} tags=["hide-input"]
verdict = cpu_study.verdict_table(runs)
plots.show(forest.claims_forest(in_words(verdict)))

# %% tags=["hide-input"]
claims = cpu_study.claim_summary(verdict)
Markdown(to_markdown(verdict_text.claims_table(verdict)))

# %% [markdown]
# ### Every comparison, in words

# %% tags=["hide-input"]
Markdown(verdict_text.verdict_sentences(in_words(verdict), claims=False))

# %% tags=["hide-input"]
assert len(verdict) == sum(len(c.comparisons) for c in cpu_study.CLAIMS) * len(cpu_study.SHIFTED_DOMAINS)
assert set(verdict["word"]) <= set(cpu_study.WORDS) and set(claims["verdict"]) <= set(cpu_study.CLAIM_WORDS)
assert not set(verdict["a"]) & set(progress["others"])  # runs of models no longer in the grid never count
tested = verdict[verdict["p_holm"].notna()]
assert ((verdict["word"] == "holds") == ((verdict["p_holm"] < cpu_study.ALPHA) & (verdict["effect"] > 0))).all()
assert ((verdict["word"] == "contradicted") == ((verdict["p_holm"] < cpu_study.ALPHA) & (verdict["effect"] < 0))).all()
assert (tested["p_holm"] >= tested["p"] - 1e-12).all()
assert (verdict["word"] == "undetermined").eq(verdict["n"] < 2).all()
if not have_runs:
    assert (verdict["word"] == "undetermined").all()

# %% [markdown]
# ## 8. These are not the paper's numbers
#
# The paper (Table 1) trains ResNet-50, VGG-16 and ViT-B/16, **pretrained on ImageNet**, on **Raabin-WBC**
# at **224 px** for 100 epochs and tests on Raabin TestA/TestB, its own LISC crops and BCCD. This study
# trains on **PBC** (Raabin-WBC is not available here) at **48 px** crops for a few epochs on a subset of
# 200 images per class, mostly **from scratch** (only EfficientNet-Lite0 is ImageNet-pretrained), with
# smaller architectures. Our `lisc` crops are not the paper's (its `lisc-paper` crops are cut
# differently), `jtsc` and `cellavision` are not in the paper at all, and the training domain differs,
# so every shift is a different shift. **Only BCCD is the paper's exact test set**; the table below puts
# the paper's BCCD accuracy next to our closest counterpart of each of its models, for orientation only:
# neither the training data nor the models are the same, and the numbers are not expected to agree.

# %% tags=["hide-input"]
orient = paper_orientation(summary, "bccd")
Markdown(to_markdown(orient))

# %% tags=["hide-input"]
assert len(orient) == len(PAPER_COUNTERPARTS)
assert orient["paper bccd accuracy (%)"].ne("–").all()  # every counterpart's paper number is in the CSV

# %% [markdown]
# ### The grid's measured compute
#
# Per model, from the finished runs on disk: the wall time of each run's executed notebook (training and
# every evaluation, as papermill timed it) and the training time of its `log.csv`, on this project's
# 2-core CPU machine. Runs that shared the machine with other jobs took longer than they would alone: "slowed
# runs" counts those with a training epoch over twice their median epoch.

# %% tags=["hide-input"]
timing = run_tables.grid_time(runs_dir)
Markdown(to_markdown(timing.round({"median run (s)": 0, "total (h)": 2, "training total (h)": 2})) if len(timing)
         else "_no finished runs yet_")

# %% tags=["hide-input"]
if len(timing):
    assert timing["runs"].iloc[-1] == timing["runs"].iloc[:-1].sum()

# %% [markdown]
# ## 9. How to rerun
#
# The whole grid (seed-major, resumable: finished runs are skipped, an interrupted run resumes from its
# checkpoint), then this page:
#
# ```bash
# wbcbench sweep --grid cpu-study --out results/cpu
# jupyter-book build .
# ```
#
# Each run can also be redone on its own; these commands are rebuilt from each run's `config.json`
# (`wbcbench train ... --resume`, or the same through the training notebook with papermill), one per
# trained network (model and training augmentation) here (change `--seed` for the others):

# %% tags=["hide-input"]
rerun = run_tables.study_rerun(runs_dir, out=runs_dir)
one = rerun.drop_duplicates("variant") if len(rerun) else rerun
Markdown("```bash\n" + "\n".join(one["cli"]) + "\n```" if len(one) else "_no run folders yet_")

# %% tags=["hide-input"]
if len(rerun):
    assert rerun["cli"].str.startswith("wbcbench train").all()
    assert rerun["cli"].str.contains(f"--out {runs_dir}", regex=False).all()
