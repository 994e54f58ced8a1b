"""Reading datasets: registry names (`wbcbench.data.sources`), manifests, ImageFolder trees, class-balanced subsets.

Every dataset resolves to the same thing: a list of files under a root with labels in the canonical class
order of `wbcbench.core.classes`, and a manifest hash that keys the image cache. Checking the files against the
registry's counts and the manifests' md5s is `wbcbench.data.verify`.
"""
from __future__ import annotations

import csv
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from wbcbench.core.classes import CLASSES, NUM_CLASSES, class_index
from wbcbench.core.errors import WbcError, unknown
from wbcbench.core.paths import data_root as _data_root
from wbcbench.data.sources import DATASETS, DatasetSpec

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ("path", "label", "md5")
SPLIT_COLUMNS = ("img_name", "label")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Files (relative to `root`) and int64 labels. `md5s` come from a manifest when there is one, else None."""

    name: str
    root: Path
    paths: tuple[str, ...]
    labels: np.ndarray
    md5s: tuple[str | None, ...] = field(default=())

    def __post_init__(self):
        labels = np.asarray(self.labels, dtype=np.int64)
        labels.setflags(write=False)  # shared by subsets and caches: nobody may relabel in place
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "root", Path(self.root))
        if not self.md5s:
            object.__setattr__(self, "md5s", (None,) * len(self.paths))
        if not (len(self.paths) == len(labels) == len(self.md5s)):
            raise ValueError(f"{self.name}: paths, labels and md5s differ in length")

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, n={len(self)}, root={str(self.root)!r})"

    def files(self) -> list[Path]:
        return [self.root / p for p in self.paths]

    def class_counts(self) -> dict[str, int]:
        """All five classes, zeros included, so counts from different domains line up."""
        counts = np.bincount(self.labels, minlength=NUM_CLASSES)
        return {c: int(counts[i]) for i, c in enumerate(CLASSES)}

    def manifest_hash(self) -> str:
        """sha256 over (path, label, md5) or, without an md5, (path, label, size, mtime) plus the root:
        the cache key, so it changes whenever the file list, a label or (for unmanifested folders) a file
        changes. With md5s the root is left out, so moving the data keeps its cache."""
        h = hashlib.sha256()
        if any(m is None for m in self.md5s):
            h.update(f"root={self.root.resolve()}\n".encode())
        for p, y, m in zip(self.paths, self.labels.tolist(), self.md5s):
            if m is None:
                f = self.root / p
                try:
                    st = f.stat()
                except OSError as e:
                    raise WbcError(f"cannot read {f} ({e.strerror or e}) in dataset {self.name!r}") from None
                m = f"{st.st_size}:{st.st_mtime_ns}"
            h.update(f"{p}\t{y}\t{m}\n".encode())
        return h.hexdigest()

    def subset(self, indices, name: str | None = None) -> "Dataset":
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"subset index out of range for {self.name!r} (n={len(self)})")
        return Dataset(name or f"{self.name}[{idx.size}]", self.root, tuple(self.paths[i] for i in idx),
                       self.labels[idx], tuple(self.md5s[i] for i in idx))


# ---------------------------------------------------------------------------------------------------------
# Readers


def _read_csv(path: Path, required: tuple[str, ...], what: str) -> list[dict]:
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            rows = list(reader)
    except FileNotFoundError:
        raise WbcError(f"{what} {path} not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise WbcError(f"cannot read {what} {path}: {e}") from None
    missing = [c for c in required if c not in cols]
    if missing:
        raise WbcError(f"{what} {path} lacks column(s) {', '.join(missing)}; it has {', '.join(cols) or 'none'} "
                       f"(expected {', '.join(required)})")
    return rows


def _missing_files(root: Path, paths, what: str) -> None:
    base = os.fspath(root)
    missing = [p for p in paths if not os.path.isfile(os.path.join(base, p))]  # pathlib is 5x slower here
    if missing:
        shown = ", ".join(str(root / p) for p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise WbcError(f"{what} names {len(missing)} missing file(s): {shown}{more}")


def read_manifest(folder: Path, name: str | None = None, check_files: bool = True) -> Dataset:
    """`<folder>/manifest.csv` (path,label,md5[,source]): labels are trusted from the manifest, paths checked
    (verify turns the check off so that it can list every missing file instead of stopping at the first)."""
    folder = Path(folder)
    mpath = folder / MANIFEST
    rows = _read_csv(mpath, MANIFEST_COLUMNS, "manifest")
    if not rows:
        raise WbcError(f"manifest {mpath} lists no images")
    paths = tuple(r["path"] for r in rows)
    labels = np.array([class_index(r["label"], where=str(mpath)) for r in rows], dtype=np.int64)
    md5s = tuple((r["md5"] or "").strip().lower() or None for r in rows)
    if check_files:
        _missing_files(folder, paths, f"manifest {mpath}")
    return Dataset(name or str(folder), folder, paths, labels, md5s)


def walk_images(top: Path, ancestors: tuple[tuple[int, int], ...]) -> list[Path]:
    """Image files under `top`, recursively and sorted, following symlinks but refusing loops and
    dangling links (they would otherwise hang the scan or silently drop images)."""
    try:
        st = top.stat()
        entries = sorted(os.scandir(top), key=lambda e: e.name)
    except OSError as e:
        raise WbcError(f"cannot read folder {top}: {e.strerror or e}") from None
    key = (st.st_dev, st.st_ino)
    if key in ancestors:
        raise WbcError(f"symlink loop: {top} leads back to a folder above it")
    ancestors = ancestors + (key,)
    out: list[Path] = []
    for e in entries:
        if e.name.startswith("."):
            continue
        p = Path(e.path)
        try:
            mode = os.stat(p).st_mode  # follows symlinks
        except OSError as err:
            if e.is_symlink():
                raise WbcError(f"broken or looping symlink {p} ({err.strerror or err})") from None
            raise WbcError(f"cannot read {p}: {err.strerror or err}") from None
        if stat.S_ISDIR(mode):
            out.extend(walk_images(p, ancestors))
        elif stat.S_ISREG(mode) and e.name.lower().endswith(IMAGE_EXTENSIONS):
            out.append(p)
    return out


def read_image_folder(folder: Path, name: str | None = None) -> Dataset:
    """torchvision-ImageFolder layout `<folder>/<Class>/**/<image>`; class folders may be absent, their names
    are matched case-insensitively, singular or plural. Unknown class folders are an error (not skipped), so
    a typo never silently drops a class from a test set."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise WbcError(f"dataset folder {folder} does not exist or is not a folder")
    paths, labels = [], []
    try:
        st = folder.stat()
        entries = sorted((e for e in os.scandir(folder) if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as e:
        raise WbcError(f"cannot read folder {folder}: {e.strerror or e}") from None
    for e in entries:
        try:
            is_dir = stat.S_ISDIR(os.stat(e.path).st_mode)
        except OSError as err:
            raise WbcError(f"broken or looping symlink {e.path} ({err.strerror or err})") from None
        if not is_dir:
            continue  # README, manifest, zip next to the class folders
        y = class_index(e.name, where=str(folder))
        for f in walk_images(Path(e.path), ((st.st_dev, st.st_ino),)):
            paths.append(f.relative_to(folder).as_posix())
            labels.append(y)
    if not paths:
        raise WbcError(f"no images found in {folder}: expected class folders ({', '.join(CLASSES)}) holding "
                       f"{'/'.join(x.lstrip('.') for x in IMAGE_EXTENSIONS)} files")
    order = sorted(range(len(paths)), key=lambda i: (labels[i], paths[i]))
    return Dataset(name or str(folder), folder, tuple(paths[i] for i in order),
                   np.array([labels[i] for i in order], dtype=np.int64))


def _pbc_split(root: Path, split: str, check_files: bool = True) -> Dataset:
    """WBCAtt's official split of PBC, matched on img_name (PBC file names are unique). The manifest's label
    is kept: one byte-identical pair crosses classes (Eosinophil/EO_225902.jpg = Neutrophil/BNE_191112.jpg),
    and both files keep their own label, as in PBC and WBCAtt."""
    pbc = read_manifest(root / "pbc", "pbc", check_files)
    csv_path = root / "splits" / f"pbc_wbcatt_{split}.csv"
    rows = _read_csv(csv_path, SPLIT_COLUMNS, "split file")
    by_name = {Path(p).name: i for i, p in enumerate(pbc.paths)}
    idx, missing = [], []
    for r in rows:
        i = by_name.get(r["img_name"])
        (missing if i is None else idx).append(r["img_name"] if i is None else i)
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise WbcError(f"split file {csv_path} names {len(missing)} image(s) not in {root / 'pbc' / MANIFEST}: "
                       f"{', '.join(missing[:5])}{more}")
    if len(set(idx)) != len(idx):
        raise WbcError(f"split file {csv_path} lists an image more than once")
    return pbc.subset(idx, f"pbc:{split}")


def _first_existing(root: Path, candidates: tuple[str, ...]) -> Path | None:
    for c in candidates:
        if (root / c).is_dir():
            return root / c
    return None


# ---------------------------------------------------------------------------------------------------------
# Registry names


def load_spec(spec: DatasetSpec, root: Path, check_files: bool = True) -> Dataset:
    """The files of registered dataset `spec` under data root `root`, read as its `kind` says; a missing
    dataset is a WbcError that says how to get it."""
    if spec.kind == "folder":  # a scanned folder lists only what exists
        folder = _first_existing(root, spec.location)
        if folder is None:
            raise WbcError(f"dataset {spec.name!r} not found: expected {root / spec.location[0]}/<Class>/ "
                           f"(class folders {', '.join(CLASSES)}). {spec.download}")
        return read_image_folder(folder, spec.name)
    folder = root / spec.location[0]
    if not (folder / MANIFEST).is_file():
        raise WbcError(f"dataset {spec.name!r} not found: {folder / MANIFEST} is missing. {spec.download}")
    if spec.kind == "pbc-split":
        return _pbc_split(root, spec.name.partition(":")[2], check_files)
    return read_manifest(folder, spec.name, check_files)


def _looks_like_path(s: str) -> bool:
    return os.sep in s or "/" in s or s.startswith((".", "~")) or Path(s).expanduser().exists()


def get_dataset(name_or_path: str | os.PathLike, data_root: str | os.PathLike | None = None, *,
                check_files: bool = True) -> Dataset:
    """A registry name (`pbc:train`, `raabin:testB`, ...) or a path: a folder with a manifest.csv is read from
    it, any other folder as an ImageFolder (a user's own test images; classes may be missing)."""
    s = os.fspath(name_or_path)
    if s in DATASETS:
        return load_spec(DATASETS[s], _data_root(data_root), check_files)
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(s):
        folder = Path(s).expanduser()
        if not folder.exists():
            raise WbcError(f"dataset folder {folder} does not exist")
        folder = folder.resolve()
        if (folder / MANIFEST).is_file():
            return read_manifest(folder, str(folder), check_files)
        return read_image_folder(folder, str(folder))
    err = unknown("dataset", s, DATASETS)
    raise WbcError(f"{err}; or give a path to an ImageFolder (<dir>/<Class>/<image>)")


def parse_test_sets(value) -> list[str]:
    """Test-set names from "a, b" or a list: stripped, empties dropped, duplicates dropped (first kept), so
    a trailing comma or a repeated name never adds or repeats an evaluation."""
    parts = value.split(",") if isinstance(value, str) else list(value or ())
    out: list[str] = []
    for p in parts:
        if not isinstance(p, (str, os.PathLike)):
            raise WbcError(f"test set {p!r} is not a name or a path")
        name = os.fspath(p).strip()
        if name and name not in out:
            out.append(name)
    if not out:
        raise WbcError(f"no test set given ({value!r}): name at least one, e.g. pbc:test")
    return out


def balanced_indices(labels, per_class: int, seed: int = 0) -> np.ndarray:
    """Up to `per_class` indices of each class (all of a class that has fewer), sorted. Each class draws from
    its own generator seeded by (seed, class), so the subset of one class never depends on the others."""
    if int(per_class) < 1:
        raise WbcError(f"per_class must be at least 1, got {per_class}")
    labels = np.asarray(labels, dtype=np.int64)
    out = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng = np.random.default_rng([int(seed), int(c)])
        out.append(np.sort(rng.permutation(idx)[: int(per_class)]))
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)


def list_datasets(data_root: str | os.PathLike | None = None):
    """One row per registered dataset: expected counts (from the registry) and whether it loads here.
    `available` says `yes`, `no`, or `yes (N images, registry says M: run verify)`."""
    root = _data_root(data_root, must_exist=False)
    rows = []
    for spec in DATASETS.values():
        try:
            ds = load_spec(spec, root) if root.is_dir() else None
        except WbcError:
            ds = None
        if ds is None:
            available = "no"
        elif spec.count_mismatch(ds.class_counts()) or not spec.total_ok(len(ds)):
            available = f"yes ({len(ds)} images, registry says {spec.expected_total}: run verify)"
        else:
            available = "yes"
        counts = spec.expected_counts or (ds.class_counts() if ds is not None else {})
        rows.append({"name": spec.name, "domain": spec.domain,
                     "n_images": spec.expected_total if spec.expected_total is not None
                     else (len(ds) if ds is not None else None),
                     **{c: counts.get(c) for c in CLASSES}, "available": available, "licence": spec.licence})
    df = pd.DataFrame(rows)
    for c in ("n_images", *CLASSES):
        df[c] = df[c].astype("Int64")  # missing counts stay <NA>, the rest stay integers
    return df
