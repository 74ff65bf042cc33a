"""Fine-tuning pre-trained encoders on CoLA, SST-2, RTE and SQuAD v1.1 (paper Sec. 3.4, Table 1).

What this module does:

* Classification (CoLA, SST-2, RTE): the encoder (``AutoModel``) plus a *fresh* head
  ``z = tanh(W h + b)`` where ``h`` is the last layer's first-token vector (``head="cls"``) or its
  padding-masked mean over tokens (``head="mean"``, special tokens included, padding excluded),
  followed by dropout and a linear classifier. The encoder's own pre-trained pooler (BERT's NSP /
  ALBERT's SOP dense layer) is not used by this head; it is frozen so it stays the pre-trained one and
  every saved encoder loads with ``AutoModel`` without missing weights.
* SQuAD v1.1: a token-level span head (one linear layer -> start / end logits, as
  ``AutoModelForQuestionAnswering``) on the encoder; long contexts are split into windows of
  ``max_length`` (384) tokens with a stride of ``doc_stride`` (128) tokens; predictions are the best
  valid span of the ``n_best`` start and end candidates (at most ``max_answer_length`` tokens), scored
  with the official EM / F1 definition (:mod:`probeft.metrics`). Its head name is ``"span"``.
* Training runs through the Hugging Face :class:`~transformers.Trainer` with the paper's
  hyper-parameters (:class:`FinetuneConfig`), so ``torchrun`` / ``accelerate`` multi-GPU, mixed
  precision and gradient accumulation work unchanged.
* After every epoch the dev set is evaluated and the *encoder* and tokenizer are saved to
  ``output_dir/epoch-<e>/`` (``AutoModel.from_pretrained`` loads it alone), with the head weights in
  ``heads.safetensors`` and ``checkpoint.json`` (the completion marker, written last). The directory is
  written under a temporary name and renamed, so a crash never leaves a half-written ``epoch-<e>``.

Restart and resume: on start, epoch directories without a marker and temporary directories are
removed. If every requested epoch is complete, nothing is trained and the stored metrics are returned.
Otherwise, with ``resume=True`` the run continues from the last complete epoch using the Trainer's
optimizer / scheduler / RNG state, kept in ``output_dir/.trainer-resume/`` while a run is unfinished
and deleted when it completes; without that state (or with ``resume=False``) the run restarts from
scratch and any earlier epoch directories are replaced. A directory that holds a run with a different
configuration is never overwritten: that is an error naming the differing settings.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import safetensors.torch
import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    DataCollatorWithPadding,
    EvalPrediction,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers import set_seed as hf_set_seed
from transformers.modeling_outputs import QuestionAnsweringModelOutput, SequenceClassifierOutput

from probeft import data, metrics, models
from probeft.results import results_frame

__all__ = [
    "CHECKPOINT_MARKER",
    "CLASSIFICATION_TASKS",
    "HEADS",
    "HEADS_FILE",
    "SQUAD_HEAD",
    "TASKS",
    "TASK_METRICS",
    "FinetuneConfig",
    "SequenceClassifier",
    "SpanQuestionAnsweringModel",
    "SquadFeatures",
    "checkpoint_dir",
    "completed_epochs",
    "final_checkpoint",
    "load_encoder_for_finetuning",
    "postprocess_squad",
    "prepare_squad_eval_features",
    "prepare_squad_train_features",
    "read_checkpoint_info",
    "run_finetune",
    "run_signature",
    "squad_answer_positions",
    "training_arguments",
]

TASKS: tuple[str, ...] = ("cola", "sst2", "rte", "squad")
CLASSIFICATION_TASKS: tuple[str, ...] = ("cola", "sst2", "rte")
HEADS: tuple[str, ...] = ("cls", "mean")  # sentence-level heads for the classification tasks
SQUAD_HEAD = "span"  # SQuAD always uses the token-level span head
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "cola": ("mcc", "accuracy"),
    "sst2": ("accuracy",),
    "rte": ("accuracy",),
    "squad": ("exact_match", "f1"),
}
CHECKPOINT_MARKER = "checkpoint.json"
HEADS_FILE = "heads.safetensors"
RESUME_DIR = ".trainer-resume"
_TMP_PREFIX = ".tmp-epoch-"
_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DEVICES = ("auto", "cpu", "cuda")
# Settings that do not change what is trained or measured; they may differ between a run and its resume.
_RUNTIME_FIELDS = ("model_name", "device", "precision", "eval_batch_size", "resume", "progress", "logging_steps",
                   "num_workers")


@dataclass
class FinetuneConfig:
    """Fine-tuning settings; defaults are the paper's (appendix Table 3).

    Attributes:
        model: model spec for :func:`probeft.models.resolve_model` (tiny name, alias, path or hub id).
        task: one of :data:`TASKS`.
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
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (the Trainer places processes on GPUs).
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
        """A validated copy with ``task`` lower-cased and ``head`` / ``epochs`` / ``max_length`` filled in.

        Raises:
            ValueError: an unknown task, head, precision or device, or a setting out of range
                (the message names the parameter).
        """
        task = _normalise_task(self.task)
        head = self.head if self.head is not None else (SQUAD_HEAD if task == "squad" else "cls")
        if task == "squad" and head != SQUAD_HEAD:
            raise ValueError(
                f"head={head!r} is not valid for task 'squad': SQuAD uses the token-level span head, "
                f"use head={SQUAD_HEAD!r} (or None)"
            )
        if task != "squad" and head not in HEADS:
            raise ValueError(f"unknown head {head!r} for task {task!r}; expected one of {HEADS}")
        epochs = self.epochs if self.epochs is not None else (1 if task == "sst2" else 3)
        max_length = self.max_length if self.max_length is not None else (384 if task == "squad" else 128)
        config = dataclasses.replace(
            self, task=task, head=head, epochs=int(epochs), max_length=int(max_length),
            adam_betas=tuple(float(b) for b in self.adam_betas),
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
        if self.precision not in _PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; expected one of {_PRECISIONS}")
        if self.device not in _DEVICES:
            raise ValueError(f"unknown device {self.device!r}; expected one of {_DEVICES}")
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


def _normalise_task(task: str) -> str:
    name = str(task).strip().lower().replace("-", "")
    if name not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    return name


# --------------------------------------------------------------------------------------------------
# Models: encoder + fresh heads
# --------------------------------------------------------------------------------------------------


def _masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over non-padding tokens: hidden (B, T, D), mask (B, T) -> (B, D)."""
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def _encoder_inputs(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if token_type_ids is not None:
        inputs["token_type_ids"] = token_type_ids
    return inputs


class SequenceClassifier(nn.Module):
    """Encoder + sentence head: ``logits = C(dropout(tanh(W h + b)))`` with ``h`` from the last layer.

    Args:
        encoder: an ``AutoModel`` encoder (its ``last_hidden_state`` is used).
        num_labels: number of classes.
        head: ``"cls"`` (first-token vector) or ``"mean"`` (padding-masked mean over tokens).
        dropout: dropout probability before the classifier.
    """

    def __init__(self, encoder: PreTrainedModel, num_labels: int, head: str = "cls", dropout: float = 0.1) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; expected one of {HEADS}")
        hidden_size = encoder.config.hidden_size
        self.encoder = encoder
        self.head = head
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)
        _init_linear(self.dense, encoder.config)
        _init_linear(self.classifier, encoder.config)

    def sentence_vector(self, last_hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled last layer: (B, T, D) -> (B, D)."""
        if self.head == "cls":
            return last_hidden[:, 0]
        return _masked_mean(last_hidden, attention_mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        """Logits (B, num_labels) and, given ``labels`` (B,), the mean cross-entropy."""
        hidden = self.encoder(**_encoder_inputs(input_ids, attention_mask, token_type_ids)).last_hidden_state
        pooled = torch.tanh(self.dense(self.sentence_vector(hidden, attention_mask)))
        logits = self.classifier(self.dropout(pooled))
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


class SpanQuestionAnsweringModel(nn.Module):
    """Encoder + span head: one linear layer maps each last-layer token vector to start / end logits.

    The class name contains "QuestionAnswering" so the Trainer recognises ``start_positions`` /
    ``end_positions`` as labels.
    """

    def __init__(self, encoder: PreTrainedModel) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = SQUAD_HEAD
        self.qa_outputs = nn.Linear(encoder.config.hidden_size, 2)
        _init_linear(self.qa_outputs, encoder.config)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
    ) -> QuestionAnsweringModelOutput:
        """Start and end logits (B, T); with positions (B,), the mean of the two cross-entropies."""
        hidden = self.encoder(**_encoder_inputs(input_ids, attention_mask, token_type_ids)).last_hidden_state
        start_logits, end_logits = self.qa_outputs(hidden).unbind(dim=-1)
        loss = None
        if start_positions is not None and end_positions is not None:
            seq_len = start_logits.shape[1]
            # Positions past the (padded) window are ignored rather than crashing the loss.
            start = start_positions.clamp(0, seq_len)
            end = end_positions.clamp(0, seq_len)
            loss_fn = nn.CrossEntropyLoss(ignore_index=seq_len)
            loss = (loss_fn(start_logits.float(), start) + loss_fn(end_logits.float(), end)) / 2
        return QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits)


