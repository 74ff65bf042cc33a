"""Task, head and pooling names and their defaults: the one place the grid, fine-tuning, probing
and extraction take them from.

Names are normalised leniently (case, ``-`` and ``_`` ignored: ``"SST-2"``, ``"sst_2"`` and
``"sst2"`` are one task) and rejected with the list of valid names otherwise.

This module imports nothing else from :mod:`probeft`.
"""

from __future__ import annotations

__all__ = [
    "CLASSIFICATION_TASKS",
    "FINETUNE_TASKS",
    "FITTED_HEAD_NOTE",
    "HEADS",
    "MLM_HEAD_FITTED",
    "MLM_HEAD_PRETRAINED",
    "NO_FINETUNE",
    "POOLINGS",
    "PROBING_LABELS",
    "PROBING_TASKS",
    "SENTEVAL_CORPUS_LABEL_TASKS",
    "SENTEVAL_LABELS",
    "SENTEVAL_TASKS",
    "SQUAD_HEAD",
    "TASK_METRICS",
    "default_epochs",
    "default_max_length",
    "head_for",
    "normalise_finetune_task",
    "normalise_head",
    "normalise_pooling",
]

FINETUNE_TASKS: tuple[str, ...] = ("cola", "sst2", "rte", "squad")
CLASSIFICATION_TASKS: tuple[str, ...] = ("cola", "sst2", "rte")
NO_FINETUNE = "none"  # the pre-trained encoder, in the results' finetune_task column
PRETRAINED_LABEL = "pretrained"  # the pre-trained encoder's label in attention statistics
HEADS: tuple[str, ...] = ("cls", "mean")  # sentence-level fine-tuning heads (paper Sec. 3.4 and 5.1)
# Which masked-LM head a perplexity row was computed with (its ``mlm_head`` column): the pre-trained model's own
# (the paper's), or one fitted on the frozen pre-trained encoder for an encoder published without a head.
MLM_HEAD_PRETRAINED, MLM_HEAD_FITTED = "pretrained", "fitted"
FITTED_HEAD_NOTE = ("analogue: head fitted on the frozen pre-trained encoder (WikiText-2 valid), "
                    "not the paper's pre-trained head")
SQUAD_HEAD = "span"  # SQuAD always uses the token-level span head
POOLINGS: tuple[str, ...] = ("cls", "mean")  # probing feature poolings (paper Sec. 3.2)
PROBING_TASKS: tuple[str, ...] = ("bigram_shift", "coordination_inversion", "odd_man_out")
# Label order per probing task (index = class id): the "unchanged" class first, as in the SentEval README.
PROBING_LABELS: dict[str, tuple[str, ...]] = {
    "bigram_shift": ("O", "I"),
    "coordination_inversion": ("O", "I"),
    "odd_man_out": ("O", "C"),
}
# All ten probing tasks of SentEval (Conneau et al. 2018, Table 1 order), each readable and downloadable by name.
# PROBING_TASKS above stays the paper's three: it is the grid's default task list.
SENTEVAL_TASKS: tuple[str, ...] = (
    "sentence_length", "word_content", "tree_depth", "top_constituents", "bigram_shift",
    "past_present", "subj_number", "obj_number", "odd_man_out", "coordination_inversion",
)
# Label sets from SentEval's data/probing/README.md. word_content has 1000 word labels, not listed: a file's own
# labels are taken.
SENTEVAL_LABELS: dict[str, tuple[str, ...]] = {
    **PROBING_LABELS,
    "sentence_length": ("0", "1", "2", "3", "4", "5"),  # bins 5-8, 9-12, 13-16, 17-20, 21-25, 26-28 tokens
    "tree_depth": tuple(str(depth) for depth in range(5, 13)),
    "top_constituents": (
        "ADVP_NP_VP_.", "CC_ADVP_NP_VP_.", "CC_NP_VP_.", "IN_NP_VP_.", "NP_ADVP_VP_.", "NP_NP_VP_.", "NP_PP_.",
        "NP_VP_.", "OTHER", "PP_NP_VP_.", "RB_NP_VP_.", "SBAR_NP_VP_.", "SBAR_VP_.", "S_CC_S_.", "S_NP_VP_.",
        "S_VP_.", "VBD_NP_VP_.", "VP_.", "WHADVP_SQ_.", "WHNP_SQ_.",
    ),
    "past_present": ("PRES", "PAST"),
    "subj_number": ("NN", "NNS"),
    "obj_number": ("NN", "NNS"),
}
# Tasks whose classes come from the corpus (SentEval's word list, depth range, most common constituent sequences):
# a file built from another corpus (probeft make-probing-data) may have other labels, so readers accept any.
SENTEVAL_CORPUS_LABEL_TASKS: frozenset[str] = frozenset({"word_content", "tree_depth", "top_constituents"})
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "cola": ("mcc", "accuracy"),
    "sst2": ("accuracy",),
    "rte": ("accuracy",),
    "squad": ("exact_match", "f1"),
}


