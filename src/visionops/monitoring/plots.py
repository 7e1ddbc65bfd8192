"""One picture of a check: where the window (orange) differs from the reference (blue) in the
model's confidence, its predicted class shares, brightness and sharpness."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from visionops.io import save_figure
from visionops.monitoring.reference import Reference
from visionops.monitoring.stats import STATS
from visionops.monitoring.window import Window


def plot_check(
    reference: Reference,
    window: Window,
    verdict: str,
    estimated: float,
    path: Path,
    metadata: dict[str, str] | None = None,
) -> None:
    """A 2x2 PNG: confidence histograms, class shares, brightness and sharpness histograms;
    `metadata` goes into its text chunks (how monitor recognises its own plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    sides = (
        ("reference", reference.probabilities, reference.stats),
        ("window", window.probabilities, window.stats),
    )
    ax = axes[0, 0]
    for name, probs, _ in sides:
        ax.hist(probs.max(1), bins=20, range=(0, 1), density=True, alpha=0.55, label=name)
    ax.set(title="confidence (top-1 probability)", xlabel="probability", ylabel="density")
    ax.legend()
    ax = axes[0, 1]
    k = len(reference.classes)
    for offset, (name, probs, _) in zip((-0.2, 0.2), sides, strict=True):
        shares = np.bincount(probs.argmax(1), minlength=k) / max(1, len(probs))
        ax.bar(np.arange(k) + offset, shares, width=0.4, label=name)
    ax.set_xticks(
        np.arange(k), reference.classes, rotation=45 if k > 6 else 0, ha="right" if k > 6 else "center"
    )
    ax.set(title="predicted class shares", ylabel="share of images")
    for ax, stat in zip(axes[1], ("brightness", "sharpness"), strict=True):
        j = STATS.index(stat)
        values = [np.log1p(s[:, j]) if stat == "sharpness" else s[:, j] for _, _, s in sides]
        low, high = min(v.min() for v in values), max(v.max() for v in values)
        for (name, _, _), v in zip(sides, values, strict=True):
            ax.hist(v, bins=30, range=(low, high + 1e-9), density=True, alpha=0.55, label=name)
        ax.set(
            title=stat,
            xlabel="log(1 + Laplacian variance / grey variance)"
            if stat == "sharpness"
            else "mean grey, 0-255",
        )
    fig.suptitle(
        f"{verdict}: {len(window.probabilities)} images vs {len(reference.labels)} reference images; "
        f"accuracy estimated {estimated:.3f} (reference {reference.accuracy:.3f})"
    )
    fig.tight_layout()
    save_figure(fig, path, metadata=metadata)
    plt.close(fig)
