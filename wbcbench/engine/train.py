"""The trainer: one run = train one model on one dataset with one profile and seed, then test it on
every requested test set (evaluate.py), writing everything into its run directory (see rundir.py).

Same code on CUDA (AMP: bf16 where supported, else fp16 with a gradient scaler), MPS and CPU.
Every random choice is derived from (seed, epoch), and a checkpoint is written atomically after every
epoch, so a resumed run finishes with exactly the metrics of an uninterrupted one. A finished run is never
trained again: asking it for a new test set or test-time method only adds those evaluations.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from wbcbench import models
from wbcbench.adapt.bn import has_adaptable_bn
from wbcbench.core.atomic import remove_stale_temp, write_json
from wbcbench.core.classes import NUM_CLASSES
from wbcbench.core.environment import environment
from wbcbench.core.errors import WbcError
from wbcbench.core.names import STANDARD, parse_adapt
from wbcbench.core.profiles import check_seed, get_profile, given, recorded
from wbcbench.data.cache import load_dataset
from wbcbench.data.datasets import balanced_indices, get_dataset, parse_test_sets
from wbcbench.engine.evaluate import EVAL_VERSION, evaluate_all
from wbcbench.engine.fit import CHECKPOINT, fit, load_into, read_state, torch_save  # noqa: F401  (CHECKPOINT: the run's file)
from wbcbench.runs import rundir

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


def _weights_record(weights) -> dict:
    """model_kwargs recording a local ImageNet weights file (offline stand-in for the hub download): its
    name and sha256, never where it lies, since the hash is its identity."""
    if weights is None:
        return {}
    path = Path(weights).expanduser().resolve()
    if not path.is_file():
        raise WbcError(f"weights file {weights} not found")
    with open(path, "rb") as f:
        return {"weights": path.name, "weights_sha256": hashlib.file_digest(f, "sha256").hexdigest()}


def _build_kwargs(config) -> dict:
    """create_model kwargs of a run: its model_kwargs less the weights record (a file is passed apart)."""
    return {k: v for k, v in config.get("model_kwargs", {}).items() if k not in ("weights", "weights_sha256")}


def build_config(model, profile, seed, train_set, test_sets, adapt, overrides, data_root, weights=None) -> dict:
    """Everything that determines a run's result; WbcError for an unknown model, profile, dataset or
    test-time method, or a bad seed."""
    seed = check_seed(seed)
    spec = models.get_model_config(model)
    # a model's own recipe (e.g. mixup for resnet50_gn_mixup) under the caller's overrides, checked as one
    hp = get_profile(profile, **{**spec.train_overrides, **given(overrides)})
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


def new_model(config, device, weights: Path | None = None):
    """The network a run config (build_config) trains, freshly initialised from the run's seed, on `device`."""
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
    `adapt`: test-time methods (names.ADAPT_METHODS). `weights`: a local state-dict file to start
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
    net = new_model(config, dev, weights_path)  # after the done check: a finished run needs no network
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
        fit(net, images, ds.labels, hp, indices=train_subset(ds.labels, hp, seed), seed=seed, device=dev,
            run_dir=run_dir, resume=resume, quiet=quiet, progress=bars, train_name=config["train"])
        torch_save(model_path, {"state_dict": net.state_dict(), "wbc_config": _plain(net.wbc_config),
                                "config": _plain(config)})
        ckpt_path.unlink(missing_ok=True)
    else:
        load_into(net, read_state(model_path, dev, ("state_dict",)), "state_dict", model_path, config["model"])
    evaluate_all(net, config, run_dir, dev, data_root, quiet=not bars)
    rundir.mark_done(run_dir)
    return run_dir


def train_subset(labels, hp: dict, seed: int) -> np.ndarray:
    """Positions of the training images: `train_subset_per_class` per class (all when None), drawn with the
    run's seed, so seeds differ in their data too."""
    per_class = hp.get("train_subset_per_class")
    return balanced_indices(labels, per_class, seed=seed) if per_class else np.arange(len(labels))


def load_model(checkpoint: str | os.PathLike, device=None):
    """(network, run config, device) from a trained `model.pt` (or the run directory holding it)."""
    path = Path(checkpoint)
    if path.is_dir():
        path = path / MODEL
    if not path.is_file():
        raise WbcError(f"checkpoint {path} not found (checkpoints are not committed: retrain the run, e.g. "
                       f"with wbcbench.engine.reproduce)")
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
