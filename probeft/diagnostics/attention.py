"""Attention statistics of pre-trained and fine-tuned encoders (paper Sec. 5.1, Fig. 2).

Two statistics per layer, both over the *key* positions of one query token's attention row:

* **entropy** (nats) of the attention distribution, ``-sum_j a_j log a_j`` over non-padding keys,
  averaged over heads and inputs (Fig. 2a uses the first token, ``[CLS]`` / ``<s>``);
* **earth mover's distance** (Wasserstein-1) between the pre-trained model's and a fine-tuned
  model's attention distributions of the same head, input and query token. The support is the
  token positions ``0..n-1`` of the ``n`` non-padding tokens and the ground distance is
  ``|i - j|`` in token positions, so an EMD of 2.0 means "mass moved by two tokens on average".
  This equals ``scipy.stats.wasserstein_distance(range(n), range(n), u_weights, v_weights)``;
  we compute it batched in torch as ``sum_i |CDF_u(i) - CDF_v(i)|`` (unit-spaced positions;
  the tests check it against scipy).

Statistics are streamed batch by batch: only one batch's attentions (all layers) are held at a
time, never the whole data set's. Models must use eager attention
(``attn_implementation="eager"``): SDPA / flash kernels return no attention weights.

Padding never influences a statistic: padded keys are excluded from the sums, padded queries
from the averages, and positions are counted over non-padding tokens only, so a sentence gives the
same numbers alone or in a padded batch.

:func:`load_models` loads the pre-trained encoder and fine-tuned checkpoints (epoch folders, or run
folders meaning their final epoch, via :mod:`probeft.finetune.checkpoints`) with eager attention.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from probeft import models
from probeft.core import names
from probeft.core.devices import resolve_device
from probeft.finetune.checkpoints import checkpoint_fields, load_point

__all__ = [
    "ENTROPY_UNIT",
    "EMD_UNIT",
    "attention_emd",
    "attention_entropy",
    "AttentionModels",
    "attention_statistics",
    "load_models",
]

ENTROPY_UNIT = "nats"
EMD_UNIT = "token positions (ground distance |i-j|)"
PRETRAINED_LABEL = names.PRETRAINED_LABEL
POSITION_MODES = ("first", "all")


def _key_weights(attn: Tensor, key_mask: Tensor) -> Tensor:
    """Attention in float32 with padded keys zeroed. attn (B, H, Tq, Tk), key_mask (B, Tk)."""
    if attn.dim() != 4:
        raise ValueError(f"attention must have shape (B, H, Tq, Tk), got {tuple(attn.shape)}")
    if key_mask.shape != (attn.shape[0], attn.shape[-1]):
        raise ValueError(f"key_mask must have shape (B, Tk) = {(attn.shape[0], attn.shape[-1])}, got {tuple(key_mask.shape)}")
    keep = key_mask.to(device=attn.device, dtype=torch.bool)[:, None, None, :]
    return torch.where(keep, attn.float(), torch.zeros((), device=attn.device))


def attention_entropy(attn: Tensor, key_mask: Tensor) -> Tensor:
    """Entropy (nats) of each query's attention distribution over non-padding keys.

    Padded keys are masked out of the sum explicitly (eager attention gives them ~0 mass anyway,
    so rows are not renormalised) and ``0 * log 0`` counts as 0.

    Args:
        attn: attention probabilities, shape (B, H, Tq, Tk).
        key_mask: 1 / True for real tokens, 0 / False for padding, shape (B, Tk).

    Returns:
        float32 entropies, shape (B, H, Tq). Rows of padded queries are returned too; callers
        drop them with the query mask.
    """
    weights = _key_weights(attn, key_mask)
    return -torch.special.xlogy(weights, weights).sum(dim=-1)


def attention_emd(attn_a: Tensor, attn_b: Tensor, key_mask: Tensor) -> Tensor:
    """Earth mover's (Wasserstein-1) distance between two models' attention rows.

    The support is the non-padding token positions ``0..n-1`` with ground distance ``|i - j|``
    (token positions). For 1-D distributions on unit-spaced points W1 is the L1 distance of the
    CDFs, ``sum_i |CDF_a(i) - CDF_b(i)|``, computed here for all rows at once. Like
    ``scipy.stats.wasserstein_distance``, each row is normalised to sum to 1 over the non-padding
    keys first (a no-op up to rounding for softmax rows). Padded keys get weight 0 and are skipped
    in the sum, so they add no distance wherever they sit.

    Args:
        attn_a: attention probabilities of model A, shape (B, H, Tq, Tk).
        attn_b: the same for model B on the *same* inputs, shape (B, H, Tq, Tk).
        key_mask: 1 / True for real tokens, shape (B, Tk).

    Returns:
        float32 distances in token positions, shape (B, H, Tq).
    """
    if attn_a.shape != attn_b.shape:
        raise ValueError(f"attention shapes differ: {tuple(attn_a.shape)} vs {tuple(attn_b.shape)}")
    weights_a = _key_weights(attn_a, key_mask)
    weights_b = _key_weights(attn_b.to(attn_a.device), key_mask)
    # float64 for the cumulative sums: long rows of small probabilities lose digits in float32.
    cdf_a = (weights_a.double() / weights_a.double().sum(-1, keepdim=True).clamp_min(1e-300)).cumsum(-1)
    cdf_b = (weights_b.double() / weights_b.double().sum(-1, keepdim=True).clamp_min(1e-300)).cumsum(-1)
    keep = key_mask.to(device=attn_a.device, dtype=torch.bool)[:, None, None, :]
    # Only real positions contribute: the gap after a real token to the next real one is one position.
    return ((cdf_a - cdf_b).abs() * keep).sum(-1).float()


@dataclass
class _Accumulator:
    """Running per-layer sums of a statistic by (compact) query position, on CPU in float64."""

    num_layers: int
    max_positions: int
    sums: Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.sums = torch.zeros(self.num_layers, self.max_positions, dtype=torch.float64)

    def add(self, layer: int, per_query: Tensor, query_pos: Tensor, query_mask: Tensor) -> None:
        """Add head-averaged values per_query (B, Tq) at compact positions query_pos (B, Tq)."""
        keep = query_mask.bool()
        self.sums[layer].index_add_(0, query_pos[keep].cpu(), per_query[keep].double().cpu())


def _encode(tokenizer: PreTrainedTokenizerBase, sentences: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per sentence (special tokens added, truncated to max_length)."""
    encoded = tokenizer(list(sentences), truncation=True, max_length=max_length, add_special_tokens=True)
    return [list(ids) for ids in encoded["input_ids"]]


