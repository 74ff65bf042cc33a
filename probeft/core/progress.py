"""A running cell's current step, in a small file the grid's heartbeat reads.

A notebook calls :func:`mark` before each long step (``mark(output_dir, "probing features")``); the grid,
while the cell runs, prints the elapsed time and :func:`current_step` every so often, so a cell that
takes half an hour is never silent. The file is written atomically, so a reader never sees half a step.

This module imports only :mod:`probeft.core.files`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from probeft.core.files import atomic_write_text

__all__ = ["PROGRESS_FILE", "current_step", "mark"]

PROGRESS_FILE = "progress.json"


def mark(output_dir: str | Path | None, step: str) -> None:
    """Record that the cell writing ``output_dir`` is now at ``step`` (no-op without an output dir).

    Args:
        output_dir: the cell's output folder (created when missing).
        step: a few words, e.g. ``"fine-tuning: 3 epochs"``.
    """
    if output_dir is None:
        return
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / PROGRESS_FILE, json.dumps({"step": step, "since": time.time()}))


def current_step(output_dir: str | Path) -> tuple[str, float] | None:
    """The step last marked in ``output_dir`` and the time it was marked, or None (no file, or unreadable)."""
    try:
        record = json.loads((Path(output_dir) / PROGRESS_FILE).read_text(encoding="utf-8"))
        return str(record["step"]), float(record["since"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
