"""Lazy public names for a package's `__init__`, so that importing the package loads nothing heavy (torch)
until a name is used (PEP 562)."""
from __future__ import annotations

import importlib
from typing import Callable


def lazy_api(package: str, api: dict[str, str], namespace: dict) -> tuple[Callable, Callable]:
    """(`__getattr__`, `__dir__`) for `package`: `api` maps each public name to the module that defines it;
    a name is imported on first use and kept in `namespace` (the package's globals())."""
    def __getattr__(name: str):
        if name in api:
            value = getattr(importlib.import_module(api[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted({*api, *(n for n in namespace if not n.startswith("_"))} - {"annotations", "lazy_api"})
    return __getattr__, __dir__
