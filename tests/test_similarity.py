"""Linear CKA: agreement with a direct HSIC implementation, invariances, layer batching, the table, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probeft.verdicts.similarity import cka_table, linear_cka, linear_cka_layers


def _reference_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Direct HSIC form with the explicit centring matrix (Kornblith et al. 2019, eq. 3-4)."""
    n = x.shape[0]
    centring = np.eye(n) - np.ones((n, n)) / n
    gram_x, gram_y = x @ x.T, y @ y.T
    hsic_xy = np.trace(gram_x @ centring @ gram_y @ centring)
    hsic_xx = np.trace(gram_x @ centring @ gram_x @ centring)
    hsic_yy = np.trace(gram_y @ centring @ gram_y @ centring)
    return float(hsic_xy / np.sqrt(hsic_xx * hsic_yy))


def _random_orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))  # sign fix: a proper Haar sample, still orthogonal


def _correlated_pair(rng: np.random.Generator, n: int, d1: int, d2: int) -> tuple[np.ndarray, np.ndarray]:
    """x and a noisy linear image y of it, with offsets, so CKA is well inside (0, 1)."""
    x = rng.standard_normal((n, d1)) + rng.standard_normal(d1)
    y = x @ rng.standard_normal((d1, d2)) + 2.0 * rng.standard_normal((n, d2)) + 5.0
    return x, y


@pytest.mark.parametrize("form", ["feature", "sample", "auto"])
@pytest.mark.parametrize(("n", "d1", "d2"), [(40, 5, 7), (12, 30, 20), (25, 25, 3)])
def test_matches_direct_hsic_reference(form: str, n: int, d1: int, d2: int) -> None:
    rng = np.random.default_rng(n * 1000 + d1 * 10 + d2)
    x, y = _correlated_pair(rng, n, d1, d2)
    expected = _reference_cka(x, y)
    assert 0.05 < expected < 0.99  # a non-trivial case, not a saturated one
    assert linear_cka(x, y, form=form) == pytest.approx(expected, abs=1e-10)
    # Independent random features: still matches (small but nonzero CKA).
    z = rng.standard_normal((n, d2))
    assert linear_cka(x, z, form=form) == pytest.approx(_reference_cka(x, z), abs=1e-10)


def test_float32_and_torch_inputs_are_computed_in_float64() -> None:
    rng = np.random.default_rng(1)
    x, y = _correlated_pair(rng, 50, 8, 6)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    expected = _reference_cka(x32.astype(np.float64), y32.astype(np.float64))
    assert linear_cka(x32, y32) == pytest.approx(expected, abs=1e-10)
    assert linear_cka(torch.from_numpy(x32), torch.from_numpy(y32)) == pytest.approx(expected, abs=1e-10)


def test_known_values() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 6))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    # Identical after centring: y is a rotated, scaled, shifted copy of x (possibly wider).
    q = _random_orthogonal(rng, 6)
    assert linear_cka(x, np.hstack([x @ q, np.zeros((30, 2))]) * 0.01 - 4.0) == pytest.approx(1.0, abs=1e-12)
    # One-dimensional features: CKA is the squared Pearson correlation.
    a, b = rng.standard_normal((30, 1)), rng.standard_normal((30, 1))
    r = np.corrcoef(a[:, 0], b[:, 0])[0, 1]
    assert linear_cka(a, b) == pytest.approx(r**2, abs=1e-12)
    # Orthogonal centred columns give 0: x = [1, -1, 0, 0], y = [0, 0, 1, -1].
    assert linear_cka(np.array([[1.0], [-1.0], [0.0], [0.0]]), np.array([[0.0], [0.0], [1.0], [-1.0]])) == pytest.approx(
        0.0, abs=1e-15
    )


@pytest.mark.parametrize("form", ["feature", "sample"])
def test_invariances(form: str) -> None:
    rng = np.random.default_rng(3)
    x, y = _correlated_pair(rng, 60, 10, 8)
    base = linear_cka(x, y, form=form)
    q = _random_orthogonal(rng, 10)
    assert linear_cka(x @ q, y, form=form) == pytest.approx(base, abs=1e-12)
    assert linear_cka(x, y @ _random_orthogonal(rng, 8), form=form) == pytest.approx(base, abs=1e-12)
    assert linear_cka(x * 3.7, y, form=form) == pytest.approx(base, abs=1e-12)
    assert linear_cka(x, y / 250.0, form=form) == pytest.approx(base, abs=1e-12)
    assert linear_cka(x + 123.0, y - rng.standard_normal(8) * 50, form=form) == pytest.approx(base, abs=1e-10)
    assert linear_cka(y, x, form=form) == pytest.approx(base, abs=1e-12)  # symmetric
    # Permuting the rows of both together changes nothing; permuting one side breaks alignment.
    perm = rng.permutation(60)
    assert linear_cka(x[perm], y[perm], form=form) == pytest.approx(base, abs=1e-12)
    assert abs(linear_cka(x[perm], y, form=form) - base) > 0.1


