"""Uncertainty of probing accuracies and of Deltas, from per-sentence test correctness.

A probe's test result is taken as its correctness on the ``N`` test sentences: a boolean (or 0/1)
array of shape ``(N,)``, or ``(..., N)`` for several probes at once (e.g. ``(P, N)`` for ``P``
probes, ``(P, L, N)`` for ``P`` layer groups of ``L`` layers). The sentences are the unit of
resampling: a probe's test accuracy is a mean over sentences, and its uncertainty is that of the
test sample, not of the probe's training.

What it computes
    * :func:`bootstrap_accuracy_ci`: percentile-bootstrap interval of a test accuracy.
    * :func:`paired_bootstrap_delta`: Delta = acc(b) - acc(a) on the same sentences (e.g. b the
      fine-tuned encoder, a the pre-trained one), with a paired percentile-bootstrap interval and a
      two-sided bootstrap p-value; optionally for a layer group (mean over layers inside each
      resample).
    * :func:`mcnemar_exact`: McNemar's exact (binomial) test on the discordant sentences.
    * :func:`seed_spread`: mean, sample standard deviation and count across fine-tuning seeds.
    * :func:`resampled_accuracies` and :func:`percentile_interval`: the raw bootstrap accuracies of
      a batch of probes, for statistics of several probes at once (e.g. :mod:`probeft.verdicts.claims`).

Method
    Nonparametric bootstrap over test sentences (Efron & Tibshirani 1993, *An Introduction to the
    Bootstrap*, ch. 6 and 13): ``R`` resamples of ``N`` sentence indices drawn uniformly with
    replacement from ``np.random.default_rng(seed)``. Each resample is turned into counts
    ``(R, N)`` (how often each sentence was drawn), so every resampled mean is one matrix product,
    and the same resamples are reused for all probes of a call (and for both sides of a paired
    Delta). Resamples are drawn in chunks of at most ``2**21`` indices to bound memory (``N = 10k``,
    ``R = 1000`` never holds more than ~32 MB); the chunks are consecutive draws from one
    generator, so the result does not depend on the chunking. The interval is the percentile
    interval: the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the ``R``
    resampled statistics (numpy's default linear interpolation). McNemar's exact test follows
    McNemar (1947), *Psychometrika* 12(2), in its exact binomial form (e.g. Dietterich 1998,
    *Neural Computation* 10(7), for comparing classifiers on one test set).

This module imports nothing of :mod:`probeft`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

__all__ = [
    "AccuracyInterval",
    "DeltaInterval",
    "McNemarResult",
    "SeedSpread",
    "bootstrap_accuracy_ci",
    "mcnemar_exact",
    "paired_bootstrap_delta",
    "percentile_interval",
    "resampled_accuracies",
    "seed_spread",
]

_CHUNK_INDICES = 2**21  # indices per resampling chunk: (rows, N) int64 + float64 counts ~ 32 MB

ArrayLike = np.ndarray | Sequence[bool] | Sequence[int] | Sequence[float]


class AccuracyInterval(NamedTuple):
    """Percentile-bootstrap interval of an accuracy (fractions in [0, 1]).

    Attributes:
        low: ``(...)`` lower end; a float for one probe ``(N,)``.
        high: ``(...)`` upper end; a float for one probe ``(N,)``.
    """

    low: float | np.ndarray
    high: float | np.ndarray


@dataclass(frozen=True)
class DeltaInterval:
    """Delta = acc(b) - acc(a) on the same sentences, with its paired-bootstrap uncertainty.

    All fields have the batch shape of the call (floats for one pair).

    Attributes:
        delta: ``(...)`` observed Delta (fraction, in [-1, 1]).
        low: ``(...)`` lower end of the percentile interval.
        high: ``(...)`` upper end of the percentile interval.
        p_value: ``(...)`` two-sided bootstrap p-value of "no difference"; at least
            ``2 / (resamples + 1)`` unless it is 1 (see :func:`paired_bootstrap_delta`).
    """

    delta: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    p_value: float | np.ndarray


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's exact test of two probes on the same sentences.

    All fields have the batch shape of the call (scalars for one pair).

    Attributes:
        b01: ``(...)`` sentences that probe a gets wrong and probe b gets right.
        b10: ``(...)`` sentences that probe a gets right and probe b gets wrong.
        p_value: ``(...)`` two-sided exact p-value, ``min(1, 2 * BinomCDF(min(b01, b10);
            b01 + b10, 1/2))``; 1 when there are no discordant sentences.
    """

    b01: int | np.ndarray
    b10: int | np.ndarray
    p_value: float | np.ndarray


