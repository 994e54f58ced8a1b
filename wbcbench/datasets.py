"""Named WBC datasets (one registry), arbitrary ImageFolder test sets, class-balanced subsets and checks.

Every dataset resolves to the same thing: a list of files under a root with labels in the canonical class
order of `wbcbench.classes`. Expected class counts live here, once, in `DATASETS`; `verify` and the tests
compare the data on disk against them, so a partial download or a changed mirror is caught, not trained on.
"""
from __future__ import annotations

import csv
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .classes import CLASSES, NUM_CLASSES, class_index
from .errors import WbcError, unknown
from .paths import data_root as _data_root

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


def _counts(b, e, l, m, n) -> dict[str, int]:  # noqa: E741 - the five class initials
    return dict(zip(CLASSES, (b, e, l, m, n)))


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


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _walk_images(top: Path, ancestors: tuple[tuple[int, int], ...]) -> list[Path]:
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
            out.extend(_walk_images(p, ancestors))
        elif stat.S_ISREG(mode) and _is_image(e.name):
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
        for f in _walk_images(Path(e.path), ((st.st_dev, st.st_ino),)):
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
# Registry


@dataclass(frozen=True)
class DatasetSpec:
    """What a named dataset is, where it comes from, and what it must contain."""

    name: str
    domain: str
    description: str
    citation: str
    licence: str
    url: str
    download: str                               # how to get it and where to put it under the data root
    location: tuple[str, ...]                   # folder(s) under the data root, first is canonical
    expected_counts: dict[str, int] | None      # per class; None where no published breakdown is known
    expected_total: int | None
    loader: Callable[..., Dataset]              # loader(root, check_files=True)

    def load(self, root: Path, check_files: bool = True) -> Dataset:
        return self.loader(root, check_files)


def _manifest_loader(name: str, folder: str):
    def load(root: Path, check_files: bool = True) -> Dataset:
        if not (root / folder / MANIFEST).is_file():
            spec = DATASETS[name]
            raise WbcError(f"dataset {name!r} not found: {root / folder / MANIFEST} is missing. {spec.download}")
        return read_manifest(root / folder, name, check_files)
    return load


def _split_loader(split: str):
    def load(root: Path, check_files: bool = True) -> Dataset:
        if not (root / "pbc" / MANIFEST).is_file():
            raise WbcError(f"dataset 'pbc:{split}' not found: {root / 'pbc' / MANIFEST} is missing. "
                           f"{DATASETS['pbc'].download}")
        return _pbc_split(root, split, check_files)
    return load


def _folder_loader(name: str):
    def load(root: Path, check_files: bool = True) -> Dataset:  # a scanned folder lists only what exists
        spec = DATASETS[name]
        folder = _first_existing(root, spec.location)
        if folder is None:
            raise WbcError(f"dataset {name!r} not found: expected {root / spec.location[0]}/<Class>/ "
                           f"(class folders {', '.join(CLASSES)}). {spec.download}")
        return read_image_folder(folder, name)
    return load


_PBC_CITE = ("Acevedo A. et al., A dataset of microscopic peripheral blood cell images for development of automatic "
             "recognition systems, Data in Brief 30 (2020) 105474; doi:10.17632/snkd93bnjr.1")
_WBCATT_CITE = "Tsutsui S., Pang W., Wen B., WBCAtt: a white blood cell dataset annotated with attributes, NeurIPS 2023"
_RAABIN_CITE = ("Kouzehkanan Z. M. et al., A large dataset of white blood cells containing cell locations and types, "
                "along with segmented nuclei and cytoplasm, Scientific Reports 12, 1123 (2022); "
                "doi:10.1038/s41598-021-04426-x")
_LISC_CITE = ("Rezatofighi S. H., Soltanian-Zadeh H., Automatic recognition of five types of white blood cells in "
              "peripheral blood, Computerized Medical Imaging and Graphics 35 (2011) 333-343")
_ZHENG_CITE = ("Zheng X. et al., Fast and robust segmentation of white blood cell images by self-supervised "
               "learning, Micron 107 (2018) 55-71")
_SHARED = "It ships with the project's data bundle (wbc-data); point --data-root or WBCBENCH_DATA at it."
_RAABIN_DL = ("Download the double-labelled cropped cells 'Train', 'TestA' and 'TestB' from "
              "https://raabindata.com/free-data/ and unzip them into <data-root>/raabin/ so that "
              "<data-root>/raabin/Train/Neutrophil/... exists (the paper's ./data/RaabinWBC/ also works, as "
              "<data-root>/RaabinWBC/).")
