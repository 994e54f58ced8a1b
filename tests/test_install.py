"""wbcbench installed, not run from a checkout: a wheel built from the working tree, installed (not editable)
into a fresh venv, trains, sweeps and collects from an empty folder. A checkout hides what an installed
package lacks (the training notebook the sweep executes, ../shared/wbc-data beside the repository, the
repository to resolve results folders against), so these paths are checked here, without one."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from venvs import make_venv

from wbcbench.core import paths
from wbcbench.core.errors import WbcError
from wbcbench.core.paths import REPO_ROOT
from wbcbench.runs.collect import resolve_dir
from wbcbench.runs.rundir import is_done
from wbcbench.sweep import parameters, runner

NOTEBOOK = "02_train_one_run.ipynb"
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "wbcbench", "notebooks")


# --------------------------------------------------------------------------------- without a checkout, fast
@pytest.fixture
def installed(tmp_path, monkeypatch):
    """This process as an installed package sees it: no checkout around the package; an empty working folder."""
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "site-packages")
    monkeypatch.delenv("WBCBENCH_DATA", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_without_a_checkout_the_data_default_is_relative_to_the_working_folder(installed, tmp_path):
    assert paths.checkout() is None
    assert paths.data_root(must_exist=False) == installed / "data"
    (tmp_path / "shared" / "wbc-data").mkdir(parents=True)
    assert paths.data_root() == tmp_path / "shared" / "wbc-data"
    assert paths.data_root("elsewhere", must_exist=False) == installed / "elsewhere"


def test_in_a_checkout_the_data_beside_it_comes_after_the_working_folders(tmp_path, monkeypatch):
    top = tmp_path / "repo"
    (top / "wbcbench").mkdir(parents=True)
    (top / "pyproject.toml").write_text('[project]\nname = "wbcbench"\n')
    (tmp_path / "shared" / "wbc-data").mkdir(parents=True)
    monkeypatch.setattr(paths, "REPO_ROOT", top)
    monkeypatch.delenv("WBCBENCH_DATA", raising=False)
    work = tmp_path / "a" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    assert paths.checkout() == top and paths.data_root() == tmp_path / "shared" / "wbc-data"
    (tmp_path / "a" / "shared" / "wbc-data").mkdir(parents=True)
    assert paths.data_root() == tmp_path / "a" / "shared" / "wbc-data"


def test_without_a_checkout_folders_resolve_against_the_working_folder(installed):
    assert resolve_dir("results/cpu") == Path("results/cpu")  # named as given when missing
    assert parameters.relative(installed / "runs" / "x") == "runs/x"


def test_a_package_built_without_the_notebook_names_the_missing_file(installed, monkeypatch):
    """Outside a checkout the notebook is wbcbench._notebooks' package data; a build without it is named."""
    def no_package(name):
        raise ModuleNotFoundError(f"No module named {name!r}")
    monkeypatch.setattr(parameters.resources, "files", no_package)
    nb = parameters._training_notebook()
    assert nb.parts[-3:] == ("wbcbench", "_notebooks", NOTEBOOK) and not nb.exists()
    with pytest.raises(WbcError, match=f"training notebook {nb} not found"):
        runner.sweep([], notebook=nb)


# --------------------------------------------------------------------------------------- a real install, slow
@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the working tree (the build writes build/ and *.egg-info beside its sources,
    which must not land in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in BUILD_INPUTS:
        if name == "notebooks":  # its files only: notebooks/runs/ holds what notebooks wrote
            (src / name).mkdir()
            for f in (REPO_ROOT / name).iterdir():
                if f.is_file():
                    shutil.copy2(f, src / name / f.name)
        elif (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO_ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(dist), str(src)], check=True)
    (whl,) = dist.glob("wbcbench-*.whl")
    return whl


@pytest.mark.slow
def test_the_wheel_holds_every_module_and_the_training_notebook_only(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "wbcbench").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules <= names, sorted(modules - names)  # a subpackage missing from pyproject.toml's list
    assert {n for n in names if n.startswith("wbcbench/_notebooks/")} == {f"wbcbench/_notebooks/{NOTEBOOK}"}
    assert zipfile.ZipFile(wheel).read(f"wbcbench/_notebooks/{NOTEBOOK}") == \
        (REPO_ROOT / "notebooks" / NOTEBOOK).read_bytes()


@pytest.mark.slow
def test_installed_wheel_trains_sweeps_and_collects_from_an_empty_folder(wheel, data_root, tmp_path):
    """`pip install` of the wheel, then train, a two-run sweep and collect from an empty folder. The runs
    record no commit: the CLI and the sweep's notebook kernel ran the installed package, not this checkout."""
    python = make_venv(tmp_path / "venv")
    bin_dir = python.parent
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WBCBENCH_", "PIP_", "VIRTUAL_ENV", "JUPYTER")) and k != "PYTHONPATH"}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(tmp_path / "venv"),
               WBCBENCH_DATA=str(data_root), WBCBENCH_CACHE=os.environ.get("WBCBENCH_CACHE", str(tmp_path / "cache")),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], env=env,
                   check=True)
    work = tmp_path / "empty"
    work.mkdir()

    def run(*args):
        r = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (args, r.stdout[-3000:], r.stderr[-3000:])
        return r.stdout

    where = run(str(python), "-c", "import wbcbench; from wbcbench.sweep.parameters import NOTEBOOK; "
                                   "print(wbcbench.__file__); print(NOTEBOOK)").split()
    assert Path(where[0]).is_relative_to(tmp_path / "venv") and not Path(where[0]).is_relative_to(REPO_ROOT)
    assert Path(where[1]) == Path(where[0]).parent / "_notebooks" / NOTEBOOK

    small = ["--profile", "smoke", "--train", "cellavision", "--test", "cellavision", "--device", "cpu"]
    run(str(bin_dir / "wbcbench"), "train", "--model", "resnet18_bn", "--seed", "0", "--epochs", "1",
        "--out", "runs", "--quiet", *small)
    out = run(str(bin_dir / "wbcbench"), "sweep", "--models", "resnet18_bn", "--seeds", "0,1", "--override",
              "epochs=1", "--out", "sweep", "--jobs", "1", *small)
    assert "sweep finished: 2 done" in out, out
    run(str(bin_dir / "wbcbench"), "collect", "sweep", "--csv", "table.csv")

    trained = [d for d in (work / "runs").iterdir() if d.is_dir()]
    swept = sorted(d for d in (work / "sweep").iterdir() if d.is_dir())
    assert len(trained) == 1 and len(swept) == 2 and all(is_done(d) for d in (*trained, *swept))
    for d in (*trained, *swept):
        assert json.loads((d / "config.json").read_text())["code"] == {"commit": None, "dirty": None}, d
    for d in swept:
        record = nbformat.read(d / "notebook.ipynb", as_version=4).metadata["papermill"]
        assert record["input_path"] == f"wbcbench/_notebooks/{NOTEBOOK}", record
        assert str(tmp_path) not in (d / "notebook.ipynb").read_text()  # no place on this machine
    table = pd.read_csv(work / "table.csv")
    assert sorted(table["seed"]) == [0, 1] and set(table["test_set"]) == {"cellavision"}
