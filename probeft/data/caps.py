"""Caps on data set sizes: validation of ``max_train`` / ``max_eval`` and the seeded-subset rule.

This module imports nothing else from :mod:`probeft`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cap_text", "seeded_subset"]


def cap_text(max_train: int | None, max_eval: int | None) -> str:
    """Validate the caps and return their text (hashed into ``ProbingData.sha256``, so it keys caches).

    Args:
        max_train: cap on training examples, or None.
        max_eval: cap on dev / test examples, or None.

    Raises:
        ValueError: naming the parameter that is not a positive integer or None.
    """
    for name, cap in (("max_train", max_train), ("max_eval", max_eval)):
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1):
            raise ValueError(f"{name} must be a positive integer or None, got {cap!r}")
    return f"max_train={max_train};max_eval={max_eval}"


def seeded_subset(n: int, cap: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of a capped subset: all of ``range(n)`` if ``cap`` is None or >= n, else a seeded sample.

    GLUE files are ordered (CoLA by source, CoLA dev in-domain first), so taking the first lines would be
    biased; the sample is sorted so the subset keeps file order.

    Args:
        n: size of the full set.
        cap: how many to keep (None: all).
        seed: seed of ``np.random.default_rng``.

    Returns:
        ``(min(n, cap),)`` int64 indices in increasing order.
    """
    if cap is None or cap >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=cap, replace=False))
