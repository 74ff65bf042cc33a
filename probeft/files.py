"""Atomic file and directory writes, and the cache root: the one place for both.

Every artefact probeft writes (result tables, provenance, feature caches, checkpoints, tiny models,
downloads, generated data) goes through these helpers, so a crash never leaves a half-written file
or folder that a reader could mistake for a complete one.

This module imports nothing else from :mod:`probeft`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["CACHE_ENV", "atomic_directory", "atomic_write_bytes", "atomic_write_text", "cache_root", "replace_directory"]

CACHE_ENV = "PROBEFT_CACHE"


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def cache_root(*parts: str) -> Path:
    """``$PROBEFT_CACHE`` (default ``~/.cache/probeft``) joined with ``parts``; not created.

    Args:
        *parts: sub-folders, e.g. ``cache_root("models")``.
    """
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "probeft"
    return base.joinpath(*parts)


def atomic_write_bytes(path: str | Path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(payload)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` via a temporary file in the same folder and a rename."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def replace_directory(staging: str | Path, final: str | Path) -> Path:
    """Move the finished folder ``staging`` to ``final``; an old ``final`` is moved aside, then deleted.

    Readers see either the old complete folder or the new complete one, never a mixture. If another
    process put a folder at ``final`` between the move-aside and the rename, that one is kept.
    """
    staging, final = Path(staging), Path(final)
    if final.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.rename(final, aside / "old")
        try:
            os.rename(staging, final)
        finally:
            shutil.rmtree(aside, ignore_errors=True)
    else:
        os.rename(staging, final)
    return final


@contextlib.contextmanager
def atomic_directory(final: str | Path, *, keep_existing: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Build a folder under a temporary sibling name; it replaces ``final`` only if the block succeeds.

    Args:
        final: the folder to create or replace.
        keep_existing: called with ``final`` once the block is done; when it returns True (another
            process already finished an equivalent folder there, which a reader may be using), the new
            folder is discarded and ``final`` kept.

    Example::

        with atomic_directory(out_dir) as staging:
            model.save_pretrained(staging)
            (staging / "marker.json").write_text("{}")   # written last inside the block

    On an exception the temporary folder is deleted and ``final`` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder ordinary permissions
    try:
        yield staging
        if keep_existing is None or not keep_existing(final):
            try:
                replace_directory(staging, final)
            except OSError:
                if keep_existing is None or not keep_existing(final):  # not a concurrent finished build
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
