"""Run directories (DomainBed style): named by a hash of the training configuration, finished when `done`
exists, with one `eval/<test set>[@<method>]/` folder per evaluation.

A run's name is its *training* identity: what the network was trained on and how. Evaluations are not part
of it, so asking for a new test set or test-time method adds evaluations to a finished run instead of
training a second network, and a test set whose files changed is re-evaluated (each metrics.json records
the manifest hash of the data it was computed on).

Everything in a run directory is written atomically, and `done` is written last, so a killed run is
never mistaken for a finished one; a lock file claims a run so two processes never write the same one.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import socket
import subprocess
from contextlib import contextmanager
from pathlib import Path

from wbcbench.core.atomic import write_text
from wbcbench.core.errors import WbcError
from wbcbench.core.paths import REPO_ROOT, is_checkout

DONE = "done"
RUN_TOKEN_ENV = "WBCBENCH_RUN_TOKEN"
IDENTITY = 2  # config.json key "identity": how the run name is derived (absent: the legacy rule)
# Bump when a change is meant to move training results (same config, other network): runs of another version
# get other names, so they are never mistaken for each other, and tests/test_reproduce.py retrains the
# committed runs of this version. 1: training subsets drawn with the run's seed.
TRAIN_VERSION = 1
TRAIN_KEYS = ("identity", "train_version", "model", "model_kwargs", "profile", "hparams", "seed", "train",
              "train_manifest")
# Runs written before identity 2 (results/cpu-pilot) hashed their evaluations too.
LEGACY_KEYS = ("model", "model_kwargs", "profile", "hparams", "seed", "train", "test", "adabn", "train_manifest")


def config_hash(config: dict) -> str:
    """Hash of what determines the trained network (not where or on what device it ran, nor what it was
    tested on). A weights file counts by its content hash, not by its file name."""
    identity = config.get("identity")
    if identity is None:
        key = {k: config.get(k) for k in LEGACY_KEYS}
    elif identity == IDENTITY:
        key = {k: config.get(k) for k in TRAIN_KEYS}
        key["model_kwargs"] = {k: v for k, v in (config.get("model_kwargs") or {}).items() if k != "weights"}
    else:
        raise WbcError(f"run record has identity {identity!r}; this wbcbench knows {IDENTITY} (and the legacy "
                       "records without one): update wbcbench")
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10]


def run_name(config: dict) -> str:
    return f"{config['model']}-{config['profile']}-s{config['seed']}-{config_hash(config)}"


def adapt_methods(config: dict) -> list[str]:
    """The test-time methods a run record asks for (its `adapt`)."""
    return list(config.get("adapt") or [])


def is_done(run_dir: Path) -> bool:
    return (Path(run_dir) / DONE).is_file()


def mark_done(run_dir: Path) -> None:
    """Write `done` holding a token of this process ($WBCBENCH_RUN_TOKEN, else host:pid), so a sweep can
    tell whether its own execution or another process did a run's latest work."""
    write_text(Path(run_dir) / DONE, os.environ.get(RUN_TOKEN_ENV) or f"{socket.gethostname()}:{os.getpid()}")


def done_token(run_dir: Path) -> str | None:
    """The token in `done` (None when the run is not done; "" for markers written before tokens)."""
    try:
        return (Path(run_dir) / DONE).read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _records(run_dir: Path) -> dict[tuple[str, str], tuple[dict, Path]]:
    out = {}
    for m in sorted(Path(run_dir).glob("eval/*/metrics.json")):
        try:
            rec = json.loads(m.read_text())
            out[(rec["test_set"], rec["eval_mode"])] = (rec, m.parent)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable: counts as missing, so it is evaluated again
    return out


def evaluations(run_dir: Path) -> dict[tuple[str, str], tuple[str | None, Path]]:
    """{(test_set, eval_mode): (test_manifest, folder)} of the evaluations written in `run_dir`, read from
    their metrics.json (never from folder names, which changed once: `eval/pbc:test` is `eval/pbc_test`)."""
    return {k: (rec.get("test_manifest"), folder) for k, (rec, folder) in _records(run_dir).items()}


def missing_evaluations(run_dir: Path, test_manifests: dict, modes, version=None) -> list[tuple[str, str]]:
    """(test set, mode) pairs asked for but not in `run_dir` on the same data (same manifest hash) and, when
    `version` is given, by the same evaluation code (metrics.json's eval_version)."""
    have = _records(run_dir)
    return [(t, m) for t, manifest in test_manifests.items() for m in modes
            if (t, m) not in have or have[(t, m)][0].get("test_manifest") != manifest
            or (version is not None and have[(t, m)][0].get("eval_version") != version)]


def git_commit() -> dict:
    """The code version: commit hash and whether tracked files had uncommitted changes; both None when
    the package does not run from a git checkout of this project."""
    def git(*a):
        return subprocess.run(["git", "-C", str(REPO_ROOT), *a], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    unknown = {"commit": None, "dirty": None}
    try:
        top = git("rev-parse", "--show-toplevel")
        if not top or Path(top).resolve() != REPO_ROOT.resolve() or not is_checkout(REPO_ROOT):
            return unknown
        return {"commit": git("rev-parse", "HEAD") or None,
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return unknown


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