def _init_linear(layer: nn.Linear, config: Any) -> None:
    """Initialise a fresh head layer like the encoder's own layers (normal(0, initializer_range))."""
    std = float(getattr(config, "initializer_range", 0.02))
    nn.init.normal_(layer.weight, mean=0.0, std=std)
    nn.init.zeros_(layer.bias)


def _head_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """All parameters that are not part of the encoder, contiguous and on the CPU."""
    return {
        name: tensor.detach().to("cpu").contiguous()
        for name, tensor in model.state_dict().items()
        if not name.startswith("encoder.")
    }


_HIDDEN_DROPOUT_KEYS = ("hidden_dropout_prob", "dropout", "hidden_dropout")
_ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout")


def load_encoder_for_finetuning(config: FinetuneConfig) -> PreTrainedModel:
    """Load the encoder with the paper's dropout written into its config.

    BERT / RoBERTa / ALBERT name them ``hidden_dropout_prob`` / ``attention_probs_dropout_prob``
    (ALBERT v2 checkpoints default them to 0); other architectures' names are set when present.
    The pre-trained pooler, unused by our heads, is frozen.
    """
    path = models.resolve_model(config.model)
    encoder_config = AutoConfig.from_pretrained(path)
    for key in _HIDDEN_DROPOUT_KEYS:
        if hasattr(encoder_config, key):
            setattr(encoder_config, key, config.hidden_dropout)
    for key in _ATTENTION_DROPOUT_KEYS:
        if hasattr(encoder_config, key):
            setattr(encoder_config, key, config.attention_dropout)
    encoder, info = AutoModel.from_pretrained(path, config=encoder_config, output_loading_info=True)
    # A checkpoint saved from *ForMaskedLM has no pooler; that is fine (our heads do not use it). Any other
    # missing weight would be randomly initialised and silently change the experiment.
    missing = sorted(key for key in info["missing_keys"] if not key.startswith("pooler."))
    if missing:
        raise ValueError(f"model {config.model!r} ({path}) is missing encoder weights {missing[:5]}")
    pooler = getattr(encoder, "pooler", None)
    if isinstance(pooler, nn.Module):
        pooler.requires_grad_(False)  # not on the loss path; frozen so DDP and weight decay ignore it
    return encoder


