"""Tests for probeft.probing.mdl: block ends, hand-computed codelengths, signal vs noise, batching, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from probeft.probing import mdl, probe


def _signal_and_noise(seed: int, n: int, dim: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Two probes on random binary labels: probe 0 sees the label in feature 0, probe 1 sees pure noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    noise = rng.normal(size=(n, dim))
    signal = noise.copy()
    signal[:, 0] = (2 * labels - 1) * (1.0 + rng.random(n))  # |margin| >= 1: linearly separable
    return np.stack([signal, noise]).astype(np.float32), labels


def _two_class_prior_probability(frequency: float, strength: float) -> float:
    """P(class 1) of a bias-only two-class probe minimising mean CE + (strength/2)||b||^2.

    The optimum has ``b_0 = -b_1``; with ``beta = b_1 - b_0`` the gradient in ``b_1`` is
    ``sigmoid(beta) - frequency + strength * beta / 2``, increasing in ``beta``: bisect for its root.
    """
    low, high = -50.0, 50.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if 1.0 / (1.0 + math.exp(-middle)) - frequency + strength * middle / 2.0 > 0:
            high = middle
        else:
            low = middle
    return 1.0 / (1.0 + math.exp(-0.5 * (low + high)))


def test_block_ends_default_fractions() -> None:
    assert mdl.block_ends(8000).tolist() == [8, 16, 32, 64, 128, 256, 500, 1000, 2000, 4000, 8000]
    # Small N: at least one example in the first block, duplicates removed.
    assert mdl.block_ends(100).tolist() == [1, 3, 6, 12, 25, 50, 100]
    assert mdl.block_ends(2).tolist() == [1, 2]
    assert mdl.block_ends(100, (0.29, 1.0)).tolist() == [29, 100]  # 0.29 * 100 is 28.999... in floats


@pytest.mark.parametrize(
    ("n", "fractions", "message"),
    [
        (100, (0.5, 0.25, 1.0), "increase strictly"),
        (100, (0.1, 0.5), "end at 1.0"),
        (100, (0.0, 1.0), "within \\(0, 1\\]"),
        (100, (1.0,), "at least two"),
        (1, mdl.DEFAULT_FRACTIONS, "n=1 examples is too small"),
    ],
)
def test_block_ends_rejects_bad_input(n: int, fractions: tuple[float, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mdl.block_ends(n, fractions)


def test_constant_features_cost_the_prefix_label_frequencies() -> None:
    # Constant features standardise to 0, so each prefix probe is its bias alone; with a negligible
    # prior it predicts the prefix's label frequencies. Ends [2, 4, 8]:
    #   block 1 [0, 1]:       uniform code, 2 * log2(2)                     = 2 bits
    #   block 2 [0, 0]:       prefix [0, 1] gives p(0) = 1/2                = 2 bits
    #   block 3 [1, 0, 0, 1]: prefix [0, 1, 0, 0] gives p(0) = 3/4, p(1) = 1/4
    #                         2 * log2(4) + 2 * log2(4 / 3)                 = 4.830075 bits
    labels = np.array([0, 1, 0, 0, 1, 0, 0, 1])
    features = np.full((1, 8, 3), 0.5, dtype=np.float32)
    result = mdl.online_codelength(features, labels, fractions=(0.25, 0.5, 1.0), l2=1e-9)
    expected_blocks = [2.0, 2.0, 4.0 + 2.0 * math.log2(4.0 / 3.0)]
    assert result.block_ends.tolist() == [2, 4, 8]
    np.testing.assert_allclose(result.block_bits[0], expected_blocks, atol=1e-3)
    np.testing.assert_allclose(result.codelength_bits, [sum(expected_blocks)], atol=1e-3)
    assert result.uniform_bits == 8.0
    np.testing.assert_allclose(result.compression, [8.0 / sum(expected_blocks)], atol=1e-4)
    np.testing.assert_allclose(result.codelength_kbits, result.codelength_bits / 1000.0)


def test_every_prefix_uses_the_same_prior() -> None:
    # The probe on t examples minimises mean CE + (l2 * N / t / 2)||.||^2, bias included: compare
    # each block's cost with the closed-form optimum of a bias-only probe on constant features.
    n, l2 = 40, 0.05
    labels = np.tile([1, 0, 1, 1, 0], n // 5)
    features = np.zeros((1, n, 2), dtype=np.float32)
    fractions = (0.1, 0.25, 0.5, 1.0)
    result = mdl.online_codelength(features, labels, fractions=fractions, l2=l2)
    ends = result.block_ends.tolist()
    assert ends == [4, 10, 20, 40]
    expected = [4.0]
    for start, stop in zip(ends[:-1], ends[1:]):
        p_one = _two_class_prior_probability(labels[:start].mean(), l2 * n / start)
        block = labels[start:stop]
        expected.append(-(block.sum() * math.log2(p_one) + (block.size - block.sum()) * math.log2(1.0 - p_one)))
    np.testing.assert_allclose(result.block_bits[0], expected, rtol=1e-4)


def test_signal_compresses_and_noise_costs_about_the_uniform_code() -> None:
    features, labels = _signal_and_noise(seed=0, n=1000)
    result = mdl.online_codelength(features, labels)
    assert result.block_ends[0] == 1
    assert result.uniform_bits == 1000.0
    # First block: exactly the uniform code; blocks add up to the total.
    np.testing.assert_array_equal(result.block_bits[:, 0], [1.0, 1.0])
    np.testing.assert_allclose(result.block_bits.sum(axis=1), result.codelength_bits, rtol=1e-12)
    signal_compression, noise_compression = result.compression
    assert signal_compression > 5.0, result.compression  # 8.1 measured; the prior caps confidence
    assert 0.9 <= noise_compression <= 1.1, result.compression
    assert abs(result.codelength_bits[1] - result.uniform_bits) < 0.1 * result.uniform_bits
    assert result.converged.all()


def test_three_classes_use_log2_three_and_num_classes_overrides_labels() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, size=300)
    features = rng.normal(size=(1, 300, 4)).astype(np.float32)
    result = mdl.online_codelength(features, labels, fractions=(0.02, 0.1, 1.0))
    assert result.num_classes == 3
    assert result.block_ends.tolist() == [6, 30, 300]
    assert result.block_bits[0, 0] == 6 * math.log2(3)
    assert result.uniform_bits == 300 * math.log2(3)
    # Noise cannot be compressed; a probe fitted on 30 examples overfits the next 270.
    assert result.compression[0] < 1.0, result.compression

    # Labels 0/1 only, but a 4-class code: the uniform code and the first block use log2(4) = 2.
    binary = labels % 2
    wide = mdl.online_codelength(features, binary, num_classes=4, fractions=(0.02, 0.1, 1.0))
    assert wide.uniform_bits == 600.0
    assert wide.block_bits[0, 0] == 12.0


def test_batched_over_probes_equals_probe_by_probe_and_is_deterministic() -> None:
    rng = np.random.default_rng(7)
    n, dim = 400, 5
    labels = rng.integers(0, 2, size=n)
    direction = rng.normal(size=dim)
    base = rng.normal(size=(n, dim)) + 0.8 * np.outer(2 * labels - 1, direction)
    # Probes of different difficulty and scale (standardisation must be per probe).
    features = np.stack([base, 10.0 * base + 3.0, rng.normal(size=(n, dim))]).astype(np.float32)
    batched = mdl.online_codelength(features, labels, fractions=(0.02, 0.05, 0.2, 0.5, 1.0))
    for probe_index in range(features.shape[0]):
        alone = mdl.online_codelength(features[probe_index : probe_index + 1], labels,
                                      fractions=(0.02, 0.05, 0.2, 0.5, 1.0))
        np.testing.assert_allclose(alone.block_bits[0], batched.block_bits[probe_index], rtol=1e-4, atol=1e-3)
    # Probes 0 and 1 differ by an affine map, which standardisation removes.
    np.testing.assert_allclose(batched.block_bits[0], batched.block_bits[1], rtol=1e-4, atol=1e-3)
    assert batched.compression[0] > 1.5 > 1.1 > batched.compression[2]
    again = mdl.online_codelength(torch.as_tensor(features), torch.as_tensor(labels),
                                  fractions=(0.02, 0.05, 0.2, 0.5, 1.0))
    np.testing.assert_array_equal(again.block_bits, batched.block_bits)


def _valid() -> dict:
    rng = np.random.default_rng(0)
    return {"features": rng.normal(size=(2, 50, 3)).astype(np.float32), "labels": rng.integers(0, 2, size=50)}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": np.zeros((50, 3), dtype=np.float32)}, "features must have shape \\(P, N, D\\)"),
        ({"features": np.zeros((2, 50, 3), dtype=np.int64)}, "floating-point"),
        ({"features": np.full((2, 50, 3), np.nan, dtype=np.float32)}, "NaN"),
        ({"labels": np.zeros(49, dtype=np.int64)}, "49 labels but the features have N=50"),
        ({"labels": np.zeros(50)}, "integer class ids"),
        ({"labels": np.full(50, -1)}, "negative label -1"),
        ({"labels": np.full(50, 3), "num_classes": 2}, "label 3 but num_classes=2"),
        ({"labels": np.zeros(50, dtype=np.int64)}, "num_classes must be >= 2"),
        ({"features": np.zeros((2, 3, 3), dtype=np.float32), "labels": np.array([0, 1, 2]), "num_classes": 4},
         "N=3 examples is smaller than num_classes=4"),
        ({"fractions": (0.5, 0.2, 1.0)}, "fractions must increase"),
        ({"l2": 0.0}, "l2 must be a positive"),
        ({"max_iter": 0}, "max_iter >= 1"),
    ],
)
def test_validation_errors_name_the_problem(change: dict, message: str) -> None:
    arguments = {**_valid(), **change}
    features, labels = arguments.pop("features"), arguments.pop("labels")
    with pytest.raises(ValueError, match=message):
        mdl.online_codelength(features, labels, **arguments)


def test_mdl_rows_are_tidy_and_in_probe_order() -> None:
    result = mdl.MDLResult(
        codelength_bits=np.array([500.0, 2000.0]), uniform_bits=1000.0, compression=np.array([2.0, 0.5]),
        block_ends=np.array([1, 10]), block_bits=np.array([[1.0, 499.0], [1.0, 1999.0]]), num_classes=2,
        l2=1e-3, n_iter=np.ones((2, 1), dtype=np.int64), converged=np.ones((2, 1), dtype=bool),
    )
    rows = mdl.mdl_rows(result, [(0, "cls"), (3, "mean")])
    assert rows == [
        {"layer": 0, "pooling": "cls", "metric": "codelength_kbits", "value": 0.5},
        {"layer": 0, "pooling": "cls", "metric": "compression", "value": 2.0},
        {"layer": 3, "pooling": "mean", "metric": "codelength_kbits", "value": 2.0},
        {"layer": 3, "pooling": "mean", "metric": "compression", "value": 0.5},
    ]
    with pytest.raises(ValueError, match="probe_labels has 1 entries but the result has P=2"):
        mdl.mdl_rows(result, [(0, "cls")])
    with pytest.raises(ValueError, match="probe_labels\\[1\\] must be a \\(layer, pooling\\) pair"):
        mdl.mdl_rows(result, [(0, "cls"), "mean"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    features, labels = _signal_and_noise(seed=1, n=600)
    cpu = mdl.online_codelength(features, labels, device="cpu")
    cuda = mdl.online_codelength(features, labels, device="cuda")
    np.testing.assert_allclose(cuda.block_bits, cpu.block_bits, rtol=1e-3, atol=1e-2)


def test_a_near_constant_prefix_feature_does_not_blow_up_a_block():
    # Regression: standardising a 2-example prefix with its own std turned a feature whose first two
    # values nearly agree into huge inputs for the next block (one block cost > 10,000 bits).
    rng = np.random.default_rng(3)
    n = 600
    features = rng.normal(size=(1, n, 8)).astype(np.float32)
    features[0, 1, :] = features[0, 0, :] + 1e-4  # the first two examples almost equal in every feature
    labels = rng.integers(0, 2, size=n)
    result = mdl.online_codelength(features, labels, num_classes=2)
    assert result.block_bits.max() < 2.0 * (result.block_ends[-1] - result.block_ends[-2])  # <= 2 bits/example
    assert 0.85 < float(result.compression[0]) < 1.1


def test_noise_floor_of_the_fixed_prior_is_far_below_one_and_heldout_l2_lifts_it():
    """Pure noise, balanced labels, N = 600, D = 384: the fixed l2 = 0.01 code over-fits (floor ~0.6, not 1);
    L2 chosen per prefix on held-out noise stays near 1 (minus the log2(G) bits per block of the choice)."""
    labels = np.random.default_rng(0).integers(0, 2, 600)
    fixed = mdl.noise_floor(600, 384, labels)
    chosen = mdl.noise_floor(600, 384, labels, l2_grid=mdl.HELDOUT_L2_GRID)
    assert 0.45 < fixed < 0.75
    assert 0.9 < chosen <= 1.0
    assert mdl.noise_floor(600, 384, labels) == fixed  # seeded: the same floor every time


def test_heldout_l2_is_chosen_per_prefix_and_helps_on_a_noisy_teacher():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 1000, 32)).astype(np.float32)
    x[1] = rng.standard_normal((1000, 32))  # probe 1: noise
    labels = (x[0] @ rng.standard_normal(32) + 0.5 * rng.standard_normal(1000) > 0).astype(np.int64)
    split = probe.standardise_features({"train": x[:, :800], "dev": x[:, 800:]})
    heldout = (split.splits["dev"], labels[800:])
    chosen = mdl.standardised_codelength(split.train, labels[:800], split.spectrum(), l2_grid=mdl.HELDOUT_L2_GRID,
                                         heldout=heldout)
    fixed = mdl.standardised_codelength(split.train, labels[:800], split.spectrum())
    assert chosen.chosen_l2.shape == (2, chosen.block_ends.size - 1) and np.isnan(chosen.l2)
    assert chosen.chosen_l2[0, 0] >= 1.0 and chosen.chosen_l2[0, -1] <= 1e-1  # tiny prefixes: strong L2
    assert chosen.compression[0] > fixed.compression[0] and chosen.compression[1] > fixed.compression[1]
    with pytest.raises(ValueError, match="l2_grid and heldout go together"):
        mdl.standardised_codelength(split.train, labels[:800], split.spectrum(), l2_grid=mdl.HELDOUT_L2_GRID)
