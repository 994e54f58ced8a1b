"""The BN chapter's probes (notebooks/04_bn_analysis): how far each test domain's activation statistics lie
from the statistics a BN network stored in training, and its accuracy per domain with each BN test-time
method. Networks in, tables out."""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from wbcbench.adapt import bn
from wbcbench.core.names import BN_METHODS, STANDARD, parse_adapt
from wbcbench.data.cache import load_images
from wbcbench.data.datasets import get_dataset
from wbcbench.data.domains import domain_sample
from wbcbench.engine.evaluate import applicable, eval_loader, evaluate_method


def _domain(name, hp, data_root=None, per_class=None):
    """A domain (or its class-balanced sample of `per_class` images per class) and its decoded images."""
    ds = domain_sample(name, per_class, data_root) if per_class else get_dataset(name, data_root)
    return ds, load_images(ds, hp["stored_size"])


def domain_stat_gaps(model: nn.Module, hp: dict, names, data_root=None, device="cpu", per_class=None, eps=1e-5):
    """Tidy table (dataset, layer, layer_index, gap, var_ratio): for every BN layer and domain, the mean over
    channels of |domain mean - running mean| / sqrt(running var) and of domain var / running var."""
    rows = []
    for name in names:
        ds, images = _domain(name, hp, data_root, per_class)
        loader = eval_loader(model, images, ds.labels, hp, device)
        stats = bn.activation_stats(model, (b.x for b in loader))
        for i, (layer, s) in enumerate(stats.items()):
            sd = (s["running_var"] + eps).sqrt()
            rows.append({"dataset": name, "layer": layer, "layer_index": i,
                         "gap": float(((s["mean"] - s["running_mean"]).abs() / sd).mean()),
                         "var_ratio": float(((s["var"] + eps) / (s["running_var"] + eps)).mean())})
    return pd.DataFrame(rows)


def compare_bn_modes(model: nn.Module, hp: dict, names, data_root=None, device="cpu", per_class=None,
                     methods=BN_METHODS, seed: int = 0):
    """Accuracy and balanced accuracy on each domain in the standard way and with each test-time method
    (column `mode`: STANDARD or a name from `methods`). Models without adaptable BN get the standard
    row only."""
    dev = torch.device(device)
    rows = []
    for name in names:
        ds, images = _domain(name, hp, data_root, per_class)
        for mode in [STANDARD, *applicable(model, parse_adapt(methods))]:
            m, _ = evaluate_method(model, mode, ds, images, hp, dev, seed)
            rows.append({"dataset": name, "mode": mode, "accuracy": m["accuracy"],
                         "balanced_accuracy": m["balanced_accuracy"], "majority_baseline": m["majority_baseline"],
                         "n": m["n"]})
    return pd.DataFrame(rows)
