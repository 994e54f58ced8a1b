"""Evaluation: a trained network on every test set of a run, in the standard way (stored BN statistics) and
with the test-time methods asked for (wbcbench.adapt.methods, the registry that defines each method and how they
compose), each written to `eval/<name>/` with its predictions and metrics. Metrics count the images the test set
scores (wbcbench.data.duplicates leaves out exact duplicates of training images in pbc:val and pbc:test);
predictions are kept for every image."""
from __future__ import annotations

import shutil
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from wbcbench.adapt import methods
from wbcbench.core.atomic import write_csv, write_json
from wbcbench.core.classes import CLASSES
from wbcbench.core.errors import WbcError
from wbcbench.core.names import STANDARD, eval_dir_name
from wbcbench.core.profiles import setting
from wbcbench.data.cache import load_dataset
from wbcbench.data.loader import BatchLoader
from wbcbench.engine.augment import make_augment
from wbcbench.engine.rescore import SCORING_VERSION, score_predictions  # noqa: F401
from wbcbench.runs import rundir

# Bump when a change is meant to move evaluation results; recorded in every metrics.json, and a finished run
# whose evaluation has another version is evaluated again (without retraining). 2: exact AdaBN, seeded
# shuffled batches, TENT.
EVAL_VERSION = 2


def autocast_for(device: torch.device):
    """(autocast context factory, GradScaler or None): AMP on CUDA only (bf16 where supported, else fp16
    with a gradient scaler); the trainer uses the same."""
    if device.type != "cuda":
        return nullcontext, None
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler


def input_normalisation(net: nn.Module, hp: dict) -> tuple:
    """(mean, std) of the network's input: `hp`'s when it holds them (a network from outside the registry,
    wbcbench.engine.benchmark), else the registry's `net.wbc_config`."""
    cfg = hp if "mean" in hp else net.wbc_config
    return cfg["mean"], cfg["std"]


def eval_loader(net: nn.Module, images, labels, hp: dict, device, order=None) -> BatchLoader:
    """Centre crops of `images` in batches of the profile's eval batch size, in `order` (positions; None:
    dataset order), normalised as `net` expects (grayscale first, for a network trained on grayscale input)."""
    mean, std = input_normalisation(net, hp)
    return BatchLoader(images, labels, order, crop=hp["crop_size"], batch_size=hp["eval_batch_size"],
                       mean=mean, std=std, device=device, train=False,
                       augment=make_augment(setting(hp, "augment")).test_hook())


@torch.no_grad()
def predict(forward, loader: BatchLoader, device, quiet: bool = True, desc: str = "eval",
            amp: bool = True) -> np.ndarray:
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


def score(ds, p: np.ndarray, data_root=None) -> tuple[dict, pd.DataFrame]:
    """(metrics over the images `ds` scores, predictions table with one row per image in dataset order) of
    probabilities `p`."""
    preds = probability_table(ds.paths, p)
    preds.insert(1, "label", [CLASSES[i] for i in ds.labels])
    return score_predictions(ds.name, preds, data_root), preds


def evaluate_model(net: nn.Module, ds, images, hp: dict, device, quiet: bool = True, desc: str = "eval",
                   order=None) -> tuple[dict, pd.DataFrame]:
    """(metrics, predictions) of `net` as it is, in eval mode, on the centre crops of `images` (the images of
    `ds`), batched in `order` (positions; None: dataset order)."""
    loader = eval_loader(net, images, ds.labels, hp, device, order)
    return score(ds, predict(net.eval(), loader, device, quiet, desc))


def method_probabilities(net: nn.Module, method: str, images, hp: dict, device, seed: int = 0, quiet: bool = True,
                         desc: str = "eval", labels=None, data_root=None, ds=None,
                         train_set: str = "pbc:train") -> np.ndarray:
    """Softmax probabilities (N, classes) of `net` on the centre crops of `images` with test-time method `method`
    (a registered name, a composite such as `scale+adabn`, or STANDARD), adapting to these images only; labels
    are never used. Evaluation and `predict` both come here. `ds` (the dataset of `images`) serves the on-disk
    caches of image methods; `train_set` is the run's training set, their reference."""
    labels = np.zeros(len(images), np.int64) if labels is None else labels

    def loader(model, imgs, order=None, batch_size=None):
        h = hp if batch_size is None else dict(hp, eval_batch_size=batch_size)
        return eval_loader(model, imgs, labels, h, device, order)  # image methods keep every image, in order

    def run(forward, batches, amp=True):
        return predict(forward, batches, device, quiet, desc, amp)

    ctx = methods.Context(hp=hp, seed=seed, loader=loader, predict=run,
                          data_root=None if data_root is None else str(data_root), ds=ds, train_set=train_set)
    return methods.probabilities(net, method, images, ctx)


def evaluate_method(net: nn.Module, method: str, ds, images, hp: dict, device, seed: int = 0,
                    quiet: bool = True, data_root=None, train_set: str = "pbc:train") -> tuple[dict, pd.DataFrame]:
    """(metrics, predictions) of `net` on `ds` with test-time method `method` (or STANDARD)."""
    p = method_probabilities(net, method, images, hp, device, seed, quiet, f"eval {ds.name}@{method}", ds.labels,
                             data_root, ds, train_set)
    return score(ds, p, data_root)


def applicable(net: nn.Module, methods_) -> list[str]:
    """The test-time methods of `methods_` that can change `net` (wbcbench.adapt.methods.applicable)."""
    return methods.applicable(net, methods_)


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
    methods (`adapt`); only the (test set, method) pairs in `todo` when given.
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
            metrics, preds = evaluate_method(net, mode, ds, images, hp, device, config["seed"], quiet, data_root,
                                             config.get("train", "pbc:train"))
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
