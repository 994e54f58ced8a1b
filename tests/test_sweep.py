"""Sweeps run the training notebook through papermill: done runs are skipped, locked runs left alone,
a failing run is recorded (with its executed notebook) while the others finish, and the submitit path
works with submitit's LocalExecutor. The runs are tiny: smoke profile, 1 epoch, CellaVision only."""
from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest

from wbcbench import cli, sweep
from wbcbench.errors import WbcError
from wbcbench.rundir import claim, is_done

SMALL = dict(profile="smoke", train="cellavision", test="cellavision", overrides={"epochs": 1})


def _by_label(results):
    return {r["label"]: r for r in results}


# ------------------------------------------------------------------------------------------ no data needed
def test_parse_seeds_and_overrides():
    assert sweep.parse_seeds("0-2,5") == [0, 1, 2, 5]
    assert sweep.parse_seeds("3,3,1") == [3, 1]
    with pytest.raises(WbcError, match="bad seed list"):
        sweep.parse_seeds("a-b")
    assert sweep.parse_overrides(["epochs=1", "pretrained=true", "lr=1e-3"]) == \
        {"epochs": 1, "pretrained": True, "lr": 1e-3}
    with pytest.raises(WbcError, match="KEY=VALUE"):
        sweep.parse_overrides(["epochs"])


def test_check_parameters_names_the_culprit():
    with pytest.raises(WbcError, match=r"seed='abc' has type str; it must be an integer"):
        sweep.check_parameters(seed="abc")
    with pytest.raises(WbcError, match="adabn"):
        sweep.check_parameters(adabn="yes")
    with pytest.raises(WbcError, match="seed"):
        sweep.check_parameters(seed=True)  # a bool is not a seed
    with pytest.raises(WbcError, match="unknown profile setting 'epoch'"):
        sweep.check_parameters(overrides={"epoch": 1})
    with pytest.raises(WbcError, match="unknown notebook parameter"):
        sweep.check_parameters(sede=1)
    p = sweep.check_parameters(test="pbc:test, lisc", overrides={"epochs": 1}, seed=3)
    assert p["test"] == ["pbc:test", "lisc"] and p["overrides"] == {"epochs": 1}


def test_grids_and_plan():
    paper = sweep.plan(grid="paper")
    assert len(paper) == 8 * 10 and {r.profile for r in paper} == {"paper"}
    assert {r.train for r in paper} == {"raabin:train"}
    cpu = sweep.plan(grid="cpu-study", seeds="0")
    assert all(r.adabn for r in cpu) and len(cpu) == 9
    over = {r.model: r.overrides for r in cpu}
    assert over["efficientnet_lite0"] == {"pretrained": True} and over["resnet18_gn"] == {}
    json.dumps([r.parameters() for r in cpu])  # papermill parameters must be JSON-serialisable
    assert sweep.plan(grid="cpu-study", profile="smoke", adabn=False)[0].adabn is False
    with pytest.raises(WbcError, match="unknown grid"):
        sweep.plan(grid="papr")
    with pytest.raises(WbcError, match="--profile"):
        sweep.plan()


def test_rerun_commands_match_cli():
    cmds = sweep.rerun_commands(model="resnet18_gn", profile="cpu", seed=3, train="pbc:train",
                                test=["lisc", "bccd"], out="runs", adabn=True, overrides={"pretrained": False,
                                                                                          "epochs": 2})
    assert "-p seed 3" in cmds["papermill"] and "overrides" in cmds["papermill"]
    argv = cmds["cli"].split()[1:]
    a = cli.build_parser().parse_args(argv)
    assert (a.model, a.seed, a.test, a.adabn, a.pretrained, a.epochs) == ("resnet18_gn", 3, "lisc,bccd", True, False, 2)


# ------------------------------------------------------------------------------------------ real runs
@pytest.fixture(scope="module")
def first_sweep(data_root, tmp_path_factory):
    """resnet18_bn seeds 0 and 1 plus an unknown model, two at a time."""
    out = tmp_path_factory.mktemp("sweep")
    runs = sweep.plan(models="resnet18_bn,no_such_model", seeds="0,1", out=str(out), data_root=str(data_root),
                      **SMALL)
    t0 = time.time()
    results = sweep.sweep(runs, jobs=2)
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
        assert json.loads((run_dir / "config.json").read_text())["hparams"]["epochs"] == 1
    assert len({res[f"resnet18_bn-smoke-s{s}-epochs=1"]["run_dir"] for s in (0, 1)}) == 2
    assert not list(out.rglob(".*.running.ipynb"))  # staging copies renamed


def test_failing_run_is_recorded_with_its_message(first_sweep):
    out, results, _ = first_sweep
    res = _by_label(results)
    for seed in (0, 1):
        r = res[f"no_such_model-smoke-s{seed}-epochs=1"]
        assert r["status"] == "failed"
        assert "unknown model 'no_such_model'" in r["error"]
        nb = nbformat.read(r["notebook"], as_version=4)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert errors and errors[0]["ename"] == "WbcError"
        assert "unknown model 'no_such_model'" in errors[0]["evalue"]
    lines = []
    assert sweep.summarize(results, log=lines.append) == 1
    text = "\n".join(lines)
    assert "2 failed" in text and "unknown model 'no_such_model'" in text and "2 done" in text


def test_rerun_skips_finished_runs(first_sweep, data_root, capsys):
    out, results, _ = first_sweep
    stamps = {p: p.stat().st_mtime for p in out.glob("*/notebook.ipynb")}
    t0 = time.time()
    rc = cli.main(["--data-root", str(data_root), "sweep", "--profile", "smoke", "--models", "resnet18_bn",
                   "--seeds", "0-1", "--train", "cellavision", "--test", "cellavision", "--out", str(out),
                   "--override", "epochs=1"])
    secs = time.time() - t0
    assert rc == 0
    assert "2 skipped" in capsys.readouterr().out
    assert secs < 30, f"skipping two finished runs took {secs:.0f}s"
    assert {p: p.stat().st_mtime for p in out.glob("*/notebook.ipynb")} == stamps


def test_locked_run_is_left_to_its_owner(first_sweep, data_root):
    out, _, _ = first_sweep
    run = sweep.plan(models="resnet18_bn", seeds="7", out=str(out), data_root=str(data_root), **SMALL)
    with claim(run[0].run_dir()):
        results = sweep.sweep(run, jobs=1, log=lambda *a: None)
    assert [r["status"] for r in results] == ["locked"]
    assert "another process" in results[0]["error"]
    assert not is_done(run[0].run_dir())


def test_submitit_local_launcher(first_sweep, data_root):
    out, _, _ = first_sweep
    runs = sweep.plan(models="resnet18_bn", seeds="2", out=str(out), data_root=str(data_root), **SMALL)
    results = sweep.sweep(runs, launcher="submitit-local")
    assert [r["status"] for r in results] == ["done"], results
    run_dir = Path(results[0]["run_dir"])
    assert is_done(run_dir) and (run_dir / "notebook.ipynb").is_file()
    assert (out / ".submitit").is_dir()
