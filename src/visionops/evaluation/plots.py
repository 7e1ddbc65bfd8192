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


def plot_label_issues(images, issues, path: Path, limit: int = 24) -> None:
    """Thumbnail grid of the top suspected label errors: each titled 'given -> suggested'
    with the model's probability of the given label, so a person can judge in seconds."""
    plt = _pyplot()
    shown = issues.head(limit)
    cols = 6
    rows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, issue in zip(axes.flat, shown.itertuples(), strict=False):
        image = images[int(issue.row)]
        ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray")
        ax.set_title(f"{issue.given} -> {issue.suggested}\np={issue.self_confidence:.2f}", fontsize=8)
    if not len(shown):
        axes.flat[0].text(0.5, 0.5, "no likely label errors found", ha="center", va="center")
    fig.suptitle(f"likely label errors (test): {len(issues)} found, top {len(shown)} shown")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
