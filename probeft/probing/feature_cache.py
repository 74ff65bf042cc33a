"""The on-disk feature cache: one folder of ``.npy`` arrays and a ``metadata.json`` that must match.

Layout: ``<cache_dir>/<name>.npy`` per array and ``<cache_dir>/metadata.json`` holding
``{"metadata": ..., "arrays": {name: {"shape", "dtype"}}, "info": ...}``. The folder is built under a
temporary name and renamed into place (:func:`probeft.core.files.atomic_directory`), so it is either absent
or complete. Loading refuses a cache whose stored metadata differ from the requested ones
(:class:`FeatureCacheMismatch` names the keys), so features of another model revision, data file,
layer count, pooling or max length are never used silently (structural-probes #11).

Arrays are stored as float32, or as float16 with ``dtype="float16"`` (half the disk; the probes still
compute in float32). Every array's sha256 (of its stored bytes, hashed in memory as it is written and
streamed from the file in chunks as it is read back, so checking never holds a copy) is in
``metadata.json``. With ``mmap=True`` a cache hit returns read-only memory-mapped arrays: nothing is
read into memory until used, and a consumer that copies an array and drops it holds no second copy.
An array that is missing, truncated, unreadable or changed since it was written,
or a cache written before the hashes were recorded, is not used: :func:`load_or_extract` says which
file and computes the features again (they are a pure function of the metadata, so this is safe).

This module knows nothing about models: it takes metadata dicts and arrays.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from probeft.core.files import atomic_directory

__all__ = [
    "CACHE_DTYPES",
    "METADATA_FILE",
    "FeatureCacheCorrupt",
    "FeatureCacheMismatch",
    "drop_features_of",
    "estimate_cache_bytes",
    "feature_cache_path",
    "load_or_extract",
]

METADATA_FILE = "metadata.json"
CACHE_DTYPES: tuple[str, ...] = ("float32", "float16")  # storage dtypes; probes always compute in float32
_ARRAY_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_HASH_CHUNK = 1 << 24  # bytes read at a time when a cached array's hash is checked


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
        if "model_fingerprint" in differences:
            advice = ("The model's weights are not the ones these features came from: if the model changed on "
                      "purpose, delete the directory (or pass refresh=True); if not, restore the model first.")
        else:
            advice = "Delete the directory, pass refresh=True, or use another cache_dir."
        super().__init__(
            f"feature cache {cache_dir} was written for other metadata (differing keys: "
            f"{', '.join(self.differing_keys)}): {details}. {advice}"
        )


class FeatureCacheCorrupt(ValueError):
    """A feature cache's arrays do not verify against its ``metadata.json`` (the message names the file)."""


def _check_dtype(dtype: str) -> np.dtype:
    if dtype not in CACHE_DTYPES:
        raise ValueError(f"feature cache dtype {dtype!r} is not one of {list(CACHE_DTYPES)}")
    return np.dtype(dtype)


def _array_sha256(array: np.ndarray, dtype: str = "float32") -> str:
    """sha256 of an array's C-order bytes in ``dtype`` (hashed in place: no copy of a contiguous array of that dtype)."""
    return hashlib.sha256(memoryview(np.ascontiguousarray(array, dtype=_check_dtype(dtype))).cast("B")).hexdigest()


def _file_sha256(path: Path, dtype: str) -> tuple[str, list[int]]:
    """sha256 of a ``.npy`` file's data bytes (what :func:`_array_sha256` hashes) and its shape, streamed in chunks.

    Raises:
        FeatureCacheCorrupt: not a C-order little-endian ``.npy`` of ``dtype``, or truncated.
    """
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, stored = read_header(handle)
            if fortran or stored != np.dtype(dtype).newbyteorder("<"):
                raise FeatureCacheCorrupt(f"{path}: holds {stored} (fortran_order={fortran}), expected C-order {dtype}")
            expected = int(np.prod(shape)) * stored.itemsize
            read = 0
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
                read += len(chunk)
    except (ValueError, OSError, EOFError) as error:
        raise FeatureCacheCorrupt(f"{path}: unreadable ({error})") from None
    if read != expected:
        raise FeatureCacheCorrupt(f"{path}: holds {read} data bytes, its header promises {expected} (truncated?)")
    return digest.hexdigest(), list(shape)


