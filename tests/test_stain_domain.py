"""Per-domain stain normalisation (wbcbench.adapt.stain_domain) against its definition, on real PBC cells:
a domain mapped to itself barely moves, a global colour cast is undone, and one estimate serves every image."""
from __future__ import annotations

import numpy as np
import pytest

from wbcbench.adapt import stain, stain_domain
from wbcbench.data.cache import load_dataset
from wbcbench.data.datasets import balanced_indices

pytestmark = pytest.mark.needs_data


@pytest.fixture(scope="module")
def cells(data_root):
    ds, images = load_dataset("pbc:test", data_root, 64)
    return np.ascontiguousarray(images[balanced_indices(ds.labels, 8, seed=1)])


def cast(images, gains=(0.82, 0.95, 1.12)):
    """A scanner's colour cast: each channel scaled."""
    return np.clip(np.rint(images * np.array(gains)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("method", ["macenko", "reinhard"])
def test_a_domain_mapped_to_itself_barely_moves(cells, method):
    ref = stain.fit_reference(cells, method)
    out = stain_domain.normalise_domain(cells, stain_domain.domain_reference(cells, method), ref)
    assert out.n_fell_back == 0
    moved = np.abs(out.images.astype(float) - cells).mean()
    assert moved < 8 and moved < np.abs(stain.normalise(cells, ref).images.astype(float) - cells).mean()


@pytest.mark.parametrize("method", ["macenko", "reinhard"])
def test_a_colour_cast_is_undone(cells, method):
    ref = stain.fit_reference(cells, method)
    shifted = cast(cells)
    out = stain_domain.normalised_domain(shifted, f"{method}_domain", ref)
    before = np.abs(shifted.astype(float) - cells).mean()
    after = np.abs(out.images.astype(float) - cells).mean()
    assert after < 0.5 * before, (before, after)


def test_one_estimate_serves_the_whole_domain(cells):
    """Per domain, an image's result depends on the rest of its domain (the pooled fit); per image, not."""
    ref = stain.fit_reference(cells, "reinhard")
    other = np.concatenate([cells[:1], cast(cells[1:])])       # the same first image in a cast domain
    here = stain_domain.normalised_domain(cells, "reinhard_domain", ref).images[0]
    there = stain_domain.normalised_domain(other, "reinhard_domain", ref).images[0]
    assert np.abs(here.astype(int) - there).mean() > 5
    assert np.array_equal(stain.normalise(cells, ref).images[0], stain.normalise(other, ref).images[0])
    with pytest.raises(Exception, match="cannot map"):
        stain_domain.normalise_domain(cells, stain_domain.domain_reference(cells, "macenko"), ref)
