"""A fresh venv that imports what the running interpreter imports, so that tests (and benchmarks/fresh_folder.py)
install wbcbench into it without installing torch and friends a second time.

`python -m venv --system-site-packages` is not that when the running interpreter is itself a venv: the new
venv is built on the base interpreter and sees the base's site-packages, not the running venv's (there, "No
module named papermill"). Instead, a .pth file in the new venv's site-packages adds the running interpreter's
site-packages folders as site folders (their own .pth files run too, as they do for the running interpreter),
after the venv's own: what is installed into the new venv comes first.
"""
from __future__ import annotations

import site
import subprocess
import sys
from pathlib import Path

PTH = "_running_interpreter.pth"


def visible_site_packages() -> list[str]:
    """The running interpreter's site-packages folders (its user site too, when it uses it), in its order."""
    dirs = [site.getusersitepackages()] if site.ENABLE_USER_SITE else []
    return [d for d in (*dirs, *site.getsitepackages()) if Path(d).is_dir()]


def make_venv(dest: Path, with_pip: bool = False) -> Path:
    """A venv at `dest` that sees the running interpreter's packages; returns its python. Without its own pip
    by default: `python -m pip` then runs the running interpreter's pip, which installs into the new venv."""
    subprocess.run([sys.executable, "-m", "venv", *([] if with_pip else ["--without-pip"]), str(dest)], check=True)
    python = Path(dest) / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, PTH).write_text("".join(f"import site; site.addsitedir({d!r})\n" for d in visible_site_packages()))
    return python


if __name__ == "__main__":  # benchmarks/fresh_folder.py makes its venv with this, as a timed step
    import argparse

    ap = argparse.ArgumentParser(description=make_venv.__doc__.split(";")[0])
    ap.add_argument("dest", type=Path)
    ap.add_argument("--with-pip", action="store_true", help="install pip into it too (ensurepip)")
    args = ap.parse_args()
    print(make_venv(args.dest, with_pip=args.with_pip))
