"""The results store: tidy per-cell tables written atomically with provenance, then loaded and gathered.

Every stage (probing, fine-tuning, attention, perplexity) produces rows of one long table whose
first columns are :data:`RESULT_COLUMNS` (``probe``: which probe, see :data:`PROBE_DEFAULT`); stage-specific columns (``l2``, ``position``,
``k_replaced``, ...) may follow. Each grid cell writes ``<cell_dir>/results.csv`` and then
``<cell_dir>/provenance.json``; the provenance file is written last and is the completion marker,
so a cell interrupted mid-write never looks complete. The book only reads these tables; the
analyses of them are in :mod:`probeft.results.analysis`, their presentation in :mod:`probeft.report`.

This module imports only :mod:`probeft.core.files` from probeft.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probeft.core import data_reads, files, pins

RESULT_COLUMNS: tuple[str, ...] = (
    "stage",
    "model",
    "finetune_task",
    "finetune_head",
    "seed",
    "epoch",
    "probe_task",
    "pooling",
    "probe",
    "layer",
    "split",
    "metric",
    "value",
)
# "none" marks a column that does not apply to a stage (e.g. probe_task of a fine-tuning row).
STRING_DEFAULTS: dict[str, str] = {
    "finetune_task": "none",
    "finetune_head": "none",
    "probe_task": "none",
    "pooling": "none",
    "split": "none",
}
INT_DEFAULTS: dict[str, int] = {"seed": 0, "epoch": 0, "layer": -1}
# ``probe``: which probe produced a probing row ("linear" or "mlp", :mod:`probeft.probing.stage`). Tables written
# before there was a choice hold linear probes only, so a probing row without one reads as "linear" (a CKA row,
# which compares features, as "none"); rows of other stages read as "none".
PROBE_DEFAULT = "linear"
REQUIRED_COLUMNS: tuple[str, ...] = ("stage", "model", "metric", "value")
RESULTS_FILE = "results.csv"
PROVENANCE_FILE = "provenance.json"
# An exported run (``probeft export``: no cells) keeps each cell's small per-sentence files (probe predictions,
# attention statistics) under ``<run>/per_sentence/<cell name>/``, so its intervals can be recomputed.
PER_SENTENCE_DIR = "per_sentence"
TRACKED_PACKAGES = ("probeft", "torch", "transformers", "tokenizers", "datasets", "huggingface-hub", "accelerate",
                    "safetensors", "numpy", "pandas", "scikit-learn", "scipy", "papermill")


def results_frame(rows: Iterable[Mapping[str, Any]], **constants: Any) -> pd.DataFrame:
    """Build a validated long results table.

    Args:
        rows: one mapping per measurement; keys are result columns (missing ones get defaults).
        **constants: values applied to every row (e.g. ``model="tiny-bert", stage="probing"``);
            a row's own value wins.

    Returns:
        DataFrame with :data:`RESULT_COLUMNS` first, then any extra columns in first-seen order.

    Raises:
        ValueError: a required column is missing or a value is not finite.
    """
    records = [{**constants, **dict(row)} for row in rows]
    frame = pd.DataFrame.from_records(records)
    return validate_results(frame, source="results_frame rows")


def validate_results(frame: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """Fill defaults, check columns and types, and order columns.

    Args:
        frame: a results table, possibly with defaulted columns absent.
        source: what the table came from (a path or description), for error messages.

    Returns:
        The normalised table (a new DataFrame).

    Raises:
        ValueError: required columns missing, empty table, non-numeric or non-finite values.
    """
    if frame.empty:
        raise ValueError(f"{source}: the results table is empty")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{source}: missing required result column(s) {missing}")
    frame = frame.copy()
    for column, default in STRING_DEFAULTS.items():
        frame[column] = frame[column].fillna(default).astype(str) if column in frame else default
    for column, default in INT_DEFAULTS.items():
        frame[column] = frame[column].fillna(default).astype("int64") if column in frame else default
    probed = (frame["stage"] == "probing") & (frame["metric"] != "cka")
    default_probe = pd.Series(np.where(probed, PROBE_DEFAULT, "none"), index=frame.index)
    if "probe" in frame:
        frame["probe"] = frame["probe"].where(frame["probe"].notna(), default_probe).astype(str)
    else:
        frame["probe"] = default_probe
    values = pd.to_numeric(frame["value"], errors="coerce")
    bad = ~np.isfinite(values.to_numpy(dtype=float))
    if bad.any():
        first = frame.index[bad][0]
        raise ValueError(f"{source}: non-numeric or non-finite value in row {first}: {frame.loc[first].to_dict()}")
    frame["value"] = values.astype(float)
    for column in ("stage", "model", "metric"):
        frame[column] = frame[column].astype(str)
    extra = [c for c in frame.columns if c not in RESULT_COLUMNS]
    return frame[list(RESULT_COLUMNS) + extra].reset_index(drop=True)


def git_commit(start: Path | None = None) -> str:
    """The current git commit of the repository containing ``start`` ("unknown" outside git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=start or Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions(names: Sequence[str] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` ("not installed" when absent)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _gpu_name(torch: Any, device: str) -> str | None:
    """The name of the CUDA device a cell computed on, without initialising CUDA where it was not used."""
    if torch is None or not str(device).startswith("cuda") or not torch.cuda.is_initialized():
        return None
    try:
        return str(torch.cuda.get_device_name(torch.device(str(device))))
    except Exception:  # noqa: BLE001 - provenance must never break a cell
        return None


def provenance(*, params: Mapping[str, Any], started: float, device: str) -> dict[str, Any]:
    """Provenance of one cell: resolved parameters, data files read, code version, environment, threads, wall time.

    ``data_files`` maps each data file this process read (:mod:`probeft.core.data_reads`) to its sha256, keyed
    relative to ``params["data_dir"]`` where the file lies under it; the grid checks them before skipping.
    ``sources`` maps each model, hub data set and downloaded SentEval file the process loaded to its commit,
    weight hash or git blob sha1 (:mod:`probeft.core.pins`); ``hub_pins`` names the run's pins file.

    Args:
        params: the cell's resolved parameters (JSON-serialisable; others are stringified).
        started: ``time.time()`` when the cell started.
        device: the device the cell computed on, e.g. ``"cuda:0"``.
    """
    return {
        "params": json.loads(json.dumps(dict(params), default=str)),
        "data_files": data_reads.provenance_data_files(params.get("data_dir")),
        # hub models and data sets at their commits, local models by weight hash, SentEval downloads by blob sha1
        "sources": pins.sources_read(),
        "hub_pins": None if (pinned := pins.pins_path()) is None else str(pinned),
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        # CPU summation order follows the thread count, so it belongs to what a number depends on
        "torch_threads": torch.get_num_threads() if (torch := sys.modules.get("torch")) is not None else None,
        # the CUDA toolkit torch was built with and the GPU's name change GPU numbers; None on a CPU-only build
        "torch_cuda": getattr(getattr(torch, "version", None), "cuda", None) if torch is not None else None,
        "gpu": _gpu_name(torch, device),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "wall_time_s": round(time.time() - started, 3),
    }


def write_cell(
    cell_dir: str | Path,
    table: pd.DataFrame,
    *,
    params: Mapping[str, Any],
    started: float,
    device: str,
) -> Path:
    """Atomically write one cell's results and provenance.

    ``results.csv`` is written first, ``provenance.json`` (the completion marker, holding the row
    count and the sha256 of ``results.csv``) last; both via temporary files and renames.

    Args:
        cell_dir: the cell's output folder.
        table: its results (validated with :func:`validate_results`).
        params: the resolved parameters of the cell.
        started: ``time.time()`` at the start of the cell.
        device: the device used.

    Returns:
        Path of the written ``results.csv``.
    """
    cell_dir = Path(cell_dir)
    table = validate_results(table, source=str(cell_dir))
    (cell_dir / PROVENANCE_FILE).unlink(missing_ok=True)  # invalidate before rewriting
    results_path = cell_dir / RESULTS_FILE
    text = table.to_csv(index=False)
    files.atomic_write_text(results_path, text)
    record = provenance(params=params, started=started, device=device)
    record["rows"] = len(table)
    record["results_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    files.atomic_write_text(cell_dir / PROVENANCE_FILE, json.dumps(record, indent=2, sort_keys=True))
    return results_path


def cell_complete(cell_dir: str | Path) -> bool:
    """Whether a cell finished: provenance exists, and ``results.csv`` has the recorded sha256 (cells
    written before the hash was recorded: the recorded row count)."""
    cell_dir = Path(cell_dir)
    prov_path, results_path = cell_dir / PROVENANCE_FILE, cell_dir / RESULTS_FILE
    if not (prov_path.is_file() and results_path.is_file()):
        return False
    try:
        record = json.loads(prov_path.read_text(encoding="utf-8"))
        if "results_sha256" in record:
            return hashlib.sha256(results_path.read_bytes()).hexdigest() == record["results_sha256"]
        return len(pd.read_csv(results_path)) == record["rows"]
    except (ValueError, KeyError, TypeError, OSError, pd.errors.ParserError):
        return False


def load_results(path: str | Path) -> pd.DataFrame:
    """Read and validate a results CSV (a cell's or the gathered one).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the table is malformed (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results table not found: {path}")
    try:
        # low_memory=False: one type per column over the whole file (chunked reading mixes them, and warns)
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""], low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"{path}: not a readable results CSV ({error})") from error
    return validate_results(frame, source=str(path))


def gather(cell_dirs: Iterable[str | Path], out_path: str | Path) -> pd.DataFrame:
    """Concatenate complete cells' results into one table, written atomically to ``out_path``.

    Incomplete cells are skipped (the grid reports them).
    """
    frames = [load_results(Path(d) / RESULTS_FILE) for d in cell_dirs if cell_complete(d)]
    if not frames:
        raise ValueError(f"no complete cells to gather into {out_path}")
    table = pd.concat(frames, ignore_index=True, sort=False)
    table = validate_results(table, source=str(out_path))
    files.atomic_write_text(Path(out_path), table.to_csv(index=False))
    return table


# Names a Jupyter kernel (or IPython) puts in a notebook's globals that are not parameters.
_KERNEL_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})


def notebook_parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of a notebook: its public, JSON-like globals at the time of the call.

    Call it in the cell right after the ``parameters`` cell (and papermill's injected one), before
    anything else is defined: ``params = results.notebook_parameters(globals())``. Modules,
    functions, private names (``_x``) and the kernel's own names are left out, so the dict holds
    exactly the parameter cell's names with their (possibly injected) values, and no Save cell has
    to list them by hand.

    Args:
        namespace: the notebook's ``globals()``.

    Returns:
        ``{name: value}`` in definition order, values being str / int / float / bool / None / list / dict.
    """
    plain = (str, int, float, bool, type(None), list, tuple, dict)
    return {
        name: value for name, value in namespace.items()
        if not name.startswith("_") and name not in _KERNEL_NAMES and isinstance(value, plain)
    }


RUNS_ENV = "PROBEFT_RUNS_DIR"  # where notebooks run by hand write (default: the checkout's runs/)


def hand_runs_dir() -> Path:
    """The folder under which a notebook run by hand (no ``output_dir``) writes: ``$PROBEFT_RUNS_DIR/hand``.

    Without the variable: ``runs/hand`` of the source checkout probeft is imported from (an editable
    install), else of the current folder; never the system temp folder, where runs were never cleaned up.
    """
    if os.environ.get(RUNS_ENV):
        return Path(os.environ[RUNS_ENV]) / "hand"
    checkout = Path(__file__).resolve().parents[2]
    root = checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()
    return root / "runs" / "hand"


def scratch_dir(output_dir: str | Path | None, name: str) -> Path:
    """``output_dir`` as a Path, or a new folder ``<hand runs>/<name>-<time>-<pid>`` when it is None (hand runs).

    Args:
        output_dir: the folder the grid (or the user) named.
        name: the notebook's stage, e.g. ``"probing"``.
    """
    if output_dir is None or str(output_dir) == "":
        folder = hand_runs_dir() / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        folder.mkdir(parents=True, exist_ok=False)
        return folder
    return Path(output_dir)


def as_list(value: str | Sequence[str] | None) -> list[str]:
    """A list parameter as given, or a one-item list for a plain string (``-p poolings max`` is ``["max"]``).

    papermill's ``-p`` passes a string; iterating it would run one task per character.
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def model_label(model: str | Path, model_name: str | None = None) -> str:
    """The label a notebook's results carry: ``model_name`` when given, else the model spec's own name.

    A spec is labelled as written (``tiny-roberta``, ``roberta-base``, ``org/name``); a folder by its
    last component, or for a fine-tuning checkpoint (``.../epoch-3``) by the run folder above it.
    """
    if model_name:
        return str(model_name)
    text = str(model).rstrip("/\\")
    path = Path(text).expanduser()
    if path.exists():
        name = path.name if not path.name.startswith("epoch-") else path.parent.name
        return name or text
    return text
