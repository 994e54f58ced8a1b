"""Runs are listed and counted per trained network, the model with its training augmentation
(wbcbench.analysis.verdict.variant): four Lite0 arms of one seed never pass for one."""
from __future__ import annotations

import json

from runfolders import eye, write_run

from wbcbench.report import run_tables
from wbcbench.runs.collect import run_index


def lite0_arms(root):
    """Seeds 0 and 1 of plain Lite0 (runs of 100 and 150 s) and of Lite0 trained with HED jitter (200 and 250 s),
    each arm in its own folder."""
    for arm, hp, secs in (("plain", {}, 100.0), ("hed", {"augment": "hed"}, 200.0)):
        for seed in (0, 1):
            run = write_run(root / arm, "efficientnet_lite0", seed, {"bccd": (0.5, eye(1))}, hparams=hp)
            duration = secs + 50 * seed
            (run / "notebook.ipynb").write_text(json.dumps({"metadata": {"papermill": {"duration": duration}}}))


def test_rerun_commands_and_timing_are_per_variant(tmp_path):
    lite0_arms(tmp_path)
    rerun = run_tables.study_rerun(tmp_path, out="results/x")
    assert list(zip(rerun["variant"], rerun["seed"])) == [("efficientnet_lite0", 0), ("efficientnet_lite0", 1),
                                                          ("efficientnet_lite0+hed", 0), ("efficientnet_lite0+hed", 1)]
    one = rerun.drop_duplicates("variant").set_index("variant")["cli"]
    assert "--augment" not in one["efficientnet_lite0"] and "--augment hed" in one["efficientnet_lite0+hed"]
    timing = run_tables.grid_time(tmp_path).set_index("model")
    assert timing["runs"].to_dict() == {"efficientnet_lite0": 2, "efficientnet_lite0+hed": 2, "all": 4}
    assert timing["median run (s)"].to_dict() == {"efficientnet_lite0": 125.0, "efficientnet_lite0+hed": 225.0,
                                                  "all": 175.0}
    assert timing["slowed runs"].to_dict() == {"efficientnet_lite0": 0, "efficientnet_lite0+hed": 0, "all": 0}
    first = run_tables.grid_time(tmp_path, seeds=[0]).set_index("model")   # the plan projects from seed 0
    assert first["runs"].to_dict() == {"efficientnet_lite0": 1, "efficientnet_lite0+hed": 1, "all": 2}
    assert first["median run (s)"].to_dict() == {"efficientnet_lite0": 100.0, "efficientnet_lite0+hed": 200.0,
                                                 "all": 150.0}


def test_a_run_with_an_epoch_over_twice_its_median_counts_as_disturbed(tmp_path):
    even = write_run(tmp_path / "a", "efficientnet_lite0", 0, {"bccd": (0.5, eye(1))}, log_seconds=(60, 62, 61, 80))
    paused = write_run(tmp_path / "b", "efficientnet_lite0", 1, {"bccd": (0.5, eye(1))},
                       log_seconds=(60, 62, 300, 61))
    for run in (even, paused):
        (run / "notebook.ipynb").write_text(json.dumps({"metadata": {"papermill": {"duration": 400.0}}}))
    timing = run_tables.grid_time(tmp_path).set_index("model")
    assert timing.loc["efficientnet_lite0", "slowed runs"] == 1 and timing.loc["all", "slowed runs"] == 1
    assert run_tables.grid_time(tmp_path, seeds=[0]).set_index("model").loc["all", "slowed runs"] == 0


def test_runs_appendix_names_the_augmentation(tmp_path):
    lite0_arms(tmp_path)
    idx = run_index(tmp_path)
    assert sorted(zip(idx["augment"], idx["seed"])) == [("hed", 0), ("hed", 1), ("none", 0), ("none", 1)]
