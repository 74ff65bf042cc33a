"""Fake cell executors for the distributed grid tests: picklable, run in Dask worker processes.

The tests register this module with ``cloudpickle.register_pickle_by_value`` so the functions travel to
the workers by value (the workers need not import ``tests``). Bind the options with
``functools.partial(fake_cell, ...)``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Collection
from pathlib import Path

from probeft import grid, results
from probeft.core import names
from probeft.finetune import checkpoints


def fake_cell(
    cell: grid.Cell,
    executed: Path,
    *,
    fail: Collection[str] = (),
    kill_once: Collection[str] = (),
    kill_always: Collection[str] = (),
    markers: str | None = None,
    sleep_s: float = 0.0,
    sleep_except: Collection[str] = (),
) -> None:
    """Write one result row and the executed notebook, like ``fake_executor`` in tests/test_grid.py.

    Args:
        cell: the cell.
        executed: the executed notebook's path.
        fail: cells that raise ``RuntimeError("boom")``.
        kill_once: cells whose first attempt writes a partial ``results.csv`` (no completion marker) and
            then SIGKILLs its own (worker) process; a marker file in ``markers`` records the attempt.
        kill_always: cells that SIGKILL their worker on every attempt.
        markers: a folder for the kill markers, ``pid-<pid>`` files of every process that ran a cell and
            ``env-<cell>`` / ``threads-<cell>`` files holding the ``CUDA_VISIBLE_DEVICES`` /
            ``OMP_NUM_THREADS`` the cell saw.
        sleep_s: seconds to sleep before writing (cells in ``sleep_except`` don't).
        sleep_except: cells that never sleep.
    """
    if markers is not None:
        Path(markers, f"pid-{os.getpid()}").touch()
        Path(markers, f"env-{cell.name}").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
        Path(markers, f"threads-{cell.name}").write_text(os.environ.get("OMP_NUM_THREADS", "<unset>"))
    if cell.name in kill_always:
        time.sleep(0.5)  # the other cells finish first: none waits on this worker when it dies
        os.kill(os.getpid(), signal.SIGKILL)
    if cell.name in fail:
        raise RuntimeError("boom")
    if sleep_s and cell.name not in sleep_except:
        time.sleep(sleep_s)
    cell_dir = Path(cell.parameters["output_dir"])
    if cell.name in kill_once and markers is not None:
        marker = Path(markers, f"killed-{cell.name}")
        if not marker.exists():
            marker.touch()
            cell_dir.mkdir(parents=True, exist_ok=True)
            (cell_dir / results.RESULTS_FILE).write_text("stage,model,metric,value\npartial,x,x,999\n")
            os.kill(os.getpid(), signal.SIGKILL)
    write_fake_outputs(cell, executed)


def write_fake_outputs(cell: grid.Cell, executed: Path) -> None:
    """What a finished cell leaves: one result row, the executed notebook, and for a fine-tuning cell a
    completion marker per planned epoch (the grid checks that every epoch is there)."""
    cell_dir = Path(cell.parameters["output_dir"])
    if cell.stage == "finetune":
        planned = cell.parameters.get("epochs") or names.default_epochs(cell.parameters["task"])
        for epoch in range(1, planned + 1):
            marker = checkpoints.checkpoint_dir(cell_dir, epoch) / checkpoints.CHECKPOINT_MARKER
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"epoch": epoch, "signature": {"epochs": planned}}))
    if cell.stage == "probing":  # stands in for files beside the results, e.g. the per-sentence predictions
        cell_dir.mkdir(parents=True, exist_ok=True)
        (cell_dir / "scores.bin").write_bytes(b"scores of " + cell.name.encode())
    row = {"stage": cell.stage, "model": cell.parameters["model_name"], "metric": "x", "value": 1.0}
    results.write_cell(cell_dir, results.results_frame([row]), params=cell.parameters, started=0.0, device="cpu")
    executed.parent.mkdir(parents=True, exist_ok=True)
    executed.write_text(json.dumps({"metadata": {"papermill": {"parameters": cell.parameters}}}))
