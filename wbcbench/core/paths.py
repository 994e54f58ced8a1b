"""Where data and the decoded-image cache live. Images are read in place, never copied into the repo."""
from __future__ import annotations

import os
from pathlib import Path

from wbcbench.core.errors import WbcError

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "wbc-data"


def data_root(explicit: str | os.PathLike | None = None, must_exist: bool = True) -> Path:
    """`--data-root`, else $WBCBENCH_DATA, else ../shared/wbc-data when it exists, else ./data."""
    if explicit:
        root, how = Path(explicit), "--data-root"
    elif os.environ.get("WBCBENCH_DATA"):
        root, how = Path(os.environ["WBCBENCH_DATA"]), "WBCBENCH_DATA"
    elif SHARED_DATA.is_dir():
        root, how = SHARED_DATA, "default"
    else:
        root, how = Path("data"), "default"
    root = root.expanduser().resolve()
    if must_exist and not root.is_dir():
        raise WbcError(f"data root {root} (from {how}) does not exist; pass --data-root or set WBCBENCH_DATA "
                       "(see README, 'Data')")
    return root


def cache_dir() -> Path:
    """$WBCBENCH_CACHE, else ~/.cache/wbcbench: decoded uint8 images, rebuilt when a manifest changes."""
    d = Path(os.environ.get("WBCBENCH_CACHE") or Path.home() / ".cache" / "wbcbench")
    d.mkdir(parents=True, exist_ok=True)
    return d
