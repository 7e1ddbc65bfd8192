"""Likely label errors, found with cleanlab from out-of-sample predicted probabilities
(confident learning): the images whose given label the model confidently disagrees with,
ranked by self-confidence (the probability of the given label). The test split uses the
trained model; the train split (optional) the out-of-fold probabilities of a cheap model,
since the trained model has seen those labels."""

from __future__ import annotations

import numpy as np
import pandas as pd

THUMB = 16  # the cheap model sees THUMB x THUMB grey thumbnails
CHUNK = 4096  # images read at a time: features are the only thing that grows with the split


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


def thumbnail_features(images: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Grey THUMB x THUMB thumbnails of `images[rows]` (uint8 NHWC, memory-mapped) as float
    rows in [0, 1], read CHUNK images at a time."""
    from PIL import Image

    from visionops.data.prepared import read_rows

    features = np.empty((len(rows), THUMB * THUMB), dtype=np.float32)
    for start in range(0, len(rows), CHUNK):
        for offset, image in enumerate(read_rows(images, rows[start : start + CHUNK])):
            grey = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).convert("L")
            thumb = grey.resize((THUMB, THUMB), Image.Resampling.BILINEAR)
            features[start + offset] = np.asarray(thumb, dtype=np.float32).ravel() / 255.0
    return features


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each image's class probabilities from a logistic regression that never saw it
    (cleanlab's k-fold helper: up to 5 folds, fewer when a class is smaller)."""
    from cleanlab.count import estimate_cv_predicted_probabilities
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = int(min(5, np.bincount(labels).min()))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
    return estimate_cv_predicted_probabilities(features, labels, model, cv_n_folds=max(2, folds), seed=seed)
