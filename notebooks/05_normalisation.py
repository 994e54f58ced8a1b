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
# The paper's central finding is that batch normalisation (BN) hurts under domain shift, and that models
# without it (VGG-16 without BN, ResNet-50 with frozen BN or GroupNorm, a ViT with LayerNorm) transfer
# better. The CPU study tests that claim in a controlled way: the *same* ResNet-18, trained with the same
# recipe, with only its normalisation layer swapped:
#
# - **BN**: batch statistics during training, running averages at test time;
# - **frozen BN**: affine-only, statistics fixed at their initial values;
# - **GN** (GroupNorm, 32 groups), **IN** (InstanceNorm), **LN** (LayerNorm as GroupNorm with 1 group):
#   statistics of each image itself, identical in training and test;
# - **none**: no normalisation;
#
# and a small ViT (LayerNorm). Each cell is balanced accuracy, mean ± 95% CI (Student t) over seeds.

# %% tags=["remove-cell"]
import sys

if "google.colab" in sys.modules:  # Colab only
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "git+https://github.com/wbc-benchmark/wbc-benchmark"], check=True)

# %% tags=["parameters"]
runs_dir = "results/cpu"
profile = "cpu"

# %%
from IPython.display import Markdown

from wbcbench import plots, report

runs, _ = report.load_runs(runs_dir, profile)
summary = report.summary_table(runs, eval_mode="standard")
norm = report.normalisation_table(summary, metric="balanced_accuracy")
have_runs = not norm.empty
Markdown(report.to_markdown(norm, index=True) if have_runs else
         f"**No normalisation runs of profile `{profile}` in `{runs_dir}` yet** (models "
         f"{', '.join(report.NORM_MODELS)}). Run the CPU study sweep and re-run this notebook.")

# %%
if have_runs:
    assert set(norm.index[:-1]) <= set(report.NORM_MODELS)
    assert norm.index[-1] == "majority baseline"

# %% [markdown]
# The same comparison as a chart (the dashed line is each domain's majority-class baseline):

# %%
sub = summary[summary["model"].isin(report.NORM_MODELS)] if have_runs else summary
plots.show(plots.benchmark_chart(sub, "balanced_accuracy")) if have_runs else Markdown("_no chart: no runs yet_")

# %% [markdown]
# ## Accuracy, for completeness
#
# Plain accuracy of the same runs (inflated on domains dominated by one class; compare with the baseline).

# %%
Markdown(report.to_markdown(report.normalisation_table(summary, metric="accuracy"), index=True)
         if have_runs else "_no runs yet_")
