"""The package's shape: lint-clean, floors importing only downward, no torch where none is needed, short modules.

These guard what a reader of the tree relies on: the folder layout is the architecture (pyproject.toml's
import-linter contracts), and reading or reporting runs works on a machine without torch.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib

from wbcbench.core.paths import REPO_ROOT

LINTED = ["wbcbench", "tests", "benchmarks", "notebooks", "setup.py"]
TORCH_FREE = ["wbcbench.analysis", "wbcbench.report", "wbcbench.runs"]
MAX_MODULE_LINES = 400


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def _shown(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def test_ruff_finds_nothing():
    ruff = [sys.executable, "-m", "ruff"] if importlib.util.find_spec("ruff") else [shutil.which("ruff") or "ruff"]
    proc = _run([*ruff, "check", *LINTED])
    assert proc.returncode == 0, _shown(proc)


def test_import_contracts_are_all_kept():
    """Runs import-linter's own CLI entry point in this interpreter (its module has no __main__)."""
    contracts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    proc = _run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
                 "--no-cache"])
    assert proc.returncode == 0, _shown(proc)
    summary = re.search(r"Contracts: (\d+) kept, (\d+) broken", proc.stdout)
    assert summary, _shown(proc)
    assert (int(summary[1]), int(summary[2])) == (len(contracts), 0), _shown(proc)


# Runs in a fresh interpreter: a finder placed first on sys.meta_path sees every attempt to import torch and
# records the source frames on the stack at that moment, i.e. the chain of imports that asked for it.
_TORCH_PROBE = textwrap.dedent("""
    import importlib, json, pkgutil, sys, traceback

    chains = []

    class Watch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                chains.append([f"{f.filename}:{f.lineno}: {f.line}" for f in traceback.extract_stack()
                               if not f.filename.startswith("<") and "/importlib/" not in f.filename])
            return None

    sys.meta_path.insert(0, Watch())
    culprits = []

    def load(name):
        importlib.import_module(name)
        if "torch" in sys.modules and not culprits:
            culprits.append(name)

    load("wbcbench")
    for package in sys.argv[1:]:
        load(package)
        for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
            load(info.name)
    print(json.dumps({"culprits": culprits, "chains": chains[:1]}))
""")


def test_reading_and_reporting_runs_never_imports_torch():
    proc = _run([sys.executable, "-c", _TORCH_PROBE, *TORCH_FREE])
    assert proc.returncode == 0, _shown(proc)
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    chain = "\n".join(found["chains"][0]) if found["chains"] else ""
    assert not found["culprits"] and not found["chains"], (
        f"importing {found['culprits'] or 'a torch-free module'} pulled in torch; the import chain:\n{chain}")


def test_modules_stay_short():
    lines = {p.relative_to(REPO_ROOT).as_posix(): len(p.read_text().splitlines())
             for p in (REPO_ROOT / "wbcbench").rglob("*.py")}
    assert lines, "no modules found under wbcbench/"
    too_long = {p: n for p, n in lines.items() if n > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them by purpose): {too_long}"
