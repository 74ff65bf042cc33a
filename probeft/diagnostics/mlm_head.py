"""Fit a masked-LM head on a frozen pre-trained encoder: the analogue of the paper's pre-trained head.

The paper's Sec. 5.2 (Fig. 3) puts the *pre-trained* model's masked-LM head on a fine-tuned encoder. The
sentence encoders this workplace has offline (all-MiniLM-L6-v2, all-mpnet-base-v2) were published without
one, so :func:`fit_mlm_head` fits a head on the frozen pre-trained encoder instead, and
:func:`save_fitted_head` writes the whole masked-LM model (pre-trained encoder + fitted head) so that
``models.load_mlm_model(finetuned_dir, mlm_head_from=<that folder>)`` uses it exactly as it would use a
pre-trained head. Results computed with it are an *analogue* (:data:`ANALOGUE_NOTE`), never the paper's number.

The fit:

* The model is ``AutoModelForMaskedLM`` of the encoder's config (:func:`probeft.models.new_mlm_model`): the
  pre-trained encoder weights, a head initialised from ``seed``. The head is the masked-LM model's one child
  other than ``model.base_model_prefix`` (BERT ``cls``, RoBERTa / MPNet ``lm_head``, ALBERT ``predictions``).
  Its decoder weight stays tied to the input word embeddings and frozen, as in BERT's pre-training; only the
  head's own parameters (transform dense + LayerNorm, output bias) are trained, the encoder is frozen.
* Text: WikiText-2 *validation* (:func:`probeft.data.read_wikitext_valid`), so the test split the perplexity
  is measured on stays unseen. Blocks and BERT 80/10/10 masks come from
  :func:`probeft.diagnostics.perplexity.make_masked_blocks` with the fit's own ``mask_seed``. The tokenised
  release's ``<unk>`` markers become the tokenizer's unknown token, a special token that is never masked.
* The last ``heldout_fraction`` of the blocks (a contiguous slice, so no block of it neighbours a fitted one
  except at the cut) is held out; the epoch with the lowest held-out perplexity is kept (early stopping after
  ``patience`` epochs without improvement).
* Adam on minibatches of masked positions, in an order drawn from a CPU generator seeded with ``seed``: the
  same seed, text and thread count give the same head.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from probeft import models
from probeft.core.data_reads import sha256_of_file
from probeft.core.devices import resolve_device
from probeft.core.files import atomic_directory, atomic_write_text
from probeft.core.names import FITTED_HEAD_NOTE
from probeft.core.quiet import quiet_transformers
from probeft.diagnostics import perplexity

__all__ = [
    "ANALOGUE_NOTE",
    "HEAD_FOLDER",
    "RECORD_FILE",
    "FittedHead",
    "HeadFitSettings",
    "encode_masked_positions",
    "fit_mlm_head",
    "head_label",
    "head_module",
    "head_parameters",
    "record_rows",
    "save_fitted_head",
    "unigram_perplexity",
    "verify_fitted_head",
]

RECORD_FILE = "mlm_head.json"  # in a saved head's folder, written last: what was fitted, how, and file digests
RECORD_FORMAT = 1
HEAD_FOLDER = "head"  # where a head-fitting notebook saves the head inside its output folder
ANALOGUE_NOTE = FITTED_HEAD_NOTE  # how every result computed with a fitted head is labelled
MIN_FIT_BLOCKS = 1  # blocks to fit on, and the same again held out: fewer and there is nothing to fit or judge
UNK_MARKER = "<unk>"  # the tokenised WikiText release's rare-word marker


@dataclass(frozen=True)
class HeadFitSettings:
    """How a head is fitted (the grid's ``perplexity.head_fit`` section).

    Attributes:
        block_size: tokens per block with the two special tokens (the perplexity evaluation's).
        max_blocks: use only the first ``max_blocks`` blocks of the text (None: all).
        heldout_fraction: share of the blocks held out (the last ones), at least one block.
        epochs: most passes over the fitting positions.
        patience: stop after this many epochs without a lower held-out perplexity.
        learning_rate: Adam's step size.
        batch_size: masked positions per step.
        seed: seed of the head's initialisation and of the minibatch order.
        mask_seed: seed of the fitting text's masks (its own, not the evaluation's).
        encode_batch_size: blocks per forward pass of the frozen encoder.
    """

    block_size: int = 128
    max_blocks: int | None = 1000
    heldout_fraction: float = 0.1
    epochs: int = 10
    patience: int = 2
    learning_rate: float = 1e-3
    batch_size: int = 256
    seed: int = 0
    mask_seed: int = 1
    encode_batch_size: int = 16

    def __post_init__(self) -> None:
        checks = {"block_size": self.block_size >= 3, "epochs": self.epochs >= 1, "patience": self.patience >= 1,
                  "batch_size": self.batch_size >= 1, "encode_batch_size": self.encode_batch_size >= 1,
                  "max_blocks": self.max_blocks is None or self.max_blocks >= 2 * MIN_FIT_BLOCKS,
                  "heldout_fraction": 0 < self.heldout_fraction < 1, "learning_rate": self.learning_rate > 0}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"bad head-fit settings {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}")


@dataclass
class FittedHead:
    """A masked-LM model with a fitted head, its tokenizer, and the record of the fit.

    Attributes:
        model: pre-trained encoder + fitted head, in eval mode.
        tokenizer: the encoder's tokenizer.
        record: what :data:`RECORD_FILE` holds (settings, text, counts, perplexities, timings).
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    record: dict[str, Any] = field(default_factory=dict)


def head_module(mlm_model: PreTrainedModel) -> tuple[str, torch.nn.Module]:
    """The masked-LM head: the model's one child other than its encoder (``base_model_prefix``).

    Args:
        mlm_model: an ``AutoModelForMaskedLM`` whose head maps hidden states (..., D) to logits (..., V)
            (BERT ``cls``, RoBERTa / MPNet ``lm_head``, ALBERT ``predictions``).

    Returns:
        ``(name, module)``.

    Raises:
        ValueError: the model has no such child, or several (a head built in ``forward`` from parts, as
            DistilBERT's, is not supported).
    """
    children = [(name, child) for name, child in mlm_model.named_children() if name != mlm_model.base_model_prefix]
    if len(children) != 1:
        raise ValueError(f"{type(mlm_model).__name__} has {len(children)} modules besides its encoder "
                         f"({[name for name, _ in children]}); a fitted head needs exactly one")
    return children[0]


def head_parameters(mlm_model: PreTrainedModel) -> dict[str, torch.nn.Parameter]:
    """The head's own parameters: those of :func:`head_module` that are not encoder weights.

    The decoder weight tied to the input word embeddings is the encoder's, so it is not among them.

    Returns:
        Qualified name (as in ``mlm_model.named_parameters``, e.g. ``cls.predictions.bias``) -> parameter.
    """
    name, head = head_module(mlm_model)
    encoder_ids = {id(p) for p in mlm_model.base_model.parameters()}
    return {f"{name}.{key}": p for key, p in head.named_parameters() if id(p) not in encoder_ids}


@torch.inference_mode()
def encode_masked_positions(
    mlm_model: PreTrainedModel, blocks: perplexity.MaskedBlocks, *, batch_size: int = 16,
    device: str | torch.device = "cpu",
) -> tuple[Tensor, Tensor]:
    """The frozen encoder's last hidden state at every masked position, and the token to predict there.

    Args:
        mlm_model: the masked-LM model; only its encoder (``base_model``) runs.
        blocks: masked blocks (inputs already masked).
        batch_size: blocks per forward pass.
        device: where the encoder runs (the outputs come back on the CPU).

    Returns:
        ``hidden`` float32 (M, D) and ``labels`` int64 (M,), M = ``blocks.num_masked``, in block order.
    """
    encoder = mlm_model.base_model.to(device).eval()
    hidden, labels = [], []
    for start in range(0, blocks.num_blocks, batch_size):
        input_ids = blocks.input_ids[start: start + batch_size].to(device)
        targets = blocks.labels[start: start + batch_size]
        states = encoder(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).last_hidden_state  # (B, T, D)
        predicted = targets != perplexity.IGNORE_INDEX
        hidden.append(states[predicted.to(device)].float().cpu())
        labels.append(targets[predicted])
    return torch.cat(hidden), torch.cat(labels)


def _cross_entropy(head: torch.nn.Module, hidden: Tensor, labels: Tensor, *, batch_size: int,
                   device: torch.device) -> float:
    """Mean cross-entropy (nats) of ``head`` over all cached positions, summed in float64."""
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(labels), batch_size):
            logits = head(hidden[start: start + batch_size].to(device))  # (B, V)
            total += float(F.cross_entropy(logits.float(), labels[start: start + batch_size].to(device),
                                           reduction="sum").double())
    return total / len(labels)


