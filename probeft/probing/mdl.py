"""Minimum description length of labels given features: the online code of Voita & Titov (2020).

Method
    Voita & Titov, "Information-Theoretic Probing with Minimum Description Length" (EMNLP 2020),
    section 2.2 ("online code"). The ``N`` training examples are cut into blocks at
    ``t_1 < t_2 < ... < t_S = N`` (``t_i = floor(fraction_i * N)``, at least 1, duplicates removed
    when ``N`` is small). The first block is sent with a uniform code over the ``C`` classes; every
    later block ``t_i .. t_{i+1} - 1`` is sent with a fresh probe trained on the first ``t_i``
    examples::

        codelength = t_1 * log2(C) + sum_{i=1}^{S-1} sum_{j=t_i}^{t_{i+1}-1} -log2 p_i(y_j | x_j)

    The uniform codelength is ``N * log2(C)`` and ``compression = uniform / codelength``
    (1: the features tell nothing about the labels a linear probe can learn; larger is better).

Data order
    Examples are used in the order given: block ``i`` is ``features[:, t_{i-1}:t_i]``. The caller
    shuffles (with a recorded seed) before calling; sorted labels would make every prefix
    single-class and the codelength meaningless.

Probe for each prefix (differences from :mod:`probeft.probing.probe` are marked)
    The same multinomial logistic regression and optimiser as :func:`probeft.probing.probe.fit_probes`
    (:class:`probeft.probing.probe_lbfgs.BatchedLogReg`, preconditioned batched L-BFGS from zero, no seed),
    one batched fit over all ``P`` probes per prefix (``S - 1`` fits; the full set ``t_S = N`` is
    never trained on because no block follows it). The features are standardised ONCE with the mean
    and population std of all ``N`` examples (constant features keep scale 1): in the online code the
    receiver already has every input ``x`` and only the labels are transmitted, so statistics of the
    inputs leak nothing, while a tiny prefix's own std (2 examples!) blows near-constant features up
    and made single blocks cost thousands of bits.

    * L2 is FIXED instead of chosen on dev: the online code has no dev split, and choosing on the
      block being encoded would make the code undecodable. ``l2`` (default 1e-2, the strongest of
      SentEval's grid) is the ``probe.py`` strength on the FULL set, ``mean CE + (l2 / 2) ||.||^2``
      at ``N`` examples, i.e. the Gaussian prior ``sum CE + (l2 * N / 2) ||.||^2``. Every prefix
      uses that same prior, so the probe on ``t`` examples minimises
      ``mean CE + (l2 * N / t / 2) ||.||^2``: tiny prefixes are regularised strongly. With a strength
      fixed per example instead, 1-10 example prefixes fit their few labels almost perfectly and
      spend ~8 bits on each later mistake (measured at N = 400, D = 8, l2 = 1e-3: noise features
      compressed 0.77 instead of 0.90, separable ones 10.6x instead of 16x). The online code is
      sensitive to ``l2``: on the benchmark's demo-shaped features (P = 10, N = 600, D = 32, noisy
      linear teacher) 1e-2 gave every probe 0.15-0.3 more compression than 1e-3, while a strong
      prior caps what separable data can reach (8x instead of 16x at N = 1000). Compare
      codelengths only at equal ``l2`` and ``fractions``.
    * The bias is penalised too (``probe.py`` leaves it free). A prefix that lacks a class (always
      the case for a 1-example first block) would otherwise drive that class's bias to minus
      infinity, and the next block's cost would depend only on when L-BFGS stopped.

Preconditioner
    Every prefix fit starts L-BFGS from the same preconditioner as :mod:`probeft.probing.probe`, built
    from the eigendecomposition of the correlation matrix of ALL ``N`` standardised examples (one
    :class:`~probeft.probing.probe_lbfgs.Spectrum`, the one the probing stage's task and control fits
    already computed) with the prefix's strength ``l2 * N / t``, instead of one eigendecomposition per
    prefix. A random prefix's correlation matrix is close to the full one, and small prefixes are
    dominated by their strong ``l2``; it changes the optimiser's path, not the optimum, and saved
    10 of 11 ``eigh`` calls per task (70% of the MDL time at N = 8000).

L2 chosen per prefix on held-out data (``l2_grid`` with ``heldout``; off by default)
    Instead of one fixed prior, every prefix fits all strengths of ``l2_grid`` (:data:`HELDOUT_L2_GRID`,
    mean-CE strengths used as they are at the prefix's size: {1e-4, 1e-3, 1e-2, 1e-1, 1, 10}) in one batched
    fit and each probe encodes the next block with the strength whose probe has the lowest cross-entropy on
    held-out examples that are not transmitted (the probing stage passes the task's dev split, standardised
    with the train statistics), as Voita & Titov select their probes' settings on held-out data rather than
    on the labels being sent. The receiver does not have those held-out labels, so the choice is sent too:
    ``log2(G)`` bits per block after the first, included in the codelength.

Noise floor
    :func:`noise_floor` is the compression of Gaussian-noise features of the same ``(N, D)`` with the same
    labels, order and settings: what the procedure reports when the features carry nothing. It is above 1
    when the labels are unbalanced (the probe learns the prior) and below 1 when the prior is balanced and
    the probe over-fits noise (about 0.55 at N = 1000, D = 768, fixed l2 = 0.01): a compression is
    informative only by how far it lies above this floor, not above 1.

Batching
    All ``P`` probes share each prefix fit. Prefixes are not stacked into one fit: the probe code
    has no example weights, and masking would cost ``S / 2`` times the arithmetic of fitting the
    prefixes one after another (their sizes sum to about ``N``).

Imports from :mod:`probeft`: ``probe`` (input validation and standardisation),
``probe_lbfgs`` (the batched model and optimiser) and ``devices``. Nothing about models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from probeft.core.devices import resolve_device
from probeft.probing.probe import as_features, as_labels, standardise_features
from probeft.probing.probe_lbfgs import BatchedLogReg, Preconditioner, Spectrum, cpu_threads, lbfgs

__all__ = [
    "DEFAULT_FRACTIONS", "DEFAULT_L2", "HELDOUT_L2_GRID", "MDLResult", "block_ends", "mdl_rows", "noise_floor",
    "online_codelength", "standardised_codelength",
]

DEFAULT_FRACTIONS: tuple[float, ...] = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.0625, 0.125, 0.25, 0.5, 1.0)
DEFAULT_L2 = 1e-2
HELDOUT_L2_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
NOISE_SEED = 0  # seed of the Gaussian features of noise_floor

_SMALL_PROBLEM = 5e7  # C * N * D * P below which a prefix fit runs single-threaded (as in probe.py)


@dataclass
class MDLResult:
    """Online codelengths of ``P`` probes over one training set.

    Attributes:
        codelength_bits: ``(P,)`` online codelength in bits.
        uniform_bits: ``N * log2(C)``, the codelength of the uniform code.
        compression: ``(P,)`` ``uniform_bits / codelength_bits``.
        block_ends: ``(S,)`` block end indices ``t_1 < ... < t_S = N``.
        block_bits: ``(P, S)`` bits spent on each block; column 0 is ``t_1 * log2(C)`` for every
            probe; rows sum to ``codelength_bits``.
        num_classes: ``C``.
        l2: the L2 strength at the full set; the prefix of ``t`` examples used ``l2 * N / t``.
        n_iter: ``(P, S - 1)`` L-BFGS iterations of the probe trained on each prefix ``t_1..t_{S-1}``.
        converged: ``(P, S - 1)`` whether each of those fits met a stopping test (not ``max_iter``).
        chosen_l2: ``(P, S - 1)`` the strength each prefix's probe used when chosen on held-out data;
            None with a fixed ``l2``; with a grid ``l2`` is NaN.
    """

    codelength_bits: np.ndarray
    uniform_bits: float
    compression: np.ndarray
    block_ends: np.ndarray
    block_bits: np.ndarray
    num_classes: int
    l2: float
    n_iter: np.ndarray
    converged: np.ndarray
    chosen_l2: np.ndarray | None = None

    @property
    def codelength_kbits(self) -> np.ndarray:
        """``(P,)`` online codelength in kilobits (1 kbit = 1000 bits)."""
        return self.codelength_bits / 1000.0

    @property
    def uniform_kbits(self) -> float:
        """Uniform codelength in kilobits."""
        return self.uniform_bits / 1000.0


class _BiasPenalisedLogReg(BatchedLogReg):
    """:class:`BatchedLogReg` with the bias penalised by the same ``l2`` as the weights.

    Keeps the optimum finite when a prefix lacks a class (see the module docstring). The
    preconditioner's bias scale then is ``C`` instead of ``1 / (1/C + l2)``; that only changes the path.
    """

    def loss_and_grad(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the per-problem loss ``(P, G)`` (float64) and its gradient ``(P, G, C, D + 1)``."""
        loss, grad = super().loss_and_grad(theta)
        bias = theta[..., self.dim]  # (P, G, C)
        loss = loss + 0.5 * self.l2.view(1, -1) * bias.to(torch.float64).square().sum(dim=2)
        grad[..., self.dim] += self.l2.to(theta.dtype).view(1, -1, 1) * bias
        return loss, grad


