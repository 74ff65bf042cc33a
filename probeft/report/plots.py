"""One function per paper figure, drawn from a results table (never computing an experiment).

Each function takes the long results table (see :mod:`probeft.results`; aggregates come from :mod:`probeft.results.analysis`) and returns a matplotlib
``Figure``; a figure whose rows are absent raises ``ValueError`` naming what is missing.
"""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from probeft.results import analysis

POOLING_STYLE = {"mean": "-", "cls": "--"}


def _rows(table: pd.DataFrame, what: str, **equal: object) -> pd.DataFrame:
    mask = np.ones(len(table), dtype=bool)
    for column, value in equal.items():
        mask &= (table[column] == value).to_numpy()
    selected = table[mask]
    if selected.empty:
        raise ValueError(f"no rows for {what} ({', '.join(f'{k}={v!r}' for k, v in equal.items())})")
    return selected


def _grid(n_rows: int, n_cols: int, *, width: float = 3.6, height: float = 2.8) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols, height * n_rows), squeeze=False)
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers, epochs and k are whole numbers
    return fig, axes


def figure1(table: pd.DataFrame, *, split: str = "test", finetune_task: str = "none") -> Figure:
    """Figure 1: layer-wise probing accuracy, mean pooling solid, CLS dashed.

    One panel per probing task, one colour per model; ``finetune_task="none"`` (the paper's Figure 1)
    selects the pre-trained encoders, another task the encoders fine-tuned on it. Where the rows
    carry ``ci_low`` / ``ci_high`` (the test accuracies' bootstrap intervals), they are drawn as
    bands (means over seeds, like the curves).
    """
    rows = _rows(table, "Figure 1", stage="probing", finetune_task=finetune_task, split=split, metric="accuracy")
    bands = [c for c in ("ci_low", "ci_high") if c in rows.columns]
    curves = rows.groupby(["probe_task", "model", "pooling", "layer"], as_index=False)[["value", *bands]].mean()
    tasks, models = sorted(curves["probe_task"].unique()), sorted(curves["model"].unique())
    fig, axes = _grid(1, len(tasks))
    colours = dict(zip(models, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4))
    for ax, task in zip(axes[0], tasks):
        for (model, pooling), curve in curves[curves["probe_task"] == task].groupby(["model", "pooling"]):
            ax.plot(curve["layer"], 100 * curve["value"], POOLING_STYLE.get(pooling, ":"), marker="o", ms=3,
                    color=colours[model], label=f"{model} ({pooling})")
            if len(bands) == 2 and curve[bands].notna().all(axis=None):
                ax.fill_between(curve["layer"], 100 * curve["ci_low"], 100 * curve["ci_high"],
                                color=colours[model], alpha=0.15, lw=0)
        ax.set(title=task, xlabel="layer", ylabel=f"{split} accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def figure_delta(table: pd.DataFrame, *, pooling: str, split: str = "test", baseline_pooling: str | None = None,
                 intervals: pd.DataFrame | None = None) -> Figure:
    """Figures 4 and 5: Delta (fine-tuned minus pre-trained probing accuracy) per layer.

    Rows = models, columns = probing tasks, one line per fine-tuned encoder (task and head; seeds
    averaged). With ``baseline_pooling`` (Figure 4 uses ``"mean"``), a second y-axis shows the
    fine-tuned accuracy minus the pre-trained model's accuracy under that pooling (dotted lines).
    With ``intervals`` (a run's ``delta_intervals.csv``), each line gets its per-layer paired 95%
    bootstrap interval (seeds pooled) as a band.
    """
    delta = analysis.probing_delta(table, split=split)
    delta = _rows(delta, f"Delta with {pooling} pooling", pooling=pooling)
    keys = ["model", "probe_task", "finetune_task", "finetune_head", "layer"]
    per_layer = delta.groupby(keys, as_index=False)[["delta", "finetuned"]].mean()
    models, tasks = sorted(per_layer["model"].unique()), sorted(per_layer["probe_task"].unique())
    baseline = None
    if baseline_pooling:
        pre = _rows(table, "pre-trained baseline", stage="probing", finetune_task="none", split=split,
                    metric="accuracy", pooling=baseline_pooling)
        baseline = pre.groupby(["model", "probe_task", "layer"], as_index=False)["value"].mean()
    fig, axes = _grid(len(models), len(tasks))
    for r, model in enumerate(models):
        for c, task in enumerate(tasks):
            ax = axes[r][c]
            here = per_layer[(per_layer["model"] == model) & (per_layer["probe_task"] == task)]
            twin = ax.twinx() if baseline is not None else None
            for i, ((ft_task, head), curve) in enumerate(here.groupby(["finetune_task", "finetune_head"])):
                colour = f"C{i}"
                ax.plot(curve["layer"], 100 * curve["delta"], "-", marker="o", ms=3, color=colour,
                        label=f"{ft_task} ({head} head)")
                if intervals is not None:
                    band = intervals[(intervals["model"] == model) & (intervals["probe_task"] == task)
                                     & (intervals["finetune_task"] == ft_task) & (intervals["finetune_head"] == head)
                                     & (intervals["pooling"] == pooling) & (intervals["level"] == "layer")
                                     & (intervals["seed"] == -1)].sort_values("layer")
                    ax.fill_between(band["layer"], 100 * band["ci_low"], 100 * band["ci_high"], color=colour,
                                    alpha=0.15, lw=0)
                if twin is not None:
                    ref = baseline[(baseline["model"] == model) & (baseline["probe_task"] == task)]
                    joined = curve.merge(ref, on=["model", "probe_task", "layer"])
                    twin.plot(joined["layer"], 100 * (joined["finetuned"] - joined["value"]), ":", color=colour)
            ax.axhline(0, color="grey", lw=0.8)
            ax.set(title=f"{model} / {task}", xlabel="layer", ylabel=f"Delta {pooling} (points)")
            if twin is not None:
                twin.set_ylabel(f"vs pre-trained {baseline_pooling} (points, dotted)", fontsize=7)
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, title="fine-tuned on", title_fontsize=7)
    fig.tight_layout()
    return fig


