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
# # Deploying in a new lab
#
# [**▶ Open in Colab**](https://colab.research.google.com/github/wbc-benchmark/wbc-benchmark/blob/main/notebooks/08_new_lab.ipynb)
#
# A classifier trained on one lab's smears meets another lab's stain, scanner and camera. What should a
# practitioner do? This chapter puts every remedy of this project side by side on the network of the
# [pretrained study](07_pretrained.ipynb), EfficientNet-Lite0 with BN fine-tuned on `pbc:train`:
#
# - **at training time**, on every batch: HED stain jitter (Tellez et al., IEEE TMI 2018, "HED-light"
#   strength of Tellez et al., Med. Image Anal. 2019), colour jitter (brightness, contrast, saturation and
#   hue, torchvision's formulas), or grayscale input (BT.601 luma, test images converted too);
#   `wbcbench.engine.augment` documents each;
# - **at test time**, on the new lab's unlabelled images: exact AdaBN (Li et al. 2016), TENT (Wang et al.,
#   ICLR 2021), or stain normalisation to the training domain, Macenko (ISBI 2009) or Reinhard (IEEE CG&A
#   2001) through `torchstain`, with its reference fitted on `pbc:train` only (`wbcbench.adapt.stain`).
#
# A **recipe** is one training choice with one test-time choice; the plain recipe is neither. Each is
# scored on the four shifted domains, standing in for four new labs, and on `pbc:test` for its in-domain
# cost. The recommendation is chosen by the rule of the [analysis plan](../book/analysis_plan.md)'s
# addendum, fixed before any of these runs existed.
#
# These are the low-budget study's under-trained networks. The [converged study](10_pretrained_converged.ipynb)
# (its section 5) applies the second addendum's rule, which also weighs the frozen-BN arms, scale augmentation,
# rescaling and stain normalisation fitted per domain, to networks trained to convergence; the advice on the
# [first page](../book/intro.md) follows that study once its grid is complete.

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
runs_dir = "results/cpu-pretrained"  # wbcbench sweep --grid cpu-pretrained --out results/cpu-pretrained

# %% tags=["hide-input"]
# ruff: noqa: E501  (a figure's caption and alt text stand on its cell's one header line, as jupytext writes it)
from IPython.display import Markdown

from wbcbench.analysis import cpu_study
from wbcbench.analysis import pretrained_study as SP
from wbcbench.report import forest, plots, run_tables, verdict_text
from wbcbench.report.tables import summary_table, to_markdown, wide_table
from wbcbench.report.words import rows_in_words
from wbcbench.runs.collect import load_runs

runs, _ = load_runs(runs_dir)
grid = SP.pretrained_runs(runs)
recipe_labels = list(SP.RECIPE_BY_LABEL)
have_runs = bool(len(grid)) and grid["model"].str.startswith(SP.BASE).any()
Markdown(f"**{verdict_text.progress_sentence(runs, runs_dir, grid=SP.GRID)}**" + ("" if have_runs else
         " No EfficientNet-Lite0 run has finished yet: the tables below are empty and nothing is recommended."))

# %% [markdown]
# ## 1. Every recipe, per domain
#
# The primary metric (balanced accuracy over classes with ≥ 5 test images), in %, mean ± 95% Student-t
# interval over seeds. The `pbc:test` column is the in-domain cost.

# %% tags=["hide-input"]
base = grid[grid["model"].str.startswith(SP.BASE) & ~grid["model"].str.contains("freezebn")] if have_runs else grid
summary = summary_table(base, metrics=cpu_study.STUDY_METRICS,
                        model_order=list(dict.fromkeys(m for m, _ in SP.RECIPES)))
table = wide_table(summary, cpu_study.PRIMARY_METRIC, seeds=True,
                   chance=run_tables.chance_levels(base, cpu_study.PRIMARY_METRIC) if have_runs else None)
Markdown(to_markdown(rows_in_words(table), index=True) if have_runs else "_no runs yet_")

