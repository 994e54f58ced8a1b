"""Evaluation and test-time adaptation: a trained network on every test set of a run, in the standard way
(stored BN statistics) and with the test-time methods asked for, each written to `eval/<name>/` with its
predictions and metrics. Also the BN chapter's per-domain comparisons, which need data and scoring.

Test-time methods, by name (`--adapt adabn,batch_stats,tent`):
* `adabn`: BN statistics re-estimated exactly on all of the test set's unlabelled images (bn.adabn), then
  the usual evaluation: independent of the images' order and of the batch size;
* `batch_stats`: every test batch normalised with its own statistics (bn.test_time_bn);
* `tent`: BN affine parameters learnt online by entropy minimisation (bn.Tent), one pass; each batch is
  predicted before the step that learns from it, as in Wang et al.'s online setting;
* `macenko`, `reinhard`: the test images stain-normalised to the training domain (wbcbench.adapt.stain, its
  reference fitted on pbc:train only), then the standard evaluation; for any network, BN or not.
The last two depend on which images share a batch, so the batches are drawn in a shuffled order seeded by
the run's seed (batch_order), never in the dataset's order, which is sorted by class and would let the
labels' order leak into the predictions; predictions are written back in dataset order. All three use the
test images but never their labels; networks without adaptable BN get the standard evaluation only.
"""
from __future__ import annotations

import shutil
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from wbcbench.adapt import bn
from wbcbench.adapt.stain import normalise, normalised_dataset, training_reference
from wbcbench.core.atomic import write_csv, write_json
from wbcbench.core.classes import CLASSES
from wbcbench.core.errors import WbcError
from wbcbench.core.metrics import compute_metrics
from wbcbench.core.names import ADAPT_METHODS, STAIN_METHODS, STANDARD, eval_dir_name
from wbcbench.core.profiles import setting
from wbcbench.data.cache import load_dataset
from wbcbench.data.loader import BatchLoader
from wbcbench.engine.augment import make_augment
from wbcbench.runs import rundir

# Bump when a change is meant to move evaluation results; recorded in every metrics.json, and a finished run
# whose evaluation has another version is evaluated again (without retraining). 2: issue 10 (exact AdaBN,
# seeded shuffled batches, TENT).
EVAL_VERSION = 2
# AdaBN passes the whole test set through the network as one batch (the definition itself) when its input
# holds at most this many values, else it accumulates layer by layer (bn.adabn; about half as many passes
# as BN layers). 2**27 float32 values = 512 MiB of input: every test set of the cpu and cpu-pretrained
# profiles (~860 images at 224 px). Measured on 2 CPU cores, pbc:test at 96 px (3099 images, 86 M values)
# with EfficientNet-Lite0: one pass 26 s at a peak RSS of 8.7 GB (Lite2: 32 s, 8.8 GB), layer by layer
# 482 s at 1.8 GB. (Until 2026-12-02 the bound was 2**25; no committed evaluation lies between the two.)
ONE_PASS_VALUES = 2 ** 27


def autocast_for(device: torch.device):
    """(autocast context factory, GradScaler or None): AMP on CUDA only (bf16 where supported, else fp16
    with a gradient scaler); the trainer uses the same."""
    if device.type != "cuda":
        return nullcontext, None
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler


def eval_loader(net: nn.Module, images, labels, hp: dict, device, order=None) -> BatchLoader:
    """Centre crops of `images` in batches of the profile's eval batch size, in `order` (positions; None:
    dataset order), normalised as `net` expects (grayscale first, for a network trained on grayscale input)."""
    cfg = net.wbc_config
    return BatchLoader(images, labels, order, crop=hp["crop_size"], batch_size=hp["eval_batch_size"],
                       mean=cfg["mean"], std=cfg["std"], device=device, train=False,
                       augment=make_augment(setting(hp, "augment")).test_hook())


def batch_order(n: int, seed: int) -> np.ndarray:
    """The order in which batch-dependent methods see a test set's n images: a permutation seeded by the
    run's seed (and n), the same on every machine."""
    return np.random.default_rng([int(seed), int(n), 0x7E57]).permutation(n)