def unigram_perplexity(fit_labels: Tensor, heldout_labels: Tensor, vocab_size: int) -> float:
    """Held-out perplexity of the fitting positions' token frequencies (add-one smoothed over the vocabulary).

    What a head that ignores the context can reach at best (its bias alone): a fitted head near this number
    learned the word frequencies and little from the encoder.

    Args:
        fit_labels: tokens to predict at the fitting positions, int64 (M,).
        heldout_labels: tokens at the held-out positions, int64 (H,).
        vocab_size: V.
    """
    counts = torch.bincount(fit_labels, minlength=vocab_size).double() + 1.0  # (V,)
    log_probability = torch.log(counts / counts.sum())
    return math.exp(-float(log_probability[heldout_labels].mean()))


def _fitting_blocks(text: str, tokenizer: PreTrainedTokenizerBase, settings: HeadFitSettings,
                    text_source: str) -> tuple[int, perplexity.MaskedBlocks]:
    """Token count and masked blocks of the fitting text; errors name the text and the counts."""
    if not text.strip():
        raise ValueError(f"{text_source}: the fitting text is empty")
    if tokenizer.unk_token is not None:
        text = text.replace(UNK_MARKER, tokenizer.unk_token)
    stream = perplexity.tokenize_stream(text, tokenizer)
    needed = 2 * MIN_FIT_BLOCKS
    try:
        blocks = perplexity.make_masked_blocks(stream, tokenizer, block_size=settings.block_size,
                                               mask_seed=settings.mask_seed, max_blocks=settings.max_blocks)
    except ValueError as error:
        raise ValueError(f"{text_source}: {len(stream)} tokens give no block of {settings.block_size} tokens; "
                         f"a head fit needs at least {needed} ({error})") from error
    if blocks.num_blocks < needed:
        raise ValueError(f"{text_source}: {len(stream)} tokens give {blocks.num_blocks} block(s) of "
                         f"{settings.block_size} tokens; a head fit needs at least {needed} "
                         f"({MIN_FIT_BLOCKS} to fit, {MIN_FIT_BLOCKS} held out)")
    return len(stream), blocks


