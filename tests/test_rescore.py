"""Scoring again from the predictions (wbcbench.engine.rescore): an evaluation scored before the duplicates
were left out is rescored to exactly what a fresh evaluation scores, and every committed evaluation already is."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from wbcbench.core.paths import REPO_ROOT
from wbcbench.engine import rescore

pytestmark = pytest.mark.needs_data
RUN = REPO_ROOT / "results" / "cpu-pretrained" / "efficientnet_lite0-cpu-pretrained-s0-0bcb97b495"


def test_an_old_evaluation_is_rescored_without_its_duplicates(tmp_path, data_root):
    d = tmp_path / "pbc_test"
    shutil.copytree(RUN / "eval" / "pbc_test", d)
    committed = json.loads((d / "metrics.json").read_text())
    old = {k: v for k, v in committed.items() if k not in ("scoring_version", "left_out")}
    (d / "metrics.json").write_text(json.dumps(old))
    assert rescore.rescore_evaluation(d, data_root) is True
    new = json.loads((d / "metrics.json").read_text())
    assert new == committed and new["n"] == 3094 and len(new["left_out"]) == 5
    assert len(pd.read_csv(d / "predictions.csv")) == 3099            # every image still predicted
    assert rescore.rescore_evaluation(d, data_root) is False          # already at this version


def test_every_committed_evaluation_rederives_from_its_predictions(data_root):
    """pbc:val and pbc:test metrics equal a fresh scoring of their predictions; others list nothing left out."""
    checked = 0
    for m in sorted((REPO_ROOT / "results").rglob("eval/*/metrics.json")):
        metrics = json.loads(m.read_text())
        assert metrics.get("scoring_version") == rescore.SCORING_VERSION, m
        if metrics["test_set"] not in ("pbc:val", "pbc:test") or not (m.parent / "predictions.csv").is_file():
            assert metrics["left_out"] == [], m
            continue
        fresh = rescore.score_predictions(metrics["test_set"], pd.read_csv(m.parent / "predictions.csv"), data_root)
        for k in ("n", "accuracy", "balanced_accuracy_min5", "macro_f1", "left_out"):
            assert np.allclose(fresh[k], metrics[k]) if isinstance(fresh[k], float) else fresh[k] == metrics[k], (m, k)
        checked += 1
    assert checked > 100
