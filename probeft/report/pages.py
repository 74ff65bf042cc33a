"""Presentation of results for the book and the notebooks: formatted tables and summary text.

The numbers come from :mod:`probeft.results.analysis`; this module only lays them out (percent strings,
"ours (paper)" cells, one-line summaries) and words the note a page shows for what a run lacks.

This module imports only :mod:`probeft.results.analysis` and :mod:`probeft.core.names` from probeft.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import pandas as pd

from probeft.core.names import FITTED_HEAD_NOTE, MLM_HEAD_PRETRAINED, NO_FINETUNE
from probeft.results import analysis

__all__ = [
    "attention_group_table",
    "attention_summary",
    "best_layers_table",
    "cka_layer_table",
    "claims_checks_table",
    "compression_table",
    "config_table",
    "delta_marker_legend",
    "delta_table",
    "encoder_label",
    "findings_table",
    "finetune_epochs_table",
    "not_in_run",
    "paper_delta_note",
    "paper_delta_table",
    "perplexity_summary",
    "perplexity_table",
    "run_summary",
    "selectivity_summary",
    "selectivity_table",
    "table1",
]


def not_in_run(what: str) -> str:
    """The note a book page shows instead of a table or figure whose rows the run does not have.

    Args:
        what: what is missing, e.g. ``"a fine-tuning stage"``.

    Returns:
        E.g. ``"Not in this run: a fine-tuning stage."``.
    """
    return f"Not in this run: {what}."


def table1(table: pd.DataFrame, metrics: Mapping[str, Sequence[str]], paper: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """Table 1 layout: one row per (model, head), one column per task, "ours (paper)" in percent.

    Args:
        table: results with fine-tuning rows.
        metrics: task -> metric names shown (joined with " / ", e.g. SQuAD EM / F1).
        paper: model -> task -> the paper's number as text (models absent there show "-").

    Returns:
        A DataFrame of strings indexed by ``model`` and ``head``, e.g. ``"55.0 (59.5)"``.
    """
    summary = analysis.finetune_summary(table)
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


MARKER = "*"
Q_LEVEL = 0.05  # a Delta is marked when its Benjamini-Hochberg q-value is below this


def delta_table(
    table: pd.DataFrame, *, pooling: str, split: str = "test", intervals: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Tables 2 / 5 as shown: :func:`probeft.results.analysis.delta_group_table` with every Delta as ``"%.2f"``.

    Formatting here (rather than leaving it to pandas' display) makes the page show exactly the
    analysis' numbers, whatever the other values in a column are.

    Args:
        table: the results table.
        pooling: ``"cls"`` (Table 2) or ``"mean"`` (Table 5).
        split: the split compared.
        intervals: a run's ``delta_intervals.csv`` (:mod:`probeft.verdicts.delta_intervals`); when given, a
            Delta whose Benjamini-Hochberg q-value (layer group, seeds pooled; the family of every
            pooled layer-group test of the run) is below :data:`Q_LEVEL` gets :data:`MARKER` after its number.

    Returns:
        Strings, rows ``(model, finetune_task, finetune_head)``, columns ``(probe_task, layer_group)``;
        ``"-"`` where a fine-tuned encoder was not probed on a task.
    """
    numbers = analysis.delta_group_table(table, pooling=pooling, split=split)
    marked: set[tuple[str, ...]] = set()
    if intervals is not None:
        groups = intervals[(intervals["level"] == "layer_group") & (intervals["seed"] == -1)
                           & (intervals["pooling"] == pooling)]
        excludes = groups[groups["q_value"] < Q_LEVEL]
        keys = ["model", "finetune_task", "finetune_head", "probe_task", "layer_group"]
        marked = {tuple(str(v) for v in key) for key in excludes[keys].itertuples(index=False)}
    shown = numbers.copy().astype(object)
    for row in numbers.index:
        for column in numbers.columns:
            value = numbers.loc[row, column]
            text = "-" if pd.isna(value) else f"{value:.2f}"
            if (*row, *column) in marked and not pd.isna(value):
                text += MARKER
            shown.loc[row, column] = text
    return shown


