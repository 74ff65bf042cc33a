"""Tests of probeft.verdicts.uncertainty: known cases, references (scipy, explicit bootstrap), coverage."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from probeft.verdicts import uncertainty
from probeft.verdicts.uncertainty import (
    bootstrap_accuracy_ci,
    mcnemar_exact,
    paired_bootstrap_delta,
    seed_spread,
)


def _paired_sample(
    rng: np.random.Generator, shape: tuple[int, ...], both: float, only_a: float, only_b: float
) -> tuple[np.ndarray, np.ndarray]:
    """Correlated correctness of probes a and b: P(both right), P(only a right), P(only b right)."""
    outcome = rng.choice(4, size=shape, p=[both, only_a, only_b, 1.0 - both - only_a - only_b])
    return (outcome == 0) | (outcome == 1), (outcome == 0) | (outcome == 2)


def _with_discordant(b01: int, b10: int, both_right: int, both_wrong: int) -> tuple[np.ndarray, np.ndarray]:
    """Correctness arrays with exactly the given discordant and concordant counts (shuffled)."""
    a = np.array([False] * b01 + [True] * b10 + [True] * both_right + [False] * both_wrong)
    b = np.array([True] * b01 + [False] * b10 + [True] * both_right + [False] * both_wrong)
    order = np.random.default_rng(0).permutation(a.size)
    return a[order], b[order]


# --- identical predictions -------------------------------------------------------------------


def test_identical_predictions_give_zero_delta_degenerate_interval_and_p_one() -> None:
    correct = np.random.default_rng(0).random(300) < 0.7
    result = paired_bootstrap_delta(correct, correct.copy(), resamples=500)
    assert (result.delta, result.low, result.high, result.p_value) == (0.0, 0.0, 0.0, 1.0)
    mcnemar = mcnemar_exact(correct, correct.copy())
    assert (mcnemar.b01, mcnemar.b10, mcnemar.p_value) == (0, 0, 1.0)


def test_identical_layer_group_gives_zero_delta_and_p_one() -> None:
    correct = np.random.default_rng(1).random((3, 4, 200)) < 0.6  # 3 groups of 4 layers
    result = paired_bootstrap_delta(correct, correct, reduce="mean", resamples=300)
    for field in (result.delta, result.low, result.high):
        np.testing.assert_array_equal(field, np.zeros(3))
    np.testing.assert_array_equal(result.p_value, np.ones(3))


# --- McNemar --------------------------------------------------------------------------------


def test_mcnemar_hand_made_case_matches_hand_computation_and_scipy() -> None:
    a, b = _with_discordant(b01=2, b10=8, both_right=30, both_wrong=5)
    result = mcnemar_exact(a, b)
    assert (result.b01, result.b10) == (2, 8)
    # By hand: 2 * P(X <= 2), X ~ Bin(10, 1/2) = 2 * (1 + 10 + 45) / 1024.
    by_hand = 2 * (math.comb(10, 0) + math.comb(10, 1) + math.comb(10, 2)) / 2**10
    assert by_hand == pytest.approx(0.109375, abs=0)
    assert result.p_value == pytest.approx(by_hand, rel=1e-12)
    assert result.p_value == pytest.approx(stats.binomtest(2, 10, 0.5).pvalue, rel=1e-12)
    # Swapping a and b swaps the discordant counts, not the p-value.
    swapped = mcnemar_exact(b, a)
    assert (swapped.b01, swapped.b10, swapped.p_value) == (8, 2, result.p_value)


@pytest.mark.parametrize(("b01", "b10"), [(0, 1), (0, 7), (5, 5), (6, 5), (13, 30), (300, 352), (1, 1500)])
def test_mcnemar_matches_scipy_binomtest(b01: int, b10: int) -> None:
    a, b = _with_discordant(b01, b10, both_right=20, both_wrong=3)
    result = mcnemar_exact(a, b)
    expected = stats.binomtest(b01, b01 + b10, 0.5).pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mcnemar_batched_equals_one_at_a_time() -> None:
    a, b = _paired_sample(np.random.default_rng(2), (2, 3, 80), 0.5, 0.15, 0.25)
    result = mcnemar_exact(a, b)
    assert result.b01.shape == result.b10.shape == result.p_value.shape == (2, 3)
    for index in np.ndindex(2, 3):
        single = mcnemar_exact(a[index], b[index])
        assert (single.b01, single.b10, single.p_value) == (result.b01[index], result.b10[index], result.p_value[index])


# --- accuracy interval ------------------------------------------------------------------------


def test_accuracy_interval_coverage_on_simulated_data() -> None:
    true_accuracy, simulations, sentences = 0.7, 1000, 400
    correct = np.random.default_rng(3).random((simulations, sentences)) < true_accuracy
    low, high = bootstrap_accuracy_ci(correct, seed=4)
    assert low.shape == high.shape == (simulations,)
    coverage = np.mean((low <= true_accuracy) & (true_accuracy <= high))
    assert 0.93 <= coverage <= 0.97  # 95% +- ~3 binomial s.d. of 1000 simulations
    # A 50% interval covers about half as often: the confidence level is used, not ignored.
    low50, high50 = bootstrap_accuracy_ci(correct, confidence=0.5, seed=4)
    assert 0.45 <= np.mean((low50 <= true_accuracy) & (true_accuracy <= high50)) <= 0.57


def test_accuracy_interval_matches_scipy_bootstrap_and_wald() -> None:
    correct = np.random.default_rng(5).random(400) < 0.7
    accuracy = correct.mean()
    low, high = bootstrap_accuracy_ci(correct, resamples=4000, seed=6)
    assert isinstance(low, float) and isinstance(high, float)
    assert low < accuracy < high
    reference = stats.bootstrap(
        (correct.astype(float),), np.mean, n_resamples=4000, method="percentile", random_state=7
    ).confidence_interval
    assert low == pytest.approx(reference.low, abs=0.01)
    assert high == pytest.approx(reference.high, abs=0.01)
    half_width = 1.959964 * math.sqrt(accuracy * (1 - accuracy) / correct.size)
    assert (low, high) == pytest.approx((accuracy - half_width, accuracy + half_width), abs=0.01)


def test_accuracy_interval_batched_rows_equal_single_calls_and_seed_is_deterministic() -> None:
    correct = np.random.default_rng(8).random((2, 3, 150)) < 0.8
    low, high = bootstrap_accuracy_ci(correct, resamples=200, seed=9)
    assert low.shape == (2, 3)
    for index in np.ndindex(2, 3):  # the same resampled indices serve every probe
        assert bootstrap_accuracy_ci(correct[index], resamples=200, seed=9) == (low[index], high[index])
    again = bootstrap_accuracy_ci(correct, resamples=200, seed=9)
    np.testing.assert_array_equal(again.low, low)
    other = bootstrap_accuracy_ci(correct, resamples=200, seed=10)
    assert not np.array_equal(other.low, low) or not np.array_equal(other.high, high)


def test_accuracy_interval_edge_cases_and_zero_one_input() -> None:
    assert bootstrap_accuracy_ci(np.ones(50, dtype=bool), resamples=100) == (1.0, 1.0)
    assert bootstrap_accuracy_ci(np.zeros(50, dtype=int), resamples=100) == (0.0, 0.0)
    assert bootstrap_accuracy_ci([True], resamples=1) == (1.0, 1.0)
    flags = np.random.default_rng(11).random(120) < 0.5
    as_bool = bootstrap_accuracy_ci(flags, resamples=100)
    assert bootstrap_accuracy_ci(flags.astype(np.int8), resamples=100) == as_bool
    assert bootstrap_accuracy_ci(flags.astype(np.float32), resamples=100) == as_bool


def test_chunked_resampling_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _paired_sample(np.random.default_rng(12), (4, 97), 0.6, 0.1, 0.2)
    whole = paired_bootstrap_delta(a, b, resamples=50, seed=13)
    monkeypatch.setattr(uncertainty, "_CHUNK_INDICES", 3 * 97 + 5)  # 3 resamples per chunk
    chunked = paired_bootstrap_delta(a, b, resamples=50, seed=13)
    for field in ("delta", "low", "high", "p_value"):
        np.testing.assert_array_equal(getattr(chunked, field), getattr(whole, field))


# --- paired Delta ---------------------------------------------------------------------------


def test_paired_delta_coverage_on_simulated_data() -> None:
    # acc(a) = 0.6 + 0.1 = 0.7, acc(b) = 0.6 + 0.2 = 0.8: true Delta = 0.1.
    a, b = _paired_sample(np.random.default_rng(14), (1000, 400), both=0.6, only_a=0.1, only_b=0.2)
    result = paired_bootstrap_delta(a, b, seed=15)
    np.testing.assert_allclose(result.delta, b.mean(axis=1) - a.mean(axis=1), atol=1e-12)
    coverage = np.mean((result.low <= 0.1) & (0.1 <= result.high))
    assert 0.93 <= coverage <= 0.97


def test_paired_delta_p_value_is_calibrated_under_the_null_and_small_under_an_effect() -> None:
    a, b = _paired_sample(np.random.default_rng(16), (1000, 400), both=0.6, only_a=0.15, only_b=0.15)
    bootstrap_rate = np.mean(paired_bootstrap_delta(a, b, seed=17).p_value < 0.05)
    mcnemar_rate = np.mean(mcnemar_exact(a, b).p_value < 0.05)
    assert 0.03 <= bootstrap_rate <= 0.07
    assert 0.02 <= mcnemar_rate <= 0.07  # the exact test is slightly conservative
    # A large effect: every resample is positive, so p is the smallest reachable, 2 / (R + 1).
    a, b = _with_discordant(b01=80, b10=10, both_right=250, both_wrong=60)
    strong = paired_bootstrap_delta(a, b, resamples=999)
    assert strong.delta == pytest.approx(70 / 400)
    assert strong.p_value == pytest.approx(2 / 1000)
    assert 0 < strong.low < strong.delta < strong.high
    assert paired_bootstrap_delta(b, a, resamples=999).delta == pytest.approx(-70 / 400)


def test_paired_delta_p_value_agrees_with_paired_normal_approximation() -> None:
    a, b = _with_discordant(b01=50, b10=30, both_right=260, both_wrong=60)
    result = paired_bootstrap_delta(a, b, resamples=8000, seed=18)
    n = a.size
    delta = (50 - 30) / n
    standard_error = math.sqrt(((50 + 30) / n - delta**2) / n)
    assert result.delta == pytest.approx(delta)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(delta / standard_error), abs=0.015)
    assert (result.low, result.high) == pytest.approx(
        (delta - 1.959964 * standard_error, delta + 1.959964 * standard_error), abs=0.01
    )


def test_layer_group_delta_matches_explicit_paired_bootstrap() -> None:
    layers, sentences, resamples, seed = 4, 120, 300, 19
    a, b = _paired_sample(np.random.default_rng(20), (layers, sentences), 0.55, 0.15, 0.2)
    result = paired_bootstrap_delta(a, b, reduce="mean", resamples=resamples, seed=seed)
    per_layer = b.mean(axis=1) - a.mean(axis=1)
    assert result.delta == pytest.approx(per_layer.mean(), abs=1e-12)
    # Reference: draw the documented resamples as explicit indices and evaluate a and b on them.
    indices = np.random.default_rng(seed).integers(0, sentences, size=(resamples, sentences))
    resampled = b[:, indices].mean(axis=2).mean(axis=0) - a[:, indices].mean(axis=2).mean(axis=0)  # (R,)
    expected_low, expected_high = np.quantile(resampled, [0.025, 0.975])
    assert (result.low, result.high) == pytest.approx((expected_low, expected_high), abs=1e-12)
    one_side = min(np.sum(resampled <= 1e-12), np.sum(resampled >= -1e-12))
    assert result.p_value == pytest.approx(min(1.0, 2 * (one_side + 1) / (resamples + 1)))


def test_layer_group_invariances_and_batching() -> None:
    a, b = _paired_sample(np.random.default_rng(21), (3, 5, 150), 0.5, 0.2, 0.2)  # 3 groups x 5 layers
    grouped = paired_bootstrap_delta(a, b, reduce="mean", resamples=200, seed=22)
    assert grouped.delta.shape == grouped.p_value.shape == (3,)
    for group in range(3):
        single = paired_bootstrap_delta(a[group], b[group], reduce="mean", resamples=200, seed=22)
        assert (single.delta, single.low, single.high, single.p_value) == pytest.approx(
            (grouped.delta[group], grouped.low[group], grouped.high[group], grouped.p_value[group]), abs=1e-12
        )
    # A group of L copies of one layer is that layer.
    copies = paired_bootstrap_delta(
        np.repeat(a[0, :1], 6, axis=0), np.repeat(b[0, :1], 6, axis=0), reduce="mean", resamples=200, seed=22
    )
    alone = paired_bootstrap_delta(a[0, 0], b[0, 0], resamples=200, seed=22)
    assert (copies.delta, copies.low, copies.high, copies.p_value) == pytest.approx(
        (alone.delta, alone.low, alone.high, alone.p_value), abs=1e-12
    )
    # Without reduce, every layer is its own Delta.
    per_layer = paired_bootstrap_delta(a, b, resamples=200, seed=22)
    assert per_layer.delta.shape == (3, 5)
    np.testing.assert_allclose(per_layer.delta.mean(axis=1), grouped.delta, atol=1e-12)


# --- seed spread ----------------------------------------------------------------------------


def test_seed_spread_known_values_and_batch() -> None:
    spread = seed_spread([0.7, 0.8, 0.9])
    mean, std, n = spread
    assert (mean, std, n) == pytest.approx((0.8, 0.1, 3))
    assert isinstance(mean, float) and isinstance(std, float) and n == 3
    values = np.random.default_rng(23).normal(size=(5, 4))
    batched = seed_spread(values)
    np.testing.assert_allclose(batched.mean, values.mean(axis=0))
    np.testing.assert_allclose(batched.std, np.std(values, axis=0, ddof=1))
    assert batched.n == 5


def test_seed_spread_single_seed_has_nan_std_without_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean, std, n = seed_spread([0.75])
        batched = seed_spread(np.array([[0.1, 0.2]]))
    assert mean == 0.75 and math.isnan(std) and n == 1
    assert batched.std.shape == (2,) and np.isnan(batched.std).all()


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: paired_bootstrap_delta(np.ones(10, bool), np.ones(11, bool)), "same shape"),
        (lambda: paired_bootstrap_delta(np.ones((2, 10), bool), np.ones(10, bool)), "same shape"),
        (lambda: mcnemar_exact(np.ones((3, 10), bool), np.ones((2, 10), bool)), "same shape"),
        (lambda: bootstrap_accuracy_ci(np.array([0, 1, 2])), "0/1"),
        (lambda: bootstrap_accuracy_ci(np.array([0.0, 0.5, 1.0])), "0/1"),
        (lambda: bootstrap_accuracy_ci(np.array([0.0, np.nan])), "0/1"),
        (lambda: bootstrap_accuracy_ci(np.array(["a", "b"])), "dtype"),
        (lambda: paired_bootstrap_delta(np.array([0, 1]), np.array([-1, 1])), "correct_b"),
        (lambda: mcnemar_exact(np.array([0.2, 1.0]), np.array([0, 1])), "correct_a"),
        (lambda: bootstrap_accuracy_ci(np.ones((3, 0), bool)), "empty"),
        (lambda: bootstrap_accuracy_ci(np.bool_(True)), "scalar"),
        (lambda: bootstrap_accuracy_ci(np.ones(5, bool), confidence=0.0), "confidence"),
        (lambda: bootstrap_accuracy_ci(np.ones(5, bool), confidence=1.0), "confidence"),
        (lambda: paired_bootstrap_delta(np.ones(5, bool), np.ones(5, bool), confidence=1.5), "confidence"),
        (lambda: paired_bootstrap_delta(np.ones(5, bool), np.ones(5, bool), confidence=-0.1), "confidence"),
        (lambda: bootstrap_accuracy_ci(np.ones(5, bool), resamples=0), "resamples"),
        (lambda: paired_bootstrap_delta(np.ones(5, bool), np.ones(5, bool), resamples=-3), "resamples"),
        (lambda: bootstrap_accuracy_ci(np.ones(5, bool), resamples=10.0), "resamples"),
        (lambda: paired_bootstrap_delta(np.ones(5, bool), np.ones(5, bool), reduce="mean"), "layer axis"),
        (lambda: paired_bootstrap_delta(np.ones((2, 5), bool), np.ones((2, 5), bool), reduce="max"), "reduce"),
        (lambda: seed_spread([]), "no seeds"),
        (lambda: seed_spread(0.5), "scalar"),
        (lambda: seed_spread([0.5, np.nan]), "NaN"),
        (lambda: seed_spread(["0.5", "0.6"]), "numbers"),
    ],
)
def test_bad_input_raises_value_error_naming_the_problem(call, message: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=message):
        call()


def test_resampled_accuracies_are_the_draws_behind_the_interval():
    rng = np.random.default_rng(5)
    correct = rng.random((3, 50)) < 0.7
    replicates = uncertainty.resampled_accuracies(correct, resamples=300, seed=9)
    assert replicates.shape == (3, 300)
    low, high = uncertainty.bootstrap_accuracy_ci(correct, resamples=300, seed=9)
    for p in range(3):
        assert uncertainty.percentile_interval(replicates[p]) == pytest.approx((low[p], high[p]))
    # A constant probe resamples to itself.
    assert (uncertainty.resampled_accuracies(np.ones((1, 20), bool), resamples=10) == 1.0).all()


def test_resampled_accuracies_and_interval_reject_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        uncertainty.resampled_accuracies(np.ones(5, bool))
    with pytest.raises(ValueError, match="NaN"):
        uncertainty.percentile_interval([0.1, np.nan])


# --- hierarchical bootstrap: seeds, probe refits, test sentences ---------------------------------------------

def _simulated_run(rng: np.random.Generator, *, sentences: int, seeds: int, refits: int, delta: float = 0.05,
                   sd_seed: float = 0.02, sd_refit: float = 0.015, flip: float = 0.05):
    """One simulated run with a known true Delta and variance at the seed, refit and sentence levels.

    Sentence ``j`` has a difficulty ``u_j ~ U(0, 1)`` shared by every fit of both encoders, a pre-trained
    success probability ``base_j`` and a fine-tuning gain ``gain_j`` (mean ``delta``). A fit (the full fit
    or a refit) adds its own offset ``N(0, sd_refit)`` and small per-sentence noise; a fine-tuning seed
    adds ``N(0, sd_seed)``. A fit is right on ``j`` when ``u_j + flip * eps < p_j + offsets``, so its
    expected accuracy is the mean ``p`` and the true Delta is exactly ``delta`` (no clipping: p in
    [0.2, 0.9]).

    Returns:
        ``(a (N,), refits_a (R, N), b (S, N), refits_b (S, R, N))``.
    """
    difficulty = rng.random(sentences)
    base = rng.uniform(0.35, 0.65, sentences)
    gain = rng.uniform(delta - 0.15, delta + 0.15, sentences)

    def fits(probability: np.ndarray, count: int) -> np.ndarray:
        offset = rng.normal(0.0, sd_refit, (count, 1))
        return difficulty + flip * rng.standard_normal((count, sentences)) < probability + offset

    a = fits(base, refits + 1)
    seed_effect = rng.normal(0.0, sd_seed, seeds)
    b = np.stack([fits(base + gain + seed_effect[s], refits + 1) for s in range(seeds)])
    return a[0], a[1:], b[:, 0], b[:, 1:]


def _coverage(runs: int, *, seeds: int, refits: int = 8, sentences: int = 300, resamples: int = 300,
              delta: float = 0.05) -> tuple[float, float]:
    """Share of simulated runs whose 95% interval covers the true Delta: hierarchical, sentence-only."""
    rng = np.random.default_rng(2026)
    covered = np.zeros((runs, 2), dtype=bool)
    for run in range(runs):
        a, refits_a, b, refits_b = _simulated_run(rng, sentences=sentences, seeds=seeds, refits=refits, delta=delta)
        full = uncertainty.hierarchical_bootstrap_delta(a, b, refits_a=refits_a, refits_b=refits_b,
                                                        resamples=resamples, seed=run)
        # Today's POOLED_SEED interval: seeds averaged inside each sentence resample, nothing else drawn.
        sentences_only = paired_bootstrap_delta(np.broadcast_to(a, b.shape), b, reduce="mean",
                                                resamples=resamples, seed=run)
        covered[run] = [full.low <= delta <= full.high, sentences_only.low <= delta <= sentences_only.high]
    return float(covered[:, 0].mean()), float(covered[:, 1].mean())


def test_hierarchical_bootstrap_covers_a_known_delta_fast():
    """120 simulated runs, 3 seeds x 8 refits: all levels ~95% (binomial SE 0.02), sentences only under-cover."""
    hierarchical, sentences_only = _coverage(120, seeds=3)
    assert 0.88 <= hierarchical <= 1.0
    assert sentences_only <= 0.82
    assert hierarchical - sentences_only >= 0.12


@pytest.mark.slow
def test_hierarchical_bootstrap_covers_a_known_delta():
    """600 simulated runs with 8 seeds: coverage 0.95 within 3 binomial SEs (0.027); sentences only ~0.75."""
    hierarchical, sentences_only = _coverage(600, seeds=8)
    assert 0.923 <= hierarchical <= 0.977
    assert sentences_only <= 0.85


def test_hierarchical_bootstrap_reduces_to_the_paired_bootstrap():
    """One seed, no refits: the paired sentence bootstrap's numbers, bit for bit (layer groups too)."""
    rng = np.random.default_rng(5)
    a, b = _paired_sample(rng, (4, 6, 250), 0.6, 0.1, 0.15)
    for reduce in (None, "mean"):
        paired = paired_bootstrap_delta(a, b, reduce=reduce, resamples=500, seed=11)
        hierarchical = uncertainty.hierarchical_bootstrap_delta(a, b[None], reduce=reduce, resamples=500, seed=11)
        for name in ("delta", "low", "high", "p_value"):
            assert np.array_equal(getattr(paired, name), getattr(hierarchical, name)), (reduce, name)


