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
# Set-up, the same in every notebook but for DATA_NEEDED (written by `python -m wbcbench.colab`: edit it there).
# On Colab it clones the repository, installs it (pins: requirements.txt), downloads the data this notebook
# reads and works inside the clone, so that results/ and notebooks/ are there. Elsewhere wbcbench is installed
# already (README): the cell only finds the repository root.
DATA_NEEDED = []  # `wbcbench data download` names
import os
import subprocess
import sys
from pathlib import Path

REPO = next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / "wbcbench" / "__init__.py").is_file()), None)
try:
    import google.colab  # noqa: F401  (importable on Colab only)
except ImportError:
    pass
else:
    if REPO is None:  # a fresh runtime: clone the repository
        url = os.environ.get("WBCBENCH_REPO_URL", "https://github.com/wbc-benchmark/wbc-benchmark")
        branch = os.environ.get("WBCBENCH_REPO_BRANCH", "main")
        REPO = Path("wbc-benchmark").resolve()
        subprocess.run(["git", "clone", "-q", "--depth", "1", "-b", branch, url, str(REPO)], check=True)
    os.chdir(REPO)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", ".", "-c", "requirements.txt"], check=True)
    if DATA_NEEDED:
        subprocess.run([sys.executable, "-m", "wbcbench.cli", "data", "download", *DATA_NEEDED], check=True)
    sys.path.insert(0, str(REPO))  # this kernel started before the install: let it import the clone
    print("working in", REPO)

# %% tags=["parameters"]
runs_dir = "results/cpu"
profile = "cpu"

# %%
from IPython.display import Markdown

from wbcbench import plots
from wbcbench.collect import load_runs
from wbcbench.study import STUDY_MODELS, normalisation_table
from wbcbench.tables import summary_table, to_markdown

runs, _ = load_runs(runs_dir, profile)
summary = summary_table(runs, eval_mode="standard")
norm = normalisation_table(summary, metric="balanced_accuracy")
have_runs = not norm.empty
Markdown(to_markdown(norm, index=True) if have_runs else
         f"**No normalisation runs of profile `{profile}` in `{runs_dir}` yet** (models "
         f"{', '.join(STUDY_MODELS)}). Run the CPU study sweep and re-run this notebook.")

# %%
if have_runs:
    assert set(norm.index[:-1]) <= set(STUDY_MODELS)
    assert norm.index[-1] == "majority baseline"

# %% [markdown]
# The same comparison as a chart (the dashed line is each domain's majority-class baseline):

# %%
sub = summary[summary["model"].isin(STUDY_MODELS)] if have_runs else summary
plots.show(plots.benchmark_chart(sub, "balanced_accuracy")) if have_runs else Markdown("_no chart: no runs yet_")

# %% [markdown]
# ## Accuracy, for completeness
#
# Plain accuracy of the same runs (inflated on domains dominated by one class; compare with the baseline).

# %%
Markdown(to_markdown(normalisation_table(summary, metric="accuracy"), index=True)
         if have_runs else "_no runs yet_")
