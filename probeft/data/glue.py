"""GLUE CoLA / SST-2 / RTE as distributed in ``glue_data`` TSV files, or from the ``datasets`` hub."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from probeft.core.data_reads import read_data_text
from probeft.core.names import CLASSIFICATION_TASKS
from probeft.data.caps import cap_text, seeded_subset
from probeft.data.hub_datasets import HUB_DATASETS, load_hub_dataset
from probeft.data.locations import data_location

__all__ = ["GLUE_TASKS", "GLUE_LABEL_NAMES", "ClassificationSplit", "ClassificationData", "read_glue", "normalize_glue_task"]

GLUE_TASKS = CLASSIFICATION_TASKS  # the sentence-level fine-tuning tasks
GLUE_LABEL_NAMES: dict[str, list[str]] = {
    "cola": ["unacceptable", "acceptable"],
    "sst2": ["negative", "positive"],
    "rte": ["entailment", "not_entailment"],
}
_GLUE_DIRS = {"cola": "CoLA", "sst2": "SST-2", "rte": "RTE"}


@dataclass(frozen=True)
class ClassificationSplit:
    """Texts (and second texts for pair tasks) with int64 labels of shape (N,)."""

    texts_a: list[str]
    texts_b: list[str] | None
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts_a)


@dataclass(frozen=True)
class ClassificationData:
    """A GLUE task: ``label_names[i]`` is the name of class id ``i``."""

    task: str
    label_names: list[str]
    train: ClassificationSplit
    dev: ClassificationSplit


def normalize_glue_task(task: str) -> str:
    """``"SST-2"`` / ``"sst_2"`` / ``"CoLA"`` -> ``"sst2"`` / ``"cola"``; ValueError for other tasks."""
    key = str(task).strip().lower().replace("-", "").replace("_", "")
    if key not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task {task!r}; expected one of {GLUE_TASKS} (case-insensitive, 'sst-2' ok)")
    return key


def _apply_cap(split: ClassificationSplit, cap: int | None) -> ClassificationSplit:
    keep = seeded_subset(len(split), cap)
    if len(keep) == len(split):
        return split
    texts_b = None if split.texts_b is None else [split.texts_b[i] for i in keep]
    return ClassificationSplit([split.texts_a[i] for i in keep], texts_b, split.labels[keep])


def _tsv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of the non-blank lines of a TSV file. No quote handling: GLUE text contains quotes."""
    text = read_data_text(path, encoding="utf-8-sig")
    return [(n, line.rstrip("\r").split("\t")) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]


def _header_columns(path: Path, rows: list[tuple[int, list[str]]], required: tuple[str, ...]) -> dict[str, int]:
    if not rows:
        raise ValueError(f"{path}: file is empty")
    header = [h.strip() for h in rows[0][1]]
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path}:{rows[0][0]}: header {header} is missing columns {missing}")
    return {c: header.index(c) for c in required}


def _parse_label(path: Path, number: int, value: str, names: dict[str, int]) -> int:
    value = value.strip()
    if value not in names:
        raise ValueError(f"{path}:{number}: label {value!r} is not one of {sorted(names)}")
    return names[value]


def _read_glue_tsv(task: str, path: Path) -> ClassificationSplit:
    """Parse one GLUE TSV file (``task`` normalised).

    CoLA: no header, 4 columns (source, label, original mark, sentence). SST-2: header ``sentence label``.
    RTE: header ``index sentence1 sentence2 label`` with entailment / not_entailment labels.
    """
    rows = _tsv_rows(path)
    if task == "cola":
        columns, body, width = {"label": 1, "sentence1": 3}, rows, 4
        label_ids = {"0": 0, "1": 1}
    else:
        required = ("sentence", "label") if task == "sst2" else ("sentence1", "sentence2", "label")
        header = _header_columns(path, rows, required)
        columns = {"sentence1" if k == "sentence" else k: v for k, v in header.items()}
        body, width = rows[1:], len(rows[0][1])
        label_ids = {"0": 0, "1": 1} if task == "sst2" else {n: i for i, n in enumerate(GLUE_LABEL_NAMES["rte"])}
    texts_a: list[str] = []
    texts_b: list[str] = []
    labels: list[int] = []
    for number, fields in body:
        if len(fields) != width:
            raise ValueError(f"{path}:{number}: expected {width} tab-separated columns, got {len(fields)}")
        labels.append(_parse_label(path, number, fields[columns["label"]], label_ids))
        for name, texts in (("sentence1", texts_a), ("sentence2", texts_b)):
            if name in columns:
                if not fields[columns[name]].strip():
                    raise ValueError(f"{path}:{number}: empty {name if task == 'rte' else 'sentence'}")
                texts.append(fields[columns[name]])
    if not texts_a:
        raise ValueError(f"{path}: no examples")
    return ClassificationSplit(texts_a, texts_b if task == "rte" else None, np.array(labels, dtype=np.int64))


