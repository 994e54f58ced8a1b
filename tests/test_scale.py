"""Cell scale without labels (wbcbench.data.scale): the nucleus extent against drawn cells of known size, the
rescaling against its definition, and the real domains' order of sizes."""
from __future__ import annotations

import numpy as np
import pytest

from wbcbench.data import scale

BACKGROUND = (240, 222, 214)   # a pale pink slide
RED_CELL = (214, 160, 160)     # pale, little saturation
NUCLEUS = (104, 58, 150)       # haematoxylin purple


def drawn(side=120, discs=((0.5, 0.5, 0.4),), red=((0.15, 0.15, 0.2),)):
    """An RGB image with red cells and nucleus discs (centre y, centre x, diameter as fractions of the side)."""
    yy, xx = np.mgrid[:side, :side] / side
    im = np.empty((side, side, 3), np.uint8)
    im[:] = BACKGROUND
    for colour, shapes in ((RED_CELL, red), (NUCLEUS, discs)):
        for cy, cx, d in shapes:
            im[np.hypot(yy - cy, xx - cx) < d / 2] = colour
    return im


@pytest.mark.parametrize("d", [0.2, 0.35, 0.6])
def test_extent_of_a_drawn_nucleus_is_its_diameter(d):
    assert scale.nucleus_extent(drawn(discs=((0.5, 0.5, d),))) == pytest.approx(d, abs=0.03)


def test_lobes_near_the_centre_count_red_cells_and_far_blobs_do_not():
    lobes = drawn(discs=((0.5, 0.4, 0.16), (0.5, 0.6, 0.16), (0.05, 0.9, 0.08)))  # two lobes + a far blob
    assert scale.nucleus_extent(lobes) == pytest.approx(0.36, abs=0.03)           # 0.32 - 0.68 across
    assert np.isnan(scale.nucleus_extent(drawn(discs=(), red=())))                 # an empty slide: none


def test_rescale_shrinks_and_enlarges_about_the_centre():
    im = drawn(discs=((0.5, 0.5, 0.4),))[None]
    small, big = scale.rescale(im, 0.5), scale.rescale(im, 2.0)
    assert small.shape == big.shape == im.shape and small.dtype == np.uint8
    assert scale.nucleus_extent(small[0]) == pytest.approx(0.2, abs=0.03)
    assert scale.nucleus_extent(big[0]) == pytest.approx(0.8, abs=0.03)
    # the added margin is the image's own border colour
    assert np.abs(small[0, 0, 0].astype(int) - scale.border_colour(im[0]).astype(int)).max() <= 1
    assert np.array_equal(scale.rescale(im, 1.0), im)
    with pytest.raises(ValueError, match="positive"):
        scale.rescale(im, 0.0)


def test_rescaling_by_the_ratio_of_domain_scales_matches_the_sizes():
    """What the test-time method does: factor = training scale / domain scale brings the domain to the training
    domain's cell size."""
    train = np.stack([drawn(discs=((0.5, 0.5, d),)) for d in (0.3, 0.32, 0.34)])
    domain = np.stack([drawn(discs=((0.5, 0.5, d),)) for d in (0.58, 0.6, 0.62)])
    s_train, s_domain = scale.domain_scale(train), scale.domain_scale(domain)
    assert s_domain / s_train == pytest.approx(0.6 / 0.32, rel=0.05)  # the medians' ratio
    assert scale.domain_scale(scale.rescale(domain, s_train / s_domain)) == pytest.approx(s_train, abs=0.03)


@pytest.mark.needs_data
def test_real_domains_tight_crops_have_larger_cells(data_root):
    """BCCD and JTSC are cut tight around the cell: their nuclei fill more of the image than PBC's."""
    from wbcbench.data.cache import load_dataset

    sizes = {name: scale.domain_scale(load_dataset(name, data_root, 96)[1], max_images=150)
             for name in ("pbc:test", "bccd", "jtsc")}
    assert 0.25 < sizes["pbc:test"] < 0.45
    assert sizes["bccd"] > 1.5 * sizes["pbc:test"] and sizes["jtsc"] > 1.15 * sizes["pbc:test"]
