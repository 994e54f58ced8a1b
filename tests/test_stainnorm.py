"""Test-time stain normalisation (wbcbench.adapt.stain) on real PBC, LISC and JTSC images."""
from __future__ import annotations

import numpy as np
import pytest
from torchstain.numpy.utils.rgb2lab import rgb2lab
from torchstain.numpy.utils.split import lab_split

from wbcbench.adapt import stain as S
from wbcbench.core.errors import WbcError
from wbcbench.data.cache import load_images
from wbcbench.data.datasets import balanced_indices, get_dataset

SIZE = 64


def _images(data_root, name: str, per_class: int, seed: int = 0) -> np.ndarray:
    ds = get_dataset(name, data_root)
    return np.array(load_images(ds.subset(balanced_indices(ds.labels, per_class, seed)), SIZE))


@pytest.fixture(scope="module")
def pbc_sample(data_root) -> np.ndarray:
    """The reference sample as training_reference draws it (4 per class of pbc:train), at 64 px."""
    ds = get_dataset("pbc:train", data_root)
    return np.array(load_images(ds.subset(S.reference_indices(ds.labels, 4)), SIZE))


@pytest.fixture(scope="module")
def references(pbc_sample) -> dict:
    return {m: S.fit_reference(pbc_sample, m) for m in S.STAIN_METHODS}


def _lab_stats(image: np.ndarray) -> np.ndarray:
    """(3, 2) mean and std of torchstain's LAB channels, the statistics Reinhard matches."""
    labs = lab_split(rgb2lab(image.astype(np.float32) / 255))
    return np.array([[c.mean(), c.std()] for c in labs])


def test_reference_is_pooled_from_a_class_balanced_training_sample(pbc_sample, references):
    ds = get_dataset("pbc:train")
    idx = S.reference_indices(ds.labels, 4)
    assert np.bincount(ds.labels[idx], minlength=5).tolist() == [4] * 5
    assert np.array_equal(idx, S.reference_indices(ds.labels, 4))  # fixed: the same for every run
    mac = references["macenko"]
    assert mac.n_images == 20 and mac.values["stains"].shape == (3, 2)
    np.testing.assert_allclose(np.linalg.norm(mac.values["stains"], axis=0), 1, atol=1e-9)
    assert (mac.values["stains"] > 0).all()  # both stains absorb in every channel
    # CellaVision's background is peach, not white: the reason for the background step
    assert mac.values["background"][0] > mac.values["background"][2] + 20


@pytest.mark.parametrize("method, max_mean_change", [("macenko", 8.0), ("reinhard", 1.0)])
def test_a_training_image_normalised_to_itself_barely_changes(data_root, method, max_mean_change):
    for image in _images(data_root, "pbc:train", 1, seed=3)[:3]:
        out = S.normalise(image[None], S.fit_reference(image[None], method))
        assert out.n_fell_back == 0
        change = np.abs(out.images[0].astype(int) - image)
        assert change.mean() <= max_mean_change, (method, change.mean())
        assert np.percentile(change, 50) <= max_mean_change


@pytest.mark.parametrize("name", ["lisc", "jtsc"])
def test_macenko_moves_target_stain_vectors_to_the_reference(data_root, references, name):
    ref = references["macenko"]
    images = _images(data_root, name, 3)
    out = S.normalise(images, ref)
    assert out.images.shape == images.shape and out.images.dtype == np.uint8
    ok = ~out.fell_back
    assert ok.sum() >= len(images) - 2
    before = np.nanmean([S.macenko_stain_vectors(i) for i in images[ok]], axis=0)
    after = np.nanmean([S.macenko_stain_vectors(i) for i in out.images[ok]], axis=0)
    a_before = S.stain_angles(before, ref.values["stains"])
    a_after = S.stain_angles(after, ref.values["stains"])
    print(f"{name}: angle to the PBC reference (H, E) before {a_before.round(1)} deg, after {a_after.round(1)}")
    assert (a_after < a_before).all() and (a_after < 5).all()
    assert np.array_equal(out.images[out.fell_back], images[out.fell_back])


