"""The batch loader on real cached PBC images: crops come from inside the stored image, flips are real
mirror images, epochs are reproducible, evaluation sees every image once in order, and the float tensors the
model receives are exactly (pixel/255 - mean)/std in channels_last layout."""
import threading

import numpy as np
import pytest
import torch

from wbcbench.data import cache, datasets
from wbcbench.data.loader import BatchLoader, epoch_rng, mixup

STORED, CROP = 40, 32
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def data(data_root):
    ds = datasets.get_dataset("pbc:train", data_root)
    sub = ds.subset(datasets.balanced_indices(ds.labels, 12, seed=0), name="pbc:train-loader-test")
    return sub, cache.load_images(sub, STORED)


def loader(data, **kw):
    ds, images = data
    args = dict(crop=CROP, batch_size=16, mean=MEAN, std=STD, device="cpu", train=True, seed=1)
    args.update(kw)
    return BatchLoader(images, ds.labels, args.pop("indices", None), **args)


def windows(img, crop):
    """Every crop x crop window of img under every combination of flips: {bytes: (oy, ox, vflip, hflip)}."""
    found = {}
    s = img.shape[0]
    for oy in range(s - crop + 1):
        for ox in range(s - crop + 1):
            w = img[oy:oy + crop, ox:ox + crop]
            for vf in (False, True):
                for hf in (False, True):
                    v = w[::-1] if vf else w
                    v = v[:, ::-1] if hf else v
                    found.setdefault(np.ascontiguousarray(v).tobytes(), (oy, ox, vf, hf))
    return found


def test_random_crops_lie_inside_the_stored_image(data):
    ds, images = data
    ldr = loader(data)
    flips, offsets = set(), set()
    for x, y, idx in list(ldr.host_batches())[:2]:
        assert x.dtype == torch.uint8 and tuple(x.shape[1:]) == (CROP, CROP, 3)
        assert (y.numpy() == ds.labels[idx]).all()
        for k, i in enumerate(idx[:8]):
            hit = windows(np.asarray(images[i]), CROP).get(x[k].numpy().tobytes())
            assert hit is not None, f"batch image {k} is not a window of stored image {i}"
            offsets.add(hit[:2])
            flips.add(hit[2:])
    assert len(offsets) > 4, "crop offsets are not random"
    assert len(flips) >= 3, f"flip combinations seen: {flips}"


@pytest.mark.parametrize("axis", ["h", "v"])
def test_flips_are_mirror_images(data, axis):
    """crop = stored size: no crop offset, so each output is the image or its exact mirror, both occur."""
    ds, images = data
    ldr = loader(data, crop=STORED, hflip=axis == "h", vflip=axis == "v", batch_size=32)
    same = mirrored = 0
    for x, _, idx in ldr.host_batches():
        for k, i in enumerate(idx):
            img = np.asarray(images[i])
            mirror = img[:, ::-1] if axis == "h" else img[::-1]
            got = x[k].numpy()
            assert not np.array_equal(img, mirror), "a symmetric cell image proves nothing"
            if np.array_equal(got, img):
                same += 1
            else:
                assert np.array_equal(got, mirror), f"image {i} is neither itself nor its {axis}-mirror"
                mirrored += 1
    n = same + mirrored
    assert n == len(ldr) * 32
    assert 0.3 < mirrored / n < 0.7, (same, mirrored)
    # a mirrored pixel really moves: the centre row/column reverses
    c = STORED // 2
    img = np.asarray(images[0])
    if axis == "h":
        assert np.array_equal(img[:, ::-1][c, 0], img[c, -1])
    else:
        assert np.array_equal(img[::-1][0, c], img[-1, c])


def test_no_flips_when_switched_off(data):
    ds, images = data
    ldr = loader(data, crop=STORED, hflip=False, vflip=False)
    for x, _, idx in ldr.host_batches():
        assert np.array_equal(x.numpy(), np.asarray(images[idx]))


def test_same_seed_and_epoch_same_batches(data):
    def batches(seed, epoch):
        ldr = loader(data, seed=seed)
        ldr.set_epoch(epoch)
        return [(b.x.clone(), b.y.clone(), b.index.copy()) for b in ldr]

    a, b = batches(1, 2), batches(1, 2)
    assert len(a) == len(b) == 60 // 16  # 5 classes x 12 images, last partial batch dropped in training
    for (xa, ya, ia), (xb, yb, ib) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and (ia == ib).all()
    for other in (batches(1, 3), batches(2, 2)):
        assert not all(torch.equal(p[0], q[0]) for p, q in zip(a, other))
    # an epoch draws from (seed, epoch) alone: the same whatever happened before (resume)
    fresh = loader(data, seed=1)
    fresh.set_epoch(2)
    assert torch.equal(next(iter(fresh)).x, a[0][0])
    assert np.array_equal(epoch_rng(1, 2).permutation(5), epoch_rng(1, 2).permutation(5))


