"""Accuracy without labels: Average Thresholded Confidence (Garg et al., ICLR 2022). On the
labelled reference, pick the score threshold above which the share of images equals the
model's accuracy; on new images, the share above that threshold estimates their accuracy.
The score is the negative entropy of the softmax (ATC-NE, the paper's better variant)."""

from __future__ import annotations

import numpy as np

CONFIDENCE = 0.95  # of the Wilson interval reported with every estimate or labelled accuracy


def scores(probabilities: np.ndarray) -> np.ndarray:
    """Negative entropy of each row: 0 for a certain prediction, lower when unsure."""
    p = np.clip(probabilities.astype(np.float64), 1e-12, 1.0)
    return (p * np.log(p)).sum(axis=1)


def atc_threshold(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The score t with mean(score > t) equal to the accuracy on these labelled images."""
    accuracy = float((probabilities.argmax(1) == labels).mean())
    ordered = np.sort(scores(probabilities))
    below = round((1.0 - accuracy) * len(ordered))  # images at or under the threshold
    if below == 0:
        return float(ordered[0] - 1.0)  # every image counts as right
    return float(ordered[below - 1])


def estimate(probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    """ATC's accuracy estimate for unlabelled images, with a Wilson interval on the count."""
    above = int((scores(probabilities) > threshold).sum())
    return {"value": above / len(probabilities), **interval(above, len(probabilities))}


def labelled(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The true accuracy of the images that have labels, with its Wilson interval."""
    right = int((predicted == labels).sum())
    return {"value": right / len(labels), "images": len(labels), **interval(right, len(labels))}


def interval(successes: int, trials: int) -> dict[str, float]:
    """Wilson score interval (scipy.stats.binomtest) of a proportion."""
    from scipy.stats import binomtest

    ci = binomtest(successes, trials).proportion_ci(CONFIDENCE, method="wilson")
    return {"low": float(ci.low), "high": float(ci.high)}