def test_hierarchical_bootstrap_seeds_keep_the_point_estimate_and_widen():
    """Several seeds: Delta is the seeds' mean; seed spread widens the interval beyond the sentence-only one."""
    rng = np.random.default_rng(8)
    a = rng.random(400) < 0.6
    b = np.stack([rng.random(400) < p for p in (0.55, 0.7, 0.85)])  # a large seed spread
    result = uncertainty.hierarchical_bootstrap_delta(a, b, resamples=800, seed=0)
    assert result.delta == pytest.approx(float(b.mean() - a.mean()))
    sentences_only = paired_bootstrap_delta(np.broadcast_to(a, b.shape), b, reduce="mean", resamples=800, seed=0)
    assert result.delta == pytest.approx(sentences_only.delta)
    assert result.high - result.low > 1.5 * (sentences_only.high - sentences_only.low)


def test_hierarchical_bootstrap_refits_are_centred_on_the_full_fit():
    """Refits that are all 5 points worse than the full fit shift nothing; identical refits add no width."""
    rng = np.random.default_rng(3)
    a = rng.random(500) < 0.6
    b = (rng.random(500) < 0.7)[None]
    worse = np.tile(a, (4, 1))
    worse[:, np.flatnonzero(a)[:25]] = False  # each refit of a: 25 sentences (5 points) worse, the same ones
    plain = uncertainty.hierarchical_bootstrap_delta(a, b, resamples=500, seed=2)
    centred = uncertainty.hierarchical_bootstrap_delta(a, b, refits_a=worse, resamples=500, seed=2)
    assert centred.delta == plain.delta
    # Same spread of the refits (none between them): only the sentences' contribution, of a slightly
    # different fit, remains; the interval is not shifted by the 5 points.
    assert abs((centred.low + centred.high) / 2 - (plain.low + plain.high) / 2) < 0.01


