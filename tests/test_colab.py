"""The Colab path: every notebook opens with the same set-up cell (but for the data it reads), the repository
URL and branch are written once (wbcbench.colab) and every copy agrees (cells, badges, the book's buttons,
pyproject), and a simulated Colab runtime runs notebooks 02 and 03 end to end from an empty folder."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import nbformat
import pytest
import yaml
from test_download import Server, make_archives
from venvs import make_venv

from wbcbench import colab
from wbcbench.core.errors import WbcError
from wbcbench.core.paths import REPO_ROOT
from wbcbench.data import download
from wbcbench.data.sources import DATASETS
from wbcbench.report.words import arm_name
from wbcbench.runs.collect import load_runs

NOTEBOOKS = sorted(colab.NOTEBOOKS.glob("[0-9]*.ipynb"))


def first_code_cell(path: Path):
    return next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


def test_every_notebook_opens_with_the_setup_cell():
    assert len(NOTEBOOKS) == 10
    for nb in NOTEBOOKS:
        cell = first_code_cell(nb)
        data = colab.declared_data(cell.source)
        assert data is not None, nb
        assert cell.source == colab.setup_cell(data), f"{nb.name}: run python -m wbcbench.colab"
        assert "remove-cell" in cell.metadata.get("tags", []), nb
        script = nb.with_suffix(".py").read_text()
        assert colab.update_script(script, nb.name) == script, f"{nb.name}.py: run python -m wbcbench.colab"
        assert colab.CELL_HEADER + "\n" + colab.setup_cell(data) + "\n" in script  # the pair agrees


def test_setup_cells_differ_only_in_their_data():
    cells = {nb.name: first_code_cell(nb).source for nb in NOTEBOOKS}
    assert len({colab.DATA_CALL.sub("", c) for c in cells.values()}) == 1
    assert {n: colab.declared_data(c) for n, c in cells.items()} == {
        "01_datasets.ipynb": ["pbc", "lisc", "bccd", "jtsc", "cellavision"],
        "02_train_one_run.ipynb": ["pbc", "lisc", "bccd", "jtsc", "cellavision"],
        "03_benchmark_table.ipynb": [], "04_bn_analysis.ipynb": ["pbc", "lisc", "bccd", "jtsc", "cellavision"],
        "05_normalisation.ipynb": [], "06_cpu_study.ipynb": [], "07_pretrained.ipynb": [], "08_new_lab.ipynb": [],
        "09_your_model.ipynb": ["pbc", "lisc", "bccd", "jtsc", "cellavision"], "10_pretrained_converged.ipynb": []}


def _names(value) -> list[str]:
    return [n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()]


def test_declared_data_is_downloadable_and_covers_the_default_parameters():
    """Each notebook downloads what its default parameters read (train/test sets that are registry names)."""
    for nb in NOTEBOOKS:
        data = colab.declared_data(first_code_cell(nb).source)
        have = set(download.resolve(data)) if data else set()
        params = next(c for c in nbformat.read(nb, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
        ns: dict = {}
        exec(params.source, ns)
        used = [n for k in ("train", "test", "test_sets") if k in ns for n in _names(ns[k]) if n in DATASETS]
        assert set(download.resolve(used)) <= have if used else True, (nb.name, used, data)
        assert nb.name not in ("02_train_one_run.ipynb", "04_bn_analysis.ipynb") or used  # the check bites


def test_one_repository_url_everywhere():
    cell = colab.setup_cell([])
    assert re.search(r"WBCBENCH_REPO_URL:-([^}]+)\}", cell).group(1) == colab.REPO_URL
    assert re.search(r"WBCBENCH_REPO_BRANCH:-([^}]+)\}", cell).group(1) == colab.REPO_BRANCH
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == colab.REPO_URL and config["repository"]["branch"] == colab.REPO_BRANCH
    assert config["launch_buttons"]["colab_url"] == colab.COLAB_URL
    assert config.get("repository", {}).get("path_to_book", "") == ""  # the buttons' paths are repository paths
    urls = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"].get("urls", {})
    assert all(u.startswith(colab.REPO_URL) for u in urls.values() if "github.com" in u), urls
    for nb in NOTEBOOKS:
        markdown = "\n".join(c.source for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "markdown")
        badges = colab.BADGE.findall(markdown)
        assert badges == [colab.badge_url(nb)], (nb.name, badges)
        assert colab.badge_url(nb) == (f"https://colab.research.google.com/github/wbc-benchmark/wbc-benchmark/"
                                       f"blob/{colab.REPO_BRANCH}/notebooks/{nb.name}")


def test_outside_colab_the_cell_only_finds_the_repository_root(tmp_path, monkeypatch):
    def no(*a, **k):
        raise AssertionError(f"the set-up cell ran {a} outside Colab")
    monkeypatch.setattr(subprocess, "run", no)
    source = first_code_cell(NOTEBOOKS[1]).source
    for cwd in (REPO_ROOT / "notebooks", tmp_path):
        monkeypatch.chdir(cwd)
        path = list(sys.path)
        ns: dict = {}
        exec(source, ns)
        assert ns["ROOT"] == REPO_ROOT and Path.cwd() == cwd and sys.path == path
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(WbcError, match="list of dataset names"):
        colab.setup(data="pbc")


SCRIPT = """# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
# ---

