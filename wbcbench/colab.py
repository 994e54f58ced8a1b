"""The Colab path: the repository's URL and branch (the one place they are written), `setup()`, which every
notebook's set-up cell calls, and the notebooks' "Open in Colab" badges.

On a fresh Colab runtime wbcbench is not installed, so each set-up cell first clones the repository itself
(a few lines; only this module imports nothing beyond the standard library before the install), then calls
`setup(data=[...])`: install the clone (`pip install -e`, pins from requirements.txt), download the data the
notebook reads, and work inside the clone so that results/ and notebooks/ are there. Elsewhere `setup` only
returns the repository root. `python -m wbcbench.colab` writes the cell into every notebook, and the badges
and the book's repository settings in `_config.yml`, from REPO_URL and REPO_BRANCH; tests/test_colab.py fails
when any copy differs from what this module writes.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from wbcbench.core import atomic
from wbcbench.core.errors import WbcError
from wbcbench.core.paths import REPO_ROOT, checkout
from wbcbench.core.project import REPO_BRANCH, REPO_URL

try:
    import google.colab  # noqa: F401  (importable on Colab only)
    ON_COLAB = True
except ImportError:
    ON_COLAB = False

COLAB_URL = "https://colab.research.google.com"  # also the book's launch_buttons.colab_url
CLONE = "wbc-benchmark"  # the clone's folder under the runtime's starting folder (/content on Colab)
NOTEBOOKS = REPO_ROOT / "notebooks"
CONFIG = REPO_ROOT / "_config.yml"
CELL_HEADER = '# %% tags=["remove-cell"]'  # jupytext percent format; the book hides the cell
SETUP_MARK = "# Set-up, the same in every notebook but for the data it reads"
DATA_CALL = re.compile(r"^ROOT = setup\(data=(\[.*?\])\)", re.M)
BADGE = re.compile(re.escape(COLAB_URL) + r"/github/[^)\s]+")

# {data} is the one part that differs; {url} and {branch} are the defaults that WBCBENCH_REPO_URL and
# WBCBENCH_REPO_BRANCH override (a fork, a test's local clone). The shell line clones only once per runtime.
_TEMPLATE = SETUP_MARK + """ (wbcbench/colab.py writes it): a fresh Colab
# runtime first clones the repository (WBCBENCH_REPO_URL / WBCBENCH_REPO_BRANCH override its URL / branch).
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("google") and importlib.util.find_spec("google.colab") and not os.path.isdir("wbcbench"):
    subprocess.run('[ -d {clone} ] || git clone -q --depth 1 -b "${WBCBENCH_REPO_BRANCH:-{branch}}" '
                   '"${WBCBENCH_REPO_URL:-{url}}" {clone}',
                   shell=True, check=True)
    sys.path.insert(0, os.path.abspath("{clone}"))
from wbcbench.colab import setup  # noqa: E402  (importable once cloned)

# on Colab: install the clone, download the data, work inside the clone
ROOT = setup(data={data})"""


def setup(data: list[str] = ()) -> Path:
    """The set-up cell's work once wbcbench is importable: on Colab, install the clone with the pinned
    versions, download `data` (names of `wbcbench data download`) and make the clone the working folder;
    elsewhere nothing. Returns the checkout; the working folder when wbcbench is installed rather than
    cloned (then there is nothing to install, and the data goes where the working folder's default is)."""
    if not isinstance(data, (list, tuple)) or not all(isinstance(d, str) and d for d in data):
        raise WbcError(f"setup(data=...) takes a list of dataset names, not {data!r}")
    clone = checkout()
    root = clone or Path.cwd()
    if ON_COLAB:
        if clone is not None:
            os.chdir(clone)
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", ".", "-c", "requirements.txt"],
                           check=True)
        if data:  # a subprocess: this kernel cannot import the dependencies pip has just installed before it
            subprocess.run([sys.executable, "-m", "wbcbench.cli", "data", "download", *data], check=True)
        print("working in", root)
    return root


def setup_cell(data: list[str]) -> str:
    """The set-up cell's source for a notebook that reads the datasets `data` (names of `wbcbench data download`)."""
    if not isinstance(data, list) or not all(isinstance(d, str) and d.strip() == d and d for d in data):
        raise WbcError(f"the data a notebook needs must be a list of dataset names, not {data!r}")
    return (_TEMPLATE.replace("{data}", json.dumps(data)).replace("{url}", REPO_URL)
            .replace("{branch}", REPO_BRANCH).replace("{clone}", CLONE))


def declared_data(cell: str) -> list[str] | None:
    """The data list that a set-up cell passes to setup() (None when it passes none)."""
    m = DATA_CALL.search(cell)
    try:
        return ast.literal_eval(m.group(1)) if m else None
    except (ValueError, SyntaxError):
        return None


