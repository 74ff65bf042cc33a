"""Nothing on disk is trusted unchecked and no input destroys data (issue 22): one test per case."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from _dask_executors import write_fake_outputs  # tests/ is on sys.path (pytest's rootdir conftest)

from probeft import grid, models, results
from probeft.core import files
from probeft.data import demo, locations
from probeft.finetune import checkpoints
from probeft.grid import cli, runner
from probeft.probing import feature_cache
from probeft.results import predictions
from probeft.verdicts import claims, delta_intervals


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def real_data(tmp_path: Path) -> Path:
    """A folder that looks like a user's real data (not written by the demo generator)."""
    root = tmp_path / "real"
    (root / "senteval").mkdir(parents=True)
    (root / "senteval" / "bigram_shift.txt").write_text("tr\tO\tA sentence from the real corpus .\n")
    (root / "glue" / "CoLA").mkdir(parents=True)
    (root / "glue" / "CoLA" / "train.tsv").write_text("gj04\t1\t\tThe real one .\n")
    return root


def _demo_config(tmp_path: Path, data_dir: str) -> Path:
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump({
        "name": "demo", "data_dir": data_dir, "demo_data": True, "output_dir": str(tmp_path / "run"),
        "device": "cpu", "models": ["tiny-bert-L2"], "probing": {"tasks": ["bigram_shift"]},
    }))
    return path


@pytest.mark.parametrize("how", ["--data-dir", "PROBEFT_DATA_DIR", "config data_dir"])
def test_a_demo_config_never_writes_over_real_data(tmp_path, real_data, monkeypatch, capsys, how):
    before = _files(real_data)
    config = _demo_config(tmp_path, str(real_data) if how == "config data_dir" else str(tmp_path / "demo-data"))
    argv = ["grid", str(config)]
    if how == "--data-dir":
        argv += ["--data-dir", str(real_data)]
    elif how == "PROBEFT_DATA_DIR":
        monkeypatch.setenv(locations.DATA_DIR_ENV, str(real_data))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "refusing to write generated demo data" in err and str(real_data) in err and "Traceback" not in err
    assert _files(real_data) == before  # not a byte changed, no marker added
    assert not (tmp_path / "run").exists()  # refused before the run started


def test_a_demo_config_writes_into_a_new_or_its_own_folder(tmp_path, capsys):
    config = _demo_config(tmp_path, str(tmp_path / "demo-data"))
    assert cli.main(["grid", str(config), "--dry-run"]) == 0  # a dry run writes no data
    assert not (tmp_path / "demo-data").exists()
    written = demo.write_demo_data(tmp_path / "demo-data")
    assert demo.is_demo_data(written)
    assert demo.write_demo_data(written) == written  # its own folder: written again


# --- A finished cell is trusted only by content (the grid's seal), with fake cells --------------------------


def _grid(tmp_path: Path, probing: dict | None = None) -> tuple[grid.GridConfig, grid.GridPaths]:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({
        "name": "t", "output_dir": str(tmp_path / "out"), "models": ["tiny-bert"],
        "finetune": {"tasks": ["cola"]},
        "probing": {"tasks": ["bigram_shift"], "finetune_tasks": ["none", "cola"], **(probing or {})},
    }))
    config = grid.load_config(path)
    return config, grid.resolve_paths(config)


def _executor(calls: list[str], *, fail_saving: frozenset[str] = frozenset()):
    def run(cell: grid.Cell, executed: Path) -> None:
        calls.append(cell.name)
        write_fake_outputs(cell, executed)
        if cell.name in fail_saving:  # papermill's save of the executed notebook hits a full disk
            executed.write_text('{"cells": [')
            raise OSError(28, "No space left on device")
    return run


def _run(config, paths, calls, **options) -> grid.GridReport:
    return grid.run_grid(config, paths, executor=_executor(calls, **options.pop("executor", {})),
                         log=lambda _: None, continue_on_error=True, **options)


PROBE_COLA = "probing__model-tiny-bert__ft-cola-cls__seed-0"
FINETUNE_COLA = "finetune__model-tiny-bert__task-cola__head-cls__seed-0"


def test_a_cell_whose_notebook_could_not_be_saved_is_not_gathered_and_runs_again(tmp_path):
    config, paths = _grid(tmp_path)
    calls: list[str] = []
    report = _run(config, paths, calls, executor={"fail_saving": frozenset({PROBE_COLA})})
    assert list(report.failed) == [PROBE_COLA]
    gathered = results.load_results(paths.results_csv)
    assert len(gathered) == 2  # the fine-tuning and pre-trained cells; not the failed one's row
    calls.clear()
    assert _run(config, paths, calls).ok and calls == [PROBE_COLA]  # not skipped as complete
    assert len(results.load_results(paths.results_csv)) == 3


