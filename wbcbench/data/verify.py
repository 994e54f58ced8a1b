"""`wbcbench data verify`: the data on disk against the registry, every file read.

Per-class counts are compared with `sources.DATASETS`, and every file is checked: by md5 where a manifest has
one (the bytes are authoritative), else by decoding it in full (a header check passes truncated JPEGs). The
report names every bad file and says how many images were checked, so "ok" never means "nothing looked at".
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from PIL import Image, ImageFile

from wbcbench.core.errors import WbcError
from wbcbench.core.paths import data_root as _data_root
from wbcbench.data.datasets import get_dataset, load_spec
from wbcbench.data.sources import DATASETS


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file (hashlib reads it in blocks; weights files run to half a gigabyte)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def _check_file(path: Path, md5: str | None) -> str | None:
    """None if fine, else why not. With an md5 the bytes are authoritative; without one the image is decoded
    in full, since a header check passes truncated JPEGs."""
    if not os.path.isfile(path):
        return "missing"
    try:
        if md5 is not None:
            got = file_digest(path)
            return None if got == md5 else f"md5 {got} != manifest {md5}"
        old, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
        try:
            with Image.open(path) as im:
                im.load()
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = old
        return None
    except Exception as e:  # noqa: BLE001 - any failure to read is the finding itself
        return f"{type(e).__name__}: {e}"


def verify(name: str | None = None, data_root: str | os.PathLike | None = None):
    """Compare a dataset on disk with the registry: per-class counts and every file (md5 where a manifest has
    one, else a full decode). The report names every bad file; `checked` counts the images read; `ok` is False
    if anything differs. With no name: a list of reports, one per registered dataset; those not present here
    get `{"name", "available": False, "ok": None, "checked": 0, "problem"}` instead of failing the whole check."""
    if name is None:
        root = _data_root(data_root)
        reports = []
        for n, spec in DATASETS.items():
            try:
                ds = load_spec(spec, root, check_files=False)
            except WbcError as e:
                reports.append({"name": n, "available": False, "ok": None, "checked": 0, "problem": str(e)})
                continue
            reports.append(_report(ds, spec))
        return reports
    return _report(get_dataset(name, data_root, check_files=False), DATASETS.get(name))


def _report(ds, spec) -> dict:
    """verify's report on dataset `ds`, against registry entry `spec` (None for a path: no counts to compare)."""
    counts = ds.class_counts()
    count_mismatch = spec.count_mismatch(counts) if spec else {}
    bad_files = []
    for rel, m in zip(ds.paths, ds.md5s):
        why = _check_file(ds.root / rel, m)
        if why:
            bad_files.append({"path": str(ds.root / rel), "problem": why})
    return {
        "name": ds.name, "available": True, "root": str(ds.root), "n": len(ds),
        "expected_n": spec.expected_total if spec else None, "class_counts": counts,
        "expected_counts": spec.expected_counts if spec else None, "count_mismatch": count_mismatch,
        "bad_files": bad_files, "checked": len(ds), "checked_md5": sum(m is not None for m in ds.md5s),
        "checked_decode": sum(m is None for m in ds.md5s),
        "ok": (spec is None or spec.total_ok(len(ds))) and not count_mismatch and not bad_files,
    }


def describe(report: dict) -> str:
    """One line per report for the CLI: `pbc: ok, 10298 images checked (10298 by md5, 0 decoded)`."""
    if not report.get("available", True):
        return f"{report['name']}: not available"
    state = "ok" if report["ok"] else "FAILED"
    line = (f"{report['name']}: {state}, {report['checked']} images checked ({report['checked_md5']} by md5, "
            f"{report['checked_decode']} decoded)")
    problems = []
    if report["bad_files"]:
        problems.append(f"{len(report['bad_files'])} bad file(s)")
    if report["count_mismatch"]:
        problems.append("class counts differ from the registry")
    if report["expected_n"] is not None and report["n"] != report["expected_n"]:
        problems.append(f"{report['n']} images, registry says {report['expected_n']}")
    return line + (": " + "; ".join(problems) if problems else "")
