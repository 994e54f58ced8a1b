"""`wbcbench data download`: fetch each public dataset from its original source and build exactly the layout
and manifests that `wbcbench data verify` accepts; `import_raabin` does the same for a Raabin-WBC download.

Trust comes from the md5 of every extracted file, listed in `wbcbench/data/manifests/<folder>.csv.gz` (made
from the project's data bundle), not from the archives: their own hashes are unknown offline and GitHub does
not promise byte-stable archive zips, so pooch gets no known hash and each file is checked after extraction.
Raabin-WBC, whose site needs a person, is imported from the user's download by `wbcbench.data.raabin`.
A dataset folder is built in a hidden temp folder of the data root and renamed into place only once every
md5 matched, so a folder that exists is complete; an archive is `<name>.part` until its last byte arrived,
and an interrupted download resumes from there (HTTP Range) when the same command runs again.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import os
import secrets
import shutil
import sys
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm import tqdm

from wbcbench.core.errors import WbcError, unknown
from wbcbench.core.paths import data_root as _data_root
from wbcbench.data.datasets import MANIFEST, MANIFEST_COLUMNS
from wbcbench.data.sources import DATASETS

try:
    import fcntl
except ImportError:  # Windows: no lock, the temp-folder-then-rename build still keeps folders whole
    fcntl = None

BASE_ENV = "WBCBENCH_DOWNLOAD_BASE"  # serve every archive from <base>/<fname> instead (a mirror, the tests)
CACHE = ".downloads"                 # under the data root: archives, and `.part` files to resume
PARTIAL = ".partial-"                # hidden build folders: .<folder>.partial-XXXX
MANIFESTS = Path(__file__).with_name("manifests")
RETRIES = 3                          # extra attempts after a dropped connection or a 5xx (pooch's retry_if_failed)
CHUNK = 1 << 16                      # a dropped connection loses at most one block of a download


@dataclass(frozen=True)
class Archive:
    url: str          # the original public source
    fname: str        # its name in the cache, and its path under a base URL
    origin: str       # the `source` column of the manifests built from it
    strip_top: bool   # GitHub wraps a repository in one <repo>-<sha>/ folder


def _github(repo: str, sha: str) -> Archive:
    return Archive(f"https://github.com/{repo}/archive/{sha}.zip", f"{repo.split('/')[1]}-{sha[:7]}.zip",
                   f"{repo}@{sha[:7]}", True)


# The one table of upstream sources. Commits are pinned: the md5 manifests list the files of exactly these.
ARCHIVES = {
    "pbc": Archive("https://data.mendeley.com/public-files/datasets/snkd93bnjr/files/"
                   "2fc38728-2ae7-4a62-a857-032af82334c3/file_downloaded", "PBC_dataset_normal_DIB.zip",
                   "doi:10.17632/snkd93bnjr.1", False),
    "wbcatt": _github("apple2373/wbcatt", "ad255b80f6d56b9f72508b04466c3c4a2c95c97b"),
    "lisc": _github("BTrDung/approach-to-segmentation-and-classification-from-leukocyte-images-to-count-blood-"
                    "cells", "672b21a4ab0ed14f33c021ed19ad0002f0053385"),
    "bccd": _github("apple2373/BCCD", "7751031e0b41bcfdff998cbc4c698a445a60b49e"),
    "zheng": _github("zxaoyou/segmentation_WBC", "fa9c01622f52bccb9aeb8a6f2628f564e377767d"),
}
# Folder under the data root -> the archive it is cut from (its manifest is manifests/<folder>.csv.gz).
FOLDERS = {"pbc": "pbc", "splits": "wbcatt", "lisc": "lisc", "bccd": "bccd", "jtsc": "zheng",
           "cellavision": "zheng"}
# What a user names -> the folders it needs (the PBC splits come with PBC).
DOWNLOADS = {"pbc": ("pbc", "splits"), "lisc": ("lisc",), "bccd": ("bccd",), "jtsc": ("jtsc",),
             "cellavision": ("cellavision",)}
RAABIN = ("raabin:train", "raabin:testA", "raabin:testB")


@dataclass(frozen=True)
class Entry:
    member: str   # path inside the archive (below GitHub's top folder)
    path: str     # path in the dataset folder
    label: str    # class, or "" for files that are not images (the split CSVs)
    md5: str


def load_manifest(folder: str, manifest_dir: str | os.PathLike | None = None) -> list[Entry]:
    """The shipped md5 manifest of one folder (a test passes a smaller one through `manifest_dir`)."""
    path = Path(manifest_dir or MANIFESTS) / f"{folder}.csv.gz"
    try:
        with gzip.open(path, "rt", newline="") as f:
            rows = [Entry(r["member"], r["path"], r["label"], r["md5"].lower()) for r in csv.DictReader(f)]
    except (OSError, KeyError, csv.Error, EOFError) as e:
        raise WbcError(f"cannot read the md5 manifest {path}: {e}") from None
    if not rows:
        raise WbcError(f"md5 manifest {path} lists no files")
    return rows


def resolve(names) -> list[str]:
    """Dataset names (or 'all') -> folders to build, in order; every name is checked before anything runs."""
    if isinstance(names, (str, os.PathLike)):
        names = [names]
    names = [n.strip() for x in names for n in os.fspath(x).split(",") if n.strip()]
    if not names:
        raise WbcError("name the datasets to download (or 'all'): " + ", ".join(DOWNLOADS))
    folders: list[str] = []
    for n in names:
        if n == "all":
            keys = list(DOWNLOADS)
        elif n in DOWNLOADS:
            keys = [n]
        elif n.startswith("pbc:") and n in DATASETS:
            keys = ["pbc"]
        elif n in RAABIN:
            raise WbcError(f"{n!r} cannot be downloaded for you (its site needs a person): "
                           f"{DATASETS[n].download} Or import the downloaded zip: wbcbench data import-raabin PATH")
        elif n in DATASETS:
            raise WbcError(f"{n!r} cannot be downloaded for you: {DATASETS[n].download}")
        else:
            raise unknown("downloadable dataset", n, [*DOWNLOADS, "all"])
        folders += [f for k in keys for f in DOWNLOADS[k] if f not in folders]
    return folders


def writable_root(root: Path) -> Path:
    try:
        (root / CACHE).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WbcError(f"cannot write to the data root {root}: {e.strerror or e}") from None
    return root


def partial_dir(root: Path, stem: str) -> Path:
    """A new hidden build folder `.<stem>.partial-XXXX` (mkdir, not mkdtemp: it keeps the umask's modes)."""
    while True:
        d = root / f".{stem}{PARTIAL}{secrets.token_hex(4)}"
        try:
            d.mkdir()
            return d
        except FileExistsError:
            continue
        except OSError as e:
            raise WbcError(f"cannot write to the data root {root}: {e.strerror or e}") from None


@contextmanager
def locked(root: Path):
    """One writer per data root; a second download or import waits. Build folders of a killed writer are deleted."""
    with open(root / CACHE / ".lock", "w") as f:
        if fcntl is not None:
            fcntl.flock(f, fcntl.LOCK_EX)
        for stale in root.glob(f".*{PARTIAL}*"):
            shutil.rmtree(stale, ignore_errors=True)
        yield


def _present(root: Path, folder: str, entries: list[Entry]) -> bool:
    d = root / folder
    if not d.exists():
        return False
    need = [MANIFEST] if entries[0].label else [e.path for e in entries]
    missing = [n for n in need if not (d / n).is_file()]
    if missing:
        raise WbcError(f"{d} exists but is not a finished download ({missing[0]} is missing); "
                       "move it away, then run the download again")
    return True


class _Resumable:
    """A pooch downloader that keeps the bytes received in `<cache>/<fname>.part` and asks for the rest with an
    HTTP Range header (pooch's own downloader starts over). Moved to pooch's temp file only once complete."""

    def __init__(self, part: Path, progress: bool):
        self.part, self.progress = part, progress

    def __call__(self, url: str, output_file: str, pooch, check_only: bool = False):
        have = self.part.stat().st_size if self.part.exists() else 0
        headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
        with requests.get(url, headers=headers, stream=True, timeout=60) as r:
            if r.status_code == 416 and have:  # the part is all there is, or the file changed: start over
                self.part.unlink()
                return self(url, output_file, pooch)
            if 400 <= r.status_code < 500:
                raise WbcError(f"download of {url} failed: HTTP {r.status_code} {r.reason}")
            r.raise_for_status()  # 5xx: pooch retries
            if r.status_code == 206 and not r.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
                self.part.unlink()  # not the range asked for: start over on the next attempt
                raise requests.exceptions.ConnectionError(f"{url} sent another range than bytes={have}-")
            if r.status_code != 206:
                have = 0  # the server ignored the Range header and sent the whole file
            size = r.headers.get("Content-Length")
            total = have + int(size) if size else None
            with open(self.part, "ab" if have else "wb") as f, \
                    tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                         desc=self.part.name[:-5], disable=not self.progress, file=sys.stderr) as bar:
                for block in r.iter_content(CHUNK):
                    f.write(block)
                    bar.update(len(block))
        got = self.part.stat().st_size
        if total is not None and got != total:  # urllib3 2 raises on a short body itself; urllib3 1 does not
            raise requests.exceptions.ConnectionError(f"received {got} of {total} bytes")
        os.replace(self.part, output_file)


