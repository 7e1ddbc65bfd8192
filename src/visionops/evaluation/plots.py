"""PNG plots for people (DVC draws its own from the CSV/JSON files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visionops.io import save_figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(matrix: list[list[int]], classes: list[str], path: Path) -> None:
    """Confusion matrix heat map with counts."""
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    size = max(4.0, 0.5 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=classes).plot(
        ax=ax, cmap="Blues", colorbar=False, values_format="d"
    )
    ax.set_title("confusion matrix (test)")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_history(history: list[dict[str, Any]], path: Path) -> None:
    """Loss and accuracy per epoch, train vs validation."""
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "val"):
        if f"{split}_loss" in history[0]:
            ax_loss.plot(epochs, [r[f"{split}_loss"] for r in history], marker="o", label=split)
            ax_acc.plot(epochs, [r[f"{split}_accuracy"] for r in history], marker="o", label=split)
    for ax, name in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("training curves")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
