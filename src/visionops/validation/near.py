"""Near copies by perceptual hash: for every image, the closest image of another group (another
split: leakage; another label: a label conflict) within a few bits of its 64-bit pHash.

Comparing all pairs costs n² (60,000 images: 3.6e9 XOR+popcounts, half a minute on 2 cores,
paid on every re-run). Two hashes that differ in at most d bits agree exactly on at least one
of d + 1 disjoint bit ranges (pigeonhole; multi-index hashing, Norouzi et al. 2012), so only
pairs that share a range's value are compared: a few per image on photos. Where that would
still be many pairs (hashes piled onto few values, or a large d), all pairs are compared in
fixed-size blocks instead; both give the same answer.
"""

from __future__ import annotations

import itertools

import numpy as np

NONE = 65  # the distance reported where no hash of another group is within reach
MAX_RANGES = 8  # beyond 7 bits of tolerance a range has < 8 bits: buckets get too big to pay
CANDIDATE_LIMIT = 5_000_000  # candidate pairs held at once (~120 MB); more: compare all pairs
PAIR_BUDGET = 4_000_000  # hash pairs compared at a time in the all-pairs search (~50 MB)


def closest_in_other_group(
    hashes: np.ndarray, groups: np.ndarray, within: int
) -> tuple[np.ndarray, np.ndarray]:
    """(position of the closest hash of another group, its Hamming distance) for each of
    `hashes` (uint64) where that distance is at most `within`; (-1, NONE) elsewhere. Ties go
    to the lowest position."""
    hashes, groups = np.asarray(hashes, dtype=np.uint64), np.asarray(groups)
    pairs = _candidate_pairs(hashes, within)
    if pairs is None:
        return _all_pairs(hashes, groups, within)
    first, second = pairs
    bits = np.bitwise_count(hashes[first] ^ hashes[second]).astype(np.int64)
    keep = (bits <= within) & (groups[first] != groups[second])
    first, second, bits = first[keep], second[keep], bits[keep]
    order = np.lexsort((second, bits, first))  # by row, then distance, then partner
    first, second, bits = first[order], second[order], bits[order]
    best = np.r_[True, first[1:] != first[:-1]] if len(first) else np.zeros(0, bool)
    nearest = np.full(len(hashes), -1, dtype=np.int64)
    distance = np.full(len(hashes), NONE, dtype=np.int64)
    nearest[first[best]], distance[first[best]] = second[best], bits[best]
    return nearest, distance


def _candidate_pairs(hashes: np.ndarray, within: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Every ordered pair (i, j), i != j, whose hashes share one of `within` + 1 bit ranges
    exactly (each pair once); None when that is too many pairs to be worth it."""
    ranges = within + 1
    if ranges > MAX_RANGES:
        return None
    edges = np.linspace(0, 64, ranges + 1).astype(np.uint64)
    found = []
    for low, high in itertools.pairwise(edges):
        keys = (hashes >> low) & np.uint64((1 << int(high - low)) - 1)
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        sizes = np.diff(np.r_[starts, len(keys)])
        if int((sizes.astype(np.int64) ** 2).sum()) > CANDIDATE_LIMIT:
            return None
        for size in np.unique(sizes[sizes > 1]):
            members = order[starts[sizes == size][:, None] + np.arange(size)]  # [buckets, size]
            a, b = np.nonzero(~np.eye(size, dtype=bool))
            found.append(np.stack([members[:, a].ravel(), members[:, b].ravel()]))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    codes = np.unique(np.concatenate(found, axis=1).astype(np.int64).T @ np.array([len(hashes), 1]))
    return codes // len(hashes), codes % len(hashes)


def _all_pairs(hashes: np.ndarray, groups: np.ndarray, within: int) -> tuple[np.ndarray, np.ndarray]:
    """`closest_in_other_group` by comparing every pair, PAIR_BUDGET pairs at a time."""
    codes = np.unique(groups, return_inverse=True)[1].astype(np.int32)
    nearest = np.zeros(len(hashes), dtype=np.int64)
    distance = np.full(len(hashes), NONE, dtype=np.int64)
    block = max(1, PAIR_BUDGET // max(1, len(hashes)))
    for start in range(0, len(hashes), block):
        bits = np.bitwise_count(hashes[start : start + block, None] ^ hashes[None, :]).astype(np.int64)
        bits[codes[start : start + block, None] == codes[None, :]] = NONE  # same group: not a copy
        nearest[start : start + block] = bits.argmin(axis=1)
        distance[start : start + block] = bits.min(axis=1)
    far = distance > within
    nearest[far], distance[far] = -1, NONE
    return nearest, distance