# --------------------------------------------------------------------------------------------------
# Data preparation
# --------------------------------------------------------------------------------------------------


class _FeatureDataset(torch.utils.data.Dataset):
    """Rows of pre-tokenised features (lists of ints) as dicts, padded later by the collator."""

    def __init__(self, columns: Mapping[str, Sequence[Any]]) -> None:
        lengths = {len(values) for values in columns.values()}
        if len(lengths) != 1:
            raise ValueError(f"feature columns differ in length: { {k: len(v) for k, v in columns.items()} }")
        self.columns = dict(columns)
        self.length = lengths.pop()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {name: values[index] for name, values in self.columns.items()}


def _model_input_keys(tokenizer: PreTrainedTokenizerBase, encoder_config: Any) -> list[str]:
    """Tokenizer outputs the encoder accepts; token types only where the encoder has several."""
    keys = ["input_ids", "attention_mask"]
    if "token_type_ids" in tokenizer.model_input_names and getattr(encoder_config, "type_vocab_size", 0) > 1:
        keys.append("token_type_ids")
    return keys


def _classification_dataset(
    split: data.ClassificationSplit, tokenizer: PreTrainedTokenizerBase, keys: list[str], max_length: int
) -> _FeatureDataset:
    if split.texts_b is not None:  # sentence pairs (RTE): the tokenizer's pair encoding
        encoded = tokenizer(list(split.texts_a), list(split.texts_b), truncation=True, max_length=max_length)
    else:
        encoded = tokenizer(list(split.texts_a), truncation=True, max_length=max_length)
    columns = {key: encoded[key] for key in keys}
    columns["labels"] = [int(label) for label in split.labels]
    return _FeatureDataset(columns)


