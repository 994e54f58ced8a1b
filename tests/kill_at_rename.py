"""Fault injection for atomic writes, kept out of the package: run the wbcbench CLI in this process and
SIGKILL it the moment wbcbench.core.atomic is about to rename a complete temp file over NAME, the one
moment a writer must survive. Polling for the temp file from outside misses writes that take milliseconds.

    python tests/kill_at_rename.py NAME <wbcbench CLI arguments...>
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from wbcbench.core import atomic

COMMAND = [sys.executable, str(Path(__file__).resolve())]


def kill_at_rename(name: str, replace=os.replace):
    """An os.replace that SIGKILLs the process instead of renaming atomic's temp file of `name` into place."""
    def patched(src, dst, *args, **kwargs):
        s = Path(src).name
        if Path(dst).name == name and s.startswith(f".{name}.") and s.endswith(atomic.STALE_SUFFIX):
            os.kill(os.getpid(), signal.SIGKILL)
        return replace(src, dst, *args, **kwargs)
    return patched


if __name__ == "__main__":
    target, *cli_args = sys.argv[1:]
    os.replace = kill_at_rename(target)
    from wbcbench.cli import main
    sys.exit(main(cli_args))
