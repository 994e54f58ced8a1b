"""Hand-made collect() tables and run folders for the table and study tests (no training, no data)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from wbcbench.core.classes import CLASSES


def runs_frame(rows) -> pd.DataFrame:
    """[(model, eval_mode, test_set, seed, value[, {column: value}])] -> a collect()-like table (value in
    every metric; the optional dict overrides columns, e.g. accuracy, top_prediction_share, run_dir)."""
    out = []
    for model, mode, test, seed, v, *extra in rows:
        out.append({"model": model, "profile": "cpu", "train": "pbc:train", "eval_mode": mode, "test_set": test,
                    "seed": seed, "accuracy": v, "balanced_accuracy": v, "balanced_accuracy_min5": v,
                    "macro_f1": v, "majority_baseline": 0.5, "top_prediction_share": None,
                    "run_dir": f"/runs/{model}-s{seed}", "eval_dir": f"/runs/{model}-s{seed}/eval/{test}",
                    **{f"recall_{c}": v for c in CLASSES}, **(extra[0] if extra else {})})
    return pd.DataFrame(out)


def write_run(root, model, seed, evals, done=True, hparams=None, log_seconds=(10.0, 20.0), predictions=None):
    """A run directory as a legacy (committed) run has it: config.json, log.csv, eval/<name>/metrics.json
    (the folder name is `evals`' key, 'test@adabn' for AdaBN), done; `predictions` {key: [predicted class,
    ...]} adds eval/<key>/predictions.csv."""
    run = root / f"{model}-cpu-s{seed}-x"
    (run / "eval").mkdir(parents=True)
    hp = {"crop_size": 48, "stored_size": 56, "epochs": 6, "train_subset_per_class": 200, "lr": 0.001,
          "batch_size": 64, "pretrained": False, "name": "cpu", **(hparams or {})}
    names = sorted({k.split("@")[0] for k in evals})
    (run / "config.json").write_text(json.dumps({"model": model, "profile": "cpu", "seed": seed,
                                                 "train": "pbc:train", "test": names, "adapt": ["adabn"],
                                                 "hparams": hp}))
    pd.DataFrame({"epoch": range(1, len(log_seconds) + 1), "seconds": log_seconds}).to_csv(run / "log.csv")
    for key, (acc, cm) in evals.items():
        d = run / "eval" / key
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps({
            "test_set": key.split("@")[0], "eval_mode": "adabn" if "@" in key else "standard", "n": 10,
            "accuracy": acc, "balanced_accuracy": acc, "balanced_accuracy_min5": acc, "majority_baseline": 0.3,
            "per_class_recall": {c: (None if c == "Basophil" else acc) for c in CLASSES},
            "class_counts": {c: (0 if c == "Basophil" else 2) for c in CLASSES}, "confusion": cm}))
        if key in (predictions or {}):
            pd.DataFrame({"path": range(len(predictions[key])), "label": "Neutrophil",
                          "prediction": predictions[key]}).to_csv(d / "predictions.csv", index=False)
    if done:
        (run / "done").write_text("")
    return run


def eye(k):
    return (np.eye(5, dtype=int) * k).tolist()
