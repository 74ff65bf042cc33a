"""Paired intervals of the Deltas: fine-tuned vs pre-trained probes on the same test sentences.

From the probing cells' ``probe_predictions.npz`` (:mod:`probeft.results.predictions`), every fine-tuned
probe is paired with the pre-trained probe of the same model, probing task, pooling and layer; the
pairing is per sentence, so both files must hold the same test split (same ``test_sha256``).

Reference: the pre-trained encoder's artefact of its *first* (smallest) seed. The results table's
Delta (:func:`probeft.results.analysis.probing_delta`) averages the pre-trained accuracy over its seeds;
the grid probes a pre-trained encoder for one seed only (its probes take no seed), so the two agree.

Rows of the returned table (:data:`COLUMNS`), fractions throughout:
    * ``level="layer"``: one Delta per layer, with its paired percentile-bootstrap interval
      (:func:`probeft.verdicts.uncertainty.paired_bootstrap_delta`), bootstrap p-value and McNemar's exact
      test (:func:`probeft.verdicts.uncertainty.mcnemar_exact`); ``layer_group="none"``.
    * ``level="layer_group"``: the mean Delta over a layer group (:func:`probeft.results.analysis.layer_groups`
      of the model's depth), the layers averaged inside each resample; ``layer=-1``; no McNemar.
    * ``seed`` = a fine-tuning seed, or ``-1`` (:data:`POOLED_SEED`): all seeds of that fine-tuning
      (model, task, head) pooled, the seeds averaged inside each resample as well (what Tables 2 and
      5 and Figures 4 and 5 show, since they average seeds); ``seeds``, ``seed_mean`` and ``seed_std``
      (:func:`probeft.verdicts.uncertainty.seed_spread` of the per-seed Deltas; std NaN for one seed) are set
      on these rows.

Intervals (``interval_levels`` says which levels were resampled): every interval is a percentile interval
of :func:`probeft.verdicts.uncertainty.hierarchical_bootstrap_delta`, which resamples the fine-tuning
seeds (pooled rows with more than one seed), then the probe refits on resampled training sentences (when
the cells hold them, ``probing.refits > 0``; ``refits`` = how many per encoder, the fewest over the
row's cells), then the test sentences, paired. A per-seed row without refits is the paired sentence
bootstrap, bit for bit as before refits existed; a pooled row of several seeds now also resamples the
seeds (before, the seeds were only averaged inside each sentence resample: the fine-tuning variance was
left out).

Multiple comparisons: ``q_value`` is the Benjamini-Hochberg q-value of ``p_bootstrap``
(:func:`probeft.verdicts.uncertainty.bh_q_values`) within its family, the rows of the run with the same
``level`` and ``seed`` (e.g. all per-layer tests of the pooled seeds: every model, fine-tuning, probing
task, pooling and layer; the layer-group tests are another family). A table written before q-values
existed gets them on load (:func:`load_delta_intervals`).

The grid writes the table to ``<run>/delta_intervals.csv`` after gathering the results.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probeft.core import files
from probeft.core.names import NO_FINETUNE
from probeft.results import analysis, predictions
from probeft.verdicts import uncertainty

__all__ = ["COLUMNS", "DELTA_INTERVALS_FILE", "POOLED_SEED", "add_q_values", "delta_intervals", "excludes_zero",
           "load_cell_predictions", "load_delta_intervals", "write_delta_intervals"]

DELTA_INTERVALS_FILE = "delta_intervals.csv"
POOLED_SEED = -1
COLUMNS = ["model", "finetune_task", "finetune_head", "seed", "epoch", "probe_task", "pooling", "level", "layer",
           "layer_group", "n_test", "pretrained", "finetuned", "delta", "ci_low", "ci_high", "p_bootstrap",
           "q_value", "mcnemar_b01", "mcnemar_b10", "mcnemar_p", "seeds", "seed_mean", "seed_std", "pretrained_seed",
           "refits", "interval_levels"]
# Columns a table written before issue 26 lacks; load_delta_intervals fills them in.
ADDED_COLUMNS = ("q_value", "refits", "interval_levels")


def load_cell_predictions(cell_dirs: Iterable[str | Path]) -> list[predictions.CellPredictions]:
    """The ``probe_predictions.npz`` of every cell folder that has one (other stages have none)."""
    found = [Path(d) / predictions.PREDICTIONS_FILE for d in cell_dirs]
    return [predictions.load_predictions(path) for path in found if path.is_file()]


def _task_arrays(cell: predictions.CellPredictions, task: str, pooling: str, layers: Sequence[int]) -> np.ndarray:
    """``(L, N)`` correctness of ``cell``'s probes of ``task`` / ``pooling`` at ``layers``."""
    entry = cell.tasks[task]
    where = {probe: i for i, probe in enumerate(entry.probes)}
    return entry.correct[[where[(pooling, layer)] for layer in layers]]


