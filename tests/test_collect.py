"""Run folders into tables (wbcbench.runs.collect): finished runs only, a clear error for a folder that is not
there, and the appendix's run index."""
from __future__ import annotations

import pytest
from runfolders import eye, write_run

from wbcbench.core.errors import WbcError
from wbcbench.core.paths import REPO_ROOT
from wbcbench.runs.collect import collect, load_runs, resolve_dir, run_index


def test_collect_of_a_missing_folder_names_it(tmp_path):
    with pytest.raises(WbcError, match="nowhere"):
        collect(tmp_path / "nowhere")
    (tmp_path / "f").write_text("")
    with pytest.raises(WbcError, match="is not a folder"):
        collect(tmp_path / "f")
    assert load_runs(tmp_path / "nowhere")[0].empty  # a chapter built before any run: empty, not an error
    df, skipped = collect(tmp_path)
    assert df.empty and skipped == []


def test_collect_counts_finished_runs_only(tmp_path):
    write_run(tmp_path, "resnet18_bn", 0, {"bccd": (0.5, eye(1)), "bccd@adabn": (0.6, eye(2))})
    write_run(tmp_path, "resnet18_bn", 1, {"bccd": (0.1, eye(1))}, done=False)
    bad = write_run(tmp_path / "x", "resnet18_gn", 0, {"bccd": (0.3, eye(1))})
    (bad / "eval" / "bccd" / "metrics.json").write_text("{")
    df, skipped = collect(tmp_path)
    assert sorted(zip(df["eval_mode"], df["accuracy"])) == [("adabn", 0.6), ("standard", 0.5)]
    assert df["recall_Basophil"].isna().all() and (df["recall_Monocyte"] == df["accuracy"]).all()
    assert sorted(why.split(":")[0] for _, why in skipped) == ["unfinished (no done marker)", "unreadable"]
    only = load_runs(tmp_path, profile="paper")[0]
    assert only.empty


def test_a_run_with_one_unreadable_evaluation_is_skipped_whole(tmp_path):
    """A finished run counts whole or not at all: rows of its readable evaluations must not stay in the
    table while the run is listed as skipped (the verdict would pair seeds on half a run)."""
    bad = write_run(tmp_path, "resnet18_bn", 0, {"bccd": (0.5, eye(1)), "lisc": (0.6, eye(2))})
    (bad / "eval" / "lisc" / "metrics.json").write_text("{")
    df, skipped = collect(tmp_path)
    assert df.empty
    assert [run for run, _ in skipped] == [str(bad)]


def test_resolve_dir_falls_back_to_the_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_dir("results/cpu") == REPO_ROOT / "results" / "cpu"
    (tmp_path / "results" / "cpu").mkdir(parents=True)
    assert resolve_dir("results/cpu").resolve() == tmp_path / "results" / "cpu"


def test_run_index(tmp_path):
    run = write_run(tmp_path, "resnet18_bn", 0, {"bccd": (0.5, eye(1))})
    (run / "notebook.ipynb").write_text("{}")
    write_run(tmp_path, "resnet18_gn", 1, {}, done=False)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{")
    idx = run_index(tmp_path, repo_url="https://example.org/r/").set_index("run")
    assert idx.loc["broken", "status"] == "unreadable config.json"
    r = idx.loc[run.name]
    assert (r["model"], r["seed"], r["test"], r["adabn"], r["status"]) == ("resnet18_bn", 0, "bccd", True, "done")
    assert r["notebook"] == f"[notebook.ipynb](https://example.org/r/blob/main/{run}/notebook.ipynb)"
    assert idx.loc["resnet18_gn-cpu-s1-x", "status"] == "unfinished"
    assert idx.loc["resnet18_gn-cpu-s1-x", "notebook"] == "–"
    assert run_index(tmp_path / "nowhere").empty