def _key(name: object) -> str:
    return str(name).strip().lower().replace("-", "").replace("_", "")


def normalise_finetune_task(task: str, *, allow_none: bool = False, parameter: str = "task") -> str:
    """``"CoLA"``, ``"SST-2"``, ``"sst_2"`` -> ``"cola"``, ``"sst2"``.

    Args:
        task: a fine-tuning task name.
        allow_none: also accept ``"none"`` (the pre-trained encoder).
        parameter: the name shown in the error.

    Raises:
        ValueError: an unknown task, listing the valid ones.
    """
    valid = FINETUNE_TASKS + ((NO_FINETUNE,) if allow_none else ())
    key = _key(task)
    if key not in valid:
        raise ValueError(f"{parameter}={task!r} is not a fine-tuning task; expected one of {valid}")
    return key


def normalise_head(head: str, task: str | None = None, *, parameter: str = "head") -> str:
    """A fine-tuning head name, checked against the task (SQuAD takes only :data:`SQUAD_HEAD`).

    Args:
        head: ``"cls"`` / ``"mean"`` (or ``"span"`` for SQuAD); ``None`` picks the task's default.
        task: the (normalised or not) fine-tuning task, or None to check the name alone.
        parameter: the name shown in the error.
    """
    task = normalise_finetune_task(task) if task is not None else None
    if head is None:
        return SQUAD_HEAD if task == "squad" else "cls"
    name = str(head).strip().lower()
    if task == "squad":
        if name != SQUAD_HEAD:
            raise ValueError(
                f"{parameter}={head!r} is not valid for task 'squad': SQuAD uses the token-level span head, "
                f"use {parameter}={SQUAD_HEAD!r} (or None)"
            )
        return name
    if name not in HEADS:
        raise ValueError(f"{parameter}={head!r} is not a head" + (f" for task {task!r}" if task else "")
                         + f"; expected one of {HEADS}")
    return name


def head_for(task: str, head: str) -> str:
    """The head a fine-tuning run really uses: SQuAD always has the span head, others keep ``head``."""
    return SQUAD_HEAD if normalise_finetune_task(task) == "squad" else head


def normalise_pooling(pooling: str, *, parameter: str = "pooling") -> str:
    """``"cls"`` or ``"mean"``; ValueError naming ``parameter`` otherwise."""
    name = str(pooling).strip().lower()
    if name not in POOLINGS:
        raise ValueError(f"{parameter}={pooling!r} is not a pooling; expected one of {POOLINGS}")
    return name


def default_epochs(task: str) -> int:
    """The paper's epochs: 1 for SST-2, 3 otherwise (Sec. 3.4)."""
    return 1 if normalise_finetune_task(task) == "sst2" else 3


def default_max_length(task: str) -> int:
    """The paper's input length: 384 tokens for SQuAD, 128 for the GLUE tasks."""
    return 384 if normalise_finetune_task(task) == "squad" else 128