def _refit_arrays(cells: Sequence[predictions.CellPredictions], task: str, pooling: str,
                  layers: Sequence[int]) -> np.ndarray | None:
    """``(C, R, L, N)`` refit correctness of each cell's probes (the fewest refits of any cell), or None
    when a cell has none."""
    blocks = []
    for cell in cells:
        entry = cell.tasks[task]
        if entry.refits is None:
            return None
        where = {probe: i for i, probe in enumerate(entry.probes)}
        blocks.append(entry.refits[:, [where[(pooling, layer)] for layer in layers]])
    fewest = min(block.shape[0] for block in blocks)
    return np.stack([block[:fewest] for block in blocks])


def _check_pairable(reference: predictions.CellPredictions, cell: predictions.CellPredictions, task: str) -> None:
    ref, own = reference.tasks[task], cell.tasks[task]
    if ref.test_sha256 != own.test_sha256 or ref.correct.shape[1] != own.correct.shape[1]:
        raise ValueError(
            f"{cell.path} and its pre-trained reference {reference.path} probed {task!r} on different test "
            f"sentences (n_test {own.correct.shape[1]} vs {ref.correct.shape[1]}, sha256 "
            f"{own.test_sha256[:12]} vs {ref.test_sha256[:12]}): their probes cannot be paired"
        )