def test_reinhard_gives_target_images_the_reference_lab_statistics(data_root, references):
    ref = references["reinhard"]
    target = np.stack([ref.values["means"], ref.values["stds"]], axis=1)
    images = _images(data_root, "lisc", 1)
    out = S.normalise(images, ref)
    assert out.n_fell_back == 0
    for a, b in zip(images, out.images):
        before, after = np.abs(_lab_stats(a) - target), np.abs(_lab_stats(b) - target)
        assert after.max() < 2.5, after          # gamut clipping and 8-bit rounding only
        assert after.sum() < before.sum()


def test_normalisation_is_deterministic(data_root, pbc_sample, references):
    images = _images(data_root, "jtsc", 1)
    for m, ref in references.items():
        a, b = S.normalise(images, ref), S.normalise(images, ref)
        assert np.array_equal(a.images, b.images) and np.array_equal(a.fell_back, b.fell_back)
        refit = S.fit_reference(pbc_sample, m)
        assert all(np.array_equal(refit.values[k], v) for k, v in ref.values.items())


def test_images_without_stain_fall_back_unchanged_and_are_counted(data_root, references):
    real = _images(data_root, "pbc:test", 1)[:1]
    white = np.full((1, SIZE, SIZE, 3), 250, np.uint8)
    white[0, ::7, ::5] = 244                                  # near-white with a little texture
    flat = np.full((1, SIZE, SIZE, 3), (150, 90, 160), np.uint8)  # a uniform 'stained' patch: no stain plane
    dark = np.full((1, SIZE, SIZE, 3), 12, np.uint8)           # not a bright-field image
    batch = np.concatenate([real, white, flat, dark])
    out = S.normalise(batch, references["macenko"])
    assert out.fell_back.tolist() == [False, True, True, True] and out.n_fell_back == 3
    assert np.array_equal(out.images[1:], batch[1:]) and not np.array_equal(out.images[0], batch[0])
    out = S.normalise(batch[[0, 2, 3]], references["reinhard"])  # zero spread: Reinhard cannot standardise
    assert out.fell_back.tolist() == [False, True, True]
    assert np.array_equal(out.images[1:], batch[[2, 3]])


def test_normalised_test_sets_are_cached_whole(data_root, references):
    ds = get_dataset("lisc", data_root)
    sub = ds.subset(balanced_indices(ds.labels, 1, 0))
    images = np.array(load_images(sub, SIZE))
    first = S.normalised_dataset(sub, images, references["macenko"])
    expected = S.normalise(images, references["macenko"])
    assert np.array_equal(first.images, expected.images)
    again = S.normalised_dataset(sub, images, references["macenko"])  # from the cache file now
    assert isinstance(again.images, np.memmap)
    assert np.array_equal(again.images, expected.images) and np.array_equal(again.fell_back, expected.fell_back)
    other = S.normalised_dataset(sub, images, references["reinhard"])
    assert not np.array_equal(other.images, again.images)
    assert S.reference_key(references["macenko"]) != S.reference_key(references["reinhard"])


def test_bad_input_is_one_clear_error(pbc_sample):
    with pytest.raises(WbcError, match="unknown stain normalisation method 'macenco'.*did you mean 'macenko'"):
        S.fit_reference(pbc_sample, "macenco")
    with pytest.raises(WbcError, match=r"expected uint8 images \(N, H, W, 3\), got float64"):
        S.fit_reference(pbc_sample.astype(float))
    with pytest.raises(WbcError, match="no images"):
        S.fit_reference(pbc_sample[:0])
    with pytest.raises(WbcError, match="cannot fit a macenko stain reference on these 2 images"):
        S.fit_reference(np.full((2, 16, 16, 3), 250, np.uint8))
    ref = S.fit_reference(pbc_sample, "reinhard")
    with pytest.raises(WbcError, match="stain normalisation: expected uint8"):
        S.normalise(pbc_sample[0], ref)
