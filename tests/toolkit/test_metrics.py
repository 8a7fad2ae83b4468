"""The numpy metrics agree with scikit-learn's definitions, including absent and never-predicted classes."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from toolkit.metrics import emotion_metrics, weighted_f1

CLASSES = ["neutral", "angry", "happy", "sad", "worried", "surprise"]


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.choice(6, size=200, p=[0.4, 0.25, 0.2, 0.1, 0.05, 0.0])  # "surprise" never occurs
    preds = np.where(rng.random(200) < 0.6, labels, rng.choice(5, size=200))  # nor is it predicted
    ids = list(range(6))
    m = emotion_metrics(labels, preds, CLASSES)
    assert m["acc"] == pytest.approx(accuracy_score(labels, preds), abs=1e-12)
    assert m["f1"] == pytest.approx(f1_score(labels, preds, labels=ids, average="weighted", zero_division=0), abs=1e-12)
    assert list(m["per_class_f1"].values()) == pytest.approx(f1_score(labels, preds, labels=ids, average=None, zero_division=0), abs=1e-12)
    assert m["confusion"] == confusion_matrix(labels, preds, labels=ids).tolist()
    assert weighted_f1(labels, preds, 6) == m["f1"]


def test_a_class_predicted_but_absent_lowers_the_score():
    labels, preds = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    m = emotion_metrics(labels, preds, CLASSES[:3])
    assert m["per_class_f1"]["happy"] == 0.0 and m["acc"] == 0.75
    assert m["f1"] == pytest.approx(f1_score(labels, preds, labels=[0, 1, 2], average="weighted", zero_division=0))
