"""The probing stage on a tiny model and generated data: shapes, values, cache reuse, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probeft import data, probing
from probeft.finetune import checkpoints
from probeft.probing import extract, probe


@pytest.fixture(scope="module")
def probing_rows(demo_data_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("features")
    rows = probing.probe_encoder("tiny-bert-L2", ["bigram_shift", "odd_man_out"], demo_data_dir, max_train=120,
                                 max_eval=40, device="cpu", cache_dir=cache, progress=False)
    return rows, cache


def test_one_row_per_task_pooling_layer_split(probing_rows):
    rows, _ = probing_rows
    rows = rows[rows["metric"] == "accuracy"]
    # 2 tasks x 2 poolings x (2 layers + embeddings) x 3 splits
    assert len(rows) == 2 * 2 * 3 * 3
    assert sorted(rows["layer"].unique()) == [0, 1, 2]
    assert set(rows["split"]) == {"train", "dev", "test"}
    assert set(rows["l2"]).issubset({1e-5, 1e-4, 1e-3, 1e-2})


def test_constant_cls_embedding_gives_chance_and_mean_pooling_learns(probing_rows, demo_data_dir):
    rows, _ = probing_rows
    value = rows[rows["metric"] == "accuracy"].set_index(["probe_task", "pooling", "layer", "split"])["value"]
    for task in ("bigram_shift", "odd_man_out"):
        # Layer 0 CLS is the [CLS] embedding, the same vector for every sentence: the probe can only
        # predict the majority class of train, which is exactly half of the balanced dev and test.
        train_labels = data.read_senteval(demo_data_dir / "senteval" / f"{task}.txt", max_train=120).train.labels
        majority = np.bincount(train_labels).max() / len(train_labels)
        assert value[(task, "cls", 0, "train")] == pytest.approx(majority)
        assert value[(task, "cls", 0, "dev")] == 0.5 and value[(task, "cls", 0, "test")] == 0.5
        # Mean-pooled words do carry the task (measured 0.63-0.78 on train; chance is ~0.52).
        for layer in (0, 1, 2):
            assert value[(task, "mean", layer, "train")] >= 0.6


def test_cached_features_give_identical_results(probing_rows, demo_data_dir):
    rows, cache = probing_rows
    again = probing.probe_encoder("tiny-bert-L2", ["bigram_shift", "odd_man_out"], demo_data_dir, max_train=120,
                                  max_eval=40, device="cpu", cache_dir=cache, progress=False)
    np.testing.assert_array_equal(rows["value"].to_numpy(), again["value"].to_numpy())


def test_probing_table_adds_model_columns(probing_rows):
    rows, _ = probing_rows
    table = probing.probing_table(rows, model_name="m", finetune_task="cola", finetune_head="cls", seed=3, epoch=2)
    assert set(table["model"]) == {"m"} and set(table["seed"]) == {3} and set(table["epoch"]) == {2}
    assert list(table.columns[:13]) == ["stage", "model", "finetune_task", "finetune_head", "seed", "epoch",
                                        "probe_task", "pooling", "probe", "layer", "split", "metric", "value"]
    assert set(table.loc[table["metric"] != "cka", "probe"]) == {"linear"}


def test_bad_inputs_are_named(demo_data_dir):
    with pytest.raises(ValueError, match="poolings"):
        probing.probe_encoder("tiny-bert-L2", ["bigram_shift"], demo_data_dir, poolings=["max"])
    with pytest.raises(ValueError, match="probe_tasks"):
        probing.probe_encoder("tiny-bert-L2", [], demo_data_dir)
    with pytest.raises(FileNotFoundError, match="no_such_task"):
        probing.probe_encoder("tiny-bert-L2", ["no_such_task"], demo_data_dir)


def test_encoder_is_loaded_once_for_all_tasks_and_not_on_a_cache_hit(demo_data_dir, tmp_path, monkeypatch):
    loads = []
    original = extract.load_for_extraction
    monkeypatch.setattr(extract, "load_for_extraction", lambda *a, **k: loads.append(a[0]) or original(*a, **k))
    tasks = ["bigram_shift", "odd_man_out"]
    kwargs = dict(max_train=20, max_eval=10, device="cpu", cache_dir=tmp_path, progress=False)
    probing.probe_encoder("tiny-bert-L2", tasks, demo_data_dir, **kwargs)
    assert loads == ["tiny-bert-L2"]
    probing.probe_encoder("tiny-bert-L2", tasks, demo_data_dir, **kwargs)
    assert loads == ["tiny-bert-L2"]  # every task's features came from the cache


def test_probes_take_no_seed(demo_data_dir):
    with pytest.raises(TypeError, match="seed"):
        probing.probe_encoder("tiny-bert-L2", ["bigram_shift"], demo_data_dir, seed=1)


def test_resolve_checkpoint_passes_plain_models_through(tmp_path):
    assert checkpoints.resolve_checkpoint("bert-base-cased") == ("bert-base-cased", 0)
    (tmp_path / "epoch-1").mkdir()  # no completion marker: not a usable checkpoint
    with pytest.raises(FileNotFoundError, match="no complete fine-tuning epoch"):
        checkpoints.resolve_checkpoint(str(tmp_path))


def test_test_rows_carry_a_bootstrap_interval_that_brackets_the_accuracy(probing_rows):
    rows, _ = probing_rows
    rows = rows[rows["metric"] == "accuracy"]
    test, other = rows[rows["split"] == "test"], rows[rows["split"] != "test"]
    assert test[["ci_low", "ci_high"]].notna().all(axis=None) and other[["ci_low", "ci_high"]].isna().all(axis=None)
    assert ((test["ci_low"] <= test["value"]) & (test["value"] <= test["ci_high"])).all()
    assert (test["ci_high"] - test["ci_low"] > 0.05).any()  # 40 test sentences: intervals are wide
    constant = test[(test["pooling"] == "cls") & (test["layer"] == 0)]  # the chance-level probe of layer 0
    assert (constant["ci_low"] < 0.5).all() and (constant["ci_high"] > 0.5).all()


def test_run_probing_returns_the_correctness_behind_the_test_rows(demo_data_dir, probing_rows, tmp_path):
    from probeft.results import predictions

    rows, cache = probing_rows
    run = probing.run_probing("tiny-bert-L2", ["bigram_shift", "odd_man_out"], demo_data_dir, max_train=120,
                              max_eval=40, device="cpu", cache_dir=cache, progress=False)
    pd_rows = run.rows[run.rows["metric"] == "accuracy"].set_index(["probe_task", "pooling", "layer", "split"])["value"]
    predictions.save_predictions(tmp_path, run.predictions, model="m", finetune_task="none", finetune_head="none",
                                 seed=0, epoch=0)
    loaded = predictions.load_predictions(tmp_path)
    for task in ("bigram_shift", "odd_man_out"):
        entry = loaded.tasks[task]
        assert entry.correct.shape == (6, 40) and entry.probes[0] == ("cls", 0)
        test_data = data.read_senteval(demo_data_dir / "senteval" / f"{task}.txt", max_train=120, max_eval=40).test
        assert entry.test_sha256 == predictions.split_sha256(test_data.sentences, test_data.labels)
        for (pooling, layer), correct in zip(entry.probes, entry.correct):
            assert correct.mean() == pytest.approx(pd_rows[(task, pooling, layer, "test")], abs=1e-12)


# ---- control tasks / selectivity and MDL (issue 8) -------------------------------------------------

NEW_METRICS = {"control_accuracy", "selectivity", "codelength_kbits", "compression", "uniform_kbits"}
KEYS = ["probe_task", "pooling", "layer", "split"]


@pytest.fixture(scope="module")
def plain_rows(demo_data_dir, probing_rows):
    """The same run as ``probing_rows`` (same feature cache) with control=False, mdl=False."""
    _, cache = probing_rows
    return probing.probe_encoder("tiny-bert-L2", ["bigram_shift", "odd_man_out"], demo_data_dir, max_train=120,
                                 max_eval=40, device="cpu", cache_dir=cache, progress=False, control=False, mdl=False)


def test_options_off_give_no_new_rows_and_on_leave_the_accuracy_rows_unchanged(probing_rows, plain_rows):
    rows, _ = probing_rows
    assert set(plain_rows["metric"]) == {"accuracy"}
    assert NEW_METRICS <= set(rows["metric"])
    accuracy = rows[rows["metric"] == "accuracy"].reset_index(drop=True)
    columns = [c for c in plain_rows.columns if c != "wall_time_s"]
    pd.testing.assert_frame_equal(accuracy[columns], plain_rows[columns])


def test_control_accuracy_is_recorded_for_every_layer_pooling_and_split(probing_rows):
    rows, _ = probing_rows
    control = rows[rows["metric"] == "control_accuracy"]
    accuracy = rows[rows["metric"] == "accuracy"]
    assert sorted(map(tuple, control[KEYS].to_numpy())) == sorted(map(tuple, accuracy[KEYS].to_numpy()))
    assert control["value"].between(0, 1).all() and control["l2"].notna().all()
    assert set(control["control_seed"]) == {0} and set(control["control_position"]) == {"last"}
    assert control.loc[control["split"] == "test", ["ci_low", "ci_high"]].notna().all(axis=None)
    # the control labels differ from the real ones, so at least some probes score differently
    assert not np.array_equal(control["value"].to_numpy(), accuracy["value"].to_numpy())


def test_selectivity_is_accuracy_minus_control_accuracy_exactly(probing_rows):
    rows, _ = probing_rows
    value = {metric: part.set_index(KEYS)["value"] for metric, part in rows.groupby("metric")}
    selectivity = value["selectivity"]
    assert len(selectivity) == len(value["accuracy"])
    expected = value["accuracy"].loc[selectivity.index] - value["control_accuracy"].loc[selectivity.index]
    assert (selectivity.to_numpy() == expected.to_numpy()).all()  # exact, no tolerance
    assert set(rows.loc[rows["metric"] == "selectivity", "probe_task"]) == {"bigram_shift", "odd_man_out"}


def test_test_selectivity_carries_a_paired_interval_around_it(probing_rows):
    rows, _ = probing_rows
    selectivity = rows[rows["metric"] == "selectivity"]
    test = selectivity[selectivity["split"] == "test"]
    assert test[["ci_low", "ci_high"]].notna().all(axis=None)
    assert ((test["ci_low"] <= test["value"] + 1e-12) & (test["value"] <= test["ci_high"] + 1e-12)).all()
    assert selectivity.loc[selectivity["split"] != "test", ["ci_low", "ci_high"]].isna().all(axis=None)


def test_selectivity_rows_place_each_interval_on_its_probe():
    from probeft.verdicts import uncertainty

    task = [{"pooling": p, "layer": l, "split": s, "value": 0.8} for p in ("cls", "mean") for l in (0, 1)
            for s in ("dev", "test")]
    control = [{**row, "value": 0.5} for row in task]
    index = [("cls", 0), ("cls", 1), ("mean", 0), ("mean", 1)]
    intervals = uncertainty.DeltaInterval(np.full(4, 0.3), np.array([0.1, 0.2, 0.3, 0.4]), np.ones(4), np.ones(4))
    rows = probing.selectivity_rows(task, control, intervals, index)
    low = {(r["pooling"], r["layer"]): r["ci_low"] for r in rows if r["split"] == "test"}
    assert low == {("cls", 0): 0.1, ("cls", 1): 0.2, ("mean", 0): 0.3, ("mean", 1): 0.4}
    assert all("ci_low" not in r for r in rows if r["split"] == "dev")
    assert all(r["value"] == pytest.approx(0.3) for r in rows)


def test_mdl_rows_compression_is_uniform_over_online(probing_rows):
    rows, _ = probing_rows
    mdl_rows = rows[rows["metric"].isin(["codelength_kbits", "compression", "uniform_kbits"])]
    assert set(mdl_rows["split"]) == {"train"} and set(mdl_rows["mdl_seed"]) == {0}
    for task, part in mdl_rows.groupby("probe_task"):
        uniform = part[part["metric"] == "uniform_kbits"]
        assert len(uniform) == 1 and uniform["layer"].item() == -1 and uniform["pooling"].item() == "none"
        # 120 training sentences, 2 classes: 120 bits
        assert uniform["value"].item() == pytest.approx(0.12)
        code = part[part["metric"] == "codelength_kbits"].set_index(["pooling", "layer"])["value"]
        compression = part[part["metric"] == "compression"].set_index(["pooling", "layer"])["value"]
        assert sorted(code.index) == [(p, layer) for p in ("cls", "mean") for layer in (0, 1, 2)]
        np.testing.assert_allclose(compression.to_numpy(), uniform["value"].item() / code.loc[compression.index].to_numpy(),
                                   rtol=1e-12)
        assert set(part.loc[part["metric"] != "uniform_kbits", "l2"]) == {0.01}


def test_mdl_shuffle_seed_is_used(demo_data_dir, probing_rows):
    _, cache = probing_rows
    other = probing.probe_encoder("tiny-bert-L2", ["odd_man_out"], demo_data_dir, max_train=120, max_eval=40,
                                  device="cpu", cache_dir=cache, progress=False, control=False, mdl_seed=1)
    rows, _ = probing_rows
    def code(frame):
        return frame[(frame["metric"] == "codelength_kbits") & (frame["probe_task"] == "odd_man_out")]["value"].to_numpy()
    assert set(other["mdl_seed"].dropna()) == {1}
    assert not np.array_equal(code(other), code(rows))


# --- CKA to the pre-trained encoder ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def cka_run(demo_data_dir, probing_rows):
    """``probing_rows``' run again, now of tiny-bert-L2-s1 (another random init) with tiny-bert-L2 as reference."""
    _, cache = probing_rows
    kwargs = dict(max_train=120, max_eval=40, device="cpu", cache_dir=cache, progress=False)
    with_cka = probing.probe_encoder("tiny-bert-L2-s1", ["bigram_shift"], demo_data_dir, cka_reference="tiny-bert-L2",
                                     **kwargs)
    without = probing.probe_encoder("tiny-bert-L2-s1", ["bigram_shift"], demo_data_dir, **kwargs)
    return with_cka, without, cache, kwargs


