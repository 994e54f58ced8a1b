"""Metrics against examples worked out by hand."""
import math

import numpy as np
import pytest

from wbcbench.core.metrics import compute_metrics, confusion_matrix, expected_calibration_error


def onehot(preds, p=1.0):
    out = np.full((len(preds), 5), (1 - p) / 4)
    out[np.arange(len(preds)), preds] = p
    return out


def test_hand_worked_example():
    # truth: B, E, E, N, N, N; predicted: B, E, N, N, N, E
    labels = np.array([0, 1, 1, 4, 4, 4])
    m = compute_metrics(labels, onehot([0, 1, 4, 4, 4, 1], p=0.9))
    assert m["accuracy"] == pytest.approx(4 / 6)
    # recalls: B 1/1, E 1/2, N 2/3 (L, M absent -> None, excluded)
    assert m["per_class_recall"] == {"Basophil": 1.0, "Eosinophil": 0.5, "Lymphocyte": None,
                                     "Monocyte": None, "Neutrophil": pytest.approx(2 / 3)}
    assert m["balanced_accuracy"] == pytest.approx((1 + 0.5 + 2 / 3) / 3)
    # F1: B 1, E p=1/2 r=1/2 -> 1/2, N p=2/3 r=2/3 -> 2/3
    assert m["macro_f1"] == pytest.approx((1 + 0.5 + 2 / 3) / 3)
    assert m["majority_baseline"] == pytest.approx(3 / 6) and m["majority_class"] == "Neutrophil"
    assert m["confusion"][1] == [0, 1, 0, 0, 1] and m["confusion"][4] == [0, 1, 0, 0, 2]
    assert m["nll"] == pytest.approx(-(4 * math.log(0.9) + 2 * math.log(0.025)) / 6)
    assert m["balanced_accuracy_min5"] is None  # no class has 5 test images


def test_ece_hand_worked():
    # all confidence 0.9 (one bin), 4 of 6 correct: |4/6 - 0.9|
    labels = np.array([0, 1, 1, 4, 4, 4])
    assert expected_calibration_error(labels, onehot([0, 1, 4, 4, 4, 1], 0.9)) == pytest.approx(abs(4 / 6 - 0.9))


def test_balanced_accuracy_min5_drops_rare_classes():
    labels = np.array([0] + [4] * 5)            # one Basophil, five Neutrophils
    m = compute_metrics(labels, onehot([4] * 6))  # everything called Neutrophil
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["balanced_accuracy_min5"] == pytest.approx(1.0)


def test_confusion_rows_are_truth():
    cm = confusion_matrix(np.array([0, 0, 2]), np.array([0, 3, 3]))
    assert cm[0, 0] == 1 and cm[0, 3] == 1 and cm[2, 3] == 1 and cm.sum() == 3


def test_macro_f1_averages_over_the_classes_present_only():
    """A class that is predicted but absent from the test set is left out of the average (scikit-learn's
    default f1_score(average="macro") would count it as 0 over the truth-or-predicted classes)."""
    # truth: B, B, E, E; predicted: B, L, E, E (Lymphocyte predicted once, never true)
    labels = np.array([0, 0, 1, 1])
    m = compute_metrics(labels, onehot([0, 2, 1, 1]))
    # B: precision 1/1, recall 1/2 -> F1 2/3; E: precision 2/2, recall 2/2 -> F1 1; L, M, N absent
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1) / 2)          # 0.8333, ours
    assert m["macro_f1"] != pytest.approx((2 / 3 + 1 + 0) / 3)      # 0.5556, truth-or-predicted classes
    assert m["macro_f1"] != pytest.approx((2 / 3 + 1) / 5)          # 0.3333, all five labels
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 1) / 2)  # the same classes-present rule
    assert m["per_class_recall"]["Lymphocyte"] is None


def test_bad_shapes_rejected():
    with pytest.raises(ValueError):
        compute_metrics(np.array([0, 1]), np.ones((3, 5)) / 5)
