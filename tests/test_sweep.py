"""Sweeps run the training notebook through papermill: done runs are skipped, locked runs left alone,
a failing run is recorded (with its executed notebook) while the others finish, and the submitit path
works with submitit's LocalExecutor. Whether an execution did the work is read from the done marker's
token, not from the notebook's output. The real runs are tiny: smoke profile, 1 epoch, CellaVision."""
from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from wbcbench import cli, models
from wbcbench.analysis.verdict import grid_progress
from wbcbench.core.errors import WbcError
from wbcbench.core.names import ADAPT_METHODS
from wbcbench.core.paths import REPO_ROOT
from wbcbench.core.profiles import get_profile
from wbcbench.engine import train
from wbcbench.runs.rundir import claim, is_done
from wbcbench.sweep import grids, parameters, runner

# "cellavision, lisc": a spaced test list, which once sent every such run to failed/ after training it.
SMALL = dict(profile="smoke", train="cellavision", test="cellavision, lisc", overrides={"epochs": 1})


def _by_label(results):
    return {r["label"]: r for r in results}


# ------------------------------------------------------------------------------------------ no data needed
def test_parse_seeds_and_overrides():
    assert runner.parse_seeds("0-2,5") == [0, 1, 2, 5]
    assert runner.parse_seeds("3,3,1") == [3, 1]
    for bad in ("a-b", "-1"):
        with pytest.raises(WbcError, match="bad seed list"):
            runner.parse_seeds(bad)
    with pytest.raises(WbcError, match=r"seed=-1 is out of range"):
        runner.parse_seeds([0, -1])
    assert runner.parse_overrides(["epochs=1", "pretrained=true", "lr=1e-3", "train-subset-per-class=5"]) == \
        {"epochs": 1, "pretrained": True, "lr": 1e-3, "train_subset_per_class": 5}
    with pytest.raises(WbcError, match="KEY=VALUE"):
        runner.parse_overrides(["epochs"])
    with pytest.raises(WbcError, match=r"epochs='two' has type str"):
        runner.parse_overrides(["epochs=two"])
    with pytest.raises(WbcError, match=r"batch_size=0 is out of range"):
        runner.parse_overrides(["batch_size=0"])
    with pytest.raises(WbcError, match=r"epochs=None has type NoneType"):
        runner.parse_overrides(["epochs=None"])


def test_a_none_override_trains_on_every_image():
    """`--override train_subset_per_class=None` (or null) is the value None, not "the profile's": the runs
    train on every image, and the notebook's parameters carry it through to train.run."""
    for text in ("None", "none", "null"):
        assert runner.parse_overrides([f"train_subset_per_class={text}"]) == {"train_subset_per_class": None}
    p = parameters.check_parameters(profile="cpu-pretrained", overrides={"train_subset_per_class": None})
    assert parameters.run_arguments(p) == dict(profile="cpu-pretrained", train_subset_per_class=None)
    run = runner.plan(profile="cpu-pretrained", models=["resnet18_bn"], seeds=[0], test="lisc",
                      overrides={"train_subset_per_class": None})[0]
    assert run.parameters()["overrides"] == {"train_subset_per_class": None}


def test_check_parameters_names_the_culprit():
    check = parameters.check_parameters
    with pytest.raises(WbcError, match=r"seed='abc' has type str; it must be an integer"):
        check(seed="abc")
    with pytest.raises(WbcError, match="seed"):
        check(seed=True)  # a bool is not a seed
    with pytest.raises(WbcError, match=r"seed=-1 is out of range"):
        check(seed=-1)
    with pytest.raises(WbcError, match="unknown notebook parameter 'adabn'"):
        check(adabn=True)  # the old flag is gone: adapt="adabn"
    with pytest.raises(WbcError, match="unknown test-time method 'tnet'"):
        check(adapt="adabn, tnet")
    with pytest.raises(WbcError, match="unknown profile setting 'epoch'"):
        check(overrides={"epoch": 1})
    with pytest.raises(WbcError, match=r"epochs=0 is out of range"):
        check(overrides={"epochs": 0})
    with pytest.raises(WbcError, match=r"warmup_epochs=3 is out of range: it must be <= epochs=2"):
        check(profile="smoke", overrides={"warmup_epochs": 3})
    with pytest.raises(WbcError, match=r"crop_size=48 is out of range: it must be <= stored_size=40"):
        check(profile="cpu", overrides={"stored_size": 40})  # a cross-check needs the profile
    with pytest.raises(WbcError, match="unknown notebook parameter"):
        check(sede=1)
    with pytest.raises(WbcError, match="no test set"):
        check(test=" , ")
    p = check(test="pbc:test, lisc,", overrides={"epochs": 1}, seed=3, adapt="adabn , batch_stats")
    assert p["test"] == ["pbc:test", "lisc"] and p["overrides"] == {"epochs": 1}
    assert p["adapt"] == ["adabn", "batch_stats"]
    assert check(adapt="")["adapt"] == [] and check(adapt=None)["adapt"] == []