def test_cka_rows_equal_linear_cka_of_the_cached_test_features(cka_run, demo_data_dir):
    from probeft.verdicts import similarity

    with_cka, _, cache, kwargs = cka_run
    cka = with_cka[with_cka["metric"] == "cka"]
    assert set(cka["split"]) == {"test"} and set(cka["probe_task"]) == {"bigram_shift"}
    # the CLS embedding (layer 0) is the same vector for every sentence: no CKA there
    assert sorted(cka[cka["pooling"] == "cls"]["layer"]) == [1, 2]
    assert sorted(cka[cka["pooling"] == "mean"]["layer"]) == [0, 1, 2]
    extract_kwargs = dict(cache_dir=cache, poolings=["cls", "mean"], device="cpu", progress=False)
    task = data.read_senteval(data.resolve_probing_file("bigram_shift", demo_data_dir), max_train=kwargs["max_train"],
                              max_eval=kwargs["max_eval"])
    reference = extract.extract_probing_features("tiny-bert-L2", task, **extract_kwargs)["test"]
    probed = extract.extract_probing_features("tiny-bert-L2-s1", task, **extract_kwargs)["test"]
    for row in cka.itertuples():
        expected = similarity.linear_cka(reference[row.pooling][row.layer], probed[row.pooling][row.layer])
        assert row.value == pytest.approx(expected, abs=1e-12)
        assert 0.0 < row.value < 1.0  # two different random encoders: related (same tokens), not equal


