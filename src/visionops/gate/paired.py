"""Challenger vs reference (the champion, or the trivial baseline) on the same test images:
both gate-metric scores, and an exact McNemar test of per-image correctness, so that a
promotion rests on evidence and not on two images of noise."""

from __future__ import annotations

from typing import Any

import numpy as np

from visionops.evaluation.metrics import headline_scores


def paired_comparison(
    y_true: np.ndarray, challenger: np.ndarray, reference: np.ndarray, metric: str, n_classes: int
) -> dict[str, Any]:
    """Scores of both predicted-label arrays on the same images, and the discordant pairs:
    `challenger_only` images only the challenger gets right, `reference_only` the reverse.
    p_value is the exact one-sided McNemar test (binomial on the discordant pairs) of
    "the challenger is right more often"; 1.0 when there are no discordant pairs."""
    from scipy.stats import binomtest

    y_true, challenger, reference = (np.asarray(a, dtype=np.int64) for a in (y_true, challenger, reference))
    if not (len(y_true) == len(challenger) == len(reference)) or not len(y_true):
        raise ValueError(
            f"paired comparison needs equal, non-empty arrays (got {len(y_true)}, {len(challenger)}, "
            f"{len(reference)})"
        )
    right_new, right_old = challenger == y_true, reference == y_true
    wins, losses = int(np.sum(right_new & ~right_old)), int(np.sum(~right_new & right_old))
    p_value = binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue if wins + losses else 1.0
    return {
        "metric": metric,
        "challenger": headline_scores(y_true, challenger, n_classes)[metric],
        "reference": headline_scores(y_true, reference, n_classes)[metric],
        "n": len(y_true),
        "challenger_only": wins,
        "reference_only": losses,
        "p_value": float(p_value),
    }


def majority_class(labels: np.ndarray) -> int:
    """The most frequent label (lowest index on ties): the trivial baseline's only answer."""
    return int(np.bincount(np.asarray(labels, dtype=np.int64)).argmax())