def test_run_arguments_are_train_runs_keywords():
    p = parameters.check_parameters(model="resnet18_bn", profile="smoke", seed=1, train="cellavision",
                                    test="lisc", out="runs", adapt="adabn", overrides={"epochs": 1})
    assert parameters.run_arguments(p) == dict(model="resnet18_bn", profile="smoke", seed=1, train_set="cellavision",
                                               test_sets=["lisc"], out="runs", adapt=["adabn"], epochs=1)


def test_notebook_parameters_cell_matches_the_schema():
    """The parameters cell of notebook 02 (.py and .ipynb) defines exactly the checked parameters, with
    defaults that pass the check."""
    nb = nbformat.read(REPO_ROOT / "notebooks" / "02_train_one_run.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")  # stored without outputs
    values = {}
    exec(cell.source, {}, values)
    assert set(values) == {name for name, _, _ in parameters.PARAMETERS}
    assert parameters.check_parameters(**values)["adapt"] == []
    assert cell.source in (REPO_ROOT / "notebooks" / "02_train_one_run.py").read_text()


def test_grids_and_plan():
    paper = runner.plan(grid="paper")
    assert len(paper) == 8 * 10 and {r.profile for r in paper} == {"paper"}
    assert {r.train for r in paper} == {"raabin:train"} and {tuple(r.adapt) for r in paper} == {()}
    cpu = runner.plan(grid="cpu-study", seeds="0")
    assert len(cpu) == len(grids.CPU_MODELS) == 8 and all("adabn" in r.adapt for r in cpu)
    over = {r.model: r.overrides for r in cpu}
    assert over["efficientnet_lite0"] == {"pretrained": True} and over["resnet18_gn"] == {}
    json.dumps([r.parameters() for r in cpu])  # papermill parameters must be JSON-serialisable
    assert all(r.parameters()["progress"] is False for r in cpu)  # per-epoch lines, no bars, in the record
    assert runner.plan(grid="cpu-study", profile="smoke", adapt="")[0].adapt == []
    assert runner.plan(grid="cpu-study", test="lisc , bccd")[0].test == ["lisc", "bccd"]
    with pytest.raises(WbcError, match="unknown grid"):
        runner.plan(grid="papr")
    with pytest.raises(WbcError, match="--profile"):
        runner.plan()
    with pytest.raises(WbcError, match="epochs=0 is out of range"):
        runner.plan(profile="smoke", overrides={"epochs": 0})


def test_a_grid_entry_can_be_limited_to_some_seeds(monkeypatch):
    """An entry's `seeds` limits it to those seeds without entering its settings: its runs keep the names
    they have without it (the converged study's rule drops a network from the later seeds this way)."""
    full = runner.plan(profile="smoke", models=["resnet18_bn", "vit_tiny"], seeds="0-2")
    cut = runner.plan(profile="smoke", models=["resnet18_bn", ("vit_tiny", {"seeds": [0]})], seeds="0-2")
    assert [(r.model, r.seed) for r in cut] == [("resnet18_bn", 0), ("vit_tiny", 0), ("resnet18_bn", 1),
                                                ("resnet18_bn", 2)]
    names = {(r.model, r.seed): r.run_dir() for r in full}
    assert all(names[(r.model, r.seed)] == r.run_dir() for r in cut) and all(r.overrides == {} for r in cut)
    grid = dict(grids.GRIDS["cpu-study"], models=["resnet18_bn", ("vit_tiny", {"seeds": [0]})], seeds=[0, 1, 2])
    monkeypatch.setitem(grids.GRIDS, "cut", grid)
    assert grids.grid_size("cut")["runs"] == 4 == len(runner.plan(grid="cut"))
    assert grid_progress(None, "cut")["total"] == 4
    done = pd.DataFrame([{"model": m, "profile": grid["profile"], "train": grid["train"], "seed": s,
                          "run_dir": f"{m}{s}", "eval_mode": "standard", "test_set": "lisc"}
                         for m in ("resnet18_bn", "vit_tiny") for s in (0, 1, 2)])
    assert grid_progress(done, "cut")["finished"] == 4      # vit_tiny at seeds 1 and 2 is not the grid's