def test_cka_leaves_every_other_row_unchanged(cka_run):
    with_cka, without, _, _ = cka_run
    columns = [c for c in without.columns if c != "wall_time_s"]
    kept = with_cka[with_cka["metric"] != "cka"].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept[columns], without[columns])


def test_cka_against_itself_is_one_and_reads_the_reference_from_the_cache(demo_data_dir, tmp_path, monkeypatch):
    loads = []
    original = extract.load_for_extraction
    monkeypatch.setattr(extract, "load_for_extraction", lambda *a, **k: loads.append(a[0]) or original(*a, **k))
    kwargs = dict(max_train=20, max_eval=10, device="cpu", cache_dir=tmp_path, progress=False, control=False, mdl=False)
    probing.probe_encoder("tiny-bert-L2", ["bigram_shift"], demo_data_dir, **kwargs)  # fills the cache
    rows = probing.probe_encoder("tiny-bert-L2", ["bigram_shift"], demo_data_dir, cka_reference="tiny-bert-L2", **kwargs)
    assert loads == ["tiny-bert-L2"]  # neither the probed nor the reference encoder was loaded again
    cka = rows[rows["metric"] == "cka"]
    assert len(cka) == 5 and cka["value"].to_numpy() == pytest.approx(1.0, abs=1e-12)