def delta_intervals(
    cells: Sequence[predictions.CellPredictions],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired Delta intervals of every fine-tuned probe against its pre-trained reference.

    Args:
        cells: loaded probing artefacts (pre-trained and fine-tuned) of one run.
        resamples, confidence, seed: bootstrap settings (:func:`probeft.verdicts.uncertainty.paired_bootstrap_delta`).

    Returns:
        The table described in the module docstring (:data:`COLUMNS`); empty when no fine-tuned
        cell has a pre-trained reference.

    Raises:
        ValueError: a fine-tuned probe and its reference were tested on different sentences.
    """
    options = {"resamples": resamples, "confidence": confidence, "seed": seed}
    references: dict[str, predictions.CellPredictions] = {}
    for cell in sorted(cells, key=lambda c: int(c.cell["seed"])):
        if cell.cell["finetune_task"] == NO_FINETUNE:
            references.setdefault(cell.cell["model"], cell)  # the first (smallest) seed
    finetuned: dict[tuple[str, str, str], list[predictions.CellPredictions]] = {}
    for cell in cells:
        if cell.cell["finetune_task"] != NO_FINETUNE and cell.cell["model"] in references:
            key = (cell.cell["model"], cell.cell["finetune_task"], cell.cell["finetune_head"])
            finetuned.setdefault(key, []).append(cell)
    rows: list[dict[str, Any]] = []
    for (model, ft_task, head), seeds in sorted(finetuned.items()):
        reference = references[model]
        seeds = sorted(seeds, key=lambda c: int(c.cell["seed"]))
        constants = {"model": model, "finetune_task": ft_task, "finetune_head": head,
                     "pretrained_seed": int(reference.cell["seed"])}
        tasks = [t for t in reference.tasks if all(t in c.tasks for c in seeds)]
        for task in tasks:
            for cell in seeds:
                _check_pairable(reference, cell, task)
            poolings = sorted({p for p, _ in reference.tasks[task].probes})
            for pooling in poolings:
                layer_sets = [{lay for p, lay in c.tasks[task].probes if p == pooling} for c in [reference, *seeds]]
                layers = sorted(set.intersection(*layer_sets))
                if not layers:
                    continue
                pre = _task_arrays(reference, task, pooling, layers)  # (L, N)
                post = np.stack([_task_arrays(c, task, pooling, layers) for c in seeds])  # (S, L, N)
                refits_pre = _refit_arrays([reference], task, pooling, layers)  # (1, R_a, L, N) or None
                refits_post = _refit_arrays(seeds, task, pooling, layers)  # (S, R_b, L, N) or None
                refits = {"a": None if refits_pre is None else refits_pre[0], "b": refits_post}
                groups = {name: [i for i, lay in enumerate(layers) if low <= lay <= high]
                          for name, (low, high) in analysis.layer_groups(max(layers)).items()}
                where = {**constants, "probe_task": task, "pooling": pooling, "n_test": int(pre.shape[1])}
                rows += _rows_for(where, seeds, layers, groups, pre, post, refits, options)
    table = add_q_values(pd.DataFrame(rows, columns=COLUMNS))
    return table.astype({"mcnemar_b01": "Int64", "mcnemar_b10": "Int64"})  # counts; empty on group rows


def add_q_values(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``q_value`` = BH q-value of ``p_bootstrap`` within each family (same ``level`` and ``seed``)."""
    table = table.copy()
    table["q_value"] = np.nan
    for _, family in table.groupby(["level", "seed"], sort=False):
        table.loc[family.index, "q_value"] = uncertainty.bh_q_values(family["p_bootstrap"].to_numpy(dtype=float))
    return table


def _levels(num_seeds: int, refits: dict[str, np.ndarray | None]) -> tuple[str, int]:
    """``interval_levels`` and ``refits`` of a row: what was resampled, and the fewest refits of an encoder."""
    counts = [r.shape[-3] for r in refits.values() if r is not None]
    levels = ["seeds"] if num_seeds > 1 else []
    levels += ["refits"] if counts else []
    return "+".join([*levels, "sentences"]), min(counts, default=0)


def _rows_for(where: dict[str, Any], seeds: list[predictions.CellPredictions], layers: list[int],
              groups: dict[str, list[int]], pre: np.ndarray, post: np.ndarray,
              refits: dict[str, np.ndarray | None], options: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-seed and pooled rows (layers, then layer groups) of one (fine-tuning, task, pooling).

    ``pre`` ``(L, N)``, ``post`` ``(S, L, N)``; ``refits["a"]`` ``(R_a, L, N)`` and ``refits["b"]``
    ``(S, R_b, L, N)`` or None.
    """
    rows: list[dict[str, Any]] = []
    refits_a, refits_b = refits["a"], refits["b"]

    def interval(seed_index: list[int], layer_index: list[int] | None = None):
        """Hierarchical interval of the seeds ``seed_index``: per layer, or the mean over ``layer_index``."""
        own_b = None if refits_b is None else refits_b[seed_index]
        if layer_index is None:
            return uncertainty.hierarchical_bootstrap_delta(pre, post[seed_index], refits_a=refits_a,
                                                            refits_b=own_b, **options)
        return uncertainty.hierarchical_bootstrap_delta(
            pre[layer_index], post[seed_index][:, layer_index], reduce="mean",
            refits_a=None if refits_a is None else refits_a[:, layer_index],
            refits_b=None if own_b is None else own_b[:, :, layer_index], **options)

    per_seed_layer = []  # (S, L) deltas
    per_seed_group = []  # (S, groups)
    levels, num_refits = _levels(1, refits)
    for s, cell in enumerate(seeds):
        own = {**where, "seed": int(cell.cell["seed"]), "epoch": int(cell.cell["epoch"]), "seeds": 1,
               "refits": num_refits, "interval_levels": levels}
        by_layer = interval([s])
        test = uncertainty.mcnemar_exact(pre, post[s])
        per_seed_layer.append(np.asarray(by_layer.delta))
        for i, layer in enumerate(layers):
            rows.append({**own, "level": "layer", "layer": layer, "layer_group": "none",
                         "pretrained": float(pre[i].mean()), "finetuned": float(post[s, i].mean()),
                         "delta": float(by_layer.delta[i]), "ci_low": float(by_layer.low[i]),
                         "ci_high": float(by_layer.high[i]), "p_bootstrap": float(by_layer.p_value[i]),
                         "mcnemar_b01": int(test.b01[i]), "mcnemar_b10": int(test.b10[i]),
                         "mcnemar_p": float(test.p_value[i])})
        group_deltas = []
        for name, index in groups.items():
            result = interval([s], index)
            group_deltas.append(result.delta)
            rows.append({**own, "level": "layer_group", "layer": -1, "layer_group": name,
                         "pretrained": float(pre[index].mean()), "finetuned": float(post[s][index].mean()),
                         "delta": result.delta, "ci_low": result.low, "ci_high": result.high,
                         "p_bootstrap": result.p_value})
        per_seed_group.append(group_deltas)
    # All seeds pooled: seeds, then refits, then sentences resampled (hierarchical_bootstrap_delta).
    num_seeds = len(seeds)
    levels, num_refits = _levels(num_seeds, refits)
    pooled = {**where, "seed": POOLED_SEED, "epoch": -1, "seeds": num_seeds, "refits": num_refits,
              "interval_levels": levels}
    everyone = list(range(num_seeds))
    layer_spread = uncertainty.seed_spread(np.array(per_seed_layer))
    by_layer = interval(everyone)
    for i, layer in enumerate(layers):
        rows.append({**pooled, "level": "layer", "layer": layer, "layer_group": "none",
                     "pretrained": float(pre[i].mean()), "finetuned": float(post[:, i].mean()),
                     "delta": float(by_layer.delta[i]), "ci_low": float(by_layer.low[i]),
                     "ci_high": float(by_layer.high[i]), "p_bootstrap": float(by_layer.p_value[i]),
                     "seed_mean": float(np.atleast_1d(layer_spread.mean)[i]),
                     "seed_std": float(np.atleast_1d(layer_spread.std)[i])})
    group_spread = uncertainty.seed_spread(np.array(per_seed_group))
    for g, (name, index) in enumerate(groups.items()):
        result = interval(everyone, index)
        rows.append({**pooled, "level": "layer_group", "layer": -1, "layer_group": name,
                     "pretrained": float(pre[index].mean()), "finetuned": float(post[:, index].mean()),
                     "delta": result.delta, "ci_low": result.low, "ci_high": result.high,
                     "p_bootstrap": result.p_value, "seed_mean": float(np.atleast_1d(group_spread.mean)[g]),
                     "seed_std": float(np.atleast_1d(group_spread.std)[g])})
    return rows


def excludes_zero(intervals: pd.DataFrame) -> pd.Series:
    """Whether each row's interval lies entirely above or below 0."""
    return (intervals["ci_low"] > 0) | (intervals["ci_high"] < 0)


def write_delta_intervals(cell_dirs: Iterable[str | Path], out_path: str | Path, **options: Any) -> pd.DataFrame | None:
    """Compute :func:`delta_intervals` from cell folders and write it atomically to ``out_path``.

    A run without any pairable artefacts writes nothing and removes a stale ``out_path``.

    Returns:
        The table, or None when there was nothing to pair.
    """
    out_path = Path(out_path)
    table = delta_intervals(load_cell_predictions(cell_dirs), **options)
    if table.empty:
        out_path.unlink(missing_ok=True)
        return None
    files.atomic_write_text(out_path, table.to_csv(index=False))
    return table


def load_delta_intervals(path: str | Path) -> pd.DataFrame | None:
    """Read a ``delta_intervals.csv``; None when the file is absent (a run without the artefacts).

    A table written before issue 26 (no ``q_value``, ``refits``, ``interval_levels``) gets them here: q-values
    of its p-values in the families of :func:`add_q_values`, 0 refits, intervals over ``"sentences"``.

    Raises:
        ValueError: the file lacks columns of :data:`COLUMNS` (names the file).
    """
    path = Path(path)
    if not path.is_file():
        return None
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = [c for c in COLUMNS if c not in table.columns and c not in ADDED_COLUMNS]
    if missing:
        raise ValueError(f"{path}: not a delta-intervals table, missing column(s) {missing}")
    if "q_value" not in table.columns:  # written before q-values: the same families, computed here
        table = add_q_values(table)
    if "refits" not in table.columns:  # and before refits: every interval was over test sentences only
        table["refits"] = 0
        table["interval_levels"] = "sentences"
    table = table[COLUMNS]
    for column in ("model", "finetune_task", "finetune_head", "probe_task", "pooling", "level", "layer_group"):
        table[column] = table[column].astype(str)
    return table