def badge_url(notebook: str | Path) -> str:
    """Where a notebook's "Open in Colab" badge points: the notebook on REPO_BRANCH of REPO_URL."""
    owner_repo = REPO_URL.removeprefix("https://github.com/")
    return f"{COLAB_URL}/github/{owner_repo}/blob/{REPO_BRANCH}/notebooks/{Path(notebook).stem}.ipynb"


def _cells(text: str) -> list[str]:
    """A jupytext percent script cut before every `# %%` line: [header, cell, cell, ...]."""
    return re.split(r"(?m)^(?=# %%)", text)


def _is_code(chunk: str) -> bool:
    return chunk.startswith("# %%") and not chunk.startswith("# %% [")


def update_script(text: str, name: str, data: list[str] | None = None) -> str:
    """A notebook's percent script with its set-up cell (the first code cell when it is one; inserted before
    the first code cell otherwise) and its Colab badge rewritten. `data`: the datasets the notebook needs,
    None to keep what its set-up cell declares."""
    chunks = _cells(text)
    first = next((i for i, c in enumerate(chunks) if _is_code(c)), None)
    if first is None:
        raise WbcError(f"{name} has no code cell to put the set-up cell before")
    body = chunks[first].split("\n", 1)[1] if "\n" in chunks[first] else ""
    has_setup = body.startswith(SETUP_MARK)
    if data is None:
        data = declared_data(body) if has_setup else None
        if data is None:
            raise WbcError(f"{name} has no set-up cell declaring its data: name its datasets (--data)")
    cell = f"{CELL_HEADER}\n{setup_cell(data)}\n\n"
    chunks[first:first + 1] = [cell] if has_setup else [cell, chunks[first]]
    return BADGE.sub(badge_url(name), "".join(chunks))


def update_config(text: str) -> str:
    """`_config.yml` with repository.url/branch and launch_buttons.colab_url set from this module."""
    for key, sub, value in (("repository", "url", REPO_URL), ("repository", "branch", REPO_BRANCH),
                            ("launch_buttons", "colab_url", COLAB_URL)):
        pattern = re.compile(rf"(?m)^({key}:\n(?:[ \t]+.*\n)*?[ \t]+{sub}:[ \t]*).*$")
        if not pattern.search(text):
            raise WbcError(f"_config.yml has no {key}.{sub} to set")
        text = pattern.sub(lambda m: m.group(1) + value, text, count=1)
    return text


def write(notebooks: list[Path] | None = None, data: list[str] | None = None, config: Path = CONFIG) -> list[Path]:
    """Rewrite the set-up cell and badge of `notebooks` (their .py; default: every notebook) and their paired
    .ipynb (jupytext --update: outputs and other cells untouched), and the repository settings of `config`.
    Returns the files changed. Each file is re-read right before it is written (others edit other cells)."""
    if notebooks is None and checkout() is None:
        raise WbcError("wbcbench is installed, not run from a checkout: there are no notebooks to rewrite")
    scripts = sorted(NOTEBOOKS.glob("[0-9]*.py")) if notebooks is None else [Path(p).with_suffix(".py")
                                                                             for p in notebooks]
    for p in scripts:  # every notebook checked before anything is written
        update_script(p.read_text(), p.name, data)
    changed = []
    for p in scripts:
        text = p.read_text()
        if (new := update_script(text, p.name, data)) != text:
            atomic.write_text(p, new)
            changed.append(p)
        ipynb = p.with_suffix(".ipynb")
        before = ipynb.read_bytes() if ipynb.exists() else None
        subprocess.run([sys.executable, "-m", "jupytext", "-q", "--to", "ipynb", "--update", str(p)], check=True)
        if ipynb.read_bytes() != before:
            changed.append(ipynb)
    if config.exists() and (new := update_config(text := config.read_text())) != text:
        atomic.write_text(config, new)
        changed.append(config)
    return changed


def main(argv=None) -> int:
    """`python -m wbcbench.colab [NOTEBOOK.py ...] [--data pbc,lisc]`: write the copies of this module's facts."""
    ap = argparse.ArgumentParser(prog="python -m wbcbench.colab", description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in notebooks/")
    ap.add_argument("--data", help="comma-separated datasets the notebook(s) read ('' for none); default: "
                                   "keep each set-up cell's list")
    args = ap.parse_args(argv)
    data = None if args.data is None else [d.strip() for d in args.data.split(",") if d.strip()]
    try:
        for p in write(args.notebooks or None, data):
            print("rewrote", p.relative_to(REPO_ROOT) if p.is_relative_to(REPO_ROOT) else p)
    except WbcError as e:
        print(f"wbcbench.colab: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