@dataclass
class SquadFeatures:
    """Tokenised SQuAD windows (one example may yield several).

    Attributes:
        inputs: model inputs per window (``input_ids``, ``attention_mask`` [, ``token_type_ids``]).
        example_index: for each window, the index of its example in the example list.
        offsets: for each window and token, the (start, end) character span in the context, or
            ``None`` for question, special and padding tokens.
    """

    inputs: dict[str, list[list[int]]]
    example_index: list[int]
    offsets: list[list[tuple[int, int] | None]]

    def __len__(self) -> int:
        return len(self.example_index)


def _tokenize_squad(
    examples: Sequence[data.SquadExample], tokenizer: PreTrainedTokenizerBase, max_length: int, doc_stride: int
) -> Any:
    if not tokenizer.is_fast:
        raise ValueError("SQuAD feature preparation needs a fast tokenizer (offset mappings)")
    if tokenizer.padding_side != "right":
        raise ValueError("SQuAD feature preparation expects tokenizer.padding_side == 'right'")
    # Question first, context second; only the context is truncated, in overlapping windows.
    return tokenizer(
        [example.question.lstrip() for example in examples],
        [example.context for example in examples],
        truncation="only_second",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )


def prepare_squad_eval_features(
    examples: Sequence[data.SquadExample],
    tokenizer: PreTrainedTokenizerBase,
    keys: Sequence[str] = ("input_ids", "attention_mask"),
    *,
    max_length: int = 384,
    doc_stride: int = 128,
) -> SquadFeatures:
    """Windows for prediction, keeping each token's character span in the context."""
    encoded = _tokenize_squad(examples, tokenizer, max_length, doc_stride)
    offsets = []
    for window in range(len(encoded["input_ids"])):
        sequence_ids = encoded.sequence_ids(window)
        offsets.append([
            tuple(span) if sequence_ids[token] == 1 else None
            for token, span in enumerate(encoded["offset_mapping"][window])
        ])
    return SquadFeatures(
        inputs={key: encoded[key] for key in keys},
        example_index=list(encoded["overflow_to_sample_mapping"]),
        offsets=offsets,
    )


def squad_answer_positions(
    examples: Sequence[data.SquadExample], features: SquadFeatures
) -> tuple[list[int], list[int]]:
    """Token start / end positions of each window's first gold answer.

    A window that does not contain the whole answer gets position 0 (the first token) for both start
    and end, the usual "no answer in this window" target.

    Returns:
        (start_positions, end_positions), one entry per window.
    """
    starts, ends = [], []
    for window, offsets in enumerate(features.offsets):
        example = examples[features.example_index[window]]
        answer_start = example.answer_starts[0]
        answer_end = answer_start + len(example.answers[0])  # exclusive character end
        context_tokens = [t for t, span in enumerate(offsets) if span is not None]
        inside = bool(context_tokens) and (
            offsets[context_tokens[0]][0] <= answer_start and offsets[context_tokens[-1]][1] >= answer_end
        )
        if not inside:
            starts.append(0)
            ends.append(0)
            continue
        start_token = next(t for t in context_tokens if offsets[t][1] > answer_start)
        end_token = next(t for t in reversed(context_tokens) if offsets[t][0] < answer_end)
        starts.append(start_token)
        ends.append(max(end_token, start_token))
    return starts, ends


def prepare_squad_train_features(
    examples: Sequence[data.SquadExample],
    tokenizer: PreTrainedTokenizerBase,
    keys: Sequence[str] = ("input_ids", "attention_mask"),
    *,
    max_length: int = 384,
    doc_stride: int = 128,
) -> dict[str, list]:
    """Training windows labelled with :func:`squad_answer_positions`.

    Returns:
        Columns ``keys`` + ``start_positions`` + ``end_positions``, one entry per window.
    """
    features = prepare_squad_eval_features(examples, tokenizer, keys, max_length=max_length, doc_stride=doc_stride)
    return _with_positions(examples, features)


