"""The training loop as a public function: `fit` trains any network on uint8 images with a profile's recipe,
checkpointing each epoch so that a killed run resumes bit for bit. The trainer (wbcbench.engine.train) wraps
it with run directories, records and evaluation."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from wbcbench.core.atomic import atomic_path, write_csv
from wbcbench.core.errors import WbcError
from wbcbench.core.profiles import setting
from wbcbench.data.loader import BatchLoader, epoch_rng, mixup
from wbcbench.engine.augment import make_augment
from wbcbench.engine.evaluate import autocast_for

CHECKPOINT = "checkpoint.pt"   # during training: model + optimiser + schedule, deleted at the end


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


def torch_save(path, obj) -> None:
    """torch.save, atomically (atomic.atomic_path): a checkpoint is complete or absent, never half there."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def read_state(path: Path, dev, keys) -> dict:
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


def load_into(net, state, key, path, model: str) -> None:
    try:
        net.load_state_dict(state[key])
    except (RuntimeError, TypeError, AttributeError) as e:
        why = " ".join(str(e).split())[:300] or type(e).__name__  # 'Missing key(s) ...' is on the 2nd line
        raise WbcError(f"{path} does not fit model {model}: {why}; delete it to retrain this run") from None


def training_loader(images, labels, hp: dict, *, indices=None, seed: int = 0, device="cpu", mean=None,
                    std=None) -> BatchLoader:
    """The training batches of a profile `hp`: random crops, flips and the profile's augmentation, drawn
    from the run's seed, normalised with (`mean`, `std`)."""
    idx = np.arange(len(labels)) if indices is None else np.asarray(indices)
    return BatchLoader(images, labels, idx, crop=hp["crop_size"], batch_size=hp["batch_size"], mean=mean,
                       std=std, device=device, train=True, hflip=hp["hflip"], vflip=hp["vflip"], seed=seed,
                       augment=make_augment(setting(hp, "augment")).training_hook(seed))


def fit(net: nn.Module, images, labels, hp: dict, *, indices=None, seed: int = 0, device="cpu", mean=None,
        std=None, run_dir=None, resume: bool = False, loader=None, quiet: bool = True, progress: bool = False,
        train_name: str = "the training set") -> list[dict]:
    """Train `net` in place with profile `hp` (wbcbench.core.profiles.get_profile plus overrides) on the
    uint8 NHWC `images` (their `indices`; all by default) with integer `labels`; returns the epoch log.

    AdamW with warm-up and cosine schedule, cross-entropy (label smoothing, mixup as `hp` says), AMP on CUDA.
    `mean`/`std`: the network's input normalisation (default: the registry's `net.wbc_config`). With
    `run_dir`, each epoch ends with a checkpoint and `log.csv` there, and `resume` continues from the
    checkpoint bit for bit. `loader`: batches to use instead of `training_loader`'s (benchmarks/pipeline.py)."""
    dev = torch.device(device)
    if mean is None or std is None:
        cfg = getattr(net, "wbc_config", None)
        if not cfg:
            raise WbcError("fit needs the network's input mean and std (pass mean=..., std=...)")
        mean, std = cfg["mean"], cfg["std"]
    if loader is None:
        loader = training_loader(images, labels, hp, indices=indices, seed=seed, device=dev, mean=mean, std=std)
    if len(loader) == 0:
        n = len(labels) if indices is None else len(indices)
        raise WbcError(f"{train_name} has {n} images, fewer than one batch of {hp['batch_size']}")
    opt, sched = make_optimizer(net, hp, len(loader))
    smoothing = hp.get("label_smoothing", 0.0)
    amp, scaler = autocast_for(dev)
    start, log = 0, []
    ckpt_path = Path(run_dir) / CHECKPOINT if run_dir is not None else None
    name = Path(run_dir).name if run_dir is not None else "fit"
    if resume and ckpt_path is not None and ckpt_path.exists():
        state = read_state(ckpt_path, dev, ("model", "optimizer", "scheduler", "epoch", "log"))
        load_into(net, state, "model", ckpt_path, name)
        try:
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise WbcError(f"checkpoint {ckpt_path} does not fit this run's optimiser ({e}); "
                           f"delete it to restart the run from epoch 0") from None
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start, log = state["epoch"], state["log"]
        write_csv(Path(run_dir) / "log.csv", pd.DataFrame(log))  # the checkpoint's log is the truth
    for epoch in range(start, hp["epochs"]):
        t0 = time.perf_counter()
        torch.manual_seed(seed * 100003 + epoch)  # dropout etc.: same stream whether resumed or not
        mix_rng = epoch_rng(seed, epoch + 10**6)
        loader.set_epoch(epoch)
        net.train()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{hp['epochs']}", disable=not progress, leave=False)
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
                raise WbcError(f"training diverged (loss {step_loss}) at epoch {epoch + 1} of {name}")
            loss_sum += step_loss * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
        secs = time.perf_counter() - t0
        log.append({"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "train_loss": loss_sum / seen,
                    "train_accuracy": correct / seen, "seconds": secs, "images_per_s": seen / secs})
        if ckpt_path is not None:
            torch_save(ckpt_path, {"model": net.state_dict(), "optimizer": opt.state_dict(),
                                   "scheduler": sched.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                                   "epoch": epoch + 1, "log": log})
            write_csv(ckpt_path.parent / "log.csv", pd.DataFrame(log))  # after the checkpoint: never ahead of it
        if not quiet:
            print(f"epoch {epoch + 1}/{hp['epochs']}: loss {loss_sum / seen:.4f}, train acc {correct / seen:.3f}, "
                  f"{secs:.1f}s ({seen / secs:.0f} img/s)", flush=True)
    return log
