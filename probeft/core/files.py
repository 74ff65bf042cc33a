"""Atomic file and directory writes, an exclusive lock file, and the cache root: the one place for them.

Every artefact probeft writes (result tables, provenance, feature caches, checkpoints, tiny models,
downloads, generated data) goes through these helpers, so a crash never leaves a half-written file
or folder that a reader could mistake for a complete one.

This module imports nothing else from :mod:`probeft`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "CACHE_ENV",
    "FAULT_ENV",
    "LockHeldError",
    "atomic_directory",
    "atomic_write_bytes",
    "atomic_write_text",
    "cache_root",
    "exclusive_lock",
    "fault_point",
    "remove_crash_leftovers",
    "replace_directory",
]

CACHE_ENV = "PROBEFT_CACHE"
# Fault injection for the crash tests: a process that reaches the write point this names (a glob, e.g.
# "write:provenance.json" or "dir:epoch-*") kills itself with SIGKILL, as a power cut there would.
FAULT_ENV = "PROBEFT_FAULT"


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


def fault_point(name: str) -> None:
    """Test hook: SIGKILL this process here when ``$PROBEFT_FAULT`` matches ``name`` (a no-op otherwise).

    Named points: ``write:<file name>`` just before an atomic write's rename, ``dir:<folder name>`` just
    before an atomic folder's rename. The environment variable reaches notebook kernels too.
    """
    wanted = os.environ.get(FAULT_ENV)
    if wanted and fnmatch.fnmatchcase(name, wanted):
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_write_bytes(path: str | Path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(payload)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file ordinary permissions
        fault_point(f"write:{path.name}")
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
    fault_point(f"dir:{final.name}")
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


class LockHeldError(RuntimeError):
    """Another live process holds the lock file (the message names it, its holder and how to proceed)."""


def _read_holder(path: Path) -> dict | None:
    """The ``{"pid", "host", "since"}`` written in a lock file, or None when unreadable."""
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None


def _is_stale(holder: dict) -> bool:
    """Whether the lock's holder is a process of this host that no longer exists (a crashed run)."""
    if holder.get("host") != socket.gethostname():
        return False  # another machine's process can't be checked from here
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def _take_over(path: Path, stale: dict) -> bool:
    """Move a stale lock aside atomically; False if another process replaced or removed it first."""
    aside = path.with_name(f"{path.name}.stale-{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    if _read_holder(aside) != stale:  # someone else's fresh lock: put it back
        os.rename(aside, path)
        return False
    aside.unlink(missing_ok=True)
    return True


@contextlib.contextmanager
def exclusive_lock(path: str | Path, *, what: str) -> Iterator[dict]:
    """Hold ``path`` as a lock file (pid, host, start time) for the block; refuse if a live process holds it.

    The file is created with ``O_EXCL``, so of two processes only one gets it. A lock left by a crashed
    process of this host (its pid no longer exists) is taken over; a lock of another host, or one that
    can't be read, is respected.

    Args:
        path: the lock file, e.g. ``<output_dir>/grid.lock``.
        what: what the lock guards, for the error message (e.g. ``"the grid output dir runs/demo"``).

    Yields:
        The holder record written: ``{"pid", "host", "since"}``.

    Raises:
        LockHeldError: another process holds it; the message names the file, the holder's pid, host and
            start time, and says to remove the file only if that process is gone.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    while True:
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_umask())
        except FileExistsError:
            holder = _read_holder(path)
            if holder is not None and _is_stale(holder) and _take_over(path, holder):
                continue
            if holder is None and not path.exists():
                continue  # released between the two calls
            who = (f"process {holder['pid']} on {holder.get('host', '?')} since {holder.get('since', '?')}"
                   if holder else "an unreadable holder")
            raise LockHeldError(
                f"{path} is held by {who}: another run is using {what}. Wait for it to finish, or, if that "
                f"process is gone, delete {path}."
            ) from None
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(mine, out)
        break
    try:
        yield mine
    finally:
        if _read_holder(path) == mine:
            path.unlink(missing_ok=True)


# The temporary names atomic_write_bytes (".<name>.<random>.tmp") and replace_directory / atomic_directory
# (".<name>.tmp-<random>", ".<name>.old-<random>") use; mkstemp / mkdtemp add 8 random characters.
_LEFTOVER = re.compile(r"\..+(\.[a-z0-9_]{8}\.tmp|\.(tmp|old)-[a-z0-9_]{8})")


def remove_crash_leftovers(root: str | Path) -> list[Path]:
    """Delete the temporary files and folders of atomic writes under ``root`` that a killed process left.

    Only call it while no other process writes under ``root`` (e.g. holding :func:`exclusive_lock`).

    Returns:
        What was deleted.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = sorted((path for path in root.rglob(".*") if _LEFTOVER.fullmatch(path.name)), key=lambda p: len(p.parts))
    removed: list[Path] = []
    for path in found:
        if any(parent in removed for parent in path.parents):
            continue  # inside a leftover folder already deleted
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed
