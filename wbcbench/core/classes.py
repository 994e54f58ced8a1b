"""The one canonical class order (the paper's) and the matching of folder names to it."""
from __future__ import annotations

import difflib

from wbcbench.core.errors import WbcError

#: The five classes in the one canonical order (alphabetical, as the paper's): class i is column i of a
#: network's (N, 5) logits (`wbcbench.evaluate_model`), label i of every dataset, and the order of the
#: `p_<class>` columns of `wbcbench predict` and `wbcbench score`.
CLASSES: tuple[str, ...] = ("Basophil", "Eosinophil", "Lymphocyte", "Monocyte", "Neutrophil")
NUM_CLASSES = len(CLASSES)


def _key(name: str) -> str:
    k = name.strip().lower()
    return k[:-1] if k.endswith("s") else k


_INDEX = {_key(c): i for i, c in enumerate(CLASSES)}


def class_index(name: str, where: str = "") -> int:
    """Index of a class-folder name, matched case-insensitively, singular or plural
    (`neutrophil`, `NEUTROPHILS` -> 4). Unknown names raise a WbcError naming the folder."""
    i = _INDEX.get(_key(name))
    if i is None:
        near = difflib.get_close_matches(name.capitalize(), CLASSES, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        loc = f" in {where}" if where else ""
        raise WbcError(f"unknown class folder {name!r}{loc}{hint}; expected one of {', '.join(CLASSES)}")
    return i
