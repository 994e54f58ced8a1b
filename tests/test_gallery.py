"""The remedy galleries (wbcbench.engine.gallery, wbcbench.report.gallery_plots) against their definitions: each
column is what the training loader's augmentation or the evaluation's test-time method gives the cell."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from wbcbench.adapt import methods, stain_domain
from wbcbench.core.classes import class_index
from wbcbench.core.errors import WbcError
from wbcbench.core.profiles import get_profile
from wbcbench.data import scale
from wbcbench.data.cache import load_dataset
from wbcbench.data.datasets import balanced_indices
from wbcbench.engine import gallery as G
from wbcbench.engine.augment import epoch_generator, make_augment
from wbcbench.report.gallery_plots import gallery_figure, gallery_png, wrap
from wbcbench.report.plots import PAGE_WIDTH, image_grid_png

DOMAINS = ("bccd", "jtsc", "cellavision")   # shifted domains small enough to run every method on all of them
HP = get_profile(G.PROFILE)
OFF = (HP["stored_size"] - HP["crop_size"]) // 2


def _crop(image) -> np.ndarray:
    """The evaluation's centre crop, by its definition."""
    return np.asarray(image)[OFF:OFF + HP["crop_size"], OFF:OFF + HP["crop_size"]]


def _crops(seed=0, n=4, side=20) -> np.ndarray:
    return np.random.default_rng(seed).integers(30, 250, (n, side, side, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------ without the data

def test_the_cell_is_the_class_pick_of_the_seeded_one_per_class_sample():
    labels = np.repeat(np.arange(5), [4, 7, 3, 9, 5])
    for seed in (0, 1, 2):
        i = G.domain_cell(labels, "Monocyte", seed)
        pick = balanced_indices(labels, 1, seed=seed)
        assert labels[i] == class_index("Monocyte") and i in pick
    assert len({G.domain_cell(labels, "Monocyte", s) for s in range(20)}) > 1   # the seed chooses
    with pytest.raises(WbcError, match="no Basophil"):
        G.domain_cell(labels[labels > 0], "Basophil")


def test_centre_crops_are_the_evaluation_crops():
    stored = _crops(side=31)
    got = G.centre_crops(stored, 24)
    assert got.dtype == np.uint8 and np.array_equal(got, stored[:, 3:27, 3:27])


def test_augmented_draws_from_the_runs_first_epoch_generator():
    crops = _crops()
    for name in G.AUGMENT_COLUMNS:
        want = make_augment(name)(torch.from_numpy(crops), epoch_generator(5, 0)).numpy()
        assert np.array_equal(G.augmented(crops, name, seed=5), want)
        assert np.array_equal(G.augmented(crops, name, seed=5), G.augmented(crops, name, seed=5))
        if name != "grayscale":     # grayscale draws nothing
            assert not np.array_equal(G.augmented(crops, name, seed=5), G.augmented(crops, name, seed=6))
    gray = G.augmented(crops, "grayscale")
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()


def test_wrap_splits_at_spaces_within_the_width():
    assert wrap("rescaled to PBC's cell scale", 11, len) == ["rescaled to", "PBC's cell", "scale"]
    assert wrap("grayscale", 3, len) == ["grayscale"]   # a word longer than the width stays whole
    assert wrap("", 5, len) == [""]


def test_gallery_png_heads_each_column_above_image_grid_pngs_grid():
    rows = [[np.full((40, 40, 3), v, np.uint8) for v in (0, 90, 180)] for _ in range(2)]
    labels = ["original", "Macenko, fitted per domain", "x"]
    png = Image.open(io.BytesIO(gallery_png(rows, ["a", "bb"], labels))).convert("RGB")
    grid = Image.open(io.BytesIO(image_grid_png(rows, ["a", "bb"]))).convert("RGB")
    lines = wrap(labels[1], 36, ImageDraw.Draw(grid).textlength)
    assert len(lines) > 1 and " ".join(lines) == labels[1]  # the long heading is wrapped, every word kept
    assert png.width == grid.width and png.height > grid.height
    head = png.height - Image.open(io.BytesIO(image_grid_png(rows, ["a", "bb"], None))).height
    below = np.asarray(png)[head:]
    assert np.array_equal(below, np.asarray(Image.open(io.BytesIO(image_grid_png(rows, ["a", "bb"], None)))))
    left = png.width - 3 * 42
    for j in range(3):   # ink above every column, inside it
        assert (np.asarray(png)[:head, left + j * 42: left + j * 42 + 40] < 128).any()


# --------------------------------------------------------------------------------------------- with the data

@pytest.fixture(scope="module")
def galleries(data_root):
    return (G.augmentation_gallery(DOMAINS, data_root=data_root),
            G.normalisation_gallery(DOMAINS, data_root=data_root))


def test_original_column_is_the_cached_cell_of_the_class(galleries, data_root):
    for g in galleries:
        assert g.row_labels == ("BCCD", "JTSC", "CellaVision") and g.col_labels[0] == "original"
        assert g.cells.shape[:2] == (len(DOMAINS), len(g.col_labels)) and g.cells.dtype == np.uint8
        for r, name in enumerate(DOMAINS):
            ds, images = load_dataset(name, data_root, HP["stored_size"])
            i = g.index[r]
            assert ds.labels[i] == class_index(G.CLASS)
            assert np.array_equal(g.cells[r, 0], _crop(images[i]))


def test_augmentation_columns_are_the_training_batch_augmentations(galleries):
    aug, _ = galleries
    assert aug.col_labels[1:] == tuple(G.AUGMENT_COLUMNS.values())
    for j, name in enumerate(G.AUGMENT_COLUMNS, start=1):
        want = make_augment(name)(torch.from_numpy(aug.cells[:, 0].copy()), epoch_generator(0, 0)).numpy()
        assert np.array_equal(aug.cells[:, j], want)
        assert not np.array_equal(aug.cells[:, j], aug.cells[:, 0])
    gray = aug.cells[:, 1 + list(G.AUGMENT_COLUMNS).index("grayscale")].astype(int)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()


def test_the_gallery_is_the_same_for_a_fixed_seed_and_not_for_another(galleries, data_root):
    aug = galleries[0]
    again = G.augmentation_gallery(DOMAINS, data_root=data_root)
    assert np.array_equal(again.cells, aug.cells) and again.index == aug.index
    other = G.augmentation_gallery(DOMAINS, data_root=data_root, seed=1)
    assert not np.array_equal(other.cells, aug.cells)


def _evaluation_images(method: str, images, data_root) -> np.ndarray:
    """The images an evaluation of `method` hands its network's loader (wbcbench.adapt.methods.probabilities)."""
    seen = []

    def loader(net, imgs, order=None, batch_size=None):
        seen.append(np.asarray(imgs))
        return []

    ctx = methods.Context(hp=HP, seed=0, loader=loader, predict=lambda f, batches, amp=True: None,
                          data_root=str(data_root), ds=None)
    methods.probabilities(torch.nn.Identity(), method, np.asarray(images), ctx)
    return seen[-1]


@pytest.mark.parametrize("method", list(G.TEST_COLUMNS))
def test_test_time_columns_are_what_the_evaluation_gives_the_cell(galleries, data_root, method):
    _, norm = galleries
    j = 1 + list(G.TEST_COLUMNS).index(method)
    for name in DOMAINS if method == "scale" else ("jtsc", "cellavision"):   # Macenko: ~25 images/s here
        r = DOMAINS.index(name)
        _, images = load_dataset(name, data_root, HP["stored_size"])
        got = _evaluation_images(method, images, data_root)[norm.index[r]]
        assert np.array_equal(norm.cells[r, j], _crop(got)), (name, method)
        assert not np.array_equal(norm.cells[r, j], norm.cells[r, 0])


def test_rescaling_brings_the_cell_toward_the_training_cell_scale(galleries, data_root):
    _, norm = galleries
    j = 1 + list(G.TEST_COLUMNS).index("scale")
    assert norm.col_labels[j] == "rescaled to PBC's cell scale"
    # the training scale is a fraction of the stored side; the cells are crops of it
    target = methods.training_scale(HP["stored_size"], str(data_root)) * HP["stored_size"] / HP["crop_size"]
    for name in ("bccd", "jtsc"):   # cells far larger than PBC's
        r = DOMAINS.index(name)
        before, after = scale.nucleus_extent(norm.cells[r, 0]), scale.nucleus_extent(norm.cells[r, j])
        assert abs(after - target) < abs(before - target), (name, before, after, target)
        assert after < before


def test_gallery_figure_is_a_png_with_a_row_per_domain(galleries):
    png = gallery_figure(galleries[1]).png
    im = Image.open(io.BytesIO(png))
    side = HP["crop_size"]
    assert png.startswith(b"\x89PNG") and im.height > len(DOMAINS) * (side + 2)
    assert im.width <= PAGE_WIDTH   # the book's page column


def test_two_stain_gallery_is_the_domain_mapped_to_itself_then_to_the_reference(data_root):
    g = G.two_stain_gallery("jtsc", classes=("Lymphocyte", "Neutrophil"), data_root=data_root)
    assert g.row_labels == ("Lymphocyte", "Neutrophil") and g.col_labels == (G.ORIGINAL, *G.TWO_STAIN_COLUMNS)
    ds, images = load_dataset("jtsc", data_root, HP["stored_size"])
    domain = stain_domain.domain_reference(images, "macenko")
    reference = methods.stain_reference("macenko", HP["stored_size"], str(data_root), "pbc:train")
    for r, cls in enumerate(g.row_labels):
        i = g.index[r]
        assert ds.labels[i] == class_index(cls) and np.array_equal(g.cells[r, 0], _crop(images[i]))
        for j, target in ((1, domain), (2, reference)):
            want = stain_domain.normalise_domain(images[i:i + 1], domain, target).images[0]
            assert np.array_equal(g.cells[r, j], _crop(want)), (cls, j)
    # JTSC's colours are far from PBC's: the reference moves its cells more than the two-stain rebuild does
    moved = [np.abs(g.cells[:, j].astype(int) - g.cells[:, 0]).mean() for j in (1, 2)]
    assert moved[0] < moved[1], moved
