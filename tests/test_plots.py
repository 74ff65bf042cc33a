"""Figures are drawn from the results table: right panels, right lines, right values."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from probeft import results
from probeft.report import plots


def probing_table():
    rows = []
    for ft, offset in (("none", 0.0), ("cola", -0.1)):
        for pooling, base in (("cls", 0.5), ("mean", 0.7)):
            for task in ("bigram_shift", "odd_man_out"):
                rows += [{"stage": "probing", "model": "m", "finetune_task": ft, "finetune_head": "cls" if ft != "none" else "none",
                          "probe_task": task, "pooling": pooling, "layer": layer, "split": "test", "metric": "accuracy",
                          "value": base + offset + 0.01 * layer} for layer in range(3)]
    return results.results_frame(rows)


def test_figure1_panels_and_lines():
    fig = plots.figure1(probing_table())
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["m / bigram_shift", "m / odd_man_out"]
    lines = axes[0].get_lines()
    assert len(lines) == 2  # two poolings in each model's panel
    styles = {line.get_label(): line.get_linestyle() for line in lines}
    assert styles == {"cls pooling": "--", "mean pooling": "-"}
    mean_line = next(line for line in lines if line.get_label() == "mean pooling")
    np.testing.assert_allclose(mean_line.get_ydata(), [70.0, 71.0, 72.0])
    # the legend is the figure's, under the panels, not on the data
    assert [ax.get_legend() for ax in axes] == [None, None] and len(fig.legends) == 1


def test_figure1_one_panel_per_model_and_task():
    two = pd.concat([probing_table(), probing_table().assign(model="n")], ignore_index=True)
    fig = plots.figure1(two)
    assert [ax.get_title() for ax in fig.get_axes()] == ["m / bigram_shift", "m / odd_man_out",
                                                         "n / bigram_shift", "n / odd_man_out"]
    assert all(len(ax.get_lines()) == 2 for ax in fig.get_axes())
    assert fig.get_figwidth() == plots.PAGE_WIDTH  # drawn at the width the page shows it


def test_figure_delta_values_and_baseline_axis():
    fig = plots.figure_delta(probing_table(), pooling="cls", baseline_pooling="mean")
    main_axes = [ax for ax in fig.get_axes() if ax.get_title()]
    delta_line = main_axes[0].get_lines()[0]
    np.testing.assert_allclose(delta_line.get_ydata(), [-10.0, -10.0, -10.0])
    twin = next(ax for ax in fig.get_axes() if not ax.get_title())
    # fine-tuned CLS (0.4 + 0.01 l) minus pre-trained mean (0.7 + 0.01 l) = -30 points
    np.testing.assert_allclose(twin.get_lines()[0].get_ydata(), [-30.0, -30.0, -30.0])
    # both axes put 0 at the same height, and the right axis label is legible
    main, right = main_axes[0], twin
    fraction = [(0 - ax.get_ylim()[0]) / (ax.get_ylim()[1] - ax.get_ylim()[0]) for ax in (main, right)]
    assert fraction[0] == pytest.approx(fraction[1]) and 0 <= fraction[0] <= 1
    last_twin = [ax for ax in fig.get_axes() if not ax.get_title()][-1]  # labelled once, at the right edge
    assert last_twin.yaxis.label.get_fontsize() >= 8 and "vs pre-trained mean" in last_twin.get_ylabel()


def test_missing_rows_are_named():
    with pytest.raises(ValueError, match="Figure 3"):
        plots.figure3(probing_table())


def test_figure2_one_line_per_model_state():
    rows = [{"stage": "attention", "model": "m", "finetune_task": ft, "finetune_head": head, "layer": layer,
             "metric": metric, "value": value, "position": "first"}
            for ft, head, value in (("none", "none", 1.0), ("cola", "cls", 0.5), ("cola", "mean", 0.9))
            for metric in ("entropy", "emd") if not (ft == "none" and metric == "emd")
            for layer in (1, 2)]
    fig = plots.figure2(results.results_frame(rows))
    entropy_ax, emd_ax = fig.get_axes()[:2]
    assert sorted(line.get_label() for line in entropy_ax.get_lines()) == ["cola (cls head)", "cola (mean head)", "pre-trained"]
    assert len(emd_ax.get_lines()) == 2


def test_figure3_mean_and_std_over_seeds():
    rows = [{"stage": "perplexity", "model": "m", "finetune_task": "cola", "finetune_head": "cls", "seed": seed,
             "epoch": epoch, "split": "test", "metric": "perplexity", "value": value, "k_replaced": -1}
            for seed, values in ((0, (10.0, 12.0)), (1, (10.0, 16.0))) for epoch, value in enumerate(values)]
    fig = plots.figure3(results.results_frame(rows))
    epoch_line = fig.get_axes()[0].get_lines()[0]
    np.testing.assert_allclose(np.asarray(epoch_line.get_ydata(), dtype=float), [10.0, 14.0])


def test_figure3_panels_carry_the_papers_letters_in_reading_order():
    rows = [{"stage": "perplexity", "model": "m", "finetune_task": task, "finetune_head": "cls", "seed": 0,
             "epoch": epoch, "split": "test", "metric": "perplexity", "value": 10.0 + epoch, "k_replaced": k}
            for task in ("cola", "sst2") for epoch, k in ((0, -1), (1, -1), (1, 0), (1, 1))]
    fig = plots.figure3(results.results_frame(rows))
    titles = [ax.get_title(loc="left") for ax in fig.get_axes()]
    # (a, b): per epoch, CoLA then SST-2; (c, d): top layers replaced, as the page's text says
    assert titles == ["(a) m / cola", "(b) m / sst2", "(c) m / cola", "(d) m / sst2"]
    assert [ax.get_xlabel().startswith("fine-tuning epoch") for ax in fig.get_axes()] == [True, True, False, False]


def test_figure3_bottom_curve_and_fitted_head_are_shown():
    rows = [{"stage": "perplexity", "model": "m", "finetune_task": "cola", "finetune_head": "cls", "seed": 0,
             "epoch": epoch, "split": "test", "metric": "perplexity", "value": value, "k_replaced": k,
             "replaced_layers": side, "mlm_head": "fitted"}
            for epoch, k, side, value in ((0, -1, "none", 10.0), (1, -1, "none", 14.0), (1, 0, "top", 14.0),
                                          (1, 1, "top", 11.0), (1, 0, "bottom", 14.0), (1, 1, "bottom", 13.5))]
    fig = plots.figure3(results.results_frame(rows))
    epoch_ax, swap_ax = fig.get_axes()
    assert epoch_ax.get_title(loc="left") == "(a) m, fitted MLM head / cola"
    lines = {bars.get_label(): np.asarray(bars.lines[0].get_ydata(), dtype=float) for bars in swap_ax.containers}
    np.testing.assert_allclose(lines["top k layers restored"], [14.0, 11.0])
    np.testing.assert_allclose(lines["bottom k layers restored"], [14.0, 13.5])
    assert [text.get_text() for text in fig.legends[0].get_texts()] == ["top k layers restored",
                                                                        "bottom k layers restored"]


def test_figure_delta_one_line_per_head():
    # Issue 7: cls- and mean-head fine-tunes of one task were averaged into one line.
    rows = []
    for ft, head, offset in (("none", "none", 0.0), ("cola", "cls", -0.1), ("cola", "mean", 0.05)):
        rows += [{"stage": "probing", "model": "m", "finetune_task": ft, "finetune_head": head,
                  "probe_task": "bigram_shift", "pooling": "cls", "layer": layer, "split": "test",
                  "metric": "accuracy", "value": 0.6 + offset} for layer in range(3)]
    fig = plots.figure_delta(results.results_frame(rows), pooling="cls")
    lines = {line.get_label(): line.get_ydata() for line in fig.get_axes()[0].get_lines() if line.get_label()[0] != "_"}
    assert sorted(lines) == ["cola (cls head)", "cola (mean head)"]
    np.testing.assert_allclose(lines["cola (cls head)"], [-10.0, -10.0, -10.0])
    np.testing.assert_allclose(lines["cola (mean head)"], [5.0, 5.0, 5.0])


def test_drawing_a_figure_leaves_the_notebook_backend_interactive():
    # plots draw under rc_context, which restored "interactive" and hid every later figure of a book page
    import matplotlib

    before = matplotlib.is_interactive()
    try:
        matplotlib.interactive(True)
        plots.figure1(probing_table())
        assert matplotlib.is_interactive()
        matplotlib.interactive(False)
        plots.figure1(probing_table())
        assert not matplotlib.is_interactive()
    finally:
        matplotlib.interactive(before)
