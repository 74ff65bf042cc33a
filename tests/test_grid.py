"""Grid config validation, expansion, skip/resume and failure reporting (papermill replaced by a fake)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from _dask_executors import write_fake_outputs  # tests/ is on sys.path (pytest's rootdir conftest)

from probeft import data, grid, results
from probeft.core import data_reads, files
from probeft.grid import cell_state, cli, schema
from probeft.grid.cells import write_seal
from probeft.probing import feature_cache

CONFIG = {
    "name": "t",
    "output_dir": "out",
    "models": ["tiny-bert", {"name": "rob", "spec": "tiny-roberta"}],
    "finetune": {"tasks": ["cola"], "seeds": [0, 1], "max_train": 8},
    "probing": {"tasks": ["bigram_shift"], "finetune_tasks": ["none", "cola"]},
    "attention": {"models": ["rob"], "finetune_task": "cola", "heads": ["cls", "mean"]},
    "perplexity": {"models": ["tiny-bert"], "finetune_tasks": ["cola"], "seeds": [0, 1]},
}


def write_config(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_repo_configs_validate():
    for path in sorted((grid.REPO_ROOT / "configs").glob("*.yaml")):
        config = grid.load_config(path)
        assert grid.expand(config, grid.resolve_paths(config, data_dir="/data", output_dir="/out"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"modles": []}, "modles"),
        ({"finetune": {"tasks": ["mnli"]}}, "finetune.tasks"),
        ({"probing": {"poolings": ["max"]}}, "probing.poolings"),
        ({"attention": {"models": ["nope"]}}, "unknown model"),
        ({"probing": {"tasks": []}}, "at least one probing task"),
    ],
)
def test_bad_config_names_the_key(tmp_path, change, message):
    with pytest.raises(ValueError, match=message) as error:
        grid.load_config(write_config(tmp_path, {**CONFIG, **change}))
    assert "grid.yaml" in str(error.value)


def test_expand_orders_dependencies_and_names_cells(tmp_path):
    config = grid.load_config(write_config(tmp_path, CONFIG))
    cells = grid.expand(config, grid.resolve_paths(config, output_dir=str(tmp_path / "out")))
    names = [c.name for c in cells]
    # 2 models x cola x cls x 2 seeds, plus the mean head the attention stage needs for "rob".
    finetune = [c for c in cells if c.stage == "finetune"]
    assert len(finetune) == 5
    assert "finetune__model-rob__task-cola__head-mean__seed-0" in names
    assert "probing__model-tiny-bert__ft-none__seed-0" in names
    assert "probing__model-rob__ft-cola-cls__seed-1" in names
    position = {name: i for i, name in enumerate(names)}
    for cell in cells:
        for dependency in cell.depends_on:
            assert position[dependency] < position[cell.name]
    probe = next(c for c in cells if c.name == "probing__model-rob__ft-cola-cls__seed-1")
    assert probe.parameters["model"].endswith("cells/finetune__model-rob__task-cola__head-cls__seed-1")
    assert probe.parameters["probe_tasks"] == ["bigram_shift"]
    # control tasks / selectivity and MDL are on by default and reach the notebook's parameters
    assert (probe.parameters["control"], probe.parameters["control_task_seed"], probe.parameters["mdl"]) == (True, 0, True)
    perplexity = next(c for c in cells if c.stage == "perplexity")
    assert sorted(perplexity.parameters["finetune_runs"]) == [0, 1]


@pytest.mark.parametrize(("perplexity", "message"), [
    ({"mlm_head": "random"}, r"perplexity\.mlm_head: Input should be 'pretrained' or 'fitted'"),
    ({"mlm_head": True}, r"perplexity\.mlm_head: Input should be 'pretrained' or 'fitted'"),
    ({"head_fit": {"epochs": 3}}, r"head_fit sets how a masked-LM head is fitted, but mlm_head is 'pretrained'"),
    ({"mlm_head": "fitted", "head_fit": {"epochs": 0}}, r"perplexity\.head_fit\.epochs: Input should be greater"),
    ({"mlm_head": "fitted", "head_fit": {"heldout_fraction": 1.5}}, r"perplexity\.head_fit\.heldout_fraction: .*less than 1"),
    ({"mlm_head": "fitted", "head_fit": {"max_blocks": 1}}, r"perplexity\.head_fit\.max_blocks: .*greater than or equal to 2"),
    ({"mlm_head": "fitted", "head_fit": {"learning_rate": True}}, r"perplexity\.head_fit\.learning_rate"),
    ({"mlm_head": "fitted", "head_fit": {"lr": 0.1}}, r"perplexity\.head_fit\.lr: Extra inputs are not permitted"),
    ({"bottom_layers": "yes"}, r"perplexity\.bottom_layers: Input should be a valid boolean"),
])
def test_bad_mlm_head_options_name_the_key(tmp_path, perplexity, message):
    with pytest.raises(ValueError, match=message):
        grid.load_config(write_config(tmp_path, {**CONFIG, "perplexity": {**CONFIG["perplexity"], **perplexity}}))


def test_a_fitted_head_is_one_cell_per_model_that_every_perplexity_cell_reads(tmp_path):
    section = {"finetune_tasks": ["cola", "sst2"], "seeds": [0, 1], "mlm_head": "fitted",
               "head_fit": {"max_blocks": 50, "epochs": 3}, "bottom_layers": False}
    config = grid.load_config(write_config(tmp_path, {**CONFIG, "perplexity": section}))
    cells = grid.expand(config, grid.resolve_paths(config, output_dir=str(tmp_path / "out")))
    heads = [c for c in cells if c.notebook.name == "mlm_head.ipynb"]
    assert [c.name for c in heads] == ["mlm_head__model-tiny-bert", "mlm_head__model-rob"]
    assert {c.stage for c in heads} == {"perplexity"}
    params = heads[0].parameters
    assert (params["model"], params["block_size"], params["max_blocks"], params["epochs"], params["learning_rate"],
            params["seed"], params["mask_seed"]) == ("tiny-bert", 128, 50, 3, 1e-3, 0, 1)
    names = [c.name for c in cells]
    for cell in (c for c in cells if c.notebook.name == "perplexity.ipynb"):
        model = cell.parameters["model_name"]
        assert f"mlm_head__model-{model}" in cell.depends_on
        assert names.index(f"mlm_head__model-{model}") < names.index(cell.name)
        assert cell.parameters["mlm_head_from"] == str(tmp_path / "out" / "cells" / f"mlm_head__model-{model}" / "head")
        assert cell.parameters["replace_bottom"] is False
    # The default (the pre-trained head, bottom layers too) adds no parameter: cells that ran before stay complete.
    plain = grid.load_config(write_config(tmp_path, CONFIG))
    before = [c for c in grid.expand(plain, grid.resolve_paths(plain, output_dir=str(tmp_path / "out")))
              if c.stage == "perplexity"]
    assert len(before) == 1 and not {"mlm_head_from", "replace_bottom"} & set(before[0].parameters)


def test_attention_over_several_seeds_compares_every_head_and_seed_in_one_cell(tmp_path):
    config = grid.load_config(write_config(tmp_path, {**CONFIG, "attention": {**CONFIG["attention"], "seeds": [0, 1]}}))
    cells = grid.expand(config, grid.resolve_paths(config, output_dir=str(tmp_path / "out")))
    attention_cell = next(c for c in cells if c.stage == "attention")
    assert sorted(attention_cell.parameters["finetuned"]) == [
        "cola-cls-seed-0", "cola-cls-seed-1", "cola-mean-seed-0", "cola-mean-seed-1"]
    assert set(attention_cell.depends_on) == {f"finetune__model-rob__task-cola__head-{h}__seed-{s}"
                                              for h in ("cls", "mean") for s in (0, 1)}
    # one seed (the default) keeps the labels of cells that ran before `seeds` existed
    plain = grid.load_config(write_config(tmp_path, CONFIG))
    before = next(c for c in grid.expand(plain, grid.resolve_paths(plain, output_dir=str(tmp_path / "out")))
                  if c.stage == "attention")
    assert sorted(before.parameters["finetuned"]) == ["cola-cls", "cola-mean"]
    with pytest.raises(ValueError, match="either seed or seeds"):
        grid.load_config(write_config(tmp_path, {**CONFIG, "attention": {**CONFIG["attention"], "seed": 1, "seeds": [0]}}))


def probing_cells(tmp_path: Path, probing: dict) -> dict[str, grid.Cell]:
    config = grid.load_config(write_config(tmp_path, {**CONFIG, "probing": {**CONFIG["probing"], **probing}}))
    cells = grid.expand(config, grid.resolve_paths(config, output_dir=str(tmp_path / "out")))
    return {c.name: c for c in cells if c.stage == "probing"}


def test_fine_tuned_probing_cells_get_the_pre_trained_spec_as_cka_reference(tmp_path):
    # "none" listed last still runs first: its features are the cache the CKA rows read
    cells = probing_cells(tmp_path, {"finetune_tasks": ["cola", "none"]})
    names = list(cells)
    assert names.index("probing__model-rob__ft-none__seed-0") < names.index("probing__model-rob__ft-cola-cls__seed-0")
    assert cells["probing__model-rob__ft-cola-cls__seed-1"].parameters["cka_reference"] == "tiny-roberta"
    assert cells["probing__model-tiny-bert__ft-cola-cls__seed-0"].parameters["cka_reference"] == "tiny-bert"
    assert cells["probing__model-rob__ft-none__seed-0"].parameters["cka_reference"] is None
    assert cells["probing__model-rob__ft-cola-cls__seed-1"].depends_on == (
        "finetune__model-rob__task-cola__head-cls__seed-1", "probing__model-rob__ft-none__seed-0")
    # off, or no pre-trained cell to compare with: no CKA
    off = probing_cells(tmp_path, {"cka": False})
    assert {c.parameters["cka_reference"] for c in off.values()} == {None}
    alone = probing_cells(tmp_path, {"finetune_tasks": ["cola"]})
    assert {c.parameters["cka_reference"] for c in alone.values()} == {None}
    assert all(len(c.depends_on) == 1 for c in alone.values())  # only the fine-tuning cell


def test_overrides_take_precedence(tmp_path, monkeypatch):
    config = grid.load_config(write_config(tmp_path, {**CONFIG, "data_dir": str(tmp_path / "cfg")}))
    monkeypatch.delenv("PROBEFT_DATA_DIR", raising=False)
    assert grid.resolve_paths(config).data_dir == tmp_path / "cfg"
    monkeypatch.setenv("PROBEFT_DATA_DIR", str(tmp_path / "env"))
    assert grid.resolve_paths(config).data_dir == tmp_path / "env"
    assert grid.resolve_paths(config, data_dir=str(tmp_path / "flag")).data_dir == tmp_path / "flag"
    # "hub" anywhere in the chain means the hub (None), and reaches the notebooks as "hub".
    paths = grid.resolve_paths(config, data_dir="hub")
    assert paths.data_dir is None
    assert {c.parameters["data_dir"] for c in grid.expand(config, paths)} == {"hub"}


def fake_executor(calls: list[str], fail: set[str] = frozenset()):
    def run(cell: grid.Cell, executed: Path) -> None:
        calls.append(cell.name)
        if cell.name in fail:
            raise RuntimeError("boom")
        # papermill records the parameters a notebook ran with in the notebook; the grid compares them next run
        write_fake_outputs(cell, executed)
    return run


def small_config(tmp_path: Path) -> tuple[grid.GridConfig, grid.GridPaths]:
    config = grid.load_config(write_config(tmp_path, {
        "name": "t", "output_dir": str(tmp_path / "out"), "models": ["tiny-bert"],
        "finetune": {"tasks": ["cola", "rte"]},
        "probing": {"tasks": ["bigram_shift"], "finetune_tasks": ["none", "cola", "rte"]},
    }))
    return config, grid.resolve_paths(config)


def test_grid_skips_finished_and_reruns_incomplete(tmp_path):
    config, paths = small_config(tmp_path)
    calls: list[str] = []
    report = grid.run_grid(config, paths, executor=fake_executor(calls), log=lambda _: None)
    assert report.ok and len(report.ran) == 5 and len(calls) == 5
    assert len(results.load_results(paths.results_csv)) == 5
    # An interrupted cell: results written but no completion marker.
    victim = paths.cells_dir / "probing__model-tiny-bert__ft-cola-cls__seed-0"
    (victim / "provenance.json").unlink()
    calls.clear()
    report = grid.run_grid(config, paths, executor=fake_executor(calls), log=lambda _: None)
    assert calls == [victim.name] and len(report.skipped) == 4
    calls.clear()
    grid.run_grid(config, paths, executor=fake_executor(calls), log=lambda _: None, force=True)
    assert len(calls) == 5


def test_grid_failure_skips_dependants_and_reports(tmp_path):
    config, paths = small_config(tmp_path)
    calls: list[str] = []
    failing = {"finetune__model-tiny-bert__task-cola__head-cls__seed-0"}
    report = grid.run_grid(config, paths, executor=fake_executor(calls, failing), continue_on_error=True,
                           log=lambda _: None)
    assert not report.ok
    assert set(report.failed) == failing | {"probing__model-tiny-bert__ft-cola-cls__seed-0"}
    assert "probing__model-tiny-bert__ft-rte-cls__seed-0" in report.ran
    calls.clear()
    report = grid.run_grid(config, paths, executor=fake_executor(calls, failing), log=lambda _: None)
    assert calls == sorted(failing)  # stops at the first failure without --continue-on-error


def test_dry_run_writes_nothing(tmp_path):
    config, paths = small_config(tmp_path)
    report = grid.run_grid(config, paths, dry_run=True, log=lambda _: None)
    assert len(report.ran) == 5 and not paths.output_dir.exists()


RTE_CELLS = ["finetune__model-tiny-bert__task-rte__head-cls__seed-0", "probing__model-tiny-bert__ft-rte-cls__seed-0"]


def with_rte_learning_rate(tmp_path: Path, rate: float) -> grid.GridConfig:
    return grid.load_config(write_config(tmp_path, {
        "name": "t", "output_dir": str(tmp_path / "out"), "models": ["tiny-bert"],
        "finetune": {"tasks": ["cola", "rte"], "per_task": {"rte": {"learning_rate": rate}}},
        "probing": {"tasks": ["bigram_shift"], "finetune_tasks": ["none", "cola", "rte"]},
    }))


def test_a_changed_setting_is_refused_naming_the_cells_and_the_parameter(tmp_path):
    config, paths = small_config(tmp_path)
    grid.run_grid(config, paths, executor=fake_executor([]), log=lambda _: None)
    before = paths.results_csv.read_bytes()
    calls: list[str] = []
    with pytest.raises(cell_state.StaleCellsError) as error:
        grid.run_grid(with_rte_learning_rate(tmp_path, 3e-5), paths, executor=fake_executor(calls), log=lambda _: None)
    message = str(error.value)
    assert "2 complete cell(s)" in message and "--rerun-changed" in message
    assert f"{RTE_CELLS[0]}: parameters changed: learning_rate 2e-05 -> 3e-05" in message
    assert f"{RTE_CELLS[1]}: depends on changed cell(s) ['{RTE_CELLS[0]}']" in message
    assert "task-cola" not in message and "ft-cola" not in message  # the CoLA cells are unchanged
    assert calls == [] and paths.results_csv.read_bytes() == before
    # the same config again is fine: nothing changed, nothing runs
    assert grid.run_grid(config, paths, executor=fake_executor(calls), log=lambda _: None).ok and calls == []


def test_rerun_changed_runs_the_changed_cells_and_their_dependants_from_nothing(tmp_path):
    config, paths = small_config(tmp_path)
    grid.run_grid(config, paths, executor=fake_executor([]), log=lambda _: None)
    leftover = paths.cells_dir / RTE_CELLS[0] / "epoch-1" / "old-checkpoint.bin"
    leftover.parent.mkdir(exist_ok=True)
    leftover.write_text("trained with 2e-5")
    # real feature-cache entries: of the old RTE weights (must go) and of the pre-trained model (stays)
    cached, kept = (paths.cache_dir / "features" / name for name in ("rte-checkpoint", "pre-trained"))
    for folder, model in ((cached, str(paths.cells_dir / RTE_CELLS[0] / "epoch-3")), (kept, "tiny-bert")):
        feature_cache.load_or_extract(folder, {"model": model}, lambda: {"x": np.zeros((2, 3))})
    changed = with_rte_learning_rate(tmp_path, 3e-5)
    lines: list[str] = []
    assert grid.run_grid(changed, paths, dry_run=True, rerun_changed=False, log=lines.append).ran == RTE_CELLS
    assert leftover.is_file() and any("would run again with --rerun-changed" in line for line in lines)
    calls: list[str] = []
    report = grid.run_grid(changed, paths, executor=fake_executor(calls), rerun_changed=True, log=lambda _: None)
    assert calls == RTE_CELLS and report.ran == RTE_CELLS and len(report.skipped) == 3
    assert not leftover.exists()  # the old checkpoint can't be resumed from
    assert not cached.exists() and kept.is_dir()  # nor its features read
    recorded = cell_state.recorded_parameters(paths.notebooks_dir / f"{RTE_CELLS[0]}.ipynb")
    assert recorded["learning_rate"] == 3e-5
    calls.clear()
    assert grid.run_grid(changed, paths, executor=fake_executor(calls), log=lambda _: None).ok and calls == []


def test_rerun_changed_with_another_stage_refuses_and_deletes_nothing(tmp_path):
    config, paths = small_config(tmp_path)
    grid.run_grid(config, paths, executor=fake_executor([]), log=lambda _: None)
    checkpoint_dir = paths.cells_dir / RTE_CELLS[0]
    before = sorted(checkpoint_dir.rglob("*"))
    changed = with_rte_learning_rate(tmp_path, 3e-5)
    calls: list[str] = []
    # the fine-tuning cell changed but only probing is asked for: deleting it would starve the probing cell
    with pytest.raises(cell_state.StaleCellsError, match=r"--stage probing: 1 changed cell\(s\) belong to other") as error:
        grid.run_grid(changed, paths, executor=fake_executor(calls), rerun_changed=True, only_stages=["probing"],
                      log=lambda _: None)
    assert f"{RTE_CELLS[0]}: parameters changed: learning_rate 2e-05 -> 3e-05" in str(error.value)
    assert RTE_CELLS[1] not in str(error.value)  # the probing cell is in the stage asked for
    assert calls == [] and sorted(checkpoint_dir.rglob("*")) == before
    lines: list[str] = []
    grid.run_grid(changed, paths, dry_run=True, rerun_changed=True, only_stages=["probing"], log=lines.append)
    assert any("not in --stage and would be refused" in line for line in lines)
    # both stages: the fine-tuning cell runs again before its probing cell
    grid.run_grid(changed, paths, executor=fake_executor(calls), rerun_changed=True,
                  only_stages=["finetune", "probing"], log=lambda _: None)
    assert calls == RTE_CELLS


def test_a_moved_run_still_matches_and_an_incomplete_dependency_taints_its_dependants(tmp_path):
    config, paths = small_config(tmp_path)
    grid.run_grid(config, paths, executor=fake_executor([]), log=lambda _: None)
    moved = grid.resolve_paths(config, output_dir=str(tmp_path / "moved"))
    paths.output_dir.rename(moved.output_dir)
    calls: list[str] = []
    assert grid.run_grid(config, moved, executor=fake_executor(calls), log=lambda _: None).ok and calls == []
    (moved.cells_dir / RTE_CELLS[0] / results.PROVENANCE_FILE).unlink()  # the fine-tuning cell is incomplete again
    with pytest.raises(cell_state.StaleCellsError, match=r"depends on cell\(s\) that run again"):
        grid.run_grid(config, moved, executor=fake_executor(calls), log=lambda _: None)
    grid.run_grid(config, moved, executor=fake_executor(calls), rerun_changed=True, log=lambda _: None)
    assert calls == RTE_CELLS


def test_changed_parameters_compares_as_json_and_ignores_the_device():
    recorded = {"learning_rate": 2e-5, "poolings": ["cls"], "device": "cpu", "output_dir": "/a/cells/x",
                "cache_dir": "/a/cache/features"}
    wanted = {"learning_rate": 2e-5, "poolings": ("cls",), "device": "cuda", "output_dir": "/b/cells/x",
              "cache_dir": "/b/cache/features"}
    assert cell_state.changed_parameters(wanted, recorded, roots=("/a", "/b")) == {}
    assert cell_state.changed_parameters(wanted, recorded) == {
        "cache_dir": ("/a/cache/features", "/b/cache/features"), "output_dir": ("/a/cells/x", "/b/cells/x")}
    assert cell_state.changed_parameters({**wanted, "mdl": True}, recorded, roots=("/a", "/b")) == {
        "mdl": ("<not set>", True)}
    assert cell_state.recorded_parameters(Path("/no/such/notebook.ipynb")) is None


def test_cli_refuses_a_changed_setting_with_exit_2(tmp_path, capsys):
    config, paths = small_config(tmp_path)
    grid.run_grid(config, paths, executor=fake_executor([]), log=lambda _: None)
    with_rte_learning_rate(tmp_path, 5e-5)  # rewrites grid.yaml
    assert cli.main(["grid", str(tmp_path / "grid.yaml")]) == 2
    assert "learning_rate 2e-05 -> 5e-05" in capsys.readouterr().err


def write_probing_data(data_dir: Path, sentences: int = 4) -> Path:
    lines = [f"{split}\tO\tsentence {i} ." if i % 2 else f"{split}\tI\t. {i} sentence" for split in ("tr", "va", "te")
             for i in range(sentences)]
    (data_dir / "senteval").mkdir(parents=True, exist_ok=True)
    (data_dir / "senteval" / "bigram_shift.txt").write_text("\n".join(lines) + "\n")
    return data_dir


def reading_executor(calls: list[str]):
    """The fake kernel, reading its data file first as the notebooks do (a fresh record per cell)."""
    write = fake_executor(calls)

    def run(cell: grid.Cell, executed: Path) -> None:
        data_reads.forget_data_files_read()
        data.read_senteval(Path(cell.parameters["data_dir"]) / "senteval" / "bigram_shift.txt")
        write(cell, executed)
    return run


def test_the_same_data_in_another_folder_is_no_change_but_a_file_edited_in_place_is(tmp_path):
    config, _ = small_config(tmp_path)
    first, second = (grid.resolve_paths(config, data_dir=str(write_probing_data(tmp_path / name)))
                     for name in ("data-a", "data-b"))
    grid.run_grid(config, first, executor=reading_executor([]), log=lambda _: None)
    calls: list[str] = []
    assert grid.run_grid(config, second, executor=reading_executor(calls), log=lambda _: None).ok and calls == []
    write_probing_data(tmp_path / "data-b", sentences=5)  # same path, other bytes
    with pytest.raises(cell_state.StaleCellsError) as error:
        grid.run_grid(config, second, executor=reading_executor(calls), log=lambda _: None)
    message = str(error.value)
    assert "5 complete cell(s)" in message and "other parameters or data" in message and calls == []
    assert f"{RTE_CELLS[0]}: data changed since it ran: senteval/bigram_shift.txt sha256 " in message
    assert "data_dir" not in message  # the folder moved too, but the files decide
    grid.run_grid(config, second, executor=reading_executor(calls), rerun_changed=True, log=lambda _: None)
    assert len(calls) == 5
    shutil.rmtree(tmp_path / "data-b")
    with pytest.raises(cell_state.StaleCellsError, match=r"bigram_shift.txt sha256 \w{12} -> <missing>"):
        grid.run_grid(config, second, executor=reading_executor(calls), log=lambda _: None)


def test_without_a_record_of_the_files_read_the_data_dir_path_decides(tmp_path):
    config, _ = small_config(tmp_path)
    first, second = (grid.resolve_paths(config, data_dir=str(write_probing_data(tmp_path / name)))
                     for name in ("data-a", "data-b"))
    grid.run_grid(config, first, executor=reading_executor([]), log=lambda _: None)
    for cell in grid.expand(config, first):  # as cells written before the record (sealed again after the edit)
        provenance = Path(cell.parameters["output_dir"]) / results.PROVENANCE_FILE
        record = json.loads(provenance.read_text())
        del record["data_files"]
        provenance.write_text(json.dumps(record))
        write_seal(cell, grid.executed_notebook(cell, first))
    with pytest.raises(cell_state.StaleCellsError, match="data_dir '.*data-a' -> '.*data-b'"):
        grid.run_grid(config, second, executor=reading_executor([]), log=lambda _: None)
    # from the hub to a folder: nothing to compare file by file, so the path change stands
    hub = grid.resolve_paths(config, data_dir="hub", output_dir=str(tmp_path / "hub-run"))
    grid.run_grid(config, hub, executor=fake_executor([]), log=lambda _: None)
    to_folder = grid.resolve_paths(config, data_dir=str(tmp_path / "data-a"), output_dir=str(tmp_path / "hub-run"))
    with pytest.raises(cell_state.StaleCellsError, match="data_dir 'hub' -> '.*data-a'"):
        grid.run_grid(config, to_folder, executor=fake_executor([]), log=lambda _: None)


def test_cli_reports_bad_config(tmp_path, capsys):
    path = write_config(tmp_path, {**CONFIG, "device": 3, "extra": 1})
    assert cli.main(["grid", str(path), "--dry-run"]) == 2
    assert "extra" in capsys.readouterr().err


def test_book_inputs_need_results(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.csv"):
        cli.prepare_book_inputs(tmp_path, tmp_path / "book_in")


def test_per_task_settings_override_the_section(tmp_path):
    config = grid.load_config(write_config(tmp_path, {
        "name": "t", "output_dir": "out", "models": ["tiny-bert"],
        "finetune": {"tasks": ["cola", "squad"], "max_train": 100, "learning_rate": 1e-4,
                     "per_task": {"squad": {"learning_rate": 5e-5, "batch_size": 16}}},
    }))
    cells = {c.parameters["task"]: c.parameters for c in grid.expand(config, grid.resolve_paths(config))}
    assert (cells["cola"]["learning_rate"], cells["cola"]["batch_size"], cells["cola"]["max_train"]) == (1e-4, 32, 100)
    assert (cells["squad"]["learning_rate"], cells["squad"]["batch_size"], cells["squad"]["max_train"]) == (5e-5, 16, 100)
    assert cells["squad"]["head"] == "span"
    with pytest.raises(ValueError, match="per_task.mnli"):
        grid.load_config(write_config(tmp_path, {**CONFIG, "finetune": {"per_task": {"mnli": {}}}}))


def test_no_data_dir_means_hub_not_demo_data(tmp_path, monkeypatch):
    monkeypatch.delenv("PROBEFT_DATA_DIR", raising=False)
    config = grid.load_config(write_config(tmp_path, CONFIG))
    cells = grid.expand(config, grid.resolve_paths(config))
    assert {c.parameters["data_dir"] for c in cells} == {"hub"}


# The demo grid's cells, in order: results (and their folders) are keyed by these names.
DEMO_CELLS = [
    "finetune__model-tiny-bert__task-cola__head-cls__seed-0",
    "finetune__model-tiny-bert__task-sst2__head-cls__seed-0",
    "finetune__model-tiny-bert__task-rte__head-cls__seed-0",
    "finetune__model-tiny-bert__task-squad__head-span__seed-0",
    "finetune__model-tiny-roberta__task-cola__head-cls__seed-0",
    "finetune__model-tiny-roberta__task-sst2__head-cls__seed-0",
    "finetune__model-tiny-roberta__task-rte__head-cls__seed-0",
    "finetune__model-tiny-roberta__task-squad__head-span__seed-0",
    "finetune__model-tiny-albert__task-cola__head-cls__seed-0",
    "finetune__model-tiny-albert__task-sst2__head-cls__seed-0",
    "finetune__model-tiny-albert__task-rte__head-cls__seed-0",
    "finetune__model-tiny-albert__task-squad__head-span__seed-0",
    "finetune__model-tiny-roberta__task-cola__head-mean__seed-0",
    "finetune__model-tiny-bert__task-cola__head-cls__seed-1",
    "finetune__model-tiny-bert__task-sst2__head-cls__seed-1",
    "probing__model-tiny-bert__ft-none__seed-0",
    "probing__model-tiny-bert__ft-cola-cls__seed-0",
    "probing__model-tiny-bert__ft-sst2-cls__seed-0",
    "probing__model-tiny-bert__ft-rte-cls__seed-0",
    "probing__model-tiny-bert__ft-squad-span__seed-0",
    "probing__model-tiny-roberta__ft-none__seed-0",
    "probing__model-tiny-roberta__ft-cola-cls__seed-0",
    "probing__model-tiny-roberta__ft-sst2-cls__seed-0",
    "probing__model-tiny-roberta__ft-rte-cls__seed-0",
    "probing__model-tiny-roberta__ft-squad-span__seed-0",
    "probing__model-tiny-albert__ft-none__seed-0",
    "probing__model-tiny-albert__ft-cola-cls__seed-0",
    "probing__model-tiny-albert__ft-sst2-cls__seed-0",
    "probing__model-tiny-albert__ft-rte-cls__seed-0",
    "probing__model-tiny-albert__ft-squad-span__seed-0",
    "attention__model-tiny-roberta__ft-cola__task-bigram_shift",
    "perplexity__model-tiny-bert__ft-cola-cls",
    "perplexity__model-tiny-bert__ft-sst2-cls",
]


def test_demo_config_cells_keep_their_names_and_order():
    config = grid.load_config(grid.REPO_ROOT / "configs" / "demo.yaml")
    cells = grid.expand(config, grid.resolve_paths(config, data_dir="/data", output_dir="/out"))
    assert [c.name for c in cells] == DEMO_CELLS
    probe = cells[DEMO_CELLS.index("probing__model-tiny-bert__ft-squad-span__seed-0")]
    assert probe.parameters["finetune_head"] == "span" and probe.parameters["epoch"] == -1
    assert probe.depends_on == ("finetune__model-tiny-bert__task-squad__head-span__seed-0",
                                "probing__model-tiny-bert__ft-none__seed-0")  # its CKA reads that cell's features


def test_task_names_are_normalised_like_fine_tuning_does(tmp_path):
    # Issue 7: the grid rejected "sst_2" / "SST-2" although fine-tuning accepts them.
    spelled = {
        "name": "t", "output_dir": "out", "models": ["tiny-bert"],
        "finetune": {"tasks": ["SST-2", "cola"], "per_task": {"sst_2": {"epochs": 2}}},
        "probing": {"finetune_tasks": ["none", "sst_2"], "poolings": ["CLS"]},
        "attention": {"finetune_task": "CoLA", "heads": ["cls"]},
        "perplexity": {"finetune_tasks": ["Sst2"], "seeds": [0]},
    }
    canonical = {
        **spelled,
        "finetune": {"tasks": ["sst2", "cola"], "per_task": {"sst2": {"epochs": 2}}},
        "probing": {"finetune_tasks": ["none", "sst2"], "poolings": ["cls"]},
        "attention": {"finetune_task": "cola", "heads": ["cls"]},
        "perplexity": {"finetune_tasks": ["sst2"], "seeds": [0]},
    }
    config = grid.load_config(write_config(tmp_path, spelled))
    assert config.finetune.tasks == ["sst2", "cola"] and config.probing.poolings == ["cls"]
    cells = grid.expand(config, grid.resolve_paths(config, output_dir=str(tmp_path / "o")))
    reference_config = grid.load_config(write_config(tmp_path, canonical))
    reference = grid.expand(reference_config, grid.resolve_paths(reference_config, output_dir=str(tmp_path / "o")))
    assert [(c.name, c.parameters) for c in cells] == [(c.name, c.parameters) for c in reference]
    sst2 = next(c for c in cells if c.stage == "finetune" and c.parameters["task"] == "sst2")
    assert sst2.parameters["epochs"] == 2


def test_a_task_listed_twice_after_normalisation_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"finetune\.tasks: .*\['sst2'\] more than once"):
        grid.load_config(write_config(tmp_path, {**CONFIG, "finetune": {"tasks": ["sst2", "SST-2"]}}))


@pytest.mark.parametrize(("device", "expected"), [("auto", "auto"), ("cpu", "cpu"), ("cuda:1", "cuda:1"), ("mps", "mps")])
def test_device_accepts_any_torch_device_string(tmp_path, device, expected):
    config = grid.load_config(write_config(tmp_path, {**CONFIG, "device": device}))
    assert config.device == expected
    assert {c.parameters["device"] for c in grid.expand(config, grid.resolve_paths(config))} == {expected}


@pytest.mark.parametrize(("device", "why"), [("cuda:x", "'cuda:x' is not a device"), ("gpu", "'gpu' is not a device"),
                                             (3, "valid string")])
def test_bad_device_names_the_key(tmp_path, device, why):
    with pytest.raises(ValueError, match=r"grid.yaml: invalid grid config: device: ") as error:
        grid.load_config(write_config(tmp_path, {**CONFIG, "device": device}))
    assert why in str(error.value)


def test_schema_lives_in_grid_config():
    assert grid.GridConfig is schema.GridConfig and grid.load_config is schema.load_config
    assert schema.slug("org/model name") == "org-model-name"


def test_book_inputs_copy_the_run_and_only_complete_notebooks(tmp_path):
    config, paths = small_config(tmp_path)
    grid.run_grid(config, paths, executor=fake_executor([]), log=lambda _: None)
    incomplete = "probing__model-tiny-bert__ft-rte-cls__seed-0"
    (paths.cells_dir / incomplete / "provenance.json").unlink()
    book_inputs = tmp_path / "book_in"
    (book_inputs / "notebooks").mkdir(parents=True)
    (book_inputs / "notebooks" / "stale-from-another-run.ipynb").write_text("{}")
    cli.prepare_book_inputs(paths.output_dir, book_inputs)
    copied = sorted(p.stem for p in (book_inputs / "notebooks").iterdir())
    assert copied == sorted(c.name for c in grid.expand(config, paths) if c.name != incomplete)
    assert (book_inputs / "results.csv").read_bytes() == paths.results_csv.read_bytes()
    provenance = json.loads((book_inputs / "provenance.json").read_text())
    assert len(provenance) == 4 and incomplete not in provenance


def test_export_writes_only_the_small_tables(tmp_path, capsys):
    config, paths = small_config(tmp_path)
    grid.run_grid(config, paths, executor=fake_executor([]), log=lambda _: None)
    dest = tmp_path / "validation" / "small"
    assert cli.main(["export", str(paths.output_dir), str(dest)]) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["claims.csv", "grid.json", "provenance.json", "results.csv"]
    assert (dest / "results.csv").read_bytes() == paths.results_csv.read_bytes()
    assert f"to {dest}" in capsys.readouterr().out
    assert cli.main(["export", str(tmp_path / "no-run"), str(tmp_path / "nothing")]) == 2
    assert not (tmp_path / "nothing").exists()



# --- one run per output dir: the lock file ----------------------------------------------------------------


def test_a_second_grid_on_the_same_output_dir_refuses_and_runs_nothing(tmp_path, capsys):
    config, paths = small_config(tmp_path)
    lock = paths.output_dir / grid.LOCK_FILE
    lock.parent.mkdir(parents=True)
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "since": "2026-12-03T10:00:00+0000"}  # alive
    lock.write_text(json.dumps(holder))
    calls: list[str] = []
    with pytest.raises(files.LockHeldError, match=rf"held by process {holder['pid']} on {socket.gethostname()}"):
        grid.run_grid(config, paths, executor=fake_executor(calls), log=lambda _: None)
    assert calls == [] and not paths.results_csv.exists()
    assert json.loads(lock.read_text()) == holder  # another's lock is never removed
    # the CLI: exit 2, one line naming the lock file
    path = write_config(tmp_path, {"name": "t", "output_dir": str(paths.output_dir), "models": ["tiny-bert"],
                                   "probing": {"tasks": ["bigram_shift"]}})
    assert cli.main(["grid", str(path)]) == 2
    assert f"{lock} is held by process" in capsys.readouterr().err
    # a dry run takes no lock
    assert grid.run_grid(config, paths, dry_run=True, log=lambda _: None).ok


def test_a_crashed_runs_lock_is_taken_over_and_every_run_releases_its_own(tmp_path):
    config, paths = small_config(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = paths.output_dir / grid.LOCK_FILE
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname(), "since": "x"}))
    seen: list[dict] = []
    run_cell = fake_executor([])

    def executor(cell, executed):
        seen.append(json.loads(lock.read_text()))
        run_cell(cell, executed)

    assert grid.run_grid(config, paths, executor=executor, log=lambda _: None).ok
    assert {h["pid"] for h in seen} == {os.getpid()} and not lock.exists()
    # released after a failure too
    failing = fake_executor([], fail={"finetune__model-tiny-bert__task-cola__head-cls__seed-0"})
    assert not grid.run_grid(config, paths, force=True, executor=failing, log=lambda _: None).ok
    assert not lock.exists()


def test_exclusive_lock_admits_one_holder(tmp_path):
    lock = tmp_path / "x.lock"
    with files.exclusive_lock(lock, what="x") as mine:
        assert json.loads(lock.read_text()) == mine
        with pytest.raises(files.LockHeldError, match="x.lock is held by process"):
            with files.exclusive_lock(lock, what="x"):
                pass
        assert lock.exists()  # the refused second holder did not remove the first's lock
    assert not lock.exists()
    lock.write_text("not json")  # unreadable: respected, never guessed stale
    with pytest.raises(files.LockHeldError, match="unreadable holder"):
        with files.exclusive_lock(lock, what="x"):
            pass
