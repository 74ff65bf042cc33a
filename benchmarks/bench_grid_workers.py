"""Benchmark: one grid run sequentially (``--workers 1``) and on a local Dask cluster (``--workers N``).

Runs ``probeft grid CONFIG`` twice through the command line, into two fresh output dirs (and one
generated data dir when the config has ``demo_data: true``), and prints both wall times, their ratio
and whether the gathered ``results.csv`` match: byte-identical, and else the same rows with values
within ``--atol`` after sorting (timing columns such as ``wall_time_s`` left out).

Run ``.venv/bin/python benchmarks/bench_grid_workers.py [--config configs/demo.yaml] [--workers 2]
[--stage probing ...] [--dry-run] [--root DIR] [--keep]``. ``--threads T`` exports ``OMP_NUM_THREADS=T`` to both runs: with the same threads per cell the
tables are identical; by default the sequential cells use every core and each Dask cell an equal share,
so summation order (and the last digits) differ. ``--dry-run`` only checks that both commands
start (it lists the cells; nothing runs).

On a GPU machine, ``--cells-per-gpu K`` makes the second run ``probeft grid --cells-per-gpu K`` (K cells packed
on each visible GPU, no ``--workers``) instead of ``--workers N``. Each run's cell wall times are summed per
stage (and the stage's span, first start to last end, from the cells' provenance); where ``nvidia-smi`` exists
the GPU utilisation and memory are sampled every 0.5 s during each run. ``--out FILE`` writes all of it as JSON. With ``--stage probing`` alone the fine-tuning cells are not
run, so the fine-tuned probing cells fail; use it to time the pre-trained probing cells only.
"""

from __future__ import annotations

import argparse
import json
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


def run_grid_command(config: Path, output_dir: Path, data_dir: Path, backend: list[str], stages: list[str],
                     dry_run: bool) -> tuple[float, int]:
    """Run ``probeft grid`` once; returns (wall seconds, exit code). Its output goes to ``<output_dir>.log``.

    ``backend`` is ``["--workers", "N"]`` or ``["--cells-per-gpu", "K"]``.
    """
    command = [sys.executable, "-m", "probeft.grid.cli", "grid", str(config), "--output-dir", str(output_dir),
               "--data-dir", str(data_dir), *backend, "--continue-on-error"]
    command += [arg for stage in stages for arg in ("--stage", stage)]
    command += ["--dry-run"] if dry_run else []
    log_path = output_dir.with_suffix(".log")
    started = time.perf_counter()
    with log_path.open("w") as log:
        code = subprocess.call(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    print(f"{' '.join(backend)}: {seconds:.1f} s, exit {code} (log: {log_path})")
    return seconds, code


def stage_times(run_dir: Path) -> dict[str, dict[str, float]]:
    """Per stage: cells, summed cell wall seconds, and span (first start to last end) from the provenance."""
    by_stage: dict[str, list[tuple[float, float]]] = {}
    for provenance in sorted(run_dir.glob(f"cells/*/{results.PROVENANCE_FILE}")):
        record = json.loads(provenance.read_text(encoding="utf-8"))
        start = time.mktime(time.strptime(record["started"], "%Y-%m-%dT%H:%M:%S%z"))
        by_stage.setdefault(provenance.parent.name.split("__")[0], []).append((start, float(record["wall_time_s"])))
    return {stage: {"cells": len(runs), "cell_seconds": round(sum(w for _, w in runs), 1),
                    "span_seconds": round(max(s + w for s, w in runs) - min(s for s, _ in runs), 1)}
            for stage, runs in by_stage.items()}


class GpuSampler:
    """``nvidia-smi`` sampling every 0.5 s while a run lasts (nothing where there is no nvidia-smi)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.samples: list[tuple[float, float]] = []  # (utilisation %, memory MiB) per GPU and sample

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi"):
            self.process = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                 "-lms", "500"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is None:
            return
        self.process.terminate()
        output, _ = self.process.communicate()
        for line in output.splitlines():
            fields = [f.strip() for f in line.split(",")]
            if len(fields) == 3 and fields[1].isdigit():
                self.samples.append((float(fields[1]), float(fields[2])))

    def summary(self) -> dict[str, float] | None:
        if not self.samples:
            return None
        utilisation = [u for u, _ in self.samples]
        return {"samples": len(self.samples), "mean_utilisation_pct": round(sum(utilisation) / len(utilisation), 1),
                "max_memory_mib": max(m for _, m in self.samples)}


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
    first, second = comparable(sequential), comparable(distributed)
    numbers = [c for c in first.columns if pd.api.types.is_float_dtype(first[c])]
    keys = [c for c in first.columns if c not in numbers]
    if len(first) != len(second) or list(first.columns) != list(second.columns) or not first[keys].equals(second[keys]):
        return f"results.csv DIFFER in rows: {len(first)} vs {len(second)} rows, or other key columns"
    # NaN in both (a column that does not apply to the row) is no difference.
    gaps = {c: (first[c] - second[c]).abs().fillna(0.0) for c in numbers}
    differing = {c: int((gap > atol).sum()) for c, gap in gaps.items() if (gap > atol).any()}
    if not differing:
        return f"results.csv equal (same {len(first)} rows, numbers within {atol:g}, timings ignored)"
    worst = gaps["value"].idxmax()
    return (f"results.csv: same {len(first)} rows; values beyond {atol:g} per column {differing}; largest value "
            f"gap {gaps['value'].max():.3g} ({first.loc[worst, 'stage']}/{first.loc[worst, 'metric']} "
            f"= {first.loc[worst, 'value']:.6g})")


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
    parser.add_argument("--cells-per-gpu", type=int,
                        help="GPU machine: the second run packs K cells per GPU (instead of --workers N)")
    parser.add_argument("--out", help="write wall times, stage times, GPU samples and the comparison as JSON")
    args = parser.parse_args()
    if args.threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # both runs' cells inherit it (probeft.grid.dask_backend)
    root = Path(args.root or tempfile.mkdtemp(prefix="bench-grid-workers-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    config = Path(args.config).resolve()
    second = (f"cells-per-gpu-{args.cells_per_gpu}", ["--cells-per-gpu", str(args.cells_per_gpu)]) \
        if args.cells_per_gpu else (f"workers-{args.workers}", ["--workers", str(args.workers)])
    report: dict = {"config": str(config), "runs": {}}
    try:
        for name, backend in (("workers-1", ["--workers", "1"]), second):
            with GpuSampler() as sampler:
                seconds, code = run_grid_command(config, root / name, root / "data", backend, args.stage, args.dry_run)
            report["runs"][name] = {"seconds": round(seconds, 1), "exit": code, "stages": stage_times(root / name),
                                    "gpu": sampler.summary()}
            print(f"  stages: {report['runs'][name]['stages']}; gpu: {report['runs'][name]['gpu']}")
        sequential, distributed = (report["runs"][name]["seconds"] for name in ("workers-1", second[0]))
        report["speed_up"] = round(sequential / distributed, 3)
        print(f"sequential {sequential:.1f} s, {second[0]} {distributed:.1f} s: speed-up x{report['speed_up']:.2f}")
        if not args.dry_run:
            report["comparison"] = compare_results(root / "workers-1" / results.RESULTS_FILE,
                                                   root / second[0] / results.RESULTS_FILE, args.atol)
            print(report["comparison"])
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(report, indent=1))
    finally:
        if not (args.keep or args.root):
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"runs kept in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
