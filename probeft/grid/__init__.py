"""Orchestration: the validated YAML schema (:mod:`~probeft.grid.schema`), the cell model and single-cell
execution (:mod:`~probeft.grid.cells`), whether a finished cell still matches its parameters and data
(:mod:`~probeft.grid.cell_state`), the sequential run with skip and resume (:mod:`~probeft.grid.runner`),
the Dask backend (:mod:`~probeft.grid.dask_backend`, imported only when asked for) and the command line
(:mod:`~probeft.grid.cli`). The names a user needs are re-exported here.

May import: everything else in probeft.
"""

from __future__ import annotations

import importlib
from typing import Any

# Name -> submodule. Loaded on first use (PEP 562), so ``probeft --help`` and config validation do not
# import torch, transformers and papermill through the cell and runner modules.
_EXPORTS = {
    **dict.fromkeys(["NOTEBOOK_DIR", "REPO_ROOT", "Cell", "CellOutcome", "GridPaths", "GridReport", "attempt_cell",
                     "execute_cell", "executed_notebook", "failure_reason", "resolve_paths"], "cells"),
    **dict.fromkeys(["LOCK_FILE", "expand", "finetune_cell_name", "gather_outputs", "run_grid", "visible_gpu_ids"],
                    "runner"),
    **dict.fromkeys(["STAGES", "GridConfig", "load_config"], "schema"),
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'probeft.grid' has no attribute {name!r}")
    return getattr(importlib.import_module(f"probeft.grid.{_EXPORTS[name]}"), name)


__all__ = [
    "LOCK_FILE",
    "NOTEBOOK_DIR",
    "REPO_ROOT",
    "STAGES",
    "Cell",
    "CellOutcome",
    "GridConfig",
    "GridPaths",
    "GridReport",
    "attempt_cell",
    "execute_cell",
    "executed_notebook",
    "expand",
    "failure_reason",
    "finetune_cell_name",
    "gather_outputs",
    "load_config",
    "resolve_paths",
    "run_grid",
    "visible_gpu_ids",
]
