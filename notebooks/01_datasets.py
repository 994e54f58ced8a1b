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
# # Datasets and their domains
#
# [**▶ Open in Colab**](https://colab.research.google.com/github/wbc-benchmark/wbc-benchmark/blob/main/notebooks/01_datasets.ipynb)
#
# A white-blood-cell classifier is trained on images from one laboratory and then used on images from
# others. Each laboratory stains, scans and crops differently: that difference is the *domain shift* this
# book studies. Before training anything we look at the data itself:
#
# 1. how many images of each class every domain has, counted from the files on disk;
# 2. what the cells look like in each domain;
# 3. how far apart the domains are in simple colour statistics;
# 4. how large the cells are in each domain's images;
# 5. which images of the training domain's evaluation splits repeat a training image, and are left out.
#
# Every number below is computed by the `wbcbench` package from the images on disk; nothing is typed in
# by hand. The class imbalance of several test domains (most of BCCD's and JTSC's cells are neutrophils, as
# the first table shows) is why the later chapters always report balanced accuracy and chance levels next to
# plain accuracy.

# %% [markdown]
# On Colab, the next cell clones the repository, installs it and downloads the five datasets with
# `wbcbench data download` (elsewhere it only finds the repository root).

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
data_root = None      # None: $WBCBENCH_DATA, else ../shared/wbc-data, else ./data
thumb_size = 56       # side (px) of the sample-cell thumbnails: the grid fits the page column
grid_per_class = 2    # sample cells per class and domain in the grid
colour_size = 32      # images are decoded at this size for the colour statistics
colour_per_class = 20 # class-balanced sample per domain for the colour statistics
scale_size = 96       # images are measured as the pretrained studies see them (96 px crops of 110 px images)
scale_per_class = 40  # class-balanced sample per domain for the cell-scale measurement

# %% tags=["hide-input"]
# ruff: noqa: E501  (a figure's caption and alt text stand on its cell's one header line, as jupytext writes it)
from IPython.display import Markdown

from wbcbench.core.classes import CLASSES
from wbcbench.data import duplicates
from wbcbench.data.datasets import DATASETS
from wbcbench.data.domains import available_domains, class_counts_table, colour_stats, colour_summary
from wbcbench.report import plots, scale_plots
from wbcbench.report.tables import for_reader, to_markdown

# %% [markdown]
# ## Images per class and domain
#
# The domains available on this machine (the paper's Raabin-WBC and its exact LISC crops are supported
# but must be downloaded by the user, see the data chapter):

# %% tags=["hide-input"]
domains = available_domains(data_root)
counts = class_counts_table(domains, data_root)
Markdown(to_markdown(counts))

# %% tags=["hide-input"]
assert len(domains) >= 1, "no dataset found: set data_root"
assert (counts[list(CLASSES)].sum(axis=1) == counts["total"]).all()
for name, row in counts.set_index("dataset").iterrows():  # the files on disk match the registry
    spec = DATASETS[name]
    if spec.expected_total is not None:
        assert row["total"] == spec.expected_total, (name, row["total"], spec.expected_total)

# %% mystnb={"figure": {"caption": "Class composition of each domain: the share of its images in each of the five classes.", "name": "fig-class-counts"}, "image": {"alt": "Stacked horizontal bars, one per domain, split by the share of each white-blood-cell class."}} tags=["hide-input"]
plots.show(plots.class_counts_chart(counts))

# %% [markdown]
# ## What the cells look like
#
# Two cells of each class from each domain (a gap means the domain has fewer images of that class).
# Staining colour, background, magnification and cropping differ visibly between rows; the class is
# what a model should recognise *across* rows.

# %% mystnb={"figure": {"caption": "Sample cells: one row per domain, two cells of each class (a gap: the domain has fewer images of that class).", "name": "fig-sample-cells"}, "image": {"alt": "A grid of small white-blood-cell images, one row per domain and two columns per class, showing how staining and cropping differ between domains."}} tags=["hide-input"]
grid = plots.sample_grid(domains, per_class=grid_per_class, size=thumb_size, data_root=data_root)
grid

# %% tags=["hide-input"]
assert grid.png.startswith(b"\x89PNG")

# %% [markdown]
# ## Colour statistics per domain
#
# For a class-balanced sample of each domain, the mean red, green and blue of every image and its mean
# hue (in degrees, 0 = red; averaged on the colour circle), saturation and brightness. Images of the same
# domain cluster together and the clusters are separated: a network that normalises its activations with
# statistics learned on one domain (batch normalisation) sees different statistics on the others, which the
# BN chapter measures inside the network.

