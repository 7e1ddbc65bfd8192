"""Deterministic train/test splits: stratified for a fixed dataset, hashed by name for a
user's growing folder or archive."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int):
    """Indices (train, test) with every class in the same proportion in both parts. Adding one
    image reshuffles the whole split: for data that never changes (the built-in sets)."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    train, test = train_test_split(indices, test_size=test_fraction, random_state=seed, stratify=labels)
    return np.sort(train), np.sort(test)


def hashed_split(names: Sequence[str], labels: Sequence[str], test_fraction: float, seed: int):
    """Indices (train, test): an image is in test when a seeded hash of its name falls below
    `test_fraction`, so it keeps its side while images are added, removed or moved to another
    class. A reshuffle would put the previous model's training images in the new test set and
    flatter it against a candidate. Each class of 2 or more images gets at least one image on
    each side; the shares are `test_fraction` up to sampling noise, not exactly. `labels` are
    class names (a class that cannot be split is named in the error)."""
    draws = np.fromiter((_draw(seed, name) for name in names), dtype=np.float64, count=len(names))
    in_test = draws < test_fraction
    labels = np.asarray(labels)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            raise ValueError(f"class '{label}' has {len(members)} image(s): each side of the split needs one")
        if in_test[members].all():
            in_test[members[np.argmax(draws[members])]] = False
        elif not in_test[members].any():
            in_test[members[np.argmin(draws[members])]] = True
    return np.flatnonzero(~in_test), np.flatnonzero(in_test)


def _draw(seed: int, name: str) -> float:
    """A uniform number in [0, 1) that depends on the seed and the name alone."""
    digest = hashlib.blake2b(name.encode(), digest_size=8, key=str(seed).encode()).digest()
    return int.from_bytes(digest, "big") / 2**64
