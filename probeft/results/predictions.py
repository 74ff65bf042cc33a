"""Per-sentence test correctness of a probing cell: ``<cell_dir>/probe_predictions.npz``, saved and checked.

The probing stage keeps, beside ``results.csv``, whether each probe got each test sentence right,
so that intervals of accuracies and paired Deltas (:mod:`probeft.verdicts.uncertainty`) can be computed
after the run without re-fitting a probe.

File format (``np.savez``, readable with ``allow_pickle=False``)
    ``correct``: ``(P_total, ceil(N_max / 8))`` uint8, ``np.packbits(bool (P_total, N_max), axis=1)``;
    row ``r`` holds probe ``rows[r]``, whose task has ``n_test <= N_max`` sentences (the bits past
    ``n_test`` are 0). ``metadata``: a 0-d unicode array holding JSON::

        {"format": 1, "model": ..., "finetune_task": ..., "finetune_head": ..., "seed": ..., "epoch": ...,
         "n_max": N_max,
         "rows": [{"probe_task": ..., "pooling": ..., "layer": ...}, ...],          # P_total, in row order
         "tasks": {probe_task: {"n_test": ..., "test_sha256": ...}, ...}}

    ``test_sha256`` (:func:`split_sha256`) hashes the test sentences and labels in order, so two
    files can be paired sentence by sentence only when it matches.

    Probe refits (``probing.refits > 0``, :func:`probeft.probing.stage.run_probing`): the file also holds
    ``refit_correct``, ``(sum_task R_task * P_task, ceil(N_max / 8))`` uint8 packed like ``correct``, the rows
    task by task (in ``tasks`` order), refit by refit, probe by probe (the order of that task's ``rows``);
    the metadata gets ``"refits": {probe_task: R_task, ...}``. A file without refits has neither key,
    byte for byte what it was before refits existed.

The file is written atomically, before the cell's ``results.csv`` and ``provenance.json``, so a
complete cell always has it. Of probeft it imports :mod:`probeft.core.files` and the provenance file name of :mod:`probeft.results`.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from probeft.core import files
from probeft.results.table import PROVENANCE_FILE

__all__ = ["PREDICTIONS_FILE", "CellPredictions", "TaskPredictions", "load_predictions", "save_predictions",
           "split_sha256"]

PREDICTIONS_FILE = "probe_predictions.npz"
FORMAT = 1
CELL_KEYS = ("model", "finetune_task", "finetune_head", "seed", "epoch")


def split_sha256(sentences: Sequence[str], labels: Sequence[int] | np.ndarray) -> str:
    """sha256 of test sentences and their labels, in order (what makes two cells' rows pairable)."""
    digest = hashlib.sha256()
    for sentence, label in zip(sentences, np.asarray(labels).tolist(), strict=True):
        digest.update(f"{int(label)}\t{sentence}\n".encode("utf-8"))
    return digest.hexdigest()


@dataclass
class TaskPredictions:
    """Test correctness of the probes of one probing task.

    Attributes:
        probe_task: the task's name.
        probes: ``P`` ``(pooling, layer)`` pairs, the row order of ``correct``.
        correct: ``(P, n_test)`` bool.
        test_sha256: :func:`split_sha256` of the task's test split.
        refits: ``(R, P, n_test)`` bool, the test correctness of ``R`` refits of the same probes on
            bootstrap resamples of the training sentences; None when the cell made none.
    """

    probe_task: str
    probes: list[tuple[str, int]]
    correct: np.ndarray
    test_sha256: str
    refits: np.ndarray | None = None


@dataclass
class CellPredictions:
    """A loaded ``probe_predictions.npz``: the cell's identity and its tasks' correctness.

    Attributes:
        path: the file read.
        cell: ``model, finetune_task, finetune_head, seed, epoch``.
        tasks: probe_task -> :class:`TaskPredictions`.
    """

    path: Path
    cell: dict[str, Any]
    tasks: dict[str, TaskPredictions]


def save_predictions(cell_dir: str | Path, tasks: Sequence[TaskPredictions], **cell: Any) -> Path:
    """Write ``<cell_dir>/probe_predictions.npz`` atomically.

    Args:
        cell_dir: the cell's output folder.
        tasks: one :class:`TaskPredictions` per probing task.
        **cell: exactly ``model, finetune_task, finetune_head, seed, epoch``.

    Returns:
        The written path.

    Raises:
        ValueError: missing / unknown cell keys, a repeated task, or a malformed task.
    """
    if set(cell) != set(CELL_KEYS):
        raise ValueError(f"save_predictions needs exactly {list(CELL_KEYS)}, got {sorted(cell)}")
    if not tasks or len({t.probe_task for t in tasks}) != len(tasks):
        raise ValueError(f"need at least one task and no task twice, got {[t.probe_task for t in tasks]}")
    blocks, rows, meta_tasks, refit_blocks, refit_counts = [], [], {}, [], {}
    for task in tasks:
        if task.refits is not None:
            refits = np.asarray(task.refits)
            if refits.dtype != np.bool_ or refits.ndim != 3 or refits.shape[1:] != np.shape(task.correct) \
                    or refits.shape[0] == 0:
                raise ValueError(f"{task.probe_task}: refits must be bool (R>0, {', '.join(map(str, np.shape(task.correct)))}), "
                                 f"got {refits.dtype} {refits.shape}")
            refit_blocks.append(refits.reshape(-1, refits.shape[2]))
            refit_counts[task.probe_task] = int(refits.shape[0])
        correct = np.asarray(task.correct)
        if correct.dtype != np.bool_ or correct.ndim != 2 or correct.shape[0] != len(task.probes) or correct.shape[1] == 0:
            raise ValueError(f"{task.probe_task}: correct must be bool (P={len(task.probes)}, N>0), "
                             f"got {correct.dtype} {correct.shape}")
        blocks.append(correct)
        rows += [{"probe_task": task.probe_task, "pooling": str(p), "layer": int(layer)} for p, layer in task.probes]
        meta_tasks[task.probe_task] = {"n_test": int(correct.shape[1]), "test_sha256": str(task.test_sha256)}
    n_max = max(block.shape[1] for block in blocks)
    padded = np.zeros((len(rows), n_max), dtype=np.bool_)
    start = 0
    for block in blocks:
        padded[start : start + block.shape[0], : block.shape[1]] = block
        start += block.shape[0]
    metadata = {"format": FORMAT, **{k: cell[k] for k in CELL_KEYS}, "n_max": n_max, "rows": rows, "tasks": meta_tasks}
    arrays = {"correct": np.packbits(padded, axis=1)}
    if refit_counts:
        metadata["refits"] = refit_counts
        refit_padded = np.zeros((sum(block.shape[0] for block in refit_blocks), n_max), dtype=np.bool_)
        start = 0
        for block in refit_blocks:
            refit_padded[start : start + block.shape[0], : block.shape[1]] = block
            start += block.shape[0]
        arrays["refit_correct"] = np.packbits(refit_padded, axis=1)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, metadata=np.array(json.dumps(metadata, default=str)))
    # Invalidate the cell first: until write_cell marks it complete again, new predictions never pair
    # with old results.
    (Path(cell_dir) / PROVENANCE_FILE).unlink(missing_ok=True)
    return files.atomic_write_bytes(Path(cell_dir) / PREDICTIONS_FILE, buffer.getvalue())