def _encoder_state_panels(
    frame: pd.DataFrame,
    draw: Callable[[Axes, pd.DataFrame, str, str, str], None],
    *,
    ylabel: str,
    zero_line: bool = False,
    ylim: tuple[float, float] | None = None,
) -> Figure:
    """Rows = models, columns = probing tasks; one curve per encoder state (task, head) and pooling.

    Pre-trained encoders are black, each fine-tuned (task, head) gets its own colour; ``draw(ax, curve,
    colour, label, pooling)`` draws one curve (rows of one state and pooling, layers ascending).
    """
    models, tasks = sorted(frame["model"].unique()), sorted(frame["probe_task"].unique())
    states = sorted({(t, h) for t, h in zip(frame["finetune_task"], frame["finetune_head"])},
                    key=lambda state: (state[0] != "none", state))
    colours = {state: ("black" if state[0] == "none" else f"C{i}") for i, state in enumerate(states)}
    fig, axes = _grid(len(models), len(tasks))
    for r, model in enumerate(models):
        for c, task in enumerate(tasks):
            ax = axes[r][c]
            here = frame[(frame["model"] == model) & (frame["probe_task"] == task)]
            for (ft_task, head, pooling), curve in here.groupby(["finetune_task", "finetune_head", "pooling"]):
                label = "pre-trained" if ft_task == "none" else f"{ft_task} ({head} head)"
                draw(ax, curve, colours[(ft_task, head)], f"{label}, {pooling}", pooling)
            if zero_line:
                ax.axhline(0, color="grey", lw=0.8)
            ax.set(title=f"{model} / {task}", xlabel="layer", ylabel=ylabel)
            if ylim is not None:
                ax.set_ylim(*ylim)
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=6, loc="best")
    fig.tight_layout()
    return fig


def figure_selectivity(table: pd.DataFrame, *, split: str = "test") -> Figure:
    """Selectivity (probing accuracy minus control-task accuracy, points) per layer.

    Rows = models, columns = probing tasks; one colour per encoder state (pre-trained in black, each
    fine-tuned encoder, task and head, its own colour), mean pooling solid, CLS dashed; seeds
    averaged (:func:`probeft.results.analysis.selectivity_by_layer`).
    """
    def draw(ax: Axes, curve: pd.DataFrame, colour: str, label: str, pooling: str) -> None:
        ax.plot(curve["layer"], 100 * curve["selectivity"], POOLING_STYLE.get(pooling, ":"), marker="o", ms=3,
                color=colour, label=label)

    frame = analysis.selectivity_by_layer(table, split=split)
    return _encoder_state_panels(frame, draw, ylabel=f"{split} selectivity (points)", zero_line=True)


