"""The batched MLP probe (probeft.probing.probe_mlp): what a linear probe cannot learn, determinism, batching."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from probeft.probing import probe, probe_mlp
from probeft.probing.probe_mlp import MLPSetting


def xor_features(n: int, seed: int, *, noise_dims: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 2 + noise_dims)`` points around the four corners (+-1, +-1), class 1 where the signs differ.

    The corners are used equally often, so every linear function of the features is right on about half
    the points: the best linear probe is at chance.
    """
    rng = np.random.default_rng(seed)
    corners = np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]], dtype=np.float32)[np.arange(n) % 4]
    x = np.concatenate([corners + 0.3 * rng.normal(size=(n, 2)), rng.normal(size=(n, noise_dims))], axis=1)
    order = rng.permutation(n)
    labels = (corners[:, 0] != corners[:, 1]).astype(np.int64)
    return x[order].astype(np.float32), labels[order]


def stacked(num_probes: int, sizes: tuple[int, int, int] = (1200, 400, 400)) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train / dev / test XOR splits with the same features for each of ``num_probes`` probes."""
    splits = {}
    for seed, (split, n) in enumerate(zip(("train", "dev", "test"), sizes)):
        x, y = xor_features(n, seed)
        splits[split] = (np.repeat(x[None], num_probes, axis=0), y)
    return splits


def fit(splits: dict[str, tuple[np.ndarray, np.ndarray]], **options: object) -> probe_mlp.MLPResults:
    return probe_mlp.fit_mlp_probes(splits["train"][0], splits["train"][1], splits["dev"][0], splits["dev"][1],
                                    splits["test"][0], splits["test"][1], **options)


@pytest.fixture(scope="module")
def xor_fit() -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], probe_mlp.MLPResults]:
    splits = stacked(2)
    return splits, fit(splits, seed=0)


def test_mlp_learns_xor_that_a_linear_probe_cannot(xor_fit):
    splits, mlp = xor_fit
    linear = probe.fit_probes(splits["train"][0], splits["train"][1], splits["dev"][0], splits["dev"][1],
                              splits["test"][0], splits["test"][1])
    assert np.all(np.abs(linear.test_acc - 0.5) < 0.08), linear.test_acc
    assert np.all(mlp.test_acc > 0.9), mlp.test_acc
    assert mlp.test_correct.shape == (2, 400) and np.allclose(mlp.test_correct.mean(axis=1), mlp.test_acc)
    # the chosen setting is the grid's best on dev (first one on ties), and reported as such
    assert np.array_equal(mlp.chosen, np.argmax(np.round(mlp.grid_dev_acc, 12), axis=1))
    assert [mlp.grid[i].hidden for i in mlp.chosen] == list(mlp.hidden) == [50, 50]
    assert mlp.grid == probe_mlp.MLP_GRID and len(mlp.grid) == 4
    assert np.all(mlp.best_epoch >= 1) and np.all(mlp.best_epoch <= mlp.epochs)


def test_same_seed_gives_identical_results_and_weights(xor_fit):
    splits, first = xor_fit
    again = fit(splits, seed=0)
    assert np.array_equal(first.grid_test_acc, again.grid_test_acc)
    assert np.array_equal(first.first_weights[50], again.first_weights[50])
    other = fit(splits, seed=1)
    assert not np.array_equal(first.first_weights[50], other.first_weights[50])


def test_the_global_random_state_does_not_matter():
    splits = stacked(1, (400, 200, 200))
    settings = {"grid": [MLPSetting(8, 0.2, 1e-4)], "max_epochs": 3}
    torch.manual_seed(123)
    np.random.seed(123)
    first = fit(splits, **settings)
    torch.manual_seed(7)
    np.random.seed(7)
    second = fit(splits, **settings)
    assert np.array_equal(first.first_weights[8], second.first_weights[8])


def test_batched_probes_train_as_they_would_alone():
    """Probe p of a batch ends where it would alone, given the same initial weights (the batch's draw)."""
    splits = stacked(3, (400, 200, 200))
    # three different feature sets: the shared features, negated, and with the noise dimensions rescaled
    splits = {split: (x * np.array([1.0, -1.0, 3.0], dtype=np.float32)[:, None, None], y)
              for split, (x, y) in splits.items()}
    settings = {"grid": [MLPSetting(6, 0.0, 1e-3), MLPSetting(6, 0.0, 1e-2)], "max_epochs": 4, "tenacity": 100}
    together = fit(splits, **settings)
    # Alone, probe p gets the parameters the batch drew for it only if it is first: compare probe 0 with a
    # batch of one, and check that the other probes' results do not depend on their neighbours' features.
    alone = fit({split: (x[:1], y) for split, (x, y) in splits.items()}, **settings)
    assert np.allclose(together.first_weights[6][0], alone.first_weights[6][0], atol=1e-5)
    assert np.array_equal(together.grid_test_acc[0], alone.grid_test_acc[0])
    swapped = {split: (x[[0, 2, 1]], y) for split, (x, y) in splits.items()}
    changed = fit(swapped, **settings)
    assert np.array_equal(changed.grid_test_acc[0], together.grid_test_acc[0])


def test_settings_of_two_widths_are_trained_and_chosen_per_probe():
    splits = stacked(2, (400, 200, 200))
    grid = [MLPSetting(4, 0.0, 1e-4), MLPSetting(16, 0.1, 1e-4), MLPSetting(4, 0.0, 1e-2)]
    result = fit(splits, grid=grid, max_epochs=2)
    assert sorted(result.first_weights) == [4, 16]
    assert result.first_weights[4].shape == (2, 2, 4, 4) and result.first_weights[16].shape == (2, 1, 4, 16)
    assert result.grid_dev_acc.shape == (2, 3) and set(result.chosen) <= {0, 1, 2}
    assert np.all(result.epochs == 2)


def test_bad_settings_are_errors_that_name_them():
    splits = stacked(1, (40, 20, 20))
    with pytest.raises(ValueError, match="MLPSetting.dropout must be in"):
        MLPSetting(50, 1.0, 1e-4)
    with pytest.raises(ValueError, match="MLPSetting.hidden must be an integer"):
        MLPSetting(0, 0.0, 1e-4)
    with pytest.raises(ValueError, match="grid must be a non-empty sequence of MLPSetting"):
        fit(splits, grid=[])
    with pytest.raises(ValueError, match=r"training settings must be integers >= 1, got \{'tenacity': 0\}"):
        fit(splits, tenacity=0)
    with pytest.raises(ValueError, match="dev_y has 19 labels but the features have N=20"):
        probe_mlp.fit_mlp_probes(splits["train"][0], splits["train"][1], splits["dev"][0], splits["dev"][1][:19],
                                 splits["test"][0], splits["test"][1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mlp_probe_on_cuda_matches_cpu_closely():
    splits = stacked(2)
    cpu = fit(splits, seed=0)
    gpu = fit(splits, seed=0, device="cuda")
    assert np.all(gpu.test_acc > 0.9)
    assert np.allclose(gpu.test_acc, cpu.test_acc, atol=0.02)


# --- the probing stage with both probes ------------------------------------------------------------------


@pytest.fixture(scope="module")
def both_probes(demo_data_dir, tmp_path_factory):
    from probeft import probing

    cache = tmp_path_factory.mktemp("features")
    options = {"max_train": 120, "max_eval": 40, "device": "cpu", "cache_dir": cache, "progress": False}
    linear = probing.probe_encoder("tiny-bert-L2", ["bigram_shift"], demo_data_dir, **options)
    both = probing.run_probing("tiny-bert-L2", ["bigram_shift"], demo_data_dir, probes=["linear", "mlp"], **options)
    return linear, both


def test_linear_rows_are_unchanged_and_mlp_rows_carry_their_probe(both_probes):
    linear, both = both_probes
    rows = both.rows
    assert set(linear["probe"]) == {"linear"}
    columns = ["probe_task", "pooling", "layer", "split", "metric", "value", "l2"]
    kept = rows[rows["probe"] == "linear"].drop(columns="wall_time_s").reset_index(drop=True)
    pd.testing.assert_frame_equal(kept[columns], linear[columns].reset_index(drop=True))
    mlp = rows[rows["probe"] == "mlp"]
    # accuracy and control accuracy on 3 splits, selectivity and the gains over the majority rates on 3
    # splits; 2 poolings x 3 layers (the majority rates themselves come once, with the linear probe)
    assert mlp.groupby("metric").size().to_dict() == {"accuracy": 18, "control_accuracy": 18, "selectivity": 18,
                                                      "control_gain": 18, "selectivity_gain": 18}
    assert set(rows.loc[rows["metric"] == "majority_rate", "probe"]) == {"linear"}
    accuracy = mlp[mlp["metric"] == "accuracy"]
    assert set(accuracy["mlp_hidden"]) == {50} and set(accuracy["l2"]) <= {1e-4, 1e-2}
    assert set(accuracy["mlp_dropout"]) <= {0.0, 0.2} and set(accuracy["mlp_seed"]) == {0}
    test = accuracy[accuracy["split"] == "test"]
    assert ((test["ci_low"] <= test["value"]) & (test["value"] <= test["ci_high"])).all()
    # selectivity = accuracy - control accuracy of the same MLP probe
    key = ["pooling", "layer", "split"]
    wide = mlp.pivot_table(index=key, columns="metric", values="value")
    assert np.allclose(wide["selectivity"], wide["accuracy"] - wide["control_accuracy"])
    # MDL stays the linear probe's; the saved per-sentence correctness is the linear probe's
    assert set(rows.loc[rows["metric"].isin(["compression", "codelength_kbits"]), "probe"]) == {"linear"}
    linear_test = rows[(rows["probe"] == "linear") & (rows["metric"] == "accuracy") & (rows["split"] == "test")]
    (saved,) = both.predictions
    assert np.allclose(saved.correct.mean(axis=1), linear_test["value"].to_numpy())


def test_unknown_probes_are_named(demo_data_dir):
    from probeft import probing

    with pytest.raises(ValueError, match=r"probes must name each of \('linear', 'mlp'\) at most once.*'cubic'"):
        probing.run_probing("tiny-bert-L2", ["bigram_shift"], demo_data_dir, probes=["cubic"], device="cpu")


def test_schema_reads_probe_as_a_name_or_a_list_and_names_bad_values(tmp_path):
    import yaml

    from probeft.grid import schema

    def load(probe: object) -> list[str]:
        config = {"name": "t", "output_dir": "out", "models": ["tiny-bert"], "probing": {"tasks": ["bigram_shift"]}}
        if probe is not None:
            config["probing"]["probe"] = probe
        path = tmp_path / "grid.yaml"
        path.write_text(yaml.safe_dump(config))
        return schema.load_config(path).probing.probe

    assert load(None) == ["linear"]
    assert load("mlp") == ["mlp"]
    assert load(["linear", "mlp"]) == ["linear", "mlp"]
    with pytest.raises(ValueError, match=r"grid.yaml: invalid grid config: probing.probe.0: Input should be 'linear' or 'mlp'"):
        load("cubic")
    with pytest.raises(ValueError, match=r"probing.probe: Value error, lists \['mlp'\] more than once"):
        load(["mlp", "mlp"])
    with pytest.raises(ValueError, match=r"probing.probe: .*at least 1 item"):
        load([])


def test_old_tables_without_a_probe_column_read_as_linear(tmp_path):
    from probeft import results
    from probeft.results import analysis

    old = pd.DataFrame({"stage": ["probing", "probing", "finetune"], "model": ["m"] * 3, "metric": ["accuracy", "cka", "mcc"],
                        "value": [0.5, 0.9, 0.1], "pooling": ["cls"] * 3, "layer": [1, 1, -1], "split": ["test"] * 3,
                        "probe_task": ["bigram_shift", "bigram_shift", "none"]})
    path = tmp_path / "results.csv"
    old.to_csv(path, index=False)
    table = results.load_results(path)
    assert table["probe"].tolist() == ["linear", "none", "none"]
    assert analysis.probes_in(table) == ["linear"] and not analysis.has_probe_comparison(table)
    mlp = table.iloc[:1].assign(probe="mlp", value=0.75)
    both = pd.concat([table, mlp], ignore_index=True)
    assert analysis.probes_in(both) == ["linear", "mlp"]
    # the paper's analyses read the linear rows only
    assert analysis.best_layers(both.assign(finetune_task="none"))[("accuracy", "cls")].tolist() == [50.0]


def test_the_demo_grid_fits_the_mlp_for_mlp_models_only_and_old_cells_keep_their_parameters(tmp_path):
    from pathlib import Path

    import yaml

    from probeft import grid

    repo = Path(__file__).resolve().parents[1]
    config = grid.load_config(repo / "configs" / "demo.yaml")
    assert "built_bigram_shift" in config.probing.tasks and config.probing.mlp_models == ["tiny-bert"]
    cells = [c for c in grid.expand(config, grid.resolve_paths(config, output_dir=str(tmp_path / "out")))
             if c.stage == "probing"]
    with_mlp = {c.parameters["model_name"] for c in cells if c.parameters.get("probes") == ["linear", "mlp"]}
    assert with_mlp == {"tiny-bert"}
    # the other models' cells have exactly the parameters of a run without the MLP (so stay complete)
    plain = yaml.safe_load((repo / "configs" / "demo.yaml").read_text())
    del plain["probing"]["probe"], plain["probing"]["mlp_models"]
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump(plain))
    plain_config = grid.load_config(path)
    before = {c.name: c.parameters for c in grid.expand(plain_config, grid.resolve_paths(
        plain_config, output_dir=str(tmp_path / "out"))) if c.stage == "probing"}
    for cell in cells:
        if cell.parameters["model_name"] != "tiny-bert":
            assert cell.parameters == before[cell.name]
    plain["probing"] |= {"probe": "mlp", "mlp_models": ["tiny-bert"]}
    path.write_text(yaml.safe_dump(plain))
    with pytest.raises(ValueError, match=r"mlp_models restricts the MLP of probe \[linear, mlp\].*probe is \['mlp'\]"):
        grid.load_config(path)
    plain["probing"] |= {"probe": ["linear", "mlp"], "mlp_models": ["no-such-model"]}
    path.write_text(yaml.safe_dump(plain))
    with pytest.raises(ValueError, match=r"probing.mlp_models names unknown model\(s\) \['no-such-model'\]"):
        grid.load_config(path)


def test_probe_comparison_lists_the_encoders_every_probe_saw():
    from probeft import results
    from probeft.results import analysis

    rows = []
    for model, probes in (("a", ("linear", "mlp")), ("b", ("linear",))):
        for probe_kind in probes:
            for layer, value in enumerate((0.6, 0.7, 0.65)):
                bonus = 0.05 if probe_kind == "mlp" else 0.0
                rows += [{"stage": "probing", "model": model, "probe_task": "t", "pooling": "mean", "layer": layer,
                          "split": "test", "metric": metric, "value": v, "probe": probe_kind}
                         for metric, v in (("accuracy", value + bonus), ("control_accuracy", 0.5 + bonus),
                                           ("selectivity", value - 0.5))]
    table = results.results_frame(rows)
    comparison = analysis.probe_comparison(table)
    assert comparison["model"].tolist() == ["a", "a"] and comparison["probe"].tolist() == ["linear", "mlp"]
    assert comparison["layer"].tolist() == [1, 1]
    assert comparison["accuracy"].tolist() == pytest.approx([0.7, 0.75])
    assert comparison["best_selectivity"].tolist() == pytest.approx([0.2, 0.2])
    with pytest.raises(ValueError, match=r"holds probing rows of \['linear'\] probe"):
        analysis.probe_comparison(table[table["probe"] == "linear"])