class SeedSpread(NamedTuple):
    """Spread of a value across fine-tuning seeds.

    Attributes:
        mean: ``(...)`` mean over seeds; a float for ``(S,)`` values.
        std: ``(...)`` sample standard deviation (``ddof=1``); NaN when ``n == 1``.
        n: number of seeds ``S``.
    """

    mean: float | np.ndarray
    std: float | np.ndarray
    n: int


def _as_correct(correct: ArrayLike, name: str) -> np.ndarray:
    """Validate per-sentence correctness ``(..., N)`` and return it as a bool array."""
    array = np.asarray(correct)
    if array.ndim == 0:
        raise ValueError(f"{name} must have shape (..., N) with N test sentences, got a scalar")
    if array.shape[-1] == 0 or array.size == 0:
        raise ValueError(f"{name} is empty: shape {array.shape}")
    if array.dtype == np.bool_:
        return array
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name} must be boolean or 0/1 numbers, got dtype {array.dtype} (shape {array.shape})")
    is_binary = (array == 0) | (array == 1)  # NaN compares False, so it is rejected here too
    if not bool(is_binary.all()):
        bad = array[~is_binary].ravel()[0]
        raise ValueError(f"{name} must hold only booleans or 0/1, found {bad!r} (shape {array.shape})")
    return array.astype(np.bool_)


