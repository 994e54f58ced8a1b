"""Scoring again from the predictions, without the network: when what a metric counts changes (the images an
evaluation set leaves out, wbcbench.data.duplicates), every committed evaluation's metrics.json is recomputed
from its predictions.csv, which holds every image's probabilities. No retraining, no checkpoint needed."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from wbcbench.core.atomic import write_json
from wbcbench.core.classes import CLASSES, class_index
from wbcbench.core.errors import WbcError
from wbcbench.core.metrics import compute_metrics
from wbcbench.data.duplicates import scored

#: 2: duplicates of training images and cross-label pairs left out of pbc:val and pbc:test. Recorded in every
#: metrics.json; an evaluation scored under an older version is rescored from its predictions.
SCORING_VERSION = 2


def score_predictions(test_set: str, table: pd.DataFrame, data_root=None) -> dict:
    """The metrics of one evaluation's predictions table (path, label, p_<class> ...), counting only the images
    `test_set` scores, with the scoring version and the paths left out."""
    keep = scored(test_set, table["path"], data_root)
    labels = np.array([class_index(c) for c in table["label"]])
    probs = table[[f"p_{c}" for c in CLASSES]].to_numpy(np.float64)
    metrics = compute_metrics(labels[keep], probs[keep])
    return {**metrics, "scoring_version": SCORING_VERSION, "left_out": sorted(table["path"][~keep])}


def rescore_evaluation(eval_dir, data_root=None) -> bool:
    """Rewrite eval_dir/metrics.json from its predictions.csv when it was scored under an older version;
    True when it changed. Fields other than the metrics (test set, mode, manifest, versions) are kept."""
    eval_dir = Path(eval_dir)
    try:
        metrics = json.loads((eval_dir / "metrics.json").read_text())
    except (OSError, ValueError) as e:
        raise WbcError(f"cannot read {eval_dir / 'metrics.json'}: {e}") from None
    if metrics.get("scoring_version") == SCORING_VERSION:
        return False
    table = pd.read_csv(eval_dir / "predictions.csv")
    if scored(metrics["test_set"], table["path"], data_root).all():  # nothing left out: the metrics stand
        new = {**metrics, "scoring_version": SCORING_VERSION, "left_out": []}
    else:
        new = {**metrics, **score_predictions(metrics["test_set"], table, data_root)}
    write_json(eval_dir / "metrics.json", new)
    return True


def rescore(root, data_root=None) -> int:
    """rescore_evaluation for every evaluation under `root` (run folders or folders of them); the count
    rewritten."""
    return sum(rescore_evaluation(m.parent, data_root) for m in sorted(Path(root).rglob("eval/*/metrics.json"))
               if (m.parent / "predictions.csv").is_file())
