"""Linear CKA between two sets of sentence features, per layer and pooling.

Computes linear centred kernel alignment (CKA; Kornblith et al. 2019, "Similarity of Neural Network
Representations Revisited", ICML, eq. 5 / "linear CKA") between, e.g., the features of a pre-trained
encoder and of its fine-tuned copy on the same N sentences (rows aligned). With column-centred
``X`` (N, D1) and ``Y`` (N, D2)::

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F * ||Y^T Y||_F)

which equals the normalised HSIC ``tr(K H L H) / sqrt(tr(K H K H) tr(L H L H))`` with
``K = X X^T``, ``L = Y Y^T`` and the centring matrix ``H = I - 11^T / N``. It lies in [0, 1], is
1 for ``X == Y``, and is invariant to orthogonal transforms and isotropic scaling of either side and
to constant offsets (centring), but not to general invertible linear maps.

Two algebraically equal forms are used, whichever needs fewer multiply-adds:

- feature form: the (D2, D1) cross-covariance ``Y^T X`` and the (D, D) Gram matrices, cost
  ``~ N (D1^2 + D1 D2 + D2^2)``; the usual choice when D < N;
- sample form: the (N, N) Gram matrices ``K = X X^T``, ``L = Y Y^T``, with
  ``||Y^T X||_F^2 = <K, L>_F`` and ``||X^T X||_F = ||K||_F``, cost ``~ N^2 (D1 + D2)``; cheaper
  when there are fewer sentences than feature dimensions.

Everything (centring included) is computed in float64, whatever the input dtype, because the
numerator is a sum of squares of sums and float32 loses digits there. Results are not clipped: a
value may sit ~1e-15 outside [0, 1] from rounding.

Features whose centred values are all (numerically) zero, i.e. every sentence has the same feature
vector, make CKA 0 / 0; we raise ``ValueError`` naming the side and the layer rather than returning
NaN, so a degenerate layer is never written to the results table silently.

This module imports only :mod:`probeft.core.devices` from :mod:`probeft`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch

from probeft.core.devices import resolve_device

__all__ = ["CKA_FORMS", "METRIC", "cka_table", "is_constant", "linear_cka", "linear_cka_layers"]

METRIC = "cka"
CKA_FORMS: tuple[str, ...] = ("auto", "feature", "sample")
CkaForm = Literal["auto", "feature", "sample"]

# A side counts as constant when its centred Frobenius norm is this small relative to its raw norm:
# far below float32 resolution (~1e-7), so real variation in float32 features is never rejected,
# yet well above the float64 rounding (~1e-16) that centring a constant column leaves behind.
_CONSTANT_RELATIVE_NORM = 1e-10

ArrayLike = np.ndarray | torch.Tensor


def _as_tensor(values: ArrayLike, name: str) -> torch.Tensor:
    """A real-valued torch view of ``values`` (no copy, no device move yet); rejects other dtypes."""
    if isinstance(values, torch.Tensor):
        tensor = values.detach()
    elif isinstance(values, np.ndarray):
        if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
            raise ValueError(f"{name} must hold real numbers, got dtype {values.dtype} with shape {values.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(values))
    else:
        raise ValueError(f"{name} must be a numpy array or torch tensor, got {type(values).__name__}")
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(f"{name} must hold real numbers, got dtype {tensor.dtype} with shape {tuple(tensor.shape)}")
    return tensor


def _choose_form(form: str, n: int, d1: int, d2: int) -> str:
    """Resolve ``"auto"`` to the form with fewer multiply-adds (see the module docstring)."""
    if form not in CKA_FORMS:
        raise ValueError(f"form must be one of {CKA_FORMS}, got {form!r}")
    if form != "auto":
        return form
    feature_cost = n * (d1 * d1 + d1 * d2 + d2 * d2)
    sample_cost = n * n * (d1 + d2)
    return "feature" if feature_cost <= sample_cost else "sample"


def _centred_is_zero(features: torch.Tensor, centred: torch.Tensor) -> bool:
    """Whether the centred (N, D) ``centred`` is zero relative to ``features`` (rounding left aside)."""
    raw_norm = float(torch.linalg.matrix_norm(features))
    centred_norm = float(torch.linalg.matrix_norm(centred))
    return centred_norm <= _CONSTANT_RELATIVE_NORM * raw_norm or centred_norm == 0.0


def is_constant(features: ArrayLike) -> bool:
    """Whether every row of ``features`` (N, D) is numerically the same vector, so CKA with it is 0/0.

    The same test :func:`linear_cka` raises on, so a caller can skip such a layer (e.g. the CLS
    embedding at layer 0 of a BERT, the same vector for every sentence) instead of catching errors.
    """
    tensor = _as_tensor(features, "features").to(torch.float64)
    return _centred_is_zero(tensor, tensor - tensor.mean(dim=0, keepdim=True))


def _centred(features: torch.Tensor, name: str) -> torch.Tensor:
    """Column-centred float64 copy of ``features`` (N, D); raises if it is constant or not finite.

    Args:
        features: (N, D) float64 tensor.
        name: what the error calls it (e.g. ``"features_a[layer 3]"``).

    Returns:
        (N, D) float64 tensor with zero column means.
    """
    if not bool(torch.isfinite(features).all()):
        raise ValueError(f"{name} with shape {tuple(features.shape)} contains NaN or infinite values")
    centred = features - features.mean(dim=0, keepdim=True)
    if _centred_is_zero(features, centred):
        raise ValueError(
            f"{name} with shape {tuple(features.shape)} is constant over the {features.shape[0]} rows "
            "(every row is the same vector), so its centred Gram matrix is zero and CKA is 0/0"
        )
    return centred


def _cka_centred(x: torch.Tensor, y: torch.Tensor, form: str) -> float:
    """Linear CKA of already centred float64 (N, D1) and (N, D2) tensors in the given form."""
    if form == "feature":
        cross = y.T @ x  # (D2, D1)
        numerator = torch.sum(cross * cross)
        norm_x = torch.linalg.matrix_norm(x.T @ x)  # ||X^T X||_F, (D1, D1)
        norm_y = torch.linalg.matrix_norm(y.T @ y)
    else:
        gram_x = x @ x.T  # (N, N), already double-centred because x is centred
        gram_y = y @ y.T
        numerator = torch.sum(gram_x * gram_y)  # tr(K L) = <K, L>_F for symmetric K, L
        norm_x = torch.linalg.matrix_norm(gram_x)
        norm_y = torch.linalg.matrix_norm(gram_y)
    return float(numerator / (norm_x * norm_y))


def _check_pair_2d(x: torch.Tensor, y: torch.Tensor, names: tuple[str, str]) -> None:
    """Both (N, D) with the same N >= 2 and D >= 1."""
    for tensor, name in zip((x, y), names):
        if tensor.ndim != 2:
            raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(tensor.shape)}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of rows N (aligned sentences), "
            f"got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] < 2:
        raise ValueError(f"CKA needs N >= 2 rows to centre, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[1] < 1 or y.shape[1] < 1:
        raise ValueError(
            f"{names[0]} and {names[1]} need D >= 1 columns, got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )


def linear_cka(x: ArrayLike, y: ArrayLike, *, form: CkaForm = "auto") -> float:
    """Linear CKA between two feature matrices of the same N examples (rows aligned).

    Args:
        x: (N, D1) features, numpy array or torch tensor of any real dtype.
        y: (N, D2) features of the same N examples in the same order.
        form: ``"feature"`` (D x D Gram matrices), ``"sample"`` (N x N) or ``"auto"`` (the cheaper).

    Returns:
        CKA in [0, 1] (up to ~1e-15 of rounding), computed in float64 on the CPU.

    Raises:
        ValueError: not 2-D, different N, N < 2, non-real dtype, NaN/inf, or a constant side
            (zero centred norm: CKA would be 0/0).
    """
    x_tensor, y_tensor = _as_tensor(x, "x"), _as_tensor(y, "y")
    _check_pair_2d(x_tensor, y_tensor, ("x", "y"))
    n, d1, d2 = x_tensor.shape[0], x_tensor.shape[1], y_tensor.shape[1]
    chosen = _choose_form(form, n, d1, d2)
    x_centred = _centred(x_tensor.to(torch.float64), "x")
    y_centred = _centred(y_tensor.to(torch.float64), "y")
    return _cka_centred(x_centred, y_centred, chosen)


def linear_cka_layers(
    features_a: ArrayLike,
    features_b: ArrayLike,
    *,
    device: str | torch.device = "cpu",
    form: CkaForm = "auto",
) -> np.ndarray:
    """Linear CKA per layer between two stacks of layer features of the same N examples.

    One layer at a time is moved to ``device`` and cast to float64 (so a whole (L, N, D) stack is
    never on the GPU at once); each layer is one set of matrix products, so the only Python loop is
    over the L layers.

    Args:
        features_a: (L, N, D1) features, e.g. the pre-trained encoder's (layer 0 = embeddings);
            numpy array or torch tensor of any real dtype, on any device.
        features_b: (L, N, D2) features of the same examples, e.g. the fine-tuned encoder's.
        device: where to compute: ``"cpu"`` (default), ``"cuda"``, ``"auto"``, ... (see
            :func:`probeft.core.devices.resolve_device`). Accumulation is float64 on every device.
        form: ``"feature"``, ``"sample"`` or ``"auto"`` (see :func:`linear_cka`).

    Returns:
        (L,) float64 array of CKA values, entry l comparing layer l of both stacks.

    Raises:
        ValueError: not 3-D, different L or N, N < 2, L == 0, non-real dtype, NaN/inf, or a
            constant layer (the message names the stack and the layer).
    """
    stack_a, stack_b = _as_tensor(features_a, "features_a"), _as_tensor(features_b, "features_b")
    for tensor, name in ((stack_a, "features_a"), (stack_b, "features_b")):
        if tensor.ndim != 3:
            raise ValueError(f"{name} must be 3-D (L, N, D), got shape {tuple(tensor.shape)}")
    if stack_a.shape[0] != stack_b.shape[0] or stack_a.shape[0] == 0:
        raise ValueError(
            f"features_a and features_b must have the same number L >= 1 of layers, "
            f"got shapes {tuple(stack_a.shape)} and {tuple(stack_b.shape)}"
        )
    _check_pair_2d(stack_a[0], stack_b[0], ("features_a[layer 0]", "features_b[layer 0]"))
    target = resolve_device(device)
    n, d1, d2 = stack_a.shape[1], stack_a.shape[2], stack_b.shape[2]
    chosen = _choose_form(form, n, d1, d2)
    values = np.empty(stack_a.shape[0], dtype=np.float64)
    for layer in range(stack_a.shape[0]):
        layer_a = _centred(stack_a[layer].to(target, torch.float64), f"features_a[layer {layer}]")
        layer_b = _centred(stack_b[layer].to(target, torch.float64), f"features_b[layer {layer}]")
        values[layer] = _cka_centred(layer_a, layer_b, chosen)
    return values


_ROW_KEYS = ("pooling", "layer", "metric", "value")


def cka_table(
    features_a: Mapping[str, ArrayLike],
    features_b: Mapping[str, ArrayLike],
    *,
    device: str | torch.device = "cpu",
    **row_constants: Any,
) -> list[dict[str, Any]]:
    """Long-format result rows of linear CKA per pooling and layer.

    Args:
        features_a: pooling name (``"cls"``, ``"mean"``) -> (L, N, D) features, as returned by
            :func:`probeft.probing.extract.extract_features` for e.g. the pre-trained encoder.
        features_b: the same poolings -> (L, N, D) features of the same sentences, e.g. the
            fine-tuned encoder's.
        device: where to compute (see :func:`linear_cka_layers`).
        **row_constants: columns copied into every row (``model``, ``finetune_task``, ``seed``,
            ``probe_task``, ``split``, ``stage``, ...); must not be ``pooling``, ``layer``,
            ``metric`` or ``value``.

    Returns:
        One dict per (pooling, layer), poolings in ``features_a``'s order and layers 0..L-1:
        ``{**row_constants, "pooling": str, "layer": int, "metric": "cka", "value": float}``.

    Raises:
        ValueError: no poolings, the two mappings hold different poolings, a pooling's arrays
            differ in shape (the message names the pooling and both shapes), a reserved key in
            ``row_constants``, or any error of :func:`linear_cka_layers`.
    """
    reserved = sorted(set(row_constants) & set(_ROW_KEYS))
    if reserved:
        raise ValueError(f"row_constants must not set {reserved}: cka_table fills {list(_ROW_KEYS)}")
    if not features_a:
        raise ValueError("features_a holds no poolings")
    if set(features_a) != set(features_b):
        raise ValueError(
            f"features_a and features_b must hold the same poolings, got {sorted(features_a)} and {sorted(features_b)}"
        )
    for pooling in features_a:
        shape_a, shape_b = tuple(features_a[pooling].shape), tuple(features_b[pooling].shape)
        if shape_a != shape_b:
            raise ValueError(
                f"pooling {pooling!r}: features_a has shape {shape_a} but features_b has shape {shape_b}; "
                "both must be (L, N, D) for the same layers and sentences"
            )
    rows: list[dict[str, Any]] = []
    for pooling in features_a:
        try:
            values = linear_cka_layers(features_a[pooling], features_b[pooling], device=device)
        except ValueError as error:
            raise ValueError(f"pooling {pooling!r}: {error}") from error
        rows += [
            {**row_constants, "pooling": pooling, "layer": layer, "metric": METRIC, "value": float(value)}
            for layer, value in enumerate(values)
        ]
    return rows
