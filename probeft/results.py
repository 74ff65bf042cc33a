"""Tidy result tables: atomic per-cell writes, provenance, loading and aggregation.

Every stage (probing, fine-tuning, attention, perplexity) produces rows of one long table whose
first columns are :data:`RESULT_COLUMNS`; stage-specific columns (``l2``, ``position``,
``k_replaced``, ...) may follow. Each grid cell writes ``<cell_dir>/results.csv`` and then
``<cell_dir>/provenance.json``; the provenance file is written last and is the completion marker,
so a cell interrupted mid-write never looks complete. The book only reads these tables.

This module imports nothing else from probeft.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULT_COLUMNS: tuple[str, ...] = (
    "stage",
    "model",
    "finetune_task",
    "finetune_head",
    "seed",
    "epoch",
    "probe_task",
    "pooling",
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
REQUIRED_COLUMNS: tuple[str, ...] = ("stage", "model", "metric", "value")
RESULTS_FILE = "results.csv"
PROVENANCE_FILE = "provenance.json"
TRACKED_PACKAGES = ("probeft", "torch", "transformers", "numpy", "pandas", "scikit-learn", "scipy", "papermill")
# The paper's layer groups for 12-layer encoders (Tables 2 and 5): embeddings + first six layers,
# then the last six. For a model of depth L the split point is scaled: layers 0..round(L/2) vs the rest.
PAPER_LAYER_GROUPS_12: tuple[tuple[int, int], tuple[int, int]] = ((0, 6), (7, 12))


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


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def provenance(*, params: Mapping[str, Any], started: float, device: str) -> dict[str, Any]:
    """Provenance of one cell: resolved parameters, code version, environment, wall time.

    Args:
        params: the cell's resolved parameters (JSON-serialisable; others are stringified).
        started: ``time.time()`` when the cell started.
        device: the device the cell computed on, e.g. ``"cuda:0"``.
    """
    return {
        "params": json.loads(json.dumps(dict(params), default=str)),
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
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
    count) last; both via temporary files and renames.

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
    atomic_write_text(results_path, table.to_csv(index=False))
    record = provenance(params=params, started=started, device=device)
    record["rows"] = len(table)
    atomic_write_text(cell_dir / PROVENANCE_FILE, json.dumps(record, indent=2, sort_keys=True))
    return results_path


def cell_complete(cell_dir: str | Path) -> bool:
    """Whether a cell finished: provenance exists and its row count matches ``results.csv``."""
    cell_dir = Path(cell_dir)
    prov_path, results_path = cell_dir / PROVENANCE_FILE, cell_dir / RESULTS_FILE
    if not (prov_path.is_file() and results_path.is_file()):
        return False
    try:
        rows = json.loads(prov_path.read_text(encoding="utf-8"))["rows"]
        return len(pd.read_csv(results_path)) == rows
    except (ValueError, KeyError, OSError, pd.errors.ParserError):
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
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
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
    atomic_write_text(Path(out_path), table.to_csv(index=False))
    return table


def layer_groups(num_layers: int) -> dict[str, tuple[int, int]]:
    """Lower and upper layer groups (inclusive bounds) for an encoder with ``num_layers`` layers.

    For 12 layers this is the paper's split, layers 0-6 and 7-12 (layer 0 = embeddings). For other
    depths the split point is ``round(num_layers / 2)``: e.g. 6 layers -> 0-3 and 4-6, 4 layers ->
    0-2 and 3-4.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    split = int(np.floor(num_layers / 2 + 0.5))
    return {f"layers 0-{split}": (0, split), f"layers {split + 1}-{num_layers}": (split + 1, num_layers)}


PROBE_KEYS = ["model", "probe_task", "pooling", "layer"]