@torch.no_grad()
def predict(forward, loader: BatchLoader, device, quiet: bool = True, desc: str = "eval", amp: bool = True) -> np.ndarray:
    """Softmax probabilities (N, classes), float64, of `forward` (a network in eval mode, or a step function
    such as bn.Tent.step), row i for image i of the dataset whatever the batch order (each batch knows its
    positions). `amp`: autocast on CUDA."""
    autocast = autocast_for(torch.device(device))[0] if amp else nullcontext
    p = np.zeros((len(loader.images), len(CLASSES)), np.float64)
    seen = np.zeros(len(loader.images), bool)
    for b in tqdm(loader, desc=desc, disable=quiet, leave=False):
        with autocast():
            logits = forward(b.x)
        p[b.index] = F.softmax(logits.float(), dim=1).cpu().numpy()
        seen[b.index] = True
    if not seen.all():  # pragma: no cover - a guard on the loader
        raise AssertionError(f"{int((~seen).sum())} images were never predicted")
    return p


def probability_table(paths, p: np.ndarray) -> pd.DataFrame:
    """One row per image: path, predicted class, p_<class> for every class (wbcbench.core.classes order)."""
    table = pd.DataFrame({"path": list(paths), "prediction": [CLASSES[i] for i in p.argmax(1)]})
    for i, c in enumerate(CLASSES):
        table[f"p_{c}"] = p[:, i]
    return table


def score(ds, p: np.ndarray) -> tuple[dict, pd.DataFrame]:
    """(metrics, predictions table with one row per image in dataset order) of probabilities `p`."""
    preds = probability_table(ds.paths, p)
    preds.insert(1, "label", [CLASSES[i] for i in ds.labels])
    return compute_metrics(ds.labels, p), preds


def evaluate_model(net: nn.Module, ds, images, hp: dict, device, quiet: bool = True, desc: str = "eval",
                   order=None) -> tuple[dict, pd.DataFrame]:
    """(metrics, predictions) of `net` as it is, in eval mode, on the centre crops of `images` (the images of
    `ds`), batched in `order` (positions; None: dataset order)."""
    loader = eval_loader(net, images, ds.labels, hp, device, order)
    return score(ds, predict(net.eval(), loader, device, quiet, desc))


class _Inputs:
    """The input tensors of a loader's batches, readable more than once (each pass crops them again)."""

    def __init__(self, loader: BatchLoader):
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        return (b.x for b in self.loader)


def adabn_batches(net: nn.Module, images, labels, hp: dict, device):
    """What bn.adabn reads: all centre crops as one batch when they fit in ONE_PASS_VALUES, else the
    evaluation batches (bn.adabn is exact either way; one batch costs one pass)."""
    n = len(images)
    if n * 3 * hp["crop_size"] ** 2 <= ONE_PASS_VALUES:
        return list(_Inputs(eval_loader(net, images, labels, dict(hp, eval_batch_size=n), device)))
    return _Inputs(eval_loader(net, images, labels, hp, device))


@lru_cache(maxsize=8)
def _stain_reference(method: str, size: int, data_root: str | None):
    return training_reference(method, size=size, data_root=data_root)


def stain_normalised(images, method: str, hp: dict, data_root=None, ds=None) -> np.ndarray:
    """`images` stain-normalised by `method` to the training domain's reference (pbc:train at the run's
    stored size); cached on disk when they are the decoded images of dataset `ds`."""
    ref = _stain_reference(method, hp["stored_size"], None if data_root is None else str(data_root))
    return (normalise(images, ref) if ds is None else normalised_dataset(ds, images, ref)).images


