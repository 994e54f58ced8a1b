"""Committed results name no place on the machine that made them: no absolute path in any file under
results/ (run records, executed notebooks, tables), so a clone anywhere reads the same files and a
reader learns nothing about the author's machine."""
from __future__ import annotations

import re
import subprocess

from wbcbench.core.paths import REPO_ROOT

# POSIX homes and scratch places, and a Windows drive (C:\Users, or C:\\Users as JSON writes it).
ABSOLUTE = re.compile(r"(/work/|/root/|/home/|/tmp/|/Users/|(?<![A-Za-z])[A-Z]:\\\\?(?=[A-Za-z]))")


def _committed(folder: str) -> list:
    """Files of `folder` that git tracks (every file there when this is not a git checkout)."""
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z", folder], capture_output=True,
                             text=True, timeout=60, check=True).stdout
        files = [REPO_ROOT / f for f in out.split("\0") if f]
    except (OSError, subprocess.SubprocessError):
        files = []
    return files or [p for p in (REPO_ROOT / folder).rglob("*") if p.is_file()]


def test_no_absolute_paths_in_committed_results():
    bad = []
    for path in _committed("results"):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        found = sorted(set(m.group(0) for m in ABSOLUTE.finditer(text)))
        if found:
            bad.append(f"{path.relative_to(REPO_ROOT)}: {', '.join(found)}")
    assert not bad, f"{len(bad)} committed files hold absolute paths:\n" + "\n".join(bad[:50])


def test_the_pattern_finds_what_it_must():
    for text in ('"out": "/work/main/results/cpu"', "/root/.pyenv/x/tqdm/auto.py:21", "/tmp/pytest-of-root/x",
                 "/home/user/data", "C:\\\\Users\\\\x", "D:\\data"):
        assert ABSOLUTE.search(text), text
    for text in ('"out": "results/cpu"', "papermill notebooks/02_train_one_run.ipynb", "pbc:test,lisc",
                 "loss:\\n", "cpu\\n"):
        assert not ABSOLUTE.search(text), text
