"""Atomic writes: a file is either its old content or its complete new content, never half of it."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from wbcbench.core.errors import WbcError

STALE_SUFFIX = ".tmp"


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temp path beside `path`; on success fsync and rename it over `path`, on failure remove it.

    An OSError (read-only or missing folder, a file where a folder should be, disk full) becomes a WbcError
    naming `path`; the previous content of `path`, if any, is left as it was. A process killed here leaves
    at most a `.<name>.*.tmp` file, which `remove_stale_temp` deletes (a run's owner does so on resume)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=STALE_SUFFIX, dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise WbcError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results should be as readable as any file
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and not isinstance(e, WbcError):
            raise WbcError(f"cannot write {path}: {e.strerror or e}") from None
        raise


def remove_stale_temp(folder: str | os.PathLike) -> list[Path]:
    """Delete the temp files a killed writer left under `folder` (only call it while owning the folder)."""
    removed = []
    for p in Path(folder).rglob(f".*{STALE_SUFFIX}"):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path, df) -> None:
    """Write a pandas DataFrame atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
