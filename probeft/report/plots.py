"""One function per paper figure, drawn from a results table (never computing an experiment).

Each function takes the long results table (see :mod:`probeft.results`; aggregates come from :mod:`probeft.results.analysis`) and returns a matplotlib
``Figure``; a figure whose rows are absent raises ``ValueError`` naming what is missing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from probeft.core.names import MLM_HEAD_PRETRAINED
from probeft.results import analysis

POOLING_STYLE = {"mean": "-", "cls": "--"}
# One colour per pooling in Figure 1 (the paper's: mean and CLS side by side in each panel).
POOLING_COLOUR = {"mean": "C0", "cls": "C1"}
# Figures are drawn at the width the book's text column shows them (about 800 px at 100 dpi), so a
# 9-point font reads as 9 points on the page; the height grows with the number of panel rows.
PAGE_WIDTH = 8.0
PANEL_HEIGHT = 2.3
FONT_SIZE = 9


def _rows(table: pd.DataFrame, what: str, **equal: object) -> pd.DataFrame:
    mask = np.ones(len(table), dtype=bool)
    for column, value in equal.items():
        mask &= (table[column] == value).to_numpy()
    selected = table[mask]
    if selected.empty:
        raise ValueError(f"no rows for {what} ({', '.join(f'{k}={v!r}' for k, v in equal.items())})")
    return selected


PAGE_STYLE = {"font.size": FONT_SIZE, "axes.titlesize": FONT_SIZE, "axes.labelsize": FONT_SIZE,
              "legend.fontsize": FONT_SIZE - 1, "xtick.labelsize": FONT_SIZE - 1, "ytick.labelsize": FONT_SIZE - 1}


def _page_style(draw: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw a figure under :data:`PAGE_STYLE` (titles and labels read the font sizes when they are set)."""
    @functools.wraps(draw)
    def styled(*args: object, **kwargs: object) -> Figure:
        with plt.rc_context(PAGE_STYLE):
            fig = draw(*args, **kwargs)
            interactive = matplotlib.is_interactive()
        # rc_context restores "interactive" too, undoing the notebook backend switching it on when pyplot
        # is first used: later figures of the kernel would then never be shown.
        matplotlib.interactive(interactive)
        return fig
    return styled


def _grid(n_rows: int, n_cols: int, *, height: float = PANEL_HEIGHT) -> tuple[Figure, np.ndarray]:
    """Small multiples at page width; constrained layout keeps a legend placed ``outside`` off the data."""
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(PAGE_WIDTH, height * n_rows + 0.6), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers, epochs and k are whole numbers
        ax.tick_params(labelsize=FONT_SIZE - 1)
    return fig, axes


def _legend_below(fig: Figure, axes: np.ndarray, *, title: str | None = None, ncol: int = 4) -> None:
    """One legend for the whole figure, under the panels (never on the data); entries deduplicated by label."""
    entries: dict[str, object] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncol=min(ncol, len(entries)),
                   fontsize=FONT_SIZE - 1, title=title, title_fontsize=FONT_SIZE - 1, frameon=False)


def _panel_title(model: str, task: str) -> str:
    """``model / task`` on one line, or on two when that is too long for a panel of a four-column grid."""
    title = f"{model} / {task}"
    return title if len(title) <= 30 else f"{model}\n{task}"


def _panel_letters(axes: Sequence[Axes]) -> None:
    """The paper's panel letters, (a), (b), ... in reading order, at each panel's top left outside the data."""
    for i, ax in enumerate(axes):
        ax.set_title(f"({chr(ord('a') + i)}) {ax.get_title()}", loc="left", fontsize=FONT_SIZE)
        ax.set_title("", loc="center")