def test_grids_hold_registered_models_valid_settings_and_methods():
    """resnet18_frozenbn (BN frozen at its initial statistics: an identity layer) is out of the CPU grid."""
    assert "resnet18_frozenbn" not in grids.model_names(grids.CPU_MODELS)
    for name, g in grids.GRIDS.items():
        for entry in g["models"]:
            model, over = (entry, {}) if isinstance(entry, str) else (entry[0], dict(entry[1]))
            assert model in models.list_models(), (name, model)
            assert set(over.pop("seeds", g["seeds"])) <= set(g["seeds"]), (name, model)  # a subset of the grid's
            get_profile(g["profile"], **over)
        assert set(g["adapt"]) <= set(ADAPT_METHODS), name
    assert grids.grid_size("cpu-study") == {"models": grids.model_names(grids.CPU_MODELS), "seeds": [0, 1, 2, 3, 4],
                                            "runs": 40}


# ----------------------------------------------------------------- whose work a notebook was (token)
_FAKE = '''import os
from pathlib import Path
from wbcbench.runs import rundir
run_dir = Path(out) / "fake-run"
run_dir.mkdir(parents=True, exist_ok=True)
print("already done: the old sweep took this line for proof that another process trained the run")
if model == "finished-elsewhere":
    os.environ[rundir.RUN_TOKEN_ENV] = "another process"
rundir.mark_done(run_dir)
'''


