"""What a test may assert about a small model's accuracy on any machine of the project's kind.

A few epochs of a tiny network land at different accuracies on CPUs that differ in their
arithmetic (native bf16, AMX, or neither: a 2-epoch digits model scored 0.875 on one and 0.93
on another), so a fixed bar such as "> 0.9" fails on some machines every time. The invariant
is that the model learned: it closes at least half of the gap between always answering the
most frequent class and being always right.
"""

from __future__ import annotations

import pandas as pd


def majority_share(labels) -> float:
    """The most frequent label's share: the accuracy of always answering it."""
    return float(pd.Series(list(labels)).value_counts(normalize=True).max())


def learned(accuracy: float, labels) -> bool:
    """Did a model whose accuracy on `labels` is `accuracy` learn (see the module's docstring)?"""
    majority = majority_share(labels)
    return accuracy > majority + 0.5 * (1.0 - majority)
