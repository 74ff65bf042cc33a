"""The probing stage: probing data -> cached features -> batched probes -> tidy result rows.

This is what ``notebooks/probing.ipynb`` runs for one encoder (pre-trained, or a fine-tuned
checkpoint) and a list of SentEval-format probing tasks (paper Sec. 3.2, 4.1, 4.2).

Every test-accuracy row carries a 95% percentile-bootstrap interval over the test sentences
(``ci_low``, ``ci_high``; :func:`probeft.uncertainty.bootstrap_accuracy_ci`, 1000 resamples, seed
0); the per-sentence correctness behind it is returned by :func:`run_probing` for the cell's
``probe_predictions.npz`` (:mod:`probeft.predictions`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from probeft import data, extract, predictions, probe, results, uncertainty
from probeft.devices import resolve_device
from probeft.names import POOLINGS

CI_RESAMPLES = 1000
CI_CONFIDENCE = 0.95
CI_SEED = 0


@dataclass
class ProbingRun:
    """What :func:`run_probing` returns.

    Attributes:
        rows: the probing-stage rows (see :func:`probe_encoder`).
        predictions: per task, the probes' test correctness (for :func:`probeft.predictions.save_predictions`).
    """

    rows: pd.DataFrame
    predictions: list[predictions.TaskPredictions]


def _fit_task(
    features: dict[str, dict[str, np.ndarray]],
    labels: dict[str, np.ndarray],
    *,
    poolings: Sequence[str],
    device: str | torch.device,
) -> tuple[list[dict[str, Any]], list[tuple[str, int]], np.ndarray]:
    """Rows (see :func:`probe_task_rows`), the ``(pooling, layer)`` order and ``(P, N_test)`` correctness."""
    stacked, index = {}, None
    for split in extract.SPLITS:
        stacked[split], index = extract.stack_probes(features[split], poolings=poolings)
    fitted = probe.fit_probes(
        stacked["train"], labels["train"], stacked["dev"], labels["dev"], stacked["test"], labels["test"],
        device=device,
    )
    accuracy = {"train": fitted.train_acc, "dev": fitted.dev_acc, "test": fitted.test_acc}
    low, high = uncertainty.bootstrap_accuracy_ci(
        fitted.test_correct, resamples=CI_RESAMPLES, confidence=CI_CONFIDENCE, seed=CI_SEED
    )
    rows = []
    for i, (pooling, layer) in enumerate(index):
        for split in extract.SPLITS:
            row = {"pooling": pooling, "layer": layer, "split": split, "metric": "accuracy",
                   "value": float(accuracy[split][i]), "l2": float(fitted.l2[i])}
            if split == "test":
                row |= {"ci_low": float(low[i]), "ci_high": float(high[i])}
            rows.append(row)
    return rows, [(str(p), int(layer)) for p, layer in index], fitted.test_correct


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
        Rows with ``pooling, layer, split, metric="accuracy", value, l2``; test rows also carry
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
) -> ProbingRun:
    """Probe one encoder on several tasks: the probing-stage rows and the probes' test correctness.

    Args:
        model: model spec or checkpoint folder (see :func:`probeft.models.resolve_model`).
        probe_tasks: SentEval task names (resolved in ``data_dir``) or file paths.
        data_dir: data folder (``senteval/<task>.txt``), ``"hub"`` (downloaded SentEval files) or None
            (``$PROBEFT_DATA_DIR``, else the download cache); see :func:`probeft.locations.data_location`.
        poolings: ``"cls"`` and/or ``"mean"``.
        max_train: cap on training sentences per task; ``max_eval`` on dev and test.
        batch_size, max_length, dtype: extraction settings.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...; extraction and probes run there.
        cache_dir: feature cache root (None: no cache).
        progress: show progress bars.

    Returns:
        :class:`ProbingRun`: rows with ``stage="probing", probe_task, pooling, layer, split, metric,
        value, l2``, ``ci_low, ci_high`` (test rows) and ``wall_time_s`` per task (model and
        fine-tuning columns are set by the caller), and per task the ``(P, N_test)`` correctness
        with the sha256 of its test split.
    """
    if not probe_tasks:
        raise ValueError("probe_tasks is empty: name at least one probing task")
    bad = [p for p in poolings if p not in POOLINGS]
    if bad or not poolings:
        raise ValueError(f"poolings must be a non-empty subset of {POOLINGS}, got {list(poolings)}")
    target = resolve_device(device)
    # Loaded on the first feature-cache miss only, then shared by the remaining tasks.
    encoder = functools.cache(lambda: extract.load_for_extraction(model, target))
    rows: list[dict[str, Any]] = []
    correct: list[predictions.TaskPredictions] = []
    for task in probe_tasks:
        started = time.time()
        task_data = data.read_senteval(data.resolve_probing_file(task, data_dir), max_train=max_train, max_eval=max_eval)
        features = extract.extract_probing_features(
            model, task_data, cache_dir=cache_dir, poolings=poolings, batch_size=batch_size,
            max_length=max_length, device=target, dtype=dtype, progress=progress, encoder=encoder,
        )
        labels = {"train": task_data.train.labels, "dev": task_data.dev.labels, "test": task_data.test.labels}
        task_rows, probes, task_correct = _fit_task(features, labels, poolings=poolings, device=target)
        elapsed = time.time() - started
        rows += [{**row, "stage": "probing", "probe_task": task_data.task, "wall_time_s": round(elapsed, 2)} for row in task_rows]
        sha = predictions.split_sha256(task_data.test.sentences, task_data.test.labels)
        correct.append(predictions.TaskPredictions(task_data.task, probes, task_correct, sha))
    return ProbingRun(pd.DataFrame(rows), correct)


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