@_page_style
def figure1(table: pd.DataFrame, *, split: str = "test", finetune_task: str = "none") -> Figure:
    """Figure 1: layer-wise probing accuracy, one panel per model (rows) and probing task (columns).

    In each panel mean pooling is solid and CLS pooling dashed, as in the paper; ``finetune_task="none"``
    (the paper's Figure 1) selects the pre-trained encoders, another task the encoders fine-tuned on it.
    Where the rows carry ``ci_low`` / ``ci_high`` (the test accuracies' bootstrap intervals), they are
    drawn as bands (means over seeds, like the curves).
    """
    rows = _rows(analysis.probe_rows(table), "Figure 1", stage="probing", finetune_task=finetune_task, split=split,
                 metric="accuracy")
    bands = [c for c in ("ci_low", "ci_high") if c in rows.columns]
    curves = rows.groupby(["probe_task", "model", "pooling", "layer"], as_index=False)[["value", *bands]].mean()
    tasks, models = sorted(curves["probe_task"].unique()), sorted(curves["model"].unique())
    fig, axes = _grid(len(models), len(tasks))
    for r, model in enumerate(models):
        for c, task in enumerate(tasks):
            ax = axes[r][c]
            here = curves[(curves["probe_task"] == task) & (curves["model"] == model)]
            for pooling, curve in here.groupby("pooling"):
                colour = POOLING_COLOUR.get(pooling, "C2")
                ax.plot(curve["layer"], 100 * curve["value"], POOLING_STYLE.get(pooling, ":"), marker="o", ms=3,
                        color=colour, label=f"{pooling} pooling")
                if len(bands) == 2 and curve[bands].notna().all(axis=None):
                    ax.fill_between(curve["layer"], 100 * curve["ci_low"], 100 * curve["ci_high"],
                                    color=colour, alpha=0.15, lw=0)
            ax.set_title(_panel_title(model, task))
            ax.set_xlabel("layer")
            ax.set_ylabel(f"{split} accuracy (%)" if c == 0 else "")
            ax.grid(alpha=0.3)
    _legend_below(fig, axes)
    return fig


def _align_zero(ax: Axes, twin: Axes) -> None:
    """Both y-axes' 0 at the same height, so the dotted and the solid lines share their zero line.

    Each axis keeps its own scale: its range becomes ``(-below * span, above * span)`` with ``span`` its
    current extent and ``below`` / ``above`` the largest share either axis has under / over 0, so both
    axes still hold all their data and 0 sits at ``below / (below + above)`` of each.
    """
    spans = []
    for axis in (ax, twin):
        low, high = axis.get_ylim()
        low, high = min(low, 0.0), max(high, 0.0)
        spans.append((low, high, high - low))
    if any(span <= 0 for _, _, span in spans):
        return
    below = max(-low / span for low, _, span in spans)
    above = max(high / span for _, high, span in spans)
    for axis, (_, _, span) in zip((ax, twin), spans):
        axis.set_ylim(-below * span, above * span)


@_page_style
def figure_delta(table: pd.DataFrame, *, pooling: str, split: str = "test", baseline_pooling: str | None = None,
                 intervals: pd.DataFrame | None = None) -> Figure:
    """Figures 4 and 5: Delta (fine-tuned minus pre-trained probing accuracy) per layer.

    Rows = models, columns = probing tasks, one line per fine-tuned encoder (task and head; seeds
    averaged). With ``baseline_pooling`` (Figure 4 uses ``"mean"``), a second y-axis, its 0 level with
    the first's, shows the fine-tuned accuracy minus the pre-trained model's accuracy under that
    pooling (dotted lines). With ``intervals`` (a run's ``delta_intervals.csv``), each line gets its
    per-layer paired 95% bootstrap interval (seeds pooled) as a band. The legend is under the panels.
    """
    delta = analysis.probing_delta(table, split=split)
    delta = _rows(delta, f"Delta with {pooling} pooling", pooling=pooling)
    keys = ["model", "probe_task", "finetune_task", "finetune_head", "layer"]
    per_layer = delta.groupby(keys, as_index=False)[["delta", "finetuned"]].mean()
    models, tasks = sorted(per_layer["model"].unique()), sorted(per_layer["probe_task"].unique())
    states = sorted({(t, h) for t, h in zip(per_layer["finetune_task"], per_layer["finetune_head"])})
    colours = {state: f"C{i}" for i, state in enumerate(states)}
    baseline = None
    if baseline_pooling:
        pre = _rows(analysis.probe_rows(table), "pre-trained baseline", stage="probing", finetune_task="none", split=split,
                    metric="accuracy", pooling=baseline_pooling)
        baseline = pre.groupby(["model", "probe_task", "layer"], as_index=False)["value"].mean()
    fig, axes = _grid(len(models), len(tasks))
    for r, model in enumerate(models):
        for c, task in enumerate(tasks):
            ax = axes[r][c]
            here = per_layer[(per_layer["model"] == model) & (per_layer["probe_task"] == task)]
            twin = ax.twinx() if baseline is not None else None
            for (ft_task, head), curve in here.groupby(["finetune_task", "finetune_head"]):
                colour = colours[(ft_task, head)]
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
            ax.set_title(_panel_title(model, task))
            ax.set_xlabel("layer")
            ax.set_ylabel(f"Delta, {pooling} (points)" if c == 0 else "")
            if twin is not None:
                twin.tick_params(labelsize=FONT_SIZE - 1)
                if c == len(tasks) - 1:
                    twin.set_ylabel(f"vs pre-trained {baseline_pooling} (dotted)", fontsize=FONT_SIZE)
                _align_zero(ax, twin)
            ax.grid(alpha=0.3)
    _legend_below(fig, axes, title="fine-tuned on (solid: Delta" + (
        f"; dotted, right axis: vs pre-trained {baseline_pooling} pooling)" if baseline is not None else ")"))
    return fig