def paper_delta_table(table: pd.DataFrame, paper_cells: Mapping[tuple[str, str, str, str, str], float],
                      paper_models: Sequence[str], *, split: str = "test",
                      finetune_tasks: Sequence[str] | None = None,
                      probe_tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """The run's layer-group Deltas beside the paper's Tables 2 and 5, as shown.

    Numbers from :func:`probeft.results.analysis.delta_vs_paper`, as ``"%.2f"`` points; ``"-"`` for a
    paper cell not transcribed. ``signs agree`` reads e.g. ``"2/3"`` (paper models whose Delta has the
    run's sign, of those transcribed), ``"-"`` when none is.

    Args:
        finetune_tasks, probe_tasks: only rows of these tasks (the paper's); None: every row of the run.

    Returns:
        Rows ``(model, finetune_task, finetune_head, probe_task, pooling, layer_group)``; columns ``ours``,
        one per paper model, ``signs agree``.
    """
    compared = analysis.delta_vs_paper(table, paper_cells, paper_models, split=split)
    if finetune_tasks is not None:
        compared = compared[compared["finetune_task"].isin(finetune_tasks)]
    if probe_tasks is not None:
        compared = compared[compared["probe_task"].isin(probe_tasks)]
    keys = [*analysis.FINETUNED_KEYS, "probe_task", "pooling", "layer_group"]
    shown = pd.DataFrame({"ours": [f"{v:.2f}" for v in compared["delta"]]}, index=pd.MultiIndex.from_frame(compared[keys]))
    for model in paper_models:
        shown[model] = ["-" if pd.isna(v) else f"{v:.2f}" for v in compared[model]]
    shown["signs agree"] = ["-" if n == 0 else f"{a}/{n}"
                            for a, n in zip(compared["signs_agree"], compared["paper_cells"], strict=True)]
    return shown


def paper_delta_note(paper_cells: Mapping[tuple[str, str, str, str, str], float], total_cells: int,
                     unreadable: str) -> str:
    """The sentence under the paper comparison: how many of the paper's cells it holds, and why not all."""
    if not paper_cells:
        return unreadable
    text = (f"{len(paper_cells)} of the paper's {total_cells} cells are transcribed; '-' marks one that is "
            "not (unreadable). The run's lower / upper layer group is set against the paper's layers 0-6 / 7-12.")
    return text if len(paper_cells) == total_cells else f"{text} {unreadable}"


def delta_marker_legend(intervals: pd.DataFrame | None) -> str:
    """The sentence under Tables 2 / 5 that explains :data:`MARKER` (or why there is none)."""
    if intervals is None:
        return not_in_run("per-sentence probe predictions, so no intervals of the Deltas")
    starred = intervals[(intervals["level"] == "layer_group") & (intervals["seed"] == -1)]  # the rows that get stars
    known = starred["interval_levels"].dropna() if "interval_levels" in starred.columns else pd.Series([], dtype=str)
    levels = sorted({str(level) for level in known}) or ["sentences"]
    return (f"{MARKER}: Benjamini-Hochberg q < {Q_LEVEL:g} for this Delta (bootstrap p-value, resampling "
            f"{' / '.join(level.replace('+', ', ') for level in levels)}; family: every layer-group Delta of the "
            "run, seeds pooled).")


def _attention_group_means(table: pd.DataFrame, position: str
                           ) -> Iterator[tuple[str, str, str, str, dict[str, float]]]:
    """``(model, finetune_task, finetune_head, metric, {"layers a-b": mean})`` per attention curve.

    Raises:
        ValueError: no attention rows for ``position``.
    """
    rows = table[(table["stage"] == "attention") & (table["position"].astype(str) == position)]
    if rows.empty:
        raise ValueError(f"no attention rows for position={position!r}")
    for model, part in rows.groupby("model"):
        first = int(part["layer"].min())  # attention starts at layer 1 (no attention in the embeddings)
        groups = {f"layers {max(low, first)}-{high}": (low, high)
                  for low, high in analysis.layer_groups(int(part["layer"].max())).values()}
        for (ft_task, head, metric), curve in part.groupby(["finetune_task", "finetune_head", "metric"]):
            yield model, ft_task, head, metric, {
                name: curve[(curve["layer"] >= low) & (curve["layer"] <= high)]["value"].mean()
                for name, (low, high) in groups.items()}


def attention_summary(table: pd.DataFrame, *, position: str = "first") -> str:
    """One line per model state on the attention entropy / EMD means in the lower vs upper layers.

    Raises:
        ValueError: no attention rows for ``position``.
    """
    lines = []
    for model, ft_task, head, metric, means in _attention_group_means(table, position):
        label = "pre-trained" if ft_task == NO_FINETUNE else f"fine-tuned on {ft_task} ({head} head)"
        lines.append(f"{model}, {label}, mean {metric}: "
                     + "; ".join(f"{name}: {value:.3f}" for name, value in means.items()))
    return "\n".join(lines)


def _perplexity_groups(table: pd.DataFrame) -> Iterator[tuple[str, str, str, pd.DataFrame]]:
    """(model, fine-tuning task, MLM head, rows) of the fine-tuned perplexity rows (:func:`analysis.perplexity_rows`)."""
    rows = analysis.perplexity_rows(table)
    if rows.empty:
        raise ValueError("no perplexity rows in the results table")
    tuned = rows[rows["finetune_task"] != NO_FINETUNE]
    for (model, task, head), part in tuned.groupby(["model", "finetune_task", "mlm_head"]):
        yield str(model), str(task), str(head), part


def _replacement_means(part: pd.DataFrame, side: str) -> pd.Series:
    """Mean perplexity over seeds per k with the ``side`` layers replaced."""
    replaced = part[(part["k_replaced"] >= 0) & (part["replaced_layers"] == side)]
    return replaced.groupby("k_replaced")["value"].mean()


def perplexity_summary(table: pd.DataFrame) -> str:
    """Perplexity before and after fine-tuning, and with the top (or bottom) layers replaced, per model and task.

    A fitted masked-LM head is named on its line with :data:`~probeft.core.names.FITTED_HEAD_NOTE`.

    Raises:
        ValueError: no perplexity rows.
    """
    lines = []
    for model, task, head, part in _perplexity_groups(table):
        epochs = part[part["k_replaced"] == -1].groupby("epoch")["value"].mean()
        label = model if head == MLM_HEAD_PRETRAINED else f"{model} ({head} MLM head: {FITTED_HEAD_NOTE})"
        text = f"{label} / {task}: pre-trained {epochs.get(0, float('nan')):.2f}"
        if len(epochs) > 1:
            text += f", after epoch {epochs.index.max()} {epochs.iloc[-1]:.2f}"
        for side in ("top", "bottom"):
            replaced = _replacement_means(part, side)
            if not replaced.empty:
                text += f"; {side} layers replaced: " + ", ".join(f"k={int(k)}: {v:.2f}" for k, v in replaced.items())
        lines.append(text)
    return "\n".join(lines)


def encoder_label(finetune_task: str, finetune_head: str) -> str:
    """``"pre-trained"`` or ``"<task> (<head>)"``: how pages name an encoder state."""
    return "pre-trained" if finetune_task == NO_FINETUNE else f"{finetune_task} ({finetune_head})"


def compression_table(table: pd.DataFrame) -> pd.DataFrame:
    """MDL compression per layer as shown: rows ``(model, encoder, probe_task, pooling)``, one column per layer.

    Values are :func:`probeft.results.analysis.compression_by_layer` (seeds averaged) as ``"%.2f"``;
    pre-trained encoders first. The last column, ``noise floor``, is the compression the same procedure gives
    Gaussian-noise features of the task's ``(N, D)`` (:func:`probeft.results.analysis.noise_floor_by_task`;
    ``"-"`` for a run without it).
    """
    frame = analysis.compression_by_layer(table)
    frame["encoder"] = [encoder_label(t, h) for t, h in zip(frame["finetune_task"], frame["finetune_head"])]
    frame["order"] = (frame["finetune_task"] != NO_FINETUNE).astype(int)
    pivot = frame.pivot_table(index=["model", "order", "encoder", "probe_task", "pooling"], columns="layer",
                              values="compression")
    floor_of = {(model, encoder_label(ft, head), task): value
                for model, ft, head, task, value in analysis.noise_floor_by_task(table).itertuples(index=False)}
    pivot = pivot.droplevel("order")
    shown = pivot.map(lambda v: "-" if pd.isna(v) else f"{v:.2f}")
    shown["noise floor"] = [_number(floor_of.get((model, encoder, task), float("nan")), 2)
                            for model, encoder, task, _ in shown.index]
    return shown


def run_summary(record: Mapping, provenance: Mapping[str, Mapping]) -> str:
    """One paragraph on where a run's numbers come from: config, cells, wall time, device, code and packages.

    Args:
        record: the run's ``grid.json`` (``{"config": {...}, ...}``).
        provenance: cell name -> that cell's ``provenance.json`` (what ``probeft book`` / ``export`` collect).
    """
    config = record.get("config", {})
    stages: dict[str, int] = {}
    for name in provenance:
        stages[name.split("__", 1)[0]] = stages.get(name.split("__", 1)[0], 0) + 1
    hours = sum(float(p.get("wall_time_s", 0.0)) for p in provenance.values()) / 3600
    devices = sorted({str(p.get("device", "?")) for p in provenance.values()})
    commits = sorted({str(p.get("git_commit", "?"))[:10] for p in provenance.values()})
    packages = next(iter(provenance.values()), {}).get("packages", {})
    cells = ", ".join(f"{n} {stage}" for stage, n in stages.items())
    return (f"Config {config.get('name', '?')!r}: {len(provenance)} cells ({cells}), {hours:.2f} h of cell wall time "
            f"on {', '.join(devices)}; probeft commit {', '.join(commits)}; torch {packages.get('torch', '?')}, "
            f"transformers {packages.get('transformers', '?')}.")


def cka_layer_table(table: pd.DataFrame) -> pd.DataFrame:
    """Linear CKA to the pre-trained encoder as shown: rows (model, encoder, task, pooling), columns layers.

    Seeds averaged (:func:`probeft.results.analysis.cka_by_layer`), three decimals; ``-`` where a layer has no
    CKA (constant features, e.g. the CLS embedding at layer 0).
    """
    frame = analysis.cka_by_layer(table)
    frame["encoder"] = [encoder_label(t, h) for t, h in zip(frame["finetune_task"], frame["finetune_head"])]
    pivot = frame.pivot_table(index=["model", "encoder", "probe_task", "pooling"], columns="layer", values="cka")
    return pivot.map(lambda v: "-" if pd.isna(v) else f"{v:.3f}")


def selectivity_summary(table: pd.DataFrame, *, split: str = "test") -> str:
    """One line per model, encoder state, probing task and pooling: selectivity at its best layer, in points."""
    frame = analysis.selectivity_by_layer(table, split=split)
    lines = []
    keys = ["model", "finetune_task", "finetune_head", "probe_task", "pooling"]
    for (model, ft, head, task, pooling), part in frame.groupby(keys):
        best = part.loc[part["selectivity"].idxmax()]
        lines.append(f"{model}, {encoder_label(ft, head)}, {task} ({pooling}): best selectivity "
                     f"{100 * best['selectivity']:.1f} points at layer {int(best['layer'])} "
                     f"(accuracy {100 * best['accuracy']:.1f}, control {100 * best['control_accuracy']:.1f})")
    return "\n".join(lines)


def _claim_value(value: float, unit: str) -> str:
    """A check's number as shown: accuracies in points (1 decimal), others to 2 decimals."""
    if pd.isna(value):
        return "-"
    return f"{100 * value:+.1f}" if unit == "accuracy" else f"{value:+.2f}"


def _claimed(direction: str, effect: float, unit: str) -> str:
    """What a check claims, as shown: ``> 0 (effect +2.0)``, ``<= +2.0`` (a margin), ``> 0``."""
    if direction in (">", "<"):
        if pd.isna(effect) or effect == 0:
            return f"{direction} 0"
        return f"{direction} 0 (effect {_claim_value(effect if direction == '>' else -effect, unit)})"
    bound = 0.0 if pd.isna(effect) else (effect if direction == "<=" else -effect)
    return f"{direction} {_claim_value(bound, unit)}"


def claims_checks_table(checks: pd.DataFrame) -> pd.DataFrame:
    """Every computable check of :func:`probeft.verdicts.claims.evaluate_claims` as shown, one row each.

    Columns ``claim, verdict, model, scope, quantity, claimed, estimate, 95% interval, MDE, reason``;
    accuracy statistics in points; ``claimed`` states the direction with the effect size, or the margin.
    """
    shown = checks[checks["verdict"] != "not computable"].copy()
    shown["claimed"] = [_claimed(d, e, u) for d, e, u in zip(shown["direction"], shown["effect"], shown["unit"])]
    shown["95% interval"] = [
        "none" if pd.isna(low) else f"[{_claim_value(low, unit)}, {_claim_value(high, unit)}]"
        for low, high, unit in zip(shown["ci_low"], shown["ci_high"], shown["unit"])
    ]
    shown["MDE"] = [_claim_value(v, u).lstrip("+") for v, u in zip(shown["mde"], shown["unit"])]
    shown["estimate"] = [_claim_value(v, u) for v, u in zip(shown["estimate"], shown["unit"])]
    # the verdict next to the claim: on a page of this width the last columns need scrolling
    columns = ["claim", "verdict", "model", "scope", "quantity", "claimed", "estimate", "95% interval", "MDE", "reason"]
    return shown[columns].reset_index(drop=True)


def _number(value: float, digits: int) -> str:
    """A number as a table cell shows it: fixed decimals, ``-`` where there is none (never ``NaN``)."""
    return "-" if pd.isna(value) else f"{value:.{digits}f}"


def finetune_epochs_table(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`probeft.results.analysis.finetune_by_epoch` as shown: one decimal, ``-`` for an epoch a run lacks."""
    return analysis.finetune_by_epoch(table).map(lambda v: _number(v, 1))


def best_layers_table(table: pd.DataFrame, *, split: str = "test") -> pd.DataFrame:
    """:func:`probeft.results.analysis.best_layers` as shown: whole layer numbers, accuracy to one decimal.

    Returns:
        Rows ``(model, probe_task)``, columns ``(pooling, "best layer" | "accuracy (%)")``.
    """
    best = analysis.best_layers(table, split=split)
    shown = pd.DataFrame(index=best.index)
    for pooling in best.columns.get_level_values("pooling").unique():
        # The pivot's mean turns the integer layer into a float (2.0); a layer is a whole number.
        shown[(pooling, "best layer")] = best[("layer", pooling)].map(lambda v: "-" if pd.isna(v) else str(int(v)))
        shown[(pooling, "accuracy (%)")] = best[("accuracy", pooling)].map(lambda v: _number(v, 1))
    shown.columns = pd.MultiIndex.from_tuples(shown.columns, names=["pooling", ""])
    return shown


def attention_group_table(table: pd.DataFrame, *, position: str = "first") -> pd.DataFrame:
    """The numbers of :func:`attention_summary` as a table: mean entropy / EMD per layer group.

    Returns:
        Rows ``(model, encoder, metric)``, one column per layer group (``"layers 1-2"``), three decimals.

    Raises:
        ValueError: no attention rows for ``position``.
    """
    records = [{"model": model, "encoder": encoder_label(ft_task, head), "metric": metric,
                **{name: _number(value, 3) for name, value in means.items()}}
               for model, ft_task, head, metric, means in _attention_group_means(table, position)]
    return pd.DataFrame(records).set_index(["model", "encoder", "metric"]).fillna("-")


def perplexity_table(table: pd.DataFrame) -> pd.DataFrame:
    """The numbers of :func:`perplexity_summary` as a table, two decimals.

    Returns:
        Rows ``(model, finetune_task)``; columns ``pre-trained``, ``epochs`` and ``after the last epoch`` (the
        number of fine-tuning epochs and the perplexity after them), ``top K replaced`` and, where
        the run restored the bottom layers too, ``bottom K replaced``. When any row used a fitted masked-LM head,
        a first column ``MLM head`` says which head each row used (``fitted (analogue)`` or ``pre-trained``).

    Raises:
        ValueError: no perplexity rows.
    """
    records = []
    for model, task, head, part in _perplexity_groups(table):
        epochs = part[part["k_replaced"] == -1].groupby("epoch")["value"].mean()
        record = {"model": model, "finetune_task": task,
                  "MLM head": "pre-trained" if head == MLM_HEAD_PRETRAINED else f"{head} (analogue)",
                  "pre-trained": _number(epochs.get(0, float("nan")), 2)}
        if len(epochs) > 1:  # one column for every row: tasks fine-tune for different numbers of epochs
            record["epochs"] = str(int(epochs.index.max()))
            record["after the last epoch"] = _number(epochs.iloc[-1], 2)
        for side in ("top", "bottom"):
            for k, value in _replacement_means(part, side).items():
                record[f"{side} {int(k)} replaced"] = _number(value, 2)
        records.append(record)
    shown = pd.DataFrame(records)
    if (shown["MLM head"] == "pre-trained").all():
        shown = shown.drop(columns="MLM head")  # the paper's setting: nothing to tell apart
    return shown.set_index(["model", "finetune_task"]).fillna("-")


def _optional_points(row: pd.Series, column: str) -> str:
    """``row[column]`` in points with one decimal, ``"-"`` where the run has no such rows."""
    value = row.get(column, float("nan"))
    return "-" if pd.isna(value) else _number(100 * value, 1)


def selectivity_table(table: pd.DataFrame, *, split: str = "test") -> pd.DataFrame:
    """The numbers of :func:`selectivity_summary` as a table: selectivity at its best layer, in points.

    Returns:
        Rows ``(model, encoder, probe_task, pooling)``; columns ``best layer`` (whole number),
        ``selectivity``, ``accuracy``, ``control accuracy``, ``control gain`` (control accuracy minus the
        control labels' majority rate) and ``selectivity vs majority`` (the task's gain over its majority rate
        minus the control gain); points, one decimal, ``"-"`` for a run without majority-rate rows.
    """
    frame = analysis.selectivity_by_layer(table, split=split)
    records = []
    keys = ["model", "finetune_task", "finetune_head", "probe_task", "pooling"]
    for (model, ft, head, task, pooling), part in frame.groupby(keys):
        best = part.loc[part["selectivity"].idxmax()]
        records.append({"model": model, "encoder": encoder_label(ft, head), "probe_task": task, "pooling": pooling,
                        "best layer": str(int(best["layer"])),
                        "selectivity": _number(100 * best["selectivity"], 1),
                        "accuracy": _number(100 * best["accuracy"], 1),
                        "control accuracy": _number(100 * best["control_accuracy"], 1),
                        "control gain": _optional_points(best, "control_gain"),
                        "selectivity vs majority": _optional_points(best, "selectivity_gain")})
    return pd.DataFrame(records).set_index(["model", "encoder", "probe_task", "pooling"])


def probe_comparison_table(table: pd.DataFrame, *, split: str = "test") -> pd.DataFrame:
    """Linear vs MLP probe side by side (:func:`probeft.results.analysis.probe_comparison`), in points.

    Returns:
        Rows ``(model, encoder, probe_task, pooling)``; per probe (``linear``, ``mlp``) the columns
        ``<probe> layer`` (best-accuracy layer), ``<probe> accuracy`` and, with control tasks,
        ``<probe> selectivity`` (at that layer) and ``<probe> best selectivity`` (over layers); one decimal.
    """
    frame = analysis.probe_comparison(table, split=split)
    quantities = {"layer": "layer", "accuracy": "accuracy", "selectivity": "selectivity",
                  "best_selectivity": "best selectivity"}
    present = [q for q in quantities if q in frame.columns]
    records: dict[tuple[str, str, str, str], dict[str, str]] = {}
    for row in frame.itertuples(index=False):
        key = (row.model, encoder_label(row.finetune_task, row.finetune_head), row.probe_task, row.pooling)
        record = records.setdefault(key, {})
        for quantity in present:
            value = getattr(row, quantity)
            text = str(int(value)) if quantity == "layer" else _number(100 * value, 1)
            record[f"{row.probe} {quantities[quantity]}"] = text
    probes = list(dict.fromkeys(frame["probe"]))
    columns = [f"{probe} {quantities[q]}" for q in present for probe in probes]
    shown = pd.DataFrame.from_dict(records, orient="index").reindex(columns=columns).fillna("-")
    shown.index = pd.MultiIndex.from_tuples(list(shown.index), names=["model", "encoder", "probe_task", "pooling"])
    return shown


def config_table(record: Mapping) -> pd.DataFrame:
    """A run's resolved config (``grid.json``'s ``config``) as ``setting -> value`` rows, nested keys dotted."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, Mapping) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            flat[prefix] = ", ".join(str(v.get("name", v)) if v.get("name") == v.get("spec") or "spec" not in v
                                     else f"{v['name']} ({v['spec']})" for v in value)
        else:
            flat[prefix] = ", ".join(map(str, value)) if isinstance(value, list) else str(value)

    walk("", dict(record.get("config", {})))
    return pd.DataFrame({"value": flat}).rename_axis("setting")


