"""Out-of-memory retries: on a device OOM, halve the batch and try again, and say so in the provenance.

Extraction (:func:`probeft.probing.extract.extract_features`) re-runs the failed batch in halves and keeps
the smaller batch for the rest; features do not depend on the batch (padding is masked).
Fine-tuning (:func:`probeft.finetune.run_finetune`) halves the per-device batch and doubles the
gradient accumulation, so the effective batch, the optimiser steps and the data order stay the
paper's; it resumes from the last complete epoch. A batch of one that still does not fit is
re-raised. Each retry is one :class:`BatchRetry` record, which the notebooks write into the cell's
provenance.

This module imports nothing else from :mod:`probeft`.
"""

from __future__ import annotations

import dataclasses
import gc
import warnings
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["BatchRetry", "as_dicts", "is_out_of_memory", "release_memory", "retry_record"]


@dataclass(frozen=True)
class BatchRetry:
    """One out-of-memory retry.

    Attributes:
        stage: ``"extraction"`` or ``"finetune"``.
        batch_size: the batch that did not fit.
        retry_batch_size: the batch tried next (half of it).
        gradient_accumulation_steps: fine-tuning: the accumulation tried next (effective batch kept); 1 otherwise.
        error: the first line of the out-of-memory message.
    """

    stage: str
    batch_size: int
    retry_batch_size: int
    gradient_accumulation_steps: int
    error: str


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a device out-of-memory error (``torch.OutOfMemoryError``, or a cuBLAS / cuDNN
    allocation failure, which torch raises as a plain ``RuntimeError`` saying "out of memory")."""
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower()
    )


def release_memory(device: torch.device | str | None = None) -> None:
    """Free what the failed attempt left: Python garbage, then the CUDA caching allocator's blocks."""
    gc.collect()
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        torch.cuda.empty_cache()


def retry_record(stage: str, error: BaseException, batch_size: int, *, accumulation: int = 1) -> BatchRetry:
    """The record of halving ``batch_size`` after ``error``, with a warning saying so.

    Args:
        stage: ``"extraction"`` or ``"finetune"``.
        error: the out-of-memory error.
        batch_size: the batch that did not fit.
        accumulation: fine-tuning: the gradient accumulation of that attempt (doubled in the record).

    Raises:
        error: re-raised when ``batch_size`` is already 1, or odd in fine-tuning (its half times two
            would change the effective batch).
    """
    if batch_size <= 1 or (stage == "finetune" and batch_size % 2):
        raise error  # nothing left to halve, or an odd batch whose half can't keep the effective batch
    message = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    record = BatchRetry(stage, batch_size, batch_size // 2, accumulation * 2 if stage == "finetune" else 1, message)
    warnings.warn(f"{stage}: out of memory at batch size {batch_size}; retrying with {record.retry_batch_size}"
                  + (f" x {record.gradient_accumulation_steps} accumulation steps" if stage == "finetune" else ""),
                  RuntimeWarning, stacklevel=2)
    return record


def as_dicts(retries: list[BatchRetry]) -> list[dict[str, Any]]:
    """JSON-ready records for the provenance."""
    return [dataclasses.asdict(r) for r in retries]
