"""Likely label errors in the test split, found with cleanlab from the model's out-of-sample
predicted probabilities (confident learning): the images whose given label the model
confidently disagrees with, ranked by self-confidence (the probability of the given label)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def find_label_issues(labels: np.ndarray, probs: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """One row per suspected image, most suspicious first: `row` (position in the split),
    `given`, `suggested` (the model's top class) and `self_confidence`."""
    from cleanlab.filter import find_label_issues as cleanlab_find

    labels = np.asarray(labels, dtype=np.int64)
    columns = ["row", "given", "suggested", "self_confidence"]
    if len(np.unique(labels)) < 2 or len(labels) < len(classes):
        return pd.DataFrame(columns=columns)  # too little to estimate the noise rates from
    ranked = cleanlab_find(labels, probs, return_indices_ranked_by="self_confidence")
    names = np.asarray(classes, dtype=object)
    return pd.DataFrame(
        {
            "row": ranked,
            "given": names[labels[ranked]],
            "suggested": names[probs[ranked].argmax(axis=1)],
            "self_confidence": probs[ranked, labels[ranked]],
        },
        columns=columns,
    )
