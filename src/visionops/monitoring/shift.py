"""Did what the model sees change? Two-sample tests of a window against the reference, as
"Failing Loudly" (Rabanser et al., 2019) found strongest among simple detectors on images:
a Kolmogorov-Smirnov test per class on the softmax outputs, an MMD permutation test on the
embedding (monitoring/mmd.py; where the model outputs one), plus a chi-square test on the
predicted class counts (label shift) and a KS test per image statistic (what changed, in words).
One Bonferroni correction over every test keeps a check's false-alarm rate at alpha."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from visionops.monitoring.stats import STATS

# how a statistic that moved reads to a person: (lower, higher) than the reference
WORDS = {
    "brightness": ("darker", "brighter"),
    "contrast": ("lower contrast", "higher contrast"),
    "sharpness": ("blurrier", "sharper or noisier"),
    "width": ("narrower (smaller)", "wider (larger)"),
    "height": ("shorter (smaller)", "taller (larger)"),
}


@dataclass(frozen=True)
class Test:
    """One test of the window against the reference."""

    family: str  # softmax, domain, embedding, predicted_classes, image
    name: str  # the class or statistic tested
    statistic: float
    p_value: float  # as the test gives it
    p_adjusted: float  # Bonferroni: p x number of tests, at most 1
    note: str = ""  # the direction, for image statistics and class shares

    def as_dict(self) -> dict:
        return asdict(self)


def shift_tests(
    ref_probs: np.ndarray,
    ref_stats: np.ndarray,
    probs: np.ndarray,
    stats: np.ndarray,
    classes: list[str],
    embeddings: tuple[np.ndarray, np.ndarray] | None = None,
    alpha: float | None = None,
    extra: tuple[tuple, ...] = (),
) -> list[Test]:
    """Every test, p-values Bonferroni-adjusted over all of them; `embeddings` (reference,
    window) adds the MMD test, with enough permutations that it can reject at `alpha`; `extra`
    are tests made elsewhere, as (family, name, statistic, p-value, note) (the domain share)."""
    from scipy.stats import ks_2samp

    from visionops.monitoring.mmd import mmd_test

    raw = []
    for k, name in enumerate(classes):
        result = ks_2samp(ref_probs[:, k], probs[:, k])
        raw.append(("softmax", name, result.statistic, result.pvalue, ""))
    raw += extra
    if embeddings is not None:
        count = len(raw) + 2 + len(STATS)  # every test: softmax, extra, MMD, class shares, image stats
        squared, p_value = mmd_test(*embeddings, smallest=alpha / count if alpha else None)
        raw.append(("embedding", "mmd", squared, p_value, f"MMD² {squared:.3g} between window and reference"))
    raw.append(("predicted_classes", "all", *_class_counts_test(ref_probs, probs, classes)))
    for j, name in enumerate(STATS):
        result = ks_2samp(ref_stats[:, j], stats[:, j])
        lower, higher = WORDS[name]
        moved = np.median(stats[:, j]) - np.median(ref_stats[:, j])
        note = higher if moved > 0 else lower if moved < 0 else ""
        raw.append(("image", name, result.statistic, result.pvalue, note))
    m = len(raw)
    return [Test(f, n, float(s), float(p), float(min(1.0, p * m)), note) for f, n, s, p, note in raw]


def _class_counts_test(ref_probs: np.ndarray, probs: np.ndarray, classes: list[str]) -> tuple:
    """Chi-square test of homogeneity of the predicted class counts (classes neither side
    predicts are left out); the note names the class whose share grew most."""
    from scipy.stats import chi2_contingency

    k = len(classes)
    table = np.stack(
        [np.bincount(ref_probs.argmax(1), minlength=k), np.bincount(probs.argmax(1), minlength=k)]
    )
    used = table.sum(0) > 0
    if used.sum() < 2:
        return 0.0, 1.0, ""
    result = chi2_contingency(table[:, used])
    shares = table / table.sum(1, keepdims=True)
    grew = int(np.argmax(shares[1] - shares[0]))
    note = f"'{classes[grew]}' predicted {shares[1, grew]:.0%} of the time (reference {shares[0, grew]:.0%})"
    return result.statistic, result.pvalue, note


def drifted(tests: list[Test], alpha: float) -> list[Test]:
    """The tests that reject at family-wise level alpha, most significant first."""
    return sorted((t for t in tests if t.p_adjusted <= alpha), key=lambda t: t.p_value)
