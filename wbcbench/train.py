"""The trainer: one run = train one model on one dataset with one profile and seed, then test it on
every requested test set (evaluate.py), writing everything into its run directory (see rundir.py).

Same code on CUDA (AMP: bf16 where supported, else fp16 with a gradient scaler), MPS and CPU.
Every random choice is derived from (seed, epoch), and a checkpoint is written atomically after every
epoch, so a resumed run finishes with exactly the metrics of an uninterrupted one. A finished run is never
trained again: asking it for a new test set or test-time method only adds those evaluations.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import models, rundir
from .atomic import atomic_path, remove_stale_temp, write_csv, write_json
from .augment import make_augment
from .bn import has_adaptable_bn
from .cache import load_dataset
from .classes import NUM_CLASSES
from .datasets import balanced_indices, get_dataset, parse_test_sets
from .environment import environment
from .errors import WbcError
from .evaluate import EVAL_VERSION, STANDARD, autocast_for, evaluate_all, parse_adapt
from .loader import BatchLoader, epoch_rng, mixup
from .profiles import check_seed, get_profile, recorded, setting
from .verify import file_digest

CHECKPOINT = "checkpoint.pt"   # during training: model + optimiser + schedule, deleted at the end
MODEL = "model.pt"             # after training: final weights + config (what `wbcbench eval` loads)
DETERMINISTIC_ENV = "WBCBENCH_DETERMINISTIC"


def resolve_device(device: str | None = None) -> torch.device:
    """`None`/"auto": CUDA, else MPS, else CPU."""
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        d = torch.device(device)
    except RuntimeError:
        raise WbcError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise WbcError(f"device {device!r} asked for, but CUDA is not available here")
    return d


def set_determinism(device: torch.device) -> bool:
    """Same seed on the same device gives identical results. CPUs need nothing; on CUDA it takes cuDNN's
    deterministic kernels, no autotuning, and a fixed cuBLAS workspace (`CUBLAS_WORKSPACE_CONFIG`, which
    only takes effect if set before cuBLAS first runs in the process). `WBCBENCH_DETERMINISTIC=0` trades
    this for speed (benchmarks/determinism.py measures the cost). Returns whether it is on; recorded in
    config.json under environment."""
    on = os.environ.get(DETERMINISTIC_ENV, "1") != "0"
    if device.type == "cuda":
        if on:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = on
        torch.backends.cudnn.benchmark = not on
        torch.use_deterministic_algorithms(on, warn_only=True)
    return on


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the base learning rate at optimiser step `step` (0-based): linear warm-up
    (step+1)/warmup_steps over the first `warmup_steps` steps, then cosine decay from 1 to 0 at
    `total_steps`. It changes every optimiser step; the reference code (timm's scheduler as the paper used
    it) changes the rate once per epoch, so within an epoch our rate is smoother, at the same epoch
    boundaries the two agree."""
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warm-up of {warmup_steps} steps does not fit in {total_steps} steps")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(net, hp: dict, steps_per_epoch: int):
    """(AdamW over the trainable parameters, its LambdaLR schedule): lr * lr_factor(step), stepped once per
    optimiser step, warm-up and total counted in steps (epochs x steps_per_epoch)."""
    total, warm = hp["epochs"] * steps_per_epoch, hp["warmup_epochs"] * steps_per_epoch
    lr_factor(0, total, warm)  # a warm-up longer than the run fails here, before any step
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=hp["lr"],
                            weight_decay=hp["weight_decay"])
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warm))


def _weights_record(weights) -> dict:
    """model_kwargs recording a local ImageNet weights file (offline stand-in for the hub download): its
    name and sha256, never where it lies, since the hash is its identity."""
    if weights is None:
        return {}
    path = Path(weights).expanduser().resolve()
    if not path.is_file():
        raise WbcError(f"weights file {weights} not found")
    return {"weights": path.name, "weights_sha256": file_digest(path, "sha256")}


def _build_kwargs(config) -> dict:
    """create_model kwargs of a run: its model_kwargs less the weights record (a file is passed apart)."""
    return {k: v for k, v in config.get("model_kwargs", {}).items() if k not in ("weights", "weights_sha256")}


