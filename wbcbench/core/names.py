"""The names every layer shares, written once: the benchmark's test domains, the test-time methods, and how
an evaluation is labelled in folders and tables."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from wbcbench.core.errors import WbcError

#: The training domain's held-out test split, and the four bundled domains a model never saw in training.
IN_DOMAIN = "pbc:test"
SHIFTED_DOMAINS = ("lisc", "bccd", "jtsc", "cellavision")
#: The five bundled test domains, in table order: what `wbcbench train --test` and every grid default to.
BENCHMARK_DOMAINS = (IN_DOMAIN, *SHIFTED_DOMAINS)
#: Test domains in table order: in-domain first, then the paper's order; anything else alphabetically.
DOMAIN_ORDER = ("raabin:testA", "pbc:test", "pbc:val", "raabin:testB", "lisc-paper", "lisc", "bccd", "jtsc",
                "cellavision")
#: How prose names each bundled domain (tables keep the test-set names a user passes to --test).
DOMAIN_NAMES = {"pbc:test": "PBC (held-out test)", "pbc:val": "PBC (validation)", "lisc": "LISC", "bccd": "BCCD",
                "jtsc": "JTSC", "cellavision": "CellaVision", "raabin:testA": "Raabin-WBC Test-A",
                "raabin:testB": "Raabin-WBC Test-B", "lisc-paper": "the paper's LISC crops"}

#: The evaluation without test-time adaptation; listed before the adapted ones.
STANDARD = "standard"
BN_METHODS = ("adabn", "batch_stats", "tent")   # adapt the network: need BatchNorm statistics
STAIN_METHODS = ("macenko", "reinhard")         # each image to the training domain's stains, estimated per image
DOMAIN_STAIN_METHODS = ("macenko_domain", "reinhard_domain")  # the same, estimated once per domain
IMAGE_METHODS = STAIN_METHODS + DOMAIN_STAIN_METHODS + ("scale",)  # transform the images: any network
#: Methods compose with "+": image methods in order, then at most one BN method (`scale+adabn`).
ADAPT_METHODS = BN_METHODS + IMAGE_METHODS + ("scale+adabn",)
#: How tables name each test-time method.
METHOD_NAMES = {"adabn": "AdaBN", "tent": "TENT", "batch_stats": "batch stats", "macenko": "Macenko",
                "reinhard": "Reinhard", "macenko_domain": "Macenko per domain",
                "reinhard_domain": "Reinhard per domain", "scale": "rescaling"}


def method_parts(name: str) -> list[str]:
    """The steps of a test-time method: `scale+adabn` -> ['scale', 'adabn']; WbcError unless every part is a
    known method, image methods come first, and at most one BN method ends it."""
    parts = [p.strip() for p in str(name).split("+")]
    known = BN_METHODS + IMAGE_METHODS
    for p in parts:
        if p not in known:
            raise WbcError(f"unknown test-time method {p!r}; choose from {', '.join(ADAPT_METHODS)} "
                           "(image methods and one BN method last compose with '+')")
    if any(p in BN_METHODS for p in parts[:-1]) or len(set(parts)) < len(parts):
        raise WbcError(f"test-time method {name!r}: image methods first, then at most one BN method, none twice")
    return parts


def method_label(mode: str) -> str:
    """How tables name an evaluation mode: 'AdaBN', 'rescaling + AdaBN'."""
    return " + ".join(METHOD_NAMES.get(p, p) for p in str(mode).split("+"))


def parse_adapt(value) -> list[str]:
    """Test-time methods from "adabn, batch_stats" or a list (None or "" for none): stripped, de-duplicated,
    each one of ADAPT_METHODS, else a WbcError."""
    if value is not None and not isinstance(value, (str, list, tuple)):
        raise WbcError(f"test-time methods {value!r} must be names, e.g. \"adabn,tent\" (one of "
                       f"{', '.join(ADAPT_METHODS)})")
    parts = value.split(",") if isinstance(value, str) else list(value or ())
    out: list[str] = []
    for p in parts:
        name = p.strip() if isinstance(p, str) else p
        if name == "":
            continue
        method_parts(name)
        if name not in out:
            out.append(name)
    return out


def _portable(text: str) -> str:
    """`text` with anything but letters, digits and `_.+-` replaced by `_` (no ':', which Windows forbids)."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("._") or "test"


def _is_path(test_name: str) -> bool:
    """A test set given as a folder path rather than a registry name (`pbc:test`, `lisc-paper`)."""
    return "/" in test_name or "\\" in test_name or test_name.startswith((".", "~"))


def eval_dir_name(test_name: str, mode: str = STANDARD) -> str:
    """The folder of one evaluation under `eval/`, then `@<method>` for a test-time method. A registry name
    with anything but letters, digits and `_.+-` replaced by `_`: `pbc_test`, `pbc_test@adabn`. A folder
    path: its folder's name and a hash of its resolved path, `my_cells-1a2b3c4d`, so that two folders of
    the same name stay apart and a run folder never holds where this machine keeps the images."""
    name = str(test_name)
    if _is_path(name):
        folder = Path(name).expanduser().resolve()
        digest = hashlib.sha256(str(folder).encode()).hexdigest()[:8]
        base = f"{_portable(folder.name)}-{digest}"
    else:
        base = _portable(name)
    return base if mode == STANDARD else f"{base}@{mode}"


def row_label(model: str, eval_mode: str) -> str:
    """'resnet18_bn', 'resnet18_bn + AdaBN', '... + TENT', '... + batch stats' (other methods by their name)."""
    return model if eval_mode == STANDARD else f"{model} + {method_label(eval_mode)}"


def ordered(values, order=DOMAIN_ORDER) -> list:
    """The distinct `values`: those in `order` first, in its order, then the others alphabetically."""
    order = list(order)
    return sorted(dict.fromkeys(values), key=lambda v: (order.index(v) if v in order else len(order), str(v)))
