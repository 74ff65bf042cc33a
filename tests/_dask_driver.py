"""A grid driver for tests/test_grid_dask.py: ``run_grid`` with the fake executor, as its own process.

Usage: ``python tests/_dask_driver.py CONFIG MARKERS --workers N [--sleep S] [--sleep-except CELL ...]``;
exits 0 when every cell succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import functools
import sys

import _dask_executors  # next to this script: sys.path[0]
import cloudpickle

from probeft import grid


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("markers")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--sleep-except", nargs="*", default=[])
    args = parser.parse_args()
    cloudpickle.register_pickle_by_value(_dask_executors)  # the workers need not import tests/
    config = grid.load_config(args.config)
    executor = functools.partial(_dask_executors.fake_cell, markers=args.markers, sleep_s=args.sleep,
                                 sleep_except=set(args.sleep_except))
    report = grid.run_grid(config, grid.resolve_paths(config), executor=executor, workers=args.workers)
    return 0 if report.ok else 1


if __name__ == "__main__":  # the workers are spawned processes: they must not run the grid again
    sys.exit(main())
