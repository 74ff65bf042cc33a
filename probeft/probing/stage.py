"""The probing stage: probing data -> cached features -> batched probes -> tidy result rows.

This is what ``notebooks/probing.ipynb`` runs for one encoder (pre-trained, or a fine-tuned
checkpoint) and a list of SentEval-format probing tasks (paper Sec. 3.2, 4.1, 4.2).

Every test-accuracy row carries a 95% percentile-bootstrap interval over the test sentences
(``ci_low``, ``ci_high``; :func:`probeft.verdicts.uncertainty.bootstrap_accuracy_ci`, 1000 resamples, seed
0); the per-sentence correctness behind it is returned by :func:`run_probing` for the cell's
``probe_predictions.npz`` (:mod:`probeft.results.predictions`).

Two more measurements reuse the task's features (no second forward pass), both on by default:

* **Control task and selectivity** (Hewitt & Liang 2019; :mod:`probeft.probing.control`): the same probes
  are fitted on :func:`probeft.probing.control.control_task` labels of the same sentences (word type of the
  last word -> a fixed random class; seed ``control_seed``), giving rows ``metric="control_accuracy"``
  (every split, with the control probe's own ``l2`` and, on test, its bootstrap interval) and
  ``metric="selectivity"`` = accuracy - control accuracy per pooling, layer and split (no ``l2``;
  on test a 95% paired-bootstrap interval over the test sentences, the same resamples as the
  accuracy intervals). Both carry ``control_seed`` and ``control_position``; ``probe_task`` is the real task.
  With ``control_seeds`` the control is fitted once per seed (rows per ``control_seed``). After them come
  the majority-rate rows (:func:`majority_gain_rows`): ``majority_rate`` / ``control_majority_rate`` (the
  train majority class's rate per split) and per probe ``control_gain`` (control accuracy minus the control
  labels' majority rate) and ``selectivity_gain`` (the task accuracy's gain over its majority rate minus
  the control gain): selectivity against each label set's own constant baseline rather than 1/C.
* **Random-label control** (off by default, ``random_control``): every sentence gets its own random label
  from the train prior (:func:`probeft.probing.control.random_labels`); rows ``random_label_accuracy``
  (per split) and ``random_label_capacity`` (train accuracy at the weakest L2): the probe's capacity
  to memorise sentences, which informs every task alike.
* **MDL** (Voita & Titov 2020; :mod:`probeft.probing.mdl`): the online codelength of the train-split labels
  given each probe's train features, the train examples shuffled once by
  ``numpy.random.default_rng(mdl_seed).permutation`` (default seed :data:`MDL_SHUFFLE_SEED`; the same
  order for every probe of the task). Rows ``split="train"``, ``metric="codelength_kbits"`` and
  ``"compression"`` (uniform / online) per pooling and layer, with ``l2`` = the online code's fixed
  strength (:data:`probeft.probing.mdl.DEFAULT_L2`), and ONE ``metric="uniform_kbits"`` row per task
  (``layer=-1``, ``pooling="none"``: the uniform code does not depend on the probe), and ONE
  ``metric="compression_noise_floor"`` row per task: the compression the same procedure gives Gaussian
  noise features of the task's ``(N, D)`` with its labels (:func:`probeft.probing.mdl.noise_floor`; one
  more probe's MDL per task, computed afresh in each cell). With ``mdl_l2="dev"`` the strength is chosen per
  prefix on the dev split instead (``mdl_l2="dev"`` column, no ``l2``). All carry ``mdl_seed``.

Probe refits, off by default (``refits=0``): with ``refits=R > 0`` the task's probes are fitted again ``R``
times, each on a bootstrap resample of the train sentences (drawn from ``numpy.random.default_rng(
[REFIT_SEED, r])``, the same resamples in every cell of a run), as the train examples' weights (how often each
was drawn; :func:`probeft.probing.probe.fit_standardised` with ``sample_weight``: no copy of the features), L2
chosen on dev as for the full fit. Only their test correctness is kept (:attr:`TaskPredictions.refits
<probeft.results.predictions.TaskPredictions>`, bits in ``probe_predictions.npz``); no row changes. The
Delta intervals resample them (:func:`probeft.verdicts.uncertainty.hierarchical_bootstrap_delta`). Cost: ``R``
more fits of the task's probes.

One more, off by default, compares two encoders' features instead of probing them:

* **CKA to the pre-trained encoder** (Kornblith et al. 2019; :mod:`probeft.verdicts.similarity`): with
  ``cka_reference`` (the model spec of the pre-trained encoder a fine-tuned checkpoint came from),
  the reference encoder's features of the same task data are extracted with the same settings and
  the same ``cache_dir`` (so in a grid, where the pre-trained probing cell ran first, they are a
  feature-cache hit and no forward pass happens; the reference encoder is loaded only on a miss),
  and linear CKA between reference and probed features of the TEST sentences is recorded per
  pooling and layer: rows ``split="test"``, ``metric="cka"`` (no ``l2``, no interval). A layer on
  which either encoder's test features are the same vector for every sentence (e.g. the CLS
  embedding at layer 0 of a BERT) has no CKA (0/0) and gets no row.

Memory: the features are read memory-mapped from the cache, copied once into one float32 ``(P, N, D)``
tensor per split and standardised in place; the task, control and MDL fits share that copy and one
eigendecomposition of the train correlation matrices (:class:`probeft.probing.probe.StandardisedFeatures`).
MDL shuffles the standardised train examples in place and puts them back. A paper-size task (100k / 10k /
10k sentences, 26 probes of width 768) peaks at about the features' float32 size plus the fits' buffers.

Which probe. Every probe row carries ``probe``: ``"linear"`` (:mod:`probeft.probing.probe`, the paper's,
always the default) or ``"mlp"`` (:mod:`probeft.probing.probe_mlp`, one sigmoid hidden layer, seed ``mlp_seed``;
its rows also carry ``mlp_hidden``, ``mlp_dropout`` and ``mlp_seed``, and ``l2`` holds its chosen weight decay,
which means the same as the linear probe's L2). With ``probes=("linear", "mlp")`` both are fitted on the same
standardised features, each with its own control probes and selectivity rows. MDL is the linear probe's only
(rows ``probe="linear"``); CKA rows compare features, not probes (``probe="none"``). The per-sentence test
correctness (``probe_predictions.npz``, which the Delta intervals and claims read) is the linear probe's; a run
with the MLP alone saves the MLP's.

Rows of metric ``"accuracy"`` are the same with these options on or off, and the rows of every
other metric are the same with or without ``cka_reference``. The linear rows are the same with or without
the MLP.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from probeft import data, results
from probeft.core import oom
from probeft.core.devices import resolve_device
from probeft.core.names import POOLINGS
from probeft.probing import control as control_tasks
from probeft.probing import extract, probe, probe_mlp
from probeft.probing import mdl as mdl_code
from probeft.results import predictions
from probeft.verdicts import similarity, uncertainty

CI_RESAMPLES = 1000
CI_CONFIDENCE = 0.95
CI_SEED = 0
MDL_SHUFFLE_SEED = 0
CONTROL_POSITION = "last"
REFIT_SEED = 0
PROBES: tuple[str, ...] = ("linear", "mlp")  # the probe kinds: probeft.probing.probe, probeft.probing.probe_mlp


@dataclass
class ProbingRun:
    """What :func:`run_probing` returns.

    Attributes:
        rows: the probing-stage rows (see :func:`probe_encoder`).
        predictions: per task, the probes' test correctness (for :func:`probeft.results.predictions.save_predictions`).
        batch_retries: out-of-memory halvings of the extraction batch (:mod:`probeft.core.oom`), for the provenance.
        extraction_dtype: the dtype extraction ran in (``float32`` on CPU whatever was asked), for the provenance.
        cache_dtype: the storage dtype of the features the probes read.
    """

    rows: pd.DataFrame
    predictions: list[predictions.TaskPredictions]
    batch_retries: list[oom.BatchRetry] = field(default_factory=list)
    extraction_dtype: str = "float32"
    cache_dtype: str = "float32"


def _standardised_probes(
    features: dict[str, dict[str, np.ndarray]],
    poolings: Sequence[str],
    device: torch.device,
) -> tuple[probe.StandardisedFeatures, list[tuple[str, int]]]:
    """Split -> pooling -> ``(L + 1, N_split, D)`` features -> standardised ``(P, N_split, D)`` probes, held once.

    Each split is copied layer by layer into one float32 tensor and standardised in place; the train and dev
    entries of ``features`` (the caller's own dict) are removed as they are copied, so a memory-mapped cache
    file is unmapped once read. The test split stays (CKA reads it).
    """
    stacked, index = {}, None
    for split in extract.SPLITS:
        parts = features[split] if split == "test" else features.pop(split)
        stacked[split], index = extract.stack_probes_float32(parts, poolings=poolings, release=split != "test")
    standardised = probe.standardise_features(stacked, device=device, in_place=True)
    return standardised, [(str(p), int(layer)) for p, layer in index]


def _fit_rows(
    standardised: probe.StandardisedFeatures,
    index: list[tuple[str, int]],
    labels: dict[str, np.ndarray],
    *,
    metric: str = "accuracy",
    kind: str = "linear",
    mlp_seed: int = 0,
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Rows (see :func:`probe_task_rows`, named ``metric``) and ``(P, N_test)`` correctness of standardised probes.

    ``kind`` picks the probe (``"linear"`` or ``"mlp"``, see the module docstring); every row carries it as ``probe``.
    """
    settings: list[dict[str, Any]]
    if kind == "linear":
        fitted = probe.fit_standardised(standardised, labels)
        settings = [{"l2": float(l2)} for l2 in fitted.l2]
    elif kind == "mlp":
        fitted = probe_mlp.fit_mlp_standardised(standardised, labels, seed=mlp_seed)
        settings = [{"l2": float(decay), "mlp_hidden": int(hidden), "mlp_dropout": float(dropout), "mlp_seed": mlp_seed}
                    for decay, hidden, dropout in zip(fitted.weight_decay, fitted.hidden, fitted.dropout)]
    else:
        raise ValueError(f"unknown probe {kind!r}; expected one of {PROBES}")
    accuracy = {"train": fitted.train_acc, "dev": fitted.dev_acc, "test": fitted.test_acc}
    low, high = uncertainty.bootstrap_accuracy_ci(
        fitted.test_correct, resamples=CI_RESAMPLES, confidence=CI_CONFIDENCE, seed=CI_SEED
    )
    rows = []
    for i, (pooling, layer) in enumerate(index):
        for split in extract.SPLITS:
            row = {"pooling": pooling, "layer": layer, "split": split, "metric": metric,
                   "value": float(accuracy[split][i]), **settings[i], "probe": kind}
            if split == "test":
                row |= {"ci_low": float(low[i]), "ci_high": float(high[i])}
            rows.append(row)
    return rows, fitted.test_correct


def _fit_task(
    features: dict[str, dict[str, np.ndarray]],
    labels: dict[str, np.ndarray],
    *,
    poolings: Sequence[str],
    device: str | torch.device,
) -> tuple[list[dict[str, Any]], list[tuple[str, int]], np.ndarray]:
    """Rows (see :func:`probe_task_rows`), the ``(pooling, layer)`` order and ``(P, N_test)`` correctness."""
    standardised, index = _standardised_probes({split: dict(parts) for split, parts in features.items()}, poolings,
                                               resolve_device(device))
    rows, correct = _fit_rows(standardised, index, labels)
    return rows, index, correct


def refit_correct(
    standardised: probe.StandardisedFeatures,
    labels: dict[str, np.ndarray],
    refits: int,
    *,
    seed: int = REFIT_SEED,
) -> np.ndarray:
    """Test correctness of the probes refitted on ``refits`` bootstrap resamples of the train sentences.

    Args:
        standardised: the task's standardised features (shared with the full fit; not changed).
        labels: split -> ``(N_split,)`` labels.
        refits: number of refits ``R`` (>= 1).
        seed: resample ``r`` draws its ``N_train`` indices from ``numpy.random.default_rng([seed, r])``.

    Returns:
        ``(R, P, N_test)`` bool.
    """
    if refits < 1:
        raise ValueError(f"refits must be >= 1, got {refits}")
    num_train = len(labels["train"])
    out = []
    for r in range(refits):
        drawn = np.random.default_rng([seed, r]).integers(0, num_train, num_train)
        counts = np.bincount(drawn, minlength=num_train)
        out.append(probe.fit_standardised(standardised, labels, sample_weight=counts).test_correct)
    return np.stack(out)


def majority_gain_rows(
    task_rows: Sequence[dict[str, Any]],
    control_rows: Sequence[dict[str, Any]],
    labels: dict[str, np.ndarray],
    control_labels: dict[str, np.ndarray],
) -> list[dict[str, Any]]:
    """Rows measuring the task and control probes against their own labels' majority rate.

    Returns:
        ``majority_rate`` and ``control_majority_rate`` rows per split (``layer=-1``, ``pooling="none"``: the
        rate of the train majority class, :func:`probeft.probing.control.majority_rates`), then per probe and
        split ``control_gain`` = control accuracy - control majority rate and ``selectivity_gain`` =
        (accuracy - majority rate) - control gain (fractions; no ``l2``, no interval).
    """
    task_majority = control_tasks.majority_rates(labels)
    control_majority = control_tasks.majority_rates(control_labels)
    rows = [{"pooling": "none", "layer": -1, "split": split, "metric": metric, "value": rates[split]}
            for metric, rates in (("majority_rate", task_majority), ("control_majority_rate", control_majority))
            for split in extract.SPLITS]
    key = lambda row: (row["pooling"], row["layer"], row["split"])  # noqa: E731
    control = {key(row): float(row["value"]) for row in control_rows}
    for row in task_rows:
        split = row["split"]
        control_gain = control[key(row)] - control_majority[split]
        base = {"pooling": row["pooling"], "layer": row["layer"], "split": split}
        rows.append({**base, "metric": "control_gain", "value": control_gain})
        rows.append({**base, "metric": "selectivity_gain",
                     "value": float(row["value"]) - task_majority[split] - control_gain})
    return rows


def random_label_rows(
    standardised: probe.StandardisedFeatures,
    index: Sequence[tuple[str, int]],
    labels: dict[str, np.ndarray],
    *,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The per-sentence random-label control (:func:`probeft.probing.control.random_labels`).

    Returns:
        ``random_label_accuracy`` rows per probe and split at the L2 chosen on (random) dev labels, and
        ``random_label_capacity`` rows (``split="train"``): train accuracy at the weakest L2 of the grid, what
        the probe memorises when barely held back. All carry ``l2`` and ``control_seed``.
    """
    drawn = control_tasks.random_labels(labels, seed=seed)
    fitted = probe.fit_standardised(standardised, drawn)
    weakest = int(np.argmin(fitted.l2_grid))
    accuracy = {"train": fitted.train_acc, "dev": fitted.dev_acc, "test": fitted.test_acc}
    rows = []
    for i, (pooling, layer) in enumerate(index):
        for split in extract.SPLITS:
            rows.append({"pooling": pooling, "layer": layer, "split": split, "metric": "random_label_accuracy",
                         "value": float(accuracy[split][i]), "l2": float(fitted.l2[i]), "control_seed": seed})
        rows.append({"pooling": pooling, "layer": layer, "split": "train", "metric": "random_label_capacity",
                     "value": float(fitted.grid_train_acc[i, weakest]), "l2": float(fitted.l2_grid[weakest]),
                     "control_seed": seed})
    return rows


def selectivity_rows(
    task_rows: Sequence[dict[str, Any]],
    control_rows: Sequence[dict[str, Any]],
    test_intervals: uncertainty.DeltaInterval | None = None,
    index: Sequence[tuple[str, int]] = (),
) -> list[dict[str, Any]]:
    """``metric="selectivity"`` rows: task accuracy minus control accuracy per pooling, layer and split.

    Args:
        task_rows: ``metric="accuracy"`` rows of :func:`probe_task_rows`.
        control_rows: the rows of the same probes fitted on the control labels.
        test_intervals: paired-bootstrap intervals of the test selectivity, ``(P,)`` fields in the
            order of ``index`` (:func:`probeft.verdicts.uncertainty.paired_bootstrap_delta` of the control
            probes' and the task probes' test correctness); None: no interval columns.
        index: the ``(pooling, layer)`` of each entry of ``test_intervals``.

    Raises:
        ValueError: the two sets of rows do not cover the same (pooling, layer, split) keys.
    """
    key = lambda row: (row["pooling"], row["layer"], row["split"])  # noqa: E731
    control = {key(row): row["value"] for row in control_rows}
    if set(control) != {key(row) for row in task_rows}:
        raise ValueError("task and control rows do not cover the same (pooling, layer, split) probes")
    position = {probe: i for i, probe in enumerate(index)}
    rows = []
    for row in task_rows:
        out = {"pooling": row["pooling"], "layer": row["layer"], "split": row["split"], "metric": "selectivity",
               "value": float(row["value"]) - float(control[key(row)])}
        if "probe" in row:
            out["probe"] = row["probe"]
        if test_intervals is not None and row["split"] == "test":
            i = position[(row["pooling"], row["layer"])]
            out |= {"ci_low": float(test_intervals.low[i]), "ci_high": float(test_intervals.high[i])}
        rows.append(out)
    return rows


def mdl_task_rows(
    train: np.ndarray | torch.Tensor | probe.StandardisedFeatures,
    labels: np.ndarray,
    index: Sequence[tuple[str, int]],
    *,
    num_classes: int,
    seed: int = MDL_SHUFFLE_SEED,
    device: str | torch.device = "cpu",
    l2_choice: str = "fixed",
    heldout_labels: np.ndarray | None = None,
    noise: bool = True,
) -> list[dict[str, Any]]:
    """MDL rows of one task from its stacked train features (see the module docstring).

    The features are standardised with the statistics of all train examples (the task fit's), the examples
    shuffled once by ``seed`` and the online code run on prefixes of that order, reusing the features'
    spectrum (:func:`probeft.probing.mdl.standardised_codelength`).

    Args:
        train: ``(P, N, D)`` train features of the probes ``index`` (``(pooling, layer)`` pairs), or the
            task's :class:`~probeft.probing.probe.StandardisedFeatures` (then shuffled in place, probe by probe,
            and put back afterwards: no copy of the features).
        labels: ``(N,)`` train labels.
        num_classes: the task's number of classes.
        seed: the seed of the one shuffle of the train examples.
        device: where the online-code probes train (for raw features; standardised ones stay where they are).
        l2_choice: ``"fixed"`` (:data:`probeft.probing.mdl.DEFAULT_L2` as the prior of every prefix) or ``"dev"``
            (per prefix and probe from :data:`probeft.probing.mdl.HELDOUT_L2_GRID` on the held-out ``"dev"``
            features of ``train``, which must then be :class:`~probeft.probing.probe.StandardisedFeatures`
            holding them, with ``heldout_labels``).
        heldout_labels: ``(N_dev,)`` labels of the held-out features, for ``l2_choice="dev"``.
        noise: also add the noise floor row (:func:`probeft.probing.mdl.noise_floor` at this task's ``(N, D)``,
            labels, order and ``l2_choice``).

    Returns:
        ``codelength_kbits`` and ``compression`` rows per probe (``l2`` = the code's fixed strength; absent with
        ``l2_choice="dev"``), one ``uniform_kbits`` row and one ``compression_noise_floor`` row (``layer=-1``,
        ``pooling="none"``), all ``split="train"``; with ``l2_choice="dev"`` every row has ``mdl_l2="dev"``.
    """
    if l2_choice not in ("fixed", "dev"):
        raise ValueError(f'l2_choice must be "fixed" or "dev", got {l2_choice!r}')
    if not isinstance(train, probe.StandardisedFeatures):
        train = probe.standardise_features({"train": train}, device=device)
    settings: dict[str, Any] = {}
    if l2_choice == "dev":
        if "dev" not in train.splits or heldout_labels is None:
            raise ValueError('l2_choice="dev" needs standardised dev features and heldout_labels')
        settings = {"l2_grid": mdl_code.HELDOUT_L2_GRID}
    x = train.train
    order = np.random.default_rng(seed).permutation(len(labels))
    forward = torch.as_tensor(order, device=x.device)
    spectrum = train.spectrum()
    shuffled = np.asarray(labels)[order]
    heldout = None if l2_choice == "fixed" else (train.splits["dev"], heldout_labels)
    _permute_examples(x, forward)
    try:
        result = mdl_code.standardised_codelength(x, shuffled, spectrum, num_classes=num_classes, heldout=heldout,
                                                  **settings)
    finally:
        _permute_examples(x, torch.argsort(forward))
    extra = {"l2": result.l2} if l2_choice == "fixed" else {"mdl_l2": "dev"}
    rows = [{**row, "split": "train", **extra, "probe": "linear"}
            for row in mdl_code.mdl_rows(result, [(layer, pooling) for pooling, layer in index])]
    rows.append({"layer": -1, "pooling": "none", "split": "train", "metric": "uniform_kbits",
                 "value": float(result.uniform_kbits), **({} if l2_choice == "fixed" else extra), "probe": "linear"})
    if noise:
        floor = mdl_code.noise_floor(x.shape[1], x.shape[2], shuffled, num_classes=num_classes, device=x.device,
                                     heldout_size=None if heldout is None else int(heldout[0].shape[1]), **settings)
        rows.append({"layer": -1, "pooling": "none", "split": "train", "metric": "compression_noise_floor",
                     "value": floor, **extra, "probe": "linear"})
    return rows


def _permute_examples(x: torch.Tensor, order: torch.Tensor) -> None:
    """Reorder the examples (axis 1) of ``(P, N, D)`` in place, one probe at a time (an ``(N, D)`` temporary)."""
    for p in range(x.shape[0]):
        x[p] = x[p].index_select(0, order)


def cka_rows(
    reference: dict[str, np.ndarray],
    probed: dict[str, np.ndarray],
    *,
    device: str | torch.device = "cpu",
) -> list[dict[str, Any]]:
    """Linear CKA rows between two encoders' features of the same sentences, per pooling and layer.

    Args:
        reference: pooling -> ``(L + 1, N, D)`` features of the reference (pre-trained) encoder.
        probed: the same poolings -> ``(L + 1, N, D)`` features of the probed encoder, same sentences.
        device: where CKA is computed (float64 on every device).

    Returns:
        ``{"pooling", "layer", "metric": "cka", "value"}`` rows (:func:`probeft.verdicts.similarity.linear_cka_layers`),
        poolings in ``reference``'s order, layers ascending; a layer on which either side is constant
        over the sentences (CKA 0/0) is left out.

    Raises:
        ValueError: different poolings or shapes (the message names them), or NaN/inf features.
    """
    if set(reference) != set(probed):
        raise ValueError(f"reference and probed features hold different poolings: {sorted(reference)} vs {sorted(probed)}")
    rows: list[dict[str, Any]] = []
    for pooling in reference:
        ref, own = reference[pooling], probed[pooling]
        if ref.shape != own.shape:
            raise ValueError(f"pooling {pooling!r}: reference features have shape {ref.shape} but the probed "
                             f"encoder's have {own.shape}; CKA needs the same layers and sentences")
        for layer in range(ref.shape[0]):
            # float32 in memory whatever the cache stores (test split only: small)
            ref_layer = np.array(ref[layer : layer + 1], dtype=np.float32)
            own_layer = np.array(own[layer : layer + 1], dtype=np.float32)
            if similarity.is_constant(ref_layer[0]) or similarity.is_constant(own_layer[0]):
                continue
            (value,) = similarity.linear_cka_layers(ref_layer, own_layer, device=device)
            rows.append({"pooling": pooling, "layer": layer, "metric": similarity.METRIC, "value": float(value),
                         "probe": "none"})
    return rows


def probe_task_rows(
    features: dict[str, dict[str, np.ndarray]],
    labels: dict[str, np.ndarray],
    *,
    poolings: Sequence[str],
    device: str | torch.device = "cpu",
) -> list[dict[str, Any]]:
    """Fit every (pooling, layer) probe of one task at once and return one row per split and probe.

    Args:
        features: split -> pooling -> ``(L + 1, N_split, D)``.
        labels: split -> ``(N_split,)`` integer labels.
        poolings: which poolings to probe.
        device: where the probes train.

    Returns:
        Rows with ``pooling, layer, split, metric="accuracy", value, l2, probe="linear"``; test rows also carry
        ``ci_low, ci_high``, the 95% percentile-bootstrap interval of the test accuracy over test
        sentences (1000 resamples, seed 0).
    """
    return _fit_task(features, labels, poolings=poolings, device=device)[0]


def run_probing(
    model: str,
    probe_tasks: Sequence[str],
    data_dir: str | Path | None,
    *,
    poolings: Sequence[str] = POOLINGS,
    max_train: int | None = None,
    max_eval: int | None = None,
    batch_size: int = 64,
    max_length: int = 128,
    device: str | torch.device = "auto",
    cache_dir: str | Path | None = None,
    dtype: torch.dtype | str | None = None,
    progress: bool = True,
    control: bool = True,
    control_seed: int = 0,
    mdl: bool = True,
    mdl_seed: int = MDL_SHUFFLE_SEED,
    cka_reference: str | None = None,
    cache_dtype: str = "float32",
    refits: int = 0,
    control_seeds: Sequence[int] | None = None,
    random_control: bool = False,
    mdl_l2: str = "fixed",
    probes: Sequence[str] = ("linear",),
    mlp_seed: int = 0,
) -> ProbingRun:
    """Probe one encoder on several tasks: the probing-stage rows and the probes' test correctness.

    Args:
        model: model spec or checkpoint folder (see :func:`probeft.models.resolve_model`).
        probe_tasks: SentEval task names (resolved in ``data_dir``) or file paths.
        data_dir: data folder (``senteval/<task>.txt``), ``"hub"`` (downloaded SentEval files) or None
            (``$PROBEFT_DATA_DIR``, else the download cache); see :func:`probeft.data.locations.data_location`.
        poolings: ``"cls"`` and/or ``"mean"``.
        max_train: cap on training sentences per task; ``max_eval`` on dev and test.
        batch_size, max_length: extraction settings.
        dtype: extraction compute dtype, ``float32`` (None), ``float16`` or ``bfloat16`` (autocast, CUDA only; on
            another device extraction stays float32 with a warning and ``ProbingRun.extraction_dtype`` says so).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...; extraction and probes run there.
        cache_dir: feature cache root (None: no cache).
        cache_dtype: storage dtype of the cached features, ``"float32"`` or ``"float16"`` (half the disk; the
            probes compute in float32 either way, on features rounded to float16).
        refits: probe refits on bootstrap resamples of the train sentences (module docstring); 0: none.
        control_seeds: several control labellings (one set of control rows each, ``control_seed`` column);
            None: ``[control_seed]``. Pages average them.
        random_control: also fit the per-sentence random-label control (module docstring).
        mdl_l2: the online code's L2, ``"fixed"`` or ``"dev"`` (chosen per prefix on the dev split;
            :func:`mdl_task_rows`).
        progress: show progress bars.
        control: also probe the control task (seed ``control_seed``) and add ``control_accuracy`` and
            ``selectivity`` rows (module docstring).
        mdl: also add the online-code MDL rows of the train split (shuffle seed ``mdl_seed``).
        cka_reference: model spec of the pre-trained encoder ``model`` was fine-tuned from (None: no
            CKA); adds ``metric="cka"`` test rows comparing its features with ``model``'s, the
            reference features taken from ``cache_dir`` when cached there (module docstring).
        probes: which probes to fit, ``"linear"`` and/or ``"mlp"`` (module docstring), in this order of rows.
        mlp_seed: seed of the MLP probes' initial weights, example order and dropout.

    Returns:
        :class:`ProbingRun`: rows with ``stage="probing", probe_task, pooling, layer, split, metric,
        value, l2``, ``ci_low, ci_high`` (test rows) and ``wall_time_s`` per task (model and
        fine-tuning columns are set by the caller), and per task the ``(P, N_test)`` correctness
        with the sha256 of its test split.
    """
    if not probe_tasks:
        raise ValueError("probe_tasks is empty: name at least one probing task")
    if refits < 0:
        raise ValueError(f"refits must be >= 0, got {refits}")
    unknown = [kind for kind in probes if kind not in PROBES]
    if unknown or not probes or len(set(probes)) != len(probes):
        raise ValueError(f"probes must name each of {PROBES} at most once, and at least one; got {list(probes)}")
    bad = [p for p in poolings if p not in POOLINGS]
    if bad or not poolings:
        raise ValueError(f"poolings must be a non-empty subset of {POOLINGS}, got {list(poolings)}")
    target = resolve_device(device)
    extraction = extract.effective_dtype(dtype, target)
    # Loaded on the first feature-cache miss only, then shared by the remaining tasks.
    encoder = functools.cache(lambda: extract.load_for_extraction(model, target))
    # The reference encoder likewise, only if some task's reference features are not cached.
    reference_encoder = functools.cache(lambda: extract.load_for_extraction(cka_reference, target))
    rows: list[dict[str, Any]] = []
    correct: list[predictions.TaskPredictions] = []
    retries: list[oom.BatchRetry] = []
    for task in probe_tasks:
        started = time.time()
        task_data = data.read_senteval(data.resolve_probing_file(task, data_dir), max_train=max_train, max_eval=max_eval)
        settings = {"cache_dir": cache_dir, "poolings": poolings, "batch_size": batch_size, "max_length": max_length,
                    "device": target, "dtype": extraction, "progress": progress, "retries": retries,
                    "cache_dtype": cache_dtype, "mmap": True}
        features = extract.extract_probing_features(model, task_data, encoder=encoder, **settings)
        reference = None
        if cka_reference is not None:
            reference = extract.extract_probing_features(cka_reference, task_data, encoder=reference_encoder,
                                                         **settings)
        labels = {"train": task_data.train.labels, "dev": task_data.dev.labels, "test": task_data.test.labels}
        # One standardised copy of the features serves the task, control and MDL fits (and one spectrum).
        standardised, probes_index = _standardised_probes(features, poolings, target)
        task_rows: list[dict[str, Any]] = []
        extra_rows: list[dict[str, Any]] = []
        saved_correct = None
        controls: list[tuple[int, dict[str, np.ndarray]]] = []  # (control seed, its labels per split)
        if control:
            for seed_of_control in (control_seeds or [control_seed]):
                controlled = control_tasks.control_task(task_data, seed=seed_of_control, position=CONTROL_POSITION)
                controls.append((seed_of_control, {"train": controlled.train.labels, "dev": controlled.dev.labels,
                                                   "test": controlled.test.labels}))
        refitted = None
        gain_rows: list[dict[str, Any]] = []
        for kind in probes:
            kind_rows, kind_correct = _fit_rows(standardised, probes_index, labels, kind=kind, mlp_seed=mlp_seed)
            task_rows += kind_rows
            if saved_correct is None or kind == "linear":
                saved_correct = kind_correct
            if kind == "linear" and refits > 0:  # refits of the linear probe, whose correctness is saved
                refitted = refit_correct(standardised, labels, refits)
            for seed_of_control, control_labels in controls:
                control_rows, control_correct = _fit_rows(standardised, probes_index, control_labels,
                                                          metric="control_accuracy", kind=kind, mlp_seed=mlp_seed)
                # Paired over the same resampled test sentences, the draws of the accuracy intervals.
                intervals = uncertainty.paired_bootstrap_delta(control_correct, kind_correct, resamples=CI_RESAMPLES,
                                                               confidence=CI_CONFIDENCE, seed=CI_SEED)
                provenance = {"control_seed": seed_of_control, "control_position": CONTROL_POSITION}
                selective = selectivity_rows(kind_rows, control_rows, intervals, probes_index)
                extra_rows += [{**row, **provenance} for row in control_rows + selective]
                # The majority rates (layer -1) describe the label sets, not a probe: kept once, with the first probe.
                gain_rows += [{**row, **provenance, "probe": kind} for row in majority_gain_rows(
                    kind_rows, control_rows, labels, control_labels) if kind == probes[0] or row["layer"] != -1]
        extra_rows += gain_rows  # after every seed's rows: the rows of control_seed alone stay as they were
        if random_control:
            extra_rows += [{**row, "probe": "linear"}
                           for row in random_label_rows(standardised, probes_index, labels, seed=control_seed)]
        if mdl:
            num_classes = int(max(int(np.max(labels[split])) for split in extract.SPLITS)) + 1
            extra_rows += [{**row, "mdl_seed": mdl_seed} for row in mdl_task_rows(
                standardised, labels["train"], probes_index, num_classes=num_classes, seed=mdl_seed,
                l2_choice=mdl_l2, heldout_labels=labels["dev"])]
        del standardised  # before the next task's features are read
        if reference is not None:
            try:
                similar = cka_rows(reference["test"], features["test"], device=target)
            except ValueError as error:
                raise ValueError(f"CKA of {model!r} against {cka_reference!r} on {task_data.task}: {error}") from error
            extra_rows += [{**row, "split": "test"} for row in similar]
        elapsed = time.time() - started
        rows += [{**row, "stage": "probing", "probe_task": task_data.task, "wall_time_s": round(elapsed, 2)}
                 for row in task_rows + extra_rows]
        sha = predictions.split_sha256(task_data.test.sentences, task_data.test.labels)
        correct.append(predictions.TaskPredictions(task_data.task, probes_index, saved_correct, sha, refits=refitted))
    return ProbingRun(pd.DataFrame(rows), correct, retries, extraction_dtype=extraction, cache_dtype=cache_dtype)


def probe_encoder(model: str, probe_tasks: Sequence[str], data_dir: str | Path | None, **options: Any) -> pd.DataFrame:
    """The rows of :func:`run_probing` (same arguments), without the per-sentence correctness."""
    return run_probing(model, probe_tasks, data_dir, **options).rows


def probing_table(
    rows: pd.DataFrame,
    *,
    model_name: str,
    finetune_task: str,
    finetune_head: str,
    seed: int,
    epoch: int,
) -> pd.DataFrame:
    """Add the model and fine-tuning columns to probing rows and validate them.

    Args:
        rows: the rows of :func:`probe_encoder`.
        model_name: label of the encoder in the results table.
        finetune_task: ``"none"`` for the pre-trained encoder, else the fine-tuning task.
        finetune_head: the fine-tuning head (``"none"`` for the pre-trained encoder).
        seed: the fine-tuning seed of the probed checkpoint; recorded in the results' ``seed`` column
            only (the probes themselves are deterministic and take no seed).
        epoch: the fine-tuning epoch of the probed checkpoint (0 for a pre-trained encoder).
    """
    constants = {"model": model_name, "finetune_task": finetune_task, "finetune_head": finetune_head,
                 "seed": seed, "epoch": epoch}
    return results.results_frame(rows.to_dict("records"), **constants)