def test_cka_rows_name_mismatched_features():
    rng = np.random.default_rng(0)
    reference = {"cls": rng.normal(size=(3, 10, 4))}
    with pytest.raises(ValueError, match="pooling 'cls'.*shape"):
        probing.cka_rows(reference, {"cls": rng.normal(size=(2, 10, 4))})
    with pytest.raises(ValueError, match="different poolings"):
        probing.cka_rows(reference, {"mean": reference["cls"]})


def test_refits_keep_every_row_and_store_refitted_correctness(demo_data_dir, probing_rows, plain_rows):
    """refits=2: the same rows as without (control and MDL off), plus (2, P, N_test) refit correctness."""
    _, cache = probing_rows
    run = probing.run_probing("tiny-bert-L2", ["bigram_shift"], demo_data_dir, max_train=120, max_eval=40,
                              device="cpu", cache_dir=cache, progress=False, control=False, mdl=False, refits=2)
    expected = plain_rows[plain_rows["probe_task"] == "bigram_shift"].drop(columns="wall_time_s").reset_index(drop=True)
    pd.testing.assert_frame_equal(run.rows.drop(columns="wall_time_s").reset_index(drop=True), expected)
    (task,) = run.predictions
    assert task.refits.shape == (2, 6, 40) and task.refits.dtype == bool
    assert not np.array_equal(task.refits[0], task.refits[1])  # different resamples, different probes
    # Refit accuracy stays near the full fit's (same task, ~63% of the sentences distinct).
    assert np.abs(task.refits.mean(axis=2) - task.correct.mean(axis=1)).mean() < 0.1
    with pytest.raises(ValueError, match="refits must be >= 0"):
        probing.run_probing("tiny-bert-L2", ["bigram_shift"], demo_data_dir, refits=-1)