_LISC_PAPER_DL = ("The paper's LISC crops: download LISC from https://drive.google.com/file/d/"
                  "1gknVrSs1CRy8PoIh1HXiGu-1ObH3cQ9S (via github.com/nimaadmed/WBC_Feature), then sort "
                  "Train/ and Test/ into class folders with Train.json/Test.json as the paper's "
                  "scripts/organize_lisc.py does (1 Neutrophil, 2 Lymphocyte, 3 Monocyte, 4 Eosinophil, "
                  "5 Basophil), into <data-root>/lisc-paper/<Class>/ (or <data-root>/LISCCropped/).")

# WBCAtt split class counts (B/E/L/M/N), counted from splits/pbc_wbcatt_*.csv; they sum to the PBC table.
_SPLITS = {"train": _counts(744, 1876, 736, 829, 1984), "val": _counts(125, 314, 111, 146, 334),
           "test": _counts(349, 927, 367, 445, 1011)}

DATASETS: dict[str, DatasetSpec] = {}


def _register(spec: DatasetSpec) -> None:
    if spec.expected_counts is not None:
        assert sum(spec.expected_counts.values()) == spec.expected_total, spec.name
    DATASETS[spec.name] = spec


_register(DatasetSpec(
    "pbc", "Hospital Clinic Barcelona, CellaVision DM96", "PBC normal peripheral blood cells, 5 WBC classes "
    "(all 10,298 images; Neutrophil holds segmented, band and unlabelled-stage neutrophils)",
    _PBC_CITE, "CC-BY-4.0", "https://data.mendeley.com/datasets/snkd93bnjr/1", _SHARED, ("pbc",),
    _counts(1218, 3117, 1214, 1420, 3329), 10298, _manifest_loader("pbc", "pbc")))
for _s in ("train", "val", "test"):
    _register(DatasetSpec(
        f"pbc:{_s}", "Hospital Clinic Barcelona, CellaVision DM96", f"PBC, WBCAtt official {_s} split",
        f"{_PBC_CITE}; split: {_WBCATT_CITE}", "CC-BY-4.0 (images), MIT (split)",
        "https://github.com/apple2373/wbcatt", _SHARED, ("pbc", "splits"),
        _SPLITS[_s], sum(_SPLITS[_s].values()), _split_loader(_s)))
_register(DatasetSpec(
    "lisc", "Tehran, Axioskop 40 + Sony SSCDC50AP", "LISC, cell-centred 224x224 crops from a public "
    "re-processing (not the paper's exact crops; several crops may show the same cell)", _LISC_CITE,
    "MIT (crop repository); LISC terms apply", "https://github.com/BTrDung/approach-to-segmentation-and-"
    "classification-from-leukocyte-images-to-count-blood-cells", _SHARED, ("lisc",),
    _counts(65, 38, 74, 60, 73), 310, _manifest_loader("lisc", "lisc")))
_register(DatasetSpec(
    "bccd", "BCCD smears (Kaggle blood-cells)", "BCCD single-cell crops, cleaned; the "
    "paper's BCCD test set (59% Neutrophil)", "BCCD dataset; cleaned crops: github.com/apple2373/BCCD", "MIT",
    "https://github.com/apple2373/BCCD", _SHARED, ("bccd",),
    _counts(3, 88, 33, 20, 207), 351, _manifest_loader("bccd", "bccd")))
_register(DatasetSpec(
    "jtsc", "Jiangxi Tecom, Motic Moticam Pro 252A + N800-D", "Zheng et al. dataset 1, 120x120, yellow "
    "background; labels by the dataset authors, one Basophil, one duplicated image", _ZHENG_CITE, "GPL-3.0",
    "https://github.com/zxaoyou/segmentation_WBC", _SHARED, ("jtsc",),
    _counts(1, 22, 53, 48, 176), 300, _manifest_loader("jtsc", "jtsc")))
_register(DatasetSpec(
    "cellavision", "CellaVision blog images", "Zheng et al. dataset 2, 300x300; labels by the dataset authors",
    _ZHENG_CITE, "GPL-3.0", "https://github.com/zxaoyou/segmentation_WBC", _SHARED, ("cellavision",),
    _counts(3, 12, 37, 15, 33), 100, _manifest_loader("cellavision", "cellavision")))
# Raabin-WBC double-labelled crops (Kouzehkanan et al. 2022): Train + TestA per class sum to the paper's
# double-labelled totals (N 8891, L 3461, M 795, E 1066, B 301). TestB (another imaging setup) lacks some
# classes; only its total is checked because its per-class breakdown is not recorded here.
_register(DatasetSpec(
    "raabin:train", "Raabin-WBC (Tehran), Train/TestA imaging setups", "Raabin-WBC Train (the paper's "
    "training set)", _RAABIN_CITE, "free for research (see raabindata.com)", "https://raabindata.com/free-data/",
    _RAABIN_DL, ("raabin/Train", "RaabinWBC/Train"), _counts(212, 744, 2427, 561, 6231), 10175,
    _folder_loader("raabin:train")))
