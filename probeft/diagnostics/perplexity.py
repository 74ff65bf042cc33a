"""Masked-LM perplexity of fine-tuned encoders under the pre-trained MLM head (paper Sec. 5.2, Fig. 3).

A fine-tuned encoder has no language-modelling head of its own, so we put the *pre-trained*
model's masked-LM head on top of it (``models.load_mlm_model(finetuned_dir,
mlm_head_from=pretrained)``) and measure how well the pair still predicts masked tokens of
WikiText-2 (test, raw). Layer replacement (Fig. 3c/d) copies the top ``k`` pre-trained layers back
into the fine-tuned encoder (``layer_swap.replace_top_layers``) for ``k = 0..L``; for ALBERT, whose
layers share one set of weights, the last ``k`` *applications* of the shared layer use the
pre-trained weights (see :mod:`probeft.models.layer_swap`). As a contrast (issue 26, F7) the *bottom*
``k`` layers can be restored instead (``layer_swap.replace_bottom_layers``): rows say which in
``replaced_layers`` (``top`` / ``bottom``; ``none`` for plain evaluations).

Which masked-LM head: by default the pre-trained checkpoint's own (``mlm_head="pretrained"``, the paper's).
An encoder published without one (all-MiniLM-L6-v2) can take a head *fitted* on its frozen pre-trained
encoder instead (:mod:`probeft.diagnostics.mlm_head`, passed as ``mlm_head_from``): an analogue of the
paper's head, labelled ``mlm_head="fitted"`` in every row.

Evaluation text and masks:

* The whole text is tokenised as one stream (the file's lines joined by newlines, no special
  tokens) and cut into non-overlapping blocks of ``block_size - 2`` content tokens; each block is
  wrapped in the model's special tokens (``[CLS] ... [SEP]`` / ``<s> ... </s>``), so every block
  is exactly ``block_size`` tokens and needs no padding. The trailing partial block is dropped.
* Masking follows BERT: each content position is selected with probability 15% (special tokens,
  ``[UNK]`` included, are never selected); a selected token becomes the mask token with
  probability 80%, a random non-special vocabulary token with 10% and stays unchanged with 10%.
  All draws come from a CPU ``torch.Generator`` seeded with ``mask_seed`` and are made once for
  all blocks of the text (before ``max_blocks`` is applied), so every model and device sees the
  same masks and the first blocks' masks do not depend on ``max_blocks``.
* Perplexity is ``exp(sum of cross-entropies / number of masked positions)`` over all masked
  positions of all blocks (not a mean of per-batch means), in nats before the exponential.

The module runs to about 460 lines because masks, scoring and the result rows share one
contract (:class:`MaskedBlocks`) and splitting them would scatter it.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from probeft import models
from probeft.core.devices import resolve_device
from probeft.core.names import MLM_HEAD_FITTED, MLM_HEAD_PRETRAINED
from probeft.finetune import checkpoints as checkpoint_store
from probeft.models import layer_swap

__all__ = [
    "FITTED_HEAD",
    "IGNORE_INDEX",
    "PRETRAINED_HEAD",
    "MaskedBlocks",
    "finetune_checkpoints",
    "make_masked_blocks",
    "masked_lm_loss",
    "masked_lm_perplexity",
    "perplexity_table",
    "replacement_curve",
    "tokenize_stream",
]

IGNORE_INDEX = -100  # label of positions that are not predicted (the transformers convention)
PRETRAINED_HEAD, FITTED_HEAD = MLM_HEAD_PRETRAINED, MLM_HEAD_FITTED  # values of the rows' ``mlm_head`` column
MASK_PROB = 0.15
MASK_TOKEN_PROB = 0.8  # of the selected positions; then half the rest random, half unchanged
RANDOM_TOKEN_PROB = 0.1


@dataclass(frozen=True)
class MaskedBlocks:
    """Masked evaluation blocks.

    Attributes:
        input_ids: model inputs after masking, int64 (N, block_size).
        labels: original token id at selected positions, ``IGNORE_INDEX`` elsewhere, int64 (N, block_size).
        block_size: tokens per block, special tokens included.
        mask_seed: seed of the mask generator.
        total_blocks: full blocks the text gave before ``max_blocks`` was applied.
    """

    input_ids: Tensor
    labels: Tensor
    block_size: int
    mask_seed: int
    total_blocks: int

    @property
    def num_blocks(self) -> int:
        """Number of blocks N."""
        return int(self.input_ids.shape[0])

    @property
    def num_masked(self) -> int:
        """Number of predicted (selected) positions over all blocks."""
        return int((self.labels != IGNORE_INDEX).sum())

    def sha256(self) -> str:
        """Hash of inputs and labels (first 16 hex digits), to record which masks a result used."""
        digest = hashlib.sha256(self.input_ids.numpy().tobytes())
        digest.update(self.labels.numpy().tobytes())
        return digest.hexdigest()[:16]


def tokenize_stream(text: str, tokenizer: PreTrainedTokenizerBase) -> Tensor:
    """Token ids of a whole document as one stream, without special tokens.

    Args:
        text: the document (e.g. ``data.read_wikitext(...)``: lines joined by newlines).
        tokenizer: the pre-trained model's tokenizer.

    Returns:
        int64 ids, shape (T,).

    Raises:
        ValueError: the text is empty or gives no tokens.
    """
    if not text.strip():
        raise ValueError("the evaluation text is empty")
    # verbose=False: the stream is longer than the model's maximum on purpose; blocks come later.
    ids = tokenizer(text, add_special_tokens=False, return_attention_mask=False, verbose=False)["input_ids"]
    if not ids:
        raise ValueError("the evaluation text gives no tokens")
    return torch.tensor(ids, dtype=torch.long)


def _special_wrapping(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """The (leading, trailing) special token ids the tokenizer puts around one sequence."""
    # transformers 5 fast tokenizers have no build_inputs_with_special_tokens; the template of an
    # empty input is the wrapping ([CLS] [SEP] / <s> </s>).
    template = list(tokenizer("", add_special_tokens=True)["input_ids"])
    if len(template) != 2:
        raise ValueError(
            f"tokenizer {type(tokenizer).__name__} wraps a sequence in {len(template)} special tokens {template}; "
            "masked-LM blocks assume one leading and one trailing special token"
        )
    return template[0], template[1]


def _wrap_blocks(token_ids: Tensor, tokenizer: PreTrainedTokenizerBase, block_size: int) -> Tensor:
    """Cut the stream into (N, block_size) blocks of content wrapped in the model's special tokens."""
    content = block_size - 2
    total = token_ids.numel() // content
    if total == 0:
        raise ValueError(f"the text has {token_ids.numel()} tokens, fewer than one block of {content} content tokens")
    first, last = _special_wrapping(tokenizer)
    blocks = torch.empty(total, block_size, dtype=torch.long)
    blocks[:, 0], blocks[:, -1] = first, last
    blocks[:, 1:-1] = token_ids[: total * content].view(total, content)
    return blocks


