"""Batch colour augmentations (wbcbench.engine.augment) checked against their definitions, on synthetic and real PBC
images."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color

from wbcbench.core.errors import WbcError
from wbcbench.data.cache import load_images
from wbcbench.data.datasets import balanced_indices, get_dataset
from wbcbench.engine import augment as A


@pytest.fixture(scope="module")
def pbc_batch(data_root) -> torch.Tensor:
    """10 real PBC training images (2 per class) at 64 px, as the loader hands them over: uint8 NHWC."""
    ds = get_dataset("pbc:train", data_root)
    sub = ds.subset(balanced_indices(ds.labels, 2, seed=0))
    return torch.from_numpy(np.array(load_images(sub, 64)))


def _stain_image(seed=0, n=3, size=8) -> torch.Tensor:
    """float64 RGB made from positive H, E, D amounts: a stained-looking image strictly inside (0, 1)."""
    g = torch.Generator().manual_seed(seed)
    hed = torch.rand(n, 3, size, size, generator=g, dtype=torch.float64) * 0.06 + 0.005
    return A.hed_to_rgb(hed)


def test_rgb_hed_round_trip_is_identity():
    x = torch.rand(4, 3, 9, 9, generator=torch.Generator().manual_seed(1)) * 0.99 + 0.01
    assert (A.hed_to_rgb(A.rgb_to_hed(x)) - x).abs().max() < 1e-4           # float32
    xd = x.double()
    assert (A.hed_to_rgb(A.rgb_to_hed(xd)) - xd).abs().max() < 1e-12


def test_rgb_to_hed_matches_the_definition_and_skimage():
    px = np.array([[[0.8, 0.5, 0.6], [0.3, 0.2, 0.5]]])
    ours = A.rgb_to_hed(torch.from_numpy(px).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    # by hand, Ruifrok & Johnston: stains = (log(rgb) / log(1e-6)) @ inv(rgb_from_hed)
    m = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
    np.testing.assert_allclose(ours[0, 0], np.log(px[0, 0]) / np.log(1e-6) @ np.linalg.inv(m), atol=1e-12)
    # skimage's rgb2hed (both pixels have positive stains, so its clip to 0 does not act), then many pixels
    assert (ours > 0).all()
    np.testing.assert_allclose(ours, color.rgb2hed(px), atol=1e-10)
    x = np.random.default_rng(0).random((16, 16, 3))
    ours = A.rgb_to_hed(torch.from_numpy(x).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(np.maximum(ours, 0), color.rgb2hed(x), atol=1e-10)


def test_zero_hed_jitter_is_the_identity(pbc_batch):
    x = _stain_image()
    n = len(x)
    assert (A.hed_jitter(x, torch.ones(n, 3), torch.zeros(n, 3)) - x).abs().max() < 1e-12
    out = A.make_augment("hed", sigma=0, bias=0)(pbc_batch, A.epoch_generator(0, 0))
    assert torch.equal(out, pbc_batch)  # exact after rounding back to uint8


def test_hed_scaling_changes_only_its_own_stain():
    x = _stain_image()
    h = A.rgb_to_hed(x)
    n = len(x)
    out = A.rgb_to_hed(A.hed_jitter(x, torch.tensor([[1.3, 1.0, 1.0]] * n, dtype=torch.float64), torch.zeros(n, 3)))
    torch.testing.assert_close(out[:, 0], 1.3 * h[:, 0], atol=1e-9, rtol=0)
    torch.testing.assert_close(out[:, 1:], h[:, 1:], atol=1e-9, rtol=0)
    out = A.rgb_to_hed(A.hed_jitter(x, torch.ones(n, 3), torch.tensor([[0.0, 0.004, 0.0]] * n, dtype=torch.float64)))
    torch.testing.assert_close(out[:, 1], h[:, 1] + 0.004, atol=1e-9, rtol=0)
    torch.testing.assert_close(out[:, [0, 2]], h[:, [0, 2]], atol=1e-9, rtol=0)


def test_hed_draws_stay_in_their_ranges():
    aug = A.make_augment("hed", sigma=0.1, bias=0.02)
    # a flat image of one stained colour, so each image's change reveals its own alpha and beta
    x = (A.hed_to_rgb(torch.full((64, 3, 4, 4), 0.04, dtype=torch.float64)) * 255).round().to(torch.uint8)
    out = aug(x.permute(0, 2, 3, 1).contiguous(), A.epoch_generator(3, 1))
    assert out.shape == (64, 4, 4, 3) and not torch.equal(out.permute(0, 3, 1, 2), x)
    h_in = A.rgb_to_hed(x.double() / 255)[:, :, 0, 0]
    h_out = A.rgb_to_hed(out.permute(0, 3, 1, 2).double() / 255)[:, :, 0, 0]
    bound = 0.1 * h_in.abs() + 0.02 + 0.003  # 0.003: the uint8 rounding, in stain units
    assert ((h_out - h_in).abs() <= bound).all()


def test_grayscale_is_bt601_luma_in_all_channels(pbc_batch):
    out = A.make_augment("grayscale")(pbc_batch, A.epoch_generator(0, 0))
    assert torch.equal(out[..., 0], out[..., 1]) and torch.equal(out[..., 1], out[..., 2])
    luma = (pbc_batch.double() * torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)).sum(-1)
    assert (out[..., 0].double() - luma).abs().max() <= 0.5 + 1e-3
    # the 'grayscale input' arm: evaluation converts test images the same way
    aug = A.make_augment("grayscale")
    assert aug.applies_at_test and torch.equal(aug(pbc_batch, A.epoch_generator(5, 9)), out)
    assert not any(A.make_augment(n).applies_at_test for n in ("none", "hed", "colour"))


def test_random_grayscale_converts_about_p_of_the_images():
    x = torch.randint(0, 256, (200, 4, 4, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = A.make_augment("grayscale", p=0.3)(x, A.epoch_generator(0, 0))
    gray = (out[..., 0] == out[..., 1]).all(-1).all(-1) & (out[..., 1] == out[..., 2]).all(-1).all(-1)
    assert torch.equal(out[~gray], x[~gray])         # the others are untouched
    assert 35 <= int(gray.sum()) <= 85                 # Binomial(200, 0.3): mean 60, sd 6.5
    assert not A.make_augment("grayscale", p=0.3).applies_at_test


def test_colour_jitter_follows_torchvision_formulas():
    x = _stain_image(n=4).float()
    one, zero = torch.ones(4), torch.zeros(4)
    assert (A.colour_jitter(x, one, one, one, zero) - x).abs().max() < 1e-6      # neutral factors
    torch.testing.assert_close(A.colour_jitter(x, one * 0.5, one, one, zero), x * 0.5)  # brightness multiplies
    luma = (x * torch.tensor(A.LUMA_601).view(1, 3, 1, 1)).sum(1, keepdim=True)
    torch.testing.assert_close(A.colour_jitter(x, one, one, zero, zero), luma.expand_as(x))  # saturation 0
    flat = luma.mean((2, 3), keepdim=True).expand_as(x)
    torch.testing.assert_close(A.colour_jitter(x, one, zero, one, zero), flat)  # contrast 0: the mean grey


def test_hue_rotation_keeps_luma_and_full_turn_is_identity():
    x = _stain_image(n=3)
    assert (A.hue_rotate(x, torch.tensor([0.0, 1.0, -1.0])) - x).abs().max() < 1e-12
    y = A.hue_rotate(x, torch.tensor([0.02, -0.03, 0.05]))
    w = torch.tensor(A.LUMA_601, dtype=torch.float64).view(1, 3, 1, 1)
    assert ((y * w).sum(1) - (x * w).sum(1)).abs().max() < 1e-12
    assert (y - x).abs().max() > 1e-3
    back = A.hue_rotate(y, torch.tensor([-0.02, 0.03, -0.05]))
    assert (back - x).abs().max() < 1e-12


@pytest.mark.parametrize("name", A.AUGMENTATIONS)
def test_real_batch_keeps_shape_dtype_device_and_seeding_is_exact(pbc_batch, name):
    aug = A.make_augment(name)
    rng_before = torch.get_rng_state()
    a = aug(pbc_batch, A.epoch_generator(7, 2))
    assert a.shape == pbc_batch.shape and a.dtype == torch.uint8 and a.device == pbc_batch.device
    assert torch.equal(torch.get_rng_state(), rng_before)  # never torch's global generator
    if name == "none":
        assert a is pbc_batch
        return
    assert not torch.equal(a, pbc_batch)
    # same (seed, epoch) -> the same batches, in order, as a resumed run would draw them
    g1, g2 = A.epoch_generator(7, 2), A.epoch_generator(7, 2)
    first = [aug(pbc_batch, g1) for _ in range(2)]
    assert all(torch.equal(u, aug(pbc_batch, g2)) for u in first)
    assert torch.equal(first[0], a)
    if name != "grayscale":  # grayscale p=1 draws nothing: it is deterministic
        assert not torch.equal(first[0], first[1])
        assert not torch.equal(a, aug(pbc_batch, A.epoch_generator(8, 2)))
        assert not torch.equal(a, aug(pbc_batch, A.epoch_generator(7, 3)))


def test_epoch_generator_depends_on_seed_and_epoch():
    draw = lambda s, e: torch.rand(4, generator=A.epoch_generator(s, e))  # noqa: E731
    assert torch.equal(draw(0, 0), draw(0, 0))
    assert not torch.equal(draw(0, 0), draw(1, 0)) and not torch.equal(draw(0, 0), draw(0, 1))


def test_bad_names_and_parameters_are_one_clear_error():
    with pytest.raises(WbcError, match="unknown augmentation 'colur'.*did you mean 'colour'"):
        A.make_augment("colur")
    with pytest.raises(WbcError, match="'hed' has no parameter 'hue'"):
        A.make_augment("hed", hue=0.1)
    with pytest.raises(WbcError, match="bias must be a finite number >= 0"):
        A.make_augment("hed", bias=float("nan"))
    with pytest.raises(WbcError, match="sigma must be < 1"):
        A.make_augment("hed", sigma=1.0)
    with pytest.raises(WbcError, match="p must be in"):
        A.make_augment("grayscale", p=1.5)
    with pytest.raises(ValueError, match="uint8"):
        A.make_augment("hed")(torch.zeros(2, 3, 8, 8), A.epoch_generator(0, 0))
