"""Analyses of the long results table: each function takes the table and returns a DataFrame.

Delta (fine-tuned minus pre-trained probing accuracy), its layer-group means (the paper's Tables 2
and 5), fine-tuning summaries (Table 1), the best probing layers, and the per-layer selectivity
(control tasks), MDL compression and CKA to the pre-trained encoder of the probing stage. A fine-tuned encoder is
identified by its task *and* its head (``finetune_head``): two heads of one task are different
encoders and are never averaged together.

Probes. A run may fit linear and MLP probes (the ``probe`` column). The paper's analyses (Delta, layer
groups, best layers, selectivity, MDL) read the linear probe's rows (:func:`probe_rows`), so a run with both
gives the same numbers as a run with the linear probe alone; :func:`probe_comparison` puts the two side by side.

The ``has_*`` predicates say whether a table holds what an analysis needs, so a report page can
print a note instead of failing on a run that lacks a stage.

This module imports only :mod:`probeft.core.names` from probeft (it reads tables, it does not load them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from probeft.core.names import MLM_HEAD_PRETRAINED, NO_FINETUNE

__all__ = [
    "best_layers",
    "cka_by_layer",
    "compression_by_layer",
    "delta_by_layer_group",
    "delta_group_table",
    "delta_vs_paper",
    "finetune_by_epoch",
    "finetune_summary",
    "has_cka",
    "has_compression",
    "has_delta",
    "has_pretrained_probing",
    "has_selectivity",
    "noise_floor_by_task",
    "has_probe_comparison",
    "perplexity_rows",
    "has_stage",
    "layer_groups",
    "probe_comparison",
    "probe_rows",
    "probes_in",
    "probing_delta",
    "selectivity_by_layer",
]

LINEAR = "linear"  # the paper's probe: the one every analysis reads unless told otherwise

# Columns that identify one probe of one encoder state (apart from the fine-tuning it had).
PROBE_KEYS: list[str] = ["model", "probe_task", "pooling", "layer"]
# Columns that identify one fine-tuned encoder (seeds aside).
FINETUNED_KEYS: list[str] = ["model", "finetune_task", "finetune_head"]


def layer_groups(num_layers: int) -> dict[str, tuple[int, int]]:
    """Lower and upper layer groups (inclusive bounds) for an encoder with ``num_layers`` layers.

    For 12 layers this is the paper's split, layers 0-6 and 7-12 (layer 0 = embeddings). For other
    depths the split point is ``round(num_layers / 2)`` (halves rounded up): e.g. 6 layers -> 0-3
    and 4-6, 4 layers -> 0-2 and 3-4.

    Raises:
        ValueError: ``num_layers < 1``.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    split = int(np.floor(num_layers / 2 + 0.5))
    return {f"layers 0-{split}": (0, split), f"layers {split + 1}-{num_layers}": (split + 1, num_layers)}


def has_stage(table: pd.DataFrame, stage: str) -> bool:
    """Whether ``table`` holds rows of ``stage``."""
    return bool((table["stage"] == stage).any())


