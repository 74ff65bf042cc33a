"""Minimum detectable effects: how large an effect a run of this size could have found.

For a statistic with standard error ``SE``, a two-sided test at level ``alpha`` has power ``power``
against effects of size at least

    MDE = (z_{1 - alpha/2} + z_{power}) * SE

(normal approximation; e.g. Cohen 1988, ch. 12; at alpha 0.05 and 80% power the factor is 2.8016).
Two ways to get ``SE``:
    * from a 95% interval of the statistic: ``SE = (high - low) / (2 z_{0.975})`` (:func:`se_from_interval`);
    * for a paired accuracy difference on ``n`` test sentences with discordant-pair rate ``d`` (share of
      sentences that exactly one of the two probes gets right), under the null ``SE = sqrt(d / n)``
      (:func:`paired_accuracy_mde`).

This module imports nothing of :mod:`probeft`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["minimum_detectable_effect", "paired_accuracy_mde", "se_from_interval"]


def _check_level(alpha: float, power: float) -> None:
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie in (0, 1), got alpha={alpha}, power={power}")


def minimum_detectable_effect(se: float, *, alpha: float = 0.05, power: float = 0.80) -> float:
    """``(z_{1-alpha/2} + z_power) * se``; NaN for a NaN ``se``.

    Raises:
        ValueError: a negative ``se`` or ``alpha``/``power`` outside (0, 1).
    """
    _check_level(alpha, power)
    if se < 0:
        raise ValueError(f"a standard error is >= 0, got {se}")
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * se)


def se_from_interval(low: float, high: float, confidence: float = 0.95) -> float:
    """Standard error of a statistic from its (roughly normal) interval; NaN without an interval."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return float("nan")
    return float(abs(high - low) / (2 * stats.norm.ppf(0.5 + confidence / 2)))


def paired_accuracy_mde(discordant_rate: float, n: int, *, alpha: float = 0.05, power: float = 0.80) -> float:
    """MDE of a paired accuracy difference of two probes on ``n`` sentences (McNemar's normal approximation).

    Args:
        discordant_rate: share of the sentences that exactly one probe gets right, in [0, 1].
        n: test sentences.

    Raises:
        ValueError: a rate outside [0, 1] or ``n`` < 1.
    """
    if not 0 <= discordant_rate <= 1 or n < 1:
        raise ValueError(f"need a discordant rate in [0, 1] and n >= 1, got {discordant_rate}, {n}")
    return minimum_detectable_effect(float(np.sqrt(discordant_rate / n)), alpha=alpha, power=power)
