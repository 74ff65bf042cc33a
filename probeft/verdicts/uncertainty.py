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
    * :func:`hierarchical_bootstrap_delta`: the same Delta pooled over fine-tuning seeds, with all the
      variance: fine-tuning seeds, then probe refits on resampled training sentences, then test
      sentences (paired), resampled in that order; reduces to :func:`paired_bootstrap_delta` for one
      seed and no refits.
    * :func:`bh_q_values`: Benjamini-Hochberg q-values of a family of p-values.
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
from scipy import stats

__all__ = [
    "AccuracyInterval",
    "DeltaInterval",
    "McNemarResult",
    "SeedSpread",
    "bh_q_values",
    "bootstrap_accuracy_ci",
    "hierarchical_bootstrap_delta",
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


def _layer_sums(correct: np.ndarray, reduce: Literal["mean"] | None, name: str) -> tuple[np.ndarray, int]:
    """Correctness ``(..., N)`` as int64, summed over the layer axis ``-2`` for ``reduce="mean"``; and ``L``."""
    values = correct.astype(np.int64)
    if reduce is None:
        return values, 1
    if reduce != "mean":
        raise ValueError(f'reduce must be None or "mean", got {reduce!r}')
    if values.ndim < 2:
        raise ValueError(f'reduce="mean" needs a layer axis: {name} must have shape (..., L, N), got {correct.shape}')
    return values.sum(axis=-2), values.shape[-2]


def hierarchical_bootstrap_delta(
    correct_a: ArrayLike,
    correct_b: ArrayLike,
    *,
    refits_a: ArrayLike | None = None,
    refits_b: ArrayLike | None = None,
    reduce: Literal["mean"] | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> DeltaInterval:
    """Delta = mean over fine-tuning seeds of acc(b_s) - acc(a), with every source of its variance resampled.

    ``a`` is the reference (the pre-trained encoder: one encoder, no fine-tuning seed), ``b_s`` the
    fine-tuned encoder of seed ``s``. Each of the ``R`` bootstrap replicates draws, in this order
    (a three-level hierarchical bootstrap, Davison & Hinkley 1997, sec. 3.8, resampling at every level):

    1. ``S`` fine-tuning seeds with replacement from the ``S`` seeds;
    2. for each drawn seed, one probe refit of ``b`` (uniformly from its ``R_b`` refits), and one refit of
       ``a`` (from its ``R_a`` refits) shared by all seeds of the replicate, as the point estimate has one
       reference fit; a side without refits uses its one fit;
    3. ``N`` test sentences with replacement, ONE draw shared by every seed and both sides (paired), the
       draws of :func:`paired_bootstrap_delta` with the same ``seed`` (level 1 and 2 draws come from a
       second generator, ``np.random.default_rng([seed, 1])``).

    The replicate's Delta* is the mean over the drawn seeds of the drawn refits' accuracy difference on
    the drawn sentences. The point estimate is that of the full fits, ``mean_s acc(b_s) - acc(a)``. A
    refit is fitted on a bootstrap resample of the training sentences (about 63% of them distinct), so
    its accuracy can sit below the full fit's; each seed's refit Deltas are therefore centred on its full
    fit (Delta* of a drawn refit pair minus ``mean refit accuracy - full-fit accuracy`` of each side, on
    all test sentences): the refits contribute their spread, not their shift. The interval is the
    percentile interval of Delta*, the p-value as in :func:`paired_bootstrap_delta`.

    With one seed and no refits nothing is drawn at levels 1-2 and the result is
    :func:`paired_bootstrap_delta`'s, bit for bit (same seed, same sentence draws, integer arithmetic).

    Args:
        correct_a: ``(..., N)`` per-sentence correctness (bool or 0/1) of the reference's full fits, or
            ``(..., L, N)`` with ``reduce="mean"`` (a layer group, averaged inside each replicate).
        correct_b: ``(S, ...)`` the same for each of ``S`` fine-tuning seeds, same sentences and order.
        refits_a: ``(R_a, ...)`` correctness of the reference's probe refits, or None.
        refits_b: ``(S, R_b, ...)`` correctness of each seed's probe refits, or None.
        reduce: ``None`` or ``"mean"`` over the layer axis ``-2`` (as in :func:`paired_bootstrap_delta`).
        resamples: number of bootstrap replicates ``R`` (>= 1).
        confidence: coverage of the interval, in (0, 1).
        seed: seed of the draws.

    Returns:
        :class:`DeltaInterval` with fields of the batch shape ``correct_a.shape[:-1]`` (``[:-2]`` with
        ``reduce="mean"``); floats for a single Delta.

    Raises:
        ValueError: shapes that do not match as above, empty or non-binary inputs, a bad ``reduce``,
            ``resamples < 1`` or ``confidence`` outside (0, 1).
    """
    _check_options(resamples, confidence)
    full_a = _as_correct(correct_a, "correct_a")
    full_b = _as_correct(correct_b, "correct_b")
    if full_b.shape[1:] != full_a.shape:
        raise ValueError(f"correct_b must have shape (S, *correct_a.shape) = (S, {', '.join(map(str, full_a.shape))}), "
                         f"got {full_b.shape}")
    num_seeds = full_b.shape[0]
    side_a = None if refits_a is None else _as_correct(refits_a, "refits_a")
    side_b = None if refits_b is None else _as_correct(refits_b, "refits_b")
    if side_a is not None and (side_a.ndim != full_a.ndim + 1 or side_a.shape[1:] != full_a.shape):
        raise ValueError(f"refits_a must have shape (R_a, {', '.join(map(str, full_a.shape))}), got {side_a.shape}")
    if side_b is not None and (side_b.ndim != full_b.ndim + 1 or side_b.shape[0] != num_seeds
                               or side_b.shape[2:] != full_a.shape):
        raise ValueError(f"refits_b must have shape (S={num_seeds}, R_b, {', '.join(map(str, full_a.shape))}), "
                         f"got {side_b.shape}")
    sums_a, num_layers = _layer_sums(full_a, reduce, "correct_a")  # (B..., N)
    sums_b, _ = _layer_sums(full_b, reduce, "correct_b")  # (S, B..., N)
    batch_shape, num_sentences = sums_a.shape[:-1], sums_a.shape[-1]
    batch = int(np.prod(batch_shape, dtype=np.int64))
    denominator = float(num_seeds * num_layers * num_sentences)
    # The refit level: each side's refits (R_a, B, N) and (S, R_b, B, N); a side without refits is its full fit.
    level_a = (sums_a[None] if side_a is None else _layer_sums(side_a, reduce, "refits_a")[0]).reshape(-1, batch,
                                                                                                    num_sentences)
    level_b = (sums_b[:, None] if side_b is None else _layer_sums(side_b, reduce, "refits_b")[0]).reshape(
        num_seeds, -1, batch, num_sentences)
    num_refits_a, num_refits_b = level_a.shape[0], level_b.shape[1]
    # Per-seed centring (in correct-sentence counts): mean refit total minus the full fit's, zero without refits.
    full_totals_a = sums_a.reshape(batch, num_sentences).sum(axis=1)  # (B,)
    full_totals_b = sums_b.reshape(num_seeds, batch, num_sentences).sum(axis=2)  # (S, B)
    shift_a = level_a.sum(axis=2).mean(axis=0) - full_totals_a if side_a is not None else np.zeros(batch)
    shift_b = level_b.sum(axis=3).mean(axis=1) - full_totals_b if side_b is not None else np.zeros((num_seeds, batch))

    # Level 3 first (the draws of paired_bootstrap_delta): totals of every refit on each sentence resample.
    stacked = np.concatenate([level_a.reshape(-1, num_sentences), level_b.reshape(-1, num_sentences)]).astype(np.float64)
    totals = _resampled_sums(stacked, resamples, seed)  # (rows, R)
    totals_a = totals[: num_refits_a * batch].reshape(num_refits_a, batch, resamples)
    totals_b = totals[num_refits_a * batch :].reshape(num_seeds, num_refits_b, batch, resamples)
    # Levels 1 and 2 from their own generator.
    rng = np.random.default_rng([seed, 1])
    seeds_drawn = rng.integers(0, num_seeds, size=(resamples, num_seeds)) if num_seeds > 1 else np.zeros(
        (resamples, 1), dtype=np.int64)
    refit_b = rng.integers(0, num_refits_b, size=(resamples, num_seeds)) if num_refits_b > 1 else np.zeros_like(
        seeds_drawn)
    # One reference refit per replicate, shared by its seeds: the point estimate has one reference fit too.
    refit_a = rng.integers(0, num_refits_a, size=(resamples, 1)) if num_refits_a > 1 else np.zeros(
        (resamples, 1), dtype=np.int64)
    replicate = np.arange(resamples)[:, None]  # (R, 1)
    picked_b = totals_b.transpose(0, 1, 3, 2)[seeds_drawn, refit_b, replicate]  # (R, S, B)
    picked_a = totals_a.transpose(0, 2, 1)[refit_a, replicate]  # (R, 1, B)
    shifts = shift_b[seeds_drawn] - shift_a[None, None, :]  # (R, S, B)
    differences = picked_b - picked_a  # (R, S, B)
    if side_a is not None or side_b is not None:
        differences = differences - shifts
    resampled = differences.sum(axis=1).T  # (B, R); integer-valued without refits
    deltas = (full_totals_b.sum(axis=0) - num_seeds * full_totals_a) / denominator
    low, high = _percentile_interval(resampled / denominator, confidence)
    at_most_zero = (resampled <= 0).sum(axis=1)
    at_least_zero = (resampled >= 0).sum(axis=1)
    p_value = np.minimum(1.0, 2.0 * (np.minimum(at_most_zero, at_least_zero) + 1) / (resamples + 1))

    def shaped(values: np.ndarray) -> float | np.ndarray:
        return _as_output(np.asarray(values).reshape(batch_shape))

    return DeltaInterval(delta=shaped(deltas), low=shaped(low), high=shaped(high), p_value=shaped(p_value))


def bh_q_values(p_values: ArrayLike) -> np.ndarray:
    """Benjamini-Hochberg q-values (adjusted p-values) of one family of tests.

    ``scipy.stats.false_discovery_control(p, method="bh")``: rejecting where ``q < alpha`` keeps the
    expected share of false discoveries among the rejections at most ``alpha`` (Benjamini & Hochberg
    1995) for independent or positively dependent tests. NaN p-values (a test not made) stay NaN and
    are not counted in the family.

    Args:
        p_values: ``(M,)`` p-values in [0, 1] (NaN allowed).

    Returns:
        ``(M,)`` float64 q-values, each at least its p-value.

    Raises:
        ValueError: a p-value outside [0, 1] or a non-1-D input.
    """
    values = np.asarray(p_values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"p_values must be 1-D (M,), got shape {values.shape}")
    made = ~np.isnan(values)
    if ((values[made] < 0) | (values[made] > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1], got {values[made][(values[made] < 0) | (values[made] > 1)][:3]}")
    q = np.full(values.shape, np.nan)
    if made.any():
        q[made] = stats.false_discovery_control(values[made], method="bh")
    return q


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