def build_config(model, profile, seed, train_set, test_sets, adapt, overrides, data_root, weights=None) -> dict:
    """Everything that determines a run's result; WbcError for an unknown model, profile, dataset or
    test-time method, or a bad seed."""
    seed = check_seed(seed)
    spec = models.get_model_config(model)
    # a model's own recipe (e.g. mixup for resnet50_gn_mixup) under the caller's overrides, checked as one
    hp = get_profile(profile, **{**spec.train_overrides, **{k: v for k, v in overrides.items() if v is not None}})
    methods = parse_adapt(adapt)
    train_ds = get_dataset(train_set, data_root)
    tests = parse_test_sets(test_sets)
    test_manifests = {t: get_dataset(t, data_root).manifest_hash() for t in tests}  # fail early
    model_kwargs = _weights_record(weights)
    for size_option in ("img_size", "image_size"):  # ViTs are built for the profile's input size
        if size_option in spec.options:
            model_kwargs[size_option] = hp["crop_size"]
    return {
        "identity": rundir.IDENTITY, "train_version": rundir.TRAIN_VERSION, "model": model,
        "model_kwargs": model_kwargs, "profile": profile,
        "hparams": recorded(hp), "seed": seed, "train": train_set, "train_manifest": train_ds.manifest_hash(),
        "test": tests, "test_manifests": test_manifests, "adapt": methods,
    }


def _new_model(config, device, weights: Path | None = None):
    hp = config["hparams"]
    torch.manual_seed(config["seed"])
    kw = _build_kwargs(config) | ({"weights": str(weights)} if weights is not None else {})
    net = models.create_model(config["model"], num_classes=NUM_CLASSES, pretrained=hp.get("pretrained", False), **kw)
    return net.to(device).to(memory_format=torch.channels_last)


def run_dir_for(model: str = "resnet18_bn", profile: str = "smoke", seed: int = 0, train_set: str = "pbc:train",
                test_sets=("pbc:test",), out: str | os.PathLike = "runs", data_root=None, adapt=(),
                weights=None, **overrides) -> Path:
    """The directory `run(...)` with the same arguments writes to, found without building the model
    (sweeps use it to skip finished or locked runs). WbcError for an unknown model, profile or dataset."""
    return run_state(model, profile, seed, train_set, test_sets, out, data_root, adapt, weights, **overrides)[0]


def run_state(model: str = "resnet18_bn", profile: str = "smoke", seed: int = 0, train_set: str = "pbc:train",
              test_sets=("pbc:test",), out: str | os.PathLike = "runs", data_root=None, adapt=(),
              weights=None, **overrides) -> tuple[Path, str]:
    """(run directory, what `run(...)` with the same arguments would do there): "train", "evaluate" (a
    finished run lacking some of the asked evaluations) or "done" (nothing)."""
    config = build_config(model, profile, seed, train_set, test_sets, adapt, overrides, data_root, weights)
    run_dir = Path(out) / rundir.run_name(config)
    if not rundir.is_done(run_dir):
        return run_dir, "train"
    todo = _todo(run_dir, read_record(run_dir), config["test_manifests"], config["adapt"])
    return run_dir, "evaluate" if todo else "done"


def run(model: str = "resnet18_bn", profile: str = "smoke", seed: int = 0, train_set: str = "pbc:train",
        test_sets=("pbc:test",), out: str | os.PathLike = "runs", device: str | None = None, resume: bool = False,
        data_root=None, quiet: bool = False, adapt=(), weights=None, progress: bool | None = None,
        **overrides) -> Path:
    """Train and evaluate one run; returns its directory. A finished run is not retrained: evaluations it
    lacks (a new test set or test-time method, or a test set whose files changed) are added to it.
    `adapt`: test-time methods (evaluate.ADAPT_METHODS). `weights`: a local state-dict file to start
    from instead of downloading ImageNet weights. `quiet`: no per-epoch lines; `progress`: progress bars
    (default: not quiet). Other keyword arguments override profile settings."""
    bars = not quiet if progress is None else bool(progress)
    dev = resolve_device(device)
    deterministic = set_determinism(dev)  # before the model touches the device: cuBLAS reads it once
    config = build_config(model, profile, seed, train_set, test_sets, adapt, overrides, data_root, weights)
    run_dir = Path(out) / rundir.run_name(config)
    if rundir.is_done(run_dir):
        added = add_evaluations(run_dir, config["test"], config["adapt"], str(dev), data_root, progress=bars,
                                manifests=config["test_manifests"])
        if not quiet:
            print(f"already done: {run_dir}" + (f" (added {', '.join(added)})" if added else ""))
        return run_dir
    weights_path = Path(weights).expanduser().resolve() if weights is not None else None  # checked above
    net = _new_model(config, dev, weights_path)  # after the done check: a finished run needs no network
    with rundir.claim(run_dir):
        return _train_claimed(net, config, run_dir, dev, resume, data_root, quiet, bars, deterministic)


def read_record(run_dir) -> dict:
    """A run directory's config.json, or a WbcError naming it."""
    path = Path(run_dir) / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise WbcError(f"cannot read the run record {path}: {e}") from None


def _todo(run_dir, record, manifests: dict, methods) -> list[tuple[str, str]]:
    """Evaluations missing in a finished run (test-time methods only where the record says they apply)."""
    modes = [STANDARD] + ([] if record.get("adaptable_bn") is False else list(methods))
    return rundir.missing_evaluations(run_dir, manifests, modes, EVAL_VERSION)


