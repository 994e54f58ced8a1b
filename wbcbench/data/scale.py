"""Cell scale without labels: how large a domain's white cells are in its images, and images rescaled so that
their cells have the training domain's size.

The stained nucleus is found per image as the pixels that are both saturated and dark (saturation x (1 - value/2)
above the image's own Otsu threshold, one opening against specks); the nucleus is the component nearest the centre
together with the components within a quarter of the image side of it (a neutrophil's lobes). Its extent is the
longer side of their bounding box as a fraction of the image side. A domain's scale is the median extent over its
images: robust to the images where the threshold picks a red cell or misses a lobe. Like AdaBN, this reads the new
domain's images and never their labels; its class mix still moves the median a little (a lymphocyte's nucleus fills
more of its cell than a neutrophil's lobes)."""
from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

#: images are measured at this side (pixels): fast, and fine enough for a fraction of the side
MEASURE_SIDE = 128
MIN_AREA = 0.002   # of the image: smaller components are specks or platelets
LOBE_RADIUS = 0.25  # of the side: components this close to the central one belong to the same nucleus
MIN_CONTRAST = 0.05  # of the stain score: a flatter image has no nucleus to find
MAX_FOREGROUND = 0.3  # of the image: a larger "stained" part holds red cells too


def stain_score(rgb: np.ndarray) -> np.ndarray:
    """Per pixel, saturation x (1 - value / 2) in [0, 1]: high on the haematoxylin-stained nucleus, low on the
    pale background and on red cells, in every domain's colours (yellow, grey or pink backgrounds alike)."""
    x = rgb.astype(np.float32) / 255.0
    hi, lo = x.max(-1), x.min(-1)
    return (hi - lo) / np.maximum(hi, 1e-6) * (1.0 - 0.5 * hi)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1]: the cut that maximises the between-class variance."""
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centres)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    return float(centres[np.argmax(w0 * w1 * (m0 - m1) ** 2)])


def nucleus_mask(rgb: np.ndarray, side: int = MEASURE_SIDE) -> np.ndarray:
    """Boolean side x side mask of the central cell's nucleus in an RGB uint8 image (all False when none)."""
    im = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((side, side), Image.BILINEAR))
    score = stain_score(im)
    keep = np.zeros(score.shape, bool)
    if score.max() - score.min() < MIN_CONTRAST:
        return keep
    cut = otsu_threshold(score)
    if (score > cut).mean() > MAX_FOREGROUND:  # red cells as stained as the nucleus: split the stained part again
        cut = otsu_threshold(score[score > cut])
    mask = ndimage.binary_opening(score > cut)
    labels, n = ndimage.label(mask)
    if n == 0:
        return keep
    index = np.arange(1, n + 1)
    areas = ndimage.sum(mask, labels, index)
    centres = np.array(ndimage.center_of_mass(mask, labels, index))
    big = np.flatnonzero(areas >= MIN_AREA * side * side)
    if not len(big):
        return keep
    middle = (side - 1) / 2
    core = big[np.argmin(np.hypot(*(centres[big] - middle).T))]
    near = big[np.hypot(*(centres[big] - centres[core]).T) < LOBE_RADIUS * side]
    return np.isin(labels, near + 1)


def nucleus_extent(rgb: np.ndarray, side: int = MEASURE_SIDE) -> float:
    """The longer side of the nucleus' bounding box as a fraction of the image side (nan when none is found)."""
    rows, cols = np.nonzero(nucleus_mask(rgb, side))
    if not len(rows):
        return float("nan")
    return max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) / side


def extents(images) -> np.ndarray:
    """nucleus_extent of every image of an (N, H, W, 3) uint8 array."""
    return np.array([nucleus_extent(im) for im in images], dtype=np.float64)


def domain_scale(images, max_images: int | None = 500, seed: int = 0) -> float:
    """The median nucleus extent over a domain's images (a seeded sample of `max_images` of them when there are
    more: the median of 500 moves by well under a pixel)."""
    n = len(images)
    idx = np.arange(n) if max_images is None or n <= max_images else np.sort(
        np.random.default_rng(seed).choice(n, max_images, replace=False))
    found = extents(images[i] for i in idx)
    found = found[np.isfinite(found)]
    return float(np.median(found)) if len(found) else float("nan")


def border_colour(rgb: np.ndarray) -> np.ndarray:
    """The median colour of an image's one-pixel border: the slide's background around the cell."""
    edge = np.concatenate([rgb[0], rgb[-1], rgb[1:-1, 0], rgb[1:-1, -1]])
    return np.median(edge, axis=0).astype(np.uint8)


def rescale(images: np.ndarray, factor: float) -> np.ndarray:
    """Images (N, S, S, 3) uint8 with their content scaled by `factor` about the centre, same shape: factor < 1
    shrinks the cell onto a canvas of side S / factor filled with each image's border colour; factor > 1 crops the
    central S / factor and enlarges it. factor = training scale / domain scale brings the domain's cells to the
    training domain's size."""
    if not np.isfinite(factor) or factor <= 0:
        raise ValueError(f"scale factor must be a positive number, got {factor}")
    n, side = len(images), images.shape[1]
    out = np.empty_like(images)
    for i in range(n):
        im = images[i]
        if factor < 1:
            canvas_side = int(round(side / factor))
            canvas = np.empty((canvas_side, canvas_side, 3), np.uint8)
            canvas[:] = border_colour(im)
            off = (canvas_side - side) // 2
            canvas[off:off + side, off:off + side] = im
        else:
            keep = max(1, int(round(side / factor)))
            off = (side - keep) // 2
            canvas = im[off:off + keep, off:off + keep]
        out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(canvas)).resize((side, side), Image.BILINEAR))
    return out


def overlay(rgb: np.ndarray, side: int = MEASURE_SIDE, colour=(0, 200, 0)) -> np.ndarray:
    """The image at `side` px with its measured nucleus tinted and the bounding box drawn: the measurement as
    a reader checks it by eye."""
    im = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((side, side), Image.BILINEAR)).copy()
    mask = nucleus_mask(rgb, side)
    im[mask] = (0.45 * im[mask] + 0.55 * np.array(colour)).astype(np.uint8)
    rows, cols = np.nonzero(mask)
    if len(rows):
        r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
        im[[r0, r1], c0:c1 + 1] = colour
        im[r0:r1 + 1, [c0, c1]] = colour
    return im
