"""Benchmark: one grid run sequentially (``--workers 1``) and on a local Dask cluster (``--workers N``).

Runs ``probeft grid CONFIG`` twice through the command line, into two fresh output dirs (and one
generated data dir when the config has ``demo_data: true``), and prints both wall times, their ratio
and whether the gathered ``results.csv`` match: byte-identical, and else the same rows with values
within ``--atol`` after sorting (timing columns such as ``wall_time_s`` left out).

Run ``.venv/bin/python benchmarks/bench_grid_workers.py [--config configs/demo.yaml] [--workers 2]
[--stage probing ...] [--dry-run] [--root DIR] [--keep]``. ``--threads T`` exports ``OMP_NUM_THREADS=T`` to both runs: with the same threads per cell the
tables are identical; by default the sequential cells use every core and each Dask cell an equal share,
so summation order (and the last digits) differ. ``--dry-run`` only checks that both commands
start (it lists the cells; nothing runs). With ``--stage probing`` alone the fine-tuning cells are not
run, so the fine-tuned probing cells fail; use it to time the pre-trained probing cells only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from probeft import results

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_grid_command(config: Path, output_dir: Path, data_dir: Path, workers: int, stages: list[str],
                     dry_run: bool) -> tuple[float, int]:
    """Run ``probeft grid`` once; returns (wall seconds, exit code). Its output goes to ``<output_dir>.log``."""
    command = [sys.executable, "-m", "probeft.cli", "grid", str(config), "--output-dir", str(output_dir),
               "--data-dir", str(data_dir), "--workers", str(workers), "--continue-on-error"]
    command += [arg for stage in stages for arg in ("--stage", stage)]
    command += ["--dry-run"] if dry_run else []
    log_path = output_dir.with_suffix(".log")
    started = time.perf_counter()
    with log_path.open("w") as log:
        code = subprocess.call(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    print(f"--workers {workers}: {seconds:.1f} s, exit {code} (log: {log_path})")
    return seconds, code


def comparable(path: Path) -> pd.DataFrame:
    """A gathered results table without timing columns, sorted by its key columns."""
    table = results.load_results(path)
    table = table.drop(columns=[c for c in table.columns if c.startswith("wall_time")])
    keys = [c for c in results.RESULT_COLUMNS if c != "value" and c in table.columns]
    return table.sort_values(keys, kind="stable").reset_index(drop=True)


def compare_results(sequential: Path, distributed: Path, atol: float) -> str:
    """How the two gathered tables compare, in words."""
    if not (sequential.is_file() and distributed.is_file()):
        return f"not comparable: missing {[str(p) for p in (sequential, distributed) if not p.is_file()]}"
    if sequential.read_bytes() == distributed.read_bytes():
        return "results.csv byte-identical"
    try:
        pd.testing.assert_frame_equal(comparable(distributed), comparable(sequential), check_exact=False,
                                      rtol=0, atol=atol)
    except AssertionError as difference:
        return f"results.csv DIFFER: {str(difference).splitlines()[0]}"
    return f"results.csv equal (same rows, values within {atol:g}, timings ignored)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "demo.yaml"))
    parser.add_argument("--workers", type=int, default=2, help="workers of the distributed run (default 2)")
    parser.add_argument("--stage", action="append", default=[], help="only this stage (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="only check that both runs start")
    parser.add_argument("--root", help="folder for the two runs (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the runs (a --root is always kept)")
    parser.add_argument("--threads", type=int,
                        help="OMP_NUM_THREADS of every cell on both backends (equal threads: identical CPU numbers; "
                             "default: all cores sequentially, an equal share per worker on Dask)")
    parser.add_argument("--atol", type=float, default=1e-6, help="value tolerance of the comparison")
    args = parser.parse_args()
    if args.threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # both runs' cells inherit it (probeft.grid_dask)
    root = Path(args.root or tempfile.mkdtemp(prefix="bench-grid-workers-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    config = Path(args.config).resolve()
    try:
        timings = {}
        for workers in (1, args.workers):
            timings[workers], _ = run_grid_command(config, root / f"workers-{workers}", root / "data", workers,
                                                   args.stage, args.dry_run)
        sequential, distributed = timings[1], timings[args.workers]
        print(f"sequential {sequential:.1f} s, {args.workers} workers {distributed:.1f} s: "
              f"speed-up x{sequential / distributed:.2f}")
        if not args.dry_run:
            print(compare_results(root / "workers-1" / results.RESULTS_FILE,
                                  root / f"workers-{args.workers}" / results.RESULTS_FILE, args.atol))
    finally:
        if not (args.keep or args.root):
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"runs kept in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
