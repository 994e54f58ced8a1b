"""Where data and the decoded-image cache live. Images are read in place, never copied into the repo."""
from __future__ import annotations

import os
import re
from pathlib import Path

from wbcbench.core.errors import WbcError

# The folder that holds the package: the checkout when the package runs from one (editable install, or a
# clone on sys.path), site-packages for an installed package; checkout() tells which.
REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path("..", "shared", "wbc-data")


def is_checkout(top: Path) -> bool:
    """`top` is this project's source tree (not, say, a user's repository or a site-packages folder that
    happens to hold an installed copy): it holds wbcbench/ and a pyproject.toml naming wbcbench."""
    try:
        text = (Path(top) / "pyproject.toml").read_text()
    except OSError:
        return False
    return bool(re.search(r'^name\s*=\s*"wbcbench"', text, re.M)) and (Path(top) / "wbcbench").is_dir()


def checkout() -> Path | None:
    """The checkout the package runs from, or None for an installed package (it has no repository)."""
    return REPO_ROOT if is_checkout(REPO_ROOT) else None


def shared_data() -> Path | None:
    """../shared/wbc-data beside the working folder, else beside the checkout when there is one, if it exists."""
    for base in (Path.cwd(), checkout()):
        if base is not None and (base / SHARED).is_dir():
            return (base / SHARED).resolve()
    return None


def data_root(explicit: str | os.PathLike | None = None, must_exist: bool = True) -> Path:
    """`--data-root`, else $WBCBENCH_DATA, else ../shared/wbc-data when it exists (shared_data), else ./data."""
    if explicit:
        root, how = Path(explicit), "--data-root"
    elif os.environ.get("WBCBENCH_DATA"):
        root, how = Path(os.environ["WBCBENCH_DATA"]), "WBCBENCH_DATA"
    elif shared := shared_data():
        root, how = shared, "default"
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