def add_evaluations(run_dir, test_sets, adapt=(), device=None, data_root=None, progress: bool = False,
                    manifests: dict | None = None) -> dict:
    """Evaluate the finished run in `run_dir` on each of `test_sets` with each method of `adapt` where
    that evaluation is missing or was computed on other data (manifest hash), without training, and record
    them in its config.json. Needs the run's model.pt. Returns {folder name: metrics} of what was added.
    `manifests`: the test sets' manifest hashes when the caller has them already (build_config does)."""
    run_dir = Path(run_dir)
    tests, methods = parse_test_sets(test_sets), parse_adapt(adapt)
    if manifests is None:
        manifests = {t: get_dataset(t, data_root).manifest_hash() for t in tests}
    if not _todo(run_dir, read_record(run_dir), manifests, methods):
        return {}
    net, cfg, dev = load_model(run_dir, device)
    with rundir.claim(run_dir):
        record = read_record(run_dir)
        todo = set(_todo(run_dir, record, manifests, methods))  # again, under the lock
        added = evaluate_all(net, dict(cfg, test=tests, adapt=methods), run_dir, dev, data_root, not progress, todo)
        if record.get("identity") is not None:  # a legacy record's name hashes its test list: left as it is
            record["test"] = list(dict.fromkeys([*record.get("test", []), *tests]))
            record["test_manifests"] = {**record.get("test_manifests", {}), **manifests}
            record["adapt"] = list(dict.fromkeys([*rundir.adapt_methods(record), *methods]))
            write_json(run_dir / "config.json", record)
        rundir.mark_done(run_dir)  # the done token names the process that did the latest work
    return added


def torch_save(path, obj) -> None:
    """torch.save, atomically (atomic.atomic_path): a checkpoint is complete or absent, never half there."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _plain(obj):
    """JSON types only (tuples become lists), so checkpoints load with torch.load(weights_only=True)."""
    return json.loads(json.dumps(obj, default=str))


def _train_claimed(net, config, run_dir, dev, resume, data_root, quiet, bars, deterministic) -> Path:
    hp, seed = config["hparams"], config["seed"]
    ckpt_path, model_path = run_dir / CHECKPOINT, run_dir / MODEL
    if (ckpt_path.exists() or model_path.exists()) and not resume:
        raise WbcError(f"{run_dir} holds an unfinished run; add --resume to continue it "
                       f"(or delete the directory to start over)")
    remove_stale_temp(run_dir)  # half-written files of a killed run (we hold the lock: nobody else writes)
    full = dict(config, device=str(dev), code=rundir.git_commit(), adaptable_bn=has_adaptable_bn(net),
                environment=environment() | {"deterministic": deterministic})
    write_json(run_dir / "config.json", full)

    if not model_path.exists():
        ds, images = load_dataset(config["train"], data_root, hp["stored_size"], progress=bars)
        _fit(net, ds, images, train_subset(ds.labels, hp, seed), config, run_dir, dev, resume, quiet, bars)
        torch_save(model_path, {"state_dict": net.state_dict(), "wbc_config": _plain(net.wbc_config),
                                "config": _plain(config)})
        ckpt_path.unlink(missing_ok=True)
    else:
        _load_into(net, _read_state(model_path, dev, ("state_dict",)), "state_dict", model_path, config)
    evaluate_all(net, config, run_dir, dev, data_root, quiet=not bars)
    rundir.mark_done(run_dir)
    return run_dir


def train_subset(labels, hp: dict, seed: int) -> np.ndarray:
    """Positions of the training images: `train_subset_per_class` per class (all when None), drawn with the
    run's seed, so seeds differ in their data too (issue 10; seed 0 draws what every run drew before)."""
    per_class = hp.get("train_subset_per_class")
    return balanced_indices(labels, per_class, seed=seed) if per_class else np.arange(len(labels))


def _read_state(path: Path, dev, keys) -> dict:
    """A checkpoint written by this trainer, or a WbcError naming the file. Files are renamed into place
    only when complete, so a truncated or foreign file here was damaged or put there from outside: the
    run stops rather than silently start over (delete the file to do that). Read with weights_only=True:
    our checkpoints hold only tensors and plain data, and a foreign pickle cannot run code."""
    try:
        state = torch.load(path, map_location=dev, weights_only=True)
    except Exception as e:  # noqa: BLE001 - zip/pickle errors of a damaged file have many types
        first = str(e).splitlines()[0] if str(e) else ""
        raise WbcError(f"{path} is damaged or not a wbcbench checkpoint and cannot be read "
                       f"({type(e).__name__}: {first}); delete it to retrain this run") from None
    missing = [k for k in keys if not isinstance(state, dict) or k not in state]
    if missing:
        raise WbcError(f"{path} is not a wbcbench checkpoint (no {', '.join(missing)}); delete it to retrain this run")
    return state