def estimate_cache_bytes(
    *,
    hidden_size: int,
    num_layers: int,
    sentences: int,
    poolings: int = 2,
    dtype: str = "float32",
) -> int:
    """Disk bytes of one feature set (one encoder, one task): ``(L + 1) * sentences * D * poolings`` values.

    Args:
        hidden_size: ``D``.
        num_layers: ``L`` transformer layers (the cache holds ``L + 1`` hidden states).
        sentences: train + dev + test sentences of the task.
        poolings: number of poolings stored.
        dtype: storage dtype, one of :data:`CACHE_DTYPES`.

    Returns:
        The arrays' bytes (the ``.npy`` headers and ``metadata.json`` add about 1 KiB).
    """
    return (num_layers + 1) * sentences * hidden_size * poolings * _check_dtype(dtype).itemsize


def _short(value: Any, limit: int = 240) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def _read_cache(cache_dir: Path, requested: Mapping[str, Any], dtype: str, mmap: bool) -> dict[str, np.ndarray]:
    """Load a complete cache after checking its metadata, array shapes and hashes (streamed, no copy held)."""
    try:
        stored = json.loads((cache_dir / METADATA_FILE).read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:
        raise FeatureCacheCorrupt(f"{cache_dir / METADATA_FILE}: unreadable ({error})") from None
    differences = _differences(stored.get("metadata", {}), requested)
    if differences:
        raise FeatureCacheMismatch(cache_dir, differences)
    arrays: dict[str, np.ndarray] = {}
    for name, entry in stored["arrays"].items():
        path = cache_dir / f"{name}.npy"
        if not path.is_file():
            raise FeatureCacheCorrupt(f"feature cache {cache_dir} lists {name!r} but {path.name} is missing")
        if "sha256" not in entry:
            raise FeatureCacheCorrupt(f"{path}: written before probeft recorded array hashes, so it cannot be checked")
        if entry.get("dtype", "float32") != dtype:
            raise FeatureCacheCorrupt(f"{path}: stored as {entry.get('dtype')}, requested {dtype}")
        digest, shape = _file_sha256(path, dtype)
        if shape != entry["shape"]:
            raise FeatureCacheCorrupt(f"{path}: shape {tuple(shape)} differs from {entry['shape']} in {METADATA_FILE}")
        if digest != entry["sha256"]:
            raise FeatureCacheCorrupt(f"{path}: its values changed since it was written (sha256 differs)")
        try:
            arrays[name] = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
        except (ValueError, OSError, EOFError) as error:
            raise FeatureCacheCorrupt(f"{path}: unreadable ({error})") from None
    _check_arrays(arrays, requested, str(cache_dir))
    return arrays


def _write_cache(cache_dir: Path, requested: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                 info: Mapping[str, Any] | None, dtype: str) -> None:
    """Write arrays + metadata into a staging folder that replaces ``cache_dir`` only when complete."""
    with atomic_directory(cache_dir) as staging:
        entries = {}
        for name, array in arrays.items():
            array = np.ascontiguousarray(array, dtype=np.dtype(dtype))
            np.save(staging / f"{name}.npy", array)
            entries[name] = {"shape": list(array.shape), "dtype": dtype, "sha256": _array_sha256(array, dtype)}
        record = {"metadata": dict(requested), "arrays": entries, "info": _jsonable(info or {})}
        (staging / METADATA_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def load_or_extract(
    cache_dir: str | Path | None,
    metadata: Mapping[str, Any],
    compute: Callable[[], Mapping[str, np.ndarray]],
    *,
    refresh: bool = False,
    info: Mapping[str, Any] | None = None,
    dtype: str = "float32",
    mmap: bool = False,
) -> dict[str, np.ndarray]:
    """Return cached arrays if ``cache_dir`` holds them for ``metadata``, else compute and cache.

    Layout: ``cache_dir/<name>.npy`` per array and ``cache_dir/metadata.json`` holding
    ``{"metadata": ..., "arrays": {name: {"shape", "dtype", "sha256"}}, "info": ...}``. The directory is
    written under a temporary name and renamed, so it is either absent or complete.

    Args:
        cache_dir: the cache directory (one per feature set), or None to always compute.
        metadata: JSON-compatible identity of the features (see :func:`feature_metadata`). If it
            has ``num_feature_layers`` / ``hidden_size``, every array's axis 0 / last axis must match.
            It must tell storage dtypes apart (``feature_metadata``'s ``cache_dtype``).
        compute: called only on a cache miss; returns name -> array (names ``[A-Za-z0-9_.-]+``).
        refresh: recompute and replace an existing cache instead of loading / refusing it.
        info: extra JSON-compatible provenance stored alongside but never compared.
        dtype: storage dtype, ``"float32"`` or ``"float16"`` (:data:`CACHE_DTYPES`).
        mmap: return read-only memory-mapped arrays from the cache (also right after writing it).

    Returns:
        name -> array of ``dtype`` (a computed float32 array rounded to it, so a hit and a miss give the
        same values).

    Raises:
        FeatureCacheMismatch: the cache exists with different metadata (keys named). A cache whose
            arrays do not verify (:class:`FeatureCacheCorrupt`) is computed again, with a warning.
        ValueError: ``cache_dir`` is a non-empty directory without ``metadata.json``, arrays
            disagree with the metadata, or an unknown ``dtype``.
    """
    storage = _check_dtype(dtype)
    requested = _jsonable(metadata)
    if cache_dir is None:
        arrays = {name: np.asarray(array, dtype=np.float32).astype(storage, copy=False)
                  for name, array in compute().items()}
        _check_arrays(arrays, requested, "computed features")
        return arrays
    cache_dir = Path(cache_dir)
    if (cache_dir / METADATA_FILE).is_file() and not refresh:
        try:
            return _read_cache(cache_dir, requested, dtype, mmap)
        except FeatureCacheCorrupt as error:
            warnings.warn(f"{error}; computing these features again", RuntimeWarning, stacklevel=2)
            refresh = True
    if cache_dir.is_file() or (cache_dir.is_dir() and any(cache_dir.iterdir()) and not refresh):
        raise ValueError(f"{cache_dir} exists but holds no {METADATA_FILE}, so it is not a feature cache")
    arrays = {name: np.asarray(array, dtype=np.float32).astype(storage, copy=False)
              for name, array in compute().items()}
    _check_arrays(arrays, requested, "computed features")
    if not refresh and (cache_dir / METADATA_FILE).is_file():
        # Another process finished the same features while we computed: keep its cache, which must agree.
        return _read_cache(cache_dir, requested, dtype, mmap)
    _write_cache(cache_dir, requested, arrays, info, dtype)
    if mmap:
        del arrays  # the written files, mapped, replace the computed copies
        return _read_cache(cache_dir, requested, dtype, mmap)
    return arrays


def drop_features_of(cache_root: str | Path, model_dir: str | Path) -> list[Path]:
    """Delete the feature sets under ``cache_root`` extracted from a model at or under ``model_dir``.

    A grid cell that is trained again writes new weights to the same folder; their features would be
    refused (:class:`FeatureCacheMismatch`), so the old ones go with the old checkpoint.

    Returns:
        The deleted feature-set directories.
    """
    prefix = str(model_dir).rstrip("/")
    dropped: list[Path] = []
    for record_path in sorted(Path(cache_root).glob(f"*/{METADATA_FILE}")):
        try:
            model = str(json.loads(record_path.read_text(encoding="utf-8"))["metadata"].get("model", ""))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # not a feature set written here: leave it alone
        if model == prefix or model.startswith(prefix + "/"):
            shutil.rmtree(record_path.parent, ignore_errors=True)
            dropped.append(record_path.parent)
    return dropped


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