def _encoder_state_panels(
    frame: pd.DataFrame,
    draw: Callable[[Axes, pd.DataFrame, str, str, str], None],
    *,
    ylabel: str,
    zero_line: bool = False,
    ylim: tuple[float, float] | None = None,
) -> Figure:
    """Rows = (model, pooling), columns = probing tasks; one curve per encoder state (task, head).

    One pooling per row keeps a panel to one line per encoder state (five, not ten). Pre-trained
    encoders are black, each fine-tuned (task, head) gets its own colour, named in one legend under the
    panels; ``draw(ax, curve, colour, label, pooling)`` draws one curve (layers ascending).
    """
    models, tasks = sorted(frame["model"].unique()), sorted(frame["probe_task"].unique())
    poolings = sorted(frame["pooling"].unique(), key=lambda p: (p != "mean", p))  # the paper's preferred first
    states = sorted({(t, h) for t, h in zip(frame["finetune_task"], frame["finetune_head"])},
                    key=lambda state: (state[0] != "none", state))
    colours = {state: ("black" if state[0] == "none" else f"C{i}") for i, state in enumerate(states)}
    rows = [(model, pooling) for model in models for pooling in poolings]
    fig, axes = _grid(len(rows), len(tasks), height=2.0)
    for r, (model, pooling) in enumerate(rows):
        for c, task in enumerate(tasks):
            ax = axes[r][c]
            here = frame[(frame["model"] == model) & (frame["probe_task"] == task) & (frame["pooling"] == pooling)]
            for ft_task, head in states:  # pre-trained first, so the legend starts with it
                curve = here[(here["finetune_task"] == ft_task) & (here["finetune_head"] == head)]
                if not curve.empty:
                    label = "pre-trained" if ft_task == "none" else f"{ft_task} ({head} head)"
                    draw(ax, curve.sort_values("layer"), colours[(ft_task, head)], label, pooling)
            if zero_line:
                ax.axhline(0, color="grey", lw=0.8)
            # the task once above each column, the model and pooling once left of each row: short titles
            ax.set_title(task if r == 0 else "")
            ax.set_xlabel("layer" if r == len(rows) - 1 else "")
            ax.set_ylabel(f"{model}, {pooling}\n{ylabel}" if c == 0 else "")
            if ylim is not None:
                ax.set_ylim(*ylim)
            ax.grid(alpha=0.3)
    _legend_below(fig, axes, title="encoder", ncol=5)
    return fig


@_page_style
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


@_page_style
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


