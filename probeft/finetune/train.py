"""The fine-tuning run: Trainer arguments with the paper's defaults, the device, and :func:`run_finetune`.

Training runs through the Hugging Face :class:`~transformers.Trainer`, so ``torchrun`` /
``accelerate`` multi-GPU, mixed precision and gradient accumulation work unchanged. After every
epoch the dev set is evaluated and the epoch checkpoint is written (:func:`probeft.finetune.store.write_epoch`).

Restart and resume: on start, epoch folders without a marker and staging folders are removed. If
every requested epoch is complete, nothing is trained and the stored metrics are returned. Otherwise,
with ``resume=True`` the run continues from the last complete epoch using the Trainer's optimizer /
scheduler / RNG state, kept in ``output_dir/.trainer-resume/`` while a run is unfinished and deleted
when it completes; without that state (or with ``resume=False``) the run restarts from scratch and any
earlier epoch folders are replaced. A folder that holds a run with a different configuration is
never overwritten: that is an error naming the differing settings.

Devices: ``"cpu"``; ``"cuda"`` / ``"auto"`` (the Trainer's own placement: one process uses every
visible GPU through ``DataParallel``, ``torchrun`` one GPU per process); ``"cuda:N"``: one process on
GPU ``N`` only. The Trainer itself always takes ``cuda:0`` for a single process, so for ``"cuda:N"``
:class:`_OneGpuArguments` reports that device (and one GPU) and makes it the current CUDA device,
where the Accelerator's index-less ``"cuda"`` then places the model and batches.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments
from transformers import set_seed as hf_set_seed

from probeft import models
from probeft.core import names, oom
from probeft.core.devices import resolve_device
from probeft.core.quiet import quiet_transformers
from probeft.finetune import store
from probeft.finetune.checkpoints import completed_epochs
from probeft.finetune.config import FinetuneConfig
from probeft.finetune.heads import SequenceClassifier, SpanQuestionAnsweringModel, load_encoder_for_finetuning
from probeft.finetune.task_data import load_task_data, model_input_keys

__all__ = ["run_finetune", "training_arguments"]


@dataclass
class _OneGpuArguments(TrainingArguments):
    """TrainingArguments for one process on the one GPU ``cuda:<gpu_index>`` (``device="cuda:N"``).

    Without it the Trainer would train on ``cuda:0`` (and every other visible GPU through DataParallel).
    """

    gpu_index: int = 0

    @cached_property
    def _one_gpu(self) -> torch.device:
        _ = self._setup_devices  # the Trainer's own set-up first: it makes cuda:0 the current device
        device = torch.device("cuda", self.gpu_index)
        torch.cuda.set_device(device)  # the Accelerator's "cuda" (no index) means the current device
        return device

    @property
    def device(self) -> torch.device:
        """The chosen GPU."""
        return self._one_gpu

    @property
    def n_gpu(self) -> int:
        """One GPU: no DataParallel over the others."""
        _ = self._one_gpu
        return 1


def _device_placement(device: str) -> tuple[bool, int | None]:
    """``(use CUDA, pinned GPU index or None)`` for a checked device string.

    Raises:
        ValueError: CUDA requested but absent, a GPU index past the visible ones (both from
            :func:`probeft.core.devices.resolve_device`), a device type the Trainer is not set up for
            here, or ``"cuda:N"`` under ``torchrun`` (which gives every process its own GPU).
    """
    resolved = resolve_device(device)
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}: fine-tuning runs on 'cpu' or CUDA ('auto', 'cuda', 'cuda:N')")
    distributed = int(os.environ.get("LOCAL_RANK", -1)) != -1
    if resolved.type == "cuda" and resolved.index is None and not distributed and torch.cuda.device_count() > 1:
        # One process seeing several GPUs: the Trainer would wrap the model in DataParallel and silently
        # train with batch_size x n_gpu. Pin the current GPU instead; torchrun or one Dask worker per GPU
        # (probeft grid --workers) is how several GPUs are used.
        return True, torch.cuda.current_device()
    if resolved.type == "cpu" or resolved.index is None:
        return resolved.type == "cuda", None
    if distributed:
        raise ValueError(
            f"device={device!r} pins one GPU, but this is a distributed run (torchrun gives each process its "
            "own GPU); use device='cuda' or 'auto'"
        )
    return True, resolved.index


PAIR_TASKS = ("rte", "squad")  # tasks whose inputs are two segments


def _segments_beyond_tokenizer(model: str) -> bool:
    """Whether the encoder takes segment ids its tokenizer does not list (see ``model_input_keys``)."""
    with quiet_transformers():
        tokenizer = models.load_tokenizer(model)
        encoder_config = models.load_config(model)
    return ("token_type_ids" not in tokenizer.model_input_names
            and "token_type_ids" in model_input_keys(tokenizer, encoder_config))


def resolved_precision(precision: str, *, cuda: bool) -> str:
    """The precision a run trains in: ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    ``"auto"``: fp32 on the CPU; on CUDA bf16 where the GPU has it natively (Ampere and newer), else fp16.

    Raises:
        ValueError: bf16 or fp16 asked for without CUDA.
    """
    if precision == "auto":
        # Native bf16 only: by default torch also counts the slow emulation of V100 / T4.
        return ("bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16") if cuda else "fp32"
    if precision in ("bf16", "fp16") and not cuda:
        raise ValueError(f"precision={precision!r} needs CUDA; use 'fp32' or 'auto' on the CPU")
    return precision


def _mixed_precision(precision: str, cuda: bool) -> dict[str, bool]:
    chosen = resolved_precision(precision, cuda=cuda)
    return {"bf16": chosen == "bf16", "fp16": chosen == "fp16"}


def training_arguments(config: FinetuneConfig, output_dir: str | Path) -> TrainingArguments:
    """The Trainer arguments for ``config`` (paper defaults: AdamW, 10 % linear warm-up, then constant).

    Evaluation runs after every epoch; Trainer checkpoints (optimizer state for resuming) go to
    ``output_dir/.trainer-resume`` and keep only the latest, or are off when ``config.resume`` is false.
    Creating them also sets up the distributed state under ``torchrun``.

    Raises:
        ValueError: bad settings, or a device that is not on this machine (see :func:`_device_placement`).
    """
    config = config.resolved()
    label_names = ["start_positions", "end_positions"] if config.task == "squad" else ["labels"]
    cuda, gpu_index = _device_placement(config.device)
    beta1, beta2 = config.adam_betas
    if gpu_index is None:
        arguments_class, pinned = TrainingArguments, {}
    else:
        arguments_class, pinned = _OneGpuArguments, {"gpu_index": gpu_index}
    return arguments_class(
        output_dir=str(Path(output_dir) / store.RESUME_DIR),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a ratio of all optimiser steps in 5.x
        weight_decay=config.weight_decay,
        adam_beta1=beta1,
        adam_beta2=beta2,
        adam_epsilon=config.adam_epsilon,
        max_grad_norm=config.max_grad_norm,
        eval_strategy="epoch",
        save_strategy="epoch" if config.resume else "no",
        save_total_limit=1 if config.resume else None,
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        report_to="none",
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=not cuda,
        remove_unused_columns=False,  # our datasets hold exactly the model inputs
        label_names=label_names,
        dataloader_num_workers=config.num_workers,
        disable_tqdm=not config.progress,
        **_mixed_precision(config.precision, cuda),
        **pinned,
    )


class _EpochCheckpointCallback(TrainerCallback):
    """After each epoch's evaluation: record the task metrics and write the epoch checkpoint."""

    def __init__(self, write: Callable[[int, nn.Module, dict[str, float]], None], metric_names: Sequence[str]):
        self.write = write
        self.metric_names = tuple(metric_names)

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):  # noqa: D102
        epoch = int(round(state.epoch))
        scores = {name: float(metrics[f"eval_{name}"]) for name in self.metric_names}
        if "eval_loss" in metrics:
            scores["loss"] = float(metrics["eval_loss"])
        if state.is_world_process_zero:
            self.write(epoch, model, scores)
        return control


