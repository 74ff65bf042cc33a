"""The write side of the fine-tuning checkpoint store (the layout and the read side: :mod:`probeft.finetune.checkpoints`).

* :func:`write_epoch` writes ``run_dir/epoch-<e>/`` (encoder + tokenizer, ``heads.safetensors``, the
  ``checkpoint.json`` marker last) in a staging folder that replaces the final one only when complete
  (:func:`probeft.core.files.atomic_directory`), so a crash never leaves a half-written ``epoch-<e>``.
* :func:`remove_incomplete` deletes epoch folders without a marker and staging folders a killed
  process left behind.
* :func:`run_signature` / :func:`check_same_run`: a folder holding a run with other settings is never
  overwritten.
* :func:`resume_point`: the Trainer state (``run_dir/.trainer-resume/``) to continue from, if any.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import safetensors.torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from probeft import models
from probeft.core import names
from probeft.core.files import atomic_directory
from probeft.finetune.checkpoints import (
    CHECKPOINT_MARKER,
    HEADS_FILE,
    WEIGHTS_KEY,
    checkpoint_dir,
    completed_epochs,
    epoch_dirs,
    read_checkpoint_info,
    weight_digests,
)
from probeft.finetune.config import RUNTIME_FIELDS, FinetuneConfig
from probeft.finetune.heads import head_state_dict
from probeft.results.table import results_frame

__all__ = [
    "RESUME_DIR",
    "check_same_run",
    "latest_resume_checkpoint",
    "remove_incomplete",
    "resume_point",
    "run_signature",
    "stored_results",
    "write_epoch",
]

RESUME_DIR = ".trainer-resume"
# Staging and moved-aside folders of probeft.core.files (".epoch-3.tmp-x1y2", ".epoch-3.old-x1y2"), and the
# ".tmp-epoch-3-<pid>" staging folders of earlier probeft versions: all debris once no process runs.
_LEFTOVER = re.compile(r"\.(epoch-\d+\.(tmp|old)-.+|tmp-epoch-.+)")


def run_signature(config: FinetuneConfig, fingerprint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Settings that define a run's results (resolved config minus runtime knobs, plus model identity).

    Args:
        config: the run's settings.
        fingerprint: :func:`probeft.models.model_fingerprint` of ``config.model`` (computed if None).

    Returns:
        A JSON-compatible dict.
    """
    config = config.resolved()
    signature = {k: v for k, v in dataclasses.asdict(config).items() if k not in RUNTIME_FIELDS}
    signature["adam_betas"] = list(config.adam_betas)
    fingerprint = fingerprint if fingerprint is not None else models.model_fingerprint(config.model)
    # The resolved path depends on the cache location; the weights' hash is what identifies the model.
    signature["model_revision"] = fingerprint["revision"]
    return json.loads(json.dumps(signature, default=str))


def _effective_batch(signature: dict[str, Any]) -> dict[str, Any]:
    """``signature`` with the batch as the effective one (batch x accumulation, accumulation 1).

    16 x 2 trains on the same batches of examples, with the same optimiser steps, as 32 x 1 (what an
    out-of-memory retry switches to, :mod:`probeft.core.oom`), so the two are one run.
    """
    if "batch_size" not in signature:
        return signature
    steps = int(signature.get("gradient_accumulation_steps", 1) or 1)
    return {**signature, "batch_size": int(signature["batch_size"]) * steps, "gradient_accumulation_steps": 1}


def check_same_run(run_dir: Path, signature: dict[str, Any]) -> None:
    """Refuse a folder whose complete epochs were trained with other settings (the same effective batch counts as the same).

    Raises:
        ValueError: naming every differing setting with its stored and requested value.
    """
    requested = _effective_batch(signature)
    for epoch in completed_epochs(run_dir):
        stored = _effective_batch(read_checkpoint_info(checkpoint_dir(run_dir, epoch)).get("signature", {}))
        differing = sorted(k for k in set(stored) | set(requested) if stored.get(k) != requested.get(k))
        if differing:
            details = ", ".join(f"{k}: stored {stored.get(k)!r} vs requested {signature.get(k)!r}" for k in differing)
            raise ValueError(
                f"{run_dir} holds a fine-tuning run with a different configuration ({details}); "
                "use another output_dir or delete it"
            )