def _with_positions(examples: Sequence[data.SquadExample], features: SquadFeatures) -> dict[str, list]:
    starts, ends = squad_answer_positions(examples, features)
    return {**features.inputs, "start_positions": starts, "end_positions": ends}


def postprocess_squad(
    examples: Sequence[data.SquadExample],
    features: SquadFeatures,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    *,
    n_best: int = 20,
    max_answer_length: int = 30,
) -> dict[str, str]:
    """Turn window logits into one answer text per question.

    For each window, the ``n_best`` highest start and end logits are paired; a pair is valid if both
    tokens lie in the context, ``start <= end`` and the span has at most ``max_answer_length`` tokens.
    The answer is the context text of the valid pair with the highest ``start + end`` logit over all
    windows of the question (empty string if there is none).

    Args:
        examples: the questions the features were built from.
        features: their windows (:func:`prepare_squad_eval_features`).
        start_logits: (F, T) start logits, one row per window; T may exceed a window's length (padding,
            e.g. -100 from the Trainer's concatenation), such positions are ignored.
        end_logits: (F, T) end logits.
        n_best: candidates per side per window.
        max_answer_length: longest answer in tokens.

    Returns:
        Question id -> predicted answer text.
    """
    if len(start_logits) != len(features) or len(end_logits) != len(features):
        raise ValueError(
            f"got logits for {len(start_logits)} / {len(end_logits)} windows but {len(features)} features"
        )
    best: dict[int, tuple[float, str]] = {}
    for window, offsets in enumerate(features.offsets):
        length = len(offsets)
        start_row = np.asarray(start_logits[window][:length], dtype=np.float64)
        end_row = np.asarray(end_logits[window][:length], dtype=np.float64)
        example_idx = features.example_index[window]
        context = examples[example_idx].context
        start_candidates = np.argsort(start_row)[::-1][:n_best]
        end_candidates = np.argsort(end_row)[::-1][:n_best]
        for start in start_candidates:
            for end in end_candidates:
                if offsets[start] is None or offsets[end] is None:
                    continue
                if end < start or end - start + 1 > max_answer_length:
                    continue
                score = start_row[start] + end_row[end]
                if example_idx not in best or score > best[example_idx][0]:
                    best[example_idx] = (score, context[offsets[start][0] : offsets[end][1]])
    return {example.id: best[idx][1] if idx in best else "" for idx, example in enumerate(examples)}


@dataclass
class _TaskData:
    """Everything the Trainer needs for one task."""

    train: _FeatureDataset
    dev: _FeatureDataset
    num_labels: int
    label_names: list[str]
    compute_metrics: Callable[[EvalPrediction], dict[str, float]]
    sizes: dict[str, int] = field(default_factory=dict)