def test_hierarchical_bootstrap_rejects_mismatched_shapes():
    a = np.ones((3, 20), dtype=bool)
    with pytest.raises(ValueError, match=r"= \(S, 3, 20\)"):
        uncertainty.hierarchical_bootstrap_delta(a, a)
    with pytest.raises(ValueError, match="refits_a must have shape"):
        uncertainty.hierarchical_bootstrap_delta(a, a[None], refits_a=a)
    with pytest.raises(ValueError, match="refits_b must have shape"):
        uncertainty.hierarchical_bootstrap_delta(a, a[None], refits_b=np.ones((2, 1, 3, 20), dtype=bool))


def test_bh_q_values_match_the_step_up_rule():
    """q_(i) = min_{k >= i} p_(k) m / k, NaN left out of the family."""
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.5, 0.001])
    q = uncertainty.bh_q_values(p)
    made = p[~np.isnan(p)]
    order = np.argsort(made)
    m = made.size
    expected_sorted = np.minimum.accumulate((made[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    expected = np.empty(m)
    expected[order] = np.minimum(expected_sorted, 1.0)
    assert np.isnan(q[3])
    np.testing.assert_allclose(q[~np.isnan(p)], expected)
    assert (q[~np.isnan(p)] >= made).all()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        uncertainty.bh_q_values([0.2, 1.5])
