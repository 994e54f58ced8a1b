"""A run's record as arguments: config.json -> the `train.run()` keyword arguments that rebuild it, which the
rerun commands, `reproduce` and the runs appendix all use."""
from __future__ import annotations

from wbcbench.core.profiles import PROFILES, get_profile
from wbcbench.runs.rundir import adapt_methods


def train_args(config: dict) -> dict:
    """The `train.run()` keyword arguments that rebuild the run a config.json records: profile settings
    that differ from the named profile become overrides (None included: train_subset_per_class=None means
    every image). `weights` is the recorded file name (identity 2) or path (legacy records)."""
    base = get_profile(config["profile"]) if config.get("profile") in PROFILES else {}  # defaults filled in
    overrides = {k: v for k, v in (config.get("hparams") or {}).items() if k in base and base[k] != v}
    return dict(model=config.get("model"), profile=config.get("profile"), seed=config.get("seed"),
                train_set=config.get("train"), test_sets=list(config.get("test") or []),
                adapt=adapt_methods(config), weights=(config.get("model_kwargs") or {}).get("weights"), **overrides)