def test_eval_visits_every_image_once_in_order_centre_crop(data):
    ds, images = data
    indices = np.arange(3, len(ds))  # 57 images: 3 full batches of 16 and a partial one of 9
    ldr = loader(data, train=False, indices=indices)
    got = list(ldr)
    assert len(ldr) == len(got) == 4 and len(got[-1].x) == 9
    assert np.array_equal(np.concatenate([b.index for b in got]), indices)
    assert np.array_equal(torch.cat([b.y for b in got]).numpy(), ds.labels[indices])
    off = (STORED - CROP) // 2
    centre = np.asarray(images[indices[0]])[off:off + CROP, off:off + CROP]
    assert np.array_equal(next(ldr.host_batches())[0][0].numpy(), centre)


def test_output_is_normalised_channels_last_float(data):
    ds, images = data
    b = next(iter(loader(data, train=False)))
    assert b.x.dtype == torch.float32 and tuple(b.x.shape) == (16, 3, CROP, CROP)
    assert b.x.is_contiguous(memory_format=torch.channels_last)
    assert b.y.dtype == torch.int64
    off = (STORED - CROP) // 2
    img = np.asarray(images[b.index[0]], dtype=np.float64)[off:off + CROP, off:off + CROP]  # HWC, real cells
    manual = (img / 255.0 - np.array(MEAN)) / np.array(STD)
    np.testing.assert_allclose(b.x[0].permute(1, 2, 0).numpy(), manual, rtol=0, atol=2e-6)
    assert img.std() > 10, "a blank image would not test the normalisation"


def test_crop_larger_than_stored_is_refused(data):
    with pytest.raises(ValueError, match="larger than the stored"):
        loader(data, crop=STORED + 1)


def test_breaking_out_of_an_epoch_stops_the_worker(data):
    before = threading.active_count()
    for _ in range(3):
        for _ in loader(data, prefetch=1):
            break
    assert threading.active_count() == before


def test_mixup_mixes_inputs_and_labels():
    rng = np.random.default_rng(0)
    x = torch.arange(4 * 3 * 2 * 2, dtype=torch.float32).view(4, 3, 2, 2)
    y = torch.arange(4)
    mx, (ya, yb), lam = mixup(x, y, 0.2, rng)
    assert 0.0 <= lam <= 1.0 and torch.equal(ya, y)
    perm = yb  # labels are their own positions here
    torch.testing.assert_close(mx, lam * x + (1 - lam) * x[perm])
    assert mixup(x, y, 0.0, rng)[2] == 1.0


# ------------------------------------------------------------------------- colour augmentation on the batch
@pytest.mark.parametrize("name", ["hed", "colour", "grayscale"])
def test_augmentation_is_applied_to_each_batch_with_its_epoch_draws_in_order(data, name):
    """The loader's batches are exactly normalise(aug(crop batch, gen)) with gen = epoch_generator(seed,
    epoch) consumed batch after batch: the augmentation's definition, in the order a resumed run repeats."""
    from wbcbench.engine.augment import epoch_generator, make_augment
    aug = make_augment(name)
    plain = loader(data)
    augmented = loader(data, augment=aug.training_hook(1))
    norm = plain.normalize
    for epoch in (0, 3):
        plain.set_epoch(epoch)
        augmented.set_epoch(epoch)
        gen = epoch_generator(1, epoch)
        raw = [x for x, _, _ in plain.host_batches()]
        got = [b.x for b in augmented]
        assert len(got) == len(raw) > 1
        for r, g in zip(raw, got):
            assert torch.equal(g, norm(aug(r, gen)))
        assert not torch.equal(got[0], norm(raw[0]))


def test_no_augmentation_leaves_the_batches_untouched(data):
    from wbcbench.engine.augment import make_augment
    assert make_augment("none").training_hook(1) is None and make_augment("hed").test_hook() is None
    a, b = loader(data), loader(data, augment=make_augment("none").training_hook(1))
    assert all(torch.equal(x.x, y.x) for x, y in zip(a, b))


def test_grayscale_input_reaches_the_evaluation_batches_too(data):
    """A network trained on grayscale input is tested on grayscale images: every evaluation batch, once
    un-normalised, has R = G = B (up to float rounding), the BT.601 luma of the colour crop."""
    from wbcbench.engine.augment import grayscale, make_augment
    hook = make_augment("grayscale").test_hook()
    colour, gray = loader(data, train=False), loader(data, train=False, augment=hook)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    for c, g in zip(colour, gray):
        px = (g.x * std + mean) * 255
        assert (px[:, 0] - px[:, 1]).abs().max() < 1e-3 and (px[:, 1] - px[:, 2]).abs().max() < 1e-3
        want = grayscale(((c.x * std + mean)).float()) * 255
        assert (px - want).abs().max() < 0.51  # rounded to 8 bits, as a stored image is