@_page_style
def figure2(table: pd.DataFrame, *, position: str = "first") -> Figure:
    """Figure 2: (a) entropy of a token's attention per layer; (b) EMD to the pre-trained attention.

    One row per model, one line per model state (pre-trained, and fine-tuned with each head), the
    legend under the panels; ``position`` selects the query token (``"first"`` as in the paper).
    """
    rows = _rows(table, "Figure 2", stage="attention")
    rows = rows[rows["position"].astype(str) == str(position)]
    if rows.empty:
        raise ValueError(f"no attention rows for position={position!r}")
    models = sorted(rows["model"].unique())
    fig, axes = _grid(len(models), 2, height=2.8)
    for r, model in enumerate(models):
        for c, metric in enumerate(("entropy", "emd")):
            ax = axes[r][c]
            part = rows[(rows["model"] == model) & (rows["metric"] == metric)]
            states = sorted(part.groupby(["finetune_task", "finetune_head"]), key=lambda g: (g[0][0] != "none", g[0]))
            for (ft_task, head), curve in states:  # pre-trained first, as in the legend of the other figures
                curve = curve.groupby("layer", as_index=False)["value"].mean()
                label = "pre-trained" if ft_task == "none" else f"{ft_task} ({head} head)"
                colour = "black" if ft_task == "none" else ("C0" if head == "cls" else "C1")
                ax.plot(curve["layer"], curve["value"], marker="o", ms=3, label=label, color=colour)
            ax.set_title(f"{model}: " + ("entropy (nats)" if metric == "entropy" else "EMD to pre-trained (positions)"))
            ax.set_xlabel("layer")
            ax.grid(alpha=0.3)
    _panel_letters(list(axes.flat))
    _legend_below(fig, axes)
    return fig


@_page_style
def figure3(table: pd.DataFrame) -> Figure:
    """Figure 3: MLM perplexity per fine-tuning epoch, mean +- std over seeds, and with the top layers replaced.

    Per model two rows, as in the paper: (a, b) perplexity after each epoch (0 = pre-trained), one
    panel per fine-tuning task; (c, d) perplexity when the top k layers are replaced by the
    pre-trained ones, and, where the run has them, when the bottom k layers are (the F7 contrast, a dashed
    line; the legend below says which). A model whose rows used a masked-LM head fitted on its frozen
    pre-trained encoder (``mlm_head`` = ``fitted``) is titled "<model>, fitted MLM head". Panels are lettered
    in reading order.
    """
    _rows(table, "Figure 3", stage="perplexity", metric="perplexity")
    rows = analysis.perplexity_rows(table)
    fitted = rows["mlm_head"] != MLM_HEAD_PRETRAINED
    rows = rows.assign(model=rows["model"].where(~fitted, rows["model"] + ", " + rows["mlm_head"] + " MLM head"))
    models, tasks = sorted(rows["model"].unique()), sorted(t for t in rows["finetune_task"].unique() if t != "none")
    if not tasks:
        raise ValueError("Figure 3 needs perplexity rows of fine-tuned models")
    both_sides = (rows["replaced_layers"] == "bottom").any()
    fig, axes = _grid(2 * len(models), len(tasks), height=2.4)
    for r, model in enumerate(models):
        for t, task in enumerate(tasks):
            part = rows[(rows["model"] == model) & (rows["finetune_task"] == task)]
            by_epoch = part[part["k_replaced"] == -1].groupby("epoch")["value"].agg(["mean", "std"]).fillna(0.0)
            replaced = part[part["k_replaced"] >= 0]
            curves = {side: replaced[replaced["replaced_layers"] == side].groupby("k_replaced")["value"].agg(
                ["mean", "std"]).fillna(0.0) for side in ("top", "bottom")}
            epoch_ax, swap_ax = axes[2 * r][t], axes[2 * r + 1][t]
            epoch_ax.errorbar(by_epoch.index, by_epoch["mean"], yerr=by_epoch["std"], marker="o", ms=3, capsize=3)
            epoch_ax.set_xlabel("fine-tuning epoch (0 = pre-trained)")
            for side, style in (("top", "-"), ("bottom", "--")):
                curve = curves[side]
                if not curve.empty:
                    swap_ax.errorbar(curve.index, curve["mean"], yerr=curve["std"], marker="o", ms=3, capsize=3,
                                     linestyle=style, label=f"{side} k layers restored")
            swap_ax.set_xlabel("k layers replaced by pre-trained" if both_sides else "top k layers replaced by pre-trained")
            for ax in (epoch_ax, swap_ax):
                ax.set_title(_panel_title(model, task))
                ax.set_ylabel("MLM perplexity" if t == 0 else "")
                ax.grid(alpha=0.3)
    _panel_letters(list(axes.flat))
    if both_sides:
        _legend_below(fig, axes)
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
