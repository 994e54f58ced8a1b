"""Datasets: registry counts against the real data, ImageFolder paths, Raabin-shaped layouts, bad input."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from realdata import image_folder, real_files

from wbcbench.core.classes import CLASSES
from wbcbench.core.errors import WbcError
from wbcbench.data import datasets as D
from wbcbench.data import verify as V
from wbcbench.data.sources import DATASETS, KINDS

BUNDLED = ("pbc", "pbc:train", "pbc:val", "pbc:test", "lisc", "bccd", "jtsc", "cellavision")


def test_registry_names_and_metadata():
    expected = {"pbc", "pbc:train", "pbc:val", "pbc:test", "lisc", "bccd", "jtsc", "cellavision",
                "raabin:train", "raabin:testA", "raabin:testB", "lisc-paper"}
    assert set(DATASETS) == expected
    for spec in DATASETS.values():
        assert spec.licence and spec.citation and spec.download and spec.url
        if spec.expected_counts is not None:
            assert list(spec.expected_counts) == list(CLASSES)
            assert sum(spec.expected_counts.values()) == spec.expected_total
    assert [DATASETS[f"raabin:{s}"].expected_total for s in ("train", "testA", "testB")] == [10175, 4339, 2119]
    split_sum = {c: sum(DATASETS[f"pbc:{s}"].expected_counts[c] for s in ("train", "val", "test"))
                 for c in CLASSES}
    assert split_sum == DATASETS["pbc"].expected_counts
    assert {spec.kind for spec in DATASETS.values()} == set(KINDS)
    assert D.DATASETS is DATASETS  # one registry, read by datasets


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_counts_match_registry(data_root, name):
    spec = DATASETS[name]
    try:
        ds = D.get_dataset(name, data_root)
    except WbcError as e:
        if name in BUNDLED:
            raise
        assert "not found" in str(e) and spec.location[0] in str(e) and "download" in str(e).lower()
        pytest.skip(f"{name} is not in this data bundle")
    if spec.expected_counts is not None:
        assert ds.class_counts() == spec.expected_counts
    if spec.expected_total is not None:
        assert len(ds) == spec.expected_total
    assert ds.labels.dtype == np.int64 and len(ds.md5s) == len(ds)


def test_pbc_splits_partition_pbc(data_root):
    pbc = D.get_dataset("pbc", data_root)
    splits = {s: D.get_dataset(f"pbc:{s}", data_root) for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [6169, 1030, 3099]
    sets = [set(d.paths) for d in splits.values()]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert set().union(*sets) == set(pbc.paths)
    # the byte-identical cross-class pair keeps the manifest's two labels
    by_path = dict(zip(pbc.paths, pbc.labels.tolist()))
    assert by_path["Eosinophil/EO_225902.jpg"] == CLASSES.index("Eosinophil")
    assert by_path["Neutrophil/BNE_191112.jpg"] == CLASSES.index("Neutrophil")
    md5 = dict(zip(pbc.paths, pbc.md5s))
    assert md5["Eosinophil/EO_225902.jpg"] == md5["Neutrophil/BNE_191112.jpg"]


def test_labels_follow_canonical_class_index(data_root):
    for name in ("pbc", "bccd", "jtsc"):
        ds = D.get_dataset(name, data_root)
        folder_class = [CLASSES.index(p.split("/")[0]) for p in ds.paths]
        assert ds.labels.tolist() == folder_class
    assert D.get_dataset("jtsc", data_root).class_counts()["Basophil"] == 1


def test_image_folder_path_with_missing_classes(tmp_path, data_root):
    root = image_folder(tmp_path / "mine", {
        "neutrophils": real_files(data_root, "bccd", "Neutrophil", 4),
        "LYMPHOCYTE": real_files(data_root, "bccd", "Lymphocyte", 2),
    })
    (root / "README.txt").write_text("not a class folder; ignored")
    (root / "neutrophils" / "notes.txt").write_text("not an image; ignored")
    ds = D.get_dataset(str(root))
    assert ds.class_counts() == {"Basophil": 0, "Eosinophil": 0, "Lymphocyte": 2, "Monocyte": 0, "Neutrophil": 4}
    assert all(f.is_file() for f in ds.files())
    assert set(ds.md5s) == {None}
    assert D.get_dataset(root).paths == ds.paths  # a Path works as well as a str


def test_path_with_manifest_is_read_from_manifest(data_root):
    ds = D.get_dataset(str(data_root / "cellavision"))
    assert ds.class_counts() == DATASETS["cellavision"].expected_counts
    assert ds.manifest_hash() == D.get_dataset("cellavision", data_root).manifest_hash()


def _raabin_root(tmp_path: Path, data_root: Path, top: str = "raabin") -> Path:
    root = tmp_path / "root"
    for split, k, classes in (("Train", 3, CLASSES), ("TestA", 2, CLASSES),
                              ("TestB", 2, ("Eosinophil", "Lymphocyte", "Neutrophil"))):
        image_folder(root / top / split, {c: real_files(data_root, "pbc", c, k) for c in classes})
    return root


def test_raabin_shaped_folder_loads(tmp_path, data_root):
    root = _raabin_root(tmp_path, data_root)
    train = D.get_dataset("raabin:train", root)
    assert train.name == "raabin:train" and train.class_counts() == dict.fromkeys(CLASSES, 3)
    assert D.get_dataset("raabin:testA", root).class_counts() == dict.fromkeys(CLASSES, 2)
    test_b = D.get_dataset("raabin:testB", root).class_counts()
    assert test_b == {"Basophil": 0, "Eosinophil": 2, "Lymphocyte": 2, "Monocyte": 0, "Neutrophil": 2}
    report = V.verify("raabin:train", root)  # a 15-image 'Train' is not the published one
    assert not report["ok"] and report["count_mismatch"]["Neutrophil"] == {"found": 3, "expected": 6231}
    assert report["bad_files"] == [] and report["checked_decode"] == 15
    everything = {r["name"]: r for r in V.verify(None, root)}
    assert set(everything) == set(DATASETS)
    assert everything["pbc"]["available"] is False and "pbc" in everything["pbc"]["problem"]
    assert everything["raabin:testB"]["ok"] is False  # 6 images, registry says 2119
    assert V.describe(everything["pbc"]) == "pbc: not available" and everything["pbc"]["checked"] == 0
    assert V.describe(everything["raabin:testB"]).endswith("6 images, registry says 2119")
    assert everything["raabin:testA"]["checked"] == 10
    listing = D.list_datasets(root).set_index("name")
    assert listing.loc["raabin:train", "available"].startswith("yes (15 images")
    assert listing.loc["pbc", "available"] == "no"


def test_paper_layout_aliases(tmp_path, data_root):
    root = _raabin_root(tmp_path, data_root, top="RaabinWBC")
    assert len(D.get_dataset("raabin:testA", root)) == 10
    image_folder(root / "LISCCropped", {"Basophil": real_files(data_root, "lisc", "Basophil", 2)})
    assert D.get_dataset("lisc-paper", root).class_counts()["Basophil"] == 2


def test_verify_names_bad_files(tmp_path, data_root):
    report = V.verify("jtsc", data_root)
    assert report["ok"] and report["checked_md5"] == 300 and report["bad_files"] == []
    assert report["checked"] == 300 and V.describe(report) == "jtsc: ok, 300 images checked (300 by md5, 0 decoded)"
    # a manifest dataset whose file no longer matches its md5, and an unmanifested truncated JPEG
    src = real_files(data_root, "bccd", "Eosinophil", 2)
    d = tmp_path / "tampered"
    (d / "Eosinophil").mkdir(parents=True)
    shutil.copy(src[0], d / "Eosinophil" / "a.jpg")
    shutil.copy(src[1], d / "Eosinophil" / "b.jpg")
    (d / "manifest.csv").write_text("path,label,md5,source\n"
                                    "Eosinophil/a.jpg,Eosinophil,0123456789abcdef0123456789abcdef,x\n"
                                    f"Eosinophil/b.jpg,Eosinophil,{V.file_digest(src[1])},x\n")
    r = V.verify(str(d))
    assert not r["ok"] and [b["path"] for b in r["bad_files"]] == [str(d / "Eosinophil" / "a.jpg")]
    assert V.describe(r) == f"{d}: FAILED, 2 images checked (2 by md5, 0 decoded): 1 bad file(s)"
    (d / "Eosinophil" / "b.jpg").unlink()  # verify lists missing files too, instead of stopping at them
    r = V.verify(str(d))
    assert [(Path(b["path"]).name, b["problem"]) for b in r["bad_files"]][1] == ("b.jpg", "missing")
    e = tmp_path / "cut"
    (e / "Eosinophil").mkdir(parents=True)
    data = src[0].read_bytes()
    (e / "Eosinophil" / "cut.jpg").write_bytes(data[: len(data) // 2])
    shutil.copy(src[1], e / "Eosinophil" / "whole.jpg")
    r = V.verify(str(e))
    assert [Path(b["path"]).name for b in r["bad_files"]] == ["cut.jpg"] and not r["ok"]


def test_manifest_hash_tracks_changes(tmp_path, data_root):
    root = image_folder(tmp_path / "f", {"Monocyte": real_files(data_root, "bccd", "Monocyte", 3)})
    h1 = D.get_dataset(str(root)).manifest_hash()
    assert D.get_dataset(str(root)).manifest_hash() == h1
    (root / "Monocyte" / "extra.jpg").symlink_to(real_files(data_root, "bccd", "Monocyte", 4)[-1])
    ds2 = D.get_dataset(str(root))
    assert len(ds2) == 4 and ds2.manifest_hash() != h1
    assert ds2.subset([0, 1]).manifest_hash() != ds2.manifest_hash()


def test_subset_keeps_alignment(data_root):
    ds = D.get_dataset("bccd", data_root)
    sub = ds.subset([5, 0, 300], name="three")
    assert sub.name == "three" and len(sub) == 3
    assert sub.paths == (ds.paths[5], ds.paths[0], ds.paths[300])
    assert sub.labels.tolist() == [ds.labels[5], ds.labels[0], ds.labels[300]]
    assert sub.md5s == (ds.md5s[5], ds.md5s[0], ds.md5s[300])
    with pytest.raises(ValueError):
        sub.labels[0] = 1


def test_balanced_indices(data_root):
    labels = D.get_dataset("bccd", data_root).labels
    a = D.balanced_indices(labels, 10, seed=0)
    assert np.array_equal(a, D.balanced_indices(labels, 10, seed=0))
    assert not np.array_equal(a, D.balanced_indices(labels, 10, seed=1))
    assert np.bincount(labels[a], minlength=5).tolist() == [3, 10, 10, 10, 10]  # only 3 Basophils exist
    assert np.all(np.diff(a) > 0)
    # one class's draw does not depend on which other classes are present
    keep = labels != 0
    b = np.flatnonzero(keep)[D.balanced_indices(labels[keep], 10, seed=0)]
    assert set(b) == set(a[labels[a] != 0])
    with pytest.raises(WbcError, match="per_class"):
        D.balanced_indices(labels, 0)


def test_list_datasets_columns(data_root):
    df = D.list_datasets(data_root)
    assert list(df.columns) == ["name", "domain", "n_images", *CLASSES, "available", "licence"]
    got = df.set_index("name")
    assert got.loc["pbc", "n_images"] == 10298 and got.loc["bccd", "Neutrophil"] == 207
    assert all(got.loc[n, "available"] == "yes" for n in BUNDLED)


def test_parse_test_sets():
    assert D.parse_test_sets("pbc:test, lisc") == ["pbc:test", "lisc"]
    assert D.parse_test_sets(" pbc:test,,lisc, pbc:test ,") == ["pbc:test", "lisc"]  # order kept, once each
    assert D.parse_test_sets(["bccd ", "jtsc", "bccd"]) == ["bccd", "jtsc"]
    assert D.parse_test_sets(("cellavision",)) == ["cellavision"]
    assert D.parse_test_sets([Path("some/folder")]) == ["some/folder"]
    for empty in ("", " , ", [], [" "], None):
        with pytest.raises(WbcError, match="no test set given"):
            D.parse_test_sets(empty)
    with pytest.raises(WbcError, match="test set 3 is not a name"):
        D.parse_test_sets(["pbc:test", 3])


# --- bad input: one WbcError naming the culprit ----------------------------------------------------------


def test_unknown_classimage_folder(tmp_path, data_root):
    root = image_folder(tmp_path / "f", {"Neutrophil": real_files(data_root, "bccd", "Neutrophil", 1),
                                    "Platelet": real_files(data_root, "bccd", "Monocyte", 1)})
    with pytest.raises(WbcError, match="'Platelet'"):
        D.get_dataset(str(root))


def test_empty_dataset(tmp_path):
    (tmp_path / "empty" / "Neutrophil").mkdir(parents=True)
    with pytest.raises(WbcError, match=f"no images found in {tmp_path / 'empty'}"):
        D.get_dataset(str(tmp_path / "empty"))


def test_missing_folder_and_unknown_name(tmp_path):
    with pytest.raises(WbcError, match="nowhere"):
        D.get_dataset(str(tmp_path / "nowhere"))
    with pytest.raises(WbcError, match="did you mean 'pbc'"):
        D.get_dataset("pcb")


def test_missing_data_root(tmp_path):
    with pytest.raises(WbcError, match=str(tmp_path / "no-data")):
        D.get_dataset("bccd", tmp_path / "no-data")


def _pbc_root_with_split(tmp_path: Path, data_root: Path, text: str) -> Path:
    root = tmp_path / "root"
    (root / "splits").mkdir(parents=True)
    (root / "pbc").symlink_to(data_root / "pbc")
    (root / "splits" / "pbc_wbcatt_val.csv").write_text(text)
    return root


def test_split_csv_naming_missing_file(tmp_path, data_root):
    root = _pbc_root_with_split(tmp_path, data_root, "img_name,label\nBA_100102.jpg,Basophil\nBA_999.jpg,Basophil\n")
    with pytest.raises(WbcError, match="BA_999.jpg") as e:
        D.get_dataset("pbc:val", root)
    assert "pbc_wbcatt_val.csv" in str(e.value)


def test_split_csv_with_wrong_columns(tmp_path, data_root):
    root = _pbc_root_with_split(tmp_path, data_root, "file,label\nBA_100102.jpg,Basophil\n")
    with pytest.raises(WbcError, match="pbc_wbcatt_val.csv lacks column.*img_name"):
        D.get_dataset("pbc:val", root)


def test_manifest_naming_missing_file(tmp_path, data_root):
    d = tmp_path / "m"
    d.mkdir()
    (d / "manifest.csv").write_text("path,label,md5,source\nNeutrophil/gone.jpg,Neutrophil,,x\n")
    with pytest.raises(WbcError, match="Neutrophil/gone.jpg"):
        D.get_dataset(str(d))
    (d / "manifest.csv").write_text("path,label,md5,source\nNeutrophil/gone.jpg,Platelet,,x\n")
    with pytest.raises(WbcError, match="'Platelet' in .*manifest.csv"):
        D.get_dataset(str(d))


def test_symlink_loop(tmp_path, data_root):
    root = image_folder(tmp_path / "f", {"Neutrophil": real_files(data_root, "bccd", "Neutrophil", 1)})
    (root / "Neutrophil" / "again").symlink_to(root)
    with pytest.raises(WbcError, match="symlink loop.*again"):
        D.get_dataset(str(root))
    os.unlink(root / "Neutrophil" / "again")
    (root / "Neutrophil" / "self.jpg").symlink_to(root / "Neutrophil" / "self.jpg")
    with pytest.raises(WbcError, match="self.jpg"):
        D.get_dataset(str(root))