def block_ends(n: int, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> np.ndarray:
    """Block end indices ``t_1 < ... < t_S = n`` of the online code.

    Args:
        n: number of training examples ``N``.
        fractions: increasing fractions of ``N`` in ``(0, 1]``, the last one 1.0.

    Returns:
        ``(S,)`` int64 ``t_i = max(1, floor(fraction_i * n))``, duplicates removed (small ``n``).

    Raises:
        ValueError: ``fractions`` not increasing in ``(0, 1]`` or not ending at 1.0; ``n`` too small
            for at least two blocks.
    """
    values = np.asarray(list(fractions), dtype=np.float64)
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"fractions must be a sequence of at least two numbers, got {list(fractions)}")
    if not (np.all(values > 0) and np.all(np.diff(values) > 0) and values[-1] == 1.0):
        raise ValueError(f"fractions must increase strictly within (0, 1] and end at 1.0, got {list(fractions)}")
    if n < 2:
        raise ValueError(f"n={n} examples is too small for an online code: need at least 2 (two blocks)")
    # The epsilon keeps e.g. 0.29 * 100 = 28.999... at 29.
    ends = np.maximum(1, np.floor(values * n + 1e-9).astype(np.int64))
    ends[-1] = n
    return np.unique(ends)


def _validate_labels(labels: torch.Tensor, num_classes: int | None, n: int) -> int:
    """Check label range; return ``C``."""
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise ValueError(f"labels has negative label {low}; labels must be 0..C-1")
    if num_classes is None:
        num_classes = high + 1
    elif high >= num_classes:
        raise ValueError(f"labels has label {high} but num_classes={num_classes} allows only 0..{num_classes - 1}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 for a probe, got {num_classes}")
    if n < num_classes:
        raise ValueError(f"N={n} examples is smaller than num_classes={num_classes}")
    return num_classes


