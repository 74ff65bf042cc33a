"""Sentence features from every layer of an encoder, with a checked on-disk cache.

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

The cache (:func:`load_or_extract`) stores one ``.npy`` per array next to ``metadata.json`` and
refuses to load when the stored metadata differ from the requested ones
(:class:`FeatureCacheMismatch` names the keys), so features of another model revision, data file,
layer count, pooling or max length are never used silently (structural-probes #11).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

import probeft
from probeft import models

if TYPE_CHECKING:
    from probeft.data import ProbingData

POOLINGS: tuple[str, ...] = ("cls", "mean")
SPLITS: tuple[str, ...] = ("train", "dev", "test")
METADATA_FILE = "metadata.json"
CACHE_FORMAT = 1  # bump when the on-disk layout changes
_ARRAY_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_HALF_DTYPES = {"float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
                "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


class FeatureCacheMismatch(ValueError):
    """A feature cache exists but was written for different metadata.

    Attributes:
        cache_dir: the cache directory.
        differing_keys: sorted metadata keys whose stored and requested values differ.
    """

    def __init__(self, cache_dir: Path, differences: Mapping[str, tuple[Any, Any]]) -> None:
        self.cache_dir = cache_dir
        self.differing_keys = sorted(differences)
        details = "; ".join(
            f"{key}: cached={_short(differences[key][0])} requested={_short(differences[key][1])}"
            for key in self.differing_keys
        )
        super().__init__(
            f"feature cache {cache_dir} was written for other metadata (differing keys: "
            f"{', '.join(self.differing_keys)}): {details}. Delete the directory, pass refresh=True, "
            "or use another cache_dir."
        )


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def masked_mean(
    hidden: torch.Tensor, attention_mask: torch.Tensor, special_tokens_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over the real tokens of each sequence, accumulated in float32.

    Args:
        hidden: ``(B, T, D)`` token states (any float dtype).
        attention_mask: ``(B, T)``; 1 for tokens, 0 for padding (padding never enters the mean).
        special_tokens_mask: optional ``(B, T)``; 1 marks special tokens, which are then excluded too.

    Returns:
        ``(B, D)`` float32 means. A row without any selected token gives zeros.
    """
    if hidden.ndim != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"masked_mean needs hidden (B, T, D) and attention_mask (B, T); got {tuple(hidden.shape)} "
            f"and {tuple(attention_mask.shape)}"
        )
    keep = attention_mask.bool()
    if special_tokens_mask is not None:
        if special_tokens_mask.shape != attention_mask.shape:
            raise ValueError(
                f"special_tokens_mask has shape {tuple(special_tokens_mask.shape)}, "
                f"expected {tuple(attention_mask.shape)}"
            )
        keep = keep & ~special_tokens_mask.bool()
    weights = keep.to(torch.float32).unsqueeze(1)  # (B, 1, T)
    total = torch.bmm(weights, hidden.to(torch.float32)).squeeze(1)  # (B, D)
    count = weights.sum(dim=2).clamp(min=1.0)  # (B, 1)
    return total / count


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
) -> dict[str, np.ndarray]:
    """Pooled features of every layer for a list of sentences.

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
    target = models.resolve_device(device)
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
            for start in range(0, len(sentences), batch_size):
                batch = order[start : start + batch_size]
                input_ids, attention, special_mask = _pad_batch(
                    [ids[i] for i in batch], [special[i] for i in batch], pad_id
                )
                attention = attention.to(target)
                output = model(input_ids=input_ids.to(target), attention_mask=attention, output_hidden_states=True)
                hidden_states = getattr(output, "hidden_states", None)
                if hidden_states is None:
                    raise ValueError(f"{type(model).__name__} returned no hidden_states; is it an encoder?")
                excluded = None if mean_includes_special else special_mask.to(target)
                pooled = _pool(hidden_states, attention, excluded, poolings)
                for pooling, values in pooled.items():
                    if pooling not in features:
                        features[pooling] = np.empty((values.shape[0], len(sentences), values.shape[2]), np.float32)
                    features[pooling][:, batch] = values.cpu().numpy()
                bar.update(len(batch))
    finally:
        model.train(was_training)
    return features


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


def _jsonable(value: Mapping[str, Any]) -> dict[str, Any]:
    """Round-trip through JSON so tuples/lists and ints/floats compare as they will when stored."""
    try:
        return json.loads(json.dumps(value, sort_keys=True))
    except TypeError as error:
        raise ValueError(f"feature metadata must be JSON-serialisable: {error}") from error


def _check_arrays(arrays: Mapping[str, np.ndarray], metadata: Mapping[str, Any], where: str) -> None:
    """Array names must be file-safe; shapes must agree with the metadata's layer count and width."""
    if not arrays:
        raise ValueError(f"{where}: no feature arrays")
    for name, array in arrays.items():
        if not _ARRAY_NAME.match(name):
            raise ValueError(f"{where}: array name {name!r} must match {_ARRAY_NAME.pattern}")
        layers, width = metadata.get("num_feature_layers"), metadata.get("hidden_size")
        if layers is not None and (array.ndim < 2 or array.shape[0] != layers):
            raise ValueError(f"{where}: array {name!r} has shape {array.shape}, expected {layers} layers on axis 0")
        if width is not None and array.shape[-1] != width:
            raise ValueError(f"{where}: array {name!r} has shape {array.shape}, expected hidden size {width}")


