"""The challenge metrics: accuracy and weighted F1 over the class list (scikit-learn definitions)."""
import os

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score


def weighted_f1(labels, preds, num_classes):
    """The challenge score: F1 per class averaged with class support as weights."""
    return float(f1_score(labels, preds, labels=list(range(num_classes)), average="weighted", zero_division=0))


def emotion_metrics(labels, preds, classes):
    """Accuracy, weighted F1, per-class F1 and confusion matrix (rows: truth, columns: prediction)."""
    labels = np.asarray(labels)
    preds = np.asarray(preds)
    ids = list(range(len(classes)))
    per_class = f1_score(labels, preds, labels=ids, average=None, zero_division=0)
    return {
        "acc": float(accuracy_score(labels, preds)),
        "f1": weighted_f1(labels, preds, len(classes)),
        "per_class_f1": {c: float(v) for c, v in zip(classes, per_class)},
        "confusion": confusion_matrix(labels, preds, labels=ids).tolist(),
    }


def class_table(metrics, classes):
    """Per-class precision, recall, F1 and support (from ``emotion_metrics``' confusion matrix)."""
    cm = np.asarray(metrics["confusion"], dtype=float)
    hits, true, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    return [{"class": c, "precision": float(hits[i] / predicted[i]) if predicted[i] else 0.0,
             "recall": float(hits[i] / true[i]) if true[i] else 0.0,
             "f1": metrics["per_class_f1"][c], "support": int(true[i]), "predicted": int(predicted[i])}
            for i, c in enumerate(classes)]


def format_report(metrics, classes):
    """A printable table: one line per class, then accuracy and weighted F1."""
    rows = class_table(metrics, classes)
    width = max(len("weighted F1"), *(len(c) for c in classes))
    lines = [f"{'class':<{width}}  precision  recall      f1  support  predicted"]
    lines += [f"{r['class']:<{width}}  {r['precision']:9.4f}  {r['recall']:6.4f}  {r['f1']:6.4f}  {r['support']:7d}  {r['predicted']:9d}"
              for r in rows]
    total = sum(r["support"] for r in rows)
    lines.append(f"{'accuracy':<{width}}  {metrics['acc']:.4f} over {total} clips")
    lines.append(f"{'weighted F1':<{width}}  {metrics['f1']:.4f}")
    return "\n".join(lines)


def save_report(out_dir, metrics, classes, title, extra=None):
    """``metrics.json`` (metrics, per-class table, ``extra``) and ``confusion.png`` in ``out_dir``."""
    from toolkit.io import save_json
    from toolkit.plots import plot_confusion

    save_json(os.path.join(out_dir, "metrics.json"), {**(extra or {}), **metrics, "classes": list(classes),
                                                      "per_class": class_table(metrics, classes)})
    plot_confusion(os.path.join(out_dir, "confusion.png"), metrics["confusion"], classes,
                   f"{title}: F1 {metrics['f1']:.4f}, acc {metrics['acc']:.4f}")