def test_not_invariant_to_general_invertible_linear_map() -> None:
    rng = np.random.default_rng(4)
    x, y = _correlated_pair(rng, 80, 6, 6)
    # Anisotropic, non-orthogonal and invertible: scale axes by 1..30 then shear by a random matrix.
    anisotropic = np.diag(np.geomspace(1.0, 30.0, 6)) @ (np.eye(6) + 0.8 * rng.standard_normal((6, 6)))
    assert abs(np.linalg.det(anisotropic)) > 1e-3
    assert np.linalg.norm(anisotropic @ anisotropic.T - np.eye(6)) > 1.0
    changed = linear_cka(x @ anisotropic, y)
    assert changed == pytest.approx(_reference_cka(x @ anisotropic, y), abs=1e-10)
    assert abs(changed - linear_cka(x, y)) > 0.05
    # And CKA(x, xA) < 1 although xA carries the same information as x.
    assert linear_cka(x, x @ anisotropic) < 0.99


def test_values_lie_in_unit_interval() -> None:
    rng = np.random.default_rng(5)
    values = []
    for trial in range(30):
        n, d1, d2 = rng.integers(2, 20), rng.integers(1, 15), rng.integers(1, 15)
        x = rng.standard_normal((n, d1)) * rng.uniform(0.01, 100)
        y = rng.standard_normal((n, d2)) + (x[:, :1] if trial % 2 else 0.0)
        values.append(linear_cka(x, y))
    assert np.all(np.asarray(values) >= 0.0) and np.all(np.asarray(values) <= 1.0 + 1e-12)


