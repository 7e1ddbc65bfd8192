"""Turn the configured source into class folders under a staging root, plus its provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from visionops.config import DataParams
from visionops.data import digits
from visionops.data.layout import write_split
from visionops.data.split import stratified_split


def materialize(cfg: DataParams, root: Path) -> dict[str, Any]:
    """Write the dataset named by `cfg.source` under `root` and return its source record.

    The record holds no timestamp: the same data must hash the same, so that DVC can
    skip downstream stages when a re-download produced identical files.
    """
    if cfg.source == "digits":
        images, labels, classes = digits.load_digits_images()
        record = {"source": "digits", "url": digits.URL, "license": digits.LICENSE}
    else:  # pragma: no cover - the schema only admits known sources
        raise AssertionError(cfg.source)
    train, test = stratified_split(labels, cfg.test_fraction, cfg.seed)
    write_split(root, "train", images[train], labels[train], classes)
    write_split(root, "test", images[test], labels[test], classes)
    record.update(
        classes=classes,
        counts={
            "train": _per_class(labels[train], classes),
            "test": _per_class(labels[test], classes),
        },
        split={"test_fraction": cfg.test_fraction, "seed": cfg.seed},
    )
    return record


def _per_class(labels: np.ndarray, classes: list[str]) -> dict[str, int]:
    counts = np.bincount(labels, minlength=len(classes))
    return {name: int(count) for name, count in zip(classes, counts, strict=True)}
