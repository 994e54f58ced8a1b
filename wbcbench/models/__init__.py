"""The model registry (timm style: a decorator and a per-model config) and the networks behind it.

`wbcbench.models.create_model(name)` builds any registered network; `list_models()` names them."""
from wbcbench.models.registry import (
                                      IMAGENET_MEAN,
                                      IMAGENET_STD,
                                      MODELS,
                                      ModelConfig,
                                      count_params,
                                      create_model,
                                      describe_models,
                                      get_model_config,
                                      list_models,
                                      register_model,
)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "MODELS", "ModelConfig", "count_params", "create_model",
           "describe_models", "get_model_config", "list_models", "register_model"]