def _fake_notebook(path: Path) -> Path:
    """A stand-in for the training notebook: same parameters; it marks a run done, as itself or as
    another process would."""
    defaults = "\n".join(f"{name} = None" for name, _, _ in parameters.PARAMETERS)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(defaults, metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell(_FAKE)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("who", ["self", "finished-elsewhere"])
def test_who_finished_a_run_is_read_from_the_done_token(who, tmp_path, monkeypatch):
    """The old sweep grepped the output for "already done:": the run this execution trained was called
    skipped (its notebook thrown away), and one another process finished meanwhile was called done. Run from
    the sweep's folder with a relative --out, the kept notebook records no absolute path."""
    monkeypatch.chdir(tmp_path)
    nb = _fake_notebook(tmp_path / "fake.ipynb")
    run = runner.Run(model=who, profile="smoke", seed=0, out="runs", cwd=str(tmp_path))
    res = runner.execute(run, nb, run_dir="runs/fake-run")
    kept = tmp_path / "runs" / "fake-run" / "notebook.ipynb"
    if who == "self":
        assert res["status"] == "done" and res["error"] is None, res
        text = kept.read_text()
        record = json.loads(text)["metadata"]["papermill"]
        assert (record["input_path"], record["output_path"]) == ("fake.ipynb", "runs/fake-run/notebook.ipynb")
        assert record["parameters"]["out"] == "runs"
        assert str(tmp_path) not in text and str(REPO_ROOT) not in text
    else:
        assert res["status"] == "skipped", res
        assert not kept.exists()
    assert not list(tmp_path.rglob(".*.running.ipynb"))


# ------------------------------------------------------------------------------------------ real runs
def test_run_dir_uses_the_normalised_test_list(data_root, tmp_path):
    """Run.run_dir() checked "cellavision, lisc" and then passed the raw string on: unknown dataset ' lisc',
    so the sweep executed the run as a rejected one, filed its notebook under failed/ and retrained it next
    time."""
    run = runner.Run(model="resnet18_bn", profile="smoke", seed=0, train="cellavision", test="cellavision, lisc",
                    out=str(tmp_path), data_root=str(data_root))
    assert run.run_dir() == train.run_dir_for(model="resnet18_bn", profile="smoke", seed=0, train_set="cellavision",
                                              test_sets=["cellavision", "lisc"], out=str(tmp_path),
                                              data_root=str(data_root))
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def first_sweep(data_root, tmp_path_factory):
    """resnet18_bn seeds 0 and 1 plus an unknown model, two at a time."""
    out = tmp_path_factory.mktemp("sweep")
    runs = runner.plan(models="resnet18_bn,no_such_model", seeds="0,1", out=str(out), data_root=str(data_root),
                      **SMALL)
    t0 = time.time()
    results = runner.sweep(runs, jobs=2)
    return out, results, time.time() - t0


def test_sweep_trains_every_grid_point_and_keeps_its_notebook(first_sweep):
    out, results, secs = first_sweep
    print(f"first sweep: {secs:.0f}s")
    res = _by_label(results)
    for seed in (0, 1):
        r = res[f"resnet18_bn-smoke-s{seed}-epochs=1"]
        assert r["status"] == "done", r
        run_dir = Path(r["run_dir"])
        assert run_dir.parent == out and is_done(run_dir)
        nb = nbformat.read(run_dir / "notebook.ipynb", as_version=4)
        params = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert params and f"seed = {seed}" in params[0].source
        assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
        text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
        assert "epoch 1/1: loss" in text and "it/s" not in text and "TqdmWarning" not in text  # no bars
        raw = (run_dir / "notebook.ipynb").read_text()
        assert str(REPO_ROOT) not in raw and "site-packages" not in raw  # no place on this machine
        config = json.loads((run_dir / "config.json").read_text())
        assert config["hparams"]["epochs"] == 1 and config["test"] == ["cellavision", "lisc"]
    assert len({res[f"resnet18_bn-smoke-s{s}-epochs=1"]["run_dir"] for s in (0, 1)}) == 2
    assert not list(out.rglob(".*.running.ipynb"))  # staging copies renamed
    assert not list(out.glob("failed/resnet18_bn*"))


def test_failing_run_is_recorded_with_its_message(first_sweep):
    out, results, _ = first_sweep
    res = _by_label(results)
    for seed in (0, 1):
        r = res[f"no_such_model-smoke-s{seed}-epochs=1"]
        assert r["status"] == "failed"
        assert "unknown model 'no_such_model'" in r["error"]
        assert Path(r["notebook"]).parent == out / "failed"
        nb = nbformat.read(r["notebook"], as_version=4)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert errors and errors[0]["ename"] == "WbcError"
        assert "unknown model 'no_such_model'" in errors[0]["evalue"]
    lines = []
    assert runner.summarize(results, log=lines.append) == 1
    text = "\n".join(lines)
    assert "2 failed" in text and "unknown model 'no_such_model'" in text and "2 done" in text


def test_rerun_skips_finished_runs(first_sweep, data_root, capsys):
    out, results, _ = first_sweep
    stamps = {p: p.stat().st_mtime for p in out.glob("*/notebook.ipynb")}
    t0 = time.time()
    rc = cli.main(["--data-root", str(data_root), "sweep", "--profile", "smoke", "--models", "resnet18_bn",
                   "--seeds", "0-1", "--train", "cellavision", "--test", "lisc,cellavision", "--out", str(out),
                   "--override", "epochs=1"])
    secs = time.time() - t0
    assert rc == 0
    assert "2 skipped" in capsys.readouterr().out
    assert secs < 30, f"skipping two finished runs took {secs:.0f}s"
    assert {p: p.stat().st_mtime for p in out.glob("*/notebook.ipynb")} == stamps


def test_a_new_test_time_method_is_added_without_retraining(first_sweep, data_root):
    """Asking a finished grid for AdaBN adds the evaluations (the run was trained without it) and trains
    nothing: the run's name is its training identity."""
    out, _, _ = first_sweep
    runs = runner.plan(models="resnet18_bn", seeds="0", out=str(out), data_root=str(data_root), adapt="adabn", **SMALL)
    rd = runs[0].run_dir()
    log = (rd / "log.csv").stat().st_mtime_ns
    results = runner.sweep(runs, jobs=1, log=lambda *a: None)
    assert [r["status"] for r in results] == ["done"], results
    assert {"cellavision@adabn", "lisc@adabn"} <= {p.name for p in (rd / "eval").iterdir()}
    assert (rd / "log.csv").stat().st_mtime_ns == log
    assert [r["status"] for r in runner.sweep(runs, jobs=1, log=lambda *a: None)] == ["skipped"]


def test_locked_run_is_left_to_its_owner(first_sweep, data_root):
    out, _, _ = first_sweep
    run = runner.plan(models="resnet18_bn", seeds="7", out=str(out), data_root=str(data_root), **SMALL)
    with claim(run[0].run_dir()):
        results = runner.sweep(run, jobs=1, log=lambda *a: None)
    assert [r["status"] for r in results] == ["locked"]
    assert "another process" in results[0]["error"]
    assert not is_done(run[0].run_dir())


def test_submitit_local_launcher(first_sweep, data_root):
    out, _, _ = first_sweep
    runs = runner.plan(models="resnet18_bn", seeds="2", out=str(out), data_root=str(data_root), **SMALL)
    results = runner.sweep(runs, launcher="submitit-local")
    assert [r["status"] for r in results] == ["done"], results
    run_dir = Path(results[0]["run_dir"])
    assert is_done(run_dir) and (run_dir / "notebook.ipynb").is_file()
    assert (out / ".submitit").is_dir()