# %% [markdown]
# ## 2. Each recipe against the plain one
#
# The gain on each shifted domain (recipe minus plain, paired by seed, in percentage points, with its 95%
# interval), one Holm family for all 19 recipes × 4 domains, and the plan's word: first as a figure, then
# as two tables (open them for the exact numbers).

# %% mystnb={"figure": {"caption": "Each recipe's gain over the plain recipe (EfficientNet-Lite0, BN fine-tuned, no augmentation, standard evaluation) on each shifted domain, in percentage points of balanced accuracy (classes with at least 5 test images): mean over seeds (point) and 95% Student-t interval (bar), coloured by the plan's word after Holm's correction over all recipes and domains; dashed, no gain.", "name": "fig-recipes"}, "image": {"alt": "Forest plot in four panels, one per shifted domain (lisc, bccd, jtsc, cellavision). Each panel lists the nineteen recipes, a training augmentation (none, HED jitter, colour jitter or grayscale) with a test-time method (none, AdaBN, TENT, Macenko or Reinhard), each as a point with its confidence interval, coloured by the word it got: holds, contradicted, inconclusive, uninformative or undetermined. A dashed vertical line marks zero gain."}} tags=["hide-input"]
tests = SP.recipe_tests(runs)
plots.show(forest.recipes_forest(tests))

# %% tags=["hide-output", "hide-input"]
gains, words = verdict_text.recipe_tables(tests)
Markdown("**gain (pp) [95% CI]**\n\n" + to_markdown(rows_in_words(gains), index=True) + "\n\n**word**\n\n"
         + to_markdown(rows_in_words(words), index=True))

# %% tags=["hide-input"]
assert len(tests) == (len(SP.RECIPES) - 1) * len(cpu_study.SHIFTED_DOMAINS)
assert set(tests["word"]) <= set(cpu_study.WORDS)

# %% [markdown]
# ## 3. What a recommendation gains in a lab it has never seen
#
# For each shifted domain in turn, the recipe is chosen on the *other three* (highest mean score among
# recipes that lose at most 2 points in-domain) and scored on the held-out one, against the plain recipe.
# These gains are what a lab that follows the recommendation can expect, without the optimism of choosing
# and scoring on the same domain. The table after the figure has each side's score (open it).

# %% mystnb={"figure": {"caption": "Leave one domain out: for each shifted domain, the recipe chosen on the other three (named under the domain) and its gain over the plain recipe on the held-out domain, in percentage points of balanced accuracy (classes with at least 5 test images): mean over seeds (point) and 95% Student-t interval (bar); dashed, no gain.", "name": "fig-held-out"}, "image": {"alt": "Forest plot with four rows, one per held-out domain (lisc, bccd, jtsc, cellavision), each labelled with the recipe chosen on the other three domains and showing that recipe's gain over the plain recipe as a point with its confidence interval; a dashed vertical line marks zero gain."}} tags=["hide-input"]
held = SP.held_out(runs)
plots.show(forest.held_out_forest(held))

# %% tags=["hide-output", "hide-input"]
Markdown(to_markdown(verdict_text.held_out_table(held)))

# %% tags=["hide-input"]
assert list(held["held-out domain"]) == list(cpu_study.SHIFTED_DOMAINS)

# %% [markdown]
# ## 4. The recommendation, and the one command that applies it

# %% tags=["hide-input"]
rec = SP.recommendation(runs)
text = "The recommendation: " + verdict_text.recommendation_sentence(rec)
if rec["command"] is not None:
    text += ("\n\nTrain it and apply it to a folder of your own unlabelled images (any folder tree; one CSV row per "
             "image with the predicted class and the five probabilities):\n\n```bash\n" + rec["command"] + "\n```")
Markdown(text)

# %% tags=["hide-input"]
if rec["recipe"] is not None:
    assert rec["recipe"] in recipe_labels and rec["command"].startswith("wbcbench predict")