def _check_same_tokenisation(
    ids: list[list[int]],
    finetuned_tokenizers: Mapping[str, PreTrainedTokenizerBase],
    sentences: Sequence[str],
    max_length: int,
) -> None:
    """Raise ValueError if a fine-tuned model's tokenizer encodes any sentence differently."""
    for label, other in finetuned_tokenizers.items():
        other_ids = _encode(other, sentences, max_length)
        for index, (a, b) in enumerate(zip(ids, other_ids, strict=True)):
            if a != b:
                raise ValueError(
                    f"tokenizer of fine-tuned model {label!r} encodes sentence {index} differently from the "
                    f"pre-trained tokenizer ({a[:12]}... vs {b[:12]}...); attention comparisons need identical inputs"
                )


def _forward_attentions(model: PreTrainedModel, batch: Mapping[str, Tensor], name: str) -> tuple[Tensor, ...]:
    """All layers' attentions of one batch, (B, H, T, T) each; clear error if the model gives none."""
    device = next(model.parameters()).device
    outputs = model(**{k: v.to(device) for k, v in batch.items()}, output_attentions=True)
    attentions = getattr(outputs, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        implementation = getattr(model.config, "_attn_implementation", "unknown")
        raise ValueError(
            f"model {name!r} returned no attention weights (attention implementation {implementation!r}); "
            "load it with attn_implementation='eager' (models.load_encoder(..., attn_implementation='eager'))"
        )
    return attentions


def _position_rows(
    label: str, metric: str, sums: Tensor, counts: Tensor, positions: str
) -> list[dict[str, Any]]:
    """Rows (label, metric, layer 1..L, position, value, n) from accumulated sums and counts."""
    rows = []
    total = counts.sum().item()
    for layer in range(sums.shape[0]):
        rows.append(
            {"label": label, "metric": metric, "layer": layer + 1, "position": "first",
             "value": (sums[layer, 0] / counts[0]).item(), "n": int(counts[0])}
        )
        if positions == "all":
            for pos in torch.nonzero(counts).flatten().tolist():
                rows.append(
                    {"label": label, "metric": metric, "layer": layer + 1, "position": str(pos),
                     "value": (sums[layer, pos] / counts[pos]).item(), "n": int(counts[pos])}
                )
            rows.append(
                {"label": label, "metric": metric, "layer": layer + 1, "position": "all",
                 "value": sums[layer].sum().item() / total, "n": int(total)}
            )
    return rows


@dataclass(frozen=True)
class AttentionModels:
    """Everything :func:`attention_statistics` compares, loaded with eager attention.

    Attributes:
        tokenizer: the pre-trained model's tokenizer (used for every model's inputs).
        pretrained: the pre-trained encoder.
        finetuned_models: label -> fine-tuned encoder.
        finetuned_tokenizers: label -> the tokenizer saved with that checkpoint.
        finetuned_info: label -> result-table fields of the checkpoint (``checkpoints.checkpoint_fields``).
        checkpoints: label -> the epoch folder actually loaded.
    """

    tokenizer: PreTrainedTokenizerBase
    pretrained: PreTrainedModel
    finetuned_models: dict[str, PreTrainedModel]
    finetuned_tokenizers: dict[str, PreTrainedTokenizerBase]
    finetuned_info: dict[str, dict[str, Any]]
    checkpoints: dict[str, Path]


def load_models(
    model: str, finetuned: Mapping[str, str | Path], *, device: str | torch.device = "cpu"
) -> AttentionModels:
    """Load a pre-trained encoder and fine-tuned checkpoints for attention statistics (eager attention).

    Args:
        model: the pre-trained model spec.
        finetuned: label -> an epoch checkpoint folder, or a fine-tuning run folder (its final epoch is used).
        device: where to put the models (``"auto"`` allowed).

    Returns:
        The loaded models, tokenizers, checkpoint fields and resolved checkpoint folders.

    Raises:
        FileNotFoundError: a path is neither a model folder nor a run with a complete epoch.
    """
    target = resolve_device(device)
    points = {label: load_point(path) for label, path in finetuned.items()}
    return AttentionModels(
        tokenizer=models.load_tokenizer(model),
        pretrained=models.load_encoder(model, device=target, attn_implementation="eager"),
        finetuned_models={
            label: models.load_encoder(str(path), device=target, attn_implementation="eager")
            for label, path in points.items()
        },
        finetuned_tokenizers={label: models.load_tokenizer(str(path)) for label, path in points.items()},
        finetuned_info={label: checkpoint_fields(path) for label, path in points.items()},
        checkpoints=points,
    )


@torch.inference_mode()
def attention_statistics(
    pretrained: PreTrainedModel,
    finetuned: Mapping[str, PreTrainedModel],
    tokenizer: PreTrainedTokenizerBase,
    sentences: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 128,
    positions: str = "first",
    model_name: str = "model",
    finetune_task: str = "none",
    probe_task: str = "none",
    split: str = "test",
    finetuned_info: Mapping[str, Mapping[str, Any]] | None = None,
    finetuned_tokenizers: Mapping[str, PreTrainedTokenizerBase] | None = None,
    per_sentence: dict[str, Tensor] | None = None,
) -> pd.DataFrame:
    """Per-layer attention entropy (every model) and EMD (each fine-tuned vs pre-trained).

    All models see the same padded batches of ``tokenizer``'s ids (sentences are sorted by length
    to reduce padding; results do not depend on batching). Each model's inputs go to that model's
    device; statistics are accumulated on CPU in float64.

    Args:
        pretrained: the pre-trained encoder, eager attention.
        finetuned: label -> fine-tuned encoder of the same architecture, eager attention
            (may be empty: then only the pre-trained entropies are computed).
        tokenizer: the pre-trained model's tokenizer, used for all models.
        sentences: input sentences.
        batch_size: sentences per forward pass.
        max_length: truncation length in tokens (special tokens included).
        positions: ``"first"`` -> rows for the first token only (position ``"first"``);
            ``"all"`` -> also one row per query position (``"0"``, ``"1"``, ... counted over
            non-padding tokens) and ``"all"``, the mean over every non-padding query of every input.
        model_name: value of the ``model`` column.
        finetune_task: ``finetune_task`` of the fine-tuned rows (pre-trained rows get ``"none"``).
        probe_task: where the sentences come from (``probe_task`` column).
        split: which split of ``probe_task`` the sentences are (``split`` column).
        finetuned_info: label -> extra column values for that model's rows (e.g. from
            :func:`probeft.finetune.checkpoints.checkpoint_fields`: ``finetune_task``, ``finetune_head``, ``seed``, ``epoch``); by default
            ``finetune_head`` is the label and epoch is -1.
        finetuned_tokenizers: label -> the tokenizer saved with that checkpoint; if given, every
            sentence must encode to the same ids as with ``tokenizer`` (else ValueError).
        per_sentence: if given, a dict this call fills with the first token's statistics per
            sentence, in the order of ``sentences`` (float64, head-averaged; what an interval over
            sentences, seeds pooled, needs): ``"entropy/<label>"`` (N, L) for ``"pretrained"`` and
            each fine-tuned label, ``"emd/<label>"`` (N, L) for each fine-tuned label; column ``l``
            is layer ``l + 1``. The same forward passes as the averages; a cell keeps them with
            :func:`probeft.results.attention_sentences.save_attention_sentences`.

    Returns:
        Result rows (``stage="attention"``, ``metric`` in {"entropy", "emd"}, ``layer`` 1..L,
        ``pooling="none"``) with extra columns ``position`` (str), ``label`` (``"pretrained"`` or
        the fine-tuned label), ``n`` (number of (input, query) pairs averaged; each is already a
        mean over heads) and ``unit`` (entropy in nats, EMD in token positions). EMD rows belong to
        the fine-tuned model they compare with the pre-trained one.

    Raises:
        ValueError: bad ``positions``, no sentences, a model without attention weights (not eager),
            models of different depth / heads, or different tokenisation.
    """
    if positions not in POSITION_MODES:
        raise ValueError(f"positions must be one of {POSITION_MODES}, got {positions!r}")
    if not sentences:
        raise ValueError("no sentences given to attention_statistics")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if PRETRAINED_LABEL in finetuned:
        raise ValueError(f"{PRETRAINED_LABEL!r} is reserved for the pre-trained model; rename that fine-tuned label")
    ids = _encode(tokenizer, sentences, max_length)
    if finetuned_tokenizers:
        _check_same_tokenisation(ids, finetuned_tokenizers, sentences, max_length)
    num_layers = pretrained.config.num_hidden_layers
    for label, model in finetuned.items():
        for attr in ("num_hidden_layers", "num_attention_heads"):
            if getattr(model.config, attr) != getattr(pretrained.config, attr):
                raise ValueError(f"fine-tuned model {label!r} differs from the pre-trained one in {attr}")
    longest = max(len(x) for x in ids)
    entropy = {name: _Accumulator(num_layers, longest) for name in [PRETRAINED_LABEL, *finetuned]}
    emd = {name: _Accumulator(num_layers, longest) for name in finetuned}
    counts = torch.zeros(longest, dtype=torch.float64)
    if per_sentence is not None:
        per_sentence.clear()
        for name in [PRETRAINED_LABEL, *finetuned]:
            per_sentence[f"entropy/{name}"] = torch.zeros(len(ids), num_layers, dtype=torch.float64)
        for name in finetuned:
            per_sentence[f"emd/{name}"] = torch.zeros(len(ids), num_layers, dtype=torch.float64)
    for model in [pretrained, *finetuned.values()]:
        model.eval()

    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # length-sorted batches: less padding
    for start in range(0, len(order), batch_size):
        # Right padding always: absolute position embeddings (BERT) would shift under left padding.
        batch = tokenizer.pad(
            {"input_ids": [ids[i] for i in order[start : start + batch_size]]}, padding_side="right", return_tensors="pt"
        )
        mask = batch["attention_mask"]  # (B, T): 1 real, 0 padding
        query_pos = (mask.cumsum(-1) - 1).clamp_min(0)  # position among real tokens, (B, T)
        counts.index_add_(0, query_pos[mask.bool()], torch.ones(int(mask.sum()), dtype=torch.float64))
        rows_of_batch = torch.tensor(order[start : start + batch_size])  # indices into sentences

        def record(key: str, layer: int, per_query: Tensor) -> None:
            # Query 0 is the first token of every sentence: right padding keeps it in column 0.
            if per_sentence is not None:
                per_sentence[key][rows_of_batch, layer] = per_query[:, 0].double().cpu()

        reference = _forward_attentions(pretrained, batch, PRETRAINED_LABEL)
        for layer, attn in enumerate(reference):
            values = attention_entropy(attn, mask).mean(1)
            entropy[PRETRAINED_LABEL].add(layer, values, query_pos, mask)
            record(f"entropy/{PRETRAINED_LABEL}", layer, values)
        for label, model in finetuned.items():
            attentions = _forward_attentions(model, batch, label)
            for layer, (attn, ref) in enumerate(zip(attentions, reference, strict=True)):
                values = attention_entropy(attn, mask).mean(1)
                entropy[label].add(layer, values, query_pos, mask)
                record(f"entropy/{label}", layer, values)
                distances = attention_emd(ref, attn, mask).mean(1)
                emd[label].add(layer, distances, query_pos, mask)
                record(f"emd/{label}", layer, distances)

    stats = _position_rows(PRETRAINED_LABEL, "entropy", entropy[PRETRAINED_LABEL].sums, counts, positions)
    for label in finetuned:
        stats += _position_rows(label, "entropy", entropy[label].sums, counts, positions)
        stats += _position_rows(label, "emd", emd[label].sums, counts, positions)
    info = finetuned_info or {}
    rows = []
    for stat in stats:
        is_pretrained = stat["label"] == PRETRAINED_LABEL
        columns = (
            {"finetune_task": "none", "finetune_head": "none", "seed": 0, "epoch": 0}
            if is_pretrained
            else {"finetune_task": finetune_task, "finetune_head": stat["label"], "seed": 0, "epoch": -1,
                  **dict(info.get(stat["label"], {}))}
        )
        rows.append(
            {"stage": "attention", "model": model_name, **columns, "probe_task": probe_task, "pooling": "none",
             "layer": stat["layer"], "split": split, "metric": stat["metric"], "value": stat["value"],
             "position": stat["position"], "label": stat["label"], "n": stat["n"],
             "unit": ENTROPY_UNIT if stat["metric"] == "entropy" else EMD_UNIT}
        )
    return pd.DataFrame.from_records(rows)