def test_control_gains_are_measured_against_each_label_sets_majority_rate(probing_rows, demo_data_dir):
    from probeft.probing import control

    rows, _ = probing_rows
    rows = rows[rows["probe_task"] == "bigram_shift"]
    value = {metric: part.set_index(KEYS)["value"] for metric, part in rows.groupby("metric")}
    task = data.read_senteval(demo_data_dir / "senteval" / "bigram_shift.txt", max_train=120, max_eval=40)
    controlled = control.control_task(task, seed=0, position="last")
    for metric, split_data in (("majority_rate", task), ("control_majority_rate", controlled)):
        train = np.asarray(split_data.train.labels)
        majority = np.bincount(train).argmax()
        expected = np.mean(np.asarray(split_data.test.labels) == majority)
        assert value[metric][("bigram_shift", "none", -1, "test")] == pytest.approx(expected)
    gain = value["control_gain"]
    splits = gain.index.get_level_values("split")
    rate = {m: {split: value[m][("bigram_shift", "none", -1, split)] for split in ("train", "dev", "test")}
            for m in ("majority_rate", "control_majority_rate")}
    control_rate = np.array([rate["control_majority_rate"][split] for split in splits])
    task_rate = np.array([rate["majority_rate"][split] for split in splits])
    np.testing.assert_allclose(gain.to_numpy(), value["control_accuracy"].loc[gain.index].to_numpy() - control_rate,
                               atol=1e-12)
    task_gain = value["accuracy"].loc[gain.index].to_numpy() - task_rate
    np.testing.assert_allclose(value["selectivity_gain"].loc[gain.index].to_numpy(), task_gain - gain.to_numpy(),
                               atol=1e-12)