def test_a_deleted_final_epoch_is_run_again_never_replaced_by_an_earlier_one(tmp_path):
    config, paths = _grid(tmp_path)
    assert _run(config, paths, []).ok
    run_dir = paths.cells_dir / FINETUNE_COLA
    (run_dir / "epoch-3" / checkpoints.CHECKPOINT_MARKER).unlink()
    with pytest.raises(FileNotFoundError, match=r"for 3 epochs but its last complete checkpoint is epoch 2"):
        checkpoints.final_checkpoint(run_dir)
    assert checkpoints.resolve_checkpoint(str(run_dir), epoch=2)[1] == 2  # an epoch asked for by number is fine
    # The grid sees the fine-tuning cell incomplete; its finished dependant is refused, not left on epoch 3's
    # old numbers, until --rerun-changed runs both.
    with pytest.raises(grid.cell_state.StaleCellsError, match=f"{PROBE_COLA}: depends on cell.*{FINETUNE_COLA}"):
        _run(config, paths, [])
    calls: list[str] = []
    assert _run(config, paths, calls, rerun_changed=True).ok and calls == [FINETUNE_COLA, PROBE_COLA]
    assert checkpoints.final_checkpoint(run_dir).name == "epoch-3"


@pytest.mark.parametrize("artefact", ["results.csv value", "results.csv deleted", "provenance.json",
                                      "another file of the cell", "executed notebook"])
def test_an_artefact_changed_after_the_cell_finished_is_not_trusted(tmp_path, artefact):
    config, paths = _grid(tmp_path)
    assert _run(config, paths, []).ok
    cell_dir = paths.cells_dir / PROBE_COLA
    before = paths.results_csv.read_bytes()
    if artefact == "results.csv value":
        (cell_dir / results.RESULTS_FILE).write_text((cell_dir / results.RESULTS_FILE).read_text().replace("1.0", "0.9"))
    elif artefact == "results.csv deleted":
        (cell_dir / results.RESULTS_FILE).unlink()
    elif artefact == "provenance.json":
        (cell_dir / results.PROVENANCE_FILE).write_text((cell_dir / results.PROVENANCE_FILE).read_text() + " ")
    elif artefact == "another file of the cell":  # e.g. probe_predictions.npz, valid but not the one written
        (cell_dir / "scores.bin").write_bytes(b"a valid-looking but different file")
    else:
        executed = paths.notebooks_dir / f"{PROBE_COLA}.ipynb"
        executed.write_text(executed.read_text()[:-5])
    cell = next(c for c in grid.expand(config, paths) if c.name == PROBE_COLA)
    assert grid.cells.incomplete_reasons(cell, grid.executed_notebook(cell, paths))  # said, not trusted
    logged: list[str] = []
    calls: list[str] = []
    grid.run_grid(config, paths, executor=_executor(calls), log=logged.append)
    assert calls == [PROBE_COLA]  # the other cells verify and are skipped
    assert any("runs again" in line for line in logged) or artefact == "results.csv deleted"
    assert paths.results_csv.read_bytes() == before  # the fake cell's own numbers are back


def test_a_failed_rerun_of_the_only_cell_leaves_no_stale_tables(tmp_path):
    path = tmp_path / "grid.yaml"
    settings = {"name": "t", "output_dir": str(tmp_path / "out"), "models": ["tiny-bert"],
                "probing": {"tasks": ["bigram_shift"], "max_train": 10}}
    path.write_text(yaml.safe_dump(settings))
    config = grid.load_config(path)
    paths = grid.resolve_paths(config)
    assert _run(config, paths, []).ok and paths.results_csv.exists()
    (paths.output_dir / claims.CLAIMS_FILE).write_text("stale")  # as an earlier run left them
    (paths.output_dir / delta_intervals.DELTA_INTERVALS_FILE).write_text("stale")
    settings["probing"]["max_train"] = 20
    path.write_text(yaml.safe_dump(settings))
    config = grid.load_config(path)
    failing = lambda cell, executed: (_ for _ in ()).throw(RuntimeError("boom"))  # noqa: E731
    report = grid.run_grid(config, paths, executor=failing, rerun_changed=True, continue_on_error=True,
                           log=lambda _: None)
    assert not report.ok
    for name in (results.RESULTS_FILE, claims.CLAIMS_FILE, delta_intervals.DELTA_INTERVALS_FILE):
        assert not (paths.output_dir / name).exists(), name


