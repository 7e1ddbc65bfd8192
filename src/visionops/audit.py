"""Which reused results a run derives again before trusting the rest: a sample of their keys
that is the same for the same keys and seed (the same bytes downstream), a share of them with a
floor and a ceiling. The ceiling keeps a re-run's work flat in the dataset's size (issue 48):
a cache made by other code, or edited wholesale, differs in every row and 200 find it; what a
single edited row could change is checked row by row where it matters (validate's flags)."""

from __future__ import annotations

import hashlib
import math

SHARE, FLOOR, CEILING = 0.02, 8, 200


def sample(keys: list[str], seed: str) -> list[str]:
    """SHARE of `keys` (at least FLOOR, at most CEILING; all when fewer), in the order of a hash
    of `seed` and each key."""
    count = min(len(keys), max(FLOOR, min(CEILING, math.ceil(SHARE * len(keys)))))
    prefix = seed.encode()
    return sorted(sorted(keys), key=lambda key: hashlib.sha256(prefix + key.encode()).digest())[:count]
