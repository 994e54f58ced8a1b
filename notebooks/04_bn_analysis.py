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
# # Why batch normalisation fails under domain shift
#
# [**▶ Open in Colab**](https://colab.research.google.com/github/wbc-benchmark/wbc-benchmark/blob/main/notebooks/04_bn_analysis.ipynb)
#
# A batch-normalisation (BN) layer normalises each channel with the mean and variance of the current batch
# while training, and keeps running averages of them for test time. At test time on a *different* domain
# those stored statistics no longer describe the activations: every BN layer shifts and rescales its input
# by the wrong amounts, and the errors compound layer by layer.
#
# This notebook measures that, for one trained BN network:
#
# 1. for every BN layer, the gap between its stored running statistics and the actual statistics of each
#    domain's activations;
# 2. the accuracy per domain with the stored statistics, with **AdaBN** (Li et al. 2016: re-estimate the
#    statistics on the unlabelled test images of the domain), and with **test-time batch statistics**
#    (normalise every test batch by its own statistics).
#
# Both adaptations use the test images (not their labels): they are transductive, so they answer "is the
# mismatch of BN statistics the problem?", not "what accuracy would a deployed model reach?".
#
# By default (`checkpoint="auto"`) it analyses the CPU study's `resnet18_bn` seed-0 network. Checkpoints are
# not committed, so when that run's `model.pt` is not on this machine the run is **trained again from its
# committed `config.json`** (about 1.5 minutes on two CPU cores, kept in the wbcbench cache for the next
# build), and its predictions are compared with the committed ones, file by file. With the recorded thread
# count on the CPU model that recorded the run they are byte-identical; another CPU model rounds differently,
# so there the comparison is with the same run recorded on this kind of machine (`results/reproduce-refs`),
# and the network analysed has the study's code, config and seed but not its exact weights (the rounding
# compounds over training; the reproducibility chapter measures by how much). The sentence under the next
# cell says which network was analysed, how it was obtained and what it matched. Without the study's run
# folders, a small network is trained on the fly (the `smoke` profile). The last section gives the AdaBN
# gains of every study run on every domain, from the committed results.

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

# %% tags=["parameters", "hide-input"]
checkpoint = "auto"        # a run directory or model.pt; "auto": the CPU study's resnet18_bn seed 0 (its
                           # model.pt if on disk, else retrained from its config.json); None: a smoke run
study_dir = "results/cpu"  # the CPU study's run folders
model = "resnet18_bn"      # used only when training a smoke run on the fly
profile = "smoke"          # used only when training a smoke run on the fly
test_sets = ["pbc:test", "lisc", "bccd", "jtsc", "cellavision"]
per_class = 40             # class-balanced subset of each test domain (None: all images)
data_root = None
device = "cpu"

# %% tags=["hide-input"]
# ruff: noqa: E501  (a figure's caption and alt text stand on its cell's one header line, as jupytext writes it)
import itertools
import tempfile

import torch
from IPython.display import Markdown

from wbcbench.adapt import bn
from wbcbench.core import names, paths
from wbcbench.data.cache import load_images
from wbcbench.data.domains import available_domains, domain_sample
from wbcbench.engine import bn_probe, evaluate, train
from wbcbench.engine.reproduce import retrained_checkpoint
from wbcbench.report import plots
from wbcbench.report.run_tables import gain_table, method_gains
from wbcbench.report.tables import METHOD_NAMES, for_reader, to_markdown
from wbcbench.runs.collect import load_runs

provenance = None
if checkpoint == "auto":
    checkpoint, provenance = retrained_checkpoint(study_dir, "resnet18_bn", seed=0, data_root=data_root,
                                                  retrain_into=paths.cache_dir() / "study-runs")
if checkpoint is None:
    checkpoint = train.run(model=model, profile=profile, seed=0, test_sets=test_sets[:1],
                           out=tempfile.mkdtemp(prefix="wbc-bn-"), device=device, data_root=data_root, quiet=True)
    provenance = (f"a `{model}` trained just now with the `{profile}` profile"
                  + (f" ({provenance})" if provenance else ""))
net, cfg, dev = train.load_model(checkpoint, device)
hp = cfg["hparams"]
domains = available_domains(data_root, names=test_sets)  # in test_sets order
Markdown(f"Network analysed: {provenance or f'`{checkpoint}`'}. Model `{cfg['model']}` (profile "
         f"`{cfg['profile']}`, trained on `{cfg['train']}`), {len(bn.bn_layers(net))} BN layers; domains: "
         f"{', '.join(domains)}.")

# %% tags=["hide-input"]
assert bn.has_adaptable_bn(net), "this analysis needs a model with BN running statistics"
assert domains, "no test domain available: set data_root"

# %% [markdown]
# ## The statistics gap, layer by layer
#
# For each BN layer and domain: the mean over channels of |domain mean - running mean| / running std
# (how many stored standard deviations the activations are off). The training domain's own test split is
# the reference; the further a domain's curve is above it, the more BN mis-normalises that domain.