# %% [markdown]
# # Title
#
# [**▶ Open in Colab**](https://colab.research.google.com/github/someone/else/blob/dev/notebooks/old.ipynb)

# %%
import sys

if "google.colab" in sys.modules:
    pass

# %% tags=["parameters"]
x = 1
"""


def test_update_script_writes_only_the_setup_cell_and_the_badge():
    with pytest.raises(WbcError, match="07_x.py has no set-up cell"):
        colab.update_script(SCRIPT, "07_x.py")
    once = colab.update_script(SCRIPT, "07_x.py", ["lisc"])
    assert colab.badge_url("07_x.py") in once and "someone/else" not in once
    cells = once.split("\n# %%")
    assert cells[2].startswith(' tags=["remove-cell"]\n' + colab.setup_cell(["lisc"]))
    assert "# %%\nimport sys\n\nif \"google.colab\"" in once and once.endswith('# %% tags=["parameters"]\nx = 1\n')
    assert colab.update_script(once, "07_x.py") == once  # the declared data is kept; nothing else moves
    twice = colab.update_script(once, "07_x.py", ["pbc", "bccd"])
    assert colab.declared_data(twice) == ["pbc", "bccd"] and twice.count(colab.SETUP_MARK) == 1
    with pytest.raises(WbcError, match="list of dataset names"):
        colab.update_script(SCRIPT, "07_x.py", ["pbc", ""])


def test_write_rewrites_the_copies_and_keeps_outputs(tmp_path):
    """write() on copies: the set-up cell and badge of the .py and its .ipynb, _config.yml's repository settings;
    other cells and their outputs are untouched, and a second run changes nothing."""
    py = tmp_path / "03_benchmark_table.py"
    stale = (REPO_ROOT / "notebooks" / py.name).read_text().replace("blob/main/", "blob/old/")
    py.write_text(stale.replace(colab.setup_cell([]), colab.setup_cell(["lisc"]).replace("main", "dev")))
    nb = nbformat.read(REPO_ROOT / "notebooks" / "03_benchmark_table.ipynb", as_version=4)
    nb.cells[-1].outputs = [nbformat.v4.new_output("stream", text="kept\n")]
    next(c for c in nb.cells if c.cell_type == "code").source = "old set-up"
    nbformat.write(nb, tmp_path / "03_benchmark_table.ipynb")
    config = tmp_path / "_config.yml"
    config.write_text("title: x\nrepository:\n  url: https://github.com/a/b\n  branch: dev\n"
                      "launch_buttons:\n  colab_url: https://colab.research.google.com\n")
    changed = colab.write([py], data=[], config=config)
    assert changed == [py, py.with_suffix(".ipynb"), config]
    assert py.read_text() == (REPO_ROOT / "notebooks" / py.name).read_text()
    new = nbformat.read(py.with_suffix(".ipynb"), as_version=4)
    assert first_code_cell(py.with_suffix(".ipynb")).source == colab.setup_cell([])
    assert new.cells[-1].outputs[0]["text"] == "kept\n"
    assert yaml.safe_load(config.read_text())["repository"] == {"url": colab.REPO_URL, "branch": colab.REPO_BRANCH}
    assert colab.write([py], config=config) == []


# ---------------------------------------------------------------------------------------------------------
# A simulated Colab runtime

FAKE_COLAB = """import os, sys
with open(os.environ["FAKE_COLAB_LOG"], "a") as f:  # which interpreter ran the notebook
    f.write(sys.executable + "\\n")
"""
DEPS_CHECK = """import sys
from importlib.metadata import requires, version
from packaging.requirements import Requirement
for r in map(Requirement, requires("wbcbench")):
    if not r.marker and not r.specifier.contains(version(r.name), prereleases=True):
        sys.exit(f"{r} not satisfied: {version(r.name)}")