def _fetch(archive: Archive, root: Path, base_url: str | None, progress: bool, retries: int) -> Path:
    import pooch

    url = f"{base_url.rstrip('/')}/{archive.fname}" if base_url else archive.url
    cache = root / CACHE
    part = cache / f"{archive.fname}.part"
    # known hash None: the archive's own hash is unknown offline; every file inside is md5-checked instead.
    store = pooch.create(path=cache, base_url="", registry={archive.fname: None}, urls={archive.fname: url},
                         retry_if_failed=retries)
    try:
        return Path(store.fetch(archive.fname, downloader=_Resumable(part, progress)))
    except requests.exceptions.RequestException as e:
        kept = f"; {part.stat().st_size} bytes are kept in {part}: run the same command again to resume" \
            if part.exists() else ""
        raise WbcError(f"download of {url} failed after {retries + 1} attempt(s): {e}{kept}") from None


def _members(zf: zipfile.ZipFile, strip_top: bool) -> dict[str, zipfile.ZipInfo]:
    out = {}
    for info in zf.infolist():
        name = info.filename.split("/", 1)[1] if strip_top and "/" in info.filename else info.filename
        if name and not info.is_dir():
            out[name] = info
    return out


def extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path) -> str:
    """Stream one archive member to `dest` and return its md5, computed while writing (one read per file)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.md5()
    with zf.open(info) as src, open(dest, "wb") as out:
        for block in iter(lambda: src.read(CHUNK), b""):
            h.update(block)
            out.write(block)
    return h.hexdigest()


def _build(root: Path, folder: str, zip_path: Path, archive: Archive, entries: list[Entry], progress: bool) -> None:
    """Extract `entries` into a hidden temp folder, check every md5, write manifest.csv, rename into place.
    Any failure deletes the temp folder and the archive (it is damaged, or not what the manifest describes)."""
    tmp = partial_dir(root, folder)
    try:
        try:
            zf = zipfile.ZipFile(zip_path)
        except (zipfile.BadZipFile, OSError) as e:
            raise WbcError(f"downloaded archive {zip_path} is damaged or incomplete ({e}); it was deleted: "
                           "run the download again") from None
        with zf:
            members = _members(zf, archive.strip_top)
            for e in tqdm(entries, desc=f"check {folder}", unit="file", disable=not progress, file=sys.stderr):
                info = members.get(e.member)
                if info is None:
                    raise WbcError(f"archive {zip_path.name} has no {e.member} (needed for {folder}/{e.path}); "
                                   f"it was deleted: run again, or report a changed source ({archive.url})")
                try:
                    got = extract_member(zf, info, tmp / e.path)
                except (zipfile.BadZipFile, zlib.error, EOFError) as err:
                    raise WbcError(f"{e.member} in {zip_path.name} is damaged ({err}); the archive was deleted: "
                                   "run the download again") from None
                if got != e.md5:
                    raise WbcError(f"md5 mismatch for {folder}/{e.path} ({e.member} in {zip_path.name}): got {got}, "
                                   f"expected {e.md5}; the archive was deleted: run the download again")
        if entries[0].label:
            with open(tmp / MANIFEST, "w", newline="") as f:
                w = csv.writer(f, lineterminator="\n")
                w.writerow([*MANIFEST_COLUMNS, "source"])
                w.writerows((e.path, e.label, e.md5, f"{archive.origin}:{e.member}") for e in entries)
        os.rename(tmp, root / folder)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, WbcError):
            zip_path.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise WbcError(f"cannot build {root / folder}: {e.strerror or e}") from None
        raise


def download(names, data_root=None, progress: bool = True, *, base_url: str | None = None,
             manifest_dir: str | os.PathLike | None = None, retries: int = RETRIES,
             keep_archives: bool = False) -> list[dict]:
    """Download and build the named datasets ('all' for every one) under the data root. Folders already there
    are left alone. Returns one {"folder", "status" ('downloaded' or 'present'), "files", "path"} per folder."""
    folders = resolve(names)
    manifests = {f: load_manifest(f, manifest_dir) for f in folders}
    base_url = base_url or os.environ.get(BASE_ENV) or None
    root = _data_root(data_root, must_exist=False)
    if all(_present(root, f, manifests[f]) for f in folders):  # nothing to do: a read-only bundle is fine
        return [{"folder": f, "status": "present", "files": None, "path": str(root / f)} for f in folders]
    report = []
    with locked(writable_root(root)):
        todo = [f for f in folders if not _present(root, f, manifests[f])]
        for f in folders:
            if f not in todo:
                report.append({"folder": f, "status": "present", "files": None, "path": str(root / f)})
        for key in dict.fromkeys(FOLDERS[f] for f in todo):
            archive = ARCHIVES[key]
            zip_path = _fetch(archive, root, base_url, progress, retries)
            for f in (f for f in todo if FOLDERS[f] == key):
                _build(root, f, zip_path, archive, manifests[f], progress)
                report.append({"folder": f, "status": "downloaded", "files": len(manifests[f]),
                               "path": str(root / f)})
            if not keep_archives:
                zip_path.unlink(missing_ok=True)
    return sorted(report, key=lambda r: folders.index(r["folder"]))


def main_download(names, data_root=None) -> int:
    """CLI: `wbcbench data download NAME...|all [--data-root DIR]`."""
    for r in download(names, data_root, progress=True):
        if r["status"] == "present":
            print(f"{r['folder']}: already present at {r['path']} (check it with wbcbench data verify)")
        else:
            print(f"{r['folder']}: {r['files']} files downloaded, md5-checked, at {r['path']}")
    return 0
