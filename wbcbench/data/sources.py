"""The named WBC datasets as data: what each is, where it comes from, how to get it, what it must contain.

One registry, `DATASETS`: `datasets.get_dataset` reads a name's files as its `kind` says, and `verify` and the
tests compare the data on disk against `expected_counts`, so a partial download or a changed mirror is caught,
not trained on. Nothing here touches the disk.
"""
from __future__ import annotations

from dataclasses import dataclass

from wbcbench.core.classes import CLASSES

KINDS = ("manifest", "pbc-split", "folder")


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
    kind: str  # "manifest": <root>/<location[0]>/manifest.csv; "pbc-split": a WBCAtt split of pbc;
    #            "folder": the first existing location, read as an ImageFolder (lists only what exists)

    def count_mismatch(self, counts: dict[str, int]) -> dict[str, dict[str, int]]:
        """{class: {"found", "expected"}} for each class whose count in `counts` (every class, as
        Dataset.class_counts gives them) differs from the registry's; {} where it has no breakdown."""
        if self.expected_counts is None:
            return {}
        return {c: {"found": counts[c], "expected": self.expected_counts[c]}
                for c in CLASSES if counts[c] != self.expected_counts[c]}

    def total_ok(self, n: int) -> bool:
        """Whether `n` images is the registry's total (always, where it records none)."""
        return self.expected_total is None or n == self.expected_total


def _counts(b, e, l, m, n) -> dict[str, int]:  # noqa: E741 - the five class initials
    return dict(zip(CLASSES, (b, e, l, m, n)))


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
    assert spec.kind in KINDS, spec
    if spec.expected_counts is not None:
        assert sum(spec.expected_counts.values()) == spec.expected_total, spec.name
    DATASETS[spec.name] = spec


_register(DatasetSpec(
    "pbc", "Hospital Clinic Barcelona, CellaVision DM96", "PBC normal peripheral blood cells, 5 WBC classes "
    "(all 10,298 images; Neutrophil holds segmented, band and unlabelled-stage neutrophils)",
    _PBC_CITE, "CC-BY-4.0", "https://data.mendeley.com/datasets/snkd93bnjr/1", _SHARED, ("pbc",),
    _counts(1218, 3117, 1214, 1420, 3329), 10298, "manifest"))
for _s in ("train", "val", "test"):
    _register(DatasetSpec(
        f"pbc:{_s}", "Hospital Clinic Barcelona, CellaVision DM96", f"PBC, WBCAtt official {_s} split",
        f"{_PBC_CITE}; split: {_WBCATT_CITE}", "CC-BY-4.0 (images), MIT (split)",
        "https://github.com/apple2373/wbcatt", _SHARED, ("pbc", "splits"),
        _SPLITS[_s], sum(_SPLITS[_s].values()), "pbc-split"))
_register(DatasetSpec(
    "lisc", "Tehran, Axioskop 40 + Sony SSCDC50AP", "LISC, cell-centred 224x224 crops from a public "
    "re-processing (not the paper's exact crops; several crops may show the same cell)", _LISC_CITE,
    "MIT (crop repository); LISC terms apply", "https://github.com/BTrDung/approach-to-segmentation-and-"
    "classification-from-leukocyte-images-to-count-blood-cells", _SHARED, ("lisc",),
    _counts(65, 38, 74, 60, 73), 310, "manifest"))
_register(DatasetSpec(
    "bccd", "BCCD smears (Kaggle blood-cells)", "BCCD single-cell crops, cleaned; the "
    "paper's BCCD test set (59% Neutrophil)", "BCCD dataset; cleaned crops: github.com/apple2373/BCCD", "MIT",
    "https://github.com/apple2373/BCCD", _SHARED, ("bccd",),
    _counts(3, 88, 33, 20, 207), 351, "manifest"))
_register(DatasetSpec(
    "jtsc", "Jiangxi Tecom, Motic Moticam Pro 252A + N800-D", "Zheng et al. dataset 1, 120x120, yellow "
    "background; labels by the dataset authors, one Basophil, one duplicated image", _ZHENG_CITE, "GPL-3.0",
    "https://github.com/zxaoyou/segmentation_WBC", _SHARED, ("jtsc",),
    _counts(1, 22, 53, 48, 176), 300, "manifest"))
_register(DatasetSpec(
    "cellavision", "CellaVision blog images", "Zheng et al. dataset 2, 300x300; labels by the dataset authors",
    _ZHENG_CITE, "GPL-3.0", "https://github.com/zxaoyou/segmentation_WBC", _SHARED, ("cellavision",),
    _counts(3, 12, 37, 15, 33), 100, "manifest"))
# Raabin-WBC double-labelled crops (Kouzehkanan et al. 2022): Train + TestA per class sum to the paper's
# double-labelled totals (N 8891, L 3461, M 795, E 1066, B 301). TestB (another imaging setup) lacks some
# classes; only its total is checked because its per-class breakdown is not recorded here.
_register(DatasetSpec(
    "raabin:train", "Raabin-WBC (Tehran), Train/TestA imaging setups", "Raabin-WBC Train (the paper's "
    "training set)", _RAABIN_CITE, "free for research (see raabindata.com)", "https://raabindata.com/free-data/",
    _RAABIN_DL, ("raabin/Train", "RaabinWBC/Train"), _counts(212, 744, 2427, 561, 6231), 10175,
    "folder"))
_register(DatasetSpec(
    "raabin:testA", "Raabin-WBC (Tehran), Train/TestA imaging setups", "Raabin-WBC TestA (in-domain test)",
    _RAABIN_CITE, "free for research (see raabindata.com)", "https://raabindata.com/free-data/", _RAABIN_DL,
    ("raabin/TestA", "RaabinWBC/TestA"), _counts(89, 322, 1034, 234, 2660), 4339, "folder"))
_register(DatasetSpec(
    "raabin:testB", "Raabin-WBC (Tehran), a different imaging setup", "Raabin-WBC TestB (domain shift within "
    "Raabin; some classes absent)", _RAABIN_CITE, "free for research (see raabindata.com)",
    "https://raabindata.com/free-data/", _RAABIN_DL, ("raabin/TestB", "RaabinWBC/TestB"), None, 2119,
    "folder"))
_register(DatasetSpec(
    "lisc-paper", "Tehran, Axioskop 40 + Sony SSCDC50AP", "LISC crops exactly as the paper used them "
    "(WBC_Feature release)", _LISC_CITE, "LISC terms apply", "https://github.com/nimaadmed/WBC_Feature",
    _LISC_PAPER_DL, ("lisc-paper", "LISCCropped"), None, None, "folder"))
