"""The trainer: one run = train one model on one dataset with one profile and seed, then test it on
every requested test set, writing everything into its run directory (see rundir.py).

Same code on CUDA (AMP: bf16 where supported, else fp16 with a gradient scaler), MPS and CPU.
Every random choice is derived from (seed, epoch), and a checkpoint is written atomically after every
epoch, so a resumed run finishes with exactly the metrics of an uninterrupted one.
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import bn, rundir
from .atomic import remove_stale_temp, torch_save, write_csv, write_json
from .classes import CLASSES, NUM_CLASSES
from .errors import WbcError
from .loader import BatchLoader, epoch_rng, mixup
from .metrics import compute_metrics
from .profiles import get_profile

CHECKPOINT = "checkpoint.pt"   # during training: model + optimiser + schedule, deleted at the end
MODEL = "model.pt"             # after training: final weights + config (what `wbcbench eval` loads)


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


DETERMINISTIC_ENV = "WBCBENCH_DETERMINISTIC"


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


def autocast_for(device: torch.device):
    """(autocast context factory, GradScaler or None): AMP on CUDA only."""
    if device.type != "cuda":
        return nullcontext, None
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up to the base learning rate, then cosine decay to zero (per optimiser step)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def safe_name(test_name: str) -> str:
    """A test-set name (or a path) as one directory name."""
    return re.sub(r"[^A-Za-z0-9_.:@+-]+", "_", str(test_name).strip("/")) or "test"


def _data(name, data_root, size, progress):
    from . import cache, datasets
    ds = datasets.get_dataset(name, data_root)
    return ds, cache.load_images(ds, size, progress=progress)


def _weights_kwargs(weights) -> dict:
    """A local ImageNet weights file (offline stand-in for the hub download), identified by content."""
    if weights is None:
        return {}
    from .datasets import file_digest
    path = Path(weights).expanduser().resolve()
    if not path.is_file():
        raise WbcError(f"weights file {weights} not found")
    return {"weights": str(path), "weights_sha256": file_digest(path, "sha256")}


def _build_kwargs(config, with_weights: bool) -> dict:
    """create_model kwargs of a run: its model_kwargs less the weights hash (and less the weights file
    when a trained state dict is loaded afterwards)."""
    drop = {"weights_sha256"} | (set() if with_weights else {"weights"})
    return {k: v for k, v in config.get("model_kwargs", {}).items() if k not in drop}


def build_config(model, profile, seed, train, test, adabn, overrides, data_root, weights=None) -> dict:
    """Everything that determines a run's result; WbcError for an unknown model, profile or dataset."""
    from . import datasets, models
    hp = get_profile(profile, **overrides)
    train_ds = datasets.get_dataset(train, data_root)
    if not test:
        raise WbcError("no test set given; pass --test with dataset names or ImageFolder paths")
    test_manifests = {t: datasets.get_dataset(t, data_root).manifest_hash() for t in test}  # fail early
    spec = models.get_spec(model)
    for k, v in spec.train_overrides.items():  # e.g. mixup for resnet50_gn_mixup
        if overrides.get(k) is None:
            hp[k] = v
    model_kwargs = _weights_kwargs(weights)
    for size_option in ("img_size", "image_size"):  # ViTs are built for the profile's input size
        if size_option in spec.options:
            model_kwargs[size_option] = hp["crop_size"]
    return {
        "model": model, "model_kwargs": model_kwargs, "profile": profile, "hparams": hp, "seed": int(seed),
        "train": train, "test": list(test), "adabn": bool(adabn),
        "train_manifest": train_ds.manifest_hash(), "test_manifests": test_manifests,
    }


def _evaluate_model(net, ds, images, hp, device, mean, std, quiet, desc):
    loader = BatchLoader(images, ds.labels, None, crop=hp["crop_size"], batch_size=hp["eval_batch_size"],
                         mean=mean, std=std, device=device, train=False)
    amp, _ = autocast_for(device)
    net.eval()
    probs = []
    with torch.no_grad():
        for b in tqdm(loader, desc=desc, disable=quiet, leave=False):
            with amp():
                logits = net(b.x)
            probs.append(F.softmax(logits.float(), dim=1).cpu())
    p = torch.cat(probs).numpy().astype(np.float64)
    preds = pd.DataFrame({"path": list(ds.paths), "label": [CLASSES[i] for i in ds.labels],
                          "prediction": [CLASSES[i] for i in p.argmax(1)]})
    for i, c in enumerate(CLASSES):
        preds[f"p_{c}"] = p[:, i]
    return compute_metrics(ds.labels, p), preds