# %% mystnb={"figure": {"caption": "Gap between each BN layer's stored running statistics and each domain's activation statistics (mean over channels of the mean's distance in running standard deviations), from the input to the output of the network.", "name": "fig-bn-gap"}, "image": {"alt": "Line chart: one line per test domain, the statistics gap of each BN layer in depth order."}} tags=["hide-input"]
gaps = bn_probe.domain_stat_gaps(net, hp, domains, data_root, dev, per_class=per_class)
plots.show(plots.bn_gap_chart(gaps))

# %% tags=["hide-input"]
per_domain = gaps.groupby("dataset", sort=False)[["gap", "var_ratio"]].mean().round(3).reset_index()
Markdown(to_markdown(per_domain.rename(columns={"gap": "mean gap (running std)",
                                                       "var_ratio": "mean variance ratio"})))

# %% tags=["hide-input"]
assert len(gaps) == len(domains) * len(bn.bn_layers(net))
assert (gaps["gap"] >= 0).all() and gaps["gap"].notna().all()

# %% [markdown]
# ## Does fixing the statistics fix the accuracy?
#
# Same weights, normalised at test time with the stored statistics or by one of the test-time methods. If BN
# statistics were the whole problem, AdaBN and test-time batch statistics would close most of the gap between
# the training domain and the others.

# %% mystnb={"figure": {"caption": "Balanced accuracy on each domain with the stored BN statistics (standard) and with each test-time method: the same weights, normalised differently at test time.", "name": "fig-bn-modes"}, "image": {"alt": "Bar chart, one panel per test domain: balanced accuracy with the stored BN statistics and with each test-time method."}} tags=["hide-input"]
modes = bn_probe.compare_bn_modes(net, hp, domains, data_root, dev, per_class=per_class)
plots.show(plots.bn_mode_chart(modes, "balanced_accuracy"))

# %% tags=["hide-input"]
wide = modes.pivot_table(index="dataset", columns="mode", values="balanced_accuracy", sort=False)
shown = for_reader(wide, percent=list(wide.columns), names=METHOD_NAMES).rename_axis("test domain")
bn_modes = [m for m in names.BN_METHODS if m in wide.columns]
n = modes.groupby("dataset")["n"].max()
one_batch = [d for d in wide.index if wide.loc[d, bn_modes].nunique() == 1 and n[d] <= hp["eval_batch_size"]]
note = ("" if not one_batch else f"\n\nOn {', '.join(one_batch)} the {len(bn_modes)} test-time methods give the "
        f"same score: each of these samples ({n[one_batch].min()}–{n[one_batch].max()} images) fits in one "
        f"evaluation batch of {hp['eval_batch_size']}, and on one batch AdaBN's population statistics are the "
        "batch's own and TENT predicts the batch before its only update. They are one remedy there, not three.")
Markdown("**Balanced accuracy**\n\n" + to_markdown(shown, index=True) + note)

# %% tags=["hide-input"]
assert set(modes["mode"]) == {names.STANDARD, *names.BN_METHODS}
assert modes[["accuracy", "balanced_accuracy"]].apply(lambda c: c.between(0, 1).all()).all()
# AdaBN re-estimates the statistics: they must move away from the stored ones
name, first = bn.bn_layers(net)[0]
sample = domain_sample(domains[-1], per_class or 8, data_root)
loader = evaluate.eval_loader(net, load_images(sample, hp["stored_size"]), sample.labels, hp, dev)
adapted = dict(bn.bn_layers(bn.adabn(net, (b.x for b in itertools.islice(loader, 1)))))[name]
assert not torch.allclose(adapted.running_mean, first.running_mean)


# %% [markdown]
# ## AdaBN in every run of the CPU study
#
# The analysis above is one network on class-balanced subsets. The CPU study evaluated every one of its
# BN networks (ResNet-18 BN and ImageNet-pretrained EfficientNet-Lite0, 5 seeds each) with and without
# AdaBN, on all test images. Each cell is the gain in balanced accuracy from AdaBN (AdaBN minus standard,
# the same trained network), in percentage points: the mean over seeds and its 95% paired Student-t interval.
# `pbc:test` is the training domain, where re-estimating statistics that were already right can only cost
# a little.

# %% tags=["hide-input"]
study_runs, _ = load_runs(study_dir)
gains = method_gains(study_runs, "adabn", "balanced_accuracy_min5")  # the analysis plan's primary metric
Markdown(to_markdown(gain_table(gains), index=True) if len(gains)
         else f"_no finished study runs with AdaBN in `{study_dir}`_")

# %% tags=["hide-input"]
if len(gains):
    with_ci = gains.dropna(subset=["lo", "hi"])  # one seed: a gain without an interval
    assert (with_ci["lo"] <= with_ci["gain"]).all() and (with_ci["gain"] <= with_ci["hi"]).all()
    assert set(gains["test_set"]) <= set(test_sets)