def make_masked_blocks(
    token_ids: Tensor | Sequence[int],
    tokenizer: PreTrainedTokenizerBase,
    *,
    block_size: int = 128,
    mask_seed: int = 0,
    max_blocks: int | None = None,
) -> MaskedBlocks:
    """Blocks of the token stream with BERT-style masks drawn once from ``mask_seed``.

    Each block holds ``block_size - 2`` content tokens wrapped in the model's special tokens
    (non-overlapping, trailing partial block dropped). 15% of content positions are selected
    (special tokens never); of those 80% -> mask token, 10% -> random non-special token, 10% kept.
    Draws use a CPU generator over all blocks of the stream, then the first ``max_blocks`` are
    kept, so masks depend only on the token ids, ``block_size`` and ``mask_seed``.

    Args:
        token_ids: the stream, shape (T,) (see :func:`tokenize_stream`).
        tokenizer: supplies special tokens, the mask token and the vocabulary.
        block_size: tokens per block including the two special tokens (>= 3).
        mask_seed: seed of the mask generator.
        max_blocks: keep only the first ``max_blocks`` blocks (None: all).

    Returns:
        The masked blocks.

    Raises:
        ValueError: bad ``block_size`` / ``max_blocks``, no mask token, or too little text.
    """
    if block_size < 3:
        raise ValueError(f"block_size must be >= 3 (two special tokens + content), got {block_size}")
    if max_blocks is not None and max_blocks < 1:
        raise ValueError(f"max_blocks must be >= 1 or None, got {max_blocks}")
    if tokenizer.mask_token_id is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no mask token; it cannot be used for masked-LM evaluation")
    token_ids = torch.as_tensor(token_ids, dtype=torch.long).flatten().cpu()
    originals = _wrap_blocks(token_ids, tokenizer, block_size)
    special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
    vocab = torch.arange(len(tokenizer), dtype=torch.long)
    random_pool = vocab[~torch.isin(vocab, special_ids)]  # replacement tokens: never special

    generator = torch.Generator(device="cpu").manual_seed(mask_seed)
    select_draw = torch.rand(originals.shape, generator=generator)
    action_draw = torch.rand(originals.shape, generator=generator)
    random_tokens = random_pool[torch.randint(len(random_pool), originals.shape, generator=generator)]

    selected = (select_draw < MASK_PROB) & ~torch.isin(originals, special_ids)
    to_mask = selected & (action_draw < MASK_TOKEN_PROB)
    to_random = selected & (action_draw >= MASK_TOKEN_PROB) & (action_draw < MASK_TOKEN_PROB + RANDOM_TOKEN_PROB)
    inputs = torch.where(to_mask, torch.tensor(tokenizer.mask_token_id), originals)
    inputs = torch.where(to_random, random_tokens, inputs)
    labels = torch.where(selected, originals, torch.tensor(IGNORE_INDEX))
    keep = originals.shape[0] if max_blocks is None else min(max_blocks, originals.shape[0])
    return MaskedBlocks(
        input_ids=inputs[:keep].clone(), labels=labels[:keep].clone(), block_size=block_size,
        mask_seed=mask_seed, total_blocks=int(originals.shape[0]),
    )