def _adapted(net, images, hp, device, mean, std):
    """AdaBN: BN statistics re-estimated on the centre crops of the target images."""
    loader = BatchLoader(images, np.zeros(len(images), np.int64), None, crop=hp["crop_size"],
                         batch_size=hp["eval_batch_size"], mean=mean, std=std, device=device, train=False)
    return bn.adabn(net, (b.x for b in loader))


def evaluate_all(net, config, run_dir: Path | None, device, data_root=None, quiet=False) -> dict:
    """Evaluate `net` on every test set of `config` (and with AdaBN when asked); write results when
    run_dir is given. Returns {test_name: metrics}."""
    hp = config["hparams"]
    mean, std = net.wbc_config["mean"], net.wbc_config["std"]
    results = {}
    for name in config["test"]:
        ds, images = _data(name, data_root, hp["stored_size"], progress=not quiet)
        variants = [(name, net)]
        if config.get("adabn") and bn.has_adaptable_bn(net):
            variants.append((f"{name}@adabn", _adapted(net, images, hp, device, mean, std)))
        manifest = ds.manifest_hash()
        for key, m in variants:
            metrics, preds = _evaluate_model(m, ds, images, hp, device, mean, std, quiet, f"eval {key}")
            metrics.update(test_set=name, eval_mode="adabn" if key.endswith("@adabn") else "standard",
                           test_manifest=manifest)
            results[key] = metrics
            if run_dir is not None:
                d = Path(run_dir) / "eval" / safe_name(key)
                write_csv(d / "predictions.csv", preds)
                write_json(d / "metrics.json", metrics)
    return results


def _new_model(config, device):
    from . import models
    hp = config["hparams"]
    torch.manual_seed(config["seed"])
    kw = _build_kwargs(config, with_weights=True)
    net = models.create_model(config["model"], num_classes=NUM_CLASSES, pretrained=hp.get("pretrained", False), **kw)
    return net.to(device).to(memory_format=torch.channels_last)


def run_dir_for(model: str = "resnet18_bn", profile: str = "smoke", seed: int = 0, train: str = "pbc:train",
                test=("pbc:test",), out: str | os.PathLike = "runs", data_root=None, adabn: bool = False,
                **overrides) -> Path:
    """The directory `train(...)` with the same arguments writes to, found without building the model
    (sweeps use it to skip finished or locked runs). WbcError for an unknown model, profile or dataset."""
    if isinstance(test, str):
        test = [t for t in test.split(",") if t]
    config = build_config(model, profile, seed, train, test, adabn, overrides, data_root)
    return Path(out) / rundir.run_name(config)


def train(model: str = "resnet18_bn", profile: str = "smoke", seed: int = 0, train: str = "pbc:train",
          test=("pbc:test",), out: str | os.PathLike = "runs", device: str | None = None, resume: bool = False,
          data_root=None, quiet: bool = False, adabn: bool = False, weights=None, **overrides) -> Path:
    """Train and evaluate one run; returns its directory. A finished run is not retrained.
    `weights`: a local state-dict file to start from instead of downloading ImageNet weights."""
    if isinstance(test, str):
        test = [t for t in test.split(",") if t]
    dev = resolve_device(device)
    deterministic = set_determinism(dev)  # before the model touches the device: cuBLAS reads it once
    config = build_config(model, profile, seed, train, test, adabn, overrides, data_root, weights)
    run_dir = Path(out) / rundir.run_name(config)
    if rundir.is_done(run_dir):
        if not quiet:
            print(f"already done: {run_dir}")
        return run_dir
    net = _new_model(config, dev)  # after the done check: a finished run needs no network (nor its weights)
    with rundir.claim(run_dir):
        return _train_claimed(net, config, run_dir, dev, resume, data_root, quiet, deterministic)


def _train_claimed(net, config, run_dir, dev, resume, data_root, quiet, deterministic) -> Path:
    hp, seed = config["hparams"], config["seed"]
    ckpt_path, model_path = run_dir / CHECKPOINT, run_dir / MODEL
    if (ckpt_path.exists() or model_path.exists()) and not resume:
        raise WbcError(f"{run_dir} holds an unfinished run; add --resume to continue it "
                       f"(or delete the directory to start over)")
    from . import datasets
    remove_stale_temp(run_dir)  # half-written files of a killed run (we hold the lock: nobody else writes)
    full = dict(config, device=str(dev), code=rundir.git_commit(),
                environment=rundir.environment() | {"deterministic": deterministic},
                run_dir=str(run_dir), data_root=str(data_root) if data_root else None)
    write_json(run_dir / "config.json", full)

    if not model_path.exists():
        ds, images = _data(config["train"], data_root, hp["stored_size"], progress=not quiet)
        idx = (datasets.balanced_indices(ds.labels, hp["train_subset_per_class"], seed=0)
               if hp.get("train_subset_per_class") else np.arange(len(ds)))
        _fit(net, ds, images, idx, config, run_dir, dev, resume, quiet)
        torch_save(model_path, {"state_dict": net.state_dict(), "wbc_config": net.wbc_config, "config": config})
        ckpt_path.unlink(missing_ok=True)
    else:
        _load_into(net, _read_state(model_path, dev, ("state_dict",)), "state_dict", model_path, config)
    evaluate_all(net, config, run_dir, dev, data_root, quiet)
    rundir.mark_done(run_dir)
    return run_dir


