"""Batch-normalisation tools for the domain-shift analysis: AdaBN, test-time batch statistics and per-layer
activation statistics. They take a network and batches of input tensors, nothing else: loading data and
scoring predictions is evaluate.py's job.

AdaBN (Li et al. 2016) re-estimates every BN layer's running mean/variance on the unlabelled target
images, then evaluates as usual. It is transductive: it uses the test images (not their labels).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def bn_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """BN layers that track running statistics (frozen BN and GN/LN/IN have none to adapt)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _BN) and m.track_running_stats]


def has_adaptable_bn(model: nn.Module) -> bool:
    return bool(bn_layers(model))


@torch.no_grad()
def adabn(model: nn.Module, batches) -> nn.Module:
    """A copy of `model` whose BN running statistics are the averages over `batches` (an iterable of input
    tensors from the target domain), each batch weighted equally. Other layers stay in eval mode."""
    model = copy.deepcopy(model)
    model.eval()
    layers = bn_layers(model)
    for _, m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the batches
        m.train()
    for x in batches:
        model(x)
    for _, m in layers:
        m.eval()
    return model


def test_time_bn(model: nn.Module) -> nn.Module:
    """A copy of `model` whose BN layers normalise every batch with that batch's own statistics, also in
    eval mode (the running statistics are dropped). Predictions then depend on the batch composition, so
    this is an analysis tool, not a deployable model."""
    model = copy.deepcopy(model)
    for _, m in bn_layers(model):
        m.track_running_stats = False
        m.running_mean = None
        m.running_var = None
        m.num_batches_tracked = None
    return model.eval()


@torch.no_grad()
def activation_stats(model: nn.Module, batches) -> dict[str, dict[str, torch.Tensor]]:
    """For each BN layer, the per-channel mean and (biased) variance of its *input* over `batches`, next
    to the layer's stored running statistics: the mismatch that makes BN fail under domain shift."""
    model.eval()
    sums: dict[str, list] = {}
    hooks = []
    for name, m in bn_layers(model):
        def hook(mod, inp, _out, name=name):
            x = inp[0].float()
            dims = [d for d in range(x.dim()) if d != 1]
            s = sums.setdefault(name, [0, 0.0, 0.0])
            s[0] += x.numel() // x.shape[1]
            s[1] = s[1] + x.sum(dims)
            s[2] = s[2] + (x * x).sum(dims)
        hooks.append(m.register_forward_hook(hook))
    try:
        for x in batches:
            model(x)
    finally:
        for h in hooks:
            h.remove()
    out = {}
    for name, m in bn_layers(model):
        n, s1, s2 = sums[name]
        mean = s1 / n
        out[name] = {"mean": mean.cpu(), "var": (s2 / n - mean * mean).cpu(),
                     "running_mean": m.running_mean.detach().float().cpu(),
                     "running_var": m.running_var.detach().float().cpu()}
    return out
