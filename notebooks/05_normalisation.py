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
# # Normalisation alternatives
#
# [**▶ Open in Colab**](https://colab.research.google.com/github/wbc-benchmark/wbc-benchmark/blob/main/notebooks/05_normalisation.ipynb)
#
# The paper's central claim is that batch normalisation (BN) hurts under domain shift, and that models
# without it (VGG-16 without BN, ResNet-50 with frozen BN or GroupNorm, a ViT with LayerNorm) transfer
# better. The CPU study tests that claim in a controlled way: the *same* ResNet-18, trained from scratch
# with the same recipe, with only its normalisation layer swapped:
#
# - **BN**: batch statistics during training, running averages at test time;
# - **GN** (GroupNorm, 32 groups), **IN** (InstanceNorm), **LN** (LayerNorm as GroupNorm with 1 group):
#   statistics of each image itself, identical in training and test;
# - **none**: no normalisation;
#
# and a small ViT (LayerNorm). There is no frozen-BN ResNet-18 from scratch: BN frozen at its initial
# statistics is an identity layer; frozen BN is studied on the pretrained EfficientNet-Lite0 of the
# [CPU study](06_cpu_study.ipynb). Each cell is the analysis plan's primary metric, mean ± 95% CI
# (Student t) over seeds; the verdict at the end applies the [analysis plan](../book/analysis_plan.md).

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
runs_dir = "results/cpu"
profile = "cpu"

# %% tags=["hide-input"]
# ruff: noqa: E501  (a figure's caption and alt text stand on its cell's one header line, as jupytext writes it)
from IPython.display import Markdown

from wbcbench.analysis import cpu_study
from wbcbench.models import MODELS
from wbcbench.report import forest, plots, run_tables, verdict_text
from wbcbench.report.tables import summary_table, to_markdown
from wbcbench.report.words import in_words, rows_in_words
from wbcbench.runs.collect import load_runs

#: the from-scratch normalisation variants and the ViT, in the study's order
NORM_MODELS = {m: MODELS[m].normalisation for m in cpu_study.STUDY_MODELS if m.startswith(("resnet18_", "vit_"))}
runs, _ = load_runs(runs_dir, profile)
summary = summary_table(runs, eval_mode="standard", metrics=cpu_study.STUDY_METRICS)
norm = run_tables.normalisation_table(summary, NORM_MODELS,
                                     chance=run_tables.chance_levels(runs, cpu_study.PRIMARY_METRIC))
have_runs = not norm.empty
Markdown(f"{verdict_text.progress_sentence(runs, runs_dir)}\n\n"
         f"**{cpu_study.METRIC_NAMES[cpu_study.PRIMARY_METRIC]} (%)**\n\n"
         + to_markdown(rows_in_words(norm), index=True) if have_runs else
         f"**No normalisation runs of profile `{profile}` in `{runs_dir}` yet** (models "
         f"{', '.join(NORM_MODELS)}). Run the CPU study sweep and "
         "re-run this notebook.")

# %% tags=["hide-input"]
if have_runs:
    assert set(norm.index[:-1]) <= set(NORM_MODELS)
    assert norm.index[-1] == "chance (1/classes)"

# %% [markdown]
# The same comparison as a chart. The dashed line is each domain's chance level for the primary metric,
# 1/K over its K classes with at least 5 test images: what a classifier that ignores the image scores.

# %% mystnb={"figure": {"caption": "The normalisation variants on each test domain: primary metric (balanced accuracy over the classes with at least 5 test images), mean over seeds (point) and 95% Student-t interval (bar); dashed, the domain's chance level (1/K).", "name": "fig-normalisation"}, "image": {"alt": "Dot plot, one panel per test domain: each normalisation variant's mean balanced accuracy with its 95% interval, and a dashed vertical line at the domain's chance level."}} tags=["hide-input"]
sub = summary[summary["model"].isin(NORM_MODELS)] if have_runs else summary
chance = run_tables.chance_levels(runs, cpu_study.PRIMARY_METRIC) if have_runs else {}
(plots.show(plots.benchmark_chart(sub, cpu_study.PRIMARY_METRIC, chance)) if have_runs
 else Markdown("_no chart: no runs yet_"))

# %% [markdown]
# ## What the comparisons say
#
# The networks without BN learn less in-domain in the same budget, so the plan tests "holds up better
# under shift" on the **drop from `pbc:test`** to each shifted domain, paired by seed, not on the shifted
# score alone. The drop per model and domain:

# %% mystnb={"figure": {"caption": "Drop of the primary metric from pbc:test to each shifted domain, in percentage points: mean over seeds (point) and 95% Student-t interval (bar); dashed, no drop.", "name": "fig-normalisation-drop"}, "image": {"alt": "Dot plot, one panel per shifted domain: each normalisation variant's drop from the in-domain score, in percentage points, with its 95% interval."}} tags=["hide-input"]
drops = run_tables.domain_drops(runs[runs["model"].isin(NORM_MODELS)] if have_runs else runs)
plots.show(plots.drop_chart(drops, cpu_study.PRIMARY_METRIC)) if len(drops) else Markdown("_no chart: no runs yet_")

# %% [markdown]
# The plan's comparisons of these models (claims (a), (b) and (d) of the CPU study), each drop difference with
# its interval and word; the [CPU study](06_cpu_study.ipynb) gives each comparison in words.

# %% mystnb={"figure": {"caption": "The CPU study's comparisons of the normalisation variants: the difference of the drops from pbc:test (positive: the first model loses less), in percentage points, with its 95% interval over seeds, one panel per claim, coloured by the plan's word.", "name": "fig-normalisation-claims"}, "image": {"alt": "Forest plot, one panel per claim: each comparison of two normalisation variants on each shifted domain as a point with its interval around a dashed zero line, coloured by its word."}} tags=["hide-input"]
verdict = cpu_study.verdict_table(runs)
ours = verdict[(verdict["kind"] == cpu_study.ROBUSTNESS) & verdict["a"].isin(NORM_MODELS)
               & verdict["b"].isin(NORM_MODELS)]
plots.show(forest.claims_forest(in_words(ours)))

# %% tags=["hide-input"]
assert set(ours["claim"]) == {"a", "b", "d"} and set(ours["word"]) <= set(cpu_study.WORDS)
if not have_runs:
    assert (ours["word"] == "undetermined").all()

# %% [markdown]
# ## Accuracy and macro-F1, for completeness
#
# Beside the primary metric, never deciding a verdict (accuracy is inflated on domains dominated by one
# class; compare with the baseline).

# %% tags=["hide-input"]
Markdown("\n\n".join(f"**{cpu_study.METRIC_NAMES[m]} (%)**\n\n"
                      + to_markdown(rows_in_words(run_tables.normalisation_table(
                                          summary, NORM_MODELS, m, chance=run_tables.chance_levels(runs, m))),
                                    index=True)
                      for m in cpu_study.BESIDE_METRICS) if have_runs else "_no runs yet_")