_register(DatasetSpec(
    "raabin:testA", "Raabin-WBC (Tehran), Train/TestA imaging setups", "Raabin-WBC TestA (in-domain test)",
    _RAABIN_CITE, "free for research (see raabindata.com)", "https://raabindata.com/free-data/", _RAABIN_DL,
    ("raabin/TestA", "RaabinWBC/TestA"), _counts(89, 322, 1034, 234, 2660), 4339, _folder_loader("raabin:testA")))
_register(DatasetSpec(
    "raabin:testB", "Raabin-WBC (Tehran), a different imaging setup", "Raabin-WBC TestB (domain shift within "
    "Raabin; some classes absent)", _RAABIN_CITE, "free for research (see raabindata.com)",
    "https://raabindata.com/free-data/", _RAABIN_DL, ("raabin/TestB", "RaabinWBC/TestB"), None, 2119,
    _folder_loader("raabin:testB")))
_register(DatasetSpec(
    "lisc-paper", "Tehran, Axioskop 40 + Sony SSCDC50AP", "LISC crops exactly as the paper used them "
    "(WBC_Feature release)", _LISC_CITE, "LISC terms apply", "https://github.com/nimaadmed/WBC_Feature",
    _LISC_PAPER_DL, ("lisc-paper", "LISCCropped"), None, None, _folder_loader("lisc-paper")))


def _looks_like_path(s: str) -> bool:
    return os.sep in s or "/" in s or s.startswith((".", "~")) or Path(s).expanduser().exists()


def get_dataset(name_or_path: str | os.PathLike, data_root: str | os.PathLike | None = None, *,
                check_files: bool = True) -> Dataset:
    """A registry name (`pbc:train`, `raabin:testB`, ...) or a path: a folder with a manifest.csv is read from
    it, any other folder as an ImageFolder (a user's own test images; classes may be missing)."""
    s = os.fspath(name_or_path)
    if s in DATASETS:
        return DATASETS[s].load(_data_root(data_root), check_files)
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


# ---------------------------------------------------------------------------------------------------------
# Checks


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in 1 MiB blocks (weights files run to half a gigabyte)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_file(path: Path, md5: str | None) -> str | None:
    """None if fine, else why not. With an md5 the bytes are authoritative; without one the image is decoded
    in full, since a header check passes truncated JPEGs."""
    if not os.path.isfile(path):
        return "missing"
    try:
        if md5 is not None:
            got = file_digest(path)
            return None if got == md5 else f"md5 {got} != manifest {md5}"
        from PIL import Image, ImageFile
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
    one, else a full decode). The report names every bad file; `ok` is False if anything differs.
    With no name: a list of reports, one per registered dataset; those not present here get
    `{"name", "available": False, "ok": None, "problem"}` instead of failing the whole check."""
    if name is None:
        root = _data_root(data_root)
        reports = []
        for n, spec in DATASETS.items():
            try:
                spec.load(root, check_files=False)
            except WbcError as e:
                reports.append({"name": n, "available": False, "ok": None, "problem": str(e)})
                continue
            reports.append(verify(n, root))
        return reports
    ds = get_dataset(name, data_root, check_files=False)
    spec = DATASETS.get(name)
    counts = ds.class_counts()
    expected = spec.expected_counts if spec else None
    expected_total = spec.expected_total if spec else None
    count_mismatch = {c: {"found": counts[c], "expected": expected[c]}
                      for c in CLASSES if expected is not None and counts[c] != expected[c]}
    bad_files = []
    for rel, m in zip(ds.paths, ds.md5s):
        why = _check_file(ds.root / rel, m)
        if why:
            bad_files.append({"path": str(ds.root / rel), "problem": why})
    total_ok = expected_total is None or len(ds) == expected_total
    return {
        "name": ds.name, "available": True, "root": str(ds.root), "n": len(ds), "expected_n": expected_total,
        "class_counts": counts, "expected_counts": expected, "count_mismatch": count_mismatch,
        "bad_files": bad_files, "checked_md5": sum(m is not None for m in ds.md5s),
        "checked_decode": sum(m is None for m in ds.md5s),
        "ok": total_ok and not count_mismatch and not bad_files,
    }


def list_datasets(data_root: str | os.PathLike | None = None):
    """One row per registered dataset: expected counts (from the registry) and whether it loads here.
    `available` says `yes`, `no`, or `yes (N images, registry says M: run verify)`."""
    import pandas as pd

    root = _data_root(data_root, must_exist=False)
    rows = []
    for spec in DATASETS.values():
        try:
            ds = spec.load(root) if root.is_dir() else None
        except WbcError:
            ds = None
        if ds is None:
            available = "no"
        elif ((spec.expected_counts is not None and ds.class_counts() != spec.expected_counts)
              or (spec.expected_total is not None and len(ds) != spec.expected_total)):
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
