"""The model registry (timm style: a decorator and a per-model config) and the networks behind it.

`wbcbench.models.create_model(name)` builds any registered network; `list_models()` names them. The names'
facts (`catalog`) load without torch; building (`registry`) loads it, on first use."""
from __future__ import annotations

from wbcbench.core.lazy import lazy_api

_CATALOG = "wbcbench.models.catalog"
_REGISTRY = "wbcbench.models.registry"
#: public name -> the module that defines it
_API = {"IMAGENET_MEAN": _CATALOG, "IMAGENET_STD": _CATALOG, "MODELS": _CATALOG, "ModelConfig": _CATALOG,
        "get_model_config": _CATALOG, "list_models": _CATALOG,
        "count_params": _REGISTRY, "create_model": _REGISTRY, "describe_models": _REGISTRY,
        "register_model": _REGISTRY}
__all__ = list(_API)


__getattr__, __dir__ = lazy_api(__name__, _API, globals())
