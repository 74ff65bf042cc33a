"""Figures are drawn from the results table: right panels, right lines, right values."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from probeft import plots, results


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
    assert [ax.get_title() for ax in axes] == ["bigram_shift", "odd_man_out"]
    lines = axes[0].get_lines()
    assert len(lines) == 2  # one model x two poolings
    styles = {line.get_label(): line.get_linestyle() for line in lines}
    assert styles == {"m (cls)": "--", "m (mean)": "-"}
    mean_line = next(line for line in lines if line.get_label() == "m (mean)")
    np.testing.assert_allclose(mean_line.get_ydata(), [70.0, 71.0, 72.0])


def test_figure_delta_values_and_baseline_axis():
    fig = plots.figure_delta(probing_table(), pooling="cls", baseline_pooling="mean")
    main_axes = [ax for ax in fig.get_axes() if ax.get_title()]
    delta_line = main_axes[0].get_lines()[0]
    np.testing.assert_allclose(delta_line.get_ydata(), [-10.0, -10.0, -10.0])
    twin = [ax for ax in fig.get_axes() if not ax.get_title()][0]
    # fine-tuned CLS (0.4 + 0.01 l) minus pre-trained mean (0.7 + 0.01 l) = -30 points
    np.testing.assert_allclose(twin.get_lines()[0].get_ydata(), [-30.0, -30.0, -30.0])


def test_missing_rows_are_named():
    with pytest.raises(ValueError, match="Figure 3"):
        plots.figure3(probing_table())
