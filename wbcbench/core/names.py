"""The names every layer shares, written once: the benchmark's test domains, the test-time methods, and how
an evaluation is labelled in folders and tables."""
from __future__ import annotations

import re

from wbcbench.core.errors import WbcError

#: The training domain's held-out test split, and the four bundled domains a model never saw in training.
IN_DOMAIN = "pbc:test"
SHIFTED_DOMAINS = ("lisc", "bccd", "jtsc", "cellavision")
#: The five bundled test domains, in table order: what `wbcbench train --test` and every grid default to.
BENCHMARK_DOMAINS = (IN_DOMAIN, *SHIFTED_DOMAINS)
#: Test domains in table order: in-domain first, then the paper's order; anything else alphabetically.
DOMAIN_ORDER = ("raabin:testA", "pbc:test", "pbc:val", "raabin:testB", "lisc-paper", "lisc", "bccd", "jtsc",
                "cellavision")

#: The evaluation without test-time adaptation; listed before the adapted ones.
STANDARD = "standard"
BN_METHODS = ("adabn", "batch_stats", "tent")   # need BatchNorm layers
STAIN_METHODS = ("macenko", "reinhard")         # any model
ADAPT_METHODS = BN_METHODS + STAIN_METHODS
#: How tables name each test-time method.
METHOD_NAMES = {"adabn": "AdaBN", "tent": "TENT", "batch_stats": "batch stats", "macenko": "Macenko",
                "reinhard": "Reinhard"}


def parse_adapt(value) -> list[str]:
    """Test-time methods from "adabn, batch_stats" or a list (None or "" for none; a legacy `adabn` flag's
    True/False for ["adabn"]/[]): stripped, de-duplicated, each one of ADAPT_METHODS, else a WbcError."""
    if isinstance(value, bool):
        return ["adabn"] if value else []
    parts = value.split(",") if isinstance(value, str) else list(value or ())
    out: list[str] = []
    for p in parts:
        name = p.strip() if isinstance(p, str) else p
        if name == "":
            continue
        if name not in ADAPT_METHODS:
            raise WbcError(f"unknown test-time method {name!r}; choose from {', '.join(ADAPT_METHODS)}")
        if name not in out:
            out.append(name)
    return out


def eval_dir_name(test_name: str, mode: str = STANDARD) -> str:
    """The folder of one evaluation under `eval/`: the test set's name with anything but letters, digits
    and `_.+-` replaced by `_` (no ':', which Windows forbids), then `@<method>` for a test-time method:
    `pbc_test`, `pbc_test@adabn`."""
    base = re.sub(r"[^A-Za-z0-9_.+-]+", "_", str(test_name).strip("/")).strip("._") or "test"
    return base if mode == STANDARD else f"{base}@{mode}"


def row_label(model: str, eval_mode: str) -> str:
    """'resnet18_bn', 'resnet18_bn + AdaBN', '... + TENT', '... + batch stats' (other methods by their name)."""
    return model if eval_mode == STANDARD else f"{model} + {METHOD_NAMES.get(eval_mode, eval_mode)}"


def ordered(values, order=DOMAIN_ORDER) -> list:
    """The distinct `values`: those in `order` first, in its order, then the others alphabetically."""
    order = list(order)
    return sorted(dict.fromkeys(values), key=lambda v: (order.index(v) if v in order else len(order), str(v)))