def _classification_metrics(task: str) -> Callable[[EvalPrediction], dict[str, float]]:
    def compute(prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predicted = np.asarray(logits).argmax(axis=-1)
        gold = np.asarray(prediction.label_ids)
        scores = {"accuracy": metrics.accuracy(gold, predicted)}
        if task == "cola":
            scores["mcc"] = metrics.matthews_corrcoef(gold, predicted)
        return scores

    return compute


def _load_classification(config: FinetuneConfig, data_dir, tokenizer, keys) -> _TaskData:
    glue = data.read_glue(config.task, data_dir, max_train=config.max_train, max_eval=config.max_eval)
    for name, split in (("train", glue.train), ("dev", glue.dev)):
        if len(split.labels) == 0:
            raise ValueError(f"task {config.task!r}: the {name} split is empty (data_dir={data_dir!r})")
    return _TaskData(
        train=_classification_dataset(glue.train, tokenizer, keys, config.max_length),
        dev=_classification_dataset(glue.dev, tokenizer, keys, config.max_length),
        num_labels=len(glue.label_names),
        label_names=list(glue.label_names),
        compute_metrics=_classification_metrics(config.task),
        sizes={"train_examples": len(glue.train.labels), "dev_examples": len(glue.dev.labels)},
    )


def _cap_examples(examples: list[data.SquadExample], cap: int | None) -> list[data.SquadExample]:
    """All examples, or a seeded random subset of ``cap`` in file order (as ``data.read_glue`` caps).

    SQuAD files are grouped by article, so the first questions would come from a handful of topics.
    """
    if cap is None or cap >= len(examples):
        return list(examples)
    keep = np.sort(np.random.default_rng(0).choice(len(examples), size=cap, replace=False))
    return [examples[i] for i in keep]


def _load_squad(config: FinetuneConfig, data_dir, tokenizer, keys) -> _TaskData:
    train_all, dev_all = data.read_squad_splits(data_dir)
    train_examples = _cap_examples(train_all, config.max_train)
    dev_examples = _cap_examples(dev_all, config.max_eval)
    for name, examples in (("train", train_examples), ("dev", dev_examples)):
        if not examples:
            raise ValueError(f"task 'squad': the {name} split is empty (data_dir={data_dir})")
    train_columns = prepare_squad_train_features(
        train_examples, tokenizer, keys, max_length=config.max_length, doc_stride=config.doc_stride
    )
    dev_features = prepare_squad_eval_features(
        dev_examples, tokenizer, keys, max_length=config.max_length, doc_stride=config.doc_stride
    )
    references = {example.id: list(example.answers) for example in dev_examples}

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        start_logits, end_logits = prediction.predictions[:2]
        answers = postprocess_squad(
            dev_examples, dev_features, start_logits, end_logits,
            n_best=config.n_best, max_answer_length=config.max_answer_length,
        )
        return metrics.squad_scores(answers, references)

    return _TaskData(
        train=_FeatureDataset(train_columns),
        # Dev windows carry first-answer positions too: they give a dev loss, and the Trainer only calls
        # compute_metrics when the evaluation data has labels. Scores use all gold answers.
        dev=_FeatureDataset(_with_positions(dev_examples, dev_features)),
        num_labels=0,
        label_names=[],
        compute_metrics=compute,
        sizes={
            "train_examples": len(train_examples), "train_windows": len(train_columns["input_ids"]),
            "dev_examples": len(dev_examples), "dev_windows": len(dev_features),
        },
    )


# --------------------------------------------------------------------------------------------------
# Trainer set-up
# --------------------------------------------------------------------------------------------------


def _use_cuda(device: str) -> bool:
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available")
    return device == "cuda" or (device == "auto" and torch.cuda.is_available())


def _mixed_precision(precision: str, cuda: bool) -> dict[str, bool]:
    if precision == "auto":
        if not cuda:
            return {"bf16": False, "fp16": False}
        bf16 = torch.cuda.is_bf16_supported()
        return {"bf16": bf16, "fp16": not bf16}
    if precision in ("bf16", "fp16") and not cuda:
        raise ValueError(f"precision={precision!r} needs CUDA; use 'fp32' or 'auto' on the CPU")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def training_arguments(config: FinetuneConfig, output_dir: str | Path) -> TrainingArguments:
    """The Trainer arguments for ``config`` (paper defaults: AdamW, 10 % linear warm-up, then constant).

    Evaluation runs after every epoch; Trainer checkpoints (optimizer state for resuming) go to
    ``output_dir/.trainer-resume`` and keep only the latest, or are off when ``config.resume`` is false.
    Creating them also sets up the distributed state under ``torchrun``.
    """
    config = config.resolved()
    label_names = ["start_positions", "end_positions"] if config.task == "squad" else ["labels"]
    cuda = _use_cuda(config.device)
    beta1, beta2 = config.adam_betas
    return TrainingArguments(
        output_dir=str(Path(output_dir) / RESUME_DIR),
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
    )


# --------------------------------------------------------------------------------------------------
# Checkpoints on disk
# --------------------------------------------------------------------------------------------------


def checkpoint_dir(output_dir: str | Path, epoch: int) -> Path:
    """``output_dir/epoch-<epoch>`` (epochs count from 1)."""
    if int(epoch) < 1:
        raise ValueError(f"epoch must be >= 1, got {epoch!r}")
    return Path(output_dir) / f"epoch-{int(epoch)}"


def _epoch_dirs(output_dir: Path) -> dict[int, Path]:
    found = {}
    if output_dir.is_dir():
        for path in output_dir.iterdir():
            name = path.name
            if path.is_dir() and name.startswith("epoch-") and name[len("epoch-"):].isdigit():
                found[int(name[len("epoch-"):])] = path
    return found


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """The ``checkpoint.json`` of an epoch directory.

    Raises:
        FileNotFoundError: the directory has no marker (incomplete or not a checkpoint).
        ValueError: the marker is not valid JSON.
    """
    marker = Path(path) / CHECKPOINT_MARKER
    if not marker.is_file():
        raise FileNotFoundError(f"no {CHECKPOINT_MARKER} in {path}: not a complete fine-tuning checkpoint")
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{marker}: invalid JSON ({error})") from error


def completed_epochs(output_dir: str | Path) -> list[int]:
    """Epochs whose directory holds a readable completion marker, ascending."""
    complete = []
    for epoch, path in sorted(_epoch_dirs(Path(output_dir)).items()):
        try:
            read_checkpoint_info(path)
        except (FileNotFoundError, ValueError):
            continue
        complete.append(epoch)
    return complete


def final_checkpoint(output_dir: str | Path) -> Path:
    """Directory of the last complete epoch.

    Raises:
        FileNotFoundError: no complete epoch in ``output_dir``.
    """
    epochs = completed_epochs(output_dir)
    if not epochs:
        raise FileNotFoundError(f"no complete fine-tuning epoch (epoch-<e>/{CHECKPOINT_MARKER}) in {output_dir}")
    return checkpoint_dir(output_dir, epochs[-1])


def _remove_incomplete(output_dir: Path) -> list[Path]:
    """Delete epoch directories without a marker and leftover temporary directories."""
    removed = []
    complete = set(completed_epochs(output_dir))
    for epoch, path in _epoch_dirs(output_dir).items():
        if epoch not in complete:
            shutil.rmtree(path)
            removed.append(path)
    if output_dir.is_dir():
        for path in output_dir.iterdir():
            if path.is_dir() and path.name.startswith(_TMP_PREFIX):
                shutil.rmtree(path)
                removed.append(path)
    return removed


def run_signature(config: FinetuneConfig, fingerprint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Settings that define a run's results (resolved config minus runtime knobs, plus model identity)."""
    config = config.resolved()
    signature = {k: v for k, v in dataclasses.asdict(config).items() if k not in _RUNTIME_FIELDS}
    signature["adam_betas"] = list(config.adam_betas)
    fingerprint = fingerprint if fingerprint is not None else models.model_fingerprint(config.model)
    # The resolved path depends on the cache location; the weights' hash is what identifies the model.
    signature["model_revision"] = fingerprint["revision"]
    return json.loads(json.dumps(signature, default=str))


def _check_same_run(output_dir: Path, signature: dict[str, Any]) -> None:
    for epoch in completed_epochs(output_dir):
        stored = read_checkpoint_info(checkpoint_dir(output_dir, epoch)).get("signature", {})
        differing = sorted(k for k in set(stored) | set(signature) if stored.get(k) != signature.get(k))
        if differing:
            details = ", ".join(f"{k}: stored {stored.get(k)!r} vs requested {signature.get(k)!r}" for k in differing)
            raise ValueError(
                f"{output_dir} holds a fine-tuning run with a different configuration ({details}); "
                "use another output_dir or delete it"
            )


def _write_epoch(
    output_dir: Path,
    epoch: int,
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    info: dict[str, Any],
) -> Path:
    """Atomically write ``epoch-<e>``: encoder + tokenizer + heads into a temporary dir, marker last, rename."""
    final = checkpoint_dir(output_dir, epoch)
    tmp = output_dir / f"{_TMP_PREFIX}{epoch}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.encoder.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    safetensors.torch.save_file(_head_state_dict(model), str(tmp / HEADS_FILE), metadata={"format": "pt"})
    (tmp / CHECKPOINT_MARKER).write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")
    if final.exists():  # an older epoch of a run being redone
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


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


def _latest_resume_checkpoint(output_dir: Path) -> tuple[Path, int] | None:
    """The newest Trainer checkpoint whose state file (written last) exists, with its epoch."""
    candidates = []
    for path in (output_dir / RESUME_DIR).glob("checkpoint-*"):
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


def _results_table(config: FinetuneConfig, output_dir: Path) -> pd.DataFrame:
    rows = []
    for epoch in range(1, config.epochs + 1):
        info = read_checkpoint_info(checkpoint_dir(output_dir, epoch))
        for metric in TASK_METRICS[config.task]:
            rows.append({"epoch": epoch, "metric": metric, "value": info["metrics"][metric]})
    return results_frame(
        rows, stage="finetune", model=config.label, finetune_task=config.task, finetune_head=config.head,
        seed=config.seed, probe_task="none", pooling=config.head, layer=-1, split="dev",
    )


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def run_finetune(config: FinetuneConfig, data_dir: str | Path | None, output_dir: str | Path) -> pd.DataFrame:
    """Fine-tune ``config.model`` on ``config.task``, checkpointing and evaluating after every epoch.

    Under ``torchrun`` every process calls this; only the main process writes to ``output_dir``.

    Args:
        config: the run's settings (see :class:`FinetuneConfig`).
        data_dir: data folder in the layout of ``write_demo_data`` (``glue/``, ``squad/``); ``None``
            falls back to ``$PROBEFT_DATA_DIR`` (for GLUE, then the hub).
        output_dir: where ``epoch-<e>/`` checkpoints go.

    Returns:
        Result rows (stage "finetune", split "dev", one row per epoch and task metric; see
        :data:`TASK_METRICS`), read back from the epoch markers.

    Raises:
        ValueError: bad settings, empty data, or ``output_dir`` holding a different run.
    """
    config = config.resolved()
    output_dir = Path(output_dir)
    args = training_arguments(config, output_dir)  # also sets up the distributed state
    is_main = args.process_index == 0
    fingerprint = models.model_fingerprint(config.model)  # hashes the weight files: once per run
    signature = run_signature(config, fingerprint)
    with args.main_process_first(desc="checking existing checkpoints"):
        if is_main:
            output_dir.mkdir(parents=True, exist_ok=True)
            _remove_incomplete(output_dir)
        _check_same_run(output_dir, signature)
        done = completed_epochs(output_dir)
        if all(epoch in done for epoch in range(1, config.epochs + 1)):
            if is_main:
                shutil.rmtree(output_dir / RESUME_DIR, ignore_errors=True)
            resume_from, finished = None, True
        else:
            resume_from, finished = _resume_point(config, output_dir, done, is_main), False
    if finished:
        return _results_table(config, output_dir)

    with models.quiet_transformers():
        hf_set_seed(config.seed)  # the fresh head's initialisation depends on it
        tokenizer = models.load_tokenizer(config.model)
        tokenizer.padding_side = "right"  # SQuAD token positions assume right padding
        encoder = load_encoder_for_finetuning(config)
    keys = _model_input_keys(tokenizer, encoder.config)
    config = _fit_to_positions(config, encoder.config)
    loader = _load_squad if config.task == "squad" else _load_classification
    task_data = loader(config, data_dir, tokenizer, keys)
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
        }
        with models.quiet_transformers():
            _write_epoch(output_dir, epoch, trained, tokenizer, info)

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=task_data.train,
        eval_dataset=task_data.dev,
        data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=None if args.use_cpu else 8),
        compute_metrics=task_data.compute_metrics,
        callbacks=[_EpochCheckpointCallback(write, TASK_METRICS[config.task])],
    )
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if is_main:
        shutil.rmtree(output_dir / RESUME_DIR, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()  # other processes read the markers the main process wrote
    return _results_table(config, output_dir)


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


def _resume_point(config: FinetuneConfig, output_dir: Path, done: list[int], is_main: bool) -> Path | None:
    """The Trainer checkpoint to continue from, or None to start over (stale epoch dirs removed)."""
    latest = _latest_resume_checkpoint(output_dir) if config.resume else None
    resume_epoch = 0
    if latest is not None and all(e in done for e in range(1, latest[1] + 1)) and latest[1] < config.epochs:
        resume_epoch = latest[1]
    if is_main:
        for epoch in done:
            if epoch > resume_epoch:  # redone by this run; drop so every epoch comes from one trajectory
                shutil.rmtree(checkpoint_dir(output_dir, epoch))
        if resume_epoch == 0:
            shutil.rmtree(output_dir / RESUME_DIR, ignore_errors=True)
    return latest[0] if resume_epoch > 0 else None

