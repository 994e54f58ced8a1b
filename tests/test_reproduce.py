"""Committed runs reproduce at HEAD: for each model family of the CPU grid, the cheapest committed run made
by this training code (rundir.TRAIN_VERSION) is trained again from its config.json and must give
byte-identical predictions, so a change that moves results is caught when it is made (and must bump
TRAIN_VERSION or evaluate.EVAL_VERSION, on purpose).

Floats depend on the CPU type as well as on the code (environment.host_class: library versions, CPU model,
torch's CPU capability), so the comparison runs on a host of the class the runs were recorded on; elsewhere
the test is skipped, saying why, unless WBCBENCH_REQUIRE_REPRODUCE=1 (a CI machine of the
right class) turns that into a failure. To keep it cheap, each retrain is evaluated on the run's smallest
test set only (with all of its test-time methods): the training, the expensive part, is the full run.
"""
from __future__ import annotations

import json
import os

import pytest

from wbcbench.core.environment import environment, host_class, same_host_class
from wbcbench.core.names import STAIN_METHODS
from wbcbench.core.paths import REPO_ROOT
from wbcbench.engine.evaluate import EVAL_VERSION
from wbcbench.engine.reproduce import compare_runs, reproduce
from wbcbench.models import get_model_config
from wbcbench.runs import rundir
from wbcbench.sweep.grids import CPU_MODELS, PRETRAINED_MODELS

GRID_MODELS = sorted({m if isinstance(m, str) else m[0] for m in (*CPU_MODELS, *PRETRAINED_MODELS)})
FAMILIES = sorted({get_model_config(m).family for m in GRID_MODELS})
RESULTS = REPO_ROOT / "results"


def current_runs():
    """(run dir, config) of every finished committed CPU run made by this training code."""
    for p in sorted(RESULTS.glob("*/*/config.json")):
        cfg = json.loads(p.read_text())
        if (rundir.is_done(p.parent) and cfg.get("identity") == rundir.IDENTITY and cfg.get("device") == "cpu"
                and cfg.get("train_version") == rundir.TRAIN_VERSION and cfg.get("model") in GRID_MODELS):
            yield p.parent, cfg


def cheapest(family: str):
    """The family's committed run with the least training (epochs x images), then the lowest seed; runs
    recorded on a host of this one's class first (the grid is made on more than one host), so that the
    check runs wherever some run can be reproduced byte for byte."""
    runs = [(not same_host_class(cfg["environment"]),
             cfg["hparams"]["epochs"] * (cfg["hparams"].get("train_subset_per_class") or 10**9), cfg["seed"],
             d.name, d, cfg) for d, cfg in current_runs() if get_model_config(cfg["model"]).family == family]
    return min(runs)[4:] if runs else (None, None)


def smallest_test_set(run_dir) -> str:
    sizes = {}
    for m in run_dir.glob("eval/*/metrics.json"):
        rec = json.loads(m.read_text())
        sizes[rec["test_set"]] = rec["n"]
    return min(sizes, key=lambda t: (sizes[t], t))


def test_the_committed_grid_has_a_run_to_reproduce():
    """Both CPU grids are committed in seed-major order, so every family of both has a run once their
    first seed is done (the cpu-study grid is complete; the cpu-pretrained grid has seed 0 of every arm)."""
    assert all(cheapest(f)[0] is not None for f in FAMILIES), [f for f in FAMILIES if cheapest(f)[0] is None]


@pytest.mark.parametrize("family", [f for f in FAMILIES if cheapest(f)[0] is not None])
def test_a_committed_run_of_each_family_reproduces_byte_for_byte(family, data_root, tmp_path):
    run_dir, cfg = cheapest(family)
    assert run_dir is not None, (f"no committed {family} run of training version {rundir.TRAIN_VERSION} under "
                                 "results/: rerun the CPU grid with this code")
    if not same_host_class(cfg["environment"]):
        why = (f"{run_dir.name} was recorded on {host_class(cfg['environment'])}, this host is "
               f"{host_class(environment())}: floats differ between CPU types")
        if os.environ.get("WBCBENCH_REQUIRE_REPRODUCE") == "1":
            pytest.fail(why)
        pytest.skip(why)
    test = smallest_test_set(run_dir)
    again = reproduce(run_dir, tmp_path, data_root=data_root, test_sets=[test])
    table = compare_runs(run_dir, again)
    table = table[table["accuracy (retrained)"].notna()]
    methods = [m for m in rundir.adapt_methods(cfg) if m in STAIN_METHODS or cfg.get("adaptable_bn")]
    assert len(table) == 1 + len(methods), table
    for (t, mode), (_, folder) in rundir.evaluations(run_dir).items():
        if t == test:
            assert json.loads((folder / "metrics.json").read_text())["eval_version"] == EVAL_VERSION, folder
    assert table["identical predictions"].all(), table.to_string()
