"""The GitHub workflows: actionlint (with shellcheck on every `run:` script) finds nothing in them, the book
workflow builds with the README's command 1 and deploys to Pages, and the tests workflow runs `.ci/run`."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"


def actionlint(*files: Path, cwd: Path = REPO) -> subprocess.CompletedProcess:
    exe, sc = shutil.which("actionlint"), shutil.which("shellcheck")
    assert exe, "actionlint is not on PATH: pip install -r requirements.txt"
    assert sc, "shellcheck is not on PATH (actionlint would skip the run: scripts): pip install -r requirements.txt"
    return subprocess.run([exe, "-no-color", "-shellcheck", sc, *map(str, files)], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def load(name: str) -> dict:
    wf = yaml.safe_load((WORKFLOWS / name).read_text())
    wf["on"] = wf.pop(True, wf.get("on"))  # YAML 1.1 reads the key `on` as True
    return wf


def runs(job: dict) -> list[str]:
    return [s["run"].strip() for s in job["steps"] if "run" in s]


def uses(job: dict) -> list[str]:
    return [s["uses"].split("@")[0] for s in job["steps"] if "uses" in s]


def readme_command(n: int) -> str:
    """Command `n` of the README's 'The two commands': the code line after its `# n.` comment."""
    text = (REPO / "README.md").read_text()
    m = re.search(rf"```bash\n# {n}\.[^\n]*\n(.+?)\n```", text, re.S)
    assert m, f"README.md has no command {n}"
    return m.group(1).strip()


def test_actionlint_finds_nothing():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"book.yml", "tests.yml"}
    r = actionlint(*files)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The lint is real: an unknown runner label, a bad expression and a shellcheck finding are reported."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latst\n    steps:\n"
                   "      - run: echo ${{ github.nope }}\n      - run: cd $HOME/x; echo $UNQUOTED\n")
    r = actionlint(bad, cwd=tmp_path)
    assert r.returncode == 1
    assert "ubuntu-latst" in r.stdout and "nope" in r.stdout and "shellcheck" in r.stdout, r.stdout


def test_book_workflow_builds_with_the_readme_command_and_deploys_to_pages():
    wf = load("book.yml")
    assert wf["on"]["push"]["branches"] == ["main"] and "workflow_dispatch" in wf["on"]
    assert wf["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    assert readme_command(1) in runs(build), "book.yml must run the README's command 1 exactly"
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert uses(deploy) == ["actions/deploy-pages"]


@pytest.mark.parametrize("name", ["book.yml", "tests.yml"])
def test_workflows_keep_the_data_under_the_workspace(name):
    """Absolute WBCBENCH_DATA (notebooks run in notebooks/), and the download cached by the md5 manifests."""
    job = next(iter(load(name)["jobs"].values()))
    assert 'echo "WBCBENCH_DATA=$GITHUB_WORKSPACE/data" >> "$GITHUB_ENV"' in runs(job)
    cache = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == "data" and "wbcbench/data/manifests" in cache["with"]["key"]


def test_tests_workflow_runs_the_ci_script():
    wf = load("tests.yml")
    assert {"push", "pull_request"} <= set(wf["on"])
    job = wf["jobs"]["tests"]
    assert runs(job)[-1] == "bash .ci/run"
    assert job["timeout-minutes"] <= 90
