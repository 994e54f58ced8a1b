"""A new user's first hour, offline: a clone of HEAD in an empty folder (no ../shared beside it), a fresh venv,
the data downloaded from a loopback server that serves every archive in its source's own layout (built
from the real images of the data bundle, checked by the CLI against the shipped md5 manifests), then the
data check and the book build, each timed.

    python benchmarks/fresh_folder.py --data-root ../shared/wbc-data --out results/checks/fresh_folder.md

The venv sees this interpreter's packages (tests/venvs.py: --system-site-packages would show the base
interpreter's when this one is itself a venv) and the package is installed with --no-deps, so torch and the
other pinned wheels are not installed a second time (tests/test_colab.py checks that they satisfy
wbcbench's declared requirements); the clone, the data folder, the decoded-image cache and the book build
are all new. It is a check, not a test (minutes of CPU, CI does not run it): exit status 1 when a step fails.
The report holds no path of this machine.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

from wbcbench.data import download
from wbcbench.data.mirror import build_archives

REPO = Path(__file__).resolve().parents[1]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the steps' own output is the report
        pass


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", required=True, help="the data bundle the served archives are built from")
    p.add_argument("--out", default=None, help="write the report (markdown) here too")
    a = p.parse_args(argv)
    src = Path(a.data_root).resolve()
    steps, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        served = tmp / "served"
        served.mkdir()
        t0 = time.time()
        rows = {f: download.load_manifest(f) for f in download.FOLDERS}
        archives = build_archives(rows, lambda f, e: (src / f / e.path).read_bytes(), zipfile.ZIP_STORED)
        for name, data in archives.items():
            (served / name).write_bytes(data)
        steps.append(("build the served archives", 0, time.time() - t0))
        httpd, url = serve(served)
        home = tmp / "empty" / "wbc-benchmark"  # nothing beside it: no ../shared
        venv = tmp / "venv"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("WBCBENCH_", "VIRTUAL_ENV")) and k != "PYTHONPATH"}
        env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(venv),
                   WBCBENCH_DOWNLOAD_BASE=url, WBCBENCH_CACHE=str(tmp / "cache"), WBCBENCH_DATA=str(home / "data"),
                   PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        commands = [
            ("clone HEAD into an empty folder", ["git", "clone", "-q", str(REPO), str(home)], tmp),
            ("fresh venv", [sys.executable, str(REPO / "tests" / "venvs.py"), "--with-pip", str(venv)], tmp),
            ("pip install -e . --no-deps", [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                                            "--no-build-isolation", "-e", "."], home),
            ("wbcbench data download all", ["wbcbench", "data", "download", "all", "--data-root", "data"], home),
            ("wbcbench data verify", ["wbcbench", "--data-root", "data", "data", "verify"], home),
            ("jupyter-book build -W -n --keep-going .",
             ["jupyter-book", "build", "-W", "-n", "--keep-going", "."], home),
        ]
        for what, cmd, cwd in commands:
            t0 = time.time()
            r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
            steps.append((what, r.returncode, time.time() - t0))
            print(f"{what}: exit {r.returncode} in {time.time() - t0:.0f} s", flush=True)
            if r.returncode != 0:
                print((r.stdout + r.stderr)[-4000:], file=sys.stderr)
                ok = False
                break
            if what == "wbcbench data verify":
                verified = r.stdout.strip().replace(str(home), ".")
        httpd.shutdown()
        pages = sorted((home / "_build" / "html").rglob("*.html")) if ok else []
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    lines = [f"# A fresh folder, offline (commit {commit})", "",
             "`python benchmarks/fresh_folder.py` on a 2-core CPU machine: every step's exit status and seconds.", "",
             "| step | exit | seconds |", "|---|---|---|"]
    lines += [f"| {w} | {rc} | {s:.0f} |" for w, rc, s in steps]
    if ok:
        lines += ["", f"The book built {len(pages)} HTML pages. `wbcbench data verify` printed:", "", "```",
                  verified, "```"]
    report = "\n".join(lines) + "\n"
    print(report)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(report)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