# --- Feature cache: every array verified by its sha256, recomputed when it does not verify ------------------


@pytest.mark.parametrize("damage", ["garbled", "truncated", "deleted", "no hashes (older probeft)", "bad metadata"])
def test_a_damaged_feature_cache_is_named_and_computed_again(tmp_path, damage):
    cache = tmp_path / "features"
    metadata = {"model": "m", "num_feature_layers": 2, "hidden_size": 3}
    features = {"cls": np.arange(12, dtype=np.float32).reshape(2, 2, 3)}
    feature_cache.load_or_extract(cache, metadata, lambda: features)
    array_file, record_file = cache / "cls.npy", cache / feature_cache.METADATA_FILE
    if damage == "garbled":  # same size, valid header, other values: np.load alone would accept it
        raw = bytearray(array_file.read_bytes())
        raw[-4:] = np.float32(123.0).tobytes()
        array_file.write_bytes(bytes(raw))
    elif damage == "truncated":
        array_file.write_bytes(array_file.read_bytes()[:-10])
    elif damage == "deleted":
        array_file.unlink()
    elif damage == "no hashes (older probeft)":
        record = json.loads(record_file.read_text())
        del record["arrays"]["cls"]["sha256"]
        record_file.write_text(json.dumps(record))
    else:
        record_file.write_text("{not json")
    computed = []
    with pytest.warns(RuntimeWarning, match=r"(cls\.npy|metadata\.json).*computing these features again"):
        again = feature_cache.load_or_extract(cache, metadata, lambda: computed.append(1) or features)
    assert computed == [1] and np.array_equal(again["cls"], features["cls"])
    cached = feature_cache.load_or_extract(cache, metadata, lambda: pytest.fail("must be cached now"))
    assert np.array_equal(cached["cls"], again["cls"])


def test_a_cache_of_other_weights_says_not_to_just_delete_it(tmp_path):
    cache = tmp_path / "features"
    feature_cache.load_or_extract(cache, {"model": "m", "model_fingerprint": {"revision": "a"}},
                                  lambda: {"cls": np.zeros((1, 2, 3))})
    with pytest.raises(feature_cache.FeatureCacheMismatch, match="restore the model first") as caught:
        feature_cache.load_or_extract(cache, {"model": "m", "model_fingerprint": {"revision": "b"}}, dict)
    assert '{"revision": "a"}' in str(caught.value) and '{"revision": "b"}' in str(caught.value)


# --- Unclear errors made clear; crash leftovers; Ctrl-C -----------------------------------------------------


