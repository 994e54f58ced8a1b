"""`wbcbench data import-raabin`: Raabin-WBC's site needs a person, so the user downloads its zips (or unzips
them) and this imports Train / TestA / TestB into <data-root>/raabin/, the layout the registry reads.

Every split found is read as an ImageFolder (class folders any case, singular or plural; junk is named) and
its class counts are checked against the registry before any split is moved into place, so a partial or
wrong download is refused whole and nothing is left behind.
"""
from __future__ import annotations

import os
import shutil
import zipfile
import zlib
from pathlib import Path

from wbcbench.core.classes import CLASSES
from wbcbench.core.errors import WbcError
from wbcbench.core.paths import data_root as _data_root
from wbcbench.data.datasets import read_image_folder
from wbcbench.data.download import RAABIN, extract_member, locked, partial_dir, writable_root
from wbcbench.data.sources import DATASETS


def _raabin_splits() -> dict[str, str]:
    """lower-case split folder name (train, testa, testb) -> dataset name, from the registry's locations."""
    return {Path(DATASETS[n].location[0]).name.lower(): n for n in RAABIN}


def _safe_extract(zip_path: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for info in zf.infolist():
                parts = Path(info.filename).parts
                if Path(info.filename).is_absolute() or ".." in parts:
                    raise WbcError(f"archive {zip_path} holds an unsafe path {info.filename!r}; nothing was imported")
                if info.is_dir() or any(p.startswith(".") or p == "__MACOSX" for p in parts):
                    continue  # macOS resource forks, hidden files
                extract_member(zf, info, dest.joinpath(*parts))
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise WbcError(f"{zip_path} is not a readable zip archive ({e}); nothing was imported") from None


def _find_splits(top: Path, depth: int = 4) -> dict[str, Path]:
    """Raabin split folders (Train, TestA, TestB, any case) at most `depth` levels below `top`."""
    names, found = _raabin_splits(), {}
    level = [top]
    for _ in range(depth):
        nxt = []
        for d in level:
            for sub in sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")):
                key = sub.name.lower()
                if key in names:
                    if names[key] in found:
                        raise WbcError(f"two Raabin-WBC {sub.name} folders: {found[names[key]]} and {sub}")
                    found[names[key]] = sub
                else:
                    nxt.append(sub)
        level = nxt
    return found


def _check_counts(name: str, counts: dict[str, int], where: Path) -> None:
    spec = DATASETS[name]
    bad = [f"{c} {v['found']} (expected {v['expected']})" for c, v in spec.count_mismatch(counts).items()]
    n = sum(counts.values())
    if not spec.total_ok(n):
        bad.append(f"{n} images in all (expected {spec.expected_total})")
    if bad:
        raise WbcError(f"{where} does not hold Raabin-WBC {Path(spec.location[0]).name} as published: "
                       f"{', '.join(bad)}; nothing was imported")


def import_raabin(archive_or_folder, data_root=None) -> list[dict]:
    """Import Raabin-WBC Train / TestA / TestB from the user's zip(s) or folder(s) into <data-root>/raabin/.
    Every split found is read as an ImageFolder and its class counts checked against the registry before any
    of them is moved into place; splits already there are left alone."""
    sources = [archive_or_folder] if isinstance(archive_or_folder, (str, os.PathLike)) else list(archive_or_folder)
    if not sources:
        raise WbcError("name the Raabin-WBC zip archive(s) or folder(s) to import")
    root = _data_root(data_root, must_exist=False)
    report = []
    with locked(writable_root(root)):
        tmp = partial_dir(root, "raabin")
        try:
            found: dict[str, Path] = {}
            for i, src in enumerate(Path(s).expanduser() for s in sources):
                if src.is_file():
                    _safe_extract(src, tmp / f"unpacked{i}")
                    top = tmp / f"unpacked{i}"
                elif src.is_dir():
                    top = src
                else:
                    raise WbcError(f"{src} is neither a zip archive nor a folder")
                for name, d in _find_splits(top).items():
                    if name in found:
                        raise WbcError(f"Raabin-WBC {d.name} found twice: in {found[name]} and {d}")
                    found[name] = d
            if not found:
                raise WbcError(f"no Raabin-WBC split folder (Train, TestA or TestB) in {', '.join(map(str, sources))}")
            staged = []
            for name, d in sorted(found.items(), key=lambda kv: RAABIN.index(kv[0])):
                final = root / DATASETS[name].location[0]
                if final.exists():
                    report.append({"dataset": name, "status": "present", "files": None, "path": str(final)})
                    continue
                ds = read_image_folder(d, name)  # class folders any case, singular or plural; junk named
                _check_counts(name, ds.class_counts(), d)
                out = tmp / "out" / final.name
                for rel, y in zip(ds.paths, ds.labels.tolist()):
                    dest = out / CLASSES[y] / Path(rel).relative_to(Path(rel).parts[0])
                    if dest.exists():
                        raise WbcError(f"{d / rel} collides with another image at {dest.relative_to(out)}")
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(d / rel, dest)
                staged.append((name, out, final, len(ds)))
            for name, out, final, n in staged:  # every split is checked: only now does anything appear
                final.parent.mkdir(exist_ok=True)
                os.rename(out, final)
                report.append({"dataset": name, "status": "imported", "files": n, "path": str(final)})
        except OSError as e:
            raise WbcError(f"cannot import Raabin-WBC into {root}: {e.strerror or e}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return report


def main_import_raabin(paths, data_root=None) -> int:
    """CLI: `wbcbench data import-raabin PATH... [--data-root DIR]`."""
    for r in import_raabin(paths, data_root):
        state = "already present" if r["status"] == "present" else f"{r['files']} images imported, counts checked"
        print(f"{r['dataset']}: {state} at {r['path']}")
    return 0
