"""Sentence features from every layer of an encoder, cached on disk with checked metadata.

One forward pass per batch with ``output_hidden_states=True`` gives all ``L + 1`` hidden states of
an ``L``-layer encoder: ``hidden_states[0]`` is the embedding output (layer 0), ``hidden_states[l]``
the output of transformer layer ``l``. Two poolings turn ``(B, T, D)`` states into ``(B, D)``:

- ``"cls"``: the first token (``[CLS]`` / ``<s>``); sequences are right-padded, so it is position 0.
- ``"mean"``: the mean over the sentence's tokens with padding masked out, so a sentence's feature
  does not depend on what else is in its batch (transformers #17463). By default the special
  tokens (``[CLS]``, ``[SEP]`` / ``<s>``, ``</s>``) are INCLUDED in the mean, as in a plain
  attention-masked mean; ``mean_includes_special=False`` excludes them using the tokenizer's
  ``special_tokens_mask``.

Batches are formed after sorting the sentences by tokenized length (less padding, longest batch
first so memory errors show at once) and the features are written back in the original order.
Features are float32 numpy arrays ``(L + 1, N, D)`` per pooling; with ``dtype=torch.float16`` /
``bfloat16`` on CUDA the forward pass runs under autocast and the mean is still accumulated in
float32.

:func:`feature_metadata` names everything that changes the numbers; :mod:`probeft.probing.feature_cache`
stores the arrays under it and refuses a cache written for other metadata.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

import probeft
from probeft import models
from probeft.core import oom
from probeft.core.devices import resolve_device
from probeft.core.names import POOLINGS
from probeft.core.pooling import masked_mean
from probeft.probing.feature_cache import feature_cache_path, load_or_extract

if TYPE_CHECKING:
    from probeft.data import ProbingData

__all__ = [
    "SPLITS", "dtype_name", "extract_features", "extract_probing_features", "feature_metadata",
    "load_for_extraction", "stack_probes",
]

SPLITS: tuple[str, ...] = ("train", "dev", "test")
CACHE_FORMAT = 1  # bump when the on-disk layout changes
_HALF_DTYPES = {"float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
                "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def dtype_name(dtype: torch.dtype | str | None) -> str:
    """Canonical name of a compute dtype: "float32" (None), "float16" or "bfloat16"."""
    if dtype is None or dtype in (torch.float32, "float32", "fp32"):
        return "float32"
    if isinstance(dtype, str) and dtype in _HALF_DTYPES:
        return str(_HALF_DTYPES[dtype]).removeprefix("torch.")
    if dtype in (torch.float16, torch.bfloat16):
        return str(dtype).removeprefix("torch.")
    raise ValueError(f"dtype must be None, float32, float16 or bfloat16; got {dtype!r}")


def _autocast(device: torch.device, dtype: torch.dtype | str | None) -> contextlib.AbstractContextManager:
    """Autocast context for half precision on CUDA; a no-op for float32."""
    name = dtype_name(dtype)
    if name == "float32":
        return contextlib.nullcontext()
    if device.type != "cuda":
        raise ValueError(f"dtype={name} is only supported on CUDA devices, got device {device}")
    return torch.autocast(device_type="cuda", dtype=getattr(torch, name))


def _tokenize(tokenizer: Any, sentences: Sequence[str], max_length: int) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids and special-token masks (with special tokens, truncated to ``max_length``)."""
    encoded = tokenizer(
        list(sentences),
        add_special_tokens=True,
        truncation=True,
        max_length=max_length,
        return_special_tokens_mask=True,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    return encoded["input_ids"], encoded["special_tokens_mask"]


def _pad_batch(
    ids: Sequence[list[int]], special: Sequence[list[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad one batch -> input_ids, attention_mask, special_tokens_mask, each ``(B, T)``."""
    width = max(len(row) for row in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    attention = np.zeros((len(ids), width), dtype=np.int64)
    special_mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, (token_ids, is_special) in enumerate(zip(ids, special)):
        input_ids[row, : len(token_ids)] = token_ids
        attention[row, : len(token_ids)] = 1
        special_mask[row, : len(token_ids)] = is_special
    return torch.from_numpy(input_ids), torch.from_numpy(attention), torch.from_numpy(special_mask)


def extract_features(
    model: torch.nn.Module,
    tokenizer: Any,
    sentences: Sequence[str],
    *,
    poolings: Sequence[str] = POOLINGS,
    batch_size: int = 64,
    max_length: int = 128,
    device: str | torch.device = "cpu",
    mean_includes_special: bool = True,
    sort_by_length: bool = True,
    dtype: torch.dtype | str | None = None,
    progress: bool = True,
    retries: list[oom.BatchRetry] | None = None,
) -> dict[str, np.ndarray]:
    """Pooled features of every layer for a list of sentences.

    A device out-of-memory error re-runs that batch in halves and keeps the smaller batch for the rest
    (:mod:`probeft.core.oom`); each halving is appended to ``retries`` when given.

    Args:
        model: a transformers encoder (``AutoModel``) returning ``hidden_states``; it is put in
            eval mode for the call (its mode is restored afterwards) and moved to ``device``.
        tokenizer: the matching tokenizer (callable, with ``special_tokens_mask`` support).
        sentences: N non-empty sentences.
        poolings: subset of :data:`POOLINGS`.
        batch_size: sentences per forward pass; only one batch is on the device at a time.
        max_length: tokens per sentence including special tokens (longer ones are truncated).
        device: "cpu", "cuda", ... or "auto" (CUDA when available).
        mean_includes_special: include special tokens in the mean (default) or exclude them.
        sort_by_length: batch sentences of similar length together (same features, less padding).
        dtype: None / float32, or float16 / bfloat16 autocast (CUDA only).
        progress: show a tqdm progress bar.
        retries: where the out-of-memory retries are recorded (None: only warned about).

    Returns:
        pooling -> float32 array ``(L + 1, N, D)`` in the order of ``sentences``; index 0 is the
        embedding layer.
    """
    unknown = [p for p in poolings if p not in POOLINGS]
    if unknown or not poolings:
        raise ValueError(f"poolings must be a non-empty subset of {POOLINGS}, got {list(poolings)}")
    if batch_size < 1 or max_length < 2:
        raise ValueError(f"need batch_size >= 1 and max_length >= 2, got {batch_size} and {max_length}")
    if not sentences:
        raise ValueError("sentences is empty")
    for index, sentence in enumerate(sentences):
        if not isinstance(sentence, str) or not sentence.strip():
            raise ValueError(f"sentence {index} is empty or not a string: {sentence!r}")
    target = resolve_device(device)
    autocast = _autocast(target, dtype)

    ids, special = _tokenize(tokenizer, sentences, max_length)
    lengths = np.array([len(row) for row in ids])
    # Longest first: fewer pad tokens per batch, and an out-of-memory error shows in the first batch.
    order = np.argsort(-lengths, kind="stable") if sort_by_length else np.arange(len(sentences))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0  # padding is masked anyway

    if next(model.parameters()).device != target:
        model.to(target)
    was_training = model.training
    model.eval()
    features: dict[str, np.ndarray] = {}
    try:
        with torch.inference_mode(), autocast, tqdm(
            total=len(sentences), desc="extract", unit="sent", disable=not progress
        ) as bar:
            start, current = 0, batch_size
            while start < len(sentences):
                batch = order[start : start + current]
                retry = None
                try:
                    pooled = _forward_pooled(model, [ids[i] for i in batch], [special[i] for i in batch], pad_id,
                                             target, poolings, mean_includes_special)
                except RuntimeError as error:
                    if not oom.is_out_of_memory(error):
                        raise
                    retry = oom.retry_record("extraction", error, current)  # re-raises at batch size 1
                if retry is not None:
                    oom.release_memory(target)  # outside the except block: its traceback held the batch's tensors
                    if retries is not None:
                        retries.append(retry)
                    current = retry.retry_batch_size
                    continue
                for pooling, values in pooled.items():
                    if pooling not in features:
                        features[pooling] = np.empty((values.shape[0], len(sentences), values.shape[2]), np.float32)
                    features[pooling][:, batch] = values.cpu().numpy()
                bar.update(len(batch))
                start += len(batch)
    finally:
        model.train(was_training)
    return features


def _forward_pooled(
    model: torch.nn.Module,
    ids: list[list[int]],
    special: list[list[int]],
    pad_id: int,
    target: torch.device,
    poolings: Sequence[str],
    mean_includes_special: bool,
) -> dict[str, torch.Tensor]:
    """One batch through the encoder: pooling -> ``(L + 1, B, D)`` pooled hidden states on ``target``."""
    input_ids, attention, special_mask = _pad_batch(ids, special, pad_id)
    attention = attention.to(target)
    output = model(input_ids=input_ids.to(target), attention_mask=attention, output_hidden_states=True)
    hidden_states = getattr(output, "hidden_states", None)
    if hidden_states is None:
        raise ValueError(f"{type(model).__name__} returned no hidden_states; is it an encoder?")
    excluded = None if mean_includes_special else special_mask.to(target)
    return _pool(hidden_states, attention, excluded, poolings)


def _pool(
    hidden_states: Sequence[torch.Tensor],
    attention: torch.Tensor,
    special_mask: torch.Tensor | None,
    poolings: Sequence[str],
) -> dict[str, torch.Tensor]:
    """``L + 1`` states ``(B, T, D)`` -> pooling -> float32 ``(L + 1, B, D)``."""
    pooled: dict[str, torch.Tensor] = {}
    if "cls" in poolings:
        pooled["cls"] = torch.stack([state[:, 0].to(torch.float32) for state in hidden_states])
    if "mean" in poolings:
        pooled["mean"] = torch.stack([masked_mean(state, attention, special_mask) for state in hidden_states])
    return pooled


def feature_metadata(
    *,
    model: str,
    fingerprint: Mapping[str, Any],
    data_sha256: str,
    num_layers: int,
    hidden_size: int,
    poolings: Sequence[str] = POOLINGS,
    max_length: int = 128,
    mean_includes_special: bool = True,
    dtype: torch.dtype | str | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """Metadata that identifies a set of cached features (everything that changes the numbers).

    Args:
        model: the model spec as given by the caller.
        fingerprint: :func:`probeft.models.model_fingerprint` output; its ``revision`` (commit hash
            or weight-file hash) is kept, the machine-specific ``resolved`` path is not.
        data_sha256: sha256 of the data (``ProbingData.sha256``, which covers caps).
        num_layers: ``L``, transformer layers (the features hold ``L + 1``).
        hidden_size: ``D``.
        poolings, max_length, mean_includes_special, dtype: extraction settings.
        task: the probing task name, if any.

    Returns:
        A JSON-compatible dict; two extractions with equal metadata give the same features.
    """
    return {
        "format": CACHE_FORMAT,
        "probeft_version": probeft.__version__,
        "model": model,
        "model_fingerprint": {k: v for k, v in sorted(fingerprint.items()) if k != "resolved"},
        "task": task,
        "data_sha256": data_sha256,
        "num_feature_layers": num_layers + 1,
        "hidden_size": hidden_size,
        "poolings": list(poolings),
        "max_length": max_length,
        "mean_includes_special": mean_includes_special,
        "dtype": dtype_name(dtype),
    }


def load_for_extraction(model_spec: str, device: str | torch.device = "auto") -> tuple[torch.nn.Module, Any]:
    """The encoder (float32 weights, on ``device``) and tokenizer that feature extraction uses.

    Weights are float32 whatever the checkpoint holds; half precision comes only through the
    ``dtype`` autocast of :func:`extract_features`.
    """
    target = resolve_device(device)
    return models.load_encoder(model_spec, device=target, dtype=torch.float32), models.load_tokenizer(model_spec)


def extract_probing_features(
    model_spec: str,
    data: ProbingData,
    *,
    cache_dir: str | Path | None = None,
    poolings: Sequence[str] = POOLINGS,
    batch_size: int = 64,
    max_length: int = 128,
    device: str | torch.device = "auto",
    mean_includes_special: bool = True,
    dtype: torch.dtype | str | None = None,
    sort_by_length: bool = True,
    progress: bool = True,
    refresh: bool = False,
    encoder: Callable[[], tuple[torch.nn.Module, Any]] | None = None,
    retries: list[oom.BatchRetry] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Features of the train/dev/test sentences of a probing task, cached under ``cache_dir``.

    The model and tokenizer are loaded once, only on a cache miss. With ``cache_dir`` set the
    features live in :func:`probeft.probing.feature_cache.feature_cache_path` ``(cache_dir, metadata)``.

    Args:
        model_spec: anything :func:`probeft.models.load_encoder` accepts (tiny name, alias, path, hub id).
        data: the probing data (from :func:`probeft.data.read_senteval`).
        cache_dir: cache root, or None to compute without caching.
        poolings, batch_size, max_length, device, mean_includes_special, dtype, sort_by_length,
            progress: as in :func:`extract_features`.
        refresh: recompute and overwrite an existing cache.
        encoder: called on a cache miss for ``(model, tokenizer)`` instead of loading them, so a caller
            probing several tasks loads the encoder once (see :func:`load_for_extraction`).
        retries: where out-of-memory batch halvings are recorded (see :func:`extract_features`).

    Returns:
        split ("train", "dev", "test") -> pooling -> float32 ``(L + 1, N_split, D)``.
    """
    config = models.load_config(model_spec)
    fingerprint = models.model_fingerprint(model_spec)
    metadata = feature_metadata(
        model=model_spec,
        fingerprint=fingerprint,
        data_sha256=data.sha256,
        num_layers=int(config.num_hidden_layers),
        hidden_size=int(config.hidden_size),
        poolings=poolings,
        max_length=max_length,
        mean_includes_special=mean_includes_special,
        dtype=dtype,
        task=data.task,
    )
    splits = {"train": data.train, "dev": data.dev, "test": data.test}

    def compute() -> dict[str, np.ndarray]:
        target = resolve_device(device)
        model, tokenizer = encoder() if encoder is not None else load_for_extraction(model_spec, target)
        arrays: dict[str, np.ndarray] = {}
        for split, part in splits.items():
            features = extract_features(
                model, tokenizer, part.sentences, poolings=poolings, batch_size=batch_size,
                max_length=max_length, device=target, mean_includes_special=mean_includes_special,
                sort_by_length=sort_by_length, dtype=dtype, progress=progress, retries=retries,
            )
            arrays.update({f"{split}.{pooling}": values for pooling, values in features.items()})
        return arrays

    where = None if cache_dir is None else feature_cache_path(cache_dir, metadata)
    info = {"resolved": str(fingerprint["resolved"]), "data_path": str(data.path)}
    arrays = load_or_extract(where, metadata, compute, refresh=refresh, info=info)
    result: dict[str, dict[str, np.ndarray]] = {}
    for split, part in splits.items():
        result[split] = {}
        for pooling in poolings:
            values = arrays[f"{split}.{pooling}"]
            if values.shape[1] != len(part.sentences):
                raise ValueError(f"cached {split}.{pooling} has {values.shape[1]} rows, data has {len(part.sentences)}")
            result[split][pooling] = values
    return result


def stack_probes(
    features: Mapping[str, np.ndarray],
    *,
    poolings: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Stack ``pooling -> (L + 1, N, D)`` features into ``(P, N, D)`` probes for :func:`probeft.probing.probe.fit_probes`.

    Args:
        features: one split's features, pooling -> ``(L + 1, N, D)``.
        poolings: which poolings (default: all in ``features``, in insertion order).
        layers: which layers (default: all ``0..L``); an index outside the stored range raises.

    Returns:
        ``(P, N, D)`` array with ``P = len(poolings) * len(layers)`` (pooling-major), and the
        ``(pooling, layer)`` of each probe.
    """
    chosen = list(poolings) if poolings is not None else list(features)
    missing = [p for p in chosen if p not in features]
    if missing or not chosen:
        raise ValueError(f"poolings {missing or chosen} not in the features (have {list(features)})")
    num_layers = features[chosen[0]].shape[0]
    wanted = list(layers) if layers is not None else list(range(num_layers))
    for pooling in chosen:
        if features[pooling].shape[0] != num_layers:
            raise ValueError(
                f"pooling {pooling!r} has {features[pooling].shape[0]} layers, {chosen[0]!r} has {num_layers}"
            )
    bad = [layer for layer in wanted if not 0 <= layer < num_layers]
    if bad:
        raise ValueError(f"layers {bad} out of range: the features hold layers 0..{num_layers - 1}")
    index = [(pooling, layer) for pooling in chosen for layer in wanted]
    stacked = np.stack([features[pooling][layer] for pooling, layer in index])
    return stacked, index
