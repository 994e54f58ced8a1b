"""Any network on the benchmark's domains, no registry needed: `evaluate_model` scores a `torch.nn.Module`
that maps a float batch (N, 3, H, W) to (N, 5) logits in the order of wbcbench.core.classes.CLASSES, with
the book's evaluation (the decoded-image cache, centre crops, the test-time methods of
wbcbench.engine.evaluate), and returns the table of wbcbench.engine.scoring, the format of the book's
reference rows (wbcbench.report.reference)."""
from __future__ import annotations

import math

import pandas as pd
import torch
from torch import nn

from wbcbench.core.classes import CLASSES, NUM_CLASSES
from wbcbench.core.errors import WbcError
from wbcbench.core.names import BENCHMARK_DOMAINS, STANDARD, parse_adapt
from wbcbench.data.cache import load_dataset
from wbcbench.data.datasets import balanced_indices, parse_test_sets
from wbcbench.engine import evaluate, scoring
from wbcbench.engine.train import resolve_device


def _channels(value, name: str, positive: bool = False) -> tuple[float, float, float]:
    """Three finite numbers (one per RGB channel), else a WbcError naming the argument."""
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or not all(math.isfinite(v) and (v > 0 or not positive) for v in out):
        raise WbcError(f"{name}={value!r}: give three finite numbers, one per RGB channel"
                       + (", each > 0" if positive else "") + " (images are scaled to [0, 1] first)")
    return out


def _size(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WbcError(f"{name}={value!r}: give a positive whole number of pixels")
    return value


def benchmark_hp(image_size: int, mean, std, resize: int | None = None, batch_size: int = 256) -> dict:
    """What evaluate.py reads of a run's hyperparameters, from plain arguments: images decoded with their
    shorter side at `resize` (default `image_size`) and centre-cropped to `image_size`, normalised with
    (`mean`, `std`) after scaling to [0, 1], in batches of `batch_size`."""
    crop = _size(image_size, "image_size")
    stored = crop if resize is None else _size(resize, "resize")
    if stored < crop:
        raise WbcError(f"resize={stored} is smaller than image_size={crop}: the centre crop is taken from the "
                       "resized image")
    return {"stored_size": stored, "crop_size": crop, "eval_batch_size": _size(batch_size, "batch_size"),
            "mean": _channels(mean, "mean"), "std": _channels(std, "std", positive=True)}


def _device_of(model: nn.Module, device) -> torch.device:
    """`device` when given (the model is moved there), else where the model's parameters are (CPU without any)."""
    if device is not None:
        return resolve_device(device)
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


@torch.no_grad()
def check_output(model: nn.Module, image_size: int, device) -> None:
    """One forward pass of two blank images: the model must return a (2, 5) tensor of logits."""
    was_training = model.training
    try:
        out = model.eval()(torch.zeros(2, 3, image_size, image_size, device=device))
    except Exception as e:  # noqa: BLE001 - any failure of the user's forward pass
        raise WbcError(f"the model fails on a (2, 3, {image_size}, {image_size}) float batch: {type(e).__name__}: "
                       f"{' '.join(str(e).split())[:300]}") from e
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, NUM_CLASSES):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise WbcError(f"the model maps (N, 3, {image_size}, {image_size}) to {got}; the benchmark needs (N, "
                       f"{NUM_CLASSES}) logits in the order {', '.join(CLASSES)} (wbcbench.CLASSES)")


def check_methods(model: nn.Module, adapt) -> list[str]:
    """The test-time methods asked for (names.parse_adapt), each one the model can use, else a WbcError."""
    methods = parse_adapt(adapt)
    usable = evaluate.applicable(model, methods)
    refused = [m for m in methods if m not in usable]
    if refused:
        raise WbcError(f"adapt={', '.join(refused)}: the model has no BatchNorm layers "
                       f"{'with affine parameters ' if refused == ['tent'] else ''}to adapt; "
                       "AdaBN, batch statistics and TENT need them (macenko and reinhard work with any model)")
    return methods


def evaluate_model(model: nn.Module, *, image_size: int, mean, std, domains=None, adapt=(), device=None,
                   batch_size: int = 256, resize: int | None = None, name: str = "model", per_class=None,
                   data_root=None, seed: int = 0, quiet: bool = True) -> pd.DataFrame:
    """Score any network on the benchmark's domains; one row per domain x test-time method.

    `model` maps a float batch (N, 3, image_size, image_size) to (N, 5) logits in the class order of
    wbcbench.CLASSES. Each image is decoded as in the book (RGB, shorter side resized to `resize`, default
    `image_size`), centre-cropped to `image_size`, scaled to [0, 1] and normalised with `mean` and `std`
    (three numbers each). `domains`: dataset names or ImageFolder paths (default: the five bundled ones,
    wbcbench.BENCHMARK_DOMAINS). `adapt`: test-time methods besides the standard evaluation, such as
    ("adabn",) or "adabn,tent"; AdaBN, batch statistics and TENT need BatchNorm layers (a WbcError
    otherwise); each adapts a copy, so `model` itself is left as it was. `device`: where to run (the
    model is moved there); default the device of the model's parameters. `name` labels the rows.
    `per_class`: score a class-balanced sample of each domain instead, at most this many images per class
    drawn with `seed` (a quick look; its rows say `complete=False`, and the book's numbers use every image).

    Returns the table of wbcbench.engine.scoring.COLUMNS: n, accuracy, the primary balanced accuracy over
    the classes with >= 5 images (`balanced_accuracy_min5`), balanced accuracy, macro-F1, NLL, ECE, the
    majority baseline and each class's recall, the same format as wbcbench.reference_rows."""
    hp = benchmark_hp(image_size, mean, std, resize, batch_size)
    methods = check_methods(model, adapt)
    tests = parse_test_sets(BENCHMARK_DOMAINS if domains is None else domains)
    dev = _device_of(model, device)
    was_training = model.training
    model.to(dev)
    check_output(model, hp["crop_size"], dev)
    rows = []
    try:
        for domain in tests:
            ds, images = load_dataset(domain, data_root, hp["stored_size"], progress=not quiet)
            complete = per_class is None
            if not complete:
                idx = balanced_indices(ds.labels, per_class, seed)
                ds, images, complete = ds.subset(idx, f"{ds.name}[{per_class}/class]"), images[idx], len(idx) == len(ds)
            for method in (STANDARD, *methods):
                metrics, _ = evaluate.evaluate_method(model, method, ds, images, hp, dev, seed, quiet, data_root)
                rows.append(scoring.row(scoring.flat_metrics(metrics), model=name, domain=domain, method=method,
                                        complete=complete))
    finally:
        model.train(was_training)
    return scoring.tidy(rows)
