"""One grid cell and how it runs: the cell model, the run's paths, and single-cell execution.

Both backends run cells through this module: the sequential loop (:mod:`probeft.grid.runner`) and the
Dask tasks (:mod:`probeft.grid.dask_backend`). A cell is one papermill run of a notebook with its
parameters; :func:`attempt_cell` runs it and checks its completion marker, turning any exception into
a :class:`CellOutcome` that a Dask task can return.

A finished cell is sealed: :data:`SEAL_FILE` in its folder records the sha256 of every file the cell
wrote there (``results.csv``, ``provenance.json``, ``probe_predictions.npz``, ...) and of its executed
notebook, written last, after papermill has saved the notebook. :func:`incomplete_reasons` verifies the
seal, so a cell whose notebook could not be saved (disk full), or whose results were edited or lost
afterwards, is not complete: it is not gathered, and the grid runs it again. A cell whose model spec is a
local folder (not a fine-tuning run: checkpoints carry their own weight digests) also records that
folder's weight fingerprint, so weights changed in place make it run again. A fine-tuning cell is also
incomplete while any epoch it was asked for lacks its checkpoint, and a head-fitting cell while its saved head
(``head/``, not covered by the seal) does not match the digests its record holds.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probeft import models, results
from probeft.core import names
from probeft.core.data_reads import sha256_of_file
from probeft.data import locations
from probeft.diagnostics import mlm_head
from probeft.finetune import checkpoints
from probeft.grid.schema import GridConfig
from probeft.probing import feature_cache

# probeft/grid/cells.py -> the repository root, whose notebooks/ the cells run (an editable install).
REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
MLM_HEAD_NOTEBOOK = "mlm_head.ipynb"  # the cells that fit a masked-LM head (stage "perplexity")


@dataclass(frozen=True)
class Cell:
    """One papermill run: a notebook, its parameters, and the cells it depends on."""

    name: str
    stage: str
    notebook: Path
    parameters: dict[str, Any]
    depends_on: tuple[str, ...] = field(default_factory=tuple)
    # (feature cache root, model folder): the features extracted from that model are deleted once the cell
    # is complete (a fine-tuned encoder's; nothing reads them again). None: keep.
    drop_features: tuple[str, str] | None = None


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


KERNEL_QUIET = "--IPKernelApp.log_level=CRITICAL"


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
        # The kernel's own log only says "running over TCP without encryption" (a local kernel) and, when
        # papermill stops an idle kernel, "KeyboardInterrupt caught in kernel": noise on every cell. A
        # failing cell still fails: its error comes back in the execute reply, a dead kernel as an error.
        extra_arguments=[KERNEL_QUIET],
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
    cell_dir = Path(cell.parameters["output_dir"])
    (cell_dir / SEAL_FILE).unlink(missing_ok=True)  # an old seal must not vouch for what this attempt writes
    try:
        run_one(cell, executed)
        if not results.cell_complete(cell_dir):
            raise RuntimeError(f"notebook finished but wrote no complete results in {cell_dir}")
        write_seal(cell, executed)
        if cell.drop_features is not None:
            feature_cache.drop_features_of(*cell.drop_features)
    except Exception as error:  # noqa: BLE001 - any notebook failure is reported per cell
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()[:2000]
        return CellOutcome(cell.name, "failed", failure_reason(error), detail, time.time() - started)
    return CellOutcome(cell.name, seconds=time.time() - started)


def executed_notebook(cell: Cell, paths: GridPaths) -> Path:
    """Where a cell's executed notebook goes: ``<output_dir>/notebooks/<cell>.ipynb``."""
    return paths.notebooks_dir / f"{cell.name}.ipynb"


SEAL_FILE = "cell-seal.json"  # in a cell's folder: sha256 of its files and notebook, written last
SEAL_FORMAT = 1
_NOTEBOOK_KEY = "<executed notebook>"


def _sealed_files(cell_dir: Path) -> list[Path]:
    """The files directly in a cell's folder (sub-folders such as checkpoints are not hashed)."""
    return sorted(path for path in cell_dir.iterdir() if path.is_file() and path.name != SEAL_FILE)


