"""Which reused results a run derives again before trusting the rest: a sample of their keys
that is the same for the same keys and seed (the same bytes downstream), a share of them with a
floor and a ceiling. The ceiling keeps a re-run's work flat in the dataset's size (issue 48):
a cache made by other code, or edited wholesale, differs in every row and 200 find it; what a
single edited row could change is checked row by row where it matters (validate's flags)."""

from __future__ import annotations

import hashlib
import math
import random

SHARE, FLOOR, CEILING = 0.02, 8, 200


def sample(keys: list[str], seed: str | None = None) -> list[str]:
    """SHARE of `keys` (at least FLOOR, at most CEILING; all when fewer), drawn from the sorted
    keys by a generator seeded with `seed` (a hash per key cost 0.1 s per audit at 60,000); no
    seed: the keys themselves (content keys: the same images give the same sample)."""
    count = min(len(keys), max(FLOOR, min(CEILING, math.ceil(SHARE * len(keys)))))
    ordered = sorted(keys)
    seed = seed if seed is not None else "\n".join(ordered)
    return random.Random(hashlib.sha256(seed.encode()).digest()).sample(ordered, count)
