"""The models fine-tuning trains: an encoder plus a fresh head, and the encoder loader that sets dropout.

* :class:`SequenceClassifier` (CoLA, SST-2, RTE): ``z = tanh(W h + b)`` where ``h`` is the last
  layer's first-token vector (``head="cls"``) or its padding-masked mean over tokens (``head="mean"``,
  special tokens included, padding excluded; :func:`probeft.core.pooling.masked_mean`), followed by dropout
  and a linear classifier. The encoder's own pre-trained pooler (BERT's NSP / ALBERT's SOP layer) is
  not used; it is frozen so it stays the pre-trained one and every saved encoder loads with
  ``AutoModel`` without missing weights.
* :class:`SpanQuestionAnsweringModel` (SQuAD v1.1): one linear layer -> start / end logits per token,
  as ``AutoModelForQuestionAnswering``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.modeling_outputs import QuestionAnsweringModelOutput, SequenceClassifierOutput

from probeft import models
from probeft.core import names, pins
from probeft.core.pooling import masked_mean
from probeft.finetune.config import FinetuneConfig

__all__ = ["SequenceClassifier", "SpanQuestionAnsweringModel", "head_state_dict", "load_encoder_for_finetuning"]

_HIDDEN_DROPOUT_KEYS = ("hidden_dropout_prob", "dropout", "hidden_dropout")
_ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout")


def _encoder_inputs(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if token_type_ids is not None:
        inputs["token_type_ids"] = token_type_ids
    return inputs


def _init_linear(layer: nn.Linear, config: Any) -> None:
    """Initialise a fresh head layer like the encoder's own layers (normal(0, initializer_range))."""
    std = float(getattr(config, "initializer_range", 0.02))
    nn.init.normal_(layer.weight, mean=0.0, std=std)
    nn.init.zeros_(layer.bias)


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
        if head not in names.HEADS:
            raise ValueError(f"unknown head {head!r}; expected one of {names.HEADS}")
        hidden_size = encoder.config.hidden_size
        self.encoder = encoder
        self.head = head
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)
        _init_linear(self.dense, encoder.config)
        _init_linear(self.classifier, encoder.config)

    def sentence_vector(self, last_hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled last layer: hidden (B, T, D), mask (B, T) -> (B, D)."""
        if self.head == "cls":
            return last_hidden[:, 0]
        return masked_mean(last_hidden, attention_mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        """Logits (B, num_labels) for inputs (B, T) and, given ``labels`` (B,), the mean cross-entropy."""
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
        self.head = names.SQUAD_HEAD
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
        """Start and end logits (B, T) for inputs (B, T); with positions (B,), the mean of the two cross-entropies."""
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


def head_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """All parameters that are not part of the encoder (the head), contiguous and on the CPU."""
    return {
        name: tensor.detach().to("cpu").contiguous()
        for name, tensor in model.state_dict().items()
        if not name.startswith("encoder.")
    }


def load_encoder_for_finetuning(config: FinetuneConfig) -> PreTrainedModel:
    """Load the encoder with the paper's dropout written into its config.

    BERT / RoBERTa / ALBERT name them ``hidden_dropout_prob`` / ``attention_probs_dropout_prob``
    (ALBERT v2 checkpoints default them to 0); other architectures' names are set when present.
    The pre-trained pooler, unused by our heads, is frozen.

    Raises:
        ValueError: the checkpoint lacks encoder weights (other than the pooler).
    """
    path = models.resolve_model(config.model)
    encoder_config = models.load_config(config.model)
    for key in _HIDDEN_DROPOUT_KEYS:
        if hasattr(encoder_config, key):
            setattr(encoder_config, key, config.hidden_dropout)
    for key in _ATTENTION_DROPOUT_KEYS:
        if hasattr(encoder_config, key):
            setattr(encoder_config, key, config.attention_dropout)
    encoder, info = AutoModel.from_pretrained(path, config=encoder_config, output_loading_info=True,
                                              **models.revision_kwargs(path))
    pins.note_read("models", config.model, models.model_fingerprint(config.model)["revision"])
    # A checkpoint saved from *ForMaskedLM has no pooler; that is fine (our heads do not use it). Any other
    # missing weight would be randomly initialised and silently change the experiment.
    missing = sorted(key for key in info["missing_keys"] if not key.startswith("pooler."))
    if missing:
        raise ValueError(f"model {config.model!r} ({path}) is missing encoder weights {missing[:5]}")
    pooler = getattr(encoder, "pooler", None)
    if isinstance(pooler, nn.Module):
        pooler.requires_grad_(False)  # not on the loss path; frozen so DDP and weight decay ignore it
    return encoder
