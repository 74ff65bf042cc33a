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

Optimiser and stopping rule
    Deterministic full-batch, preconditioned L-BFGS (history 10) started from ``W = 0, b = 0``,
    run for all ``P * G`` problems at once: one batched matrix product per evaluation gives every
    loss and gradient (float32, losses summed in float64), while the two-loop recursion, the
    step lengths and the stopping tests are kept per problem, so an easy (strongly regularised)
    probe is not held back by a hard one. The initial inverse Hessian is the exact inverse
    Hessian at zero, ``(Sigma / C + l2 I)^-1`` with ``Sigma`` the train correlation matrix
    (one eigendecomposition per probe, shared by all L2 values), rescaled by the usual
    ``s.y / y.H0.y`` factor. Encoder features are strongly correlated; without this, CLS
    probes on MiniLM needed 400-600 iterations (as scikit-learn's ``lbfgs`` does), with it <= 10.
    Steps: 1 first, halved until the Armijo condition holds, or Hager-Zhang's approximate Wolfe
    conditions once loss changes are at float32 rounding level (at most 10 trials).
    A problem stops when the largest absolute gradient entry is at most ``tol`` (default 1e-5;
    scikit-learn's ``lbfgs`` criterion on the same mean loss, where its default is 1e-4), when
    its loss decreases by less than ``ftol`` relative to its size, when its line search fails
    (rounding noise) or after ``max_iter`` iterations. The loss is strictly convex in ``W``
    (the bias direction shared by all classes has zero gradient from the start), so the result
    depends neither on the initialisation nor on a seed. Unlike SentEval there is no early
    stopping on dev: each probe is fitted to its regularised optimum and the dev split only
    chooses the L2 strength. On MiniLM bigram_shift features (14 probes x 4 L2, N = 8000) the
    float32 result was within 0.1 accuracy points of a float64 solve to ``tol = 1e-9``.

Choosing L2
    For each probe the L2 value with the best dev accuracy is chosen; ties go to the stronger
    regularisation. Train/dev/test accuracy are reported for that value.

This module knows nothing about models or tokenizers: it takes arrays.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

L2_GRID: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2)

_ARMIJO_C1 = 1e-4
_LOSS_NOISE = 1e-6  # relative loss increase allowed by approximate Wolfe steps (Hager-Zhang default)
_SMALL_PROBLEM = 5e7  # P * G * C * N * D below which the fit runs single-threaded on CPU
_MAX_LINE_SEARCH = 10  # more halvings than this only happen at float32 noise level


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


def _as_features(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """Convert ``(P, N, D)`` features to a float32 CPU tensor, validating the shape."""
    tensor = torch.as_tensor(x)
    if tensor.ndim != 3:
        raise ValueError(f"{name} must have shape (P, N, D) = (probes, examples, features), got {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise ValueError(f"{name} must be a floating-point array, got dtype {tensor.dtype}")
    if min(tensor.shape) == 0:
        raise ValueError(f"{name} is empty: shape {tuple(tensor.shape)}")
    tensor = tensor.to(torch.float32)
    # A float64 sum is non-finite iff some entry is (finite float32 values cannot overflow it).
    if not bool(torch.isfinite(tensor.sum(dtype=torch.float64))):
        raise ValueError(f"{name} contains NaN or infinite values")
    return tensor


def _as_labels(y: np.ndarray | torch.Tensor | Sequence[int], name: str, n: int) -> torch.Tensor:
    """Convert labels to an int64 CPU tensor of shape ``(n,)``, validating shape and dtype."""
    labels = torch.as_tensor(np.asarray(y))
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,), got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class ids 0..C-1, got dtype {labels.dtype}")
    if labels.shape[0] != n:
        raise ValueError(f"{name} has {labels.shape[0]} labels but the features have N={n} examples")
    return labels.to(torch.int64)


def _validate(
    splits: dict[str, tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
    """Check shapes, label ranges and class counts; return features, labels and ``C``."""
    xs: dict[str, torch.Tensor] = {}
    ys: dict[str, torch.Tensor] = {}
    for split, (x, y) in splits.items():
        xs[split] = _as_features(x, f"{split}_x")
        ys[split] = _as_labels(y, f"{split}_y", xs[split].shape[1])
    num_probes, _, dim = xs["train"].shape
    for split, x in xs.items():
        if x.shape[0] != num_probes or x.shape[2] != dim:
            raise ValueError(
                f"{split}_x has shape {tuple(x.shape)} but train_x has (P, N, D) = "
                f"({num_probes}, {xs['train'].shape[1]}, {dim}): P and D must match"
            )
    train_y = ys["train"]
    if int(train_y.min()) < 0:
        raise ValueError(f"train_y has negative label {int(train_y.min())}; labels must be 0..C-1")
    num_classes = int(train_y.max()) + 1
    if int(torch.unique(train_y).numel()) < 2:
        raise ValueError(f"train_y holds a single class ({int(train_y[0])}); a probe needs at least two")
    for split in ("dev", "test"):
        low, high = int(ys[split].min()), int(ys[split].max())
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"{split}_y has labels in [{low}, {high}] but train_y defines classes 0..{num_classes - 1}"
            )
    return xs, ys, num_classes


def _standardise(xs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Standardise every split with the train mean and std (per probe and feature)."""
    variance, mean = torch.var_mean(xs["train"], dim=1, correction=0, keepdim=True)
    std = variance.sqrt()
    std = torch.where(std > 1e-12, std, torch.ones_like(std))  # constant features stay 0 after centring
    return {split: (x - mean) / std for split, x in xs.items()}


class _BatchedLogReg:
    """Loss and analytic gradient of ``P * G`` multinomial logistic regressions.

    Parameters are one tensor ``theta`` of shape ``(P, G, C, D + 1)``: entries ``0..D-1`` of the
    last axis are ``W`` (transposed) and entry ``D`` is the bias, so per-problem dot products are
    sums over the last two axes. Logits are laid out ``(P, G, C, N)`` so the softmax over the
    (small) class axis runs over contiguous rows of ``N`` values, which is much faster on CPU.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, l2: torch.Tensor, num_classes: int) -> None:
        self.x = x  # (P, N, D), standardised
        self.y = y  # (N,)
        self.l2 = l2  # (G,) float64
        self.num_classes = num_classes
        self.num_probes, self.n, self.dim = x.shape
        self.num_l2 = l2.shape[0]
        self.y_index = y.view(1, 1, 1, -1).expand(self.num_probes, self.num_l2, 1, -1)  # (P, G, 1, N)
        self.minus_one = torch.full((1, 1, 1, 1), -1.0, dtype=x.dtype, device=x.device).expand_as(self.y_index)

    def logits(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``(P, N', D)`` features -> ``(P, G, C, N')`` logits."""
        num_probes, num_l2, num_classes, _ = theta.shape
        weights = theta[..., : self.dim].reshape(num_probes, num_l2 * num_classes, self.dim)
        logits = torch.bmm(weights, x.transpose(1, 2)).view(num_probes, num_l2, num_classes, x.shape[1])
        return logits + theta[..., self.dim :]

    def loss_and_grad(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the per-problem loss ``(P, G)`` (float64) and its gradient (like ``theta``)."""
        num_probes, num_l2, num_classes, _ = theta.shape
        dim = self.dim
        log_probs = torch.log_softmax(self.logits(theta, self.x), dim=2)  # (P, G, C, N)
        nll = -log_probs.gather(2, self.y_index).squeeze(2)  # (P, G, N)
        weights = theta[..., :dim]
        penalty = 0.5 * self.l2.view(1, -1) * weights.to(torch.float64).square().sum(dim=(2, 3))
        # Reduce in float64: near the optimum, loss decreases are below float32 resolution.
        loss = nll.sum(dim=2, dtype=torch.float64) / self.n + penalty

        dlogits = log_probs.exp_()
        dlogits.scatter_add_(2, self.y_index, self.minus_one)
        dlogits /= self.n  # d(mean CE)/d logits = (softmax - onehot) / N
        grad = torch.empty_like(theta)
        grad_w = torch.bmm(dlogits.view(num_probes, num_l2 * num_classes, self.n), self.x)
        grad[..., :dim] = grad_w.view(num_probes, num_l2, num_classes, dim)
        grad[..., :dim] += self.l2.to(theta.dtype).view(1, -1, 1, 1) * weights
        grad[..., dim] = dlogits.sum(dim=3)
        return loss, grad


class _Preconditioner:
    """Inverse of the loss's Hessian at ``W = 0``, used as the L-BFGS initial inverse Hessian.

    At zero every softmax is uniform, so the Hessian of the mean cross-entropy is
    ``(1/C) * Sigma`` per class direction (``Sigma = X^T X / N``, the train correlation matrix of the
    standardised features) plus ``l2 * I`` from the penalty; for the bias it is ``1/C``. With
    ``Sigma = V diag(lam) V^T`` the inverse is ``V diag(1 / (lam / C + l2)) V^T``. Features of
    neural encoders are strongly correlated, so this removes most of the ill-conditioning that
    otherwise costs plain L-BFGS hundreds of iterations. It changes the path, not the optimum.
    """

    def __init__(self, x: torch.Tensor, l2: torch.Tensor, num_classes: int) -> None:
        num_probes, n, dim = x.shape
        covariance = torch.bmm(x.transpose(1, 2), x).to(torch.float64) / n  # (P, D, D)
        eigenvalues, eigenvectors = _eigh(covariance)
        eigenvalues = eigenvalues.clamp(min=0.0)
        self.basis = eigenvectors.to(x.dtype)  # (P, D, D), columns are eigenvectors
        scale = 1.0 / (eigenvalues.unsqueeze(1) / num_classes + l2.view(1, -1, 1))  # (P, G, D)
        self.scale = scale.to(x.dtype).unsqueeze(2)  # (P, G, 1, D)
        self.bias_scale = float(num_classes)
        self.dim = dim

    def apply(self, vector: torch.Tensor) -> torch.Tensor:
        """Multiply ``(P, G, C, D + 1)`` vectors by the inverse Hessian at zero."""
        num_probes, num_l2, num_classes, _ = vector.shape
        weights = vector[..., : self.dim].reshape(num_probes, num_l2 * num_classes, self.dim)
        rotated = torch.bmm(weights, self.basis).view(num_probes, num_l2, num_classes, self.dim) * self.scale
        result = torch.empty_like(vector)
        back = torch.bmm(rotated.view(num_probes, num_l2 * num_classes, self.dim), self.basis.transpose(1, 2))
        result[..., : self.dim] = back.view(num_probes, num_l2, num_classes, self.dim)
        result[..., self.dim] = vector[..., self.dim] * self.bias_scale
        return result


@contextlib.contextmanager
def _cpu_threads(num_threads: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op CPU threads (None: leave as is)."""
    if num_threads is None:
        yield
        return
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _eigh(matrices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.eigh``, single-threaded on CPU.

    Multi-threaded LAPACK eigh synchronises its threads many times; on a busy 2-core machine it
    was measured at 2-100 s instead of 0.4 s single-threaded for 14 matrices of 384 x 384.
    """
    if matrices.device.type != "cpu":
        return torch.linalg.eigh(matrices)
    with _cpu_threads(1):
        return torch.linalg.eigh(matrices)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-problem dot product of two ``(P, G, C, D + 1)`` tensors -> ``(P, G)`` float64."""
    return (a * b).sum(dim=(2, 3), dtype=torch.float64)


def _expand(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(P, G)`` per-problem values -> broadcastable against ``(P, G, C, D + 1)`` in ``like``'s dtype."""
    return values.to(like.dtype)[..., None, None]


def _lbfgs(
    problem: _BatchedLogReg,
    preconditioner: _Preconditioner,
    theta: torch.Tensor,
    *,
    max_iter: int,
    tol: float,
    ftol: float,
    history_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Minimise all problems with per-problem preconditioned L-BFGS.

    Returns:
        ``theta``, iterations ``(P, G)`` and a converged flag ``(P, G)``.
    """
    shape = theta.shape[:2]
    device = theta.device
    loss, grad = problem.loss_and_grad(theta)
    active = grad.abs().amax(dim=(2, 3)) > tol  # (P, G)
    converged = ~active
    n_iter = torch.zeros(shape, dtype=torch.int64, device=device)
    history: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (s, y, rho) per update
    gamma = torch.ones(shape, dtype=torch.float64, device=device)  # scalar correction of the preconditioner

    for _ in range(max_iter):
        if not bool(active.any()):
            break
        # Two-loop recursion, batched over problems (zeroed history entries are no-ops).
        direction = grad.clone()
        alphas = []
        for s, y, rho in reversed(history):
            alpha = rho * _dot(s, direction)
            direction -= _expand(alpha, y) * y
            alphas.append(alpha)
        direction = preconditioner.apply(direction) * _expand(gamma, direction)
        for (s, y, rho), alpha in zip(history, reversed(alphas)):
            beta = rho * _dot(y, direction)
            direction += _expand(alpha - beta, s) * s
        direction.neg_()
        slope = _dot(grad, direction)
        # Fall back to steepest descent where rounding made the direction non-descending.
        not_descent = slope >= 0
        if bool(not_descent.any()):
            direction = torch.where(not_descent[..., None, None], -grad, direction)
            slope = torch.where(not_descent, -_dot(grad, grad), slope)

        # Backtracking (Armijo) from step 1: the preconditioned direction is already Newton-scaled.
        step = torch.ones(shape, dtype=torch.float64, device=device)
        accepted = ~active
        new_theta, new_loss, new_grad = theta, loss, grad
        for _ in range(_MAX_LINE_SEARCH):
            trial = theta + _expand(torch.where(active, step, 0.0), direction) * direction
            trial_loss, trial_grad = problem.loss_and_grad(trial)
            armijo = trial_loss <= loss + _ARMIJO_C1 * step * slope
            # Near the optimum, loss changes drop below float32 resolution; there accept a step whose
            # directional derivative shrank (Hager-Zhang's approximate Wolfe conditions).
            trial_slope = _dot(trial_grad, direction)
            approximate_wolfe = (
                (trial_loss <= loss + _LOSS_NOISE * loss.abs().clamp(min=1.0))
                & (trial_slope >= 0.9 * slope)
                & (trial_slope <= -0.8 * slope)
            )
            take = (armijo | approximate_wolfe) & ~accepted
            new_theta = torch.where(take[..., None, None], trial, new_theta)
            new_loss = torch.where(take, trial_loss, new_loss)
            new_grad = torch.where(take[..., None, None], trial_grad, new_grad)
            accepted |= take
            if bool(accepted.all()):
                break
            step = torch.where(accepted, step, step * 0.5)
        failed = ~accepted  # float32 cannot resolve a further decrease: stop those problems
        moved = active & accepted
        n_iter += moved.to(torch.int64)

        s = torch.where(moved[..., None, None], new_theta - theta, 0.0)
        y = torch.where(moved[..., None, None], new_grad - grad, 0.0)
        ys = _dot(y, s)
        usable = moved & (ys > 1e-12)
        if bool(usable.any()):
            rho = torch.where(usable, 1.0 / torch.where(usable, ys, 1.0), 0.0)
            keep = usable[..., None, None]
            history.append((s * keep, y * keep, rho))
            if len(history) > history_size:
                history.pop(0)
            y_h_y = _dot(y, preconditioner.apply(y))
            gamma = torch.where(usable & (y_h_y > 0), ys / torch.where(y_h_y > 0, y_h_y, 1.0), gamma)

        # Stagnation: a tiny but non-negative decrease (an approximate-Wolfe step may raise the loss
        # within rounding noise; the gradient test decides then).
        decrease = loss - new_loss
        small_decrease = (decrease >= 0) & (decrease <= ftol * torch.maximum(new_loss.abs(), loss.abs()).clamp(min=1.0))
        theta, loss, grad = new_theta, new_loss, new_grad
        gradient_ok = grad.abs().amax(dim=(2, 3)) <= tol
        converged |= moved & (gradient_ok | small_decrease)
        active &= ~(failed | gradient_ok | small_decrease)
    return theta, n_iter, converged


def _accuracy_grid(problem: _BatchedLogReg, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
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
    seed: int = 0,
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
        device: where to fit ("cpu", "cuda", ...; "auto" picks CUDA when available). The three
            splits are moved there whole (``P * N * D`` float32 each).
        seed: recorded for the caller's provenance; the fit is deterministic without it
            (convex problem, zero initialisation, full batch).
        num_threads: CPU threads for the fit. None: torch's setting, except 1 thread for small
            problems (``P * G * C * N * D < 5e7``), whose many small operations lose more to thread
            synchronisation than they gain (10-80x slower with 2 threads on a busy 2-core machine).

    Returns:
        :class:`ProbeResults` with the chosen L2 and accuracies per probe.

    Raises:
        ValueError: on inconsistent shapes, labels outside ``0..C-1`` in any split, a single class
            in train, non-finite features, or a non-positive / empty L2 grid.
    """
    del seed  # nothing random happens (see the docstring)
    grid = np.asarray(list(l2_grid), dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or not np.all(grid > 0):
        raise ValueError(f"l2_grid must be a non-empty sequence of positive numbers, got {list(l2_grid)}")
    if max_iter < 1 or tol <= 0 or history_size < 1:
        raise ValueError(f"need max_iter >= 1, tol > 0, history_size >= 1; got {max_iter}, {tol}, {history_size}")
    xs, ys, num_classes = _validate(
        {"train": (train_x, train_y), "dev": (dev_x, dev_y), "test": (test_x, test_y)}
    )
    target = _resolve_device(device)
    xs = _standardise({split: x.to(target) for split, x in xs.items()})
    ys = {split: y.to(target) for split, y in ys.items()}
    num_probes, _, dim = xs["train"].shape

    l2 = torch.as_tensor(grid, dtype=torch.float64, device=target)
    theta = torch.zeros(num_probes, grid.size, num_classes, dim + 1, dtype=torch.float32, device=target)
    if num_threads is None and num_probes * grid.size * num_classes * xs["train"].shape[1] * dim < _SMALL_PROBLEM:
        num_threads = 1
    with torch.no_grad(), _cpu_threads(num_threads if target.type == "cpu" else None):
        problem = _BatchedLogReg(xs["train"], ys["train"], l2, num_classes)
        preconditioner = _Preconditioner(xs["train"], l2, num_classes)
        theta, n_iter, converged = _lbfgs(
            problem, preconditioner, theta, max_iter=max_iter, tol=tol, ftol=ftol, history_size=history_size
        )
        accuracy = {split: _accuracy_grid(problem, theta, xs[split], ys[split]).cpu().numpy() for split in xs}

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
    )


def _resolve_device(device: str | torch.device) -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else as given (kept local: no model imports)."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
