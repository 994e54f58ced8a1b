"""Decode each (dataset, size) once into a uint8 memmap, so training epochs read pixels, not JPEGs.

Policy for bad files: fail. A truncated JPEG, a zero-byte file, a non-image with an image extension or an
image too large to be a cell crop raises WbcError naming the file; skipping it would silently change the
test set that a reported number refers to.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, ImageFile, ImageOps
from tqdm import tqdm

from wbcbench.core.atomic import atomic_path
from wbcbench.core.errors import WbcError
from wbcbench.core.paths import cache_dir
from wbcbench.data.datasets import Dataset, get_dataset

# Bump when decoding changes (resize, crop, colour conversion): old caches are then ignored, never reused.
DECODER_VERSION = 1
# Pillow's JPEG decoder can change pixels between releases; its version is part of the key too.
_DECODER_KEY = f"d{DECODER_VERSION}-pil{PIL.__version__}"
_REDUCING_GAP = 3.0   # Image.reduce() by an integer factor first, then antialiased bilinear: fast and close
_SERIAL_BELOW = 64    # images; below this a process pool costs more than it saves
_CHUNK = 32


def _to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB from any mode. 16/32-bit grey is scaled (not clipped, which would saturate it white);
    transparency is composited on white, the colour of an empty slide."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(np.rint(a * (255.0 / peak)), 0, 255).astype(np.uint8)
        return Image.fromarray(a).convert("RGB")  # 2-D uint8 -> mode L
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        a = a * 255.0 if a.size and np.nanmax(a) <= 1.0 else a
        return Image.fromarray(np.clip(np.nan_to_num(np.rint(a)), 0, 255).astype(np.uint8)).convert("RGB")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (im.mode == "P" and "transparency" in im.info) \
            or (im.mode in ("L", "RGB") and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def decode(path: str | os.PathLike, size: int) -> np.ndarray:
    """One image -> uint8 (size, size, 3): RGB, shorter side resized to `size`, centre-cropped square."""
    path = Path(path)
    old_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # some libraries flip this globally; a cut-off file must fail
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.format == "JPEG":
                    im.draft("RGB", (size, size))  # DCT-domain downscale, never below `size`: fast, less memory
                im.load()
                im = ImageOps.exif_transpose(im)
                im = _to_rgb(im)
                w, h = im.size
                if w < 1 or h < 1:
                    raise ValueError(f"empty image {w}x{h}")
                s = size / min(w, h)
                nw, nh = max(size, round(w * s)), max(size, round(h * s))
                if (nw, nh) != (w, h):
                    im = im.resize((nw, nh), Image.BILINEAR, reducing_gap=_REDUCING_GAP)
                left, top = (nw - size) // 2, (nh - size) // 2
                im = im.crop((left, top, left + size, top + size))
                arr = np.asarray(im, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise WbcError(f"image {path} is too large to decode safely ({e})") from None
    except FileNotFoundError:
        raise WbcError(f"image {path} does not exist") from None
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for corrupt files
        what = "empty (0 bytes)" if path.is_file() and path.stat().st_size == 0 else f"{type(e).__name__}: {e}"
        raise WbcError(f"cannot decode image {path}: {what}") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = old_truncated
    if arr.shape != (size, size, 3):  # pragma: no cover - a guard on the arithmetic above
        raise WbcError(f"image {path} decoded to shape {arr.shape}, expected {(size, size, 3)}")
    return arr


def _decode_chunk(args) -> tuple[int, np.ndarray | None, str | None]:
    """Pool worker: errors travel back as messages, since arbitrary exceptions may not pickle."""
    start, paths, size = args
    try:
        return start, np.stack([decode(p, size) for p in paths]), None
    except WbcError as e:
        return start, None, str(e)


def cache_path(ds: Dataset, size: int) -> Path:
    """Where the decoded array of `ds` at `size` lives: name for humans, hash + size + decoder for validity."""
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(ds.name).name if os.sep in ds.name else ds.name)[:40]
    return cache_dir() / f"{label}-{ds.manifest_hash()[:16]}-{int(size)}px-{_DECODER_KEY}-n{len(ds)}.u8"


def _workers(n_images: int, workers: int | None) -> int:
    if workers is None:
        workers = int(os.environ.get("WBCBENCH_DECODE_WORKERS", 0)) or min(2, os.cpu_count() or 1)
    return 1 if n_images < _SERIAL_BELOW else max(1, int(workers))


def _pool(n: int):
    """fork where there is one: the workers only run PIL/numpy, and spawn would re-run the caller's
    __main__ (which fails from stdin or a notebook and then respawns workers forever)."""
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else "spawn").Pool(n)


def load_images(ds: Dataset, size: int, progress: bool = False, workers: int | None = None) -> np.ndarray:
    """Read-only np.memmap uint8 (N, size, size, 3) of `ds`, decoding only on the first call.

    The cache file is keyed by the dataset's manifest hash, `size` and the decoder version, so any change
    of the file list, labels or (for folders without md5s) file size/mtime builds a new one. It is written to
    a temp file and renamed into place only when complete: a killed build never leaves a valid-looking cache.
    """
    size = int(size)
    if size < 1:
        raise WbcError(f"image size must be a positive number of pixels, got {size}")
    n = len(ds)
    if n == 0:
        raise WbcError(f"dataset {ds.name!r} is empty")
    path = cache_path(ds, size)
    shape = (n, size, size, 3)
    if path.is_file() and path.stat().st_size == int(np.prod(shape)):
        return np.memmap(path, dtype=np.uint8, mode="r", shape=shape)

    files = [str(f) for f in ds.files()]
    chunks = [(i, files[i:i + _CHUNK], size) for i in range(0, n, _CHUNK)]
    bar = tqdm(total=n, desc=f"decoding {ds.name} at {size}px", unit="img", file=sys.stderr) if progress else None
    with atomic_path(path) as tmp:  # (atomic_path gives the temp file the umask's permissions)
        out = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape)
        try:
            nw = _workers(n, workers)
            if nw == 1:
                results = map(_decode_chunk, chunks)
                pool = None
            else:
                pool = _pool(nw)
                results = pool.imap_unordered(_decode_chunk, chunks)
            try:
                for start, arr, err in results:
                    if err is not None:
                        raise WbcError(f"{err} (while caching dataset {ds.name!r}; fix or remove the file)")
                    out[start:start + len(arr)] = arr
                    if bar is not None:
                        bar.update(len(arr))
            finally:
                if pool is not None:
                    pool.terminate()
                    pool.join()
            out.flush()
        finally:
            del out
            if bar is not None:
                bar.close()
    return np.memmap(path, dtype=np.uint8, mode="r", shape=shape)


def load_dataset(name: str, data_root=None, size: int = 224, progress: bool = False) -> tuple[Dataset, np.ndarray]:
    """A dataset by name (or path) and its decoded images: what training and evaluation both start from."""
    ds = get_dataset(name, data_root)
    return ds, load_images(ds, size, progress=progress)
