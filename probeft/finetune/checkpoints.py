"""The fine-tuning checkpoint store: layout, completion markers, reading and choosing checkpoints.

A fine-tuning run folder holds one sub-folder per finished epoch::

    <run_dir>/epoch-<e>/            encoder + tokenizer (AutoModel loads it) + heads.safetensors
    <run_dir>/epoch-<e>/checkpoint.json   the completion marker, written last

An ``epoch-<e>`` folder without a readable marker is incomplete and never used. Fine-tuning writes
the store (:mod:`probeft.finetune`); probing, attention and perplexity only read it, through the
functions here, so none of them imports the Trainer.

This module imports nothing else from :mod:`probeft`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from probeft.core.data_reads import sha256_of_file

__all__ = [
    "CHECKPOINT_MARKER",
    "HEADS_FILE",
    "WEIGHTS_KEY",
    "checkpoint_dir",
    "checkpoint_fields",
    "completed_epochs",
    "epoch_checkpoints",
    "epoch_dirs",
    "final_checkpoint",
    "is_run_dir",
    "load_point",
    "missing_epochs",
    "planned_epochs",
    "read_checkpoint_info",
    "resolve_checkpoint",
    "verify_checkpoint",
    "weight_digests",
]

CHECKPOINT_MARKER = "checkpoint.json"
HEADS_FILE = "heads.safetensors"
WEIGHTS_KEY = "weights_sha256"  # in the marker: weight file name -> sha256, written with the checkpoint
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_EPOCH_DIR = re.compile(r"epoch-(\d+)")


def checkpoint_dir(run_dir: str | Path, epoch: int) -> Path:
    """``run_dir/epoch-<epoch>`` (epochs count from 1)."""
    if int(epoch) < 1:
        raise ValueError(f"epoch must be >= 1, got {epoch!r}")
    return Path(run_dir) / f"epoch-{int(epoch)}"


def epoch_dirs(run_dir: str | Path) -> dict[int, Path]:
    """Every ``epoch-<e>`` folder of a run, complete or not, by epoch."""
    run_dir = Path(run_dir)
    found = {}
    if run_dir.is_dir():
        for path in run_dir.iterdir():
            match = _EPOCH_DIR.fullmatch(path.name)
            if match and path.is_dir():
                found[int(match.group(1))] = path
    return found


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """The ``checkpoint.json`` of an epoch folder.

    Raises:
        FileNotFoundError: the folder has no marker (incomplete or not a checkpoint).
        ValueError: the marker is not valid JSON.
    """
    marker = Path(path) / CHECKPOINT_MARKER
    if not marker.is_file():
        raise FileNotFoundError(f"no {CHECKPOINT_MARKER} in {path}: not a complete fine-tuning checkpoint")
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{marker}: invalid JSON ({error})") from error


def completed_epochs(run_dir: str | Path) -> list[int]:
    """Epochs whose folder holds a readable completion marker, ascending."""
    complete = []
    for epoch, path in sorted(epoch_dirs(run_dir).items()):
        try:
            read_checkpoint_info(path)
        except (FileNotFoundError, ValueError):
            continue
        complete.append(epoch)
    return complete


def epoch_checkpoints(run_dir: str | Path) -> dict[int, Path]:
    """The complete checkpoints of a run: ``{epoch: folder}``, ascending."""
    return {epoch: checkpoint_dir(run_dir, epoch) for epoch in completed_epochs(run_dir)}


def planned_epochs(run_dir: str | Path) -> int | None:
    """The number of epochs the run was started for (its markers' ``signature.epochs``); None if unknown."""
    for epoch in reversed(completed_epochs(run_dir)):
        planned = read_checkpoint_info(checkpoint_dir(run_dir, epoch)).get("signature", {}).get("epochs")
        if isinstance(planned, int) and not isinstance(planned, bool):
            return planned
    return None


def missing_epochs(run_dir: str | Path, planned: int | None = None) -> list[int]:
    """Epochs ``1..planned`` without a complete checkpoint (``planned``: default :func:`planned_epochs`)."""
    planned = planned if planned is not None else planned_epochs(run_dir)
    done = set(completed_epochs(run_dir))
    if planned is None:
        return [] if done else [1]
    return [epoch for epoch in range(1, planned + 1) if epoch not in done]


def final_checkpoint(run_dir: str | Path) -> Path:
    """Folder of the run's final epoch: the last one it was started for, which must be complete.

    Raises:
        FileNotFoundError: no complete epoch in ``run_dir``, or the planned last epoch is not complete (a
            run cut short, or a checkpoint deleted since: an earlier epoch is never used in its place).
    """
    epochs = completed_epochs(run_dir)
    if not epochs:
        raise FileNotFoundError(f"no complete fine-tuning epoch (epoch-<e>/{CHECKPOINT_MARKER}) in {run_dir}")
    planned = planned_epochs(run_dir)
    if planned is not None and epochs[-1] < planned:
        raise FileNotFoundError(
            f"{run_dir}: the run was for {planned} epochs but its last complete checkpoint is epoch {epochs[-1]} "
            f"(no {checkpoint_dir(run_dir, planned).name}/{CHECKPOINT_MARKER}); run the fine-tuning cell again "
            "(probeft grid resumes it) instead of probing an earlier epoch"
        )
    return checkpoint_dir(run_dir, epochs[-1])


def weight_digests(folder: str | Path) -> dict[str, str]:
    """sha256 of every weight file (``*.safetensors``, ``*.bin``) directly in ``folder``."""
    return {path.name: sha256_of_file(path) for path in sorted(Path(folder).iterdir())
            if path.is_file() and path.suffix in _WEIGHT_SUFFIXES}


def verify_checkpoint(path: str | Path) -> Path:
    """``path`` if its weight files are the ones its marker recorded (checkpoints written before the record
    are taken as they are).

    Raises:
        ValueError: a weight file is missing or changed since the epoch was written, naming it.
    """
    path = Path(path)
    recorded = read_checkpoint_info(path).get(WEIGHTS_KEY)
    for name, digest in sorted((recorded or {}).items()):
        weights = path / name
        if not weights.is_file():
            raise ValueError(f"{weights}: missing from the checkpoint; run its fine-tuning cell again")
        if sha256_of_file(weights) != digest:
            raise ValueError(f"{weights}: the weights changed since epoch {path.name} was written (sha256 "
                             "differs); run its fine-tuning cell again (probeft grid --rerun-changed)")
    return path


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a fine-tuning run folder (it has ``epoch-<e>/`` sub-folders)."""
    return bool(epoch_dirs(path))


def load_point(path: str | Path) -> Path:
    """A loadable model folder: an epoch checkpoint (or any model folder) as it is, a run folder's final epoch.

    Raises:
        FileNotFoundError: a run folder with no complete epoch, or a path that is neither.
    """
    path = Path(path)
    if (path / "config.json").is_file():
        return verify_checkpoint(path) if (path / CHECKPOINT_MARKER).is_file() else path
    if is_run_dir(path):
        return verify_checkpoint(final_checkpoint(path))
    raise FileNotFoundError(f"{path} is neither a model folder (config.json) nor a fine-tuning run (epoch-<e>/)")


def resolve_checkpoint(model: str, epoch: int = -1) -> tuple[str, int]:
    """Which weights to use: a fine-tuning run folder becomes one of its epoch checkpoints.

    Args:
        model: a model spec, an epoch checkpoint folder, or a fine-tuning run folder.
        epoch: for a run folder, the epoch (``-1``: the last complete one).

    Returns:
        ``(spec_to_load, epoch)``; epoch is 0 for a model that is not a fine-tuning output.

    Raises:
        FileNotFoundError: the requested epoch is not complete, or the run has none.
    """
    path = Path(model)
    if path.is_dir() and is_run_dir(path):
        if epoch == -1:
            final = verify_checkpoint(final_checkpoint(path))
            return str(final), int(final.name.split("-")[1])
        if epoch not in completed_epochs(path):
            raise FileNotFoundError(f"epoch={epoch} is not a complete checkpoint in {path}")
        return str(verify_checkpoint(checkpoint_dir(path, epoch))), epoch
    if path.is_dir() and (path / CHECKPOINT_MARKER).is_file():
        return str(verify_checkpoint(path)), int(read_checkpoint_info(path).get("epoch", 0))
    return model, max(epoch, 0)


def checkpoint_fields(path: str | Path) -> dict[str, Any]:
    """Result-table fields (finetune_task, finetune_head, seed, epoch) of a checkpoint folder.

    Reads ``checkpoint.json`` when present; otherwise takes the epoch from a folder name
    ``epoch-<e>`` and leaves the rest unknown.

    Returns:
        A dict with any of ``finetune_task``, ``finetune_head``, ``seed``, ``epoch`` that could be determined.

    Raises:
        ValueError: the marker is not valid JSON.
    """
    path = Path(path)
    info: dict[str, Any] = {}
    match = _EPOCH_DIR.fullmatch(path.name)
    if match:
        info["epoch"] = int(match.group(1))
    if (path / CHECKPOINT_MARKER).is_file():
        meta = read_checkpoint_info(path)
        for key, column in (("task", "finetune_task"), ("head", "finetune_head"), ("seed", "seed"), ("epoch", "epoch")):
            if meta.get(key) is not None:
                info[column] = meta[key]
    return info