def perplexity_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The masked-LM perplexity rows, with the columns that older tables lack filled in.

    Returns:
        Rows ``stage == "perplexity"``, ``metric == "perplexity"`` (a copy) with ``k_replaced`` (-1: a plain
        evaluation), ``replaced_layers`` (``top`` / ``bottom`` for a replacement row, ``none`` for a plain one;
        tables from before bottom replacement had only the top, so a replacement row without it is ``top``)
        and ``mlm_head`` (``pretrained`` / ``fitted``; tables from before fitted heads used the pre-trained
        head, so a row without it is ``pretrained``).
    """
    rows = table[(table["stage"] == "perplexity") & (table["metric"] == "perplexity")].copy()
    k = rows["k_replaced"] if "k_replaced" in rows else pd.Series(-1, index=rows.index)
    rows["k_replaced"] = k.fillna(-1).astype("int64")
    side = pd.Series(np.where(rows["k_replaced"] >= 0, "top", "none"), index=rows.index)
    rows["replaced_layers"] = rows["replaced_layers"].fillna(side) if "replaced_layers" in rows else side
    head = rows["mlm_head"].fillna(MLM_HEAD_PRETRAINED) if "mlm_head" in rows else MLM_HEAD_PRETRAINED
    rows["mlm_head"] = head
    return rows


def probe_rows(table: pd.DataFrame, probe: str = LINEAR) -> pd.DataFrame:
    """The probing rows of one probe (``"linear"`` or ``"mlp"``) and every row of other stages.

    A table without a ``probe`` column (written before there was a choice, not read through
    :func:`probeft.results.load_results`, which fills it) holds linear probes only.
    """
    if "probe" not in table.columns:
        return table if probe == LINEAR else table.iloc[:0]
    return table[(table["stage"] != "probing") | (table["probe"] == probe) | (table["probe"] == "none")]


def probes_in(table: pd.DataFrame) -> list[str]:
    """The probes whose probing ``accuracy`` rows ``table`` holds, linear first."""
    if "probe" not in table.columns:
        return [LINEAR] if bool(((table["stage"] == "probing") & (table["metric"] == "accuracy")).any()) else []
    found = set(table.loc[(table["stage"] == "probing") & (table["metric"] == "accuracy"), "probe"])
    return sorted(found, key=lambda probe: (probe != LINEAR, probe))


def _probing_rows(table: pd.DataFrame, split: str, metric: str, probe: str = LINEAR) -> pd.DataFrame:
    table = probe_rows(table, probe)
    return table[(table["stage"] == "probing") & (table["split"] == split) & (table["metric"] == metric)]


def has_pretrained_probing(table: pd.DataFrame, *, pooling: str | None = None, split: str = "test") -> bool:
    """Whether ``table`` holds probing accuracies of pre-trained encoders (Figure 1's rows).

    Args:
        table: a results table.
        pooling: only count rows of this pooling (None: any).
        split: the split.
    """
    rows = _probing_rows(table, split, "accuracy")
    if pooling is not None:
        rows = rows[rows["pooling"] == pooling]
    return bool((rows["finetune_task"] == NO_FINETUNE).any())


def has_delta(table: pd.DataFrame, *, pooling: str | None = None, split: str = "test") -> bool:
    """Whether a Delta can be computed: fine-tuned probing rows whose pre-trained reference exists.

    Args:
        table: a results table.
        pooling: only count rows of this pooling (None: any).
        split: the split compared.
    """
    rows = _probing_rows(table, split, "accuracy")
    if pooling is not None:
        rows = rows[rows["pooling"] == pooling]
    pre = rows.loc[rows["finetune_task"] == NO_FINETUNE, PROBE_KEYS].drop_duplicates()
    post = rows.loc[rows["finetune_task"] != NO_FINETUNE, PROBE_KEYS].drop_duplicates()
    return not post.merge(pre, on=PROBE_KEYS).empty


def probing_delta(table: pd.DataFrame, *, split: str = "test", metric: str = "accuracy") -> pd.DataFrame:
    """Change in probing accuracy, fine-tuned minus pre-trained, per layer and pooling.

    The pre-trained reference (``finetune_task == "none"``) is averaged over its seeds; each
    fine-tuned row keeps its own task, head and seed.

    Args:
        table: results with ``stage == "probing"`` rows.
        split: which split's accuracy to compare.
        metric: which metric.

    Returns:
        One row per fine-tuned probe: columns ``model, finetune_task, finetune_head, seed,
        probe_task, pooling, layer, pretrained, finetuned, delta`` (fractions).

    Raises:
        ValueError: no probing rows, or fine-tuned rows whose pre-trained reference is missing.
    """
    rows = _probing_rows(table, split, metric)
    if rows.empty:
        raise ValueError(f"no probing rows with split={split!r} and metric={metric!r}")
    pre = rows[rows["finetune_task"] == NO_FINETUNE].groupby(PROBE_KEYS, as_index=False)["value"].mean()
    post = rows[rows["finetune_task"] != NO_FINETUNE]
    merged = post.merge(pre.rename(columns={"value": "pretrained"}), on=PROBE_KEYS, how="left")
    if merged["pretrained"].isna().any():
        missing = merged.loc[merged["pretrained"].isna(), PROBE_KEYS].drop_duplicates()
        raise ValueError(f"fine-tuned probing rows without a pre-trained reference:\n{missing.to_string(index=False)}")
    merged = merged.rename(columns={"value": "finetuned"})
    merged["delta"] = merged["finetuned"] - merged["pretrained"]
    columns = [*FINETUNED_KEYS, "seed", *PROBE_KEYS[1:], "pretrained", "finetuned", "delta"]
    return merged[columns].reset_index(drop=True)


def delta_by_layer_group(delta: pd.DataFrame) -> pd.DataFrame:
    """Average Delta over the lower and upper layer groups (Tables 2 and 5).

    Group bounds come from each model's depth (its largest layer index) via :func:`layer_groups`.
    Seeds are averaged first; each (task, head) fine-tuning keeps its own rows.

    Args:
        delta: the output of :func:`probing_delta`.

    Returns:
        Columns ``model, finetune_task, finetune_head, probe_task, pooling, layer_group, delta``.
    """
    keys = [*FINETUNED_KEYS, "probe_task", "pooling"]
    per_layer = delta.groupby([*keys, "layer"], as_index=False)["delta"].mean()
    parts = []
    for _, model_rows in per_layer.groupby("model"):
        for name, (low, high) in layer_groups(int(model_rows["layer"].max())).items():
            in_group = model_rows[(model_rows["layer"] >= low) & (model_rows["layer"] <= high)]
            means = in_group.groupby(keys, as_index=False)["delta"].mean()
            means["layer_group"] = name
            parts.append(means)
    grouped = pd.concat(parts, ignore_index=True)
    return grouped[[*keys, "layer_group", "delta"]]


def delta_group_table(table: pd.DataFrame, *, pooling: str, split: str = "test") -> pd.DataFrame:
    """Tables 2 / 5 layout: Delta in points (2 decimals).

    Returns:
        Rows ``(model, finetune_task, finetune_head)``, columns ``(probe_task, layer_group)``.

    Raises:
        ValueError: no fine-tuned probing rows with this pooling (see :func:`has_delta`).
    """
    delta = probing_delta(table, split=split)
    delta = delta[delta["pooling"] == pooling]
    if delta.empty:
        raise ValueError(f"no fine-tuned probing rows with pooling={pooling!r}")
    grouped = delta_by_layer_group(delta)
    grouped["delta"] = (100 * grouped["delta"]).round(2)
    return grouped.pivot_table(index=FINETUNED_KEYS, columns=["probe_task", "layer_group"], values="delta")


def delta_vs_paper(table: pd.DataFrame, paper_cells: Mapping[tuple[str, str, str, str, str], float],
                   paper_models: Sequence[str], *, split: str = "test") -> pd.DataFrame:
    """The run's layer-group Deltas beside the paper's (Tables 2 and 5), with sign agreement per cell.

    The run's lower / upper layer group (:func:`layer_groups`, e.g. layers 0-3 / 4-6 of a 6-layer
    encoder) is compared with the paper's layers 0-6 / 7-12 of the same fine-tuning task, probing task
    and pooling, for each of the paper's models.

    Args:
        table: a results table with fine-tuned and pre-trained probing rows.
        paper_cells: ``{(paper_model, finetune_task, probe_task, pooling, "lower" | "upper"): points}``;
            a cell left out is unreadable and shows as NaN.
        paper_models: the paper's models, in column order.
        split: the split compared.

    Returns:
        One row per run cell: ``model, finetune_task, finetune_head, probe_task, pooling, layer_group``,
        ``delta`` (the run's, points), one column per paper model (points, NaN where not transcribed),
        ``signs_agree`` (paper models whose Delta has the run's sign), ``paper_cells`` (how many were
        transcribed). Empty when the run has no Deltas.
    """
    delta = probing_delta(table, split=split)
    columns = [*FINETUNED_KEYS, "probe_task", "pooling", "layer_group", "delta", *paper_models,
               "signs_agree", "paper_cells"]
    if delta.empty:
        return pd.DataFrame(columns=columns)
    grouped = delta_by_layer_group(delta)
    position = {}
    for model, rows in grouped.groupby("model"):
        names = list(layer_groups(int(delta.loc[delta["model"] == model, "layer"].max())))
        position.update({(model, name): side for name, side in zip(names, ("lower", "upper"), strict=True)})
    grouped["delta"] = 100 * grouped["delta"]
    sides = [position[(m, g)] for m, g in zip(grouped["model"], grouped["layer_group"], strict=True)]
    for paper_model in paper_models:
        grouped[paper_model] = [
            paper_cells.get((paper_model, task, probe_task, pooling, side), np.nan)
            for task, probe_task, pooling, side in zip(grouped["finetune_task"], grouped["probe_task"],
                                                       grouped["pooling"], sides, strict=True)]
    paper = grouped[list(paper_models)].to_numpy(dtype=float)
    known = ~np.isnan(paper)
    ours = np.sign(grouped["delta"].round(2).to_numpy())[:, None]  # the paper prints 2 decimals
    grouped["signs_agree"] = ((np.sign(paper) == ours) & known).sum(axis=1)
    grouped["paper_cells"] = known.sum(axis=1)
    return grouped[columns].reset_index(drop=True)


def finetune_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Final-epoch dev metrics of fine-tuning runs, averaged over seeds (Table 1).

    Returns:
        Columns ``model, finetune_task, finetune_head, metric, value, std, seeds``.

    Raises:
        ValueError: no fine-tuning rows.
    """
    rows = table[table["stage"] == "finetune"]
    if rows.empty:
        raise ValueError("no fine-tuning rows in the results table")
    last = rows.groupby([*FINETUNED_KEYS, "seed"])["epoch"].transform("max")
    final = rows[rows["epoch"] == last]
    keys = [*FINETUNED_KEYS, "metric"]
    summary = final.groupby(keys)["value"].agg(value="mean", std="std", seeds="count").reset_index()
    summary["std"] = summary["std"].fillna(0.0)
    return summary


def finetune_by_epoch(table: pd.DataFrame) -> pd.DataFrame:
    """Dev metrics (percent, 1 decimal) per fine-tuning run and epoch, averaged over seeds.

    Returns:
        Rows ``(model, finetune_task, finetune_head, metric)``, one column per epoch.
    """
    rows = table[table["stage"] == "finetune"]
    if rows.empty:
        raise ValueError("no fine-tuning rows in the results table")
    pivot = rows.pivot_table(index=[*FINETUNED_KEYS, "metric"], columns="epoch", values="value", aggfunc="mean")
    return (100 * pivot).round(1)


def best_layers(table: pd.DataFrame, *, split: str = "test") -> pd.DataFrame:
    """Best layer and its accuracy (percent, 1 decimal) per pre-trained model, probing task and pooling.

    Returns:
        Rows ``(model, probe_task)``, columns ``(accuracy | layer, pooling)``.

    Raises:
        ValueError: no pre-trained probing rows (see :func:`has_pretrained_probing`).
    """
    rows = _probing_rows(table, split, "accuracy")  # not the control / selectivity / MDL rows
    rows = rows[rows["finetune_task"] == NO_FINETUNE]
    if rows.empty:
        raise ValueError(f"no pre-trained probing rows for split={split!r}")
    means = rows.groupby(["model", "probe_task", "pooling", "layer"], as_index=False)["value"].mean()
    best = means.loc[means.groupby(["model", "probe_task", "pooling"])["value"].idxmax()]
    best = best.assign(accuracy=(100 * best["value"]).round(1)).drop(columns="value")
    return best.pivot_table(index=["model", "probe_task"], columns="pooling", values=["layer", "accuracy"])


# Columns that identify one probed encoder state and probe, seeds aside.
_PROBE_STATE_KEYS: list[str] = [*FINETUNED_KEYS, "probe_task", "pooling", "layer"]


def has_selectivity(table: pd.DataFrame, *, split: str = "test", probe: str = LINEAR) -> bool:
    """Whether ``table`` holds probing ``selectivity`` rows (control tasks) of ``split`` and ``probe``."""
    return not _probing_rows(table, split, "selectivity", probe).empty


def has_compression(table: pd.DataFrame) -> bool:
    """Whether ``table`` holds probing MDL ``compression`` rows (always of the train split)."""
    return not _probing_rows(table, "train", "compression").empty


def _per_layer(table: pd.DataFrame, split: str, metrics: list[str], probe: str = LINEAR) -> pd.DataFrame:
    table = probe_rows(table, probe)
    rows = table[(table["stage"] == "probing") & (table["split"] == split) & table["metric"].isin(metrics)]
    if rows.empty:
        raise ValueError(f"no probing rows with split={split!r} and metric in {metrics}")
    wide = rows.pivot_table(index=[*_PROBE_STATE_KEYS, "seed"], columns="metric", values="value")
    means = wide.groupby(_PROBE_STATE_KEYS).mean()  # seeds averaged
    means["seeds"] = wide.groupby(_PROBE_STATE_KEYS).size()
    return means.reset_index()


def selectivity_by_layer(table: pd.DataFrame, *, split: str = "test", probe: str = LINEAR) -> pd.DataFrame:
    """Accuracy, control accuracy and selectivity per encoder state and probe, averaged over seeds.

    Several control seeds (``probing.control_seeds``) are averaged too, inside each fine-tuning seed.
    ``probe`` picks the linear (default) or the MLP probes' rows.

    Returns:
        Columns ``model, finetune_task, finetune_head, probe_task, pooling, layer, accuracy,
        control_accuracy, selectivity``, then ``control_gain, selectivity_gain`` (against each label set's
        majority rate; only where the run has them), ``seeds`` (fractions, not points).

    Raises:
        ValueError: no selectivity rows (see :func:`has_selectivity`).
    """
    if not has_selectivity(table, split=split, probe=probe):
        raise ValueError(f"no probing selectivity rows with split={split!r} and probe={probe!r}")
    metrics = ["accuracy", "control_accuracy", "selectivity", "control_gain", "selectivity_gain"]
    frame = _per_layer(table, split, metrics, probe)
    frame = frame.dropna(subset=["selectivity"])
    return frame[[*_PROBE_STATE_KEYS, *[m for m in metrics if m in frame.columns], "seeds"]].reset_index(drop=True)


def compression_by_layer(table: pd.DataFrame) -> pd.DataFrame:
    """MDL compression (uniform / online codelength) and codelength per encoder state and probe, seeds averaged.

    Returns:
        Columns ``model, finetune_task, finetune_head, probe_task, pooling, layer, compression,
        codelength_kbits, seeds``.

    Raises:
        ValueError: no compression rows (see :func:`has_compression`).
    """
    if not has_compression(table):
        raise ValueError("no probing compression rows (MDL) in the results table")
    metrics = ["compression", "codelength_kbits"]
    frame = _per_layer(table, "train", metrics).dropna(subset=["compression"])
    return frame[[*_PROBE_STATE_KEYS, *[m for m in metrics if m in frame.columns], "seeds"]].reset_index(drop=True)


def noise_floor_by_task(table: pd.DataFrame) -> pd.DataFrame:
    """The MDL noise floor (``compression_noise_floor`` rows) per encoder state and probing task, seeds averaged.

    Returns:
        Columns ``model, finetune_task, finetune_head, probe_task, noise_floor``; empty for a run whose
        results predate the floor.
    """
    keys = ["model", "finetune_task", "finetune_head", "probe_task"]
    rows = _probing_rows(table, "train", "compression_noise_floor")
    if rows.empty:
        return pd.DataFrame(columns=[*keys, "noise_floor"])
    return rows.groupby(keys, as_index=False)["value"].mean().rename(columns={"value": "noise_floor"})


def has_cka(table: pd.DataFrame) -> bool:
    """Whether ``table`` holds probing ``cka`` rows (fine-tuned vs pre-trained features, test split)."""
    return not _probing_rows(table, "test", "cka").empty


def cka_by_layer(table: pd.DataFrame) -> pd.DataFrame:
    """Linear CKA of each fine-tuned encoder's test features to its pre-trained encoder's, seeds averaged.

    Returns:
        Columns ``model, finetune_task, finetune_head, probe_task, pooling, layer, cka, cka_std, seeds``
        (``cka_std``: standard deviation over seeds, 0 for one seed).

    Raises:
        ValueError: no CKA rows (see :func:`has_cka`).
    """
    if not has_cka(table):
        raise ValueError("no probing cka rows (probing with cka_reference) in the results table")
    rows = _probing_rows(table, "test", "cka")
    grouped = rows.groupby(_PROBE_STATE_KEYS)["value"]
    frame = grouped.mean().rename("cka").to_frame()
    frame["cka_std"] = grouped.std(ddof=0)
    frame["seeds"] = grouped.size()
    return frame.reset_index()


def has_probe_comparison(table: pd.DataFrame) -> bool:
    """Whether ``table`` holds probing accuracies of the linear probe and of another (the MLP)."""
    return len(probes_in(table)) > 1


def probe_comparison(table: pd.DataFrame, *, split: str = "test") -> pd.DataFrame:
    """Linear vs MLP probe at each encoder state's best layer: accuracy, control accuracy and selectivity.

    For each encoder state (model, fine-tuning), probing task and pooling that every probe saw, and each probe,
    the layer with the best ``split`` accuracy (seeds averaged; the lowest layer on ties) and its numbers; where the run has control
    tasks, also the control accuracy and selectivity of that layer and the best selectivity over layers.

    Returns:
        Columns ``model, finetune_task, finetune_head, probe_task, pooling, probe, layer, accuracy`` and, with
        control rows, ``control_accuracy, selectivity, best_selectivity`` (fractions); rows sorted, linear first.

    Raises:
        ValueError: fewer than two probes in the table (see :func:`has_probe_comparison`).
    """
    probes = probes_in(table)
    if len(probes) < 2:
        raise ValueError(f"the results table holds probing rows of {probes or 'no'} probe(s); need linear and mlp")
    parts = []
    for probe in probes:
        metrics = ["accuracy", "control_accuracy", "selectivity"]
        frame = _per_layer(table, split, metrics, probe).dropna(subset=["accuracy"])
        state = [*FINETUNED_KEYS, "probe_task", "pooling"]
        best = frame.sort_values([*state, "layer"]).loc[lambda f: f.groupby(state)["accuracy"].idxmax()]
        best = best.assign(probe=probe)
        if "selectivity" in frame.columns:
            best = best.merge(frame.groupby(state, as_index=False)["selectivity"].max()
                              .rename(columns={"selectivity": "best_selectivity"}), on=state, how="left")
        parts.append(best)
    result = pd.concat(parts, ignore_index=True)
    # Only encoder states and tasks that every probe saw (a grid may fit the MLP for some models only).
    state = [*FINETUNED_KEYS, "probe_task", "pooling"]
    result = result[result.groupby(state)["probe"].transform("nunique") == len(probes)]
    if result.empty:
        raise ValueError(f"no encoder state and probing task was probed by all of {probes}")
    columns = [*FINETUNED_KEYS, "probe_task", "pooling", "probe", "layer", "accuracy"]
    columns += [c for c in ("control_accuracy", "selectivity", "best_selectivity") if c in result.columns]
    order = {probe: i for i, probe in enumerate(probes)}
    result = result.sort_values([*FINETUNED_KEYS, "probe_task", "pooling", "probe"],
                                key=lambda c: c.map(order) if c.name == "probe" else c, kind="stable")
    return result[columns].reset_index(drop=True)
