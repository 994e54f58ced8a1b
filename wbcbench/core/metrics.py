"""Per-test-set metrics. Accuracy alone misleads on imbalanced domains (BCCD is 59% Neutrophil), so
balanced accuracy, macro-F1, calibration and the majority baseline come with it. Intervals over seeds are
in wbcbench.analysis.stats."""
from __future__ import annotations

import numpy as np

from wbcbench.core.classes import CLASSES, NUM_CLASSES

MIN_CLASS_SUPPORT = 5  # classes with fewer test images are left out of `balanced_accuracy_min5`


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, k: int = NUM_CLASSES) -> np.ndarray:
    """Rows are true classes, columns predictions."""
    return np.bincount(np.asarray(labels) * k + np.asarray(preds), minlength=k * k).reshape(k, k)


def expected_calibration_error(labels, probs, n_bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al. 2017)."""
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def compute_metrics(labels, probs) -> dict:
    """All metrics of one model on one test set; recall of a class absent from the set is None.

    Averages over classes (balanced_accuracy, macro_f1) run over the classes *present* in the test set
    (at least one test image). A class that is predicted but absent is left out: the images wrongly
    given to it lower the recall, hence the F1, of their true classes. scikit-learn's
    `f1_score(average="macro")` differs: by default it averages over every class in the truth *or* the
    predictions (an absent class that is predicted counts with F1 0), and with `labels=` over every label
    given. Ours equals it with `labels=<the classes present>`."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if labels.ndim != 1 or probs.shape != (len(labels), NUM_CLASSES) or len(labels) == 0:
        raise ValueError(f"need labels (N,) and probs (N, {NUM_CLASSES}) with N > 0, got {labels.shape}, {probs.shape}")
    preds = probs.argmax(1)
    cm = confusion_matrix(labels, preds)
    support = cm.sum(1)
    predicted = cm.sum(0)
    tp = np.diag(cm)
    present = support > 0
    recall = np.where(present, tp / np.maximum(support, 1), np.nan)
    precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
    f1 = np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    big = support >= MIN_CLASS_SUPPORT
    p_true = np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)
    return {
        "n": int(len(labels)),
        "class_counts": {c: int(s) for c, s in zip(CLASSES, support)},
        "accuracy": float(tp.sum() / len(labels)),
        "balanced_accuracy": float(np.nanmean(recall[present])),
        "balanced_accuracy_min5": float(np.mean(recall[big])) if big.any() else None,
        "macro_f1": float(f1[present].mean()),
        "per_class_recall": {c: (None if not p else float(r)) for c, r, p in zip(CLASSES, recall, present)},
        "confusion": cm.tolist(),
        "nll": float(-np.log(p_true).mean()),
        "ece": expected_calibration_error(labels, probs),
        "majority_baseline": float(support.max() / len(labels)),
        "majority_class": CLASSES[int(support.argmax())],
    }