def remove_incomplete(run_dir: Path) -> list[Path]:
    """Delete epoch folders without a readable marker and leftover staging folders.

    Returns:
        The deleted folders.
    """
    removed = []
    complete = set(completed_epochs(run_dir))
    for epoch, path in epoch_dirs(run_dir).items():
        if epoch not in complete:
            shutil.rmtree(path)
            removed.append(path)
    if run_dir.is_dir():
        for path in run_dir.iterdir():
            if path.is_dir() and _LEFTOVER.fullmatch(path.name):
                shutil.rmtree(path)
                removed.append(path)
    return removed


def write_epoch(
    run_dir: Path, epoch: int, model: nn.Module, tokenizer: PreTrainedTokenizerBase, info: dict[str, Any]
) -> Path:
    """Atomically write ``epoch-<e>``: encoder + tokenizer + head weights, the marker last.

    Args:
        run_dir: the run folder.
        epoch: the finished epoch (from 1).
        model: a :class:`~probeft.finetune.heads.SequenceClassifier` or span model (``.encoder`` + head).
        tokenizer: saved next to the encoder.
        info: the marker's content (epoch, metrics, settings).

    Returns:
        The epoch folder. An older folder of the same epoch (a run being redone) is replaced.
    """
    final = checkpoint_dir(run_dir, epoch)
    with atomic_directory(final) as staging:
        model.encoder.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        safetensors.torch.save_file(head_state_dict(model), str(staging / HEADS_FILE), metadata={"format": "pt"})
        # The weights' digests go into the marker, so every later reader can check them (verify_checkpoint).
        info = {**info, WEIGHTS_KEY: weight_digests(staging)}
        (staging / CHECKPOINT_MARKER).write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")
    return final


def latest_resume_checkpoint(run_dir: Path) -> tuple[Path, int] | None:
    """The newest Trainer checkpoint whose state file (written last) exists, with its epoch."""
    candidates = []
    for path in (run_dir / RESUME_DIR).glob("checkpoint-*"):
        state_file = path / "trainer_state.json"
        if path.is_dir() and state_file.is_file():
            try:
                state = json.loads(state_file.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                continue
            candidates.append((int(state.get("global_step", 0)), path, int(round(float(state.get("epoch", 0))))))
    if not candidates:
        return None
    _, path, epoch = max(candidates)
    return path, epoch


def resume_point(config: FinetuneConfig, run_dir: Path, done: list[int], is_main: bool) -> Path | None:
    """The Trainer checkpoint to continue from, or None to start over.

    Resuming needs Trainer state for an epoch whose checkpoints (and all before it) are complete.
    Epoch folders after the resume point are deleted (on the main process), so every epoch of a run
    comes from one training trajectory; starting over also drops the stale Trainer state.
    """
    latest = latest_resume_checkpoint(run_dir) if config.resume else None
    resume_epoch = 0
    if latest is not None and all(e in done for e in range(1, latest[1] + 1)) and latest[1] < config.epochs:
        resume_epoch = latest[1]
    if is_main:
        for epoch in done:
            if epoch > resume_epoch:  # redone by this run
                shutil.rmtree(checkpoint_dir(run_dir, epoch))
        if resume_epoch == 0:
            shutil.rmtree(run_dir / RESUME_DIR, ignore_errors=True)
    return latest[0] if resume_epoch > 0 else None


def stored_results(config: FinetuneConfig, run_dir: Path) -> pd.DataFrame:
    """Result rows (stage "finetune", split "dev", one per epoch and task metric) read from the epoch markers."""
    rows = []
    for epoch in range(1, config.epochs + 1):
        info = read_checkpoint_info(checkpoint_dir(run_dir, epoch))
        for metric in names.TASK_METRICS[config.task]:
            rows.append({"epoch": epoch, "metric": metric, "value": info["metrics"][metric]})
    return results_frame(
        rows, stage="finetune", model=config.label, finetune_task=config.task, finetune_head=config.head,
        seed=config.seed, probe_task="none", pooling=config.head, layer=-1, split="dev",
    )