def _check_fits(model: PreTrainedModel, blocks: MaskedBlocks) -> None:
    """Raise ValueError if the blocks are longer than the model's positions or use ids past its vocabulary."""
    config = model.config
    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and config.model_type in ("roberta", "xlm-roberta", "camembert"):
        limit -= (config.pad_token_id or 0) + 1  # RoBERTa positions start after padding_idx
    if limit is not None and blocks.block_size > limit:
        raise ValueError(f"block_size={blocks.block_size} exceeds the model's {limit} positions")
    largest = int(torch.maximum(blocks.input_ids.max(), blocks.labels.max()))
    if largest >= config.vocab_size:
        raise ValueError(f"token id {largest} is outside the model's vocabulary of {config.vocab_size}; wrong tokenizer?")


@torch.inference_mode()
def masked_lm_loss(
    mlm_model: PreTrainedModel, blocks: MaskedBlocks, *, batch_size: int = 16, device: str | torch.device | None = None
) -> tuple[float, int]:
    """Summed cross-entropy (nats) over all masked positions, and their count.

    Args:
        mlm_model: a masked-LM model (logits over the vocabulary), in eval mode.
        blocks: the masked blocks.
        batch_size: blocks per forward pass.
        device: where to run (default: the model's device). The model is not moved.

    Returns:
        (sum of cross-entropies, number of masked positions).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_fits(mlm_model, blocks)
    device = resolve_device(device) if device is not None else next(mlm_model.parameters()).device
    mlm_model.eval()
    total, count = 0.0, 0
    for start in range(0, blocks.num_blocks, batch_size):
        input_ids = blocks.input_ids[start : start + batch_size].to(device)
        labels = blocks.labels[start : start + batch_size].to(device)
        logits = mlm_model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits  # (B, T, V)
        predicted = labels != IGNORE_INDEX
        loss = F.cross_entropy(logits[predicted].float(), labels[predicted], reduction="sum")
        total += float(loss.double().item())
        count += int(predicted.sum())
    return total, count


def masked_lm_perplexity(
    mlm_model: PreTrainedModel, blocks: MaskedBlocks, *, batch_size: int = 16, device: str | torch.device | None = None
) -> float:
    """Perplexity ``exp(sum CE / count)`` over every masked position of every block.

    Args:
        mlm_model: a masked-LM model, e.g. from ``models.load_mlm_model``.
        blocks: the masked blocks (same for every model compared).
        batch_size: blocks per forward pass.
        device: where to run (default: the model's device).

    Raises:
        ValueError: no masked position at all (text too short).
    """
    total, count = masked_lm_loss(mlm_model, blocks, batch_size=batch_size, device=device)
    if count == 0:
        raise ValueError("no masked positions in the blocks; use more text or more blocks")
    return math.exp(total / count)


def replacement_curve(
    finetuned: str | Path,
    pretrained: str,
    blocks: MaskedBlocks,
    *,
    side: str = "top",
    mlm_head_from: str | None = None,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
) -> dict[int, float]:
    """Perplexity after replacing ``k`` fine-tuned layers at one end by pre-trained ones, k = 0..L.

    The fine-tuned encoder gets the pre-trained MLM head (or ``mlm_head_from``'s); ``layer_swap.replace_layers``
    copies the last (``side="top"``) or first (``side="bottom"``) ``k`` pre-trained transformer layers
    (embeddings untouched; ALBERT: the last / first ``k`` applications of the shared layer). Layers are
    replaced cumulatively in one model (replacing k+1 after k equals replacing k+1 of the original).

    Args:
        finetuned: fine-tuned encoder checkpoint (or the pre-trained spec for a trivial check).
        pretrained: the pre-trained model spec (MLM head and replacement layers).
        blocks: masked blocks.
        side: ``"top"`` or ``"bottom"`` (:data:`probeft.models.layer_swap.LAYER_SIDES`).
        mlm_head_from: a masked-LM model whose head replaces the pre-trained one (a fitted head,
            :mod:`probeft.diagnostics.mlm_head`); None: ``pretrained``'s own.
        batch_size: blocks per forward pass.
        device: where to run.

    Returns:
        k -> perplexity.

    Raises:
        layer_swap.LayerSwapError: the architecture has no layer layout that can be replaced.
    """
    if side not in layer_swap.LAYER_SIDES:
        raise ValueError(f"side must be one of {list(layer_swap.LAYER_SIDES)}, got {side!r}")
    pretrained_mlm = models.load_mlm_model(pretrained, mlm_head_from=mlm_head_from, device=device)
    model = models.load_mlm_model(str(finetuned), mlm_head_from=mlm_head_from or pretrained, device=device)
    curve = {}
    for k in range(models.num_hidden_layers(model) + 1):
        layer_swap.replace_layers(model, pretrained_mlm, k, side=side)
        curve[k] = masked_lm_perplexity(model, blocks, batch_size=batch_size, device=device)
    return curve


def finetune_checkpoints(finetune_runs: Mapping[int | str, str | Path]) -> dict[int, dict[int, Path]]:
    """Every complete epoch checkpoint of every fine-tuning run: ``{seed: {epoch: folder}}``.

    Args:
        finetune_runs: fine-tuning seed -> run folder holding ``epoch-<e>/`` checkpoints (seeds may be
            strings, as YAML / papermill pass them).

    Returns:
        Seeds as ints, epochs ascending, each checked against the weight digests in its marker
        (:func:`~probeft.finetune.checkpoints.verify_checkpoint`); a run without complete epochs maps to ``{}``
        (:func:`perplexity_table` refuses it with an error naming the seed).
    """
    return {int(seed): {epoch: checkpoint_store.verify_checkpoint(path)
                        for epoch, path in checkpoint_store.epoch_checkpoints(run).items()}
            for seed, run in finetune_runs.items()}


def _replacement_or_note(
    finetuned: str | Path, pretrained: str, blocks: MaskedBlocks, notes: list[str] | None, **run: Any
) -> dict[int, float]:
    """The replacement curve, or ``{}`` plus a warning (and a note) if the architecture cannot swap layers."""
    try:
        return replacement_curve(finetuned, pretrained, blocks, **run)
    except layer_swap.LayerSwapError as error:
        # The epoch rows are already computed; losing them over an undefined swap would waste the run.
        note = f"no layer replacement ({run.get('side', 'top')} layers) for {finetuned}: {error}"
        warnings.warn(note, stacklevel=3)
        if notes is not None:
            notes.append(note)
        return {}


def perplexity_table(
    pretrained: str,
    checkpoints: Mapping[int, Mapping[int, str | Path]],
    blocks: MaskedBlocks,
    *,
    model_name: str,
    finetune_task: str = "none",
    finetune_head: str = "none",
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    replacement: bool = True,
    sides: Sequence[str] = ("top",),
    mlm_head_from: str | None = None,
    mlm_head: str = PRETRAINED_HEAD,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """Perplexity rows: pre-trained (epoch 0), every fine-tuned epoch, and layer replacement.

    Args:
        pretrained: pre-trained model spec; its MLM head is used for every model.
        checkpoints: fine-tuning seed -> {epoch -> fine-tuned encoder folder} (see
            :func:`finetune_checkpoints`). Empty: only the pre-trained perplexity, plus (if
            ``replacement``) the trivial check of replacing the pre-trained model's layers by its own,
            which must leave the perplexity unchanged.
        blocks: masked blocks (see :func:`make_masked_blocks`).
        model_name: ``model`` column.
        finetune_task: ``finetune_task`` of the fine-tuned rows.
        finetune_head: ``finetune_head`` of the fine-tuned rows.
        batch_size: blocks per forward pass.
        device: where to run.
        replacement: also compute the k = 0..L replacement curves for each seed's final epoch.
        sides: which replacement curves: ``"top"`` (the paper's Fig. 3c/d) and / or ``"bottom"`` (the
            first k layers restored, the F7 contrast).
        mlm_head_from: a masked-LM model whose head is used instead of ``pretrained``'s (a head fitted on
            the frozen pre-trained encoder, :mod:`probeft.diagnostics.mlm_head`); None: ``pretrained``'s own.
        mlm_head: the rows' ``mlm_head`` label: :data:`PRETRAINED_HEAD` or :data:`FITTED_HEAD`.
        notes: if given, one note is appended per replacement curve that could not be computed
            (an architecture without a known layer layout, :class:`layer_swap.LayerSwapError`); such a
            curve is skipped with a warning and every other row is kept.

    Returns:
        Rows ``stage="perplexity"``, ``metric="perplexity"``, ``split="test"``, ``layer=-1``: the
        pre-trained model (``finetune_task="none"``, epoch 0); per seed, an epoch-0 row with the same
        value (the start of that run's curve, carrying its task / head / seed) and one row per
        completed epoch (``k_replaced=-1``); per seed and side, the final epoch with ``k_replaced`` = 0..L.
        Extra columns ``k_replaced`` (-1 for plain evaluations), ``replaced_layers`` (``top`` /
        ``bottom``; ``none`` for plain evaluations), ``mlm_head``, ``masked_tokens``, ``blocks``,
        ``block_size``, ``mask_seed``, ``masks_sha256``.

    Raises:
        ValueError: the pre-trained checkpoint (or ``mlm_head_from``) has no masked-LM head (from
            ``models.load_mlm_model``), a seed has no epochs, or an unknown side or head label.
    """
    unknown = [side for side in sides if side not in layer_swap.LAYER_SIDES]
    if unknown or len(set(sides)) != len(sides):
        raise ValueError(f"sides must be distinct values of {list(layer_swap.LAYER_SIDES)}, got {list(sides)}")
    if mlm_head not in (PRETRAINED_HEAD, FITTED_HEAD):
        raise ValueError(f"mlm_head must be {PRETRAINED_HEAD!r} or {FITTED_HEAD!r}, got {mlm_head!r}")
    for seed, epochs in checkpoints.items():  # before any model runs: a bad run fails fast
        if not epochs:
            raise ValueError(f"fine-tuning seed {seed} has no completed epochs")
    extra = {"mlm_head": mlm_head, "masked_tokens": blocks.num_masked, "blocks": blocks.num_blocks,
             "block_size": blocks.block_size, "mask_seed": blocks.mask_seed, "masks_sha256": blocks.sha256()}
    pretrained_cols = {"finetune_task": "none", "finetune_head": "none", "seed": 0, "epoch": 0}
    run = {"batch_size": batch_size, "device": device}
    head = pretrained if mlm_head_from is None else mlm_head_from  # what supplies the head of every model

    def row(columns: Mapping[str, Any], value: float, k: int, side: str = "none") -> dict[str, Any]:
        # Keys in the order of the results contract, then the stage's extra columns.
        return {"stage": "perplexity", "model": model_name, **columns, "probe_task": "none", "pooling": "none",
                "layer": -1, "split": "test", "metric": "perplexity", "value": value, "k_replaced": k,
                "replaced_layers": side, **extra}

    # fails early on a headless model
    pretrained_mlm = models.load_mlm_model(pretrained, mlm_head_from=mlm_head_from, device=device)
    pretrained_value = masked_lm_perplexity(pretrained_mlm, blocks, **run)
    rows = [row(pretrained_cols, pretrained_value, -1)]
    del pretrained_mlm
    curve_run = {**run, "mlm_head_from": mlm_head_from}
    if not checkpoints and replacement:
        for side in sides:
            curve = _replacement_or_note(pretrained, pretrained, blocks, notes, side=side, **curve_run)
            rows += [row(pretrained_cols, value, k, side) for k, value in curve.items()]
    for seed, epochs in checkpoints.items():
        columns = {"finetune_task": finetune_task, "finetune_head": finetune_head, "seed": int(seed)}
        # Epoch 0 of every run's curve is the pre-trained model (Fig. 3a/b start there).
        rows.append(row({**columns, "epoch": 0}, pretrained_value, -1))
        for epoch in sorted(epochs):
            model = models.load_mlm_model(str(epochs[epoch]), mlm_head_from=head, device=device)
            value = masked_lm_perplexity(model, blocks, **run)
            rows.append(row({**columns, "epoch": int(epoch)}, value, -1))
        if replacement:
            final = max(epochs)
            for side in sides:
                curve = _replacement_or_note(epochs[final], pretrained, blocks, notes, side=side, **curve_run)
                rows += [row({**columns, "epoch": int(final)}, value, k, side) for k, value in curve.items()]
    return pd.DataFrame.from_records(rows)