def _fit_to_positions(config: FinetuneConfig, encoder_config: Any) -> FinetuneConfig:
    """Cap ``max_length`` at the encoder's position limit (tiny test models have 128 positions).

    RoBERTa-style models start positions after the padding index, so they lose ``pad_token_id + 1``
    positions. When SQuAD windows shrink, ``doc_stride`` shrinks to a quarter of the window.
    """
    limit = getattr(encoder_config, "max_position_embeddings", None)
    if limit is None or limit <= 0:
        return config
    if getattr(encoder_config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limit -= int(getattr(encoder_config, "pad_token_id", 1) or 0) + 1
    if config.max_length <= limit:
        return config
    doc_stride = min(config.doc_stride, limit // 4)
    warnings.warn(
        f"max_length={config.max_length} exceeds the {limit} positions of {config.model!r}; using max_length={limit}"
        + (f" and doc_stride={doc_stride}" if config.task == "squad" else ""),
        stacklevel=3,
    )
    return dataclasses.replace(config, max_length=limit, doc_stride=doc_stride)


def run_finetune(
    config: FinetuneConfig,
    data_dir: str | Path | None,
    output_dir: str | Path,
    *,
    retries: list[oom.BatchRetry] | None = None,
) -> pd.DataFrame:
    """Fine-tune ``config.model`` on ``config.task``, checkpointing and evaluating after every epoch.

    On a device out-of-memory error the run is retried with half the per-device batch and twice the
    gradient accumulation (same effective batch, optimiser steps and data order; :mod:`probeft.core.oom`),
    from the last complete epoch; each halving is appended to ``retries`` when given. A batch of one,
    or an odd batch, that does not fit re-raises the error.

    Args:
        config: the run's settings (see :class:`~probeft.finetune.config.FinetuneConfig`).
        data_dir: data folder in the layout of ``write_demo_data`` (``glue/``, ``squad/``); ``None``
            falls back to ``$PROBEFT_DATA_DIR`` (for GLUE, then the hub).
        output_dir: where ``epoch-<e>/`` checkpoints go.
        retries: where out-of-memory retries are recorded, for the provenance.

    Returns:
        As :func:`_train`.
    """
    while True:
        retry = None
        try:
            return _train(config, data_dir, output_dir)
        except RuntimeError as error:
            if not oom.is_out_of_memory(error):
                raise
            retry = oom.retry_record("finetune", error, config.batch_size, accumulation=config.gradient_accumulation_steps)
        oom.release_memory()  # outside the except block: its traceback held the failed step's tensors
        if retries is not None:
            retries.append(retry)
        config = dataclasses.replace(config, batch_size=retry.retry_batch_size,
                                     gradient_accumulation_steps=retry.gradient_accumulation_steps)


def _train(config: FinetuneConfig, data_dir: str | Path | None, output_dir: str | Path) -> pd.DataFrame:
    """Fine-tune ``config.model`` on ``config.task``, checkpointing and evaluating after every epoch (one attempt).

    Under ``torchrun`` every process calls this; only the main process writes to ``output_dir``.

    Args:
        config: the run's settings (see :class:`~probeft.finetune.config.FinetuneConfig`).
        data_dir: data folder in the layout of ``write_demo_data`` (``glue/``, ``squad/``); ``None``
            falls back to ``$PROBEFT_DATA_DIR`` (for GLUE, then the hub).
        output_dir: where ``epoch-<e>/`` checkpoints go.

    Returns:
        Result rows (stage "finetune", split "dev", one row per epoch and task metric; see
        :data:`probeft.core.names.TASK_METRICS`), read back from the epoch markers.

    Raises:
        ValueError: bad settings, a device absent here, empty data, or ``output_dir`` holding a different run.
    """
    config = config.resolved()
    output_dir = Path(output_dir)
    args = training_arguments(config, output_dir)  # also sets up the distributed state
    is_main = args.process_index == 0
    fingerprint = models.model_fingerprint(config.model)  # hashes the weight files: once per run
    signature = store.run_signature(config, fingerprint)
    if config.task in PAIR_TASKS and _segments_beyond_tokenizer(config.model):
        # Before probeft gave such encoders (ALBERT under transformers 5) their segment ids, sentence pairs
        # trained with all-zero segments; the key makes those runs refuse to resume instead of being reused.
        signature["segment_ids"] = "from the encoder config"
    with args.main_process_first(desc="checking existing checkpoints"):
        if is_main:
            output_dir.mkdir(parents=True, exist_ok=True)
            store.remove_incomplete(output_dir)
        store.check_same_run(output_dir, signature)
        done = completed_epochs(output_dir)
        if all(epoch in done for epoch in range(1, config.epochs + 1)):
            if is_main:
                shutil.rmtree(output_dir / store.RESUME_DIR, ignore_errors=True)
            resume_from, finished = None, True
        else:
            resume_from, finished = store.resume_point(config, output_dir, done, is_main), False
    if finished:
        return store.stored_results(config, output_dir)

    with quiet_transformers():
        hf_set_seed(config.seed)  # the fresh head's initialisation depends on it
        tokenizer = models.load_tokenizer(config.model)
        tokenizer.padding_side = "right"  # SQuAD token positions assume right padding
        encoder = load_encoder_for_finetuning(config)
    keys = model_input_keys(tokenizer, encoder.config)
    config = _fit_to_positions(config, encoder.config)
    task_data = load_task_data(config, data_dir, tokenizer, keys)
    if config.task == "squad":
        model: nn.Module = SpanQuestionAnsweringModel(encoder)
    else:
        model = SequenceClassifier(encoder, task_data.num_labels, config.head, config.classifier_dropout)

    started = time.time()

    def write(epoch: int, trained: nn.Module, scores: dict[str, float]) -> None:
        info = {
            "epoch": epoch, "metrics": scores, "task": config.task, "head": config.head, "seed": config.seed,
            "model": config.model, "model_name": config.label, "model_fingerprint": fingerprint,
            "label_names": task_data.label_names, "data_sizes": task_data.sizes, "signature": signature,
            "wall_time_s": round(time.time() - started, 2), "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            # what the run actually used, which "auto" and the device count decide at run time
            "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
            "effective_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps
            * max(args.n_gpu, 1) * args.world_size,
            "device": str(args.device),
        }
        with quiet_transformers():
            store.write_epoch(output_dir, epoch, trained, tokenizer, info)

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=task_data.train,
        eval_dataset=task_data.dev,
        data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=None if args.use_cpu else 8),
        compute_metrics=task_data.compute_metrics,
        callbacks=[_EpochCheckpointCallback(write, names.TASK_METRICS[config.task])],
    )
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if is_main:
        shutil.rmtree(output_dir / store.RESUME_DIR, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()  # other processes read the markers the main process wrote
    return store.stored_results(config, output_dir)
