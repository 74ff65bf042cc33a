"""The grid on Dask distributed (probeft.grid.dask_backend): real clusters of worker processes, a fake executor.

Most tests share one LocalCluster of two worker processes (``scheduler=`` its address, the
``--scheduler`` path); the driver-kill test starts its own with ``--workers 2`` in a subprocess, and the
GPU test a SpecCluster of two pinned workers for two pretend GPUs. The slow test runs the real notebooks.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import dask
import pandas as pd
import pytest
import yaml

distributed = pytest.importorskip("distributed")

import _dask_executors  # noqa: E402 - tests/ is on sys.path (pytest's rootdir conftest)

from probeft import grid, results
from probeft.grid import cli, runner  # noqa: E402

# The fake executor travels to the workers by value: they never import tests/.
cloudpickle.register_pickle_by_value(_dask_executors)

TESTS_DIR = Path(__file__).resolve().parent
FT_COLA = "finetune__model-tiny-bert__task-cola__head-cls__seed-0"
FT_RTE = "finetune__model-tiny-bert__task-rte__head-cls__seed-0"
PR_NONE = "probing__model-tiny-bert__ft-none__seed-0"
PR_COLA = "probing__model-tiny-bert__ft-cola-cls__seed-0"
PR_RTE = "probing__model-tiny-bert__ft-rte-cls__seed-0"
SMALL_CELLS = [FT_COLA, FT_RTE, PR_NONE, PR_COLA, PR_RTE]
# A grid with every stage, as in tests/test_grid.py: 13 cells, fine-tuning ones needed by several others.
WIDE = {
    "name": "t",
    "models": ["tiny-bert", {"name": "rob", "spec": "tiny-roberta"}],
    "finetune": {"tasks": ["cola"], "seeds": [0, 1], "max_train": 8},
    "probing": {"tasks": ["bigram_shift"], "finetune_tasks": ["none", "cola"]},
    "attention": {"models": ["rob"], "finetune_task": "cola", "heads": ["cls", "mean"]},
    "perplexity": {"models": ["tiny-bert"], "finetune_tasks": ["cola"], "seeds": [0, 1]},
}
SMALL = {
    "name": "t",
    "models": ["tiny-bert"],
    "finetune": {"tasks": ["cola", "rte"]},
    "probing": {"tasks": ["bigram_shift"], "finetune_tasks": ["none", "cola", "rte"]},
}


@pytest.fixture(scope="module")
def scheduler():
    """A LocalCluster of 2 worker processes (1 thread each); a task may kill its worker twice, not three times."""
    # worker-saturation 1, as probeft's own clusters (and the README's advice for a --scheduler cluster)
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}), distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=0,
                                  dashboard_address=None, scheduler_kwargs={"allowed_failures": 2}) as cluster:
        yield cluster.scheduler_address


def make_grid(tmp_path: Path, name: str, spec: dict) -> tuple[Path, grid.GridConfig, grid.GridPaths]:
    folder = tmp_path / name
    folder.mkdir()
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump({**spec, "output_dir": str(folder / "out")}))
    config = grid.load_config(path)
    return path, config, grid.resolve_paths(config)


def executor(markers: Path | None = None, **options):
    return functools.partial(_dask_executors.fake_cell, markers=str(markers) if markers else None, **options)


def quiet(_: str) -> None:
    pass


def test_distributed_results_equal_the_sequential_run_and_resume(tmp_path, scheduler):
    _, config, sequential = make_grid(tmp_path, "seq", WIDE)
    _, _, distributed_paths = make_grid(tmp_path, "dask", WIDE)
    reference = grid.run_grid(config, sequential, executor=executor(), log=quiet)
    lines: list[str] = []
    report = grid.run_grid(config, distributed_paths, executor=executor(), scheduler=scheduler, log=lines.append)
    total = len(grid.expand(config, sequential))
    assert report.ok and report.ran == reference.ran and len(report.ran) == total == 13
    for table in ("results.csv", "claims.csv"):
        assert (distributed_paths.output_dir / table).read_bytes() == (sequential.output_dir / table).read_bytes()
    assert not (distributed_paths.output_dir / grid.LOCK_FILE).exists()
    # the progress line and per-cell lines
    # (after the pins line: this grid has no data dir, so it would fetch GLUE and SentEval from the hub)
    assert lines[0].startswith("could not pin dataset Salesforce/wikitext, dataset nyu-mll/glue")
    assert lines[1].startswith(f"Dask cluster at {scheduler}: 2 worker(s), 2 thread(s)")
    assert f"progress: 0 done, 0 running, 0 failed, {total} pending" in lines
    assert lines.index(f"progress: {total} done, 0 running, 0 failed, 0 pending") < next(
        i for i, line in enumerate(lines) if line.startswith(f"gathered {total} rows"))
    assert any(line.endswith(": running attention.ipynb") for line in lines)
    assert any(" running, " in line and "progress: " in line and " 0 running" not in line for line in lines)
    # resume: complete cells are skipped in the driver, so no task is submitted
    again = grid.run_grid(config, distributed_paths, executor=executor(), scheduler=scheduler, log=quiet)
    assert again.ok and again.ran == [] and len(again.skipped) == total


def test_a_worker_killed_mid_cell_is_replaced_and_the_cell_rerun(tmp_path, scheduler):
    _, config, reference = make_grid(tmp_path, "ref", SMALL)
    _, _, paths = make_grid(tmp_path, "killed", SMALL)
    grid.run_grid(config, reference, executor=executor(), log=quiet)
    markers = tmp_path / "markers"
    markers.mkdir()
    report = grid.run_grid(config, paths, executor=executor(markers, kill_once={FT_COLA, PR_NONE}),
                           scheduler=scheduler, log=quiet)
    assert report.ok and report.ran == SMALL_CELLS
    assert (markers / f"killed-{FT_COLA}").exists() and (markers / f"killed-{PR_NONE}").exists()
    # the killed attempts' partial results.csv (a "999" row, no completion marker) was never taken as complete
    assert paths.results_csv.read_bytes() == reference.results_csv.read_bytes()
    assert "999" not in (paths.cells_dir / FT_COLA / "results.csv").read_text()


def test_a_cell_whose_worker_keeps_dying_fails_as_killed_worker(tmp_path, scheduler):
    _, config, paths = make_grid(tmp_path, "dying", SMALL)
    report = grid.run_grid(config, paths, executor=executor(tmp_path, kill_always={FT_RTE}), scheduler=scheduler,
                           continue_on_error=True, log=quiet)
    assert list(report.failed) == [FT_RTE, PR_RTE]
    assert report.failed[FT_RTE].startswith("KilledWorker: the worker process running this cell died 3 times")
    assert report.failed[PR_RTE] == f"depends on failed cell(s) {[FT_RTE]}"
    assert report.ran == [FT_COLA, PR_NONE, PR_COLA]


@pytest.mark.parametrize("continue_on_error", [True, False])
def test_failures_are_listed_as_in_the_sequential_run(tmp_path, scheduler, continue_on_error):
    _, config, sequential = make_grid(tmp_path, "seq", SMALL)
    _, _, paths = make_grid(tmp_path, "dask", SMALL)
    # every cell but the failing one takes a second: the stop reaches cells that start after it
    failing = executor(fail={FT_COLA}, sleep_s=1.0)
    reference = grid.run_grid(config, sequential, executor=failing, continue_on_error=continue_on_error, log=quiet)
    lines: list[str] = []
    report = grid.run_grid(config, paths, executor=failing, scheduler=scheduler, continue_on_error=continue_on_error,
                           log=lines.append)
    assert report.failed == reference.failed
    assert "  " + FT_COLA + ": RuntimeError: boom" in lines
    if continue_on_error:
        assert report.failed == {FT_COLA: "RuntimeError: boom", PR_COLA: f"depends on failed cell(s) {[FT_COLA]}"}
        assert report.ran == reference.ran == [FT_RTE, PR_NONE, PR_RTE]
    else:
        assert reference.failed == {FT_COLA: "RuntimeError: boom"} and reference.ran == []
        # cells running at the failure finish; PR_RTE starts after FT_RTE's second, when the grid has stopped
        assert PR_RTE not in report.ran and set(report.ran) <= {FT_RTE, PR_NONE}
        assert not results.cell_complete(paths.cells_dir / PR_RTE)


def is_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_a_killed_driver_resumes_after_taking_over_its_stale_lock(tmp_path, scheduler):
    config_path, config, paths = make_grid(tmp_path, "driver", SMALL)
    _, _, reference = make_grid(tmp_path, "ref", SMALL)
    grid.run_grid(config, reference, executor=executor(), log=quiet)
    markers = tmp_path / "markers"
    markers.mkdir()
    command = [sys.executable, str(TESTS_DIR / "_dask_driver.py"), str(config_path), str(markers), "--workers", "2",
               "--sleep", "60", "--sleep-except", FT_COLA]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not results.cell_complete(paths.cells_dir / FT_COLA):
            assert driver.poll() is None, driver.stderr.read()
            assert time.time() < deadline, "the driver completed no cell within 120 s"
            time.sleep(0.1)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=10)
    finally:
        if driver.poll() is None:
            driver.kill()
    lock = json.loads((paths.output_dir / grid.LOCK_FILE).read_text())
    assert lock["pid"] == driver.pid and lock["host"] == socket.gethostname()  # the dead driver's lock
    # its workers exit with it (they watch their parent): none keeps writing into the output dir
    workers = [int(p.name.removeprefix("pid-")) for p in markers.glob("pid-*")]
    assert workers
    deadline = time.time() + 20
    while any(is_alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(is_alive(pid) for pid in workers)
    report = grid.run_grid(config, paths, executor=executor(), scheduler=scheduler, log=quiet)
    assert report.ok and report.skipped == [FT_COLA] and report.ran == SMALL_CELLS[1:]
    assert paths.results_csv.read_bytes() == reference.results_csv.read_bytes()
    assert not (paths.output_dir / grid.LOCK_FILE).exists()


def test_gpu_workers_are_pinned_one_per_gpu(tmp_path, monkeypatch):
    # Two pretend GPUs: the SpecCluster, the env pinning and the GPU resource work without CUDA.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's thread count reaches every worker (Dask's own is 1)
    _, config, paths = make_grid(tmp_path, "gpus", SMALL)
    markers = tmp_path / "markers"
    markers.mkdir()
    lines: list[str] = []
    report = grid.run_grid(config, paths, executor=executor(markers), workers=None, log=lines.append)
    assert report.ok and report.ran == SMALL_CELLS
    assert any(line.endswith("2 worker(s), 2 thread(s), 2 GPU slot(s)") for line in lines)
    seen = {name: (markers / f"env-{name}").read_text() for name in SMALL_CELLS}
    assert set(seen.values()) <= {"0", "1"}
    assert {(markers / f"threads-{name}").read_text() for name in SMALL_CELLS} == {"3"}


def test_gpu_worker_spec_pins_each_worker_and_packs_cells():
    spec = grid_dask().gpu_worker_spec(["0", "3"], cells_per_gpu=2)
    assert list(spec) == ["gpu-0", "gpu-3"]
    for gpu, worker in zip(["0", "3"], spec.values()):
        assert worker["cls"] is distributed.Nanny
        options = worker["options"]
        assert options["env"]["CUDA_VISIBLE_DEVICES"] == gpu
        assert (options["nthreads"], options["resources"]) == (2, {"GPU": 2})


def test_each_cell_gets_its_share_of_the_cores_unless_the_user_set_the_threads(monkeypatch):
    module = grid_dask()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(module.os, "sched_getaffinity", lambda _: set(range(16)))
    assert module.thread_environment(2) == dict.fromkeys(module.THREAD_VARIABLES, "8")
    assert module.thread_environment(32)["OMP_NUM_THREADS"] == "1"
    spec = module.gpu_worker_spec(["0", "1"], cells_per_gpu=2)
    assert {w["options"]["env"]["MKL_NUM_THREADS"] for w in spec.values()} == {"4"}
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert module.thread_environment(2) == dict.fromkeys(module.THREAD_VARIABLES, "3")


def grid_dask():
    from probeft.grid import dask_backend as module

    return module


@pytest.mark.parametrize(("visible", "expected"), [("0,2", ["0", "2"]), ("", []), ("-1", []), ("1,-1,2", ["1"]),
                                                   ("GPU-5e1a, GPU-77b2", ["GPU-5e1a", "GPU-77b2"])])
def test_visible_gpus_follow_cuda_visible_devices(monkeypatch, visible, expected):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert grid.visible_gpu_ids() == expected


@pytest.mark.parametrize(
    ("visible", "device", "workers", "cells_per_gpu", "expected"),
    [
        ("0,1", "auto", None, 1, {"gpu_ids": ("0", "1"), "cells_per_gpu": 1}),
        ("0,1", "cuda", None, 2, {"gpu_ids": ("0", "1"), "cells_per_gpu": 2}),
        ("0", "auto", None, 1, None),  # one GPU, one cell at a time: the sequential run is the same
        ("0", "auto", None, 3, {"gpu_ids": ("0",), "cells_per_gpu": 3}),
        ("0,1", "cpu", None, 1, None),  # the config chose the device of every cell
        ("0,1", "cuda:1", None, 1, None),
        ("", "auto", None, 1, None),
        ("0,1", "auto", 1, 1, None),
        ("", "auto", 3, 1, {"workers": 3}),
    ],
)
def test_backend_choice(tmp_path, monkeypatch, visible, device, workers, cells_per_gpu, expected):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    _, config, _ = make_grid(tmp_path, "choice", {**SMALL, "device": device})
    assert runner._dask_request(config, workers, None, cells_per_gpu, quiet) == expected


@pytest.mark.parametrize(
    ("options", "flag"),
    [({"workers": 0}, "--workers"), ({"workers": -2}, "--workers"), ({"cells_per_gpu": 0}, "--cells-per-gpu"),
     ({"workers": 2, "scheduler": "tcp://x:1"}, "--workers 2 and --scheduler"),
     ({"workers": 2, "cells_per_gpu": 2}, "--cells-per-gpu"), ({"scheduler": " "}, "--scheduler")],
)
def test_bad_backend_options_name_the_flag(tmp_path, options, flag):
    _, config, paths = make_grid(tmp_path, "bad", SMALL)
    with pytest.raises(ValueError, match=flag):
        grid.run_grid(config, paths, executor=executor(), log=quiet, **options)
    assert not paths.output_dir.exists()


def test_cli_rejects_workers_0_and_an_unreachable_scheduler_quickly(tmp_path, capsys):
    path, _, paths = make_grid(tmp_path, "cli", SMALL)
    assert cli.main(["grid", str(path), "--workers", "0"]) == 2
    assert "--workers (workers) must be a whole number >= 1, got 0" in capsys.readouterr().err
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    started = time.time()
    assert cli.main(["grid", str(path), "--scheduler", address]) == 2
    assert time.time() - started < 30
    assert f"--scheduler {address}: can't reach a Dask scheduler there within 10 s" in capsys.readouterr().err
    assert not (paths.output_dir / grid.LOCK_FILE).exists()


def test_the_sequential_path_never_imports_dask(tmp_path):
    _, config, paths = make_grid(tmp_path, "seq", SMALL)
    script = (
        "import sys, functools; sys.path.insert(0, sys.argv[2])\n"
        "import _dask_executors; from probeft import grid\n"
        "config = grid.load_config(sys.argv[1]); paths = grid.resolve_paths(config)\n"
        "report = grid.run_grid(config, paths, executor=_dask_executors.fake_cell, log=lambda _: None)\n"
        "assert report.ok and len(report.ran) == 5, report\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'probeft.grid.dask_backend'))\n"
        "assert not loaded and 'probeft.grid.dask_backend' not in sys.modules, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(paths.output_dir.parent / "grid.yaml"), str(TESTS_DIR)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_real_notebooks_on_two_workers_match_the_sequential_run(tmp_path, demo_data_dir, monkeypatch):
    # The same torch threads on both backends (2, not Dask's default of 1): then CPU numbers are identical.
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    spec = {
        "name": "dask-e2e", "data_dir": str(demo_data_dir), "device": "cpu", "models": ["tiny-bert-L2"],
        "finetune": {"tasks": ["cola"], "epochs": 1, "max_train": 32, "max_eval": 32, "learning_rate": 1e-3},
        "probing": {"tasks": ["bigram_shift"], "finetune_tasks": ["none", "cola"], "max_train": 64, "max_eval": 32},
    }
    _, config, sequential = make_grid(tmp_path, "seq", spec)
    _, _, paths = make_grid(tmp_path, "dask", spec)
    assert grid.run_grid(config, sequential, log=quiet).ok
    report = grid.run_grid(config, paths, workers=2, log=quiet)
    assert report.ok and len(report.ran) == 3
    assert sorted(p.name for p in paths.notebooks_dir.iterdir()) == sorted(p.name for p in sequential.notebooks_dir.iterdir())
    keys = [c for c in results.RESULT_COLUMNS if c != "value"]

    def table(run: grid.GridPaths) -> pd.DataFrame:
        frame = results.load_results(run.results_csv)
        frame = frame.drop(columns=[c for c in frame.columns if c.startswith("wall_time")])  # timings differ
        return frame.sort_values(keys, kind="stable").reset_index(drop=True)

    pd.testing.assert_frame_equal(table(paths), table(sequential), check_exact=True)
    for cell in paths.cells_dir.iterdir():
        assert json.loads((cell / results.PROVENANCE_FILE).read_text())["torch_threads"] == 2
