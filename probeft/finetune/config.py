"""Fine-tuning settings: :class:`FinetuneConfig`, its paper defaults and its validation.

Task, head, epoch and length defaults come from :mod:`probeft.core.names`; the device string is checked
by :func:`probeft.core.devices.check_device` (syntax only, so a config written for a GPU machine
validates anywhere; whether the device exists is checked when training starts).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from probeft.core import names
from probeft.core.devices import check_device

__all__ = ["PRECISIONS", "RUNTIME_FIELDS", "FinetuneConfig"]

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
# Settings that do not change what is trained or measured; they may differ between a run and its resume.
RUNTIME_FIELDS: tuple[str, ...] = (
    "model_name", "device", "precision", "eval_batch_size", "resume", "progress", "logging_steps", "num_workers",
)


@dataclass
class FinetuneConfig:
    """Fine-tuning settings; defaults are the paper's (appendix Table 3).

    Attributes:
        model: model spec for :func:`probeft.models.resolve_model` (tiny name, alias, path or hub id).
        task: one of :data:`probeft.core.names.FINETUNE_TASKS`; case, ``-`` and ``_`` are ignored
            (``"SST-2"``, ``"sst_2"`` and ``"sst2"`` are one task).
        head: ``"cls"`` or ``"mean"`` for classification, ``"span"`` for SQuAD; ``None`` picks ``"cls"``
            for classification and ``"span"`` for SQuAD.
        model_name: label written to the results' ``model`` column (default: ``model``).
        seed: seed for head initialisation, dropout and data order.
        epochs: number of epochs; ``None`` means 3, or 1 for SST-2 (as in the paper).
        learning_rate: peak learning rate after warm-up.
        batch_size: training batch size per device (effective = batch_size x devices x accumulation).
        eval_batch_size: evaluation batch size per device.
        gradient_accumulation_steps: micro-batches per optimiser step.
        max_length: maximum tokens per input; ``None`` means 128 (classification) or 384 (SQuAD).
        doc_stride: SQuAD: tokens shared by consecutive context windows.
        max_answer_length: SQuAD: longest predicted answer in tokens.
        n_best: SQuAD: start / end candidates considered per window.
        max_train: train on a seeded random subset of ``max_train`` examples (SQuAD: questions), kept in
            file order; the same subset for every seed and model.
        max_eval: evaluate on a seeded random subset of ``max_eval`` dev examples (SQuAD: questions).
        warmup_ratio: fraction of optimiser steps with linear warm-up.
        lr_scheduler: Trainer scheduler name; the paper keeps the rate constant after warm-up.
        weight_decay: AdamW weight decay (the Trainer exempts biases and LayerNorm weights).
        adam_epsilon: Adam epsilon.
        adam_betas: Adam (beta1, beta2).
        max_grad_norm: gradient clipping norm.
        hidden_dropout: dropout on the encoder's hidden states (set in its config).
        attention_dropout: dropout on the encoder's attention probabilities (set in its config).
        classifier_dropout: dropout between the tanh layer and the classifier.
        precision: ``"auto"`` (bf16 on CUDA if supported, else fp16; fp32 on CPU), ``"fp32"``,
            ``"bf16"`` or ``"fp16"``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` (the Trainer places processes on GPUs, all visible GPUs
            for one process) or ``"cuda:N"`` (one process on GPU ``N`` only).
        resume: keep optimizer state between epochs so an interrupted run continues where it stopped.
        progress: show progress bars.
        logging_steps: Trainer logging interval in optimiser steps.
        num_workers: data-loader worker processes.
    """

    model: str = "tiny-bert"
    task: str = "cola"
    head: str | None = None
    model_name: str | None = None
    seed: int = 0
    epochs: int | None = None
    learning_rate: float = 2e-5
    batch_size: int = 32
    eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    max_length: int | None = None
    doc_stride: int = 128
    max_answer_length: int = 30
    n_best: int = 20
    max_train: int | None = None
    max_eval: int | None = None
    warmup_ratio: float = 0.1
    lr_scheduler: str = "constant_with_warmup"
    weight_decay: float = 0.01
    adam_epsilon: float = 1e-8
    adam_betas: tuple[float, float] = (0.9, 0.99)
    max_grad_norm: float = 1.0
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    classifier_dropout: float = 0.1
    precision: str = "auto"
    device: str = "auto"
    resume: bool = True
    progress: bool = True
    logging_steps: int = 50
    num_workers: int = 0

    def resolved(self) -> FinetuneConfig:
        """A validated copy with ``task`` / ``device`` normalised and ``head`` / ``epochs`` / ``max_length`` filled in.

        Raises:
            ValueError: an unknown task, head, precision or device, or a setting out of range
                (the message names the parameter).
        """
        task = names.normalise_finetune_task(self.task)
        head = names.normalise_head(self.head, task)
        epochs = self.epochs if self.epochs is not None else names.default_epochs(task)
        max_length = self.max_length if self.max_length is not None else names.default_max_length(task)
        config = dataclasses.replace(
            self, task=task, head=head, epochs=int(epochs), max_length=int(max_length),
            adam_betas=tuple(float(b) for b in self.adam_betas), device=check_device(self.device),
        )
        config._check_ranges()
        return config

    def _check_ranges(self) -> None:
        positive = {
            "epochs": self.epochs, "learning_rate": self.learning_rate, "batch_size": self.batch_size,
            "eval_batch_size": self.eval_batch_size, "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "max_length": self.max_length, "max_answer_length": self.max_answer_length, "n_best": self.n_best,
            "logging_steps": self.logging_steps,
        }
        for name, value in positive.items():
            if value is None or value <= 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        for name in ("max_train", "max_eval"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        for name in ("hidden_dropout", "attention_dropout", "classifier_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if len(self.adam_betas) != 2:
            raise ValueError(f"adam_betas must be a pair (beta1, beta2), got {self.adam_betas!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; expected one of {PRECISIONS}")
        if self.task == "squad" and not 0 < self.doc_stride < self.max_length // 2:
            # The tokenizer needs room for the question plus at least `doc_stride` new context tokens.
            raise ValueError(
                f"doc_stride must be in (0, max_length // 2) for SQuAD, got doc_stride={self.doc_stride} "
                f"with max_length={self.max_length} (the paper uses 128 and 384)"
            )

    @property
    def label(self) -> str:
        """The model label used in result rows."""
        return self.model_name if self.model_name else self.model
