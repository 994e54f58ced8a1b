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


# ------------------------------------------------------------------- what two stains cannot hold (synthetic)

STAINS = np.array([[0.65, 0.07], [0.70, 0.99], [0.29, 0.11]])   # two unit-ish OD vectors (columns), H and E
STAINS = STAINS / np.linalg.norm(STAINS, axis=0)


def _slide(third: float = 0.0, seed: int = 0) -> np.ndarray:
    """64 x 64 cells on a white (Io) background whose stained half has OD = STAINS @ amounts (+ `third` times a
    unit OD direction orthogonal to both stains), as uint8 light through the slide."""
    rng = np.random.default_rng(seed)
    od = np.zeros((64 * 64, 3))
    amounts = rng.uniform(0.4, 1.2, size=(2, 32 * 64))
    off = np.cross(STAINS[:, 0], STAINS[:, 1])
    off = (off if off.sum() > 0 else -off) / np.linalg.norm(off)
    od[: 32 * 64] = (STAINS @ amounts).T + third * off
    light = stain.IO * np.exp(-od) - 1
    return np.clip(np.rint(light), 0, 255).astype(np.uint8).reshape(64, 64, 3)


def _domain(stains) -> stain.StainReference:
    """A Macenko estimate with these stain vectors and _slide's background (Io - 1: its light is Io e^-OD - 1)."""
    return stain.StainReference("macenko", {"stains": stains, "max_conc": np.ones(2),
                                            "background": np.full(3, stain.IO - 1)}, 1)


def test_od_in_the_plane_of_the_two_stains_has_nothing_off_it():
    share, mean, _ = stain_domain.off_plane_od(np.stack([_slide(seed=s) for s in range(3)]), _domain(STAINS))
    assert share < 0.01 and np.abs(mean).max() < 0.01, (share, mean)


def test_a_third_colour_is_the_off_plane_share_and_its_direction():
    third = 0.5
    images = np.stack([_slide(third, seed=s) for s in range(3)])
    share, mean, od_mean = stain_domain.off_plane_od(images, _domain(STAINS))
    # the definition, computed directly on the stained pixels' optical density (no uint8 rounding)
    rng = np.random.default_rng(0)
    amounts = rng.uniform(0.4, 1.2, size=(2, 32 * 64))
    off = np.cross(STAINS[:, 0], STAINS[:, 1])
    off = (off if off.sum() > 0 else -off) / np.linalg.norm(off)
    od = (STAINS @ amounts).T + third * off
    want = third * len(od) / np.linalg.norm(od, axis=1).sum()
    assert share == pytest.approx(want, rel=0.05), (share, want)
    assert np.allclose(mean, third * off, atol=0.02), (mean, third * off)
    assert np.allclose(od_mean, od.mean(axis=0), atol=0.02), (od_mean, od.mean(axis=0))
    # pale pixels (summed OD under MIN_OD) are not counted, however far off the plane they lie
    pale = images.copy()
    faint = np.clip(np.rint(stain.IO * np.exp(-0.15 * np.abs(off)) - 1), 0, 255).astype(np.uint8)
    assert (-np.log((faint.astype(float) + 1) / stain.IO)).sum() < stain_domain.MIN_OD
    pale[:, 36:60] = faint
    assert stain_domain.off_plane_od(pale, _domain(STAINS)).share == pytest.approx(share, rel=0.02)
    # OD is measured against each image's own background: a dimmer lamp changes nothing
    dim = np.clip(np.rint(images * 0.8), 0, 255).astype(np.uint8)
    assert stain_domain.off_plane_od(dim, _domain(STAINS)).share == pytest.approx(share, rel=0.05)
    with pytest.raises(Exception, match="no.*stained pixels|none of these images"):
        stain_domain.off_plane_od(np.full((2, 64, 64, 3), 240, np.uint8), _domain(STAINS))


def test_rebuilding_from_the_two_stains_drops_exactly_the_off_plane_part():
    """Macenko mapping a domain to itself keeps the in-plane OD and loses the rest: the rebuilt slide of a
    third-colour slide is the slide without its third colour."""
    with_third, without = _slide(0.5), _slide(0.0)
    dom = _domain(STAINS)
    rebuilt = stain_domain.normalise_domain(with_third[None], dom, dom).images[0]
    assert np.abs(rebuilt.astype(int) - without).mean() < 1
    assert np.abs(with_third.astype(int) - without).mean() > 10
