"""Classification metrics from predicted probabilities, via scikit-learn."""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_metrics(
    y_true: np.ndarray, probs: np.ndarray, classes: list[str], bins: int = 10
) -> dict[str, Any]:
    """Headline metrics, a per-class table and the confusion matrix."""
    from sklearn.metrics import confusion_matrix

    y_pred = probs.argmax(1)
    p, r, f, support = _per_class(y_true, y_pred, len(classes))
    return {
        **_headline(y_true, y_pred, p, r, f),
        "ece": expected_calibration_error(y_true, probs, bins),
        "n_test": len(y_true),
        "per_class": [
            {
                "class": c,
                "precision": float(pi),
                "recall": float(ri),
                "f1": float(fi),
                "support": int(si),
            }
            for c, pi, ri, fi, si in zip(classes, p, r, f, support, strict=True)
        ],
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=list(range(len(classes)))).tolist(),
    }


def headline_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1 of predicted labels (the gate metrics)."""
    p, r, f, _ = _per_class(y_true, y_pred, n_classes)
    return _headline(y_true, y_pred, p, r, f)


def _per_class(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int):
    from sklearn.metrics import precision_recall_fscore_support

    labels = list(range(n_classes))
    return precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)


def _headline(y_true, y_pred, p, r, f) -> dict[str, float]:
    return {
        "accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))),
        "precision_macro": float(p.mean()),
        "recall_macro": float(r.mean()),
        "f1_macro": float(f.mean()),
    }


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 10) -> float:
    """ECE: |accuracy - confidence| averaged over equal-width confidence bins, weighted by size."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)