def _fit_prefix(
    x_prefix: torch.Tensor,
    y_prefix: torch.Tensor,
    spectrum: Spectrum,
    l2: torch.Tensor,
    num_classes: int,
    *,
    max_iter: int,
    tol: float,
    ftol: float,
    history_size: int,
) -> tuple[_BiasPenalisedLogReg, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fit all ``P`` probes on one standardised prefix ``(P, t, D)``; return model, theta, n_iter, converged."""
    num_probes, _, dim = x_prefix.shape
    problem = _BiasPenalisedLogReg(x_prefix, y_prefix, l2, num_classes)
    preconditioner = Preconditioner(spectrum, l2, num_classes)
    theta = torch.zeros(num_probes, l2.shape[0], num_classes, dim + 1, dtype=torch.float32, device=x_prefix.device)
    theta, n_iter, converged = lbfgs(
        problem, preconditioner, theta, max_iter=max_iter, tol=tol, ftol=ftol, history_size=history_size
    )
    return problem, theta, n_iter, converged


def online_codelength(
    features: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor | Sequence[int],
    *,
    num_classes: int | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    l2: float = DEFAULT_L2,
    max_iter: int = 1000,
    tol: float = 1e-5,
    ftol: float = 1e-12,
    history_size: int = 10,
    device: str | torch.device = "cpu",
    num_threads: int | None = None,
) -> MDLResult:
    """Online (prequential) codelength of ``labels`` given each of ``P`` feature stacks.

    Args:
        features: ``(P, N, D)`` features, ``P`` probes (e.g. layers x poolings) stacked, examples in
            the order the code uses them (shuffle beforehand).
        labels: ``(N,)`` integer labels ``0..C-1``.
        num_classes: ``C``; None: ``max(labels) + 1``. Give it when a class may be absent from the set.
        fractions: block ends as fractions of ``N`` (see :func:`block_ends`); default Voita & Titov's.
        l2: L2 strength (weights and bias) as ``mean CE + (l2/2)||.||^2`` on all ``N`` examples; the
            probe on a prefix of ``t`` examples uses ``l2 * N / t`` (the same prior; module docstring).
        max_iter: L-BFGS iteration cap per probe and prefix.
        tol: stop a fit once ``max |gradient| <= tol``.
        ftol: stop a fit once its loss decreases by less than ``ftol * max(|loss|, 1)``.
        history_size: number of L-BFGS correction pairs kept.
        device: where to fit ("cpu", "cuda", "auto", ...; :func:`probeft.core.devices.resolve_device`);
            the features are moved there whole (``P * N * D`` float32).
        num_threads: CPU threads per prefix fit. None: torch's setting, except 1 thread for small
            prefixes (``C * t * D * P < 5e7``), as in :func:`probeft.probing.probe.fit_probes`.

    Returns:
        :class:`MDLResult` with per-probe codelengths, the uniform codelength and per-block bits.

    Raises:
        ValueError: features not ``(P, N, D)`` floats or not finite; labels not ``(N,)`` integers in
            ``0..C-1``; ``C < 2``; ``N < C``; bad ``fractions`` or too few examples for two blocks;
            non-positive ``l2``; bad optimiser settings.
    """
    _check_settings(l2, max_iter, tol, history_size)
    target = resolve_device(device)
    checked = as_features(features, "features")  # errors name "features"
    standardised = standardise_features({"train": checked}, device=target)  # statistics of all inputs
    x = standardised.train
    y = as_labels(labels, "labels", x.shape[1])
    num_classes = _validate_labels(y, num_classes, x.shape[1])
    threads = num_threads
    if threads is None and num_classes * x.shape[1] * x.shape[2] * x.shape[0] < _SMALL_PROBLEM:
        threads = 1
    with torch.no_grad(), cpu_threads(threads if target.type == "cpu" else None):
        spectrum = standardised.spectrum()
    return standardised_codelength(
        x, y, spectrum, num_classes=num_classes, fractions=fractions, l2=l2, max_iter=max_iter, tol=tol, ftol=ftol,
        history_size=history_size, num_threads=num_threads,
    )


def _check_settings(l2: float, max_iter: int, tol: float, history_size: int) -> None:
    if not (isinstance(l2, (int, float)) and math.isfinite(l2) and l2 > 0):
        raise ValueError(f"l2 must be a positive finite number, got {l2!r}")
    if max_iter < 1 or tol <= 0 or history_size < 1:
        raise ValueError(f"need max_iter >= 1, tol > 0, history_size >= 1; got {max_iter}, {tol}, {history_size}")


def standardised_codelength(
    x: torch.Tensor,
    labels: np.ndarray | torch.Tensor | Sequence[int],
    spectrum: Spectrum,
    *,
    num_classes: int | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    l2: float = DEFAULT_L2,
    max_iter: int = 1000,
    tol: float = 1e-5,
    ftol: float = 1e-12,
    history_size: int = 10,
    num_threads: int | None = None,
    l2_grid: Sequence[float] | None = None,
    heldout: tuple[torch.Tensor, np.ndarray | torch.Tensor] | None = None,
) -> MDLResult:
    """:func:`online_codelength` of features standardised beforehand, with their spectrum given.

    The prefixes are slices of ``x`` (no copies); the caller puts the examples in code order (the
    probing stage permutes its standardised train features in place, probe by probe).

    Args:
        x: ``(P, N, D)`` float32 features standardised with the statistics of all ``N`` examples, in the
            order the code uses them, on the device the probes train on.
        labels: ``(N,)`` integer labels in the same order.
        spectrum: :class:`~probeft.probing.probe_lbfgs.Spectrum` of ``x`` (of any order of its examples).
        num_classes, fractions, l2, max_iter, tol, ftol, history_size, num_threads: as in :func:`online_codelength`.
        l2_grid: strengths to choose from per prefix and probe (module docstring); None: the fixed ``l2``.
        heldout: ``((P, N_h, D) features standardised like x, (N_h,) labels)`` that choose the strength;
            required with ``l2_grid``.

    Returns:
        :class:`MDLResult`.
    """
    _check_settings(l2, max_iter, tol, history_size)
    if (l2_grid is None) != (heldout is None):
        raise ValueError("l2_grid and heldout go together: the grid's strengths are chosen on the held-out examples")
    grid = None if l2_grid is None else np.asarray(list(l2_grid), dtype=np.float64)
    if grid is not None and (grid.ndim != 1 or grid.size == 0 or not np.all(grid > 0)):
        raise ValueError(f"l2_grid must be a non-empty sequence of positive numbers, got {list(l2_grid)}")
    num_probes, n, _ = x.shape
    target = x.device
    y = as_labels(labels, "labels", n).to(target)
    num_classes = _validate_labels(y, num_classes, n)
    ends = block_ends(n, fractions)
    num_blocks = ends.size

    block_bits = np.zeros((num_probes, num_blocks), dtype=np.float64)
    block_bits[:, 0] = ends[0] * math.log2(num_classes)
    n_iter = np.zeros((num_probes, num_blocks - 1), dtype=np.int64)
    converged = np.zeros((num_probes, num_blocks - 1), dtype=bool)
    chosen = None if grid is None else np.zeros((num_probes, num_blocks - 1), dtype=np.float64)
    if heldout is not None:
        heldout_x = heldout[0]
        heldout_y = as_labels(heldout[1], "heldout labels", heldout_x.shape[1]).to(target)
        if heldout_x.shape[0] != num_probes or heldout_x.shape[2] != x.shape[2]:
            raise ValueError(f"heldout features have shape {tuple(heldout_x.shape)}, x has {tuple(x.shape)}: P and D must match")
        if int(heldout_y.max()) >= num_classes or int(heldout_y.min()) < 0:
            raise ValueError(f"heldout labels must be in 0..{num_classes - 1}")

    with torch.no_grad():
        for block in range(1, num_blocks):
            start, stop = int(ends[block - 1]), int(ends[block])
            threads = num_threads
            if threads is None and num_classes * start * x.shape[2] * num_probes < _SMALL_PROBLEM:
                threads = 1
            with cpu_threads(threads if target.type == "cpu" else None):
                if grid is None:
                    # The same prior for every prefix: sum CE + (l2 * N / 2) ||.||^2, i.e. mean-CE strength l2 * N / t.
                    l2_tensor = torch.tensor([float(l2) * n / start], dtype=torch.float64, device=target)
                else:
                    l2_tensor = torch.as_tensor(grid, dtype=torch.float64, device=target)
                problem, theta, iters, done = _fit_prefix(
                    x[:, :start], y[:start], spectrum, l2_tensor, num_classes,
                    max_iter=max_iter, tol=tol, ftol=ftol, history_size=history_size,
                )
                pick = torch.zeros(num_probes, dtype=torch.int64, device=target)
                if grid is not None:
                    # Lowest held-out cross-entropy per probe; ties go to the stronger strength.
                    held = torch.log_softmax(problem.logits(theta, heldout_x).to(torch.float64), dim=2)  # (P, G, C, N_h)
                    index_h = heldout_y.view(1, 1, 1, -1).expand(num_probes, grid.size, 1, -1)
                    heldout_ce = -held.gather(2, index_h).squeeze(2).mean(dim=2)  # (P, G)
                    order = torch.as_tensor(np.argsort(-grid, kind="stable"), device=target)
                    pick = order[heldout_ce[:, order].argmin(dim=1)]
                    chosen[:, block - 1] = grid[pick.cpu().numpy()]
                    theta = theta[torch.arange(num_probes, device=target), pick].unsqueeze(1)
                    iters = iters.gather(1, pick.view(-1, 1))
                    done = done.gather(1, pick.view(-1, 1))
                # float64 log-softmax: a confident wrong prediction costs many bits; keep them exact.
                logits = problem.logits(theta, x[:, start:stop])[:, 0].to(torch.float64)  # (P, C, n_block)
                log_probs = torch.log_softmax(logits, dim=1)
                index = y[start:stop].view(1, 1, -1).expand(num_probes, 1, -1)
                nats = -log_probs.gather(1, index).squeeze(1).sum(dim=1)  # (P,)
            block_bits[:, block] = nats.cpu().numpy() / math.log(2.0) + (0.0 if grid is None else math.log2(grid.size))
            n_iter[:, block - 1] = iters[:, 0].cpu().numpy()
            converged[:, block - 1] = done[:, 0].cpu().numpy()

    codelength = block_bits.sum(axis=1)
    uniform = n * math.log2(num_classes)
    return MDLResult(
        codelength_bits=codelength,
        uniform_bits=uniform,
        compression=uniform / codelength,
        block_ends=ends,
        block_bits=block_bits,
        num_classes=num_classes,
        l2=float(l2) if grid is None else float("nan"),
        n_iter=n_iter,
        converged=converged,
        chosen_l2=chosen,
    )


def noise_floor(
    n: int,
    dim: int,
    labels: np.ndarray | torch.Tensor | Sequence[int],
    *,
    num_classes: int | None = None,
    seed: int = NOISE_SEED,
    device: str | torch.device = "cpu",
    heldout_size: int | None = None,
    **settings: object,
) -> float:
    """Compression of Gaussian-noise features of shape ``(1, n, dim)`` with ``labels``: the procedure's floor.

    The same code (labels in the order given, ``fractions``, ``l2`` or ``l2_grid``) as the probes it is shown
    beside (module docstring); the noise is ``numpy.random.default_rng(seed).standard_normal`` in float32,
    standardised like real features.

    Args:
        n: number of examples ``N`` (``len(labels)``).
        dim: feature width ``D``.
        labels: ``(N,)`` the labels the real probes encoded, in their order.
        num_classes: ``C`` (None: ``max(labels) + 1``).
        seed: the noise's seed.
        device: where the probe trains.
        heldout_size: with ``l2_grid`` in ``settings``: the number of held-out noise examples, whose labels are
            drawn from the train labels' prior (seed ``[seed, 1]``).
        **settings: ``fractions``, ``l2``, ``l2_grid``, ``max_iter``, ``tol`` ... of :func:`standardised_codelength`.

    Returns:
        The compression (uniform / online codelength) of pure noise.
    """
    target = resolve_device(device)
    y = np.asarray(labels).astype(np.int64)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape (n,) = ({n},), got {y.shape}")
    rng = np.random.default_rng(seed)
    splits: dict[str, np.ndarray] = {"train": rng.standard_normal((1, n, dim), dtype=np.float32)}
    heldout = None
    if settings.get("l2_grid") is not None:
        size = heldout_size or max(num_classes or int(y.max()) + 1, n // 10)
        held_rng = np.random.default_rng([seed, 1])
        splits["dev"] = held_rng.standard_normal((1, size, dim), dtype=np.float32)
        prior = np.bincount(y, minlength=num_classes or 0) / n
        heldout_labels = held_rng.choice(prior.size, size=size, p=prior)
    standardised = standardise_features(splits, device=target, in_place=True)
    if "dev" in standardised.splits:
        heldout = (standardised.splits["dev"], heldout_labels)
    with torch.no_grad():
        spectrum = standardised.spectrum()
    result = standardised_codelength(standardised.train, y, spectrum, num_classes=num_classes, heldout=heldout,
                                     **settings)  # type: ignore[arg-type]
    return float(result.compression[0])


def mdl_rows(result: MDLResult, probe_labels: Sequence[tuple[int, str]]) -> list[dict[str, object]]:
    """Tidy result-table rows: codelength (kbits) and compression per probe.

    Args:
        result: output of :func:`online_codelength` for ``P`` probes.
        probe_labels: ``P`` pairs ``(layer, pooling)`` naming the probes in ``features`` order
            (e.g. what built the ``(P, N, D)`` stack).

    Returns:
        ``2 * P`` dicts ``{"layer", "pooling", "metric", "value"}`` with metric
        ``"codelength_kbits"`` then ``"compression"`` for each probe in order.

    Raises:
        ValueError: ``probe_labels`` does not have one ``(layer, pooling)`` pair per probe.
    """
    num_probes = result.codelength_bits.shape[0]
    labels = list(probe_labels)
    if len(labels) != num_probes:
        raise ValueError(f"probe_labels has {len(labels)} entries but the result has P={num_probes} probes")
    rows: list[dict[str, object]] = []
    for index, label in enumerate(labels):
        if not (isinstance(label, (tuple, list)) and len(label) == 2):
            raise ValueError(f"probe_labels[{index}] must be a (layer, pooling) pair, got {label!r}")
        layer, pooling = label
        rows.append({"layer": int(layer), "pooling": str(pooling), "metric": "codelength_kbits",
                     "value": float(result.codelength_kbits[index])})
        rows.append({"layer": int(layer), "pooling": str(pooling), "metric": "compression",
                     "value": float(result.compression[index])})
    return rows
