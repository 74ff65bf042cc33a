"""Which data files a cell read, by content: recorded at read time, written into its provenance, checked on resume.

Every data reader of :mod:`probeft.data` reads its file through :func:`read_data_bytes` or
:func:`read_data_text`, which note the file's sha256 in a per-process record. A notebook kernel runs one
grid cell, so when :func:`probeft.results.write_cell` stores :func:`provenance_data_files` in the cell's
``provenance.json``, that is what the cell's numbers were computed from. Before the grid skips a complete
cell, :func:`changed_data_files` hashes the same files again (under the data folder the cell would use
now), so a data file edited in place is caught, and the same data moved to another folder is not taken
for a change.

This module imports nothing else from :mod:`probeft`.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "MISSING",
    "changed_data_files",
    "data_files_read",
    "forget_data_files_read",
    "provenance_data_files",
    "read_data_bytes",
    "read_data_text",
    "sha256_of_file",
]

MISSING = "<missing>"

# resolved path -> sha256 of the bytes last read from it, in this process
_FILES_READ: dict[str, str] = {}


def read_data_bytes(path: str | Path) -> bytes:
    """The bytes of a data file, noting its sha256 for the provenance."""
    path = Path(path)
    raw = path.read_bytes()
    _FILES_READ[str(path.resolve())] = hashlib.sha256(raw).hexdigest()
    return raw


def read_data_text(path: str | Path, encoding: str = "utf-8") -> str:
    """The text of a data file, exactly as ``Path.read_text(encoding)`` gives it (universal newlines).

    Raises:
        ValueError: the bytes are not ``encoding`` text, naming ``path:line`` (see :func:`decode_data`).
    """
    raw = read_data_bytes(path)
    decode_data(raw, path, encoding)  # a clear error first; the wrapper below would raise a bare one
    return io.TextIOWrapper(io.BytesIO(raw), encoding=encoding, newline=None).read()


def decode_data(raw: bytes, path: str | Path, encoding: str = "utf-8") -> str:
    """``raw.decode(encoding)``, with an undecodable byte reported as ``path:line: ...`` (a ValueError)."""
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{path}:{line}: not {encoding} text (byte 0x{raw[error.start]:02x} at offset {error.start}); "
            f"save the file as {encoding}"
        ) from None


def data_files_read() -> dict[str, str]:
    """``{resolved path: sha256}`` of the data files this process has read, sorted by path."""
    return dict(sorted(_FILES_READ.items()))


def forget_data_files_read() -> None:
    """Start a new record (for a process that runs several cells, e.g. tests)."""
    _FILES_READ.clear()


def provenance_data_files(data_dir: str | Path | None) -> dict[str, str]:
    """The files read so far, keyed relative to ``data_dir`` where they lie under it (else absolute).

    Relative keys let a run whose data folder moved still find its files (:func:`changed_data_files`).

    Args:
        data_dir: the cell's data folder (None or a non-folder value such as ``"hub"``: all keys absolute).
    """
    base = Path(data_dir).resolve() if data_dir and Path(data_dir).is_dir() else None
    recorded = {}
    for path, digest in data_files_read().items():
        key = path
        if base is not None and Path(path).is_relative_to(base):
            key = Path(path).relative_to(base).as_posix()
        recorded[key] = digest
    return recorded


def sha256_of_file(path: str | Path, *, chunk_bytes: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def changed_data_files(recorded: Mapping[str, str], data_dir: str | Path | None, *,
                       hashes: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """Recorded data files whose content is not the same now, as ``{key: (recorded sha256, sha256 now)}``.

    Args:
        recorded: a cell's ``data_files`` provenance (:func:`provenance_data_files`).
        data_dir: the data folder the cell would read now; relative keys are looked up under it.
        hashes: a memo ``{resolved path: sha256}`` shared across cells, so each file is hashed once.

    Returns:
        The changed files; a file that is gone (or a relative key with no data folder) has :data:`MISSING`
        as its sha256 now.
    """
    hashes = {} if hashes is None else hashes
    base = Path(data_dir) if data_dir and Path(data_dir).is_dir() else None
    changed = {}
    for key, digest in recorded.items():
        path = Path(key) if Path(key).is_absolute() else (None if base is None else base / key)
        if path is None or not path.is_file():
            changed[key] = (digest, MISSING)
            continue
        resolved = str(path.resolve())
        if resolved not in hashes:
            hashes[resolved] = sha256_of_file(path)
        if hashes[resolved] != digest:
            changed[key] = (digest, hashes[resolved])
    return changed