def load_predictions(path: str | Path, expect: Mapping[str, Any] | None = None) -> CellPredictions:
    """Read and check a ``probe_predictions.npz`` (a file, or a cell folder holding one).

    Args:
        path: the file or its cell folder.
        expect: cell fields the file must have (e.g. ``{"model": "tiny-bert"}``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable file, bad metadata, shapes that disagree with it, or a field that
            differs from ``expect`` (the message names the file).
    """
    path = Path(path)
    if path.is_dir():
        path = path / PREDICTIONS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"probe predictions not found: {path}")

    def bad(why: str) -> ValueError:
        return ValueError(f"{path}: not a valid {PREDICTIONS_FILE} ({why})")

    try:
        with np.load(path, allow_pickle=False) as archive:
            packed, metadata = archive["correct"], json.loads(str(archive["metadata"]))
            refit_packed = archive["refit_correct"] if "refit_correct" in archive.files else None
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise bad(f"unreadable: {error}") from error
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise bad(f"format {metadata.get('format') if isinstance(metadata, dict) else None!r}, expected {FORMAT}")
    missing = [k for k in (*CELL_KEYS, "n_max", "rows", "tasks") if k not in metadata]
    if missing:
        raise bad(f"metadata lacks {missing}")
    n_max, rows, meta_tasks = metadata["n_max"], metadata["rows"], metadata["tasks"]
    if packed.dtype != np.uint8 or packed.shape != (len(rows), (n_max + 7) // 8):
        raise bad(f"correct has {packed.dtype} {packed.shape}, metadata says {len(rows)} rows x {n_max} sentences")
    for key, value in (expect or {}).items():
        if metadata.get(key) != value:
            raise ValueError(f"{path}: {key} is {metadata.get(key)!r}, expected {value!r}")
    correct = np.unpackbits(packed, axis=1, count=n_max).astype(np.bool_)
    tasks: dict[str, TaskPredictions] = {}
    for task, info in meta_tasks.items():
        index = [i for i, row in enumerate(rows) if row["probe_task"] == task]
        n_test = info.get("n_test")
        if not index or not isinstance(n_test, int) or not 0 < n_test <= n_max or not info.get("test_sha256"):
            raise bad(f"task {task!r}: {len(index)} rows, n_test {n_test!r}, sha256 {info.get('test_sha256')!r}")
        if correct[index, n_test:].any():
            raise bad(f"task {task!r}: bits set past its n_test={n_test}")
        probes = [(rows[i]["pooling"], int(rows[i]["layer"])) for i in index]
        if len(set(probes)) != len(probes):
            raise bad(f"task {task!r}: a (pooling, layer) appears twice")
        tasks[task] = TaskPredictions(task, probes, correct[index, :n_test], info["test_sha256"])
    unknown = {row["probe_task"] for row in rows} - set(tasks)
    if unknown:
        raise bad(f"rows of task(s) {sorted(unknown)} missing from its tasks")
    _attach_refits(tasks, metadata.get("refits"), refit_packed, n_max, bad)
    return CellPredictions(path, {k: metadata[k] for k in CELL_KEYS}, tasks)


def _attach_refits(tasks: dict[str, TaskPredictions], counts: Any, packed: np.ndarray | None, n_max: int,
                   bad: Any) -> None:
    """Unpack ``refit_correct`` (module docstring) into each task's ``refits``; ``bad(why)`` makes the error."""
    if counts is None and packed is None:
        return
    if not isinstance(counts, dict) or packed is None or set(counts) - set(tasks):
        raise bad(f"refit metadata {counts!r} and refit_correct ({None if packed is None else packed.shape}) disagree")
    total = sum(int(counts[t]) * len(tasks[t].probes) for t in tasks if t in counts)
    if packed.dtype != np.uint8 or packed.shape != (total, (n_max + 7) // 8):
        raise bad(f"refit_correct has {packed.dtype} {packed.shape}, metadata says {total} rows x {n_max} sentences")
    unpacked = np.unpackbits(packed, axis=1, count=n_max).astype(np.bool_)
    start = 0
    for name, task in tasks.items():  # the order they were written in
        if name not in counts:
            continue
        count, num_probes, n_test = int(counts[name]), len(task.probes), task.correct.shape[1]
        block = unpacked[start : start + count * num_probes]
        if block[:, n_test:].any():
            raise bad(f"task {name!r}: refit bits set past its n_test={n_test}")
        task.refits = block[:, :n_test].reshape(count, num_probes, n_test)
        start += count * num_probes