def _read_state(path: Path, dev, keys) -> dict:
    """A checkpoint written by this trainer, or a WbcError naming the file. Files are renamed into place
    only when complete, so a truncated or foreign file here was damaged or put there from outside: the
    run stops rather than silently start over (delete the file to do that)."""
    try:
        state = torch.load(path, map_location=dev, weights_only=False)
    except Exception as e:  # noqa: BLE001 - zip/pickle errors of a damaged file have many types
        raise WbcError(f"{path} is damaged and cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                       f"delete it to retrain this run") from None
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


def _fit(net, ds, images, idx, config, run_dir, dev, resume, quiet):
    hp, seed = config["hparams"], config["seed"]
    mean, std = net.wbc_config["mean"], net.wbc_config["std"]
    loader = BatchLoader(images, ds.labels, idx, crop=hp["crop_size"], batch_size=hp["batch_size"],
                         mean=mean, std=std, device=dev, train=True, hflip=hp["hflip"], vflip=hp["vflip"],
                         seed=seed)
    if len(loader) == 0:
        raise WbcError(f"training set {config['train']} has {len(idx)} images, fewer than one batch of "
                       f"{hp['batch_size']}")
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=hp["lr"], weight_decay=hp["weight_decay"])
    steps_per_epoch = len(loader)
    total, warm = hp["epochs"] * steps_per_epoch, hp["warmup_epochs"] * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warm))
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
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{hp['epochs']}", disable=quiet, leave=False)
        for b in bar:
            x, y = b.x, b.y
            with amp():
                if hp.get("mixup_alpha", 0) > 0:
                    x, (ya, yb), lam = mixup(x, y, hp["mixup_alpha"], mix_rng)
                    logits = net(x)
                    loss = lam * F.cross_entropy(logits, ya) + (1 - lam) * F.cross_entropy(logits, yb)
                else:
                    logits = net(x)
                    loss = F.cross_entropy(logits, y)
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


def train_args(config: dict) -> dict:
    """The `train()` arguments that rebuild the run a config.json records (profile settings that differ
    from the named profile become overrides), so a run's own record is the command that redoes it."""
    from .profiles import PROFILES
    base = PROFILES.get(config.get("profile"), {})
    overrides = {k: v for k, v in (config.get("hparams") or {}).items() if k != "name" and base.get(k, v) != v}
    return dict(model=config.get("model"), profile=config.get("profile"), seed=config.get("seed"),
                train=config.get("train"), test=list(config.get("test") or []), adabn=bool(config.get("adabn")),
                weights=(config.get("model_kwargs") or {}).get("weights"), **overrides)


def reproduce(run_dir: str | os.PathLike, out: str | os.PathLike, data_root=None, quiet: bool = True) -> Path:
    """Train again, here, the run recorded in `run_dir`/config.json, into `out` (it gets the same hashed
    name; a finished copy there is reused). On the CPU it uses the recorded thread count, the one setting
    outside the config that changes float results; compare the two with `report.compare_runs`."""
    path = Path(run_dir) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise WbcError(f"cannot read the run record {path}: {e}") from None
    threads = (config.get("environment") or {}).get("torch_threads")
    before = torch.get_num_threads()
    if threads and config.get("device", "cpu") == "cpu":
        torch.set_num_threads(int(threads))
    try:
        return train(**train_args(config), out=out, device=config.get("device"), resume=True,
                     data_root=data_root, quiet=quiet)
    finally:
        torch.set_num_threads(before)


def load_model(checkpoint: str | os.PathLike, device=None):
    """A trained model and its run config from `model.pt` (or a run directory)."""
    from . import models
    path = Path(checkpoint)
    if path.is_dir():
        path = path / MODEL
    if not path.is_file():
        raise WbcError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        cfg, sd = state["config"], state["state_dict"]
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's culprit
        raise WbcError(f"{path} is not a wbcbench model file ({type(e).__name__}: {e})") from None
    kw = _build_kwargs(cfg, with_weights=False)
    net = models.create_model(cfg["model"], num_classes=NUM_CLASSES, pretrained=False, **kw)  # weights: below
    try:
        net.load_state_dict(sd)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise WbcError(f"{path} does not fit model {cfg['model']}: {first}") from None
    dev = resolve_device(device)
    return net.to(dev).to(memory_format=torch.channels_last), cfg, dev
