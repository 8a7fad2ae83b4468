"""The challenge metrics: accuracy and weighted F1 over the class list (scikit-learn definitions)."""
import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score


def emotion_metrics(labels, preds, classes):
    """Accuracy, weighted F1, per-class F1 and confusion matrix (rows: truth, columns: prediction)."""
    labels = np.asarray(labels)
    preds = np.asarray(preds)
    ids = list(range(len(classes)))
    per_class = f1_score(labels, preds, labels=ids, average=None, zero_division=0)
    return {
        "acc": float(accuracy_score(labels, preds)),
        "f1": float(f1_score(labels, preds, labels=ids, average="weighted", zero_division=0)),
        "per_class_f1": {c: float(v) for c, v in zip(classes, per_class)},
        "confusion": confusion_matrix(labels, preds, labels=ids).tolist(),
    }
