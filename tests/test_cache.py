"""Decoded-image cache: layout, reuse, invalidation, atomic builds, colour modes and bad files."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from realdata import image_folder, real_files

from wbcbench.core.errors import WbcError
from wbcbench.data import cache as C
from wbcbench.data import datasets as D


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("WBCBENCH_CACHE", str(d))
    return d


def _no_decode(*a, **k):
    raise AssertionError("decoded again although the cache was valid")


def test_shape_dtype_and_reuse(fresh_cache, data_root, monkeypatch):
    ds = D.get_dataset("cellavision", data_root).subset(range(0, 100, 5), name="cv20")
    a = C.load_images(ds, 32)
    assert isinstance(a, np.memmap) and a.dtype == np.uint8 and a.shape == (20, 32, 32, 3)
    assert not a.flags.writeable
    assert 60 < a.mean() < 250 and a.std() > 10  # real stained cells, not a blank buffer
    path = C.cache_path(ds, 32)
    assert path.parent == fresh_cache and path.stat().st_size == a.nbytes
    mtime = path.stat().st_mtime_ns
    monkeypatch.setattr(C, "decode", _no_decode)
    b = C.load_images(ds, 32)
    assert np.array_equal(a, b) and path.stat().st_mtime_ns == mtime
    assert C.cache_path(ds, 48) != path  # size is part of the key


def test_parallel_build_matches_serial(fresh_cache, data_root):
    pbc = D.get_dataset("pbc:test", data_root)
    ds = pbc.subset(D.balanced_indices(pbc.labels, 14, seed=3), name="pbc70")
    assert len(ds) >= C._SERIAL_BELOW  # takes the process-pool path
    par = C.load_images(ds, 24, workers=2)
    ser = np.stack([C.decode(f, 24) for f in ds.files()])
    assert np.array_equal(np.asarray(par), ser)


def test_invalidated_when_manifest_changes(fresh_cache, tmp_path, data_root):
    root = image_folder(tmp_path / "mine", {"Eosinophil": real_files(data_root, "bccd", "Eosinophil", 3)})
    a = C.load_images(D.get_dataset(str(root)), 32)
    old = C.cache_path(D.get_dataset(str(root)), 32)
    extra = real_files(data_root, "bccd", "Monocyte", 1)[0]
    (root / "Monocyte").mkdir()
    (root / "Monocyte" / extra.name).symlink_to(extra)
    ds2 = D.get_dataset(str(root))
    b = C.load_images(ds2, 32)
    assert b.shape == (4, 32, 32, 3) and C.cache_path(ds2, 32) != old
    assert np.array_equal(np.asarray(b[:3]), np.asarray(a))  # Eosinophils sort first (class order)
    assert np.array_equal(np.asarray(b[3]), C.decode(extra, 32))


def test_killed_build_leaves_no_valid_cache(fresh_cache, tmp_path, data_root, monkeypatch):
    ds = D.get_dataset("bccd", data_root).subset(range(10), name="b10")
    real = C.decode
    calls = []

    def dies_on_third(path, size):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt  # what a Ctrl-C mid-build looks like
        return real(path, size)

    monkeypatch.setattr(C, "decode", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        C.load_images(ds, 32)
    assert not C.cache_path(ds, 32).exists()
    assert list(fresh_cache.iterdir()) == []  # the temp file went too
    monkeypatch.setattr(C, "decode", real)
    assert C.load_images(ds, 32).shape == (10, 32, 32, 3)


def test_centre_crop_of_shorter_side(tmp_path, data_root):
    src = Image.open(real_files(data_root, "lisc", "Monocyte", 1)[0]).convert("RGB").resize((200, 200))
    wide = Image.new("RGB", (400, 200), (0, 0, 0))  # black margins left and right of a real cell
    wide.paste(src, (100, 0))
    wide.save(tmp_path / "wide.png")
    out = C.decode(tmp_path / "wide.png", 32)
    assert out.shape == (32, 32, 3)
    assert out[:, 0].mean() > 40 and out[:, -1].mean() > 40  # the black margins were cropped away
    tall = wide.transpose(Image.Transpose.ROTATE_90)
    tall.save(tmp_path / "tall.png")
    assert C.decode(tmp_path / "tall.png", 32)[0].mean() > 40


def test_colour_modes_become_rgb(tmp_path, data_root):
    rgb = Image.open(real_files(data_root, "bccd", "Lymphocyte", 1)[0]).convert("RGB")
    grey = rgb.convert("L")
    ref_grey = C.decode(_save(grey, tmp_path / "l.png"), 32)
    assert np.array_equal(ref_grey[..., 0], ref_grey[..., 1]) and np.array_equal(ref_grey[..., 1], ref_grey[..., 2])

    g16 = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)  # full 16-bit range, same picture
    assert g16.mode.startswith("I")
    out16 = C.decode(_save(g16, tmp_path / "g16.png"), 32)
    assert np.abs(out16.astype(int) - ref_grey.astype(int)).max() <= 1  # scaled, not clipped to white

    rgba = rgb.convert("RGBA")
    alpha = np.full(rgba.size[::-1], 255, np.uint8)
    alpha[:, : rgba.size[0] // 2] = 0  # left half fully transparent
    rgba.putalpha(Image.fromarray(alpha))
    out = C.decode(_save(rgba, tmp_path / "rgba.png"), 32)
    assert (out[:, :10] == 255).all()  # transparent -> white background
    assert out[:, 20:].std() > 5       # opaque half keeps the cell

    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    out = C.decode(_save(pal, tmp_path / "p.png"), 32)
    ref = C.decode(_save(rgb, tmp_path / "rgb.png"), 32)
    assert np.abs(out.astype(int) - ref.astype(int)).mean() < 12  # palette decoded to colours, not indices

    for img, name in ((rgb.convert("1"), "bw.png"), (grey.convert("LA"), "la.png"),
                      (rgb.convert("CMYK"), "cmyk.jpg"), (grey, "grey.jpg")):
        out = C.decode(_save(img, tmp_path / name), 32)
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def _save(img: Image.Image, path: Path) -> Path:
    img.save(path)
    return path


@pytest.mark.parametrize("kind", ["truncated", "empty", "not-an-image"])
def test_bad_files_fail_naming_the_file(fresh_cache, tmp_path, data_root, kind):
    good = real_files(data_root, "bccd", "Neutrophil", 2)
    root = image_folder(tmp_path / "f", {"Neutrophil": good})
    bad = root / "Neutrophil" / f"bad-{kind}.jpg"
    if kind == "truncated":
        data = good[0].read_bytes()
        bad.write_bytes(data[: len(data) // 3])
    elif kind == "empty":
        bad.write_bytes(b"")
    else:
        bad.write_text("path,label\nthis is a csv file, not a JPEG\n")
    ds = D.get_dataset(str(root))
    with pytest.raises(WbcError, match=f"bad-{kind}.jpg"):
        C.load_images(ds, 32)
    assert not C.cache_path(ds, 32).exists() and list(fresh_cache.glob("*.tmp")) == []


def test_too_large_image_is_an_error(tmp_path, data_root, monkeypatch):
    f = tmp_path / "big.jpg"
    shutil.copy(real_files(data_root, "pbc", "Monocyte", 1)[0], f)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 360x363 is now 'too large'
    with pytest.raises(WbcError, match="big.jpg is too large"):
        C.decode(f, 32)


def test_bad_size(data_root):
    with pytest.raises(WbcError, match="size"):
        C.load_images(D.get_dataset("cellavision", data_root), 0)


def test_bad_file_reported_from_worker_process(fresh_cache, tmp_path, data_root):
    root = image_folder(tmp_path / "f", {"Basophil": real_files(data_root, "pbc", "Basophil", C._SERIAL_BELOW)})
    data = real_files(data_root, "pbc", "Basophil", 1)[0].read_bytes()
    (root / "Basophil" / "zz-cut.jpg").write_bytes(data[:2000])
    ds = D.get_dataset(str(root))
    with pytest.raises(WbcError, match="zz-cut.jpg"):
        C.load_images(ds, 16, workers=2)
    assert list(fresh_cache.iterdir()) == []
