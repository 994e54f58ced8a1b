"""The data facts the book's prose states are counted from the data, and agree with what the chapters count."""
from __future__ import annotations

import pytest

from wbcbench.data.datasets import get_dataset
from wbcbench.report import data_facts as F

pytestmark = pytest.mark.needs_data


def test_split_sizes_duplicates_and_shares(data_root):
    sizes = [int(n) for n in F.split_sizes(data_root).split(" / ")]
    assert sizes == [len(get_dataset(s, data_root)) for s in ("pbc:train", "pbc:val", "pbc:test")]
    sets, across = F.duplicates(data_root)
    assert sets >= 1 and 0 <= across <= sets
    assert across >= 1          # the Eosinophil file that equals a Neutrophil file
    ds = get_dataset("bccd", data_root)
    n = F.class_count("bccd", "Neutrophil", data_root)
    assert 0 < n < len(ds) and F.class_share("bccd", "Neutrophil", data_root) == f"{n / len(ds):.0%}"