# %% tags=["hide-input"]
stats = colour_stats(domains, size=colour_size, per_class=colour_per_class, data_root=data_root)
summary = colour_summary(stats)
Markdown(to_markdown(for_reader(summary.round(3))))

# %% tags=["hide-input"]
assert set(summary["dataset"]) == set(domains)
assert stats[["R", "G", "B", "S", "V"]].apply(lambda c: c.between(0, 1).all()).all()

# %% mystnb={"figure": {"caption": "Mean hue and saturation of each sampled image, coloured by domain: each domain forms its own cloud.", "name": "fig-colour"}, "image": {"alt": "Scatter plot of per-image mean hue against mean saturation, one colour per domain, showing separated clusters."}} tags=["hide-input"]
plots.show(plots.colour_chart(stats, "H", "S"))

# %% mystnb={"figure": {"caption": "Mean red, green and blue intensity of each domain's sampled images.", "name": "fig-rgb"}, "image": {"alt": "Grouped bars, one panel per domain: the mean red, green and blue intensity of its images."}} tags=["hide-input"]
plots.show(plots.rgb_profile_chart(stats))

# %% [markdown]
# ## How large the cells are
#
# Domains differ in magnification and cropping as well as in colour. BCCD and JTSC images are cut tight
# around the cell, while a PBC image shows the cell among red cells: at the same crop a network sees a
# BCCD cell about twice as large as the PBC cells it was trained on. The measurement uses no labels: the
# stained nucleus is found in each image as the pixels that are both saturated and dark (above the image's
# own Otsu threshold), the central component with its lobes is kept, and the longer side of its bounding
# box is taken as a fraction of the image side (`wbcbench.data.scale`). The figure below draws what was
# measured on a few cells of each domain, so the measurement can be checked by eye; a domain's scale is the
# median over its images, robust to the cells where a red cell or a missed lobe fools the threshold. The
# `scale` test-time method rescales a domain's images by the ratio in the last column.

# %% tags=["hide-input"]
extents = scale_plots.domain_extents(["pbc:train", *domains], size=scale_size, per_class=scale_per_class,
                                     data_root=data_root)
scales = scale_plots.scale_summary(extents)
Markdown(to_markdown((scales[["images"]].join(scales[["median", "q25", "q75"]] * 100).round(1)
                      .join(scales[["rescaling factor"]].round(2))
                      .rename(columns={"median": "median extent (%)", "q25": "25th pct (%)", "q75": "75th pct (%)"})
                      .rename_axis("domain")), index=True))

# %% tags=["hide-input"]
assert set(scales.index) == {"pbc:train", *domains}
assert scales["median"].between(0.1, 0.9).all() and scales.loc["pbc:train", "rescaling factor"] == 1

# %% mystnb={"figure": {"caption": "Nucleus extent per domain, as a percentage of the image side, measured without labels (box: quartiles over the sampled cells).", "name": "fig-scale"}, "image": {"alt": "Horizontal box plots of nucleus extent per domain, as a percentage of the image side; the table above gives each domain's median."}} tags=["hide-input"]
plots.show(scale_plots.scale_chart(extents))

# %% mystnb={"figure": {"caption": "What the scale measurement sees: six cells per domain with the nucleus it found tinted green and boxed.", "name": "fig-scale-overlay"}, "image": {"alt": "A grid of cells, one row per domain, each with its detected nucleus tinted green inside a green box."}} tags=["hide-input"]
scale_plots.overlay_grid(domains, per_domain=6, size=scale_size, data_root=data_root)

# %% [markdown]
# ## Duplicates left out of evaluation
#
# The shipped manifests carry an md5 for every image, so exact duplicates are found without looking at
# pixels. Evaluation sets leave out (book/analysis_plan.md, second addendum) every `pbc:val` or `pbc:test`
# image whose bytes equal a `pbc:train` image's — the network has seen it — and both images of a pair that
# appears under two labels. Predictions are still made for them; only the metrics leave them out, in every
# committed run (rescored from its predictions).

# %% tags=["hide-input"]
left_out = duplicates.excluded(data_root)
Markdown(to_markdown(left_out.rename(columns={"split": "evaluation set", "path": "image", "reason": "why"})))

# %% tags=["hide-input"]
assert set(left_out["split"]) <= {"pbc:val", "pbc:test"}

