"""Metrics against examples worked out by hand, and against scikit-learn on random and edge-case inputs."""
import math
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.dummy import DummyClassifier

from wbcbench.core.classes import CLASSES
from wbcbench.core.metrics import MIN_CLASS_SUPPORT, compute_metrics, confusion_matrix, expected_calibration_error


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


# ------------------------------------------------------------------ against scikit-learn

def _random_case(rng, n, classes, predicted=None):
    """n images whose true classes are drawn from `classes`, and softmax-like probabilities whose argmax is
    drawn from `predicted` (default: any class)."""
    labels = rng.choice(classes, size=n)
    probs = rng.dirichlet(np.ones(5), size=n)
    top = rng.choice(predicted if predicted is not None else np.arange(5), size=n)
    probs[np.arange(n), top] += 1.0  # that class becomes the argmax
    return labels, probs / probs.sum(1, keepdims=True)


CASES = {
    "every class": dict(n=200, classes=np.arange(5)),
    "Basophil and Monocyte absent from the test set": dict(n=60, classes=np.array([1, 2, 4])),
    "Lymphocyte never predicted": dict(n=80, classes=np.arange(5), predicted=np.array([0, 1, 3, 4])),
    "absent classes predicted, present ones never": dict(n=40, classes=np.array([0, 4]), predicted=np.array([1, 2, 4])),
    "one class in the truth, one in the predictions": dict(n=7, classes=np.array([3]), predicted=np.array([2])),
    "a rare class (< 5 images) among common ones": dict(n=30, classes=np.array([0, 4, 4, 4, 1, 1])),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("seed", range(3))
def test_metrics_equal_scikit_learns(case, seed):
    """accuracy, balanced accuracy, per-class recall, the confusion matrix, NLL and the majority baseline
    are scikit-learn's; macro-F1 is f1_score over the classes present (the documented choice, see
    test_macro_f1_differs_from_scikit_learns_default_by_the_documented_choice); balanced_accuracy_min5 is
    recall_score's macro average over the classes with >= 5 images."""
    rng = np.random.default_rng([seed, list(CASES).index(case)])
    labels, probs = _random_case(rng, **CASES[case])
    preds, everything = probs.argmax(1), list(range(5))
    m = compute_metrics(labels, probs)
    present = sorted(set(labels.tolist()))
    assert m["n"] == len(labels)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(labels, preds), abs=1e-12)
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": left out, as ours
        warnings.simplefilter("ignore", UserWarning)
        assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(labels, preds), abs=1e-12)
    assert m["macro_f1"] == pytest.approx(
        skm.f1_score(labels, preds, labels=present, average="macro", zero_division=0), abs=1e-12)
    assert np.array_equal(m["confusion"], skm.confusion_matrix(labels, preds, labels=everything))
    assert m["nll"] == pytest.approx(skm.log_loss(labels, probs, labels=everything), abs=1e-12)
    recall = skm.recall_score(labels, preds, labels=everything, average=None, zero_division=np.nan)
    assert [math.nan if r is None else r for r in m["per_class_recall"].values()] == pytest.approx(
        list(recall), abs=1e-12, nan_ok=True)
    big = [c for c in everything if (labels == c).sum() >= MIN_CLASS_SUPPORT]
    if big:
        assert m["balanced_accuracy_min5"] == pytest.approx(
            skm.recall_score(labels, preds, labels=big, average="macro"), abs=1e-12)
    else:
        assert m["balanced_accuracy_min5"] is None
    dummy = DummyClassifier(strategy="most_frequent").fit(np.zeros((len(labels), 1)), labels)
    assert m["majority_baseline"] == pytest.approx(dummy.score(np.zeros((len(labels), 1)), labels), abs=1e-12)
    assert m["majority_class"] == CLASSES[int(dummy.predict(np.zeros((1, 1)))[0])]


def test_macro_f1_differs_from_scikit_learns_default_by_the_documented_choice():
    """compute_metrics' docstring: macro-F1 averages over the classes present in the test set; scikit-learn's
    default averages over the classes in the truth or the predictions, and labels=range(5) over all five."""
    labels, preds = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])  # Lymphocyte predicted, never true
    m = compute_metrics(labels, onehot(preds))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(labels, preds, labels=[0, 1], average="macro"))
    assert skm.f1_score(labels, preds, average="macro") == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert skm.f1_score(labels, preds, labels=range(5), average="macro", zero_division=0) == pytest.approx(
        (2 / 3 + 1) / 5)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1) / 2)


def test_nll_caps_a_zero_probability_differently_from_scikit_learn():
    """A true class given probability 0 (a float32 softmax can underflow) has an infinite log loss; ours caps
    it at -log(1e-12), scikit-learn at -log(float64 eps). Above the caps the two agree (the test above)."""
    labels, probs = np.array([0, 1]), np.array([[1.0, 0, 0, 0, 0], [0.5, 0.5, 0, 0, 0]])
    m = compute_metrics(labels, probs)
    assert m["nll"] == pytest.approx((0 + -math.log(0.5)) / 2)
    m = compute_metrics(np.array([0, 1]), np.array([[0, 1.0, 0, 0, 0], [0.5, 0.5, 0, 0, 0]]))
    assert m["nll"] == pytest.approx((-math.log(1e-12) - math.log(0.5)) / 2)
    sk = skm.log_loss([0, 1], [[0, 1.0, 0, 0, 0], [0.5, 0.5, 0, 0, 0]], labels=range(5))
    assert sk == pytest.approx((-math.log(np.finfo(float).eps) - math.log(0.5)) / 2) and sk > m["nll"]
