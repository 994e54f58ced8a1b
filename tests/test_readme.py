"""The README's computed verdict blocks (wbcbench.report.readme): equal to what the committed runs give, rewritten
only between their markers, and refused, with nothing written, when the markers are wrong."""
from __future__ import annotations

import subprocess
import sys

import pytest

from wbcbench.core.errors import WbcError
from wbcbench.core.paths import REPO_ROOT
from wbcbench.report import readme
from wbcbench.sweep.grids import grid_size


def _markers_text(names=tuple(readme.BLOCKS), inner="STALE TEXT"):
    return "".join(f"{s}\n{inner}\n{e}\nbetween\n" for s, e in map(readme.markers, names))


@pytest.mark.parametrize("name", list(readme.BLOCKS))
def test_readme_blocks_are_the_computed_verdicts(name):
    """README.md's blocks are exactly what `python -m wbcbench.report.readme README.md` writes from the committed
    runs: the README cannot disagree with them."""
    text = (REPO_ROOT / "README.md").read_text()
    start, end = readme.markers(name)
    held = text[text.index(start):text.index(end) + len(end)]
    assert held == readme.block(name), f"README.md's {name} block is stale: run `{readme.COMMAND}`"


def test_update_rewrites_only_the_blocks(tmp_path):
    empty = tmp_path / "runs"
    empty.mkdir()
    args = [f"--runs={n}={empty}" for n in readme.BLOCKS]
    path = tmp_path / "README.md"
    path.write_text("# x\nbefore\n" + _markers_text() + "after\n")
    assert readme.main([str(path), *args]) == 0
    text = path.read_text()
    assert text.startswith("# x\nbefore\n<!-- verdict:start -->\n")
    assert text.endswith("<!-- verdict-converged:end -->\nbetween\nafter\n")
    assert "STALE TEXT" not in text and text.count("between") == 3
    assert "0 of 40 runs" in text and "| f | TENT recovers accuracy of BN models |" in text
    assert "0 of 60 runs" in text and "| P3 | AdaBN recovers accuracy of the fine-tuned BN networks |" in text
    assert "no recipe can be chosen yet" in text
    v2_runs = grid_size("cpu-pretrained-v2")["runs"]   # 48 since the plan's 10-hour rule cut Lite1 to seed 0
    assert f"0 of {v2_runs} runs of the `cpu-pretrained-v2` grid" in text and "| V1 | BN frozen" in text
    assert "EfficientNet-Lite1's three arms run at seed 0 only (12 planned runs dropped): their comparisons are " \
        "undetermined (a test needs 2 seeds), so a claim holds on a domain only where it holds on both " \
        "EfficientNet-Lite0 and EfficientNet-Lite2." in text
    assert "Deploying in a new lab, so far (the low-budget study's recommendation above stands" in text
    assert "| undetermined | undetermined | undetermined | undetermined |" in text
    assert readme.update(path, {n: str(empty) for n in readme.BLOCKS}) is False  # idempotent


@pytest.mark.parametrize("bad", [
    "no markers\n",
    _markers_text(("verdict",)),                                               # the pretrained block missing
    "<!-- verdict:end -->\n<!-- verdict:start -->\n" + _markers_text(("verdict-pretrained",)),  # reversed
    _markers_text() + _markers_text(("verdict-pretrained",)),                 # twice
])
def test_wrong_markers_are_refused_and_nothing_is_written(tmp_path, capsys, bad):
    path = tmp_path / "README.md"
    path.write_text(bad)
    assert readme.main([str(path), f"--runs=verdict={tmp_path}"]) == 2
    assert path.read_text() == bad
    assert ":start --> line followed by one" in capsys.readouterr().err


def test_bad_paths_name_the_culprit(tmp_path, capsys):
    path = tmp_path / "README.md"
    path.write_text(_markers_text())
    assert readme.main([str(tmp_path / "nope.md")]) == 2
    assert "nope.md" in capsys.readouterr().err
    assert readme.main([str(path), f"--runs=verdict-pretrained={tmp_path / 'nothing'}"]) == 2
    assert "nothing (block verdict-pretrained) does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        readme.main([str(path), "--runs=verdicts=results/cpu"])
    assert e.value.code == 2 and "BLOCK=FOLDER" in capsys.readouterr().err
    with pytest.raises(WbcError):
        readme.update(tmp_path / "nope.md")
    assert path.read_text() == _markers_text()


def test_the_module_runs_as_the_readme_says(tmp_path):
    assert f"`{readme.COMMAND}`" in (REPO_ROOT / "README.md").read_text()
    path = tmp_path / "README.md"
    path.write_text(_markers_text())
    done = subprocess.run([sys.executable, "-m", "wbcbench.report.readme", str(path),
                           *[f"--runs={n}={tmp_path}" for n in readme.BLOCKS]],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "0 of 40 runs" in path.read_text() and "verdict blocks rewritten" in done.stdout