def _differences(stored: Mapping[str, Any], requested: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    keys = set(stored) | set(requested)
    return {key: (stored.get(key), requested.get(key)) for key in keys if stored.get(key) != requested.get(key)}


def _read_cache(cache_dir: Path, requested: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Load a complete cache after checking its metadata and array shapes."""
    stored = json.loads((cache_dir / METADATA_FILE).read_text())
    differences = _differences(stored.get("metadata", {}), requested)
    if differences:
        raise FeatureCacheMismatch(cache_dir, differences)
    arrays: dict[str, np.ndarray] = {}
    for name, entry in stored["arrays"].items():
        path = cache_dir / f"{name}.npy"
        if not path.is_file():
            raise FileNotFoundError(f"feature cache {cache_dir} lists {name!r} but {path.name} is missing")
        array = np.load(path)
        if list(array.shape) != entry["shape"]:
            raise ValueError(f"{path}: shape {array.shape} differs from {entry['shape']} in {METADATA_FILE}")
        arrays[name] = array
    _check_arrays(arrays, requested, str(cache_dir))
    return arrays


def _write_cache(cache_dir: Path, requested: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                 info: Mapping[str, Any] | None, replace: bool) -> None:
    """Write arrays + metadata into a temporary sibling directory, then rename it into place."""
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{cache_dir.name}.tmp-", dir=cache_dir.parent))
    old: Path | None = None
    try:
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", np.ascontiguousarray(array, dtype=np.float32))
        record = {
            "metadata": dict(requested),
            "arrays": {name: {"shape": list(array.shape), "dtype": "float32"} for name, array in arrays.items()},
            "info": _jsonable(info or {}),
        }
        (staging / METADATA_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        if cache_dir.exists():
            if replace or not any(cache_dir.iterdir()):
                old = cache_dir.parent / f".{cache_dir.name}.old-{uuid.uuid4().hex[:8]}"
                os.rename(cache_dir, old)
        try:
            os.rename(staging, cache_dir)  # atomic: readers see no cache or a complete one
        except OSError:
            if not (cache_dir / METADATA_FILE).is_file():
                raise
            _read_cache(cache_dir, requested)  # another writer won the race; it must agree with us
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def load_or_extract(
    cache_dir: str | Path | None,
    metadata: Mapping[str, Any],
    compute: Callable[[], Mapping[str, np.ndarray]],
    *,
    refresh: bool = False,
    info: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Return cached arrays if ``cache_dir`` holds them for ``metadata``, else compute and cache.

    Layout: ``cache_dir/<name>.npy`` per array and ``cache_dir/metadata.json`` holding
    ``{"metadata": ..., "arrays": {name: {"shape", "dtype"}}, "info": ...}``. The directory is
    written under a temporary name and renamed, so it is either absent or complete.

    Args:
        cache_dir: the cache directory (one per feature set), or None to always compute.
        metadata: JSON-compatible identity of the features (see :func:`feature_metadata`). If it
            has ``num_feature_layers`` / ``hidden_size``, every array's axis 0 / last axis must match.
        compute: called only on a cache miss; returns name -> array (names ``[A-Za-z0-9_.-]+``).
        refresh: recompute and replace an existing cache instead of loading / refusing it.
        info: extra JSON-compatible provenance stored alongside but never compared.

    Returns:
        name -> float32 array.

    Raises:
        FeatureCacheMismatch: the cache exists with different metadata (keys named).
        ValueError: ``cache_dir`` is a non-empty directory without ``metadata.json``, or arrays
            disagree with the metadata.
    """
    requested = _jsonable(metadata)
    if cache_dir is None:
        arrays = {name: np.asarray(array, dtype=np.float32) for name, array in compute().items()}
        _check_arrays(arrays, requested, "computed features")
        return arrays
    cache_dir = Path(cache_dir)
    if (cache_dir / METADATA_FILE).is_file() and not refresh:
        return _read_cache(cache_dir, requested)
    if cache_dir.is_file() or (cache_dir.is_dir() and any(cache_dir.iterdir()) and not refresh):
        raise ValueError(f"{cache_dir} exists but holds no {METADATA_FILE}, so it is not a feature cache")
    arrays = {name: np.asarray(array, dtype=np.float32) for name, array in compute().items()}
    _check_arrays(arrays, requested, "computed features")
    _write_cache(cache_dir, requested, arrays, info, replace=refresh)
    return arrays


def _slug(text: str, limit: int = 60) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")
    return slug[-limit:] or "model"


def feature_cache_path(cache_root: str | Path, metadata: Mapping[str, Any]) -> Path:
    """Directory under ``cache_root`` for one feature set: ``<model-slug>__<task>__<digest>``.

    The digest covers the model spec, task, data hash and extraction settings, so changing caps or
    max length selects another directory; model revision and probeft version are left out on
    purpose: if they change, the same directory is found and refused with :class:`FeatureCacheMismatch`.
    """
    keyed = {k: v for k, v in _jsonable(metadata).items() if k not in ("model_fingerprint", "probeft_version")}
    digest = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:12]
    name = f"{_slug(str(metadata.get('model', 'model')))}__{metadata.get('task') or 'data'}__{digest}"
    return Path(cache_root) / name


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
) -> dict[str, dict[str, np.ndarray]]:
    """Features of the train/dev/test sentences of a probing task, cached under ``cache_dir``.

    The model and tokenizer are loaded once, only on a cache miss. With ``cache_dir`` set the
    features live in :func:`feature_cache_path` ``(cache_dir, metadata)``.

    Args:
        model_spec: anything :func:`probeft.models.load_encoder` accepts (tiny name, alias, path, hub id).
        data: the probing data (from :func:`probeft.data.read_senteval`).
        cache_dir: cache root, or None to compute without caching.
        poolings, batch_size, max_length, device, mean_includes_special, dtype, sort_by_length,
            progress: as in :func:`extract_features`.
        refresh: recompute and overwrite an existing cache.

    Returns:
        split ("train", "dev", "test") -> pooling -> float32 ``(L + 1, N_split, D)``.
    """
    from transformers import AutoConfig  # local: only needed for the cache key

    resolved = models.resolve_model(model_spec)
    config = AutoConfig.from_pretrained(resolved)
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
        target = models.resolve_device(device)
        # float32 weights whatever the checkpoint holds; half precision only through `dtype` (autocast).
        model = models.load_encoder(model_spec, device=target, dtype=torch.float32)
        tokenizer = models.load_tokenizer(model_spec)
        arrays: dict[str, np.ndarray] = {}
        for split, part in splits.items():
            features = extract_features(
                model, tokenizer, part.sentences, poolings=poolings, batch_size=batch_size,
                max_length=max_length, device=target, mean_includes_special=mean_includes_special,
                sort_by_length=sort_by_length, dtype=dtype, progress=progress,
            )
            arrays.update({f"{split}.{pooling}": values for pooling, values in features.items()})
        return arrays

    where = None if cache_dir is None else feature_cache_path(cache_dir, metadata)
    info = {"resolved": str(fingerprint.get("resolved", resolved)), "data_path": str(data.path)}
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
    """Stack ``pooling -> (L + 1, N, D)`` features into ``(P, N, D)`` probes for :func:`probeft.probe.fit_probes`.

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
