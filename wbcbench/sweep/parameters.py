"""The training notebook's interface (notebooks/02_train_one_run.ipynb): its parameters and their check,
train.run's arguments made from them, and the shell commands that redo a run (papermill and CLI).

One schema serves all of them: the notebook parameters below, and the profile settings of
profiles.SETTINGS inside `overrides`, so the notebook, the sweep and the printed commands accept and
reject the same values.
"""
from __future__ import annotations

import json
import os
import shlex
from importlib import resources
from pathlib import Path

from wbcbench.core.errors import WbcError, unknown
from wbcbench.core.names import parse_adapt
from wbcbench.core.paths import REPO_ROOT, checkout
from wbcbench.core.profiles import PROFILES, check_seed, check_setting, get_profile, given, setting_args
from wbcbench.data.datasets import parse_test_sets

KERNEL = "python3"


def _training_notebook(name: str = "02_train_one_run.ipynb") -> Path:
    """The training notebook the sweep executes. Its one source, notebooks/02_train_one_run.ipynb (a book
    chapter too), is read in place when the package runs from a checkout (editable install, or a clone on
    sys.path); a built package ships it as the package data of wbcbench._notebooks (pyproject.toml)."""
    if (root := checkout()) is not None:
        return root / "notebooks" / name
    try:
        return Path(str(resources.files("wbcbench._notebooks") / name))
    except ModuleNotFoundError:  # built without it: the sweep names the missing file
        return Path(__file__).resolve().parents[1] / "_notebooks" / name


NOTEBOOK = _training_notebook()

# -------------------------------------------------------------------------------- notebook parameters
# The notebook's `parameters` cell, as (name, accepted types, description); the profile settings inside
# `overrides` are checked against profiles.SETTINGS. The notebook's first cell calls check_parameters(),
# so a wrong value fails there with a message naming it.
PARAMETERS = (
    ("model", (str,), "a registered model name (wbcbench models)"),
    ("profile", (str,), f"a training profile: {', '.join(PROFILES)}"),
    ("seed", (int,), "an integer"),
    ("train", (str,), "a dataset name or ImageFolder path"),
    ("test", (str, list, tuple), "comma-separated dataset names or paths"),
    ("device", (str, type(None)), "auto, cpu, cuda, cuda:N or mps"),
    ("out", (str, os.PathLike), "the folder that holds run directories"),
    ("data_root", (str, os.PathLike, type(None)), "the data folder, or None for the default"),
    ("adapt", (str, list, tuple, type(None)), "comma-separated test-time methods, e.g. \"adabn,tent\""),
    ("resume", (bool,), "True or False"),
    ("progress", (bool,), "True or False"),
    ("weights", (str, os.PathLike, type(None)), "a local ImageNet state-dict file, or None"),
    ("overrides", (dict, type(None)), "a dict of profile settings, e.g. {\"epochs\": 1}"),
)


def check_parameters(**params) -> dict:
    """The notebook's parameters, checked (types, seed, profile settings and their ranges, test sets,
    test-time methods); WbcError naming the culprit otherwise. Returns them with `test` and `adapt` as
    lists and `overrides` as a dict."""
    spec = {name: (types, what) for name, types, what in PARAMETERS}
    for name, v in params.items():
        if name not in spec:
            raise unknown("notebook parameter", name, spec)
        types, what = spec[name]
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            raise WbcError(f"notebook parameter {name}={v!r} has type {type(v).__name__}; it must be {what}")
    p = dict(params)
    if "seed" in p:
        check_seed(p["seed"])
    if "test" in p:
        p["test"] = parse_test_sets(p["test"])
    if "adapt" in p:
        p["adapt"] = parse_adapt(p["adapt"])
    if "overrides" in p:
        overrides = dict(p["overrides"] or {})
        for k, v in overrides.items():
            check_setting(k, v)
            try:
                json.dumps(v)
            except (TypeError, ValueError):
                raise WbcError(f"override {k}={v!r} is not JSON-serialisable") from None
        if "profile" in p:
            get_profile(p["profile"], **overrides)  # the settings that bound each other
        p["overrides"] = overrides
    return p


def run_arguments(params: dict) -> dict:
    """train.run's keyword arguments for checked notebook parameters (check_parameters)."""
    names = {"train": "train_set", "test": "test_sets"}
    args = {names.get(k, k): v for k, v in params.items() if k != "overrides"}
    return {**args, **params.get("overrides", {})}


def relative(path) -> str:
    """`path` relative to the working directory, else to the folder that holds the package (the checkout, or
    site-packages, where an installed training notebook is wbcbench/_notebooks/...), when it lies below one
    of them (commands and notebooks must not record where this machine keeps things), else as given."""
    p = Path(path).resolve()
    for base in (Path.cwd(), REPO_ROOT):
        try:
            return str(p.relative_to(base.resolve()))
        except ValueError:
            continue
    return str(path)


def _yaml_value(v) -> str:
    """A setting's value for papermill's -y: JSON text, but 1e-05 written 1.0e-05, because the YAML 1.1
    that papermill reads takes a float without a dot in its mantissa for a string."""
    text = json.dumps(v)
    mantissa, e, exponent = text.partition("e")
    return f"{mantissa}.0e{exponent}" if isinstance(v, float) and e and "." not in mantissa else text


def rerun_commands(model, profile, seed, train_set, test_sets, out, data_root=None, adapt=(), device=None,
                   weights=None, notebook=None, output=None, resume=True, quiet=False, progress=None,
                   **overrides) -> dict:
    """The shell commands that redo a run, from train.run's arguments: through papermill (same notebook,
    executed copy written to `output`, default executed.ipynb) and through the CLI. Both are built from
    the same checked values, and the CLI's flags from profiles.SETTINGS, so `wbcbench train` accepts
    every command printed here."""
    seed, tests, methods = check_seed(seed), ",".join(parse_test_sets(test_sets)), ",".join(parse_adapt(adapt))
    overrides = {k: check_setting(k, v) for k, v in given(overrides).items()}
    pm = ["papermill", relative(notebook or NOTEBOOK), str(output or "executed.ipynb"), "-k", KERNEL,
          "-p", "model", model, "-p", "profile", profile, "-p", "seed", str(seed), "-p", "train", train_set,
          "-p", "test", tests, "-p", "out", str(out)]
    cli = ["wbcbench"] + (["--data-root", str(data_root)] if data_root else []) + [
        "train", "--model", model, "--profile", profile, "--seed", str(seed), "--train", train_set,
        "--test", tests, "--out", str(out), "--resume"]
    for name, value in (("device", None if device in (None, "auto") else device), ("adapt", methods or None),
                        ("weights", weights)):
        if value is not None:
            pm += ["-p", name, str(value)]
            cli += [f"--{name}", str(value)]
    if data_root:
        pm += ["-p", "data_root", str(data_root)]
    if overrides:
        pm += ["-y", "{overrides: {" + ", ".join(f"{k}: {_yaml_value(v)}" for k, v in overrides.items()) + "}}"]
    return {"papermill": shlex.join(pm), "cli": shlex.join(cli + setting_args(overrides))}
