"""Paired Delta intervals from probing cells' probe_predictions.npz (probeft.verdicts.delta_intervals)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probeft import results
from probeft.results import analysis, predictions
from probeft.verdicts import delta_intervals

LAYERS = range(5)  # a 4-layer model: groups 0-2 and 3-4
PROBES = [(p, layer) for p in ("cls", "mean") for layer in LAYERS]
SHA = predictions.split_sha256([f"s{i}" for i in range(200)], [i % 2 for i in range(200)])


def _write(root, name, correct, *, finetune_task="none", head="none", seed=0, sha=SHA):
    cell_dir = root / name
    tasks = [predictions.TaskPredictions("bigram_shift", PROBES, correct, sha)]
    predictions.save_predictions(cell_dir, tasks, model="m", finetune_task=finetune_task, finetune_head=head,
                                 seed=seed, epoch=0 if finetune_task == "none" else 2)
    return cell_dir


def _table(cell_dirs) -> pd.DataFrame:
    """The results rows these cells would have: test accuracy = mean correctness."""
    rows = []
    for cell in delta_intervals.load_cell_predictions(cell_dirs):
        for (pooling, layer), row in zip(PROBES, cell.tasks["bigram_shift"].correct):
            rows.append({"stage": "probing", **cell.cell, "probe_task": "bigram_shift", "pooling": pooling,
                         "layer": layer, "split": "test", "metric": "accuracy", "value": float(row.mean())})
    return results.results_frame(rows)


def test_identical_cells_give_delta_zero_interval_zero_and_p_one(tmp_path):
    correct = np.random.default_rng(0).random((len(PROBES), 200)) < 0.7
    cells = [_write(tmp_path, "pre", correct), _write(tmp_path, "ft", correct, finetune_task="cola", head="cls")]
    table = delta_intervals.delta_intervals(delta_intervals.load_cell_predictions(cells))
    # per seed and pooled; 10 layers + 4 groups each
    assert len(table) == 2 * (10 + 4) and set(table["level"]) == {"layer", "layer_group"}
    assert (table["delta"] == 0).all() and (table["ci_low"] == 0).all() and (table["ci_high"] == 0).all()
    assert (table["p_bootstrap"] == 1).all()
    per_layer = table[(table["level"] == "layer") & (table["seed"] == 0)]
    assert (per_layer["mcnemar_b01"] == 0).all() and (per_layer["mcnemar_p"] == 1).all()
    assert set(table.loc[table["level"] == "layer_group", "layer_group"]) == {"layers 0-2", "layers 3-4"}


def test_per_layer_and_group_deltas_match_the_results_table(tmp_path):
    rng = np.random.default_rng(1)
    pre = rng.random((len(PROBES), 200)) < 0.6
    upper = np.array([layer >= 3 for _, layer in PROBES])[:, None]
    cells = [_write(tmp_path, "pre", pre)]
    for seed in (0, 1):  # fine-tuning fixes wrong sentences in the upper layers
        post = pre | (upper & (rng.random(pre.shape) < 0.5))
        cells.append(_write(tmp_path, f"ft{seed}", post, finetune_task="cola", head="cls", seed=seed))
    out = tmp_path / "delta_intervals.csv"
    written = delta_intervals.write_delta_intervals(cells, out)
    table = delta_intervals.load_delta_intervals(out)
    assert written is not None and len(table) == len(written)

    expected = analysis.probing_delta(_table(cells))
    per_layer = table[(table["level"] == "layer") & (table["seed"] >= 0)]
    merged = per_layer.merge(expected, on=["model", "finetune_task", "finetune_head", "seed", "probe_task",
                                           "pooling", "layer"], suffixes=("", "_analysis"))
    assert len(merged) == len(expected) == 20
    np.testing.assert_allclose(merged["delta"], merged["delta_analysis"], atol=1e-12)
    assert ((merged["ci_low"] <= merged["delta"]) & (merged["delta"] <= merged["ci_high"])).all()
    # Lower layers unchanged; upper layers clearly better, and McNemar sees only b01 (a wrong, b right).
    lower, up = merged[merged["layer"] < 3], merged[merged["layer"] >= 3]
    assert (lower["delta"] == 0).all() and (up["ci_low"] > 0).all() and (up["mcnemar_b10"] == 0).all()
    assert (up["mcnemar_p"] < 0.01).all()

    grouped = analysis.delta_by_layer_group(expected)  # seeds averaged: the pooled rows
    pooled = table[(table["level"] == "layer_group") & (table["seed"] == delta_intervals.POOLED_SEED)]
    both = pooled.merge(grouped, on=["model", "finetune_task", "finetune_head", "probe_task", "pooling",
                                     "layer_group"], suffixes=("", "_analysis"))
    assert len(both) == 4
    np.testing.assert_allclose(both["delta"], both["delta_analysis"], atol=1e-12)
    np.testing.assert_allclose(both["delta"], both["seed_mean"], atol=1e-12)
    assert (both["seeds"] == 2).all() and both["seed_std"].notna().all()
    assert delta_intervals.excludes_zero(both).tolist() == [False, True, False, True]  # cls 0-2, 3-4, mean ...


def test_different_test_sentences_are_refused(tmp_path):
    correct = np.ones((len(PROBES), 200), dtype=bool)
    cells = [_write(tmp_path, "pre", correct),
             _write(tmp_path, "ft", correct, finetune_task="cola", head="cls", sha="0" * 64)]
    with pytest.raises(ValueError, match="different test sentences"):
        delta_intervals.delta_intervals(delta_intervals.load_cell_predictions(cells))


def test_nothing_to_pair_writes_nothing_and_removes_a_stale_file(tmp_path):
    correct = np.ones((len(PROBES), 200), dtype=bool)
    out = tmp_path / "delta_intervals.csv"
    out.write_text("stale")
    cells = [_write(tmp_path, "ft", correct, finetune_task="cola", head="cls"), tmp_path / "no_artefact"]
    assert delta_intervals.write_delta_intervals(cells, out) is None
    assert not out.exists() and delta_intervals.load_delta_intervals(out) is None


def _write_refits(root, name, correct, refits, **cell):
    cell_dir = _write(root, name, correct, **cell)
    loaded = predictions.load_predictions(cell_dir)
    (task,) = loaded.tasks.values()
    task.refits = refits
    predictions.save_predictions(cell_dir, [task], **loaded.cell)
    return cell_dir


def test_refits_and_seeds_widen_the_intervals_and_say_so(tmp_path):
    """Cells with refits: intervals resample them (wider), pooled seeds are resampled too; Deltas unchanged."""
    rng = np.random.default_rng(4)
    pre = rng.random((len(PROBES), 200)) < 0.6
    # Refits that move the whole probe by +-5 points (a shared shift per refit): refit-level variance.
    def refits_of(correct):
        return np.stack([correct ^ (rng.random(correct.shape) < (0.02 + 0.08 * (r % 2))) for r in range(6)])
    plain_dirs, refit_dirs = [tmp_path / "plain"], [tmp_path / "refit"]
    _write(plain_dirs[0], "pre", pre)
    _write_refits(refit_dirs[0], "pre", pre, refits_of(pre))
    for seed, gain in ((0, 0.1), (1, 0.3)):
        post = pre | (rng.random(pre.shape) < gain)
        _write(plain_dirs[0], f"ft{seed}", post, finetune_task="cola", head="cls", seed=seed)
        _write_refits(refit_dirs[0], f"ft{seed}", post, refits_of(post), finetune_task="cola", head="cls", seed=seed)
    plain = delta_intervals.delta_intervals(delta_intervals.load_cell_predictions(sorted(plain_dirs[0].iterdir())))
    refit = delta_intervals.delta_intervals(delta_intervals.load_cell_predictions(sorted(refit_dirs[0].iterdir())))
    pd.testing.assert_series_equal(plain["delta"], refit["delta"])
    width = lambda t: t["ci_high"] - t["ci_low"]  # noqa: E731
    per_seed = plain["seed"] >= 0
    assert set(plain.loc[per_seed, "interval_levels"]) == {"sentences"} and (plain["refits"] == 0).all()
    assert set(plain.loc[~per_seed, "interval_levels"]) == {"seeds+sentences"}
    assert set(refit.loc[per_seed, "interval_levels"]) == {"refits+sentences"} and (refit["refits"] == 6).all()
    assert set(refit.loc[~per_seed, "interval_levels"]) == {"seeds+refits+sentences"}
    assert (width(refit) > width(plain)).mean() > 0.9
    # The seeds' gains differ a lot (0.1 vs 0.3 of wrong sentences fixed): pooling resamples them.
    pooled = plain[~per_seed & (plain["level"] == "layer")]
    one_seed = plain[(plain["seed"] == 0) & (plain["level"] == "layer")]
    assert (width(pooled).to_numpy() > width(one_seed).to_numpy()).mean() > 0.8


def test_q_values_are_bh_within_level_and_seed_and_old_tables_get_them_on_load(tmp_path):
    from scipy import stats

    rng = np.random.default_rng(2)
    pre = rng.random((len(PROBES), 200)) < 0.6
    cells = [_write(tmp_path, "pre", pre)]
    for seed in (0, 1):
        post = pre ^ (rng.random(pre.shape) < 0.05 * (1 + np.arange(len(PROBES))[:, None] % 3))
        cells.append(_write(tmp_path, f"ft{seed}", post, finetune_task="cola", head="cls", seed=seed))
    out = tmp_path / "delta_intervals.csv"
    table = delta_intervals.write_delta_intervals(cells, out)
    for (level, seed), family in table.groupby(["level", "seed"]):
        expected = stats.false_discovery_control(family["p_bootstrap"].to_numpy(), method="bh")
        np.testing.assert_allclose(family["q_value"].to_numpy(), expected, err_msg=f"{level}, seed {seed}")
        assert len(family) == (10 if level == "layer" else 4)
    assert (table["q_value"] >= table["p_bootstrap"]).all()
    # A table written before issue 26: no q_value, refits, interval_levels.
    old = tmp_path / "old.csv"
    table.drop(columns=list(delta_intervals.ADDED_COLUMNS)).to_csv(old, index=False)
    loaded = delta_intervals.load_delta_intervals(old)
    np.testing.assert_allclose(loaded["q_value"], table["q_value"])
    assert list(loaded.columns) == delta_intervals.COLUMNS
    assert (loaded["interval_levels"] == "sentences").all() and (loaded["refits"] == 0).all()