def write_seal(cell: Cell, executed: Path) -> Path:
    """Record the sha256 of a finished cell's files and executed notebook in ``<cell>/cell-seal.json``."""
    from probeft.core.files import atomic_write_text

    cell_dir = Path(cell.parameters["output_dir"])
    if not executed.is_file():
        raise RuntimeError(f"the executed notebook {executed} was not written")
    digests = {path.name: sha256_of_file(path) for path in _sealed_files(cell_dir)}
    digests[_NOTEBOOK_KEY] = sha256_of_file(executed)
    record = {"format": SEAL_FORMAT, "cell": cell.name, "sha256": digests}
    fingerprint = local_model_fingerprint(cell)
    if fingerprint is not None:
        record["model_fingerprint"] = fingerprint
    return atomic_write_text(cell_dir / SEAL_FILE, json.dumps(record, indent=2, sort_keys=True))


def local_model_fingerprint(cell: Cell) -> str | None:
    """The weight hash of a cell's model when its spec is a plain local folder; None for hub ids, built-in
    names and fine-tuning outputs (whose markers record their weights, checked where they are loaded)."""
    spec = cell.parameters.get("model")
    folder = Path(str(spec)).expanduser()
    fine_tuned = checkpoints.is_run_dir(folder) or (folder / checkpoints.CHECKPOINT_MARKER).is_file()
    if not spec or not folder.is_dir() or fine_tuned:
        return None
    return str(models.model_fingerprint(str(spec))["revision"])


def seal_problems(cell: Cell, executed: Path) -> list[str]:
    """What no longer matches a cell's seal, one line each (empty when every sealed file verifies)."""
    cell_dir = Path(cell.parameters["output_dir"])
    seal = cell_dir / SEAL_FILE
    if not seal.is_file():
        return [f"no {SEAL_FILE} (the cell did not finish under the grid, or ran under an older probeft)"]
    try:
        record = json.loads(seal.read_text(encoding="utf-8"))
        recorded = record["sha256"]
    except (ValueError, KeyError, TypeError) as error:
        return [f"{seal} is unreadable ({error})"]
    problems = []
    if "model_fingerprint" in record and local_model_fingerprint(cell) != record["model_fingerprint"]:
        problems.append(f"the weights in the model folder {cell.parameters['model']} changed since the cell ran")
    for name, digest in sorted(recorded.items()):
        path = executed if name == _NOTEBOOK_KEY else cell_dir / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif (actual := sha256_of_file(path)) != digest:
            problems.append(f"{path} changed since the cell finished (sha256 {digest[:12]} -> {actual[:12]})")
    return problems


def is_mlm_head_cell(cell: Cell) -> bool:
    """Whether ``cell`` fits a masked-LM head (its notebook is :data:`MLM_HEAD_NOTEBOOK`)."""
    return cell.notebook.name == MLM_HEAD_NOTEBOOK


def incomplete_reasons(cell: Cell, executed: Path) -> list[str]:
    """Why a cell is not complete (empty when it is): results, notebook, seal and, for fine-tuning, every epoch;
    for a head-fitting cell, the saved head's files against their digests."""
    cell_dir = Path(cell.parameters["output_dir"])
    if not results.cell_complete(cell_dir):
        if (cell_dir / results.PROVENANCE_FILE).is_file():
            return [f"{cell_dir / results.RESULTS_FILE} does not match its provenance (edited, truncated or lost)"]
        return ["no complete results"]
    if not executed.is_file():
        return [f"no executed notebook {executed}"]
    problems = seal_problems(cell, executed)
    if cell.stage == "finetune":
        planned = cell.parameters.get("epochs") or names.default_epochs(cell.parameters["task"])
        missing = checkpoints.missing_epochs(cell_dir, planned)
        if missing:
            problems.append(f"{cell_dir}: no complete checkpoint for epoch(s) {missing}")
    if is_mlm_head_cell(cell):
        try:
            mlm_head.verify_fitted_head(cell_dir / mlm_head.HEAD_FOLDER)
        except (OSError, ValueError) as error:
            problems.append(str(error))
    return problems
