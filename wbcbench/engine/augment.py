"""Training-time colour augmentations, done on the whole batch on the training device (the pretrained study's
training-time remedies).

Hook point: the loader's device step. A batch arrives there as uint8 NHWC; an augmentation maps it to uint8
NHWC of the same shape, device and dtype, and the loader's fused Normalizer follows unchanged. Working on
uint8 in and out keeps `augment="none"` bit-identical to training without augmentation (it returns its input),
and the rounding back to 8 bits is the same a stored image has. Inside, the batch is float RGB in [0, 1].

* `hed`: stain jitter in haematoxylin-eosin-DAB space (Tellez et al., IEEE TMI 37(9) 2018, "Whole-slide
  mitosis detection in H&E breast histology using PHH3 as a reference to train distilled stain-invariant
  convolutional networks"): colour deconvolution with Ruifrok & Johnston's (2001) matrix as in
  skimage.color.rgb2hed, then per image and stain h' = h * alpha + beta, alpha ~ U(1 - sigma, 1 + sigma),
  beta ~ U(-bias, bias), back to RGB. Units are today's skimage's (optical density / ln(1e6)). Unlike
  rgb2hed, negative stain values are not clipped to 0, so the round trip is exact and zero jitter is the
  identity. kornia has no HED transform, hence this one.
  Defaults: sigma = 0.05 is Tellez's ('HED-light', Tellez et al., Med. Image Anal. 58, 2019); bias = 0.01,
  not Tellez's 0.05, because his 0.05 is in the units of the skimage of his day (< 0.19: -log(rgb + 2) @ M^-1),
  where 0.05 moves a pixel by about 0.1 of full scale. In today's units PBC stain values lie in about
  [-0.01, 0.08], and bias 0.05 darkens the mean PBC pixel from (0.86, 0.74, 0.72) to (0.44, 0.15, 0.32) when
  it is drawn positive (mean |change| 0.16 of full scale): not 'light'. bias 0.01 moves pixels by about
  7 * 0.01 = 0.07 per stain at most (mean |change| 0.04 on PBC), Tellez's magnitude.
* `colour`: brightness, contrast, saturation and hue jitter in that fixed order. Brightness, contrast and
  saturation use torchvision's formulas through kornia.enhance (what kornia's ColorJitter calls). Hue is a
  rotation of the chroma plane in YIQ space (luma kept exactly), a linear stand-in for torchvision's HSV hue
  shift: kornia's adjust_hue round-trips through HSV and costs about 0.5 s per batch of 64 at 96 px on this
  2-core machine, as much as a training step, while a 3x3 matrix per image costs what the HED jitter costs.
  Defaults 0.2 / 0.2 / 0.2 / 0.05 turn (18 degrees) are our choice, a moderate torchvision-style setting
  (factors in [0.8, 1.2]) of the size of the HED jitter's effect, not a published recipe.
* `grayscale`: ITU-R BT.601 luma in all three channels (kornia.color.rgb_to_grayscale), with probability
  p per image. The registry's `grayscale` is the pretrained study's "grayscale input" arm: p = 1, and `applies_at_test`
  says evaluation images must be converted the same way, since a colour test image would otherwise be a shift
  of its own. p < 1 is random grayscale, a training-time augmentation only.

Randomness: every draw comes from a CPU torch.Generator seeded by (seed, epoch) (`epoch_generator`), never
from torch's global generator (kornia's augmentation classes use that one, hence the functional ops here).
An epoch's batches consume it in order, so a run resumed at an epoch boundary draws exactly what an
uninterrupted one draws, and the draws do not depend on the device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from wbcbench.core.errors import WbcError, unknown
from wbcbench.core.profiles import AUGMENTATIONS
from wbcbench.data.loader import epoch_rng

# name -> default parameters (`make_augment` overrides them)
DEFAULTS = {
    "none": {},
    "hed": {"sigma": 0.05, "bias": 0.01},
    "colour": {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.05},
    "grayscale": {"p": 1.0},
    "scale": {"min_zoom": 0.5, "max_zoom": 2.0},
}

# Ruifrok & Johnston (2001) stain vectors (rows: haematoxylin, eosin, DAB) as skimage.color.rgb_from_hed.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29],
                         [0.07, 0.99, 0.11],
                         [0.27, 0.57, 0.78]])
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
_EPS = 1e-6                 # skimage's floor before the log; also its unit: stain = log(rgb) / log(1e-6)
_LOG_EPS = math.log(_EPS)
_SALT = 0xA06           # keeps these draws independent of the loader's (seed, epoch) crop stream
LUMA_601 = (0.299, 0.587, 0.114)
# NTSC RGB -> YIQ (its first row is the BT.601 luma); hue rotates (I, Q) about the luma axis.
YIQ_FROM_RGB = np.array([LUMA_601, [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
RGB_FROM_YIQ = np.linalg.inv(YIQ_FROM_RGB)


def _kornia():
    try:
        import kornia
    except ImportError:
        raise WbcError("the 'colour' and 'grayscale' augmentations need kornia: pip install kornia") from None
    return kornia


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator for one epoch's augmentation draws: loader.epoch_rng's (seed, epoch), own stream."""
    return torch.Generator().manual_seed(int(epoch_rng(int(seed), int(epoch), _SALT).integers(2**63)))