def _check_options(resamples: int, confidence: float) -> None:
    """Reject a resample count below 1 and a confidence outside (0, 1)."""
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise ValueError(f"resamples must be an integer >= 1, got {resamples!r}")
    if not (isinstance(confidence, (int, float, np.floating)) and 0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence must be in the open interval (0, 1), got {confidence!r}")


def _as_output(array: np.ndarray) -> float | np.ndarray:
    """A 0-d result as a Python float, anything else unchanged."""
    return float(array) if array.ndim == 0 else array


def _resampled_sums(sums: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Resampled totals of per-sentence values, the same resamples for every row.

    Args:
        sums: ``(B, N)`` per-sentence values (integer-valued floats keep the totals exact).
        resamples: number of bootstrap resamples ``R``.
        seed: seed of ``np.random.default_rng``.

    Returns:
        ``(B, R)`` totals ``sum_j counts[r, j] * sums[b, j]``, where ``counts[r]`` says how often
        each of the ``N`` sentences was drawn in resample ``r``.
    """
    rng = np.random.default_rng(seed)
    num_sentences = sums.shape[1]
    rows_per_chunk = max(1, _CHUNK_INDICES // num_sentences)
    totals = np.empty((sums.shape[0], resamples), dtype=np.float64)
    for start in range(0, resamples, rows_per_chunk):
        rows = min(rows_per_chunk, resamples - start)
        indices = rng.integers(0, num_sentences, size=(rows, num_sentences))
        # Offset each row so one bincount gives all rows' counts at once.
        flat = (indices + num_sentences * np.arange(rows)[:, None]).ravel()
        counts = np.bincount(flat, minlength=rows * num_sentences).reshape(rows, num_sentences)
        totals[:, start : start + rows] = sums @ counts.T.astype(np.float64)
    return totals


def _percentile_interval(statistics: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper percentile-interval ends ``(B,)`` of ``(B, R)`` bootstrap statistics."""
    alpha = 1.0 - float(confidence)
    low, high = np.quantile(statistics, [alpha / 2.0, 1.0 - alpha / 2.0], axis=1)
    return low, high


def resampled_accuracies(correct: ArrayLike, *, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Bootstrap accuracies of a batch of probes on the same sentences, one set of resamples for all.

    Any statistic of several probes' accuracies (a difference of best layers, a layer-group mean)
    computed column by column on the result is a paired bootstrap of that statistic.

    Args:
        correct: ``(P, N)`` per-sentence correctness (bool or 0/1) of ``P`` probes on ``N`` sentences.
        resamples: number of resamples ``R`` (>= 1).
        seed: seed of ``np.random.default_rng`` (the same draws as :func:`bootstrap_accuracy_ci`).

    Returns:
        ``(P, R)`` float64 accuracies; row ``p`` resamples probe ``p``.
    """
    _check_options(resamples, 0.5)
    correct = _as_correct(correct, "correct")
    if correct.ndim != 2:
        raise ValueError(f"correct must be 2-D (P, N), got shape {correct.shape}")
    return _resampled_sums(correct.astype(np.float64), resamples, seed) / correct.shape[1]


def percentile_interval(statistics: ArrayLike, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval ``(low, high)`` of ``(R,)`` bootstrap statistics (NaN resamples are errors)."""
    values = np.asarray(statistics, dtype=np.float64).reshape(1, -1)
    _check_options(values.shape[1], confidence)
    if not np.isfinite(values).all():
        raise ValueError("bootstrap statistics hold NaN or inf")
    low, high = _percentile_interval(values, confidence)
    return float(low[0]), float(high[0])


def bootstrap_accuracy_ci(
    correct: ArrayLike,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> AccuracyInterval:
    """Percentile-bootstrap confidence interval of test accuracy, for one probe or a batch.

    The ``N`` test sentences are resampled with replacement ``resamples`` times; the interval ends
    are the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the resampled
    accuracies (percentile bootstrap, Efron & Tibshirani 1993, ch. 13). The resamples are drawn
    once and reused for every probe of the batch, so row ``p`` of a batched call equals a call on
    ``correct[p]`` alone with the same seed.

    Args:
        correct: ``(N,)`` or ``(..., N)`` per-sentence correctness (bool or 0/1) of one probe or a
            batch of probes (e.g. ``(P, N)``), all on the same ``N`` sentences.
        resamples: number of bootstrap resamples ``R`` (>= 1).
        confidence: coverage of the interval, in (0, 1).
        seed: seed of ``np.random.default_rng``; the same seed gives the same interval.

    Returns:
        ``(low, high)``, each of shape ``correct.shape[:-1]`` (floats for ``(N,)``).

    Raises:
        ValueError: if ``correct`` is empty or not boolean / 0-1, ``resamples < 1`` or
            ``confidence`` is outside (0, 1).
    """
    _check_options(resamples, confidence)
    correct = _as_correct(correct, "correct")
    batch_shape, num_sentences = correct.shape[:-1], correct.shape[-1]
    sums = correct.reshape(-1, num_sentences).astype(np.float64)
    accuracies = _resampled_sums(sums, resamples, seed) / num_sentences
    low, high = _percentile_interval(accuracies, confidence)
    return AccuracyInterval(_as_output(low.reshape(batch_shape)), _as_output(high.reshape(batch_shape)))


def paired_bootstrap_delta(
    correct_a: ArrayLike,
    correct_b: ArrayLike,
    *,
    reduce: Literal["mean"] | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> DeltaInterval:
    """Delta = acc(b) - acc(a) on the same sentences, with a paired percentile-bootstrap interval.

    Paired: every resample draws one set of sentence indices and evaluates both probes on it, so
    the sentence-to-sentence difficulty that a and b share cancels (identical predictions give
    Delta 0 with the degenerate interval [0, 0]). Because Delta is a mean of the per-sentence
    differences ``correct_b - correct_a``, the resampled Deltas are computed from those
    differences directly (in integers, so Delta* = 0 exactly when it should be).

    With ``reduce="mean"`` the axis just before ``N`` holds the ``L`` layers of a layer group; the
    group's Delta is the mean of its layers' Deltas, averaged *inside* each resample, so the group
    interval is paired over sentences across all its layers.

    The p-value is two-sided from the bootstrap distribution of Delta*:
    ``p = min(1, 2 * min(#(Delta* <= 0) + 1, #(Delta* >= 0) + 1) / (R + 1))``. It asks how far
    the bootstrap distribution lies on one side of 0, so it agrees with the percentile interval
    (0 outside a ``1 - alpha`` interval roughly when ``p < alpha``) without the shift method's
    assumption that the distribution keeps its shape under the null. The ``+1`` (Davison & Hinkley
    1997, *Bootstrap Methods and their Application*, sec. 4.2.1) keeps a finite number of resamples
    from reporting ``p = 0``: the smallest p it can give is ``2 / (R + 1)``. Resamples with
    Delta* = 0 count on both sides, which makes ties conservative (identical predictions: p = 1).

    Args:
        correct_a: ``(..., N)`` per-sentence correctness (bool or 0/1) of the reference probes
            (e.g. the pre-trained encoder); ``(..., L, N)`` with ``reduce="mean"``.
        correct_b: the same shape as ``correct_a``, the compared probes (e.g. fine-tuned), on the
            same sentences in the same order.
        reduce: ``None`` for one Delta per leading index; ``"mean"`` to average over the layer
            axis (axis ``-2``) inside each resample.
        resamples: number of bootstrap resamples ``R`` (>= 1).
        confidence: coverage of the interval, in (0, 1).
        seed: seed of ``np.random.default_rng``; the same resamples are used for every Delta of the
            batch, and they are the ones :func:`bootstrap_accuracy_ci` draws with the same seed and N.

    Returns:
        :class:`DeltaInterval` with fields of shape ``correct_a.shape[:-1]``, or
        ``correct_a.shape[:-2]`` with ``reduce="mean"`` (floats for a single Delta).

    Raises:
        ValueError: if the shapes differ, an input is empty or not boolean / 0-1, ``reduce`` is
            unknown or needs a layer axis that is missing, ``resamples < 1`` or ``confidence`` is
            outside (0, 1).
    """
    _check_options(resamples, confidence)
    correct_a = _as_correct(correct_a, "correct_a")
    correct_b = _as_correct(correct_b, "correct_b")
    if correct_a.shape != correct_b.shape:
        raise ValueError(
            f"correct_a and correct_b must have the same shape (..., N) on the same sentences, "
            f"got {correct_a.shape} and {correct_b.shape}"
        )
    # Per-sentence difference in {-1, 0, 1}, kept as integers until the final division.
    difference = correct_b.astype(np.int64) - correct_a.astype(np.int64)
    if reduce is None:
        num_layers = 1
    elif reduce == "mean":
        if difference.ndim < 2:
            raise ValueError(
                f'reduce="mean" needs a layer axis: correct_a must have shape (..., L, N), got {correct_a.shape}'
            )
        num_layers = difference.shape[-2]
        difference = difference.sum(axis=-2)
    else:
        raise ValueError(f'reduce must be None or "mean", got {reduce!r}')
    batch_shape, num_sentences = difference.shape[:-1], difference.shape[-1]
    sums = difference.reshape(-1, num_sentences).astype(np.float64)
    denominator = float(num_layers * num_sentences)

    deltas = sums.sum(axis=1) / denominator
    resampled = _resampled_sums(sums, resamples, seed)  # integer-valued: comparisons with 0 are exact
    low, high = _percentile_interval(resampled / denominator, confidence)
    at_most_zero = (resampled <= 0).sum(axis=1)
    at_least_zero = (resampled >= 0).sum(axis=1)
    p_value = np.minimum(1.0, 2.0 * (np.minimum(at_most_zero, at_least_zero) + 1) / (resamples + 1))

    def shaped(values: np.ndarray) -> float | np.ndarray:
        return _as_output(values.reshape(batch_shape))

    return DeltaInterval(delta=shaped(deltas), low=shaped(low), high=shaped(high), p_value=shaped(p_value))


def _binomial_two_sided_half(smaller: int, trials: int) -> float:
    """``min(1, 2 * P(X <= smaller))`` for ``X ~ Binomial(trials, 1/2)``, in exact integers."""
    if trials == 0:
        return 1.0
    coefficient, tail = 1, 1  # C(trials, 0)
    for k in range(smaller):
        coefficient = coefficient * (trials - k) // (k + 1)  # C(trials, k + 1), exact
        tail += coefficient
    # int / int is correctly rounded in Python, and cannot overflow here (the ratio is <= 1).
    return min(1.0, 2 * tail / 2**trials)


def mcnemar_exact(correct_a: ArrayLike, correct_b: ArrayLike) -> McNemarResult:
    """McNemar's exact test: do probes a and b differ in accuracy on the same sentences?

    Only the discordant sentences carry information: ``b01`` (a wrong, b right) and ``b10``
    (a right, b wrong). Under the null of equal accuracy each discordant sentence is equally likely
    to fall either way, so ``b01 ~ Binomial(b01 + b10, 1/2)``; the two-sided p-value is
    ``min(1, 2 * BinomCDF(min(b01, b10); b01 + b10, 1/2))``, computed exactly in integers, and 1
    when there are no discordant sentences.

    Args:
        correct_a: ``(N,)`` or ``(..., N)`` per-sentence correctness (bool or 0/1) of probe(s) a.
        correct_b: the same shape, probe(s) b on the same sentences in the same order.

    Returns:
        :class:`McNemarResult` with fields of shape ``correct_a.shape[:-1]`` (scalars for ``(N,)``).

    Raises:
        ValueError: if the shapes differ or an input is empty or not boolean / 0-1.
    """
    correct_a = _as_correct(correct_a, "correct_a")
    correct_b = _as_correct(correct_b, "correct_b")
    if correct_a.shape != correct_b.shape:
        raise ValueError(
            f"correct_a and correct_b must have the same shape (..., N) on the same sentences, "
            f"got {correct_a.shape} and {correct_b.shape}"
        )
    b01 = (~correct_a & correct_b).sum(axis=-1)
    b10 = (correct_a & ~correct_b).sum(axis=-1)
    p_value = np.array(
        [_binomial_two_sided_half(int(min(x, y)), int(x + y)) for x, y in zip(b01.ravel(), b10.ravel())],
        dtype=np.float64,
    ).reshape(b01.shape)
    if b01.ndim == 0:
        return McNemarResult(b01=int(b01), b10=int(b10), p_value=float(p_value))
    return McNemarResult(b01=b01, b10=b10, p_value=p_value)


def seed_spread(values: ArrayLike) -> SeedSpread:
    """Mean, sample standard deviation and count of a value across fine-tuning seeds.

    Args:
        values: ``(S,)`` one value per seed (e.g. a probing accuracy or a Delta), or ``(S, ...)``
            with the seeds on the leading axis.

    Returns:
        ``(mean, std, n)``: mean and standard deviation (``ddof=1``, the unbiased variance's root)
        over the seeds, of shape ``values.shape[1:]`` (floats for ``(S,)``), and ``n = S``. With a
        single seed the spread is unknown and ``std`` is NaN (not 0, which would claim no spread).

    Raises:
        ValueError: if ``values`` is a scalar, has no seeds, is not numeric or holds NaN / inf.
    """
    array = np.asarray(values)
    if array.ndim == 0:
        raise ValueError("values must have shape (S,) or (S, ...) with S seeds, got a scalar")
    if array.shape[0] == 0:
        raise ValueError(f"values holds no seeds: shape {array.shape}")
    is_number = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    if array.dtype == np.bool_ or not is_number:
        raise ValueError(f"values must be numbers, got dtype {array.dtype} (shape {array.shape})")
    array = array.astype(np.float64)
    if not bool(np.isfinite(array).all()):
        raise ValueError(f"values contains NaN or infinite values (shape {array.shape})")
    num_seeds = array.shape[0]
    mean = array.mean(axis=0)
    # Explicit NaN for one seed: numpy would also give NaN, but with a RuntimeWarning.
    std = array.std(axis=0, ddof=1) if num_seeds > 1 else np.full(array.shape[1:], np.nan)
    return SeedSpread(mean=_as_output(np.asarray(mean)), std=_as_output(np.asarray(std)), n=num_seeds)