def _split(blocks: perplexity.MaskedBlocks, heldout_fraction: float) -> tuple[perplexity.MaskedBlocks, ...]:
    """(fitting, held-out) blocks: the held-out ones are the last ``heldout_fraction`` (at least one)."""
    heldout = min(blocks.num_blocks - MIN_FIT_BLOCKS, max(MIN_FIT_BLOCKS, round(heldout_fraction * blocks.num_blocks)))
    cut = blocks.num_blocks - heldout
    parts = []
    for rows in (slice(0, cut), slice(cut, None)):
        parts.append(perplexity.MaskedBlocks(
            input_ids=blocks.input_ids[rows], labels=blocks.labels[rows], block_size=blocks.block_size,
            mask_seed=blocks.mask_seed, total_blocks=blocks.total_blocks))
    return tuple(parts)


def _snapshot(parameters: dict[str, torch.nn.Parameter]) -> dict[str, Tensor]:
    """Copies of the trained parameters (the tied decoder weight is the encoder's and never changes)."""
    return {name: parameter.detach().clone() for name, parameter in parameters.items()}


def fit_mlm_head(
    encoder_spec: str,
    text: str,
    *,
    text_source: str,
    settings: HeadFitSettings | None = None,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] | None = None,
) -> FittedHead:
    """Fit a masked-LM head on the frozen pre-trained encoder ``encoder_spec`` (see the module docstring).

    Args:
        encoder_spec: the pre-trained encoder (model spec or folder), e.g. ``"all-minilm-l6-v2"``.
        text: the fitting text (WikiText-2 validation).
        text_source: where ``text`` came from (a path), named in errors and recorded.
        settings: how to fit (default :class:`HeadFitSettings`).
        device: where the encoder and the head run.
        log: called with one line per epoch (None: quiet).

    Returns:
        The fitted model (in eval mode, on ``device``), its tokenizer and the fit's record.

    Raises:
        ValueError: the text is empty or gives fewer than two blocks (the message names ``text_source`` and
            the counts), or the model's head cannot be found.
    """
    settings = settings or HeadFitSettings()
    device = resolve_device(device)
    tokenizer = models.load_tokenizer(encoder_spec)
    tokens, blocks = _fitting_blocks(text, tokenizer, settings, text_source)
    fit_blocks, heldout_blocks = _split(blocks, settings.heldout_fraction)
    model = models.new_mlm_model(encoder_spec, seed=settings.seed, device=device)
    trained = head_parameters(model)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in trained.values():
        parameter.requires_grad_(True)

    started = time.monotonic()
    # The encoder is frozen, so its hidden states at the masked positions are the same in every epoch: one
    # pass under inference_mode caches them, and the epochs train the head alone (a pass of the head costs a
    # small fraction of the encoder's).
    fit_hidden, fit_labels = encode_masked_positions(model, fit_blocks, batch_size=settings.encode_batch_size,
                                                     device=device)
    heldout_hidden, heldout_labels = encode_masked_positions(model, heldout_blocks,
                                                             batch_size=settings.encode_batch_size, device=device)
    encode_seconds = time.monotonic() - started
    # Tensors made under inference_mode cannot enter autograd; plain copies can (the held-out ones are only read).
    fit_hidden = fit_hidden.clone()

    _, head = head_module(model)
    head.eval()  # no dropout or batch statistics in these heads; eval mode keeps it that way for any other
    evaluate = {"batch_size": 4 * settings.batch_size, "device": device}
    untrained = _cross_entropy(head, heldout_hidden, heldout_labels, **evaluate)
    optimizer = torch.optim.Adam(list(trained.values()), lr=settings.learning_rate)
    order = torch.Generator(device="cpu").manual_seed(settings.seed)
    best = (untrained, 0, _snapshot(trained))
    history = [{"epoch": 0, "fit_perplexity": math.nan, "heldout_perplexity": math.exp(untrained)}]
    started = time.monotonic()
    for epoch in range(1, settings.epochs + 1):
        permutation = torch.randperm(len(fit_labels), generator=order)
        running = 0.0
        for start in range(0, len(permutation), settings.batch_size):
            chosen = permutation[start: start + settings.batch_size]
            logits = head(fit_hidden[chosen].to(device))  # (B, V)
            loss = F.cross_entropy(logits.float(), fit_labels[chosen].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += float(loss.detach()) * len(chosen)
        heldout = _cross_entropy(head, heldout_hidden, heldout_labels, **evaluate)
        history.append({"epoch": epoch, "fit_perplexity": math.exp(running / len(fit_labels)),
                        "heldout_perplexity": math.exp(heldout)})
        if log is not None:
            log(f"epoch {epoch}: fitting perplexity {history[-1]['fit_perplexity']:.2f} (running mean), "
                f"held-out {history[-1]['heldout_perplexity']:.2f}")
        if heldout < best[0]:
            best = (heldout, epoch, _snapshot(trained))
        elif epoch - best[1] >= settings.patience:
            break
    with torch.no_grad():
        for name, parameter in trained.items():
            parameter.copy_(best[2][name])
            parameter.requires_grad_(False)
    fit_seconds = time.monotonic() - started

    record = {
        "format": RECORD_FORMAT,
        "mlm_head": perplexity.FITTED_HEAD,
        "label": ANALOGUE_NOTE,
        "encoder": encoder_spec,
        "encoder_revision": models.model_fingerprint(encoder_spec)["revision"],
        "fitting_text": text_source,
        "fitting_text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "tokens": tokens,
        "blocks_total": blocks.total_blocks,
        "blocks_fit": fit_blocks.num_blocks,
        "blocks_heldout": heldout_blocks.num_blocks,
        "masked_fit": len(fit_labels),
        "masked_heldout": len(heldout_labels),
        "masks_sha256": blocks.sha256(),
        "settings": asdict(settings),
        "trained_parameters": sorted(trained),
        "epochs_run": len(history) - 1,
        "best_epoch": best[1],
        "fit_perplexity": math.exp(_cross_entropy(head, fit_hidden, fit_labels, **evaluate)),
        "heldout_perplexity": math.exp(best[0]),
        "heldout_perplexity_untrained": math.exp(untrained),
        "heldout_perplexity_unigram": unigram_perplexity(fit_labels, heldout_labels, model.config.vocab_size),
        "history": history,
        "encode_seconds": round(encode_seconds, 2),
        "fit_seconds": round(fit_seconds, 2),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    return FittedHead(model=model.eval(), tokenizer=tokenizer, record=record)


def save_fitted_head(fitted: FittedHead, out_dir: str | Path) -> Path:
    """Write the masked-LM model, its tokenizer and :data:`RECORD_FILE` into ``out_dir``, atomically.

    The folder is built under a temporary name and replaces ``out_dir`` only when complete; the record,
    written last, holds the sha256 of every other file, which :func:`verify_fitted_head` checks.

    Returns:
        ``out_dir`` as a Path; it loads with ``models.load_mlm_model(encoder, mlm_head_from=out_dir)``.
    """
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as staging:
        with quiet_transformers():
            fitted.model.save_pretrained(staging)
        fitted.tokenizer.save_pretrained(staging)
        digests = {path.name: sha256_of_file(path) for path in sorted(staging.iterdir()) if path.is_file()}
        record = {**fitted.record, "files_sha256": digests}
        atomic_write_text(staging / RECORD_FILE, json.dumps(record, indent=2, sort_keys=True))
    return out_dir


def verify_fitted_head(folder: str | Path) -> dict[str, Any]:
    """The record of a saved fitted head, after checking every file against the digests it holds.

    Raises:
        FileNotFoundError: no :data:`RECORD_FILE` in ``folder`` (not a fitted head, or not finished).
        ValueError: the record is unreadable, or a file is missing or changed (named).
    """
    folder = Path(folder)
    path = folder / RECORD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no fitted masked-LM head ({RECORD_FILE} is missing)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        digests = dict(record["files_sha256"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is unreadable ({error})") from error
    for name, digest in sorted(digests.items()):
        if not (folder / name).is_file():
            raise ValueError(f"fitted head {folder}: {name} is missing")
        if (actual := sha256_of_file(folder / name)) != digest:
            raise ValueError(f"fitted head {folder}: {name} changed since it was written "
                             f"(sha256 {digest[:12]} -> {actual[:12]})")
    return record


def head_label(mlm_head_from: str | Path | None) -> str:
    """The ``mlm_head`` label of perplexity rows computed with ``mlm_head_from`` as the head's source.

    None (the pre-trained model's own head) or a model folder without :data:`RECORD_FILE` (another
    pre-trained masked-LM model) -> ``"pretrained"``; a fitted head's folder -> ``"fitted"``, after
    :func:`verify_fitted_head` (a changed or half-written fitted head is refused).
    """
    if mlm_head_from is None or not (Path(str(mlm_head_from)) / RECORD_FILE).is_file():
        return perplexity.PRETRAINED_HEAD
    return str(verify_fitted_head(mlm_head_from)["mlm_head"])


def record_rows(record: dict[str, Any], *, model_name: str) -> pd.DataFrame:
    """The fit's perplexities as result rows (``stage="mlm_head"``; the perplexity figure does not read them).

    Args:
        record: a fit's record (:attr:`FittedHead.record` or :func:`verify_fitted_head`).
        model_name: the ``model`` column.

    Returns:
        Three rows, ``metric="perplexity"``: ``split="fit"`` (the fitting positions) and ``split="heldout"``
        with the fitted head at its best epoch (``epoch``), and ``split="heldout"`` with ``epoch=0`` (the
        untrained head); where the record has it, a fourth, ``metric="perplexity_token_frequencies"`` (the
        held-out perplexity of the fitting positions' token frequencies, :func:`unigram_perplexity`). Extra
        columns ``mlm_head`` ("fitted"), ``fitting_text``, ``blocks_fit``, ``blocks_heldout``, ``masked_fit``,
        ``masked_heldout``.
    """
    best = int(record["best_epoch"])
    extra = {"mlm_head": record["mlm_head"], "fitting_text": record["fitting_text"],
             **{key: record[key] for key in ("blocks_fit", "blocks_heldout", "masked_fit", "masked_heldout")}}
    rows = [(split, epoch, "perplexity", record[key]) for split, epoch, key in (
        ("fit", best, "fit_perplexity"), ("heldout", best, "heldout_perplexity"),
        ("heldout", 0, "heldout_perplexity_untrained"))]
    if "heldout_perplexity_unigram" in record:
        rows.append(("heldout", 0, "perplexity_token_frequencies", record["heldout_perplexity_unigram"]))
    return pd.DataFrame.from_records([
        {"stage": "mlm_head", "model": model_name, "finetune_task": "none", "finetune_head": "none", "seed": 0,
         "epoch": epoch, "probe_task": "none", "pooling": "none", "layer": -1, "split": split,
         "metric": metric, "value": float(value), **extra} for split, epoch, metric, value in rows])
