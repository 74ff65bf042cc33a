"""The first token's attention statistics per sentence of an attention cell: ``attention_per_sentence.npz``.

:func:`probeft.diagnostics.attention.attention_statistics` averages entropy and EMD over sentences for the
results table; an interval over sentences (and fine-tuning seeds) needs them per sentence, so an attention
cell also keeps ``"entropy/<label>"`` and ``"emd/<label>"`` arrays of shape (N sentences, L layers), with the
fine-tuned checkpoints' fields (``finetune_head``, ``seed``) per label so a reader can pool the seeds of one
head. Written atomically, before the cell's ``results.csv`` marks it complete.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from probeft.core import files

__all__ = ["ATTENTION_SENTENCES_FILE", "AttentionSentences", "load_attention_cells", "load_attention_sentences",
           "save_attention_sentences"]

ATTENTION_SENTENCES_FILE = "attention_per_sentence.npz"


@dataclass(frozen=True)
class AttentionSentences:
    """One attention cell's per-sentence first-token statistics.

    Attributes:
        model: the ``model`` column of the cell's rows.
        arrays: ``"entropy/<label>"`` / ``"emd/<label>"`` -> (N, L) float64, column ``l`` = layer ``l + 1``.
        info: fine-tuned label -> its checkpoint's fields (``finetune_task``, ``finetune_head``, ``seed``).
    """

    model: str
    arrays: dict[str, np.ndarray]
    info: dict[str, dict[str, Any]]


def save_attention_sentences(cell_dir: str | Path, per_sentence: Mapping[str, Any],
                             info: Mapping[str, Mapping[str, Any]], *, model: str) -> Path:
    """Write an attention cell's per-sentence statistics.

    Args:
        cell_dir: the cell's output folder.
        per_sentence: ``"entropy/<label>"`` / ``"emd/<label>"`` -> (N, L) arrays (torch tensors or numpy).
        info: label -> the fine-tuned checkpoint's fields (``finetune_head``, ``seed``, ...).
        model: the ``model`` column of the cell's rows.

    Returns:
        The written ``<cell_dir>/attention_per_sentence.npz``.

    Raises:
        ValueError: an array that is not (N, L), or arrays of different shapes.
    """
    arrays = {key: np.asarray(value, dtype=np.float64) for key, value in per_sentence.items()}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) > 1 or any(len(shape) != 2 for shape in shapes):
        raise ValueError(f"per-sentence attention arrays must share one (N, L) shape, got {sorted(shapes)}")
    metadata = {"model": model, "keys": sorted(arrays), "info": {k: dict(v) for k, v in info.items()}}
    buffer = io.BytesIO()
    np.savez(buffer, metadata=np.array(json.dumps(metadata, default=str)),
             **{key.replace("/", "__"): value for key, value in arrays.items()})
    return files.atomic_write_bytes(Path(cell_dir) / ATTENTION_SENTENCES_FILE, buffer.getvalue())


def load_attention_sentences(cell_dir: str | Path) -> AttentionSentences | None:
    """Read :func:`save_attention_sentences`' file.

    Returns:
        None when the cell has no such file (cells from before it was written).

    Raises:
        ValueError: the file is not one this module wrote (the message names it).
    """
    path = Path(cell_dir) / ATTENTION_SENTENCES_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            metadata = json.loads(str(stored["metadata"]))
            arrays = {key: stored[key.replace("/", "__")] for key in metadata["keys"]}
            model = str(metadata["model"])
    except (KeyError, ValueError, OSError) as error:
        raise ValueError(f"{path}: not a per-sentence attention file ({error})") from None
    return AttentionSentences(model, arrays, metadata["info"])


def load_attention_cells(cell_dirs: Iterable[str | Path]) -> list[AttentionSentences]:
    """The per-sentence statistics of every attention cell among ``cell_dirs`` that has them."""
    found = (load_attention_sentences(d) for d in cell_dirs)
    return [cell for cell in found if cell is not None]
