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
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Train and evaluate one run
#
# [**▶ Open in Colab**](https://colab.research.google.com/github/wbc-benchmark/wbc-benchmark/blob/main/notebooks/02_train_one_run.ipynb)
#
# This notebook trains **one model** with **one training profile and seed** on one white-blood-cell
# dataset, then tests it on every requested domain (optionally also with test-time adaptation: AdaBN,
# TENT, ...), and shows the learning curves, the per-domain metrics and the confusion matrices. It is a
# thin driver: all the work is done by `wbcbench.engine.train.run`, which writes a run directory
# `<out>/<model>-<profile>-s<seed>-<hash>/` (`config.json`, `log.csv`,
# `eval/<test set>[@<method>]/metrics.json` and `predictions.csv`, and `done` last). A finished run is never
# retrained: rerunning the notebook shows its results, adding only the evaluations it lacks (a new test
# set or method), and an interrupted run resumes from its last checkpoint (`resume=True`).
#
# The defaults (`resnet18_bn`, `smoke` profile) take seconds on a laptop CPU; set `profile="cpu"` for the
# CPU study or `profile="paper"` (on a GPU) for the paper's recipe.
#
# **Rerun it with other parameters** without opening it, through [papermill](https://papermill.readthedocs.io)
# (this is exactly what `wbcbench sweep` does for every point of a grid, keeping the executed copy
# as `notebook.ipynb` inside the run directory):
#
# ```bash
# papermill notebooks/02_train_one_run.ipynb executed.ipynb -p model resnet18_gn -p profile cpu -p seed 3
# ```
#
# or train the same run from the command line (same code, same run directory):
#
# ```bash
# wbcbench train --model resnet18_gn --profile cpu --seed 3 --resume
# ```
#
# The cell after training prints both commands, exactly, for the parameters used here.
#
# **On Colab**: the set-up cell clones the repository, installs it and downloads the data this notebook
# reads. A GPU runtime is used automatically when there is one.

# %% [markdown]
# ## Set-up

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
ROOT = setup(data=["pbc", "lisc", "bccd", "jtsc", "cellavision"])

# %%
# ruff: noqa: E501  (a figure's caption and alt text stand on its cell's one header line, as jupytext writes it)
import json
import warnings
from pathlib import Path

import pandas as pd
import torch

# Without ipywidgets tqdm falls back to text bars, warning with its install path: nothing to record.
warnings.filterwarnings("ignore", message="IProgress not found")

import wbcbench.engine.train
from wbcbench.report import plots
from wbcbench.runs import collect
from wbcbench.sweep import parameters

print("CUDA available:", torch.cuda.is_available(), "| torch", torch.__version__)

# %% [markdown]
# ## Parameters
#
# `papermill -p NAME VALUE` replaces these values. `test` and `adapt` (test-time methods: `adabn`,
# `batch_stats`, `tent`, `macenko`, `reinhard`) are comma-separated; `overrides` holds profile settings for this
# run only, e.g. `{"epochs": 1}`, `{"pretrained": True}` or `{"train_subset_per_class": None}` (every image)
# (any setting of `wbcbench.core.profiles.SETTINGS`; JSON-serialisable).
# `progress = False` drops the progress bars and keeps one line per epoch (sweeps do that).

# %% tags=["parameters"]
model = "resnet18_bn"
profile = "smoke"
seed = 0
train = "pbc:train"
test = "pbc:test,lisc,bccd,jtsc,cellavision"
device = "auto"
out = "runs"
data_root = None
adapt = ""
resume = True
progress = True
weights = None
overrides = {}

# %% [markdown]
# ## Check the parameters and train
#
# A parameter of the wrong type or out of range (say `seed="abc"`, or `overrides={"epochs": 0}`) stops here
# with a message naming it.

# %%
params = parameters.check_parameters(
    model=model, profile=profile, seed=seed, train=train, test=test, device=device, out=out, data_root=data_root,
    adapt=adapt, resume=resume, progress=progress, weights=weights, overrides=overrides)
args = parameters.run_arguments(params)
dev = wbcbench.engine.train.resolve_device(device)
print("device:", dev)

# %%
run_dir = wbcbench.engine.train.run(**dict(args, device=str(dev)))
cmds = parameters.rerun_commands(**args, output=run_dir / "notebook.ipynb")
print("run directory:", run_dir)
print("rerun with papermill:", cmds["papermill"])
print("rerun with the CLI:  ", cmds["cli"])

# %%
assert (run_dir / "done").is_file(), f"{run_dir} is not finished"
config = json.loads((run_dir / "config.json").read_text())
assert config["model"] == model and config["seed"] == seed and config["profile"] == profile
{k: config.get(k) for k in ("model", "profile", "seed", "train", "test", "adapt", "device")}

# %% [markdown]
# ## Learning curves
#
# Training loss and accuracy per epoch (on the augmented training crops), from the run's `log.csv`.

# %% mystnb={"figure": {"caption": "Training loss and training accuracy per epoch of this run, on its augmented training crops.", "name": "fig-learning-curves"}, "image": {"alt": "Two line charts over the epochs: the training loss falling and the training accuracy rising."}}
log = pd.read_csv(run_dir / "log.csv")
assert len(log) == config["hparams"]["epochs"] and log["train_loss"].notna().all()
plots.show(plots.learning_curves_chart(log, title=run_dir.name))

# %% [markdown]
# ## Metrics per test domain
#
# Plain accuracy is shown next to balanced accuracy and the majority-class baseline, because several
# domains are heavily imbalanced (BCCD is mostly neutrophils). `eval_mode` is `standard`, or the test-time
# method (`adabn`: batch-norm statistics re-estimated on the test domain; ...). Only the evaluations asked
# for here are shown; the run directory may hold more, added by other commands.

# %%
table, skipped = collect.collect(run_dir)
assert not skipped, skipped
table = table[table["test_set"].isin(params["test"]) & table["eval_mode"].isin(["standard", *params["adapt"]])]
assert set(table["test_set"]) == set(params["test"]), table["test_set"].tolist()
for col in ("accuracy", "balanced_accuracy", "macro_f1", "majority_baseline"):
    assert table[col].between(0, 1).all(), (col, table[col].tolist())
table[["test_set", "eval_mode", "n", "accuracy", "balanced_accuracy", "macro_f1", "majority_baseline",
       "ece"]].round(3)

# %% [markdown]
# ## Confusion matrices
#
# Rows are the true classes, columns the predictions; each row is normalised to 1 (recall on the
# diagonal), and the count is printed in every cell.

# %% mystnb={"figure": {"caption": "Confusion matrices of this run on each test domain: rows are the true classes, columns the predictions, each row normalised to 1 (recall on the diagonal), the count in every cell.", "name": "fig-confusion"}, "image": {"alt": "A grid of confusion matrices, one per test domain and test-time method, five classes by five, shaded by the share of each true class predicted as each class."}}
confusions = {f"{r.test_set} ({r.eval_mode})" if r.eval_mode != "standard" else r.test_set:
              json.loads((Path(r.eval_dir) / "metrics.json").read_text())["confusion"]
              for r in table.itertuples()}
assert all(sum(map(sum, c)) == n for c, n in zip(confusions.values(), table["n"]))
plots.show(plots.confusion_chart(confusions))
