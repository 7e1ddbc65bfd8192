"""A grid of originals beside their augmented copies, to eyeball what the policy does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from visionops.data.prepared import Split
from visionops.io import save_figure


def preview_rows(train: Split, classes: list[str], count: int) -> tuple[list[list[np.ndarray]], list[str]]:
    """One row per class (up to `count`): the first original of the class, then its copies,
    read from the memory-mapped split (a few images, never the whole split)."""
    rows, titles = [], []
    for label in range(len(classes)):
        first = np.flatnonzero((train.y == label) & (train.copy == 0))[:1]
        if len(first) and len(rows) < count:
            same = np.flatnonzero(train.source == train.source[first[0]])
            rows.append(list(np.asarray(train.x[same[0] : same[-1] + 1])))
            titles.append(classes[label])
    return rows, titles


def save_preview(rows: list[list[np.ndarray]], titles: list[str], path: Path) -> None:
    """Save a grid: one row per image, first column the resized original, then copies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.4 * n_cols, 1.4 * n_rows), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(row):
                image = row[c]
                ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255)
            if r == 0:
                ax.set_title("original" if c == 0 else f"aug {c}", fontsize=8)
        axes[r][0].text(-0.15, 0.5, titles[r], transform=axes[r][0].transAxes, ha="right", va="center")
    fig.suptitle("augment policy preview", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