def probing_delta(table: pd.DataFrame, *, split: str = "test", metric: str = "accuracy") -> pd.DataFrame:
    """Change in probing accuracy, fine-tuned minus pre-trained, per layer and pooling.

    The pre-trained reference (``finetune_task == "none"``) is averaged over its seeds; each
    fine-tuned row keeps its own seed.

    Args:
        table: results with ``stage == "probing"`` rows.
        split: which split's accuracy to compare.
        metric: which metric.

    Returns:
        Columns ``model, finetune_task, finetune_head, seed, probe_task, pooling, layer,
        pretrained, finetuned, delta`` (fractions).

    Raises:
        ValueError: no probing rows, or fine-tuned rows whose pre-trained reference is missing.
    """
    rows = table[(table["stage"] == "probing") & (table["split"] == split) & (table["metric"] == metric)]
    if rows.empty:
        raise ValueError(f"no probing rows with split={split!r} and metric={metric!r}")
    pre = rows[rows["finetune_task"] == "none"].groupby(PROBE_KEYS, as_index=False)["value"].mean()
    post = rows[rows["finetune_task"] != "none"]
    merged = post.merge(pre.rename(columns={"value": "pretrained"}), on=PROBE_KEYS, how="left")
    if merged["pretrained"].isna().any():
        missing = merged.loc[merged["pretrained"].isna(), PROBE_KEYS].drop_duplicates()
        raise ValueError(f"fine-tuned probing rows without a pre-trained reference:\n{missing.to_string(index=False)}")
    merged = merged.rename(columns={"value": "finetuned"})
    merged["delta"] = merged["finetuned"] - merged["pretrained"]
    columns = ["model", "finetune_task", "finetune_head", "seed", *PROBE_KEYS[1:], "pretrained", "finetuned", "delta"]
    return merged[columns].reset_index(drop=True)


def delta_by_layer_group(delta: pd.DataFrame) -> pd.DataFrame:
    """Average Delta over the lower and upper layer groups (Tables 2 and 5).

    Group bounds come from each model's depth (its largest layer index) via :func:`layer_groups`.
    Seeds are averaged first.

    Returns:
        Columns ``model, finetune_task, probe_task, pooling, layer_group, delta``.
    """
    keys = ["model", "finetune_task", "probe_task", "pooling"]
    per_layer = delta.groupby([*keys, "layer"], as_index=False)["delta"].mean()
    parts = []
    for model, model_rows in per_layer.groupby("model"):
        for name, (low, high) in layer_groups(int(model_rows["layer"].max())).items():
            in_group = model_rows[(model_rows["layer"] >= low) & (model_rows["layer"] <= high)]
            means = in_group.groupby(keys, as_index=False)["delta"].mean()
            means["layer_group"] = name
            parts.append(means)
    grouped = pd.concat(parts, ignore_index=True)
    return grouped[[*keys, "layer_group", "delta"]]


