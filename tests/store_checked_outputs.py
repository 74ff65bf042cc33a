"""Store the outputs of a notebook's ``# NBVAL_CHECK_OUTPUT`` cells in its source, strip all others.

nbval (``--nbval-lax``) compares only the cells marked ``# NBVAL_CHECK_OUTPUT``, against the outputs
stored in the source notebook, after the substitutions in ``tests/nbval_sanitize.cfg``. Run this
after changing a notebook or the numbers it prints::

    .venv/bin/python tests/store_checked_outputs.py notebooks/probing.ipynb [more.ipynb ...]

It executes each notebook with its default parameters in a fresh kernel (cwd = the repository
root, a private cache) and writes it back with outputs only on the marked cells.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

MARKER = "# NBVAL_CHECK_OUTPUT"
REPO_ROOT = Path(__file__).resolve().parent.parent


def _kept(output: dict) -> bool:
    """Printed text and text results are compared; stderr (warnings) and pictures are not."""
    if output.get("output_type") == "stream":
        return output.get("name") == "stdout"
    return output.get("output_type") in ("execute_result", "display_data") and "text/plain" in output.get("data", {})


def _text_only(output: dict) -> dict:
    if output.get("output_type") in ("execute_result", "display_data"):
        output["data"] = {"text/plain": output["data"]["text/plain"]}
        output["metadata"] = {}
    return output


def store(path: Path) -> int:
    """Execute ``path`` and keep outputs of its marked cells; returns how many cells are marked."""
    notebook = nbformat.read(path, as_version=4)
    executed = nbformat.read(path, as_version=4)
    NotebookClient(executed, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT)}}).execute()
    marked = 0
    for source_cell, run_cell in zip(notebook.cells, executed.cells):
        if source_cell.cell_type != "code":
            continue
        source_cell.execution_count = None
        source_cell.outputs = []
        if source_cell.source.lstrip().startswith(MARKER):
            marked += 1
            # nbval skips (and complains about) a reference cell with outputs but no execution count.
            source_cell.execution_count = run_cell.execution_count
            source_cell.outputs = [_text_only(o) for o in run_cell.outputs if _kept(o)]
    nbformat.write(notebook, path)
    return marked


def main(paths: list[str]) -> int:
    os.environ.setdefault("PROBEFT_CACHE", tempfile.mkdtemp(prefix="probeft-nbval-cache-"))
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(key, "1")
    os.environ.pop("PROBEFT_DATA_DIR", None)
    for name in paths:
        count = store(Path(name))
        print(f"{name}: stored outputs of {count} marked cell(s)")
        if count == 0:
            print(f"{name}: no cell starts with {MARKER!r}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
