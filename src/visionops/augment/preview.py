"""A grid of originals beside their augmented copies, to eyeball what the policy does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from visionops.io import save_figure


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