def test_several_control_seeds_and_the_random_label_control(demo_data_dir, probing_rows):
    """control_seeds=[0, 1]: seed 0's rows are the default run's; random labels: capacity above test chance."""
    rows, cache = probing_rows
    run = probing.run_probing("tiny-bert-L2", ["bigram_shift"], demo_data_dir, max_train=120, max_eval=40,
                              device="cpu", cache_dir=cache, progress=False, mdl=False, control_seeds=[0, 1],
                              random_control=True)
    new = run.rows
    columns = ["pooling", "layer", "split", "metric", "value"]
    for metric in ("control_accuracy", "selectivity"):
        before = rows[(rows["probe_task"] == "bigram_shift") & (rows["metric"] == metric)][columns]
        after = new[(new["metric"] == metric) & (new["control_seed"] == 0)][columns]
        pd.testing.assert_frame_equal(after.reset_index(drop=True), before.reset_index(drop=True))
        assert len(new[(new["metric"] == metric) & (new["control_seed"] == 1)]) == len(before)
    random_test = new[(new["metric"] == "random_label_accuracy") & (new["split"] == "test")]["value"]
    capacity = new[new["metric"] == "random_label_capacity"]
    assert len(random_test) == len(capacity) == 6
    assert random_test.between(0.2, 0.8).all()  # 40 test sentences at chance
    assert capacity["value"].mean() > random_test.mean() and (capacity["l2"] == min(probe.L2_GRID)).all()


def test_every_task_gets_its_mdl_noise_floor(probing_rows):
    rows, _ = probing_rows
    floor = rows[rows["metric"] == "compression_noise_floor"]
    assert sorted(floor["probe_task"]) == ["bigram_shift", "odd_man_out"]
    assert (floor["layer"] == -1).all() and (floor["split"] == "train").all() and floor["value"].between(0.2, 1.5).all()


def test_mdl_rows_with_l2_chosen_on_dev():
    from probeft.probing import stage

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 300, 8)).astype(np.float32)
    labels = (x[0, :, 0] > 0).astype(np.int64)
    split = probe.standardise_features({"train": x[:, :200], "dev": x[:, 200:]})
    index = [("cls", 0), ("cls", 1)]
    rows = pd.DataFrame(stage.mdl_task_rows(split, labels[:200], index, num_classes=2, l2_choice="dev",
                                            heldout_labels=labels[200:]))
    assert set(rows["mdl_l2"]) == {"dev"} and "l2" not in rows.columns
    compression = rows[rows["metric"] == "compression"].set_index("layer")["value"]
    floor = rows.loc[rows["metric"] == "compression_noise_floor", "value"].item()
    assert compression[0] > 2 * floor and abs(compression[1] - floor) < 0.2  # layer 1: independent noise
    with pytest.raises(ValueError, match='l2_choice="dev" needs'):
        stage.mdl_task_rows(probe.standardise_features({"train": x}), labels, index, num_classes=2, l2_choice="dev")
