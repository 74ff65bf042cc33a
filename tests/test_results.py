"""The results store (validation, atomic cells), its analyses and report text, by hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from probeft import report, results
from probeft.core import files, paper
from probeft.core.names import FITTED_HEAD_NOTE
from probeft.results import analysis


def probing_rows(model: str, ft: str, pooling: str, values: list[float], seed: int = 0, head: str = "cls") -> list[dict]:
    return [
        {"stage": "probing", "model": model, "finetune_task": ft, "finetune_head": "none" if ft == "none" else head,
         "seed": seed, "probe_task": "bigram_shift", "pooling": pooling, "layer": layer, "split": "test",
         "metric": "accuracy", "value": value}
        for layer, value in enumerate(values)
    ]


def test_results_frame_fills_defaults_and_orders_columns():
    frame = results.results_frame([{"metric": "accuracy", "value": 0.5, "l2": 1e-3}], stage="probing", model="m")
    assert list(frame.columns) == [*results.RESULT_COLUMNS, "l2"]
    row = frame.iloc[0]
    assert (row["finetune_task"], row["probe_task"], row["layer"], row["epoch"]) == ("none", "none", -1, 0)


def test_results_frame_rejects_missing_columns_and_nan():
    with pytest.raises(ValueError, match="missing required"):
        results.results_frame([{"metric": "accuracy", "value": 0.5}], stage="probing")
    with pytest.raises(ValueError, match="non-finite"):
        results.results_frame([{"metric": "a", "value": float("nan")}], stage="s", model="m")
    with pytest.raises(ValueError, match="empty"):
        results.results_frame([], stage="s", model="m")


def test_write_cell_is_complete_and_round_trips(tmp_path):
    table = results.results_frame(probing_rows("m", "none", "cls", [0.5, 0.75]))
    path = results.write_cell(tmp_path / "cell", table, params={"model": "m", "path": tmp_path}, started=0.0, device="cpu")
    assert results.cell_complete(tmp_path / "cell")
    loaded = results.load_results(path)
    pd.testing.assert_frame_equal(loaded, table)
    prov = json.loads((tmp_path / "cell" / "provenance.json").read_text())
    assert prov["rows"] == 2 and prov["params"]["model"] == "m" and prov["device"] == "cpu"
    assert "torch" in prov["packages"]
    # every library a number can depend on, with its installed version (issue 25)
    for package in ("transformers", "tokenizers", "datasets", "huggingface-hub", "accelerate"):
        assert prov["packages"][package] not in ("", "not installed"), package
    assert "torch_cuda" in prov and prov["gpu"] is None  # a CPU cell names no GPU


def test_cell_incomplete_without_marker_or_with_truncated_results(tmp_path):
    table = results.results_frame(probing_rows("m", "none", "cls", [0.5, 0.75, 0.8]))
    results.write_cell(tmp_path, table, params={}, started=0.0, device="cpu")
    (tmp_path / "results.csv").write_text("\n".join((tmp_path / "results.csv").read_text().splitlines()[:2]))
    assert not results.cell_complete(tmp_path)
    (tmp_path / "provenance.json").unlink()
    assert not results.cell_complete(tmp_path)


def test_load_results_names_the_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("stage,model,metric\nprobing,m,accuracy\n")
    with pytest.raises(ValueError, match="bad.csv.*value"):
        results.load_results(bad)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        results.load_results(tmp_path / "missing.csv")


def test_layer_groups_match_paper_and_scale():
    assert analysis.layer_groups(12) == {"layers 0-6": (0, 6), "layers 7-12": (7, 12)}
    assert analysis.layer_groups(6) == {"layers 0-3": (0, 3), "layers 4-6": (4, 6)}
    assert analysis.layer_groups(4) == {"layers 0-2": (0, 2), "layers 3-4": (3, 4)}


def synthetic_table() -> pd.DataFrame:
    # 4-layer model (5 hidden states): groups 0-2 and 3-4.
    rows = probing_rows("m", "none", "cls", [0.5, 0.6, 0.7, 0.8, 0.9], seed=0)
    rows += probing_rows("m", "none", "cls", [0.5, 0.6, 0.7, 0.8, 0.7], seed=1)  # reference mean at layer 4: 0.8
    rows += probing_rows("m", "cola", "cls", [0.5, 0.7, 0.7, 0.6, 0.6], seed=0)
    rows += probing_rows("m", "cola", "cls", [0.5, 0.5, 0.7, 0.6, 0.8], seed=1)
    return results.results_frame(rows)


def test_probing_delta_by_hand():
    delta = analysis.probing_delta(synthetic_table())
    seed0 = delta[delta["seed"] == 0].set_index("layer")["delta"]
    np.testing.assert_allclose(seed0.to_numpy(), [0.0, 0.1, 0.0, -0.2, -0.2], atol=1e-12)


def test_delta_by_layer_group_by_hand():
    grouped = analysis.delta_by_layer_group(analysis.probing_delta(synthetic_table()))
    by_group = grouped.set_index("layer_group")["delta"]
    # seed-mean deltas per layer: [0, 0, 0, -0.2, -0.1] -> lower mean 0, upper mean -0.15
    assert by_group["layers 0-2"] == pytest.approx(0.0)
    assert by_group["layers 3-4"] == pytest.approx(-0.15)
    table = analysis.delta_group_table(synthetic_table(), pooling="cls")
    assert table.loc[("m", "cola", "cls"), ("bigram_shift", "layers 3-4")] == pytest.approx(-15.0)


def test_probing_delta_needs_pretrained_reference():
    rows = results.results_frame(probing_rows("m", "cola", "cls", [0.5, 0.6]))
    with pytest.raises(ValueError, match="without a pre-trained reference"):
        analysis.probing_delta(rows)


def test_table1_takes_last_epoch_and_quotes_paper():
    rows = [
        {"stage": "finetune", "model": "bert-base-cased", "finetune_task": "cola", "finetune_head": "cls", "seed": s,
         "epoch": e, "split": "dev", "metric": "mcc", "value": v}
        for s, e, v in [(0, 1, 0.1), (0, 2, 0.5), (1, 1, 0.2), (1, 2, 0.6)]
    ]
    table = report.table1(results.results_frame(rows), paper.TABLE1_METRICS, paper.TABLE1)
    assert table.loc[("bert-base-cased", "cls"), "cola"] == "55.0 (59.5)"


def test_perplexity_summary_by_hand():
    rows = [{"stage": "perplexity", "model": "m", "finetune_task": task, "epoch": epoch, "metric": "perplexity",
             "value": value, "k_replaced": k}
            for task, epoch, value, k in [("none", 0, 10.0, -1), ("cola", 0, 10.0, -1), ("cola", 1, 14.0, -1),
                                          ("cola", 1, 14.0, 0), ("cola", 1, 11.0, 1)]]
    summary = report.perplexity_summary(results.results_frame(rows))
    assert summary == "m / cola: pre-trained 10.00, after epoch 1 14.00; top layers replaced: k=0: 14.00, k=1: 11.00"


def test_perplexity_table_has_one_column_for_the_last_epoch_whatever_its_number():
    rows = [{"stage": "perplexity", "model": "m", "finetune_task": task, "epoch": epoch, "metric": "perplexity",
             "value": value, "k_replaced": -1}
            for task, epoch, value in [("none", 0, 10.0), ("cola", 0, 10.0), ("cola", 1, 12.0), ("cola", 3, 14.0),
                                       ("sst2", 0, 10.0), ("sst2", 1, 15.0)]]
    shown = report.perplexity_table(results.results_frame(rows))
    assert list(shown.columns) == ["pre-trained", "epochs", "after the last epoch"]
    assert shown.loc[("m", "cola")].tolist() == ["10.00", "3", "14.00"]
    assert shown.loc[("m", "sst2")].tolist() == ["10.00", "1", "15.00"]


def test_perplexity_summary_and_table_show_the_bottom_curve_and_the_fitted_head():
    rows = [{"stage": "perplexity", "model": "m", "finetune_task": task, "epoch": epoch, "metric": "perplexity",
             "value": value, "k_replaced": k, "replaced_layers": side, "mlm_head": "fitted"}
            for task, epoch, value, k, side in [("none", 0, 10.0, -1, "none"), ("cola", 0, 10.0, -1, "none"),
                                                ("cola", 1, 14.0, -1, "none"), ("cola", 1, 11.0, 1, "top"),
                                                ("cola", 1, 13.0, 1, "bottom")]]
    table = results.results_frame(rows)
    summary = report.perplexity_summary(table)
    assert summary == (f"m (fitted MLM head: {FITTED_HEAD_NOTE}) / cola: pre-trained 10.00, after epoch 1 14.00; "
                       "top layers replaced: k=1: 11.00; bottom layers replaced: k=1: 13.00")
    shown = report.perplexity_table(table)
    assert shown.loc[("m", "cola")].to_dict() == {"MLM head": "fitted (analogue)", "pre-trained": "10.00",
                                                   "epochs": "1", "after the last epoch": "14.00",
                                                   "top 1 replaced": "11.00", "bottom 1 replaced": "13.00"}


def test_two_heads_of_one_task_are_separate_rows():
    # Issue 7: the layer-group Deltas averaged the cls- and mean-head fine-tunes of one task.
    rows = probing_rows("m", "none", "cls", [0.5, 0.5, 0.5, 0.5, 0.5])
    rows += probing_rows("m", "cola", "cls", [0.5, 0.5, 0.5, 0.3, 0.3], head="cls")  # upper Delta -0.2
    rows += probing_rows("m", "cola", "cls", [0.6, 0.6, 0.6, 0.6, 0.6], head="mean")  # Delta +0.1 everywhere
    table = results.results_frame(rows)
    grouped = analysis.delta_by_layer_group(analysis.probing_delta(table))
    upper = grouped[grouped["layer_group"] == "layers 3-4"].set_index("finetune_head")["delta"]
    assert upper.to_dict() == pytest.approx({"cls": -0.2, "mean": 0.1})
    shown = analysis.delta_group_table(table, pooling="cls")
    assert list(shown.index) == [("m", "cola", "cls"), ("m", "cola", "mean")]
    assert shown[("bigram_shift", "layers 0-2")].tolist() == pytest.approx([0.0, 10.0])
    assert shown[("bigram_shift", "layers 3-4")].tolist() == pytest.approx([-20.0, 10.0])
    assert report.delta_table(table, pooling="cls")[("bigram_shift", "layers 3-4")].tolist() == ["-20.00", "10.00"]


def test_has_delta_needs_fine_tuned_probes_with_a_reference():
    pretrained = probing_rows("m", "none", "cls", [0.5, 0.6])
    finetuned = probing_rows("m", "cola", "cls", [0.5, 0.7])
    assert analysis.has_delta(results.results_frame(pretrained + finetuned), pooling="cls")
    assert not analysis.has_delta(results.results_frame(pretrained + finetuned), pooling="mean")
    assert not analysis.has_delta(results.results_frame(pretrained))
    assert not analysis.has_delta(results.results_frame(finetuned))
    assert analysis.has_pretrained_probing(results.results_frame(pretrained))
    assert not analysis.has_pretrained_probing(results.results_frame(finetuned))


def test_finetune_by_epoch_and_best_layers_by_hand():
    rows = [{"stage": "finetune", "model": "m", "finetune_task": "cola", "finetune_head": head, "seed": s, "epoch": e,
             "split": "dev", "metric": "mcc", "value": v}
            for head, s, e, v in [("cls", 0, 1, 0.1), ("cls", 1, 1, 0.2), ("cls", 0, 2, 0.5), ("mean", 0, 1, 0.4)]]
    by_epoch = analysis.finetune_by_epoch(results.results_frame(rows))
    assert by_epoch.loc[("m", "cola", "cls", "mcc")].tolist() == pytest.approx([15.0, 50.0])
    assert by_epoch.loc[("m", "cola", "mean", "mcc"), 1] == pytest.approx(40.0)
    best = analysis.best_layers(synthetic_table())
    # pre-trained seed means per layer: 0.5, 0.6, 0.7, 0.8, 0.8 -> the first maximum, layer 3
    assert best.loc[("m", "bigram_shift"), ("layer", "cls")] == 3
    assert best.loc[("m", "bigram_shift"), ("accuracy", "cls")] == pytest.approx(80.0)


def test_attention_summary_by_hand():
    rows = [{"stage": "attention", "model": "m", "finetune_task": ft, "finetune_head": head, "layer": layer,
             "metric": "entropy", "value": value, "position": "first"}
            for ft, head, values in (("none", "none", (1.0, 2.0, 3.0, 4.0)), ("cola", "cls", (1.0, 1.0, 0.5, 0.25)))
            for layer, value in zip(range(1, 5), values)]
    assert report.attention_summary(results.results_frame(rows)) == (
        "m, fine-tuned on cola (cls head), mean entropy: layers 1-2: 1.000; layers 3-4: 0.375\n"
        "m, pre-trained, mean entropy: layers 1-2: 1.500; layers 3-4: 3.500"
    )


def test_not_in_run_note():
    assert report.not_in_run("an attention stage") == "Not in this run: an attention stage."


def test_store_writes_through_probeft_files(tmp_path, monkeypatch):
    # The store has no atomic writer of its own: a failing files.atomic_write_text fails write_cell.
    def refuse(path, text):
        raise OSError(f"refused {path}")

    monkeypatch.setattr(files, "atomic_write_text", refuse)
    with pytest.raises(OSError, match="results.csv"):
        results.write_cell(tmp_path, results.results_frame(probing_rows("m", "none", "cls", [0.5])), params={},
                           started=0.0, device="cpu")
    assert not hasattr(results, "atomic_write_text")
