"""Did the model's embedding move? Maximum mean discrepancy (Gretton et al., 2012) with a
Gaussian kernel, its width the median distance of the pooled sample, and a permutation test:
the multivariate test "Failing Loudly" ran on learned representations. numpy, in blocks of
permutations, so a 1,000 + 1,000 comparison takes about a second; scipy has no MMD, and
alibi-detect's MMDDrift would bring a deep-learning backend into the monitoring path."""

from __future__ import annotations

import math

import numpy as np

MAX_ROWS = 1000  # per side: evenly spaced rows beyond this (the kernel matrix grows as n^2)
PERMUTATIONS = 1000  # at least; p-values down to 1/1001, under alpha's share for this test
EXCEEDED = 50  # permuted MMDs at or over the observed one that settle a p-value (Besag-Clifford)
BLOCK = 250  # permutations per matrix product
SEED = 0  # the same window and reference give the same p-value


def evenly_spaced(n: int, most: int) -> np.ndarray:
    """Up to `most` row numbers spread evenly over n rows (all of them when n <= most)."""
    return (
        np.unique(np.round(np.linspace(0, n - 1, min(n, most))).astype(np.int64)) if n else np.zeros(0, int)
    )


def permutations_for(smallest: float | None, at_least: int = PERMUTATIONS) -> int:
    """Permutations whose p-value can go under `smallest` (the test's rejection threshold: its
    share of alpha): 1,000 stop at 1/1001, so a monitor.alpha under 0.017 could never reject
    when it had a share of 1/17 (issue 49)."""
    return at_least if not smallest else max(at_least, math.ceil(2 / smallest))


def mmd_test(
    x: np.ndarray, y: np.ndarray, permutations: int = PERMUTATIONS, smallest: float | None = None
) -> tuple[float, float]:
    """(squared MMD of x against y, permutation p-value); rows are vectors. Up to
    `permutations_for(smallest, permutations)` permutations, stopping once EXCEEDED of them
    reach the observed MMD (sequential Monte Carlo p-values, Besag & Clifford 1991: such a
    window is far from any threshold, and stopping early never makes a test reject)."""
    x = x[evenly_spaced(len(x), MAX_ROWS)].astype(np.float64)
    y = y[evenly_spaced(len(y), MAX_ROWS)].astype(np.float64)
    pooled = np.concatenate([x, y])
    squared = _squared_distances(pooled)
    width = _median_off_diagonal(squared)
    kernel = np.exp(-squared / (width if width > 0 else 1.0))
    signs = np.concatenate([np.full(len(x), 1.0 / len(x)), np.full(len(y), -1.0 / len(y))])
    observed = float(signs @ kernel @ signs)
    rng = np.random.default_rng(SEED)
    total, done, at_least = permutations_for(smallest, permutations), 0, 0
    while done < total and at_least < EXCEEDED:
        block = np.stack([rng.permutation(signs) for _ in range(min(BLOCK, total - done))], axis=1)
        permuted = np.einsum("ip,ip->p", block, kernel @ block)
        at_least += int((permuted >= observed - 1e-12).sum())
        done += block.shape[1]
    return observed, (1 + at_least) / (1 + done)


def _median_off_diagonal(squared: np.ndarray) -> float:
    """The median squared distance between two different rows: the diagonal's n zeros sort
    first, then every pair twice (np.partition, linear time; a sort would be n^2 log n)."""
    n = len(squared)
    middle = n + (n * n - n) // 2
    flat = np.partition(squared.ravel(), (middle - 1, middle))
    return float(0.5 * (flat[middle - 1] + flat[middle]))


def _squared_distances(rows: np.ndarray) -> np.ndarray:
    norms = (rows * rows).sum(1)
    return np.maximum(norms[:, None] + norms[None, :] - 2.0 * rows @ rows.T, 0.0)
