"""Metrics checked against scikit-learn, including classes with no predictions and with no support."""

from __future__ import annotations

import numpy as np
import pytest

sklearn_metrics = pytest.importorskip("sklearn.metrics")

from ferkit.evaluate.metrics import classification_report, confusion_matrix, normalise_rows  # noqa: E402
from ferkit.labels import EMOTIONS  # noqa: E402

LABELS = list(range(7))


def _predictions(seed, n=300):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 7, n)
    # mostly right, otherwise random: a realistic, non-degenerate confusion matrix
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, 7, n))
    return y_true, y_pred


def _compare(y_true, y_pred):
    report = classification_report(y_true, y_pred, EMOTIONS)
    precision, recall, f1, support = sklearn_metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=LABELS, zero_division=0)
    for i, name in enumerate(EMOTIONS):
        row = report["per_class"][name]
        assert row["precision"] == pytest.approx(precision[i], abs=1e-12), name
        assert row["recall"] == pytest.approx(recall[i], abs=1e-12), name
        assert row["f1"] == pytest.approx(f1[i], abs=1e-12), name
        assert row["support"] == support[i], name
    assert report["confusion_matrix"] == sklearn_metrics.confusion_matrix(y_true, y_pred, labels=LABELS).tolist()
    assert report["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(y_true, y_pred), abs=1e-12)
    assert report["count"] == len(y_true) and report["labels"] == list(EMOTIONS)
    return report


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_report_matches_sklearn(seed):
    y_true, y_pred = _predictions(seed)
    report = _compare(y_true, y_pred)
    assert report["macro_f1"] == pytest.approx(sklearn_metrics.f1_score(y_true, y_pred, average="macro"), abs=1e-12)


def test_class_never_predicted_and_class_never_present():
    y_true, y_pred = _predictions(3)
    y_pred[y_pred == 2] = 4               # fear is never predicted: precision 0 (no division), recall 0
    keep = (y_true != 5) & (y_pred != 5)  # surprise neither occurs nor is predicted
    y_true, y_pred = y_true[keep], y_pred[keep]
    report = _compare(y_true, y_pred)
    assert report["per_class"]["fear"]["precision"] == 0.0 and report["per_class"]["fear"]["support"] > 0
    assert report["per_class"]["surprise"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # sklearn's macro average covers the classes that occur in y_true or y_pred: surprise is in neither
    assert report["macro_f1"] == pytest.approx(
        sklearn_metrics.f1_score(y_true, y_pred, average="macro", zero_division=0), abs=1e-12)


def test_class_predicted_but_never_present():
    """A class with predictions but no support has F1 0; ferkit averages macro F1 over the classes present in
    y_true (sklearn with labels=the true classes), so that class does not count."""
    y_true, y_pred = _predictions(4)
    y_true[y_true == 1] = 0               # disgust never occurs, but is still predicted sometimes
    assert (y_pred == 1).any()
    report = _compare(y_true, y_pred)
    assert report["per_class"]["disgust"]["support"] == 0 and report["per_class"]["disgust"]["precision"] == 0
    present = np.unique(y_true)
    assert report["macro_f1"] == pytest.approx(
        sklearn_metrics.f1_score(y_true, y_pred, average="macro", labels=present, zero_division=0), abs=1e-12)


def test_perfect_and_empty():
    y = np.array([0, 1, 2, 3, 4, 5, 6, 6])
    report = classification_report(y, y, EMOTIONS)
    assert report["accuracy"] == 1.0 and report["macro_f1"] == 1.0
    empty = classification_report(np.array([], int), np.array([], int), EMOTIONS)
    assert empty["accuracy"] == 0.0 and empty["macro_f1"] == 0.0 and empty["count"] == 0


def test_confusion_matrix_orientation():
    cm = confusion_matrix(np.array([0, 0, 1, 2]), np.array([1, 1, 1, 0]), 3)
    assert cm.tolist() == [[0, 2, 0], [0, 1, 0], [1, 0, 0]]  # rows = true class, columns = prediction


def test_normalise_rows():
    y_true, y_pred = _predictions(5)
    y_true[y_true == 3] = 2  # row 3 becomes empty
    cm = confusion_matrix(y_true, y_pred, 7)
    normalised = normalise_rows(cm)
    sums = normalised.sum(axis=1)
    np.testing.assert_allclose(sums[cm.sum(axis=1) > 0], 1.0, rtol=1e-12)
    assert sums[3] == 0 and (normalised[3] == 0).all()
    assert (normalised >= 0).all() and (normalised <= 1).all()
    recall = sklearn_metrics.recall_score(y_true, y_pred, labels=LABELS, average=None, zero_division=0)
    np.testing.assert_allclose(np.diag(normalised), recall, rtol=1e-12)
    reference = sklearn_metrics.confusion_matrix(y_true, y_pred, labels=LABELS, normalize="true")
    rows = cm.sum(axis=1) > 0
    np.testing.assert_allclose(normalised[rows], reference[rows], rtol=1e-12)
