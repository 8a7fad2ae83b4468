"""The challenge metrics: accuracy and weighted F1 over the class list.

Computed from the confusion matrix with numpy, with scikit-learn's definitions (``f1_score(...,
average="weighted", zero_division=0)``; tests check they agree): importing sklearn.metrics in a training
run would pull in scipy and pandas, about 100 MB of resident memory for three lines of arithmetic.
"""
import os

import numpy as np


def confusion(labels, preds, num_classes):
    """(K, K) int64 counts, rows: truth, columns: prediction; ids outside 0..K-1 are left out."""
    labels, preds = np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)
    keep = (labels >= 0) & (labels < num_classes) & (preds >= 0) & (preds < num_classes)
    return np.bincount(labels[keep] * num_classes + preds[keep], minlength=num_classes ** 2).reshape(num_classes, num_classes)


def _per_class_f1(cm):
    hits = np.diag(cm).astype(float)
    denominator = cm.sum(0) + cm.sum(1)  # 2 tp + fp + fn
    return np.divide(2 * hits, denominator, out=np.zeros_like(hits), where=denominator > 0)


def _weighted(per_class, cm):
    support = cm.sum(1)
    return float((per_class * support).sum() / support.sum()) if support.sum() else 0.0


def weighted_f1(labels, preds, num_classes):
    """The challenge score: F1 per class averaged with class support as weights."""
    cm = confusion(labels, preds, num_classes)
    return _weighted(_per_class_f1(cm), cm)


def emotion_metrics(labels, preds, classes):
    """Accuracy, weighted F1, per-class F1 and confusion matrix (rows: truth, columns: prediction)."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    cm = confusion(labels, preds, len(classes))
    per_class = _per_class_f1(cm)
    return {
        "acc": float((labels == preds).mean()) if len(labels) else 0.0,
        "f1": _weighted(per_class, cm),
        "per_class_f1": {c: float(v) for c, v in zip(classes, per_class)},
        "confusion": cm.tolist(),
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