def _matrix(m: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(m, dtype=like.dtype, device=like.device)


def rgb_to_hed(x: torch.Tensor) -> torch.Tensor:
    """float RGB in [0, 1], (..., 3, H, W) -> stain concentrations (H, E, D), skimage's units, unclipped."""
    od = x.clamp_min(_EPS).log() / _LOG_EPS
    return torch.einsum("...chw,cd->...dhw", od, _matrix(HED_FROM_RGB, x))


def hed_to_rgb(hed: torch.Tensor) -> torch.Tensor:
    """Inverse of rgb_to_hed (skimage.color.hed2rgb), clipped to [0, 1]."""
    log_rgb = torch.einsum("...dhw,dc->...chw", hed, _matrix(RGB_FROM_HED, hed)) * _LOG_EPS
    return log_rgb.exp().clamp_(0.0, 1.0)


def hed_jitter(x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """h' = h * alpha + beta per image and stain (alpha, beta: (B, 3)) on float RGB (B, 3, H, W) in [0, 1].

    Deconvolution, scaling and reconstruction are all linear in log(rgb), so they fold into one 3x3 matrix
    and one offset per image: log(rgb') = log(rgb) @ (M^-1 diag(alpha) M) + log(eps) * (beta @ M)."""
    m, minv = _matrix(RGB_FROM_HED, x), _matrix(HED_FROM_RGB, x)
    alpha, beta = alpha.to(x.device, x.dtype), beta.to(x.device, x.dtype)
    a = minv.unsqueeze(0) * alpha.unsqueeze(1) @ m           # (B, 3, 3)
    c = (beta @ m) * _LOG_EPS                                  # (B, 3)
    return _per_image_3x3(x.clamp_min(_EPS).log_(), a, c).exp_().clamp_(0.0, 1.0)


def _per_image_3x3(x: torch.Tensor, a: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
    """out[b, d] = sum_c x[b, c] * a[b, c, d] (+ offset[b, d]) for x (B, 3, H, W), as one batched matmul over
    channels-last pixels: the loader's batches are channels_last, so no copy, and so is the result."""
    b, _, h, w = x.shape
    px = x.permute(0, 2, 3, 1).reshape(b, h * w, 3)
    out = torch.bmm(px, a) if offset is None else torch.baddbmm(offset[:, None, :].expand(b, h * w, 3), px, a)
    return out.view(b, h, w, 3).permute(0, 3, 1, 2)


def hue_rotate(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate each image's chroma by `turns` (B,) of a full circle in YIQ space; luma is unchanged."""
    t = turns.to(torch.float64) * (2 * math.pi)
    rot = torch.zeros(len(t), 3, 3, dtype=torch.float64)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = t.cos(), -t.sin(), t.sin(), t.cos()
    # column-vector form: rgb' = RGB_FROM_YIQ @ rot @ YIQ_FROM_RGB @ rgb
    m = torch.from_numpy(RGB_FROM_YIQ) @ rot @ torch.from_numpy(YIQ_FROM_RGB)
    return _per_image_3x3(x, m.transpose(1, 2).to(x.device, x.dtype)).clamp_(0.0, 1.0)


def colour_jitter(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor, saturation: torch.Tensor,
                  hue: torch.Tensor) -> torch.Tensor:
    """torchvision's brightness, contrast and saturation formulas (via kornia.enhance), then hue_rotate;
    per-image factors (B,), hue in turns (1 = 360 degrees)."""
    enhance = _kornia().enhance
    dev = x.device
    x = enhance.adjust_brightness_accumulative(x, brightness.to(dev, x.dtype))
    x = enhance.adjust_contrast_with_mean_subtraction(x, contrast.to(dev, x.dtype))
    x = enhance.adjust_saturation_with_gray_subtraction(x, saturation.to(dev, x.dtype))
    return hue_rotate(x, hue)


def grayscale(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """BT.601 luma copied into R, G and B, for the images where mask (B,) is True (all when None)."""
    luma = _kornia().color.rgb_to_grayscale(x).expand_as(x)
    if mask is None:
        return luma.contiguous()
    return torch.where(mask.to(x.device)[:, None, None, None], luma, x)


def border_colour(x: torch.Tensor) -> torch.Tensor:
    """(B, 3): the median colour of each image's one-pixel border (float NCHW), the slide around the cell."""
    edge = torch.cat([x[:, :, 0, :], x[:, :, -1, :], x[:, :, 1:-1, 0], x[:, :, 1:-1, -1]], dim=-1)
    return edge.median(dim=-1).values


def zoom(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Each image (float NCHW) scaled by factors[b] about its centre, same size: > 1 enlarges a central crop,
    < 1 shrinks the image onto its own border colour (bilinear; grid_sample fills outside with that colour)."""
    b = x.shape[0]
    theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
    inv = 1.0 / factors.to(x.device, x.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = inv, inv
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    fill = border_colour(x)[:, :, None, None]
    out = torch.nn.functional.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (out + fill).clamp_(0.0, 1.0).contiguous(memory_format=torch.channels_last)


def _uniform(gen: torch.Generator, shape, lo: float, hi: float) -> torch.Tensor:
    return torch.rand(shape, generator=gen, dtype=torch.float64).mul_(hi - lo).add_(lo).float()


def _to_float(x_uint8_nhwc: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1], channels_last (a view of the NHWC memory, as in the loader)."""
    return x_uint8_nhwc.permute(0, 3, 1, 2).float().div_(255.0)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float NCHW in [0, 1] -> uint8 NHWC (contiguous, as the loader's batches are), rounded; no copy for
    the permutation when x is channels_last."""
    return x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


@dataclass(frozen=True)
class Augment:
    """One named batch augmentation and its parameters; `__call__(x, gen)` on uint8 NHWC batches."""

    name: str
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.name not in DEFAULTS:
            raise unknown("augmentation", self.name, DEFAULTS)
        for k, v in self.params.items():
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise WbcError(f"augmentation {self.name!r}: {k} must be a finite number >= 0, got {v!r}")
        if self.name == "grayscale" and self.params.get("p", 1.0) > 1:
            raise WbcError(f"augmentation 'grayscale': p must be in [0, 1], got {self.params['p']!r}")
        if self.name == "colour" and self.params.get("hue", 0.0) > 0.5:
            raise WbcError(f"augmentation 'colour': hue must be in [0, 0.5] turns, got {self.params['hue']!r}")
        if self.name == "scale" and not 0 < self.params.get("min_zoom", 1) <= self.params.get("max_zoom", 1):
            raise WbcError(f"augmentation 'scale': need 0 < min_zoom <= max_zoom, got {self.params}")
        if self.name in ("hed", "colour"):  # a multiplicative factor must stay positive
            for k in ("sigma", "brightness", "contrast", "saturation"):
                if self.params.get(k, 0.0) >= 1:
                    raise WbcError(f"augmentation {self.name!r}: {k} must be < 1, got {self.params[k]!r}")

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """uint8 (B, H, W, 3) on any device -> augmented uint8 (B, H, W, 3), same device."""
        if self.name == "none":
            return x
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"augment expects uint8 (B, H, W, 3) batches, got {x.dtype} {tuple(x.shape)}")
        b, p = x.shape[0], self.params
        f = _to_float(x)
        if self.name == "hed":
            s, t = p["sigma"], p["bias"]
            out = hed_jitter(f, _uniform(gen, (b, 3), 1 - s, 1 + s), _uniform(gen, (b, 3), -t, t))
        elif self.name == "colour":
            factors = [_uniform(gen, (b,), 1 - p[k], 1 + p[k]) for k in ("brightness", "contrast", "saturation")]
            out = colour_jitter(f, *factors, _uniform(gen, (b,), -p["hue"], p["hue"]))
        elif self.name == "scale":
            lo, hi = math.log(p["min_zoom"]), math.log(p["max_zoom"])
            out = zoom(f, _uniform(gen, (b,), lo, hi).exp())
        else:
            pr = p.get("p", 1.0)
            out = grayscale(f, None if pr >= 1 else torch.rand(b, generator=gen, dtype=torch.float64) < pr)
        return _to_uint8(out)

    def training_hook(self, seed: int):
        """What the loader applies to a training run's batches (loader.BatchLoader's `augment`): epoch ->
        the batch function of that epoch, its draws from epoch_generator(seed, epoch) in batch order; None
        for `none`, so the loader does nothing at all."""
        if self.name == "none":
            return None
        return lambda epoch: partial(self.__call__, gen=epoch_generator(seed, epoch))

    def test_hook(self):
        """The same for evaluation batches: grayscale input only (see applies_at_test), else None."""
        if not self.applies_at_test:
            return None
        return lambda epoch: partial(self.__call__, gen=torch.Generator())

    @property
    def applies_at_test(self) -> bool:
        """Whether evaluation batches must go through this augmentation too: only grayscale input (p = 1),
        which draws nothing, so any generator gives the same test batches."""
        return self.name == "grayscale" and self.params.get("p", 1.0) >= 1


@dataclass(frozen=True)
class Chain:
    """Augmentations applied one after the other to each batch (`colour+scale`: scale, then colour, so the
    margin a zoom adds is jittered with its image), drawing from one generator in that order."""

    parts: tuple

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        for part in self.parts:
            x = part(x, gen)
        return x

    def training_hook(self, seed: int):
        return lambda epoch: partial(self.__call__, gen=epoch_generator(seed, epoch))

    def test_hook(self):
        return None

    @property
    def applies_at_test(self) -> bool:
        return False


def make_augment(name: str = "none", **params):
    """The registry's augmentation `name` with its defaults, any of them overridden by `params`; a composite
    name (`colour+scale`) chains its parts with their defaults."""
    if name not in AUGMENTATIONS:
        raise unknown("augmentation", name, AUGMENTATIONS)
    if "+" in name:
        if params:
            raise WbcError(f"augmentation {name!r} is a chain; it takes no parameters")
        return Chain(tuple(make_augment(part) for part in reversed(name.split("+"))))
    extra = set(params) - set(DEFAULTS[name])
    if extra:
        raise WbcError(f"augmentation {name!r} has no parameter {sorted(extra)[0]!r}; "
                       f"it takes: {', '.join(DEFAULTS[name]) or 'none'}")
    return Augment(name, {**DEFAULTS[name], **params})