def method_probabilities(net: nn.Module, method: str, images, hp: dict, device, seed: int = 0, quiet: bool = True,
                         desc: str = "eval", labels=None, data_root=None, ds=None) -> np.ndarray:
    """Softmax probabilities (N, classes) of `net` on the centre crops of `images` with test-time method
    `method` (or STANDARD), adapting to these images only; labels are never used (`labels`, when given,
    only ride along in the loader). The one definition of every method: evaluation and `predict` use it.
    `data_root` (where pbc:train lies) and `ds` (the dataset of `images`, for the cache) serve stain
    normalisation."""
    labels = np.zeros(len(images), np.int64) if labels is None else labels
    if method in STAIN_METHODS:
        images, method = stain_normalised(images, method, hp, data_root, ds), STANDARD
    if method == STANDARD:
        return predict(net.eval(), eval_loader(net, images, labels, hp, device), device, quiet, desc)
    if method == "adabn":
        adapted = bn.adabn(net, adabn_batches(net, images, labels, hp, device))
        return predict(adapted.eval(), eval_loader(adapted, images, labels, hp, device), device, quiet, desc)
    order = batch_order(len(images), seed)
    if method == "batch_stats":
        adapted = bn.test_time_bn(net)
        return predict(adapted.eval(), eval_loader(adapted, images, labels, hp, device, order), device, quiet, desc)
    if method == "tent":  # fp32: no autocast, so no gradient scaler is needed on CUDA
        loader = eval_loader(net, images, labels, hp, device, order)
        return predict(bn.Tent(net).step, loader, device, quiet, desc, amp=False)
    raise WbcError(f"unknown test-time method {method!r}; choose from {', '.join(ADAPT_METHODS)}")


def evaluate_method(net: nn.Module, method: str, ds, images, hp: dict, device, seed: int = 0,
                    quiet: bool = True, data_root=None) -> tuple[dict, pd.DataFrame]:
    """(metrics, predictions) of `net` on `ds` with test-time method `method` (or STANDARD)."""
    p = method_probabilities(net, method, images, hp, device, seed, quiet, f"eval {ds.name}@{method}", ds.labels,
                             data_root, ds)
    return score(ds, p)


def applicable(net: nn.Module, methods) -> list[str]:
    """The test-time methods of `methods` that can change `net`: stain normalisation always; the BN methods
    only with adaptable BN, and TENT only with BN affine parameters."""
    return [m for m in methods if m in STAIN_METHODS
            or (bn.has_adaptable_bn(net) and (m != "tent" or bn.tent_layers(net)))]


def _check_distinct_folders(tests) -> None:
    seen: dict[str, str] = {}
    for t in tests:
        d = eval_dir_name(t)
        if d in seen:
            raise WbcError(f"test sets {seen[d]!r} and {t!r} would share the folder eval/{d}; rename one")
        seen[d] = t


def evaluate_all(net: nn.Module, config: dict, run_dir: Path | None, device, data_root=None, quiet: bool = False,
                 todo=None) -> dict:
    """Evaluate `net` on every test set of `config`, in the standard way and with each of its test-time
    methods (`adapt`, or a legacy record's `adabn`); only the (test set, method) pairs in `todo` when given.
    With `run_dir`, writes eval/<name>/{predictions.csv,metrics.json} and removes an older folder holding
    the same evaluation under another name. Returns {folder name: metrics}."""
    hp = config["hparams"]
    _check_distinct_folders(config["test"])
    modes = [STANDARD] + applicable(net, rundir.adapt_methods(config))
    existing = rundir.evaluations(run_dir) if run_dir is not None else {}
    results = {}
    for name in config["test"]:
        wanted = [m for m in modes if todo is None or (name, m) in todo]
        if not wanted:
            continue
        ds, images = load_dataset(name, data_root, hp["stored_size"], progress=not quiet)
        manifest = ds.manifest_hash()
        for mode in wanted:
            metrics, preds = evaluate_method(net, mode, ds, images, hp, device, config["seed"], quiet, data_root)
            metrics.update(test_set=name, eval_mode=mode, test_manifest=manifest, eval_version=EVAL_VERSION)
            key = eval_dir_name(name, mode)
            results[key] = metrics
            if run_dir is not None:
                d = Path(run_dir) / "eval" / key
                write_csv(d / "predictions.csv", preds)
                write_json(d / "metrics.json", metrics)
                old = existing.get((name, mode))
                if old is not None and old[1].resolve() != d.resolve():
                    shutil.rmtree(old[1], ignore_errors=True)
    return results


# ---------------------------------------------------------------------------------------------------------
# The BN chapter's per-domain analysis (notebooks/04)