def finetune_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Final-epoch dev metrics of fine-tuning runs, averaged over seeds (Table 1).

    Returns:
        Columns ``model, finetune_task, finetune_head, metric, value, std, seeds``.
    """
    rows = table[table["stage"] == "finetune"]
    if rows.empty:
        raise ValueError("no fine-tuning rows in the results table")
    last = rows.groupby(["model", "finetune_task", "finetune_head", "seed"])["epoch"].transform("max")
    final = rows[rows["epoch"] == last]
    keys = ["model", "finetune_task", "finetune_head", "metric"]
    summary = final.groupby(keys)["value"].agg(value="mean", std="std", seeds="count").reset_index()
    summary["std"] = summary["std"].fillna(0.0)
    return summary


def has_stage(table: pd.DataFrame, stage: str) -> bool:
    """Whether ``table`` holds rows of ``stage`` (book pages say so instead of failing)."""
    return bool((table["stage"] == stage).any())


def table1(table: pd.DataFrame, metrics: Mapping[str, Sequence[str]], paper: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """Table 1 layout: one row per (model, head), one column per task, "ours (paper)" in percent.

    Args:
        table: results with fine-tuning rows.
        metrics: task -> metric names shown (joined with " / ", e.g. SQuAD EM / F1).
        paper: model -> task -> the paper's number as text (models absent there show "-").

    Returns:
        A DataFrame of strings indexed by ``model`` and ``head``.
    """
    summary = finetune_summary(table)
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for (model, task, head), part in summary.groupby(["model", "finetune_task", "finetune_head"]):
        values = part.set_index("metric")["value"]
        shown = [f"{100 * values[m]:.1f}" for m in metrics.get(task, ()) if m in values]
        reference = paper.get(model, {}).get(task, "-")
        cells.setdefault((model, head), {})[task] = f"{' / '.join(shown) or '-'} ({reference})"
    frame = pd.DataFrame.from_dict(cells, orient="index")
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["model", "head"])
    ordered = [t for t in metrics if t in frame.columns]
    return frame[ordered].fillna("-")


def delta_group_table(table: pd.DataFrame, *, pooling: str, split: str = "test") -> pd.DataFrame:
    """Tables 2 / 5 layout: Delta in points, rows (model, fine-tuning task), columns (probing task, layer group)."""
    delta = probing_delta(table, split=split)
    delta = delta[delta["pooling"] == pooling]
    if delta.empty:
        raise ValueError(f"no fine-tuned probing rows with pooling={pooling!r}")
    grouped = delta_by_layer_group(delta)
    grouped["delta"] = (100 * grouped["delta"]).round(2)
    return grouped.pivot_table(index=["model", "finetune_task"], columns=["probe_task", "layer_group"], values="delta")


def best_layers(table: pd.DataFrame, *, split: str = "test") -> pd.DataFrame:
    """Best layer and its accuracy (percent) per pre-trained model, probing task and pooling."""
    rows = table[(table["stage"] == "probing") & (table["finetune_task"] == "none") & (table["split"] == split)]
    if rows.empty:
        raise ValueError(f"no pre-trained probing rows for split={split!r}")
    means = rows.groupby(["model", "probe_task", "pooling", "layer"], as_index=False)["value"].mean()
    best = means.loc[means.groupby(["model", "probe_task", "pooling"])["value"].idxmax()]
    best = best.assign(accuracy=(100 * best["value"]).round(1)).drop(columns="value")
    return best.pivot_table(index=["model", "probe_task"], columns="pooling", values=["layer", "accuracy"])


def finetune_by_epoch(table: pd.DataFrame) -> pd.DataFrame:
    """Dev metrics (percent) per fine-tuning run and epoch, averaged over seeds."""
    rows = table[table["stage"] == "finetune"]
    if rows.empty:
        raise ValueError("no fine-tuning rows in the results table")
    keys = ["model", "finetune_task", "finetune_head", "metric"]
    pivot = rows.pivot_table(index=keys, columns="epoch", values="value", aggfunc="mean")
    return (100 * pivot).round(1)


def attention_summary(table: pd.DataFrame, *, position: str = "first") -> str:
    """One paragraph per model on first-token entropy and EMD in the lower vs upper layers."""
    rows = table[(table["stage"] == "attention") & (table["position"].astype(str) == position)]
    if rows.empty:
        raise ValueError(f"no attention rows for position={position!r}")
    lines = []
    for model, part in rows.groupby("model"):
        first = int(part["layer"].min())  # attention starts at layer 1 (no attention in the embeddings)
        groups = {f"layers {max(lo, first)}-{hi}": (lo, hi) for lo, hi in layer_groups(int(part["layer"].max())).values()}
        for (ft_task, head, metric), curve in part.groupby(["finetune_task", "finetune_head", "metric"]):
            label = "pre-trained" if ft_task == "none" else f"fine-tuned on {ft_task} ({head} head)"
            means = [
                f"{name}: {curve[(curve['layer'] >= lo) & (curve['layer'] <= hi)]['value'].mean():.3f}"
                for name, (lo, hi) in groups.items()
            ]
            lines.append(f"{model}, {label}, mean {metric}: " + "; ".join(means))
    return "\n".join(lines)


def perplexity_summary(table: pd.DataFrame) -> str:
    """Perplexity before and after fine-tuning, and with all fine-tuned layers replaced, per model and task."""
    rows = table[(table["stage"] == "perplexity") & (table["metric"] == "perplexity")]
    if rows.empty:
        raise ValueError("no perplexity rows in the results table")
    lines = []
    for (model, task), part in rows[rows["finetune_task"] != "none"].groupby(["model", "finetune_task"]):
        epochs = part[part["k_replaced"] == -1].groupby("epoch")["value"].mean()
        text = f"{model} / {task}: pre-trained {epochs.get(0, float('nan')):.2f}"
        if len(epochs) > 1:
            text += f", after epoch {epochs.index.max()} {epochs.iloc[-1]:.2f}"
        replaced = part[part["k_replaced"] >= 0].groupby("k_replaced")["value"].mean()
        if not replaced.empty:
            text += "; top layers replaced: " + ", ".join(f"k={int(k)}: {v:.2f}" for k, v in replaced.items())
        lines.append(text)
    return "\n".join(lines)


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


def scratch_dir(output_dir: str | Path | None, name: str) -> Path:
    """``output_dir`` as a Path, or a fresh temporary folder when it is None (interactive runs)."""
    if output_dir is None or str(output_dir) == "":
        return Path(tempfile.mkdtemp(prefix=f"probeft-{name}-"))
    return Path(output_dir)