SOURCE_KINDS = {"models": "model", "datasets": "hub data set", "senteval": "SentEval download"}


def sources_table(provenance: Mapping[str, Mapping]) -> pd.DataFrame:
    """What each cell read, by version: one row per cell and source.

    Models carry their hub commit or their weight files' sha256 (first 16 hex), hub data sets their commit,
    SentEval downloads their git blob sha1 (a provenance's ``sources``); data files their sha256 (``data_files``).
    Cells that ran before ``sources`` was recorded show their data files only.

    Args:
        provenance: cell name -> its ``provenance.json``.

    Returns:
        Columns ``cell, kind, source, version``.
    """
    rows = []
    for cell, record in provenance.items():
        for key, version in dict(record.get("sources") or {}).items():
            kind, _, name = key.partition(":")
            rows.append({"cell": cell, "kind": SOURCE_KINDS.get(kind, kind), "source": name, "version": version})
        for path, digest in dict(record.get("data_files") or {}).items():
            rows.append({"cell": cell, "kind": "data file", "source": path, "version": f"sha256 {digest[:16]}"})
    return pd.DataFrame(rows, columns=["cell", "kind", "source", "version"])


def findings_table(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`probeft.verdicts.claims.summarise` as shown: the verdict next to the claim, the finding's wording last.

    Args:
        summary: one row per finding (:data:`probeft.verdicts.claims.SUMMARY_COLUMNS`).

    Returns:
        The same rows indexed by ``claim``, columns ``verdict, checks, MDE, reason, finding``; ``checks``
        counts them per verdict (supported / contradicted / inconclusive).
    """
    shown = summary.set_index("claim")
    counts = [f"{s} / {c} / {i}" for s, c, i in zip(shown["supported"], shown["contradicted"], shown["inconclusive"])]
    return pd.DataFrame({"verdict": shown["verdict"], "checks (sup. / contra. / inconcl.)": counts,
                         "MDE (largest)": shown["mde"], "reason": shown["reason"], "finding": shown["finding"]},
                        index=shown.index)


_STAGE_TITLES = {"finetune": "Fine-tuning", "probing": "Probing", "attention": "Attention", "perplexity": "Perplexity",
                 "mlm_head": "Masked-LM head fitted"}


def notebook_title(cell_name: str) -> str:
    """The sidebar title of an executed grid notebook: stage, model, encoder state, task and seed.

    Args:
        cell_name: the grid cell's name, e.g. ``"probing__model-tiny-bert__ft-cola-cls__seed-0"``.

    Returns:
        E.g. ``"Probing: tiny-bert fine-tuned on cola (cls), seed 0"``; the name itself when it is not a
        grid cell's.
    """
    stage, *parts = cell_name.split("__")
    fields = dict(part.split("-", 1) for part in parts if "-" in part)
    if stage not in _STAGE_TITLES or "model" not in fields:
        return cell_name
    words = [fields["model"]]
    if "ft" in fields:
        words.append("pre-trained" if fields["ft"] == NO_FINETUNE else f"fine-tuned on {fields['ft'].replace('-', ' (', 1)}"
                     + (")" if "-" in fields["ft"] else ""))
    if "task" in fields:
        words.append(f"({fields['task']} sentences)" if stage == "attention" else f"on {fields['task']}")
    if "head" in fields:
        words.append(f"({fields['head']} head)")
    text = " ".join(words)
    return f"{_STAGE_TITLES[stage]}: {text}" + (f", seed {fields['seed']}" if "seed" in fields else "")


def retitle_notebook(notebook: dict, title: str) -> dict:
    """``notebook`` (nbformat JSON) with ``title`` as its first heading; the notebook's own heading follows in italics.

    Jupyter-book names a page after its first heading, so 33 executed notebooks would otherwise show 4 titles.
    """
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if source.startswith("# "):
            first, _, rest = source.partition("\n")
            cell["source"] = f"# {title}\n\n*{first[2:].strip()}*\n{rest}"
            return notebook
    notebook.setdefault("cells", []).insert(0, {"cell_type": "markdown", "metadata": {}, "source": f"# {title}\n"})
    return notebook
