"""The scale augmentation and chained augmentations (wbcbench.engine.augment) against their definitions, on drawn
cells of known size (tests/test_scale.py's drawing) measured with wbcbench.data.scale."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_scale import drawn

from wbcbench.core.errors import WbcError
from wbcbench.data import scale
from wbcbench.engine import augment as A


def batch(*diameters, side=96):
    return torch.from_numpy(np.stack([drawn(side, discs=((0.5, 0.5, d),)) for d in diameters]))


def test_zoom_scales_the_cell_about_the_centre_and_fills_with_the_border():
    x = A._to_float(batch(0.4, 0.4, 0.4))
    out = A._to_uint8(A.zoom(x, torch.tensor([1.0, 0.5, 2.0]))).numpy()
    assert np.abs(out[0].astype(int) - batch(0.4).numpy()[0].astype(int)).max() <= 1       # identity
    assert [round(scale.nucleus_extent(im), 2) for im in out] == pytest.approx([0.4, 0.2, 0.8], abs=0.03)
    fill = A.border_colour(x)[1].mul(255).round().numpy()
    assert np.abs(out[1, 0, 0].astype(int) - fill).max() <= 1 and np.abs(out[1, -1, -1].astype(int) - fill).max() <= 1


def test_scale_augmentation_draws_log_uniform_zooms_and_is_seeded():
    x = batch(*[0.4] * 64)
    aug = A.make_augment("scale")
    a, b = aug(x, torch.Generator().manual_seed(3)), aug(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.dtype == torch.uint8 and a.shape == x.shape
    sizes = np.array([scale.nucleus_extent(im) for im in a.numpy()]) / 0.4       # the drawn zoom factors
    assert 0.45 < sizes.min() and sizes.max() < 2.1 and (sizes < 1).sum() > 15 and (sizes > 1).sum() > 15
    fixed = A.make_augment("scale", min_zoom=2.0, max_zoom=2.0)(x[:1], torch.Generator())
    assert scale.nucleus_extent(fixed.numpy()[0]) == pytest.approx(0.8, abs=0.03)
    with pytest.raises(WbcError, match="min_zoom"):
        A.make_augment("scale", min_zoom=1.5, max_zoom=1.2)


def test_a_chain_is_its_parts_in_order_with_one_generator():
    x = batch(0.3, 0.5)
    chain = A.make_augment("colour+scale")
    got = chain(x, torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(7)
    want = A.make_augment("colour")(A.make_augment("scale")(x, gen), gen)    # scale first, then colour
    assert torch.equal(got, want)
    assert chain.training_hook(0) is not None and not chain.applies_at_test
    with pytest.raises(WbcError, match="chain"):
        A.make_augment("colour+scale", hue=0.1)