def _load_into(net, state, key, path, config) -> None:
    try:
        net.load_state_dict(state[key])
    except (RuntimeError, TypeError, AttributeError) as e:
        why = " ".join(str(e).split())[:300] or type(e).__name__  # 'Missing key(s) ...' is on the 2nd line
        raise WbcError(f"{path} does not fit model {config['model']}: {why}; delete it to retrain this run") from None


def _fit(net, ds, images, idx, config, run_dir, dev, resume, quiet, bars):
    hp, seed = config["hparams"], config["seed"]
    mean, std = net.wbc_config["mean"], net.wbc_config["std"]
    loader = BatchLoader(images, ds.labels, idx, crop=hp["crop_size"], batch_size=hp["batch_size"],
                         mean=mean, std=std, device=dev, train=True, hflip=hp["hflip"], vflip=hp["vflip"],
                         seed=seed, augment=make_augment(setting(hp, "augment")).training_hook(seed))
    if len(loader) == 0:
        raise WbcError(f"training set {config['train']} has {len(idx)} images, fewer than one batch of "
                       f"{hp['batch_size']}")
    opt, sched = make_optimizer(net, hp, len(loader))
    smoothing = hp.get("label_smoothing", 0.0)
    amp, scaler = autocast_for(dev)
    start, log = 0, []
    ckpt_path = run_dir / CHECKPOINT
    if resume and ckpt_path.exists():
        state = _read_state(ckpt_path, dev, ("model", "optimizer", "scheduler", "epoch", "log"))
        _load_into(net, state, "model", ckpt_path, config)
        try:
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise WbcError(f"checkpoint {ckpt_path} does not fit this run's optimiser ({e}); "
                           f"delete it to restart the run from epoch 0") from None
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start, log = state["epoch"], state["log"]
        write_csv(run_dir / "log.csv", pd.DataFrame(log))  # the checkpoint's log is the truth
    for epoch in range(start, hp["epochs"]):
        t0 = time.perf_counter()
        torch.manual_seed(seed * 100003 + epoch)  # dropout etc.: same stream whether resumed or not
        mix_rng = epoch_rng(seed, epoch + 10**6)
        loader.set_epoch(epoch)
        net.train()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{hp['epochs']}", disable=not bars, leave=False)
        for b in bar:
            x, y = b.x, b.y
            with amp():
                if hp.get("mixup_alpha", 0) > 0:
                    x, (ya, yb), lam = mixup(x, y, hp["mixup_alpha"], mix_rng)
                    logits = net(x)
                    loss = lam * F.cross_entropy(logits, ya, label_smoothing=smoothing) \
                        + (1 - lam) * F.cross_entropy(logits, yb, label_smoothing=smoothing)
                else:
                    logits = net(x)
                    loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            sched.step()
            step_loss = loss.item()  # one wait for the device per step, not two
            if not math.isfinite(step_loss):
                raise WbcError(f"training diverged (loss {step_loss}) at epoch {epoch + 1} of {run_dir.name}")
            loss_sum += step_loss * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
        secs = time.perf_counter() - t0
        log.append({"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "train_loss": loss_sum / seen,
                    "train_accuracy": correct / seen, "seconds": secs, "images_per_s": seen / secs})
        torch_save(ckpt_path, {"model": net.state_dict(), "optimizer": opt.state_dict(),
                               "scheduler": sched.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                               "epoch": epoch + 1, "log": log})
        write_csv(run_dir / "log.csv", pd.DataFrame(log))  # after the checkpoint: never ahead of it
        if not quiet:
            print(f"epoch {epoch + 1}/{hp['epochs']}: loss {loss_sum / seen:.4f}, train acc {correct / seen:.3f}, "
                  f"{secs:.1f}s ({seen / secs:.0f} img/s)", flush=True)


def load_model(checkpoint: str | os.PathLike, device=None):
    """(network, run config, device) from a trained `model.pt` (or the run directory holding it)."""
    path = Path(checkpoint)
    if path.is_dir():
        path = path / MODEL
    if not path.is_file():
        raise WbcError(f"checkpoint {path} not found (checkpoints are not committed: retrain the run, e.g. "
                       f"with wbcbench.reproduce)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        cfg, sd = state["config"], state["state_dict"]
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's culprit
        raise WbcError(f"{path} is not a wbcbench model file ({type(e).__name__}: {e})") from None
    net = models.create_model(cfg["model"], num_classes=NUM_CLASSES, pretrained=False, **_build_kwargs(cfg))
    try:
        net.load_state_dict(sd)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise WbcError(f"{path} does not fit model {cfg['model']}: {first}") from None
    dev = resolve_device(device)
    return net.to(dev).to(memory_format=torch.channels_last), cfg, dev
