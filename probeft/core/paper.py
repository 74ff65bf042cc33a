"""Numbers reported in the paper (Mosbach et al., BlackboxNLP 2020), quoted for comparison.

Table 1: dev-set performance after fine-tuning (CoLA: MCC; SST-2, RTE: accuracy; SQuAD v1.1: EM/F1),
in percent. Keys are the paper's model ids and this project's task names.

Tables 2 and 5: the layer-group Deltas, keyed by cell (:data:`TABLES_2_5`, see :data:`TABLES_2_5_NOTE`).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

TABLE1: dict[str, dict[str, str]] = {
    "bert-base-cased": {"cola": "59.5", "sst2": "92.4", "rte": "64.6", "squad": "78.6 / 86.5"},
    "roberta-base": {"cola": "60.3", "sst2": "93.6", "rte": "73.6", "squad": "81.7 / 89.3"},
    "albert-base-v1": {"cola": "45.8", "sst2": "88.5", "rte": "69.6", "squad": "79.9 / 87.6"},
}
# Which metric each task reports in Table 1 (SQuAD shows exact match / F1).
TABLE1_METRICS: dict[str, tuple[str, ...]] = {
    "cola": ("mcc",),
    "sst2": ("accuracy",),
    "rte": ("accuracy",),
    "squad": ("exact_match", "f1"),
}


# ---- Tables 2 and 5: Delta (fine-tuned minus pre-trained probing accuracy, points), layer groups ----
#
# Table 2 holds CLS pooling, Table 5 mean pooling; each gives, per pre-trained model, fine-tuning task
# and probing task, the Delta averaged over the lower layers (0-6) and the upper layers (7-12).
PAPER_MODELS: tuple[str, ...] = ("bert-base-cased", "roberta-base", "albert-base-v1")
DELTA_FINETUNE_TASKS: tuple[str, ...] = ("cola", "sst2", "rte")
DELTA_PROBE_TASKS: tuple[str, ...] = ("bigram_shift", "coordination_inversion", "odd_man_out")
DELTA_TABLES: dict[str, str] = {"cls": "Table 2", "mean": "Table 5"}  # pooling -> the paper's table
LAYER_GROUPS: tuple[str, ...] = ("lower", "upper")  # the paper's layers 0-6 and 7-12

# (model, finetune_task, probe_task, pooling, layer_group) -> Delta in accuracy points, as printed.
DeltaKey = tuple[str, str, str, str, str]

# The transcribed cells. Empty on purpose: this workplace has no readable copy of the paper's Tables 2
# and 5 (the stored copies of the paper give only their opening pages), and a number typed from memory
# would be a silent wrong number. Fill it from the paper (or pass a transcription file to
# `read_paper_deltas`); a cell left out is shown as unreadable, never as 0.
TABLES_2_5: dict[DeltaKey, float] = {}
TABLES_2_5_NOTE = (
    "The paper's Tables 2 and 5 are not transcribed in this copy of probeft: no readable copy of them was "
    "available where it was built (and the RoBERTa coordination-inversion row of Table 2 is garbled in the "
    "text the project had). Their cells show '-' until a transcription is given "
    "(probeft.core.paper.TABLES_2_5, or a CSV read by probeft.core.paper.read_paper_deltas)."
)
DELTA_CSV_COLUMNS: tuple[str, ...] = ("model", "finetune_task", "probe_task", "pooling", "layer_group", "delta")


def paper_delta_keys() -> list[DeltaKey]:
    """Every cell of Tables 2 and 5, in the paper's order (model, fine-tuning task, probing task, group)."""
    return [(model, task, probe_task, pooling, group)
            for pooling in DELTA_TABLES for model in PAPER_MODELS for task in DELTA_FINETUNE_TASKS
            for probe_task in DELTA_PROBE_TASKS for group in LAYER_GROUPS]


def read_paper_deltas(path: str | Path) -> dict[DeltaKey, float]:
    """Read a transcription of Tables 2 and 5 (a CSV with :data:`DELTA_CSV_COLUMNS`).

    A row whose ``delta`` is empty marks a cell as unreadable (it is left out of the result).

    Args:
        path: the CSV file.

    Returns:
        ``{(model, finetune_task, probe_task, pooling, layer_group): delta_points}``.

    Raises:
        ValueError: a missing column, an unknown key, a value that is not a number in [-100, 100], or a
            cell given twice; the message names the file and line.
    """
    path = Path(path)
    known = set(paper_delta_keys())
    found: dict[DeltaKey, float] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in DELTA_CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; expected {list(DELTA_CSV_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            key = tuple((row[c] or "").strip() for c in DELTA_CSV_COLUMNS[:-1])
            if key not in known:
                raise ValueError(f"{path}:{line}: unknown cell {key}; models {PAPER_MODELS}, tasks "
                                 f"{DELTA_FINETUNE_TASKS}, probing tasks {DELTA_PROBE_TASKS}, poolings "
                                 f"{tuple(DELTA_TABLES)}, layer groups {LAYER_GROUPS}")
            text = (row["delta"] or "").strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{path}:{line}: delta {text!r} is not a number") from None
            if not math.isfinite(value) or abs(value) > 100:
                raise ValueError(f"{path}:{line}: delta {value} is not in [-100, 100] accuracy points")
            if key in found:
                raise ValueError(f"{path}:{line}: cell {key} is given twice")
            found[key] = value  # type: ignore[index]
    return found