def test_layers_equal_per_layer_loop_and_reference() -> None:
    rng = np.random.default_rng(6)
    stack_a = rng.standard_normal((4, 30, 9)).astype(np.float32)
    stack_b = (stack_a + rng.standard_normal((4, 1, 1)) * rng.standard_normal((4, 30, 9))).astype(np.float32)
    values = linear_cka_layers(stack_a, stack_b)
    assert values.shape == (4,) and values.dtype == np.float64
    loop = [linear_cka(stack_a[layer], stack_b[layer]) for layer in range(4)]
    np.testing.assert_allclose(values, loop, rtol=0, atol=1e-12)
    reference = [_reference_cka(stack_a[layer].astype(np.float64), stack_b[layer].astype(np.float64)) for layer in range(4)]
    np.testing.assert_allclose(values, reference, rtol=0, atol=1e-10)
    assert np.ptp(values) > 0.05  # layers genuinely differ, so an off-by-one layer would show
    # Torch inputs and both forms give the same.
    np.testing.assert_allclose(linear_cka_layers(torch.from_numpy(stack_a), torch.from_numpy(stack_b)), values, atol=1e-12)
    np.testing.assert_allclose(linear_cka_layers(stack_a, stack_b, form="sample"), values, atol=1e-10)
    # Different widths per side are allowed (only L and N must match).
    assert linear_cka_layers(stack_a, stack_b[:, :, :4]).shape == (4,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_layers_on_cuda_match_cpu() -> None:
    rng = np.random.default_rng(7)
    stack_a = rng.standard_normal((3, 200, 64)).astype(np.float32)
    stack_b = stack_a + rng.standard_normal((3, 200, 64)).astype(np.float32)
    np.testing.assert_allclose(linear_cka_layers(stack_a, stack_b, device="cuda"), linear_cka_layers(stack_a, stack_b), atol=1e-10)


def test_cka_table_rows() -> None:
    rng = np.random.default_rng(8)
    pre = {"cls": rng.standard_normal((3, 20, 5)), "mean": rng.standard_normal((3, 20, 5))}
    fine = {pooling: array + 0.5 * rng.standard_normal(array.shape) for pooling, array in pre.items()}
    rows = cka_table(pre, fine, model="bert-base-uncased", finetune_task="sst2", probe_task="bigram_shift", split="test")
    assert [(row["pooling"], row["layer"]) for row in rows] == [("cls", 0), ("cls", 1), ("cls", 2), ("mean", 0), ("mean", 1), ("mean", 2)]
    for row in rows:
        assert row["metric"] == "cka" and row["model"] == "bert-base-uncased" and row["split"] == "test"
        assert row["finetune_task"] == "sst2" and row["probe_task"] == "bigram_shift"
        assert isinstance(row["value"], float) and isinstance(row["layer"], int)
        expected = _reference_cka(pre[row["pooling"]][row["layer"]], fine[row["pooling"]][row["layer"]])
        assert row["value"] == pytest.approx(expected, abs=1e-10)
    # Keys in another order in features_b: rows follow features_a and pair poolings by name.
    assert cka_table(pre, {"mean": fine["mean"], "cls": fine["cls"]}) == [
        {key: value for key, value in row.items() if key in ("pooling", "layer", "metric", "value")} for row in rows
    ]


def test_cka_table_rejects_mismatches() -> None:
    rng = np.random.default_rng(9)
    pre = {"cls": rng.standard_normal((3, 20, 5)), "mean": rng.standard_normal((3, 20, 5))}
    with pytest.raises(ValueError, match=r"same poolings.*\['cls', 'mean'\].*\['cls'\]"):
        cka_table(pre, {"cls": pre["cls"]})
    with pytest.raises(ValueError, match=r"pooling 'mean'.*\(3, 20, 5\).*\(3, 19, 5\)"):
        cka_table(pre, {"cls": pre["cls"], "mean": pre["mean"][:, :19]})
    with pytest.raises(ValueError, match=r"pooling 'cls'.*\(3, 20, 5\).*\(2, 20, 5\)"):
        cka_table(pre, {"cls": pre["cls"][:2], "mean": pre["mean"]})
    with pytest.raises(ValueError, match=r"row_constants must not set \['metric'\]"):
        cka_table(pre, pre, metric="other")
    with pytest.raises(ValueError, match="no poolings"):
        cka_table({}, {})
    constant = {"cls": pre["cls"].copy(), "mean": pre["mean"]}
    constant["cls"][1] = 0.25
    with pytest.raises(ValueError, match=r"pooling 'cls'.*features_b\[layer 1\].*constant"):
        cka_table(pre, constant)


def test_bad_inputs_raise() -> None:
    rng = np.random.default_rng(10)
    x = rng.standard_normal((10, 4))
    with pytest.raises(ValueError, match=r"same number of rows.*\(10, 4\).*\(9, 4\)"):
        linear_cka(x, x[:9])
    with pytest.raises(ValueError, match=r"x must be 2-D.*\(10,\)"):
        linear_cka(x[:, 0], x)
    with pytest.raises(ValueError, match=r"N >= 2.*\(1, 4\)"):
        linear_cka(x[:1], x[:1])
    with pytest.raises(ValueError, match=r"y with shape \(10, 3\) is constant"):
        linear_cka(x, np.full((10, 3), 0.1))  # 0.1 is not exact in binary: centring leaves ~1e-17
    with pytest.raises(ValueError, match=r"x with shape \(10, 4\) is constant"):
        linear_cka(np.zeros((10, 4)), x)
    with pytest.raises(ValueError, match=r"x with shape \(10, 4\) is constant"):
        linear_cka(np.tile(rng.standard_normal(4) * 1e3, (10, 1)), x)  # same row everywhere
    with pytest.raises(ValueError, match="NaN or infinite"):
        linear_cka(np.where(x > 1.5, np.nan, x), x)
    with pytest.raises(ValueError, match="real numbers"):
        linear_cka(x.astype(np.complex128), x)
    with pytest.raises(ValueError, match="form must be one of"):
        linear_cka(x, x, form="kernel")  # type: ignore[arg-type]
    stack = rng.standard_normal((3, 10, 4))
    with pytest.raises(ValueError, match=r"features_a must be 3-D.*\(10, 4\)"):
        linear_cka_layers(x, stack)
    with pytest.raises(ValueError, match=r"same number L >= 1 of layers.*\(3, 10, 4\).*\(2, 10, 4\)"):
        linear_cka_layers(stack, stack[:2])
    with pytest.raises(ValueError, match=r"same number of rows.*\(10, 4\).*\(8, 4\)"):
        linear_cka_layers(stack, stack[:, :8])
    with pytest.raises(ValueError, match="device"):
        linear_cka_layers(stack, stack, device="not-a-device")


def test_tiny_variation_on_large_offset_is_not_called_constant() -> None:
    """float32-sized variation (1e-6 relative) must still be measured, not rejected."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((20, 3))
    assert linear_cka(1e4 + 1e-2 * x, x) == pytest.approx(1.0, abs=1e-9)