def _glue_files(task: str, root: Path) -> tuple[Path, Path]:
    """(train, dev) TSV paths under ``root/glue/<Dir>/`` or ``root/<Dir>/``."""
    looked: list[str] = []
    for base in (root / "glue" / _GLUE_DIRS[task], root / _GLUE_DIRS[task]):
        train, dev = base / "train.tsv", base / "dev.tsv"
        if train.is_file() and dev.is_file():
            return train, dev
        looked += [str(train), str(dev)]
    raise FileNotFoundError(f"GLUE {task} files not found; looked for {', '.join(looked)}")


def _read_glue_hub(task: str) -> tuple[ClassificationSplit, ClassificationSplit]:
    """Train and validation splits from the ``datasets`` hub copy of GLUE (needs internet or an HF cache)."""
    repo_id, config = HUB_DATASETS[task]
    loaded = load_hub_dataset(repo_id, config, what=f"GLUE {task} ({repo_id})")

    def convert(split) -> ClassificationSplit:
        if task == "rte":
            texts_a, texts_b = list(split["sentence1"]), list(split["sentence2"])
        else:
            texts_a, texts_b = list(split["sentence"]), None
        return ClassificationSplit(texts_a, texts_b, np.asarray(split["label"], dtype=np.int64))

    return convert(loaded["train"]), convert(loaded["validation"])


def read_glue(
    task: str, data_dir: str | Path | None = None, *, max_train: int | None = None, max_eval: int | None = None
) -> ClassificationData:
    """Read a GLUE task (CoLA, SST-2 or RTE) from TSV files or from the hub.

    Files: ``<data_dir>/glue/{CoLA,SST-2,RTE}/{train,dev}.tsv`` (or ``<data_dir>/{CoLA,...}/``). For
    ``data_dir="hub"``, or None with ``$PROBEFT_DATA_DIR`` unset, the task is loaded with
    ``datasets.load_dataset("nyu-mll/glue", task)`` (same label ids). Caps keep a seeded random subset of
    that many examples, in file order (:func:`probeft.data.caps.seeded_subset`).

    Args:
        task: ``"cola"``, ``"sst2"`` (``"sst-2"`` ok) or ``"rte"``, any case.
        data_dir: data folder, ``"hub"`` or None (see :func:`probeft.data.locations.data_location`).
        max_train: cap on training examples.
        max_eval: cap on dev examples.

    Returns:
        The task; ``texts_b`` is set for RTE only. Label names: CoLA unacceptable/acceptable, SST-2
        negative/positive, RTE entailment/not_entailment.

    Raises:
        ValueError: unknown task, bad caps, or malformed lines (naming file and line).
        FileNotFoundError: files not found (listing where it looked), or the data folder does not exist.
    """
    key = normalize_glue_task(task)
    cap_text(max_train, max_eval)
    root = data_location(data_dir)
    if root is None:
        train, dev = _read_glue_hub(key)
    else:
        train_path, dev_path = _glue_files(key, root)
        train, dev = _read_glue_tsv(key, train_path), _read_glue_tsv(key, dev_path)
    if len(set(train.labels.tolist())) < 2:
        raise ValueError(f"GLUE {key}: the training split has fewer than two labels")
    return ClassificationData(
        task=key,
        label_names=list(GLUE_LABEL_NAMES[key]),
        train=_apply_cap(train, max_train),
        dev=_apply_cap(dev, max_eval),
    )