def figure_cka(table: pd.DataFrame) -> Figure:
    """Linear CKA of fine-tuned to pre-trained test features per layer (1 = the same up to rotation and scale).

    Rows = models, columns = probing tasks; one colour per fine-tuned encoder (task and head), mean
    pooling solid, CLS dashed; seeds averaged, with a band of +- one standard deviation over seeds
    where there are several (:func:`probeft.results.analysis.cka_by_layer`).
    """
    def draw(ax: Axes, curve: pd.DataFrame, colour: str, label: str, pooling: str) -> None:
        ax.plot(curve["layer"], curve["cka"], POOLING_STYLE.get(pooling, ":"), marker="o", ms=3, color=colour,
                label=label)
        if (curve["seeds"] > 1).any():
            ax.fill_between(curve["layer"], curve["cka"] - curve["cka_std"], curve["cka"] + curve["cka_std"],
                            color=colour, alpha=0.15, lw=0)

    return _encoder_state_panels(analysis.cka_by_layer(table), draw, ylabel="CKA to pre-trained", ylim=(-0.02, 1.02))


def figure2(table: pd.DataFrame, *, position: str = "first") -> Figure:
    """Figure 2: (a) entropy of a token's attention per layer; (b) EMD to the pre-trained attention.

    One line per model state (pre-trained, and fine-tuned with each head); ``position`` selects the
    query token (``"first"`` as in the paper).
    """
    rows = _rows(table, "Figure 2", stage="attention")
    rows = rows[rows["position"].astype(str) == str(position)]
    if rows.empty:
        raise ValueError(f"no attention rows for position={position!r}")
    models = sorted(rows["model"].unique())
    fig, axes = _grid(len(models), 2, width=5.0)
    for r, model in enumerate(models):
        for c, metric in enumerate(("entropy", "emd")):
            ax = axes[r][c]
            part = rows[(rows["model"] == model) & (rows["metric"] == metric)]
            for (ft_task, head), curve in part.groupby(["finetune_task", "finetune_head"]):
                curve = curve.groupby("layer", as_index=False)["value"].mean()
                label = "pre-trained" if ft_task == "none" else f"{ft_task} ({head} head)"
                ax.plot(curve["layer"], curve["value"], marker="o", ms=3, label=label)
            panel = "(a) entropy (nats)" if metric == "entropy" else "(b) EMD to pre-trained (positions)"
            ax.set(title=f"{model}: {panel}", xlabel="layer")
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def figure3(table: pd.DataFrame) -> Figure:
    """Figure 3: MLM perplexity (a/b) per fine-tuning epoch, mean +- std over seeds; (c/d) vs layers replaced.

    Rows = models; columns = for each fine-tuning task, the epoch curve then the replacement curve.
    """
    rows = _rows(table, "Figure 3", stage="perplexity", metric="perplexity")
    models, tasks = sorted(rows["model"].unique()), sorted(t for t in rows["finetune_task"].unique() if t != "none")
    if not tasks:
        raise ValueError("Figure 3 needs perplexity rows of fine-tuned models")
    fig, axes = _grid(len(models), 2 * len(tasks))
    for r, model in enumerate(models):
        for t, task in enumerate(tasks):
            part = rows[(rows["model"] == model) & (rows["finetune_task"] == task)]
            by_epoch = part[part["k_replaced"] == -1].groupby("epoch")["value"].agg(["mean", "std"]).fillna(0.0)
            by_k = part[part["k_replaced"] >= 0].groupby("k_replaced")["value"].agg(["mean", "std"]).fillna(0.0)
            for ax, curve, xlabel in ((axes[r][2 * t], by_epoch, "fine-tuning epoch (0 = pre-trained)"),
                                      (axes[r][2 * t + 1], by_k, "top layers replaced by pre-trained")):
                ax.errorbar(curve.index, curve["mean"], yerr=curve["std"], marker="o", ms=3, capsize=3)
                ax.set(title=f"{model} / {task}", xlabel=xlabel, ylabel="MLM perplexity")
                ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def finetune_curves(table: pd.DataFrame) -> Figure:
    """Dev score per fine-tuning epoch, one line per task metric (the fine-tuning notebook's plot).

    Args:
        table: result rows of one fine-tuning run (``stage == "finetune"``, columns ``epoch``,
            ``metric``, ``value``; the title comes from ``model``, ``finetune_task``, ``finetune_head``).

    Returns:
        A small figure whose x ticks are the epochs.

    Raises:
        ValueError: no fine-tuning rows.
    """
    rows = _rows(table, "the fine-tuning curves", stage="finetune")
    per_epoch = rows.pivot_table(index="epoch", columns="metric", values="value")  # (epochs, metrics)
    fig, ax = plt.subplots(figsize=(5, 3))
    for metric in per_epoch.columns:
        ax.plot(per_epoch.index, per_epoch[metric], marker="o", label=metric)
    first = rows.iloc[0]
    ax.set(xlabel="epoch", ylabel="dev score",
           title=f"{first['model']} on {first['finetune_task']} ({first['finetune_head']} head)")
    ax.set_xticks(per_epoch.index)
    ax.legend()
    fig.tight_layout()
    return fig