import wbcbench
print(wbcbench.__file__)
"""


def snapshot(dest: Path, branch: str) -> str:
    """A local clone of this repository whose `branch` holds the working tree as it is now (tracked and
    untracked-but-not-ignored files, uncommitted changes included): what Colab would clone. Returns its commit."""
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "-C", str(dest)]
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(REPO_ROOT), str(dest)], check=True)
    subprocess.run([*git, "symbolic-ref", "HEAD", f"refs/heads/{branch}"], check=True)
    subprocess.run([*git, f"--work-tree={REPO_ROOT}", "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "working tree"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def outputs(nb_path: Path) -> list[str]:
    """Every text output of an executed notebook, in order (streams, and markdown/plain results)."""
    out = []
    for cell in nbformat.read(nb_path, as_version=4).cells:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            out.append(o.get("text") or data.get("text/markdown") or data.get("text/plain", ""))
    return out


@pytest.mark.slow
def test_simulated_colab_runs_notebooks_02_and_03(tmp_path, data_root, httpserver):
    """Colab, simulated: a fake `google.colab` module on PYTHONPATH, the repository URL pointing at a local clone
    of the working tree, the loopback data server of test_download.py serving full archives in each source's
    layout (the CLI checks them against the shipped md5 manifests), and a venv that sees this interpreter's
    packages (venvs.make_venv) so that torch and friends are not installed twice. The set-up cell's
    `pip install -e` therefore runs with PIP_NO_DEPS (and no index): acceptable only because the venv already
    sees every dependency, which the test checks against wbcbench's declared requirements. This interpreter's
    own install of wbcbench is visible there too, so the test also checks that the notebooks ran the clone's
    code (the run's recorded commit is the clone's). Notebooks 02 (smoke parameters) and 03 run with
    papermill in that venv, each from an empty working folder; then the cell is re-run where a clone already
    exists, as after a runtime restart."""
    branch = "colab-test"
    commit = snapshot(tmp_path / "src", branch)
    venv = tmp_path / "venv"
    python = make_venv(venv)
    fake = tmp_path / "fake"
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "colab" / "__init__.py").write_text(FAKE_COLAB)
    log = tmp_path / "colab.log"

    rows = {f: download.load_manifest(f) for f in download.FOLDERS}
    archives = make_archives(rows, lambda f, e: (data_root / f / e.path).read_bytes(), zipfile.ZIP_STORED)
    Server(httpserver, archives)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WBCBENCH_", "PIP_", "JUPYTER", "VIRTUAL_ENV")) and k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(fake), PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(venv),
               FAKE_COLAB_LOG=str(log), WBCBENCH_REPO_URL=str(tmp_path / "src"), WBCBENCH_REPO_BRANCH=branch,
               WBCBENCH_DOWNLOAD_BASE=httpserver.url_for("/"), WBCBENCH_CACHE=str(tmp_path / "cache"),
               PIP_NO_DEPS="1", PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1")

    def papermill(name: str, work: Path, *params: str) -> Path:
        work.mkdir()
        out = tmp_path / f"{name}.ipynb"
        r = subprocess.run([str(python), "-m", "papermill", str(REPO_ROOT / "notebooks" / f"{name}.ipynb"), str(out),
                            "-k", "python3", "--cwd", str(work), *params], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=400)
        assert r.returncode == 0, r.stderr[-4000:]
        return out

    work = tmp_path / "content"
    out = papermill("02_train_one_run", work, "-p", "test", "lisc", "-p", "device", "cpu", "-p", "progress", "False")
    clone = work / colab.CLONE
    assert f"working in {clone}" in "".join(outputs(out))
    assert subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD", "--abbrev-ref", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.split() == [commit, branch]
    assert sorted(p.name for p in (clone / "data").iterdir() if not p.name.startswith(".")) == \
        sorted(download.FOLDERS)
    (run,) = (clone / "runs").glob("resnet18_bn-smoke-s0-*")
    assert (run / "done").is_file() and (run / "eval" / "lisc" / "metrics.json").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["code"] == {"commit": commit, "dirty": False}  # the clone's code ran, unchanged
    deps = subprocess.run([str(python), "-c", DEPS_CHECK], env=env, cwd=tmp_path,
                          capture_output=True, text=True)
    assert deps.returncode == 0 and deps.stdout.strip() == str(clone / "wbcbench" / "__init__.py"), deps

    out = papermill("03_benchmark_table", tmp_path / "content3")
    clone3 = tmp_path / "content3" / colab.CLONE
    texts = outputs(out)
    assert f"working in {clone3}" in "".join(texts) and not (clone3 / "data").exists()
    runs, _ = load_runs(REPO_ROOT / "results" / "cpu", "cpu")
    n = runs["run_dir"].nunique()
    assert n > 0 and any(t.startswith(f"**{n} finished runs** of profile `cpu`") for t in texts), texts[:3]
    table = next(t for t in texts if t.startswith("|"))
    assert all(f"| {arm_name(m)} " in table for m in runs["model"].unique()) and "majority baseline" in table

    # a restarted runtime: the clone is there already, so the cell installs and downloads without cloning
    cell = first_code_cell(REPO_ROOT / "notebooks" / "02_train_one_run.ipynb").source
    r = subprocess.run([str(python), "-c", cell], env=env, cwd=work, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"working in {clone}" in r.stdout and "pbc: already present" in r.stdout, r.stdout
    assert sorted(p.name for p in work.iterdir()) == [colab.CLONE]
    kernels = log.read_text().splitlines()  # two kernels and the restarted cell, plus their subprocesses
    assert len(kernels) >= 3 and set(kernels) == {str(python)}
