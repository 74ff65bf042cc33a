"""Which commits a run's hub models, hub data sets and SentEval files are pinned to, and which ones a cell read.

A grid resolves every hub model and data set it needs once, when it starts (online), and writes the
commits into ``<output_dir>/hub-pins.json`` (:data:`PINS_FILE`); its cells find the file through the
environment variable :data:`PINS_ENV` and pass ``revision=<commit>`` to every hub load
(:func:`pinned_revision`). A resume (online or offline from the caches) reads the same file, so a run's cells
all see the same bytes, and the revisions in their provenance match the ones stored with their
checkpoints. Without a pins file (a notebook run by hand) loads follow the hub's main branch and the
commit actually read is still recorded.

Each hub load notes the commit it read (:func:`note_read`), as :mod:`probeft.core.data_reads` notes file
hashes; :func:`sources_read` goes into the cell's provenance.

The file holds ``{"models": {repo_id: commit}, "datasets": {repo_id: commit}, "senteval": {task: git blob
sha1}}``; a commit of ``null`` means it could not be resolved (offline at the start).

This module imports only :mod:`probeft.core.files`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from probeft.core.files import atomic_write_text

__all__ = [
    "KINDS",
    "PINS_ENV",
    "PINS_FILE",
    "PinsFileError",
    "forget_sources_read",
    "note_read",
    "pinned_revision",
    "pins_path",
    "read_pins",
    "sources_read",
    "write_pins",
]

PINS_ENV = "PROBEFT_HUB_PINS"  # path of the pins file the cells of a grid use
PINS_FILE = "hub-pins.json"  # in a grid's output dir
KINDS = ("models", "datasets", "senteval")
_COMMIT = re.compile(r"[0-9a-f]{40}")

# "<kind>:<name>" -> commit (or blob sha1) read by this process
_SOURCES_READ: dict[str, str] = {}
_MEMO: dict[str, tuple[int, dict[str, dict[str, str | None]]]] = {}  # path -> (mtime_ns, pins)


class PinsFileError(ValueError):
    """A pins file that is not what :func:`write_pins` writes; the message names the file and the key."""


def _check(pins: Any, source: str) -> dict[str, dict[str, str | None]]:
    if not isinstance(pins, Mapping):
        raise PinsFileError(f"{source}: expected a JSON object with keys {list(KINDS)}, got {type(pins).__name__}")
    unknown = sorted(set(pins) - set(KINDS))
    if unknown:
        raise PinsFileError(f"{source}: unknown keys {unknown}; expected {list(KINDS)}")
    checked: dict[str, dict[str, str | None]] = {}
    for kind in KINDS:
        entries = pins.get(kind, {})
        if not isinstance(entries, Mapping):
            raise PinsFileError(f"{source}: {kind!r} must map names to commits, got {type(entries).__name__}")
        for name, commit in entries.items():
            if commit is not None and not (isinstance(commit, str) and _COMMIT.fullmatch(commit)):
                raise PinsFileError(f"{source}: {kind}.{name} = {commit!r} is not a 40-hex commit (or null)")
        checked[kind] = dict(sorted(entries.items()))
    return checked


def read_pins(path: str | Path) -> dict[str, dict[str, str | None]]:
    """The pins in ``path`` (every kind present, possibly empty).

    Raises:
        FileNotFoundError: the file does not exist.
        PinsFileError: it is not JSON or not in the pins format (naming the file and key).
    """
    path = Path(path)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise PinsFileError(f"{path}:{error.lineno}: not JSON ({error.msg})") from None
    return _check(loaded, str(path))


def write_pins(path: str | Path, pins: Mapping[str, Mapping[str, str | None]]) -> Path:
    """Write ``pins`` atomically (sorted, one entry a line) and return the path."""
    checked = _check(dict(pins), str(path))
    return atomic_write_text(Path(path), json.dumps(checked, indent=2, sort_keys=True) + "\n")


def pins_path() -> Path | None:
    """The pins file this process uses: ``$PROBEFT_HUB_PINS``, or None when unset or empty."""
    value = os.environ.get(PINS_ENV, "").strip()
    return Path(value) if value else None


def _active_pins() -> dict[str, dict[str, str | None]]:
    path = pins_path()
    if path is None:
        return {kind: {} for kind in KINDS}
    if not path.is_file():
        raise FileNotFoundError(f"{PINS_ENV} names {path}, which does not exist; unset it or give a grid's {PINS_FILE}")
    stamp = path.stat().st_mtime_ns
    memo = _MEMO.get(str(path))
    if memo is None or memo[0] != stamp:
        _MEMO[str(path)] = (stamp, read_pins(path))
    return _MEMO[str(path)][1]


def pinned_revision(kind: str, name: str) -> str | None:
    """The commit ``name`` (a repo id, or a SentEval task) is pinned to in this process's pins file, or None.

    Args:
        kind: ``"models"``, ``"datasets"`` or ``"senteval"``.
        name: the hub repo id, or the SentEval task name.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown pin kind {kind!r}; expected one of {KINDS}")
    return _active_pins()[kind].get(name)


def note_read(kind: str, name: str, commit: str) -> None:
    """Note that this process read ``name`` at ``commit`` (for the cell's provenance)."""
    if kind not in KINDS:
        raise ValueError(f"unknown source kind {kind!r}; expected one of {KINDS}")
    _SOURCES_READ[f"{kind}:{name}"] = commit


def sources_read() -> dict[str, str]:
    """``{"<kind>:<name>": commit}`` of the hub models, data sets and SentEval files this process read."""
    return dict(sorted(_SOURCES_READ.items()))


def forget_sources_read() -> None:
    """Start a new record (tests; a process that runs several cells)."""
    _SOURCES_READ.clear()
