"""Whether a complete grid cell still matches its config: changed parameters, and the cells they taint.

A cell counts as complete when its results and provenance are written (:func:`probeft.results.cell_complete`)
and its executed notebook exists. Skipping such a cell is only right when it ran with the parameters the
config gives it now: after ``learning_rate`` of a task changes, the old checkpoint, and every probing,
attention or perplexity cell computed from it, would otherwise be gathered as if they were the new run.

papermill records the parameters a notebook ran with in the executed notebook
(``metadata.papermill.parameters``); :func:`changed_parameters` compares them with the cell's, and
:func:`stale_cells` adds the cells that depend on a changed one, transitively (their own parameters
name the same checkpoint folder, but what is in it changed).

Data are compared by content where the cell's provenance lists the data files it read
(:mod:`probeft.core.data_reads`): a file edited in place makes the cell stale, and a ``data_dir`` that moved
but holds the same files is not a change. Cells from before that record fall back to comparing the
``data_dir`` path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from probeft.core import data_reads
from probeft.data.locations import HUB
from probeft.results.table import PROVENANCE_FILE

__all__ = ["IGNORED_PARAMETERS", "StaleCellsError", "changed_parameters", "recorded_data_files", "recorded_parameters",
           "stale_cells"]

# Where a cell computes, not what: a run resumed on another machine type is the same experiment.
IGNORED_PARAMETERS: frozenset[str] = frozenset({"device"})


class _CellLike(Protocol):
    name: str
    parameters: dict[str, Any]
    depends_on: tuple[str, ...]


class StaleCellsError(ValueError):
    """Complete cells ran with other parameters than the config gives them now."""


def recorded_parameters(executed_notebook: str | Path) -> dict[str, Any] | None:
    """The parameters papermill ran a notebook with, or None when the notebook does not record them.

    Args:
        executed_notebook: an executed notebook written by papermill.
    """
    try:
        notebook = json.loads(Path(executed_notebook).read_text(encoding="utf-8"))
        recorded = notebook["metadata"]["papermill"]["parameters"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return recorded if isinstance(recorded, dict) else None


def recorded_data_files(cell_dir: str | Path) -> dict[str, str] | None:
    """The ``data_files`` of a cell's provenance (key: path, relative to its data_dir where under it -> sha256).

    None when the provenance is unreadable or older than that record (then only the ``data_dir`` path is compared).
    """
    try:
        recorded = json.loads((Path(cell_dir) / PROVENANCE_FILE).read_text(encoding="utf-8"))["data_files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return recorded if isinstance(recorded, dict) else None


def _is_folder_value(value: Any) -> bool:
    """A ``data_dir`` parameter that names a folder (not the hub, not unset)."""
    return isinstance(value, str) and value not in (HUB, "<not set>", "None", "")


def _data_changes(changes: dict[str, tuple[Any, Any]], data_files: Mapping[str, str] | None,
                  data_dir_now: Any, hashes: dict[str, str]) -> list[str]:
    """Compare the data by content where the files are recorded; returns the changed files' descriptions.

    Drops ``data_dir`` from ``changes`` when both its old and new value are folders and the recorded files
    are the same there: the experiment read the same bytes.
    """
    if not data_files:
        return []
    moved = changes.get("data_dir")
    if moved is not None and not (_is_folder_value(moved[0]) and _is_folder_value(moved[1])):
        return []  # hub <-> folder: not comparable by files, the path change stands
    changed = data_reads.changed_data_files(data_files, data_dir_now if _is_folder_value(data_dir_now) else None,
                                            hashes=hashes)
    changes.pop("data_dir", None)
    return [f"{key} sha256 {old[:12]} -> {new if new == data_reads.MISSING else new[:12]}"
            for key, (old, new) in changed.items()]


def _relocated(value: Any, old_root: str, new_root: str) -> Any:
    """``value`` with every string path under ``old_root`` moved under ``new_root`` (nested too)."""
    if isinstance(value, str) and (value == old_root or value.startswith(old_root + "/")):
        return new_root + value[len(old_root):]
    if isinstance(value, dict):
        return {k: _relocated(v, old_root, new_root) for k, v in value.items()}
    if isinstance(value, list):
        return [_relocated(v, old_root, new_root) for v in value]
    return value


def changed_parameters(wanted: Mapping[str, Any], recorded: Mapping[str, Any], *,
                       roots: tuple[str, str] | None = None) -> dict[str, tuple[Any, Any]]:
    """Parameters whose recorded value differs from the wanted one, as ``{name: (recorded, wanted)}``.

    Values are compared as JSON (papermill stores them so: tuples read back as lists); a parameter
    missing on one side counts as changed; :data:`IGNORED_PARAMETERS` are left out.

    Args:
        wanted: the parameters the cell would run with now.
        recorded: the parameters it ran with.
        roots: ``(recorded output dir, current output dir)``: paths inside the run folder (the cell's own
            folder, checkpoints, the feature cache) are compared relative to it, so a moved run still matches.
    """
    as_json = json.loads(json.dumps(dict(wanted), default=str))
    if roots is not None and roots[0] != roots[1]:
        recorded = _relocated(dict(recorded), *roots)
    names = (set(as_json) | set(recorded)) - IGNORED_PARAMETERS
    missing = "<not set>"
    return {name: (recorded.get(name, missing), as_json.get(name, missing))
            for name in sorted(names) if recorded.get(name, missing) != as_json.get(name, missing)}


def _run_root(recorded: Mapping[str, Any]) -> str:
    """The run folder a cell ran in: its recorded ``output_dir`` is ``<run>/cells/<cell>``."""
    return str(Path(str(recorded.get("output_dir", ""))).parent.parent)


def stale_cells(cells: Sequence[_CellLike], executed: Mapping[str, Path], complete: Iterable[str],
                output_dir: str | Path) -> dict[str, str]:
    """Complete cells that must not be skipped, each with a one-line reason, in grid order.

    Args:
        cells: the grid's cells in order (dependencies before dependants); each writes
            ``<output_dir>/cells/<name>`` (its ``output_dir`` parameter).
        executed: each cell's executed-notebook path, by cell name.
        complete: names of the cells that are complete.
        output_dir: the run folder now (it may have been moved since the cells ran).

    Returns:
        ``{cell name: reason}``: cells whose recorded parameters differ (the reason names each parameter
        with its old and new value) or whose recorded data files hold other bytes now (each file named
        with its old and new sha256 prefix, or ``<missing>``), and complete cells that depend on such a cell or on one that will
        run again for the same reason, or on an incomplete cell (it runs again, so what the dependant
        read from it is gone).
    """
    done = set(complete)
    in_grid = {cell.name for cell in cells}
    stale: dict[str, str] = {}
    hashes: dict[str, str] = {}  # each data file is hashed once per call
    for cell in cells:
        if cell.name not in done:
            continue
        recorded = recorded_parameters(executed[cell.name])
        changes = {} if recorded is None else changed_parameters(
            cell.parameters, recorded, roots=(_run_root(recorded), str(output_dir)))
        data_changes = _data_changes(changes, recorded_data_files(cell.parameters["output_dir"]),
                                     cell.parameters.get("data_dir"), hashes)
        reasons = []
        if changes:
            reasons.append("parameters changed: " + ", ".join(
                f"{name} {old!r} -> {new!r}" for name, (old, new) in changes.items()))
        if data_changes:
            reasons.append("data changed since it ran: " + ", ".join(data_changes))
        if reasons:
            stale[cell.name] = "; ".join(reasons)
            continue
        changed = [d for d in cell.depends_on if d in stale]
        rerun = [d for d in cell.depends_on if d in in_grid and d not in done]
        if changed:
            stale[cell.name] = f"depends on changed cell(s) {changed}"
        elif rerun:
            stale[cell.name] = f"depends on cell(s) that run again {rerun}"
    return stale
