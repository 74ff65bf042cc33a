"""Batched logistic-regression probes over (layer, pooling) x L2 strength.

All probes of a probing run are fitted together as one batched model. Given features stacked as
``(P, N, D)`` (``P`` probes, e.g. layers x poolings; ``N`` sentences; ``D`` hidden size) and
``G = len(l2_grid)`` regularisation strengths, the parameters are ``W`` of shape ``(P, G, D, C)``
and a bias ``b`` of shape ``(P, G, C)``: ``P * G`` independent multinomial logistic regressions.

Model and regularisation
    Features are standardised with the mean and (population, ``ddof=0``) standard deviation of
    the train split, per probe and feature; constant features keep scale 1. Each probe minimises

        loss(W, b) = mean_i CE(softmax(x_i W + b), y_i) + (l2 / 2) * ||W||_F^2

    The bias is not penalised. The gradient of the penalty is ``l2 * W``, i.e. exactly what
    SentEval's ``Adam(weight_decay=l2)`` adds to its mean cross-entropy gradient, so the
    grid values mean the same strength as in SentEval (which searches {1e-5, 1e-4, 1e-3, 1e-2}).
    In scikit-learn terms (objective ``C * sum_i CE + ||w||^2 / 2``), this is
    ``C = 1 / (l2 * N)`` for ``C > 2`` classes; for two classes scikit-learn fits one weight
    vector ``w = w_1 - w_0`` whose norm is ``2 ||W||_F^2`` at the optimum, so ``C = 2 / (l2 * N)``
    (see :func:`sklearn_c`).

Optimiser
    Deterministic full-batch, preconditioned L-BFGS started from ``W = 0, b = 0`` for all ``P * G``
    problems at once; see :mod:`probeft.probing.probe_lbfgs` for the preconditioner and the stopping rule.
    The loss is strictly convex in ``W``, so the result depends neither on the initialisation nor
    on a seed (there is none), nor on the global torch / numpy random state.

Choosing L2
    For each probe the L2 value with the best dev accuracy is chosen; ties go to the stronger
    regularisation. Train/dev/test accuracy are reported for that value.

Memory
    :func:`fit_probes` leaves its inputs alone and holds one standardised float32 copy of them. A
    caller that fits several label sets on the same features (the probing stage: task, control, MDL)
    standardises once with :func:`standardise_features` (in place with ``in_place=True``: no copy) and
    fits each label set with :func:`fit_standardised`; the fits share the standardised tensors and the
    preconditioner's eigendecomposition (:class:`~probeft.probing.probe_lbfgs.Spectrum`). Finiteness is
    checked probe by probe in chunks, so no float64 or boolean copy of the features is made.

This module knows nothing about models or tokenizers: it takes arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from probeft.core.devices import resolve_device
from probeft.probing.probe_lbfgs import BatchedLogReg, Preconditioner, Spectrum, cpu_threads, lbfgs

__all__ = [
    "L2_GRID", "ProbeResults", "StandardisedFeatures", "all_finite", "as_features", "as_labels", "check_labels",
    "fit_probes", "fit_standardised", "sklearn_c", "standardise", "standardise_features",
]

L2_GRID: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2)

_SMALL_PROBLEM = 5e7  # P * G * C * N * D below which the fit runs single-threaded on CPU
_FINITE_CHUNK = 1 << 22  # elements checked at once: a 4 MiB boolean temporary, whatever the features' size


@dataclass
class ProbeResults:
    """Accuracies of ``P`` probes at their chosen L2 strength.

    Attributes:
        l2: ``(P,)`` chosen L2 strength per probe.
        train_acc: ``(P,)`` train accuracy at the chosen strength (fraction in [0, 1]).
        dev_acc: ``(P,)`` dev accuracy at the chosen strength.
        test_acc: ``(P,)`` test accuracy at the chosen strength.
        l2_grid: ``(G,)`` the strengths that were tried, in the order given.
        grid_train_acc: ``(P, G)`` train accuracy for every strength.
        grid_dev_acc: ``(P, G)`` dev accuracy for every strength.
        grid_test_acc: ``(P, G)`` test accuracy for every strength.
        n_iter: ``(P, G)`` L-BFGS iterations used per problem.
        converged: ``(P, G)`` True where the gradient or loss-decrease test stopped the problem
            (False: stopped by ``max_iter`` or a failed line search).
        coef: ``(P, G, C, D)`` fitted weights, for standardised features.
        intercept: ``(P, G, C)`` fitted biases, for standardised features.
        test_correct: ``(P, N_test)`` bool, whether each probe's prediction (argmax of its logits
            at the chosen L2) equals the test label, per test sentence in the order given; its row
            means are ``test_acc``. The per-sentence input of :mod:`probeft.verdicts.uncertainty`.
    """

    l2: np.ndarray
    train_acc: np.ndarray
    dev_acc: np.ndarray
    test_acc: np.ndarray
    l2_grid: np.ndarray
    grid_train_acc: np.ndarray
    grid_dev_acc: np.ndarray
    grid_test_acc: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    test_correct: np.ndarray


def sklearn_c(l2: float, n_train: int, num_classes: int) -> float:
    """scikit-learn's ``C`` that gives the same optimum as this module's ``l2``.

    Args:
        l2: strength in ``mean CE + (l2 / 2) * ||W||^2``.
        n_train: number of training examples ``N``.
        num_classes: number of classes ``C``.

    Returns:
        ``C`` for ``sklearn.linear_model.LogisticRegression`` (objective
        ``C * sum CE + ||w||^2 / 2``): ``1 / (l2 * N)``, or ``2 / (l2 * N)`` for two classes,
        where scikit-learn uses a single weight vector (``w = w_1 - w_0``, ``||w||^2 = 2 ||W||^2``).
    """
    if l2 <= 0 or n_train <= 0:
        raise ValueError(f"l2 and n_train must be positive, got l2={l2}, n_train={n_train}")
    factor = 2.0 if num_classes == 2 else 1.0
    return factor / (l2 * n_train)


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether every entry of a ``(P, N, D)`` tensor is finite, checked in row chunks of each probe.

    No copy of the tensor: the temporary is a boolean block of at most ``2**22`` entries.
    """
    num_probes, n, dim = tensor.shape
    rows = max(1, _FINITE_CHUNK // max(dim, 1))
    for p in range(num_probes):
        for start in range(0, n, rows):
            if not bool(torch.isfinite(tensor[p, start : start + rows]).all()):
                return False
    return True


def as_features(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """Convert ``(P, N, D)`` features to a float32 tensor, validating the shape and finiteness.

    A float32 tensor is returned as it is (no copy); other floating dtypes are converted.
    """
    tensor = torch.as_tensor(x)
    if tensor.ndim != 3:
        raise ValueError(f"{name} must have shape (P, N, D) = (probes, examples, features), got {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise ValueError(f"{name} must be a floating-point array, got dtype {tensor.dtype}")
    if min(tensor.shape) == 0:
        raise ValueError(f"{name} is empty: shape {tuple(tensor.shape)}")
    tensor = tensor.to(torch.float32)
    if not all_finite(tensor):
        raise ValueError(f"{name} contains NaN or infinite values")
    return tensor


def as_labels(y: np.ndarray | torch.Tensor | Sequence[int], name: str, n: int) -> torch.Tensor:
    """Convert labels to an int64 CPU tensor of shape ``(n,)``, validating shape and dtype."""
    labels = torch.as_tensor(np.asarray(y))
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,), got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class ids 0..C-1, got dtype {labels.dtype}")
    if labels.shape[0] != n:
        raise ValueError(f"{name} has {labels.shape[0]} labels but the features have N={n} examples")
    return labels.to(torch.int64)


def _check_features(xs: dict[str, torch.Tensor]) -> None:
    """Every split's ``(P, N, D)`` must have the train split's ``P`` and ``D``."""
    num_probes, _, dim = xs["train"].shape
    for split, x in xs.items():
        if x.shape[0] != num_probes or x.shape[2] != dim:
            raise ValueError(
                f"{split}_x has shape {tuple(x.shape)} but train_x has (P, N, D) = "
                f"({num_probes}, {xs['train'].shape[1]}, {dim}): P and D must match"
            )


def check_labels(
    labels: dict[str, np.ndarray | torch.Tensor], sizes: dict[str, int]
) -> tuple[dict[str, torch.Tensor], int]:
    """Check label shapes and ranges against the splits' sizes; return int64 labels and ``C``."""
    ys = {split: as_labels(y, f"{split}_y", sizes[split]) for split, y in labels.items()}
    train_y = ys["train"]
    if int(train_y.min()) < 0:
        raise ValueError(f"train_y has negative label {int(train_y.min())}; labels must be 0..C-1")
    num_classes = int(train_y.max()) + 1
    if int(torch.unique(train_y).numel()) < 2:
        raise ValueError(f"train_y holds a single class ({int(train_y[0])}); a probe needs at least two")
    for split in (s for s in ys if s != "train"):
        low, high = int(ys[split].min()), int(ys[split].max())
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"{split}_y has labels in [{low}, {high}] but train_y defines classes 0..{num_classes - 1}"
            )
    return ys, num_classes


def _train_statistics(train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population std ``(P, 1, D)`` of the train split (constant features get scale 1)."""
    variance, mean = torch.var_mean(train, dim=1, correction=0, keepdim=True)
    std = variance.sqrt()
    std = torch.where(std > 1e-12, std, torch.ones_like(std))  # constant features stay 0 after centring
    return mean, std


def standardise(xs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Standardise every split with the train mean and std (per probe and feature); new tensors."""
    mean, std = _train_statistics(xs["train"])
    return {split: (x - mean) / std for split, x in xs.items()}


class StandardisedFeatures:
    """The splits' features standardised with the train statistics, on one device, and their train spectrum.

    What :func:`fit_standardised` fits on; several label sets (task, control, MDL) share one instance, so
    the features are held once and the preconditioner's eigendecomposition is computed once.

    Attributes:
        splits: split name -> float32 ``(P, N_split, D)`` standardised features (``"train"`` always).
    """

    def __init__(self, splits: dict[str, torch.Tensor]) -> None:
        self.splits = splits
        self._spectrum: Spectrum | None = None

    @property
    def train(self) -> torch.Tensor:
        """``(P, N_train, D)`` standardised train features."""
        return self.splits["train"]

    @property
    def device(self) -> torch.device:
        return self.train.device

    def spectrum(self) -> Spectrum:
        """The eigendecomposition of the train correlation matrix, computed on first use."""
        if self._spectrum is None:
            self._spectrum = Spectrum.of(self.train)
        return self._spectrum


def _data_pointer(array: np.ndarray | torch.Tensor) -> int:
    """Address of an array's first element (to tell whether a conversion copied it)."""
    if isinstance(array, torch.Tensor):
        return array.data_ptr()
    return int(np.asarray(array).__array_interface__["data"][0])


def standardise_features(
    splits: dict[str, np.ndarray | torch.Tensor],
    *,
    device: str | torch.device = "cpu",
    in_place: bool = False,
) -> StandardisedFeatures:
    """Validate ``(P, N_split, D)`` features and standardise every split with the train mean and std.

    Args:
        splits: split name -> features; ``"train"`` gives the statistics.
        device: where the standardised features live.
        in_place: overwrite the given tensors (float32 tensors already on ``device``) instead of copying:
            the caller hands them over. Values are the same either way.

    Returns:
        :class:`StandardisedFeatures`.

    Raises:
        ValueError: a split is not ``(P, N, D)`` floats, holds NaN or inf, or differs from train in ``P`` or ``D``.
    """
    if "train" not in splits:
        raise ValueError(f"splits must include 'train' (its statistics standardise every split), got {list(splits)}")
    target = resolve_device(device)
    xs = {split: as_features(x, f"{split}_x") for split, x in splits.items()}
    _check_features(xs)
    moved = {split: x.to(target) for split, x in xs.items()}
    mean, std = _train_statistics(moved["train"])
    standardised = {}
    for split, x in moved.items():
        # A tensor converted or moved above is already a private copy: overwrite it too.
        if in_place or x.data_ptr() != _data_pointer(splits[split]):
            standardised[split] = x.sub_(mean).div_(std)
        else:
            standardised[split] = (x - mean) / std
    return StandardisedFeatures(standardised)


def _accuracy_grid(problem: BatchedLogReg, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Accuracy ``(P, G)`` of every problem on one split."""
    predictions = problem.logits(theta, x).argmax(dim=2)  # (P, G, N)
    return (predictions == y.view(1, 1, -1)).to(torch.float64).mean(dim=2)


def fit_probes(
    train_x: np.ndarray | torch.Tensor,
    train_y: np.ndarray | torch.Tensor,
    dev_x: np.ndarray | torch.Tensor,
    dev_y: np.ndarray | torch.Tensor,
    test_x: np.ndarray | torch.Tensor,
    test_y: np.ndarray | torch.Tensor,
    *,
    l2_grid: Sequence[float] = L2_GRID,
    max_iter: int = 1000,
    tol: float = 1e-5,
    ftol: float = 1e-12,
    history_size: int = 10,
    device: str | torch.device = "cpu",
    num_threads: int | None = None,
) -> ProbeResults:
    """Fit ``P`` logistic-regression probes for every L2 strength and pick L2 on dev.

    Args:
        train_x: ``(P, N_train, D)`` features; ``P`` probes (e.g. layers x poolings) stacked.
        train_y: ``(N_train,)`` integer labels ``0..C-1``; ``C = max(train_y) + 1``.
        dev_x: ``(P, N_dev, D)`` features used to choose L2.
        dev_y: ``(N_dev,)`` labels.
        test_x: ``(P, N_test, D)`` features, only evaluated.
        test_y: ``(N_test,)`` labels.
        l2_grid: strengths tried for every probe (see the module docstring for the loss).
        max_iter: L-BFGS iteration cap per problem.
        tol: stop a problem once ``max |gradient| <= tol``.
        ftol: stop a problem once its loss decreases by less than ``ftol * max(|loss|, 1)``.
        history_size: number of L-BFGS correction pairs kept.
        device: where to fit ("cpu", "cuda", ...; "auto" picks CUDA when available; see
            :func:`probeft.core.devices.resolve_device`). The three
            splits are moved there whole (``P * N * D`` float32 each).
        num_threads: CPU threads for the fit. None: torch's setting, except 1 thread for small
            problems (``P * G * C * N * D < 5e7``), whose many small operations lose more to thread
            synchronisation than they gain (10-80x slower with 2 threads on a busy 2-core machine).

    Returns:
        :class:`ProbeResults` with the chosen L2 and accuracies per probe.

    Raises:
        ValueError: on inconsistent shapes, labels outside ``0..C-1`` in any split, a single class
            in train, non-finite features, or a non-positive / empty L2 grid.
    """
    _check_settings(l2_grid, max_iter, tol, history_size)
    labels = {"train": train_y, "dev": dev_y, "test": test_y}
    features = {"train": train_x, "dev": dev_x, "test": test_x}
    standardised = standardise_features(features, device=device)
    return fit_standardised(standardised, labels, l2_grid=l2_grid, max_iter=max_iter, tol=tol, ftol=ftol,
                            history_size=history_size, num_threads=num_threads)


def _check_settings(l2_grid: Sequence[float], max_iter: int, tol: float, history_size: int) -> np.ndarray:
    """The L2 grid as float64 ``(G,)``; ValueError for a bad grid or optimiser setting."""
    grid = np.asarray(list(l2_grid), dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or not np.all(grid > 0):
        raise ValueError(f"l2_grid must be a non-empty sequence of positive numbers, got {list(l2_grid)}")
    if max_iter < 1 or tol <= 0 or history_size < 1:
        raise ValueError(f"need max_iter >= 1, tol > 0, history_size >= 1; got {max_iter}, {tol}, {history_size}")
    return grid


def fit_standardised(
    features: StandardisedFeatures,
    labels: dict[str, np.ndarray | torch.Tensor],
    *,
    l2_grid: Sequence[float] = L2_GRID,
    max_iter: int = 1000,
    tol: float = 1e-5,
    ftol: float = 1e-12,
    history_size: int = 10,
    num_threads: int | None = None,
    sample_weight: np.ndarray | None = None,
) -> ProbeResults:
    """:func:`fit_probes` on features standardised beforehand (:func:`standardise_features`).

    The features are not changed; their spectrum is computed on the first fit and reused by later ones,
    so fitting the control labels after the task's costs no second eigendecomposition.

    Args:
        features: standardised ``"train"``, ``"dev"`` and ``"test"`` features ``(P, N_split, D)``.
        labels: split -> ``(N_split,)`` integer labels ``0..C-1`` (``C = max(train) + 1``).
        l2_grid, max_iter, tol, ftol, history_size, num_threads: as in :func:`fit_probes`.
        sample_weight: ``(N_train,)`` non-negative weights of the train examples in the mean loss
            (``sum_i w_i CE_i / N_train``); bootstrap counts make it a fit on a resample of the train
            sentences without copying features. None: every example weight 1 (the plain fit). The
            features stay standardised with the full train split's statistics, and the preconditioner
            uses its unweighted spectrum (it changes the path, not the optimum).

    Returns:
        :class:`ProbeResults` (train accuracy unweighted).

    Raises:
        ValueError: labels that do not fit the features, a single class in train, a bad grid or setting.
    """
    grid = _check_settings(l2_grid, max_iter, tol, history_size)
    xs = features.splits
    if set(labels) != {"train", "dev", "test"} or set(xs) < {"train", "dev", "test"}:
        raise ValueError(f"need train, dev and test features and labels, got {sorted(xs)} and {sorted(labels)}")
    target = features.device
    ys, num_classes = check_labels(labels, {split: xs[split].shape[1] for split in labels})
    ys = {split: y.to(target) for split, y in ys.items()}
    num_probes, _, dim = xs["train"].shape
    weight = None
    if sample_weight is not None:
        weight = torch.as_tensor(np.asarray(sample_weight, dtype=np.float32), device=target)
        if weight.shape != (xs["train"].shape[1],) or bool((weight < 0).any()) or not bool(torch.isfinite(weight).all()):
            raise ValueError(f"sample_weight must be ({xs['train'].shape[1]},) finite, non-negative weights, "
                             f"got shape {tuple(weight.shape)}")

    l2 = torch.as_tensor(grid, dtype=torch.float64, device=target)
    theta = torch.zeros(num_probes, grid.size, num_classes, dim + 1, dtype=torch.float32, device=target)
    if num_threads is None and num_probes * grid.size * num_classes * xs["train"].shape[1] * dim < _SMALL_PROBLEM:
        num_threads = 1
    with torch.no_grad(), cpu_threads(num_threads if target.type == "cpu" else None):
        problem = BatchedLogReg(xs["train"], ys["train"], l2, num_classes, sample_weight=weight)
        preconditioner = Preconditioner(features.spectrum(), l2, num_classes)
        theta, n_iter, converged = lbfgs(
            problem, preconditioner, theta, max_iter=max_iter, tol=tol, ftol=ftol, history_size=history_size
        )
        accuracy = {split: _accuracy_grid(problem, theta, xs[split], ys[split]).cpu().numpy() for split in ys}
        test_correct_grid = (problem.logits(theta, xs["test"]).argmax(dim=2) == ys["test"].view(1, 1, -1)).cpu().numpy()

    # Best dev accuracy, ties -> stronger L2: scan strengths from strongest to weakest, first max wins.
    strongest_first = np.argsort(-grid, kind="stable")
    best_in_order = np.argmax(np.round(accuracy["dev"][:, strongest_first], 12), axis=1)
    chosen = strongest_first[best_in_order]  # (P,)
    rows = np.arange(num_probes)
    return ProbeResults(
        l2=grid[chosen],
        train_acc=accuracy["train"][rows, chosen],
        dev_acc=accuracy["dev"][rows, chosen],
        test_acc=accuracy["test"][rows, chosen],
        l2_grid=grid,
        grid_train_acc=accuracy["train"],
        grid_dev_acc=accuracy["dev"],
        grid_test_acc=accuracy["test"],
        n_iter=n_iter.cpu().numpy(),
        converged=converged.cpu().numpy(),
        coef=theta[..., :dim].cpu().numpy(),
        intercept=theta[..., dim].cpu().numpy(),
        test_correct=test_correct_grid[rows, chosen],  # (P, N_test)
    )
