"""Did what the model sees change? Two-sample tests of a window against the reference, as
"Failing Loudly" (Rabanser et al., 2019) found strongest among simple detectors on images:
a Kolmogorov-Smirnov test per class on the softmax outputs, an MMD permutation test on the
embedding (monitoring/mmd.py; where the model outputs one), plus a chi-square test on the
predicted class counts (label shift) and a KS test per image statistic (what changed, in words).
One weighted Holm correction over every test keeps a check's false-alarm rate at alpha: half of
alpha for the embedding's MMD test where it runs (the one test of everything the head reads;
one Bonferroni over 18 tests let it catch mild noise in 12 of 20 windows of 500 images), the
other half shared evenly by the rest (issue 49)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from visionops.monitoring.stats import STATS

EMBEDDING_SHARE = 0.5  # of alpha, for the embedding's MMD test where it runs
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
    p_adjusted: float  # weighted Holm (weighted_holm): rejects when at most alpha
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
    """Every test, p-values adjusted over all of them (weighted Holm); `embeddings` (reference,
    window) adds the MMD test, with enough permutations that it can reject at `alpha`; `extra`
    are tests made elsewhere, as (family, name, statistic, p-value, note) (the domain share)."""
    from scipy.stats import ks_2samp

    from visionops.monitoring.mmd import mmd_test

    raw = []
    for k, name in enumerate(classes):
        result = ks_2samp(ref_probs[:, k], probs[:, k])
        raw.append(("softmax", name, result.statistic, result.pvalue, ""))
    raw += extra
    if embeddings is not None:  # its first-step threshold is alpha x EMBEDDING_SHARE
        squared, p_value = mmd_test(*embeddings, smallest=alpha * EMBEDDING_SHARE if alpha else None)
        raw.append(("embedding", "mmd", squared, p_value, f"MMD² {squared:.3g} between window and reference"))
    raw.append(("predicted_classes", "all", *_class_counts_test(ref_probs, probs, classes)))
    for j, name in enumerate(STATS):
        result = ks_2samp(ref_stats[:, j], stats[:, j])
        lower, higher = WORDS[name]
        moved = np.median(stats[:, j]) - np.median(ref_stats[:, j])
        note = higher if moved > 0 else lower if moved < 0 else ""
        raw.append(("image", name, result.statistic, result.pvalue, note))
    p_values = np.array([p for _, _, _, p, _ in raw], dtype=np.float64)
    adjusted = weighted_holm(p_values, shares([f for f, *_ in raw]))
    return [
        Test(f, n, float(s), float(p), float(a), note)
        for (f, n, s, p, note), a in zip(raw, adjusted, strict=True)
    ]


def shares(families: list[str]) -> np.ndarray:
    """Each test's share of alpha: EMBEDDING_SHARE for the MMD test where it runs, the rest
    evenly; all equal without it."""
    m = len(families)
    if "embedding" not in families or m == 1:
        return np.full(m, 1.0 / m)
    rest = (1.0 - EMBEDDING_SHARE) / (m - 1)
    return np.array([EMBEDDING_SHARE if family == "embedding" else rest for family in families])


def weighted_holm(p_values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Holm's step-down with weights (Holm 1979): in order of p / weight, a test rejects while
    p <= alpha x weight / (the weights of the tests not yet rejected). Its adjusted p-value is
    the smallest alpha at which it would, so `p_adjusted <= alpha` is the rule. Family-wise
    error at most alpha under any dependence; never less powerful than weighted Bonferroni.
    (statsmodels' multipletests has no weights, and scipy only false-discovery control.)"""
    order = np.argsort(p_values / weights, kind="stable")
    remaining = np.cumsum(weights[order][::-1])[::-1]  # the weights of this test and those after it
    stepped = np.minimum(1.0, np.maximum.accumulate(p_values[order] / weights[order] * remaining))
    adjusted = np.empty_like(stepped)
    adjusted[order] = stepped
    return adjusted


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
