"""Exact duplicates across the PBC splits (wbcbench.data.duplicates), on the real manifests: the images every
evaluation leaves out are exactly the training duplicates and the cross-label pair, each checked byte for byte."""
from __future__ import annotations

import hashlib

import pytest

from wbcbench.data import duplicates

pytestmark = pytest.mark.needs_data


def test_the_left_out_images_are_the_training_duplicates_and_the_cross_label_pair(data_root):
    ex = duplicates.excluded(data_root)
    assert sorted(zip(ex["split"], ex["path"])) == [
        ("pbc:test", "Basophil/BA_786369.jpg"), ("pbc:test", "Basophil/BA_80990.jpg"),
        ("pbc:test", "Eosinophil/EO_225902.jpg"), ("pbc:test", "Eosinophil/EO_890163.jpg"),
        ("pbc:test", "Monocyte/MO_145357.jpg"), ("pbc:val", "Neutrophil/BNE_191112.jpg")]
    assert duplicates.excluded_paths("pbc:val", data_root) == {"Neutrophil/BNE_191112.jpg"}
    assert duplicates.excluded_paths("lisc", data_root) == frozenset()


def test_every_group_is_byte_identical_on_disk(data_root):
    groups = duplicates.duplicate_groups(data_root)
    assert groups["group"].nunique() == 14     # the data README's 14 pairs
    for _, g in groups.groupby("group"):
        digests = {hashlib.md5((data_root / "pbc" / p).read_bytes()).hexdigest() for p in g["path"]}
        assert len(digests) == 1 and digests == set(g["md5"])
