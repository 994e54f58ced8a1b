"""The registry of test-time methods: each is a function registered by name, and a composite name runs its
steps in order (`scale+adabn`: rescale the images, then AdaBN on the rescaled images). Image methods map a
domain's images to new images and work for any network; BN methods adapt the network to the images and return
its probabilities. Every method sees the new domain's images, never their labels.

Batch-dependent methods (batch statistics, TENT) see the images in a shuffled order seeded by the run's seed
(batch_order), never the dataset's order, which is sorted by class and would let the labels' order leak into the
predictions."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from wbcbench.adapt import bn, stain, stain_domain
from wbcbench.core.errors import WbcError
from wbcbench.core.names import BN_METHODS, method_parts
from wbcbench.data import scale
from wbcbench.data.cache import load_dataset

# AdaBN passes the whole test set through the network as one batch (the definition itself) when its input holds
# at most this many values, else it accumulates layer by layer (bn.adabn; about half as many passes as BN
# layers). 2**27 float32 values = 512 MiB of input: every test set of the cpu and cpu-pretrained profiles.
# Measured on 2 CPU cores, pbc:test at 96 px (3099 images) with EfficientNet-Lite0: one pass 26 s at a peak RSS of
# 8.7 GB, layer by layer 482 s at 1.8 GB.
ONE_PASS_VALUES = 2 ** 27


@dataclass(frozen=True)
class Context:
    """What a method may use besides the images. `loader(net, images, order=None, batch_size=None)` gives the
    evaluation batches (centre crops, normalised for `net`); `predict(forward, loader, amp=True)` the softmax
    probabilities in dataset order. `ds`: the dataset of the images, for on-disk caches (None for a folder of
    a user's own images). `train_set`: the run's training set, the reference of the image methods."""
    hp: dict
    seed: int
    loader: Callable
    predict: Callable
    data_root: str | None = None
    ds: object = None
    train_set: str = "pbc:train"


IMAGE_STEPS: dict[str, Callable] = {}
BN_STEPS: dict[str, Callable] = {}


def register(name: str):
    """Register a step under `name`: a BN method (core.names.BN_METHODS) if it is one, else an image method."""
    def wrap(fn):
        (BN_STEPS if name in BN_METHODS else IMAGE_STEPS)[name] = fn
        return fn
    return wrap


def batch_order(n: int, seed: int) -> np.ndarray:
    """The order in which batch-dependent methods see a test set's n images: a permutation seeded by the run's
    seed (and n), the same on every machine."""
    return np.random.default_rng([int(seed), int(n), 0x7E57]).permutation(n)


def probabilities(net, method: str, images, ctx: Context) -> np.ndarray:
    """Softmax probabilities (N, classes) of `net` on `images` with test-time method `method` (a registered
    name, a composite, or 'standard')."""
    steps = [] if method == "standard" else method_parts(method)
    for step in steps:
        if step in IMAGE_STEPS:
            images = IMAGE_STEPS[step](images, ctx)
    if steps and steps[-1] in BN_STEPS:
        return BN_STEPS[steps[-1]](net, images, ctx)
    return ctx.predict(net.eval(), ctx.loader(net, images))


def applicable(net, methods) -> list[str]:
    """The methods of `methods` that can change `net`: image methods always; a BN method only with adaptable
    BN, and TENT only with BN affine parameters."""
    def ok(m):
        last = method_parts(m)[-1]
        return last not in BN_METHODS or (bn.has_adaptable_bn(net) and (last != "tent" or bn.tent_layers(net)))
    return [m for m in methods if ok(m)]


# ------------------------------------------------------------------------------------------------ BN methods

@register("adabn")
def _adabn(net, images, ctx: Context):
    """BN statistics re-estimated exactly on all of the images (bn.adabn), then the usual evaluation: independent
    of the images' order and of the batch size."""
    n = len(images)
    one_pass = n * 3 * ctx.hp["crop_size"] ** 2 <= ONE_PASS_VALUES
    batches = [b.x for b in ctx.loader(net, images, batch_size=n)] if one_pass else _Inputs(ctx.loader(net, images))
    adapted = bn.adabn(net, batches)
    return ctx.predict(adapted.eval(), ctx.loader(adapted, images))


@register("batch_stats")
def _batch_stats(net, images, ctx: Context):
    """Every test batch normalised with its own statistics (bn.test_time_bn)."""
    adapted = bn.test_time_bn(net)
    return ctx.predict(adapted.eval(), ctx.loader(adapted, images, batch_order(len(images), ctx.seed)))


@register("tent")
def _tent(net, images, ctx: Context):
    """BN affine parameters learnt online by entropy minimisation (bn.Tent), one pass in batches of the
    profile's `tent_batch_size` (else its evaluation batch size); each batch is predicted before the step that
    learns from it, as in Wang et al.'s online setting. fp32: no autocast, so no gradient scaler on CUDA."""
    size = ctx.hp.get("tent_batch_size") or ctx.hp["eval_batch_size"]
    loader = ctx.loader(net, images, batch_order(len(images), ctx.seed), batch_size=size)
    return ctx.predict(bn.Tent(net).step, loader, amp=False)


class _Inputs:
    """The input tensors of a loader's batches, readable more than once (each pass crops them again)."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        return (b.x for b in self.loader)


# --------------------------------------------------------------------------------------------- image methods

@lru_cache(maxsize=8)
def stain_reference(method: str, size: int, data_root: str | None, train_set: str = "pbc:train"):
    """The training domain's stain reference (wbcbench.adapt.stain.training_reference), fitted once."""
    return stain.training_reference(method, size=size, data_root=data_root, train_set=train_set)


def _per_image_stain(method: str):
    def step(images, ctx: Context):
        ref = stain_reference(method, ctx.hp["stored_size"], ctx.data_root, ctx.train_set)
        done = stain.normalise(images, ref) if ctx.ds is None else stain.normalised_dataset(ctx.ds, images, ref)
        return done.images
    step.__doc__ = f"{method} stain normalisation of each image, estimated on the image (wbcbench.adapt.stain)."
    return step


def _per_domain_stain(method: str):
    def step(images, ctx: Context):
        ref = stain_reference(stain_domain.DOMAIN_METHODS[method], ctx.hp["stored_size"], ctx.data_root,
                              ctx.train_set)
        return stain_domain.normalised_domain(images, method, ref, ctx.ds).images
    step.__doc__ = f"{method}: stain normalisation estimated once on the domain (wbcbench.adapt.stain_domain)."
    return step


for _m in ("macenko", "reinhard"):
    register(_m)(_per_image_stain(_m))
for _m in ("macenko_domain", "reinhard_domain"):
    register(_m)(_per_domain_stain(_m))


@lru_cache(maxsize=8)
def training_scale(size: int, data_root: str | None, train_set: str = "pbc:train") -> float:
    """The training domain's cell scale (wbcbench.data.scale.domain_scale of its images at `size` px)."""
    return scale.domain_scale(load_dataset(train_set, data_root, size)[1])


@register("scale")
def _scale(images, ctx: Context):
    """Each image rescaled about its centre by the training domain's cell scale over this domain's, both
    measured without labels (wbcbench.data.scale)."""
    target = training_scale(ctx.hp["stored_size"], ctx.data_root, ctx.train_set)
    here = scale.domain_scale(images)
    if not (np.isfinite(here) and np.isfinite(target)):
        raise WbcError("rescaling needs a cell scale, but no nucleus was found in these images "
                       f"({'the new domain' if np.isfinite(target) else ctx.train_set})")
    return scale.rescale(np.asarray(images), target / here)
