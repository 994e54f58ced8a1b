"""Run directories (DomainBed style): named by a hash of the configuration, finished when `done` exists.

Everything in a run directory is written atomically, and `done` is written last, so a killed run is
never mistaken for a finished one; a lock file claims a run so two sweeps never train the same one.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import platform
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from .atomic import write_text
from .errors import WbcError
from .paths import REPO_ROOT

DONE = "done"
HASHED_KEYS = ("model", "model_kwargs", "profile", "hparams", "seed", "train", "test", "adabn",
               "train_manifest")


def config_hash(config: dict) -> str:
    """Hash of what determines a result (not where or on what device it ran)."""
    key = {k: config.get(k) for k in HASHED_KEYS}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10]


def run_name(config: dict) -> str:
    return f"{config['model']}-{config['profile']}-s{config['seed']}-{config_hash(config)}"


def is_done(run_dir: Path) -> bool:
    return (Path(run_dir) / DONE).is_file()


def mark_done(run_dir: Path) -> None:
    write_text(Path(run_dir) / DONE, "")


def git_commit() -> dict:
    """The code version: commit hash and whether the working tree had uncommitted changes."""
    def git(*a):
        return subprocess.run(["git", "-C", str(REPO_ROOT), *a], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def environment() -> dict:
    import numpy
    import torch
    import torchvision
    versions = {"python": sys.version.split()[0], "torch": torch.__version__,
                "torchvision": torchvision.__version__, "numpy": numpy.__version__}
    for mod in ("timm", "pandas", "wbcbench"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is recorded as None
            versions[mod] = None
    return {"versions": versions, "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}


@contextmanager
def claim(run_dir: Path):
    """Hold an exclusive lock on the run directory; WbcError if another process holds it."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        f = open(run_dir / "lock", "w")
    except OSError as e:
        raise WbcError(f"cannot write the run directory {run_dir}: {e.strerror}") from None
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise RunLocked(f"run {run_dir.name} is being trained by another process") from None
            raise
        yield run_dir
    finally:
        f.close()


class RunLocked(WbcError):
    """Another process holds this run; a sweep skips it."""
