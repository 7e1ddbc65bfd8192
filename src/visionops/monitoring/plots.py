"""One picture of a check: where the window (orange) differs from the reference (blue) in the
model's confidence, its predicted class shares, the out-of-domain score, brightness, contrast
and sharpness."""

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
    result: dict,
    path: Path,
    metadata: dict[str, str] | None = None,
) -> None:
    """A 2x3 PNG: confidence, class shares and the out-of-domain score (with its threshold)
    above brightness, contrast and sharpness; `metadata` goes into its text chunks (how monitor
    recognises its own plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    sides = (
        ("reference", reference.probabilities, reference.stats),
        ("window", window.probabilities, window.stats),
    )
    ax = axes[0, 0]
    for name, probs, _ in sides:
        ax.hist(probs.max(1), bins=20, range=(0, 1), density=True, alpha=0.55, label=name)
    ax.set(title="confidence (top-1 probability)", xlabel="probability", ylabel="density")
    ax.legend()
    _class_shares(axes[0, 1], reference.classes, sides)
    _domain_scores(axes[0, 2], reference, window, result["out_of_domain"])
    for ax, stat in zip(axes[1], ("brightness", "contrast", "sharpness"), strict=True):
        _statistic(ax, stat, sides)
    estimated = result["accuracy"]["estimated"]
    said = "accuracy not estimable"
    if estimated["estimable"]:
        said = f"accuracy estimated {estimated['value']:.3f}"
    fig.suptitle(
        f"{result['verdict']}: {len(window.probabilities)} images vs {len(reference.labels)} reference "
        f"images; {said} (reference {reference.accuracy:.3f})"
    )
    fig.tight_layout()
    save_figure(fig, path, metadata=metadata)
    plt.close(fig)


def _class_shares(ax, classes: list[str], sides) -> None:
    k = len(classes)
    for offset, (name, probs, _) in zip((-0.2, 0.2), sides, strict=True):
        shares = np.bincount(probs.argmax(1), minlength=k) / max(1, len(probs))
        ax.bar(np.arange(k) + offset, shares, width=0.4, label=name)
    ax.set_xticks(np.arange(k), classes, rotation=45 if k > 6 else 0, ha="right" if k > 6 else "center")
    ax.set(title="predicted class shares", ylabel="share of images")


def _domain_scores(ax, reference: Reference, window: Window, domain: dict) -> None:
    """The out-of-domain scores of the reference's calibration images and the window's, and
    the threshold (the upper 1 % of either side clipped, so one far image does not squash the rest)."""
    if not domain["measured"]:
        ax.text(0.5, 0.5, "out-of-domain score\nnot measured", ha="center", va="center")
        ax.set_axis_off()
        return
    values = [reference.domain.calibration, reference.domain.scores(window.embeddings, window.probabilities)]
    low = min(v.min() for v in values)
    high = max(max(np.quantile(v, 0.99) for v in values), domain["threshold"])
    for name, v in zip(("reference", "window"), values, strict=True):
        ax.hist(np.minimum(v, high), bins=30, range=(low, high + 1e-9), density=True, alpha=0.55, label=name)
    ax.axvline(domain["threshold"], color="black", linestyle="--", label="threshold")
    ax.set(
        title=f"out-of-domain score: {domain['value']:.0%} of the window beyond",
        xlabel="distance from the classes + unusual length + uncertainty (standard scores)",
    )
    ax.legend()


def _statistic(ax, stat: str, sides) -> None:
    j = STATS.index(stat)
    values = [np.log1p(s[:, j]) if stat == "sharpness" else s[:, j] for _, _, s in sides]
    low, high = min(v.min() for v in values), max(v.max() for v in values)
    for (name, _, _), v in zip(sides, values, strict=True):
        ax.hist(v, bins=30, range=(low, high + 1e-9), density=True, alpha=0.55, label=name)
    labels = {
        "sharpness": "log(1 + Laplacian variance / grey variance)",
        "contrast": "standard deviation of grey, 0-255",
        "brightness": "mean grey, 0-255",
    }
    ax.set(title=stat, xlabel=labels[stat])
