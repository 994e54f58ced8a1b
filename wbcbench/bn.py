"""Batch-normalisation tools for the domain-shift analysis: AdaBN and per-layer statistics.

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
    """A copy of `model` whose BN running statistics are the exact averages over `batches`
    (an iterable of input tensors from the target domain). Other layers stay in eval mode."""
    model = copy.deepcopy(model)
    model.eval()
    layers = bn_layers(model)
    for _, m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = exact mean over all batches
        m.train()
    for x in batches:
        model(x)
    for _, m in layers:
        m.eval()
    return model


@torch.no_grad()
def activation_stats(model: nn.Module, batches) -> dict[str, dict[str, torch.Tensor]]:
    """For each BN layer, the per-channel mean and variance of its *input* over `batches`, next to the
    layer's stored running statistics: the mismatch that makes BN fail under domain shift."""
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


# ---------------------------------------------------------------------------------------------------------
# Test-time batch statistics and the per-domain analysis of the book's BN chapter (added for notebooks/04)


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


def _domain_batches(name, hp, mean, std, device, data_root=None, per_class=None):
    from . import cache, datasets
    from .loader import BatchLoader
    ds = datasets.get_dataset(name, data_root)
    if per_class:
        ds = ds.subset(datasets.balanced_indices(ds.labels, per_class), name=f"{name}[{per_class}/class]")
    images = cache.load_images(ds, hp["stored_size"])
    loader = BatchLoader(images, ds.labels, None, crop=hp["crop_size"], batch_size=hp["eval_batch_size"],
                         mean=mean, std=std, device=device, train=False)
    return ds, images, loader


def domain_stat_gaps(model: nn.Module, hp: dict, names, data_root=None, device="cpu", per_class=None, eps=1e-5):
    """Tidy table (dataset, layer, layer_index, gap, var_ratio): for every BN layer and domain, the mean over
    channels of |domain mean - running mean| / sqrt(running var) and of domain var / running var."""
    import pandas as pd
    mean, std = model.wbc_config["mean"], model.wbc_config["std"]
    rows = []
    for name in names:
        _, _, loader = _domain_batches(name, hp, mean, std, device, data_root, per_class)
        stats = activation_stats(model, (b.x for b in loader))
        for i, (layer, s) in enumerate(stats.items()):
            sd = (s["running_var"] + eps).sqrt()
            rows.append({"dataset": name, "layer": layer, "layer_index": i,
                         "gap": float(((s["mean"] - s["running_mean"]).abs() / sd).mean()),
                         "var_ratio": float(((s["var"] + eps) / (s["running_var"] + eps)).mean())})
    return pd.DataFrame(rows)


def compare_bn_modes(model: nn.Module, hp: dict, names, data_root=None, device="cpu", per_class=None):
    """Accuracy and balanced accuracy on each domain with the stored BN statistics ('standard'), with AdaBN
    ('adabn': statistics re-estimated on the domain's unlabelled images) and with test-time batch statistics
    ('batch stats'). Models without adaptable BN get the standard row only."""
    import pandas as pd
    from .train import _evaluate_model
    dev = torch.device(device)
    mean, std = model.wbc_config["mean"], model.wbc_config["std"]
    rows = []
    for name in names:
        ds, images, loader = _domain_batches(name, hp, mean, std, dev, data_root, per_class)
        variants = [("standard", model)]
        if has_adaptable_bn(model):
            variants += [("adabn", adabn(model, (b.x for b in loader))), ("batch stats", test_time_bn(model))]
        for mode, net in variants:
            m, _ = _evaluate_model(net, ds, images, hp, dev, mean, std, True, mode)
            rows.append({"dataset": name, "mode": mode, "accuracy": m["accuracy"],
                         "balanced_accuracy": m["balanced_accuracy"], "majority_baseline": m["majority_baseline"],
                         "n": m["n"]})
    return pd.DataFrame(rows)
