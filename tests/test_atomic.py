"""Atomic writes (wbcbench.core.atomic) at the moments that matter: a process SIGKILLed with the new content
complete in its temp file but not yet renamed (tests/kill_at_rename.py, the fault injection test_reliability
uses on whole training runs), and a rename that fails."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import kill_at_rename
import pytest

from wbcbench.core import atomic
from wbcbench.core.errors import WbcError

TESTS = Path(__file__).resolve().parent


def test_killed_before_the_rename_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "metrics.json"
    atomic.write_json(target, {"accuracy": 0.5})
    child = textwrap.dedent(f"""
        import os, kill_at_rename
        from wbcbench.core import atomic
        os.replace = kill_at_rename.kill_at_rename("metrics.json")
        atomic.write_json({str(tmp_path / 'other.json')!r}, {{"kept": 1}})  # another name: renamed as usual
        atomic.write_json({str(target)!r}, {{"accuracy": 0.9}})
    """)
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert target.read_text() == '{\n  "accuracy": 0.5\n}\n'        # the old content, whole
    assert (tmp_path / "other.json").read_text() == '{\n  "kept": 1\n}\n'
    (tmp,) = [p for p in tmp_path.iterdir() if p.name.endswith(atomic.STALE_SUFFIX)]
    assert tmp.name.startswith(".metrics.json.") and tmp.read_text() == '{\n  "accuracy": 0.9\n}\n'
    assert atomic.remove_stale_temp(tmp_path) == [tmp] and not tmp.exists()
    atomic.write_json(target, {"accuracy": 0.9})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "other.json"]


def test_the_injection_kills_only_at_atomics_rename_of_that_name(tmp_path):
    """kill_at_rename must not fire on a plain os.replace of a file of the same name (not atomic's temp)."""
    calls = []
    patched = kill_at_rename.kill_at_rename("done", replace=lambda s, d: calls.append((s, d)))
    patched(tmp_path / "done.new", tmp_path / "done")
    patched(tmp_path / f".other.x{atomic.STALE_SUFFIX}", tmp_path / "other")
    assert calls == [(tmp_path / "done.new", tmp_path / "done"),
                     (tmp_path / f".other.x{atomic.STALE_SUFFIX}", tmp_path / "other")]


def test_a_failed_rename_keeps_the_old_file_and_names_it(tmp_path, monkeypatch):
    target = tmp_path / "log.csv"
    atomic.write_text(target, "epoch\n1\n")

    def no_space(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "replace", no_space)
    with pytest.raises(WbcError, match=r"cannot write .*log.csv: No space left on device"):
        atomic.write_text(target, "epoch\n1\n2\n")
    monkeypatch.undo()
    assert target.read_text() == "epoch\n1\n" and [p.name for p in tmp_path.iterdir()] == ["log.csv"]