def test_an_output_dir_that_is_a_file_is_named(tmp_path, capsys):
    _, paths = _grid(tmp_path)
    (tmp_path / "out").write_text("not a folder")
    assert cli.main(["grid", str(tmp_path / "grid.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"output_dir {tmp_path / 'out'} is a file" in err and "Traceback" not in err


def test_a_model_spec_that_is_a_file_is_named(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"model spec '.*model.safetensors' is a file; give the folder"):
        models.resolve_model(str(weights))


@pytest.mark.parametrize("content", [b"PK\x03\x04 not a zip archive", b""])
def test_a_corrupt_predictions_file_is_named(tmp_path, content):
    (tmp_path / predictions.PREDICTIONS_FILE).write_bytes(content)
    with pytest.raises(ValueError, match=f"{predictions.PREDICTIONS_FILE}: not a valid"):
        predictions.load_predictions(tmp_path)


def test_crash_leftovers_are_removed_by_the_next_run(tmp_path):
    config, paths = _grid(tmp_path)
    assert _run(config, paths, []).ok
    leftovers = [paths.cells_dir / PROBE_COLA / ".results.csv.ab12cd34.tmp",
                 paths.cells_dir / FINETUNE_COLA / ".epoch-3.tmp-x1y2z3w4",
                 paths.cache_dir / "features" / ".some-set.old-abcdefgh"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".tmp":
            path.write_text("half")
        else:
            (path / "inner").mkdir(parents=True)
    keep = paths.cells_dir / PROBE_COLA / ".hidden-but-ours"
    keep.write_text("not a temporary name")
    logged: list[str] = []
    grid.run_grid(config, paths, executor=_executor([]), log=logged.append)
    assert not any(path.exists() for path in leftovers) and keep.exists()
    assert "removed 3 half-written file(s) or folder(s) left by an interrupted run" in logged
    assert files.remove_crash_leftovers(tmp_path / "nowhere") == []


def test_ctrl_c_ends_with_one_line_saying_what_finished(tmp_path, monkeypatch, capsys):
    _grid(tmp_path)
    calls: list[str] = []

    def interrupted_on_the_third(cell, executed):
        if len(calls) == 2:
            raise KeyboardInterrupt
        _executor(calls)(cell, executed)

    monkeypatch.setattr(runner, "run_grid", functools.partial(runner.run_grid, executor=interrupted_on_the_third))
    assert cli.main(["grid", str(tmp_path / "grid.yaml")]) == 130
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "interrupted; 2 of 3 cells are complete" in err and "same command" in err
    assert not (tmp_path / "out" / grid.LOCK_FILE).exists()  # the lock is released for the resume


# --- Kills at exact writes on a real grid (papermill, kernels, checkpoints, feature cache) -------------------


# Each point is reached by one process: the notebook kernel (results.csv, provenance.json, a checkpoint or
# feature-set folder) or the grid driver (the seal, written after papermill returns).
KILL_POINTS = ["write:results.csv", "write:provenance.json", "dir:epoch-1", "dir:*__bigram_shift__*",
               "write:cell-seal.json"]


def _real_grid(tmp_path: Path, demo_data_dir: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "data_dir": str(demo_data_dir), "device": "cpu", "output_dir": str(tmp_path / name),
        "models": ["tiny-bert-L2"],
        "finetune": {"tasks": ["cola"], "epochs": 1, "max_train": 32, "max_eval": 32, "learning_rate": 1e-3},
        "probing": {"tasks": ["bigram_shift"], "finetune_tasks": ["cola"], "max_train": 64, "max_eval": 32,
                    "mdl": False},
    }))
    return path


def _grid_process(config: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(files.FAULT_ENV, None)
    if fault:
        env[files.FAULT_ENV] = fault
    return subprocess.run([sys.executable, "-m", "probeft.grid.cli", "grid", str(config)], env=env,
                          capture_output=True, text=True, timeout=600)


def _table(run_dir: Path) -> pd.DataFrame:
    return results.load_results(run_dir / results.RESULTS_FILE).drop(columns=["wall_time_s"], errors="ignore")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, demo_data_dir) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("uninterrupted")
    done = _grid_process(_real_grid(root, demo_data_dir, "reference"))
    assert done.returncode == 0, done.stderr[-2000:]
    return _table(root / "reference")


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_kill_at_an_exact_write_resumes_to_the_uninterrupted_results(tmp_path, demo_data_dir, uninterrupted, point):
    config = _real_grid(tmp_path, demo_data_dir, "killed")
    killed = _grid_process(config, fault=point)
    assert killed.returncode != 0  # the driver died (-9), or reported its cell's dead kernel (1)
    run_dir = tmp_path / "killed"
    if killed.returncode == 1:
        assert "failed" in killed.stdout
    resumed = _grid_process(config)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    pd.testing.assert_frame_equal(_table(run_dir), uninterrupted)
    assert not [p for p in run_dir.rglob(".*") if ".tmp" in p.name or ".old-" in p.name]  # no leftovers
    assert not (run_dir / grid.LOCK_FILE).exists()


def test_weights_changed_in_a_local_model_folder_make_its_cells_run_again(tmp_path, tiny_models):
    folder = Path(shutil.copytree(tiny_models["tiny-bert"], tmp_path / "my-model"))
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({
        "name": "t", "output_dir": str(tmp_path / "out"), "models": [{"name": "mine", "spec": str(folder)}],
        "probing": {"tasks": ["bigram_shift"]}, "attention": {"heads": ["cls"]},
        "finetune": {"tasks": ["cola"], "heads": ["cls"]},
    }))
    config = grid.load_config(path)
    paths = grid.resolve_paths(config)
    assert _run(config, paths, []).ok
    calls: list[str] = []
    assert _run(config, paths, calls).ok and calls == []  # unchanged: all skipped
    weights = next(folder.glob("*.safetensors"))
    raw = bytearray(weights.read_bytes())
    raw[-4:] = bytes(4)
    weights.write_bytes(bytes(raw))
    logged: list[str] = []
    assert grid.run_grid(config, paths, executor=_executor(calls), log=logged.append).ok
    assert sorted(calls) == sorted(c.name for c in grid.expand(config, paths))  # every cell used that folder
    assert any(f"the weights in the model folder {folder} changed" in line for line in logged)
