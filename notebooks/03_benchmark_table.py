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
# # The benchmark table
#
# [**▶ Open in Colab**](https://colab.research.google.com/github/wbc-benchmark/wbc-benchmark/blob/main/notebooks/03_benchmark_table.ipynb)
#
# This notebook turns finished runs on disk into the benchmark table: one row per model, one column per
# test domain. Every cell is the mean over seeds with the half-width of a **95% confidence interval from
# Student's t distribution** with (seeds - 1) degrees of freedom; a cell with one seed has no interval and
# says `(n=1)`. Plain accuracy is misleading on imbalanced domains, so the table is given for accuracy and
# for balanced accuracy (mean per-class recall), with each domain's **majority-class baseline** (the
# accuracy of always predicting its most frequent class) as the last row.
#
# Runs are read from `runs_dir` (only runs with a `done` marker count). With `profile = "paper"` the
# table is also put side by side with the paper's published accuracy and the differences.

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
runs_dir = "results/cpu"  # relative to the working directory or, failing that, the repository
profile = "cpu"           # keep runs of this training profile only (None: all)

# %% tags=["hide-input"]
# ruff: noqa: E501  (a figure's caption and alt text stand on its cell's one header line, as jupytext writes it)
from IPython.display import Markdown

from wbcbench.core.profiles import get_profile
from wbcbench.report import plots, run_tables
from wbcbench.report.paper import compare_with_paper, load_published
from wbcbench.report.tables import for_reader, summary_table, to_markdown, wide_table
from wbcbench.report.words import rows_in_words
from wbcbench.runs.collect import load_runs

runs, skipped = load_runs(runs_dir, profile)
summary = summary_table(runs, eval_mode="standard")
have_runs = len(summary) > 0
Markdown(f"**{runs['run_dir'].nunique() if have_runs else 0} finished runs** of profile `{profile}` in "
         f"`{runs_dir}`; {len(skipped)} skipped (unfinished or unreadable)." if have_runs else
         f"**No finished runs of profile `{profile}` in `{runs_dir}` yet.** Train some (see the "
         "reproducibility chapter, `wbcbench sweep`) and re-run this notebook; the tables below stay empty "
         "until then.")

# %% [markdown]
# ## Accuracy (%), mean ± 95% CI (Student t) over seeds

# %% tags=["hide-input"]
acc = wide_table(summary, "accuracy")
Markdown(to_markdown(rows_in_words(acc), index=True) if have_runs else "_no runs yet_")

# %% [markdown]
# ## Balanced accuracy (%), mean ± 95% CI (Student t) over seeds

# %% tags=["hide-input"]
chance = run_tables.chance_levels(runs, "balanced_accuracy") if have_runs else {}
bal = wide_table(summary, "balanced_accuracy", chance=chance)
Markdown(to_markdown(rows_in_words(bal), index=True) if have_runs else "_no runs yet_")

# %% tags=["hide-input"]
if have_runs:
    assert list(acc.index)[-1] == "majority baseline" and list(bal.index)[-1] == "chance (1/classes)"
    assert set(acc.index[:-1]) == set(summary["model"])
    assert ((summary["accuracy_mean"] >= 0) & (summary["accuracy_mean"] <= 1)).all()
    assert (summary["seeds"] >= 1).all()
else:
    assert acc.empty and bal.empty

# %% [markdown]
# The same table as a chart, one panel per test domain. The dashed line is the domain's chance level for
# balanced accuracy, 1/K over its K classes with a test image: what a classifier that ignores the image
# scores there.

# %% mystnb={"figure": {"caption": "Balanced accuracy of each model on each test domain: mean over seeds (point) and 95% Student-t interval (bar); dashed, the domain's chance level (1/K).", "name": "fig-benchmark"}, "image": {"alt": "Dot plot, one panel per test domain: each model's mean balanced accuracy with its 95% interval, and a dashed vertical line at the domain's chance level."}} tags=["hide-input"]
(plots.show(plots.benchmark_chart(summary, "balanced_accuracy", chance)) if have_runs
 else Markdown("_no chart: no runs yet_"))

# %% tags=["hide-input"]
if have_runs:  # every domain drawn has its chance level, 1/K for K classes present
    assert set(chance) >= set(summary["test_set"]) and all(1 / 5 <= c <= 1 for c in chance.values())

# %% [markdown]
# ## The paper's published numbers
#
# Tsutsui, Su & Wen trained every model on Raabin-WBC Train and report test accuracy (%) over 10 seeds
# (the method of their "95% confidence interval" is not stated). With the `paper` profile our runs use
# the same training set and recipe, and the table below puts both side by side, with
# delta = ours - paper in percentage points. Runs of another profile are not comparable, so no delta is
# shown for them.

# %% tags=["hide-input"]
cpu = get_profile("cpu")
Markdown(f"The CPU study trains on PBC (`pbc:train`) with {cpu['crop_size']} px crops for {cpu['epochs']} "
         f"epochs, the paper on Raabin-WBC at {get_profile('paper')['crop_size']} px."
         + (" This page shows the `paper` profile's runs." if profile == "paper" else
            f" This page shows the `{profile}` profile's runs, so the table gives the paper's numbers alone."))

# %% tags=["hide-input"]
if profile == "paper":
    table = compare_with_paper(summary)
else:
    table = load_published().rename(columns={"accuracy_mean": "paper accuracy (%)",
                                             "accuracy_ci95": "paper 95% CI"})
Markdown(to_markdown(for_reader(table)))

# %% tags=["hide-input"]
assert len(table) == len(load_published())
