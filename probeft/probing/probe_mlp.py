"""Batched one-hidden-layer MLP probes over (layer, pooling) x hyper-parameter settings.

The non-linear counterpart of :mod:`probeft.probing.probe`: ``P`` probes (e.g. layers x poolings) and
``G`` settings of :data:`MLP_GRID` are ``P * G`` independent MLPs trained together, with batched matrix
products over a leading ``(P, G)`` axis, on standardised features shared with the linear probe
(:class:`probeft.probing.probe.StandardisedFeatures`).

Model (SentEval's ``nhid > 0`` classifier, ``senteval/tools/classifier.py``)
    ``logits = sigmoid(dropout(x W1 + b1)) W2 + b2`` with ``W1: (D, H)``, ``W2: (H, C)``; dropout (inverted,
    training only) between the first layer and the sigmoid, as in SentEval. Weights and biases start like
    ``torch.nn.Linear`` (uniform in ``+-1/sqrt(fan_in)``), drawn from a ``torch.Generator`` seeded by ``seed``.

Training
    Minibatch Adam (lr 1e-3, betas (0.9, 0.999), eps 1e-8; SentEval's ``optim="adam"``, batch 64) on the mean
    cross-entropy, plus ``weight_decay * W`` added to the gradients of ``W1`` and ``W2`` (coupled L2, as
    ``Adam(weight_decay=...)``; the same meaning as the linear probe's ``l2``; biases are not penalised, as
    there). One *epoch* is ``epoch_size`` passes over the train split in a seeded random order (SentEval's
    ``epoch_size=4``); after each epoch every MLP's dev accuracy is measured, its best parameters so far are
    kept, and an MLP whose dev accuracy has not improved for ``tenacity`` epochs (SentEval: 5) stops; at
    most ``max_epochs`` epochs (SentEval: 200). The reported MLP is the one of its best dev epoch. Every MLP
    stops on its own (its updates are masked), so an easy probe is not trained on because a hard one is.
    A limit of this rule (SentEval's too): a sigmoid MLP that must learn an interaction sits on a plateau at
    the linear solution for tens of epochs, where dev accuracy is flat, and is stopped there. On the synthetic
    features of ``benchmarks/bench_mlp_probe.py`` (label = sign of a product of two projections plus a linear
    term) it stopped after about 11 epochs at the linear probe's 70% test accuracy, where scikit-learn's
    ``MLPClassifier`` (200 epochs, stopping on train loss) reached 80%; trained 50 epochs, ours reached 82%.
    Stopping on dev loss instead did not help (the loss is as flat). Raise ``tenacity`` when that matters.

Choosing the setting
    :data:`MLP_GRID` is SentEval's ``nhid=50`` with dropout {0, 0.2} x weight decay {1e-4, 1e-2}
    (Conneau et al. 2018 searched nhid {50, 100, 200}, dropout {0, 0.1, 0.2} and SentEval's L2 grid; we keep
    the width at SentEval's setting and a corner of the rest to bound the cost). Per probe the setting with
    the best dev accuracy wins; ties go to the earlier setting of the grid. Settings of different widths are
    trained one width at a time.

Determinism and devices
    Initial weights and the order of the examples come from two CPU ``torch.Generator`` streams (seeds ``seed``
    and ``seed + 1``), so they are the same on every device and whatever ``P`` is (probe ``p``'s weights are the
    ``p``-th block of the draw, and every probe sees the same order); dropout masks come from a generator on the
    training device, seeded by ``seed``. The global torch and numpy random states are neither read nor changed. On CPU, the same seed and thread count give bit-identical results; on CUDA the order of
    floating-point reductions may differ between runs (cuBLAS), so accuracies agree to rounding only.

Memory
    The features stay where :class:`~probeft.probing.probe.StandardisedFeatures` holds them; each step gathers
    one minibatch ``(P, B, D)`` and evaluation streams ``eval_batch`` examples at a time, so the extra memory
    is five copies of the parameters (weights, best so far, gradient, Adam's two moments: about
    ``5 * P * G * (D + 1) * H`` floats) plus ``P * G * eval_batch * H`` activations, whatever ``N`` is.

This module knows nothing about models or tokenizers: it takes arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from probeft.probing.probe import StandardisedFeatures, check_labels, standardise_features
from probeft.probing.probe_lbfgs import cpu_threads

__all__ = ["MLP_GRID", "MLPResults", "MLPSetting", "fit_mlp_probes", "fit_mlp_standardised"]


@dataclass(frozen=True)
class MLPSetting:
    """One hyper-parameter setting of the MLP probe.

    Attributes:
        hidden: width ``H`` of the hidden (sigmoid) layer, SentEval's ``nhid``.
        dropout: dropout probability before the sigmoid (training only).
        weight_decay: coupled L2 on ``W1`` and ``W2`` (Adam's ``weight_decay``).
    """

    hidden: int
    dropout: float
    weight_decay: float

    def __post_init__(self) -> None:
        if isinstance(self.hidden, bool) or not isinstance(self.hidden, int) or self.hidden < 1:
            raise ValueError(f"MLPSetting.hidden must be an integer >= 1, got {self.hidden!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"MLPSetting.dropout must be in [0, 1), got {self.dropout!r}")
        if not self.weight_decay >= 0.0:
            raise ValueError(f"MLPSetting.weight_decay must be >= 0, got {self.weight_decay!r}")


MLP_GRID: tuple[MLPSetting, ...] = tuple(
    MLPSetting(50, dropout, weight_decay) for dropout in (0.0, 0.2) for weight_decay in (1e-4, 1e-2)
)

_SMALL_STEP = 5e7  # P * G * batch * D * H below which training runs single-threaded on CPU
_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


@dataclass
class MLPResults:
    """Accuracies of ``P`` MLP probes at their chosen setting.

    Attributes:
        grid: the ``G`` settings tried, in the order given.
        chosen: ``(P,)`` index into ``grid`` of each probe's setting.
        hidden: ``(P,)`` chosen hidden width.
        dropout: ``(P,)`` chosen dropout.
        weight_decay: ``(P,)`` chosen weight decay.
        train_acc: ``(P,)`` train accuracy (fraction) of the chosen setting's best-dev-epoch MLP.
        dev_acc: ``(P,)`` its dev accuracy.
        test_acc: ``(P,)`` its test accuracy.
        grid_train_acc: ``(P, G)`` train accuracy of every setting.
        grid_dev_acc: ``(P, G)`` dev accuracy of every setting.
        grid_test_acc: ``(P, G)`` test accuracy of every setting.
        best_epoch: ``(P, G)`` the epoch (1-based) whose parameters were kept.
        epochs: ``(P, G)`` epochs trained before early stopping (or ``max_epochs``).
        test_correct: ``(P, N_test)`` bool, whether the chosen MLP's prediction equals each test label.
        first_weights: per width ``H`` of the grid, the kept first-layer weights ``(P, G_H, D, H)`` of the
            settings of that width (in grid order), for inspection and tests.
    """

    grid: tuple[MLPSetting, ...]
    chosen: np.ndarray
    hidden: np.ndarray
    dropout: np.ndarray
    weight_decay: np.ndarray
    train_acc: np.ndarray
    dev_acc: np.ndarray
    test_acc: np.ndarray
    grid_train_acc: np.ndarray
    grid_dev_acc: np.ndarray
    grid_test_acc: np.ndarray
    best_epoch: np.ndarray
    epochs: np.ndarray
    test_correct: np.ndarray
    first_weights: dict[int, np.ndarray]


class _Parameters:
    """The parameters of ``P * G`` one-hidden-layer MLPs of one width, in one flat ``(P, G, K)`` buffer.

    ``K = D * H + H + H * C + C``; :meth:`split` gives the views ``w1 (P, G, D, H)``, ``b1 (P, G, 1, H)``,
    ``w2 (P, G, H, C)`` and ``b2 (P, G, 1, C)`` of any ``(P, G, K)`` tensor laid out like it (the gradients and
    Adam's moments are), so an Adam step is a handful of operations on one tensor.
    """

    def __init__(self, dim: int, hidden: int, num_classes: int) -> None:
        self.shapes = ((dim, hidden), (1, hidden), (hidden, num_classes), (1, num_classes))
        self.sizes = [rows * cols for rows, cols in self.shapes]
        self.size = sum(self.sizes)

    def split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """``(P, G, K)`` -> ``[w1, b1, w2, b2]`` views."""
        views, start = [], 0
        for (rows, cols), size in zip(self.shapes, self.sizes):
            views.append(flat[..., start : start + size].unflatten(-1, (rows, cols)))
            start += size
        return views

    def initial(self, num_probes: int, num_settings: int, generator: torch.Generator,
                device: torch.device) -> torch.Tensor:
        """``torch.nn.Linear``'s initialisation (uniform in ``+-1/sqrt(fan_in)``), drawn on CPU from ``generator``."""
        flat = torch.rand((num_probes, num_settings, self.size), generator=generator, dtype=torch.float32)
        for view, fan_in in zip(self.split(flat), (self.shapes[0][0], self.shapes[0][0], self.shapes[2][0],
                                                    self.shapes[2][0])):
            bound = 1.0 / math.sqrt(fan_in)
            view.mul_(2 * bound).sub_(bound)
        return flat.to(device)

    def weight_mask(self, device: torch.device) -> torch.Tensor:
        """``(K,)``: 1 on the entries of ``w1`` and ``w2`` (weight decay applies), 0 on the biases."""
        mask = torch.zeros(self.size, dtype=torch.float32, device=device)
        w1, _, w2, _ = self.split(mask)
        w1.fill_(1.0)
        w2.fill_(1.0)
        return mask


def _first_layer(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor) -> torch.Tensor:
    """``(P, B, D)`` features and ``w1 (P, G, D, H)`` -> pre-activations ``(P, G, B, H)``.

    One ``(B, D) x (D, G * H)`` product per probe rather than ``G`` small ones: the settings share the features.
    """
    num_probes, num_settings, dim, hidden = w1.shape
    stacked = w1.permute(0, 2, 1, 3).reshape(num_probes, dim, num_settings * hidden)  # (P, D, G * H)
    pre = torch.bmm(x, stacked).view(num_probes, x.shape[1], num_settings, hidden).transpose(1, 2)
    return pre + b1


def _logits(x: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(P, B, D)`` features -> ``(P, G, B, C)`` logits of every MLP (no dropout: evaluation).

    Args:
        x: features of one batch, shared by the ``G`` settings of each probe.
        params: ``[w1, b1, w2, b2]`` (:meth:`_Parameters.split`).
    """
    w1, b1, w2, b2 = params
    return torch.matmul(torch.sigmoid(_first_layer(x, w1, b1)), w2) + b2


def _loss_gradient(x: torch.Tensor, y: torch.Tensor, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor],
                   keep: torch.Tensor | None) -> None:
    """Write the gradient of every MLP's mean cross-entropy on one batch into ``grads`` (views like ``params``).

    Args:
        x: ``(P, B, D)`` batch features.
        y: ``(B,)`` labels.
        params: ``[w1, b1, w2, b2]``.
        grads: views of the same shapes, overwritten.
        keep: ``(P, G, B, H)`` dropout mask scaled by ``1 / (1 - p)``, or None.
    """
    w1, b1, w2, b2 = params
    g_w1, g_b1, g_w2, g_b2 = grads
    num_probes, num_settings, _, hidden_size = w1.shape
    pre = _first_layer(x, w1, b1)  # (P, G, B, H)
    if keep is not None:
        pre = pre * keep
    hidden = torch.sigmoid(pre)
    logits = torch.matmul(hidden, w2) + b2  # (P, G, B, C)
    dlogits = torch.softmax(logits, dim=3)
    dlogits[:, :, torch.arange(y.numel(), device=y.device), y] -= 1.0
    dlogits /= y.numel()  # d(mean CE) / d logits
    g_w2.copy_(torch.matmul(hidden.transpose(2, 3), dlogits))
    g_b2.copy_(dlogits.sum(dim=2, keepdim=True))
    dpre = torch.matmul(dlogits, w2.transpose(2, 3)).mul_(hidden * (1.0 - hidden))  # (P, G, B, H)
    if keep is not None:
        dpre.mul_(keep)
    g_b1.copy_(dpre.sum(dim=2, keepdim=True))
    stacked = dpre.transpose(1, 2).reshape(num_probes, x.shape[1], num_settings * hidden_size)  # (P, B, G * H)
    g_w1.copy_(torch.bmm(x.transpose(1, 2), stacked).view(num_probes, -1, num_settings, hidden_size).transpose(1, 2))


def _check_grid(grid: Sequence[MLPSetting]) -> tuple[MLPSetting, ...]:
    settings = tuple(grid)
    if not settings or not all(isinstance(s, MLPSetting) for s in settings):
        raise ValueError(f"grid must be a non-empty sequence of MLPSetting, got {list(grid)!r}")
    return settings


def _check_training(batch_size: int, epoch_size: int, tenacity: int, max_epochs: int, eval_batch: int) -> None:
    values = {"batch_size": batch_size, "epoch_size": epoch_size, "tenacity": tenacity, "max_epochs": max_epochs,
              "eval_batch": eval_batch}
    bad = {name: value for name, value in values.items()
           if isinstance(value, bool) or not isinstance(value, int) or value < 1}
    if bad:
        raise ValueError(f"MLP probe training settings must be integers >= 1, got {bad}")


@torch.no_grad()
def _predictions(x: torch.Tensor, params: Sequence[torch.Tensor], eval_batch: int) -> torch.Tensor:
    """``(P, N, D)`` features -> ``(P, G, N)`` predicted classes, ``eval_batch`` examples at a time."""
    parts = [_logits(x[:, start : start + eval_batch], params).argmax(dim=3)
             for start in range(0, x.shape[1], eval_batch)]
    return torch.cat(parts, dim=2)


def _accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(P, G, N)`` predictions and ``(N,)`` labels -> ``(P, G)`` float64 accuracy."""
    return (predicted == labels.view(1, 1, -1)).to(torch.float64).mean(dim=2)


@torch.inference_mode()
def _train_width(
    features: StandardisedFeatures,
    ys: dict[str, torch.Tensor],
    settings: Sequence[MLPSetting],
    num_classes: int,
    *,
    seed: int,
    lr: float,
    batch_size: int,
    epoch_size: int,
    tenacity: int,
    max_epochs: int,
    eval_batch: int,
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Train the MLPs of settings of one width.

    Returns:
        The kept (best dev epoch) ``[w1, b1, w2, b2]``, the kept epoch ``(P, G)`` and the epochs trained ``(P, G)``.
    """
    x = features.train
    device = features.device
    num_probes, n, dim = x.shape
    hidden = settings[0].hidden
    layout = _Parameters(dim, hidden, num_classes)
    # Two CPU streams: the initial weights (probe p's are the p-th block of the draw, whatever P is) and
    # the example order (the same for every probe, whatever P is).
    theta = layout.initial(num_probes, len(settings), torch.Generator().manual_seed(seed), device)  # (P, G, K)
    order_generator = torch.Generator().manual_seed(seed + 1)
    params, grad = layout.split(theta), torch.zeros_like(theta)
    grads = layout.split(grad)
    dropout = torch.tensor([s.dropout for s in settings], dtype=torch.float32, device=device).view(1, -1, 1, 1)
    # Coupled L2 per entry: the setting's weight decay on w1 and w2, nothing on the biases.
    decay = torch.tensor([s.weight_decay for s in settings], dtype=torch.float32, device=device).view(1, -1, 1)
    decay = decay * layout.weight_mask(device)  # (1, G, K)
    dropout_generator = torch.Generator(device=device).manual_seed(seed)
    shape = (num_probes, len(settings))
    first, second = torch.zeros_like(theta), torch.zeros_like(theta)  # Adam's moments
    best = theta.clone()
    best_dev = torch.full(shape, -1.0, dtype=torch.float64, device=device)
    best_epoch = torch.zeros(shape, dtype=torch.int64, device=device)
    epochs = torch.zeros(shape, dtype=torch.int64, device=device)
    active = torch.ones(shape, dtype=torch.bool, device=device)
    # Dropout masks are drawn only for the settings with dropout; the others keep a mask of ones.
    dropped = torch.tensor([i for i, s in enumerate(settings) if s.dropout > 0], dtype=torch.int64, device=device)
    drop_rate = dropout.index_select(1, dropped)  # (1, G_dropped, 1, 1)
    keep_buffer = torch.ones((*shape, batch_size, hidden), dtype=torch.float32, device=device) if dropped.numel() else None
    beta1, beta2 = _ADAM_BETAS
    step = 0
    for epoch in range(1, max_epochs + 1):
        update_mask = active.to(theta.dtype).unsqueeze(2)  # (P, G, 1): stopped MLPs stay as they are
        for _ in range(epoch_size):
            order = torch.randperm(n, generator=order_generator).to(device)
            for start in range(0, n, batch_size):
                index = order[start : start + batch_size]
                keep = None
                if keep_buffer is not None:
                    keep = keep_buffer[:, :, : index.numel()]
                    uniform = torch.rand((num_probes, dropped.numel(), index.numel(), hidden),
                                         generator=dropout_generator, device=device)
                    keep.index_copy_(1, dropped, (uniform >= drop_rate).to(torch.float32).div_(1.0 - drop_rate))
                _loss_gradient(x.index_select(1, index), ys["train"].index_select(0, index), params, grads, keep)
                grad.addcmul_(decay, theta)
                step += 1
                first.mul_(beta1).add_(grad, alpha=1 - beta1)
                second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denominator = (second / (1 - beta2**step)).sqrt_().add_(_ADAM_EPS)
                theta.addcdiv_(first * update_mask, denominator, value=-lr / (1 - beta1**step))
        epochs += active.to(torch.int64)
        dev = _accuracy(_predictions(features.splits["dev"], params, eval_batch), ys["dev"])
        improved = active & (dev > best_dev + 1e-12)
        best = torch.where(improved.unsqueeze(2), theta, best)
        best_dev = torch.where(improved, dev, best_dev)
        best_epoch = torch.where(improved, epoch, best_epoch)
        active &= (epoch - best_epoch) < tenacity
        if not bool(active.any()):
            break
    return layout.split(best), best_epoch, epochs


def fit_mlp_standardised(
    features: StandardisedFeatures,
    labels: dict[str, np.ndarray | torch.Tensor],
    *,
    grid: Sequence[MLPSetting] = MLP_GRID,
    seed: int = 0,
    lr: float = 1e-3,
    batch_size: int = 64,
    epoch_size: int = 4,
    tenacity: int = 5,
    max_epochs: int = 200,
    eval_batch: int = 4096,
    num_threads: int | None = None,
) -> MLPResults:
    """Train ``P x G`` MLP probes on standardised features and choose each probe's setting on dev.

    Args:
        features: standardised ``"train"``, ``"dev"`` and ``"test"`` features ``(P, N_split, D)``
            (:func:`probeft.probing.probe.standardise_features`); they are not changed.
        labels: split -> ``(N_split,)`` integer labels ``0..C-1`` (``C = max(train) + 1``).
        grid: the settings tried for every probe (module docstring).
        seed: seeds the initial weights, the example order and the dropout masks.
        lr: Adam's learning rate.
        batch_size: examples per Adam step.
        epoch_size: passes over the train split between two dev evaluations.
        tenacity: epochs without a dev improvement before an MLP stops.
        max_epochs: cap on epochs.
        eval_batch: examples evaluated at once.
        num_threads: CPU threads. None: torch's setting, except 1 thread when one step is small
            (``P * G * batch_size * D * H < 5e7``): its many small operations lose more to thread
            synchronisation than they gain (25x slower with 2 threads on a busy 2-core machine).

    Returns:
        :class:`MLPResults`.

    Raises:
        ValueError: labels that do not fit the features, a single class in train, a bad grid or setting.
    """
    settings = _check_grid(grid)
    _check_training(batch_size, epoch_size, tenacity, max_epochs, eval_batch)
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    xs = features.splits
    if set(labels) != {"train", "dev", "test"} or set(xs) < {"train", "dev", "test"}:
        raise ValueError(f"need train, dev and test features and labels, got {sorted(xs)} and {sorted(labels)}")
    ys, num_classes = check_labels(labels, {split: xs[split].shape[1] for split in labels})
    ys = {split: y.to(features.device) for split, y in ys.items()}
    num_probes = xs["train"].shape[0]
    size = len(settings)
    accuracy = {split: np.zeros((num_probes, size)) for split in ys}
    best_epoch = np.zeros((num_probes, size), dtype=np.int64)
    epochs = np.zeros((num_probes, size), dtype=np.int64)
    test_predicted = torch.zeros((num_probes, size, xs["test"].shape[1]), dtype=torch.int64)
    first_weights = {}
    step_size = num_probes * size * batch_size * xs["train"].shape[2] * max(s.hidden for s in settings)
    if num_threads is None and step_size < _SMALL_STEP:
        num_threads = 1
    for width in dict.fromkeys(s.hidden for s in settings):
        columns = [i for i, s in enumerate(settings) if s.hidden == width]
        with cpu_threads(num_threads if features.device.type == "cpu" else None):
            kept, kept_epoch, trained = _train_width(
                features, ys, [settings[i] for i in columns], num_classes, seed=seed, lr=lr, batch_size=batch_size,
                epoch_size=epoch_size, tenacity=tenacity, max_epochs=max_epochs, eval_batch=eval_batch)
        for split, y in ys.items():
            predicted = _predictions(xs[split], kept, eval_batch)
            accuracy[split][:, columns] = _accuracy(predicted, y).cpu().numpy()
            if split == "test":
                test_predicted[:, columns] = predicted.cpu()
        best_epoch[:, columns] = kept_epoch.cpu().numpy()
        epochs[:, columns] = trained.cpu().numpy()
        first_weights[width] = kept[0].cpu().numpy()

    chosen = np.argmax(np.round(accuracy["dev"], 12), axis=1)  # first maximum: ties go to the earlier setting
    rows = np.arange(num_probes)
    test_labels = ys["test"].cpu().view(1, -1)
    return MLPResults(
        grid=settings,
        chosen=chosen,
        hidden=np.array([settings[i].hidden for i in chosen], dtype=np.int64),
        dropout=np.array([settings[i].dropout for i in chosen]),
        weight_decay=np.array([settings[i].weight_decay for i in chosen]),
        train_acc=accuracy["train"][rows, chosen],
        dev_acc=accuracy["dev"][rows, chosen],
        test_acc=accuracy["test"][rows, chosen],
        grid_train_acc=accuracy["train"],
        grid_dev_acc=accuracy["dev"],
        grid_test_acc=accuracy["test"],
        best_epoch=best_epoch,
        epochs=epochs,
        test_correct=(test_predicted[torch.as_tensor(rows), torch.as_tensor(chosen)] == test_labels).numpy(),
        first_weights=first_weights,
    )


def fit_mlp_probes(
    train_x: np.ndarray | torch.Tensor,
    train_y: np.ndarray | torch.Tensor,
    dev_x: np.ndarray | torch.Tensor,
    dev_y: np.ndarray | torch.Tensor,
    test_x: np.ndarray | torch.Tensor,
    test_y: np.ndarray | torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    **options: object,
) -> MLPResults:
    """Standardise ``(P, N_split, D)`` features with the train statistics and fit MLP probes on them.

    Args:
        train_x: ``(P, N_train, D)`` features; ``P`` probes stacked.
        train_y: ``(N_train,)`` integer labels ``0..C-1``.
        dev_x: ``(P, N_dev, D)`` features the setting and the early stopping are chosen on.
        dev_y: ``(N_dev,)`` labels.
        test_x: ``(P, N_test, D)`` features, only evaluated.
        test_y: ``(N_test,)`` labels.
        device: where to train ("cpu", "cuda", "auto", ...).
        **options: :func:`fit_mlp_standardised`'s keyword arguments (``grid``, ``seed``, ...).

    Returns:
        :class:`MLPResults`.

    Raises:
        ValueError: inconsistent shapes, non-finite features, bad labels, grid or settings.
    """
    standardised = standardise_features({"train": train_x, "dev": dev_x, "test": test_x}, device=device)
    return fit_mlp_standardised(standardised, {"train": train_y, "dev": dev_y, "test": test_y}, **options)
