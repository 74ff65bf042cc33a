"""One grid cell and how it runs: the cell model, the run's paths, and single-cell execution.

Both backends run cells through this module: the sequential loop (:mod:`probeft.grid.runner`) and the
Dask tasks (:mod:`probeft.grid.dask_backend`). A cell is one papermill run of a notebook with its
parameters; :func:`attempt_cell` runs it and checks its completion marker, turning any exception into
a :class:`CellOutcome` that a Dask task can return.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probeft import results
from probeft.data import locations
from probeft.grid.schema import GridConfig

# probeft/grid/cells.py -> the repository root, whose notebooks/ the cells run (an editable install).
REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"


@dataclass(frozen=True)
class Cell:
    """One papermill run: a notebook, its parameters, and the cells it depends on."""

    name: str
    stage: str
    notebook: Path
    parameters: dict[str, Any]
    depends_on: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class GridPaths:
    """Resolved locations of a run."""

    output_dir: Path
    data_dir: Path | None

    @property
    def cells_dir(self) -> Path:
        return self.output_dir / "cells"

    @property
    def notebooks_dir(self) -> Path:
        return self.output_dir / "notebooks"

    @property
    def cache_dir(self) -> Path:
        return self.output_dir / "cache"

    @property
    def results_csv(self) -> Path:
        return self.output_dir / results.RESULTS_FILE


def resolve_paths(config: GridConfig, *, data_dir: str | None = None, output_dir: str | None = None) -> GridPaths:
    """Apply overrides and make paths absolute (relative ones are taken from the working directory).

    The data folder follows :func:`probeft.data.locations.grid_data_dir`: ``--data-dir`` beats
    ``PROBEFT_DATA_DIR`` beats the config's ``data_dir``; none of them (or ``"hub"``) means the hub.
    """
    return GridPaths(
        output_dir=Path(output_dir or config.output_dir).resolve(),
        data_dir=locations.grid_data_dir(data_dir, config.data_dir),
    )


@dataclass
class GridReport:
    """What a grid run did."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def execute_cell(cell: Cell, executed_path: Path, *, kernel_name: str) -> None:
    """Run one cell's notebook with papermill (imported lazily: the grid validates without it)."""
    import papermill

    executed_path.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(cell.notebook),
        str(executed_path),
        parameters=cell.parameters,
        kernel_name=kernel_name,
        cwd=str(REPO_ROOT),
        progress_bar=False,
    )


def failure_reason(error: BaseException) -> str:
    """One line saying why a cell failed: for a notebook error, the notebook's own exception and message."""
    # papermill's PapermillExecutionError carries the cell's exception as ename / evalue; its str() starts
    # with a banner line, which would hide the reason in the failure listing.
    name, value = getattr(error, "ename", None), getattr(error, "evalue", None)
    text = f"{name}: {value}" if name else f"{type(error).__name__}: {error}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:500]


@dataclass(frozen=True)
class CellOutcome:
    """What one attempt at a cell came to: a small, picklable status (Dask tasks return it, never raise).

    Attributes:
        name: the cell.
        status: ``"ok"``; ``"failed"`` (``reason`` says why); on the distributed backend also
            ``"blocked"`` (a dependency failed, not run) and ``"stopped"`` (the grid stopped after a failure
            before this cell started, not run).
        reason: one line for the failure listing ("" when ok).
        detail: the exception's own text for the log ("" when ok).
        seconds: wall time of the attempt.
    """

    name: str
    status: str = "ok"
    reason: str = ""
    detail: str = ""
    seconds: float = 0.0


def attempt_cell(cell: Cell, executed: Path, run_one: Callable[[Cell, Path], None]) -> CellOutcome:
    """Run one cell and check its completion marker; any exception becomes a ``"failed"`` outcome.

    The one place both backends run a cell (the sequential loop and the Dask task).

    Args:
        cell: the cell.
        executed: where the executed notebook goes.
        run_one: the executor, ``run_one(cell, executed)`` (papermill or a test fake).
    """
    started = time.time()
    try:
        run_one(cell, executed)
        cell_dir = Path(cell.parameters["output_dir"])
        if not results.cell_complete(cell_dir):
            raise RuntimeError(f"notebook finished but wrote no complete results in {cell_dir}")
    except Exception as error:  # noqa: BLE001 - any notebook failure is reported per cell
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()[:2000]
        return CellOutcome(cell.name, "failed", failure_reason(error), detail, time.time() - started)
    return CellOutcome(cell.name, seconds=time.time() - started)


def executed_notebook(cell: Cell, paths: GridPaths) -> Path:
    """Where a cell's executed notebook goes: ``<output_dir>/notebooks/<cell>.ipynb``."""
    return paths.notebooks_dir / f"{cell.name}.ipynb"
