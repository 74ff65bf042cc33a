"""The grid's distributed backend: cells as Dask tasks on a local cluster, pinned GPU workers or a scheduler.

:func:`probeft.grid.run_grid` imports this module only when asked for more than one worker, a
scheduler address, or (by default) when two or more CUDA GPUs are visible. The semantics are those of
the sequential loop:

* each cell is one Dask task whose dependencies are the fine-tuning cells it needs
  (:attr:`probeft.grid.Cell.depends_on`); the task runs the cell with
  :func:`probeft.grid.attempt_cell` (papermill, or a test executor) in the worker and returns a small
  :class:`probeft.grid.CellOutcome`, never an exception, so a failed cell does not poison its
  dependants with a remote error: they return ``"blocked"`` without running;
* the driver checks completion markers (skip-if-complete) before submitting, holds the output dir's
  lock, and gathers the tables afterwards (:func:`probeft.grid.gather_outputs`);
* without ``continue_on_error`` the first failure sets a stop flag (in the scheduler's metadata):
  cells that have not started return ``"stopped"`` without running, running ones finish;
* a worker process that dies mid-cell (out of memory, SIGKILL, a Slurm job's end) makes Dask re-run
  that task on another worker, up to ``distributed.scheduler.allowed-failures`` (3) times; after that
  the cell fails with ``KilledWorker``. A cell's artefacts are written atomically with the completion
  marker last, so a killed attempt is never taken as complete;
* Dask also recomputes *finished* tasks whose (tiny) results died with a worker while a dependant still
  needs them; every attempt's outcome is kept in the scheduler's metadata for the run, so such a
  recomputation returns the recorded outcome instead of running the cell again.

Workers started here (:class:`distributed.LocalCluster`, or one :class:`distributed.Nanny` per GPU in a
:class:`distributed.SpecCluster`) share this machine's file system and its CPU cores: each cell's
kernel gets an equal share of them (:func:`thread_environment`). Workers of a ``--scheduler``
cluster must see the output and data dirs at the same paths and have probeft installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import os
import queue
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import dask
import distributed
from distributed import Client, LocalCluster, Nanny, Scheduler, SpecCluster

from probeft.grid.cells import Cell, CellOutcome, GridPaths, GridReport, attempt_cell, executed_notebook, failure_reason

__all__ = ["CONNECT_TIMEOUT_S", "GPU_RESOURCE", "THREAD_VARIABLES", "gpu_worker_spec", "open_client", "run_cells",
           "thread_environment"]

CONNECT_TIMEOUT_S = 10  # --scheduler: an unreachable address fails within this, never hangs
GPU_RESOURCE = "GPU"  # the worker resource a cell asks one unit of, when the cluster has it
POLL_S = 0.2  # how often the driver looks for finished and started cells
_DASHBOARD = ":8787"  # the scheduler's dashboard port (another free port when taken), when bokeh is installed
_METADATA = "probeft-grid"  # scheduler metadata: [_METADATA, run token, cell] -> outcome; [..., _STOP] -> bool
_STOP = "__stop__"
THREAD_VARIABLES: tuple[str, ...] = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def thread_environment(concurrent_cells: int) -> dict[str, str]:
    """CPU threads of each cell's kernel (torch reads them) when ``concurrent_cells`` run at once here.

    Dask's Nanny sets these variables to 1 in every worker (``distributed.nanny.pre-spawn-environ``) and
    the papermill kernels inherit them, so without this a cell on a 16-core machine with 2 workers would
    compute on one core. A value exported in the driver's ``OMP_NUM_THREADS`` wins: the same thread
    count on every backend is what makes CPU results identical to the sequential run's, since summation
    order follows the threads.

    Args:
        concurrent_cells: cells that may run at the same time on this machine.

    Returns:
        ``{variable: threads}`` for :data:`THREAD_VARIABLES`.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = os.environ.get("OMP_NUM_THREADS", "").strip() or str(max(1, cores // max(1, concurrent_cells)))
    return {name: threads for name in THREAD_VARIABLES}


def gpu_worker_spec(gpu_ids: Sequence[str], cells_per_gpu: int = 1) -> dict[str, dict[str, Any]]:
    """One :class:`distributed.Nanny` worker per GPU, pinned with its own ``CUDA_VISIBLE_DEVICES``.

    A LocalCluster gives every worker the same environment, so the GPU cluster is a SpecCluster of
    these specs. Each worker runs ``cells_per_gpu`` cells at once (threads) and offers as many units of
    the ``GPU`` resource; every cell asks for one.

    Args:
        gpu_ids: ``CUDA_VISIBLE_DEVICES`` entries (``"0"``, ``"3"``, or GPU UUIDs), one worker each.
        cells_per_gpu: cells packed on one GPU.

    Returns:
        ``{worker name: {"cls": Nanny, "options": {...}}}`` for ``SpecCluster(workers=...)``.
    """
    return {
        f"gpu-{gpu}": {
            "cls": Nanny,
            "options": {
                "env": {"CUDA_VISIBLE_DEVICES": str(gpu), **thread_environment(len(gpu_ids) * cells_per_gpu)},
                "nthreads": cells_per_gpu,
                "resources": {GPU_RESOURCE: cells_per_gpu},
                "memory_limit": 0,  # the notebooks run in kernel subprocesses; the Nanny must not kill a worker
                "host": "127.0.0.1",
                "silence_logs": logging.WARNING,
            },
        }
        for gpu in gpu_ids
    }


def _dashboard_address() -> str | None:
    """Serve the dashboard only when its dependency is there (otherwise Dask warns on every start)."""
    return _DASHBOARD if importlib.util.find_spec("bokeh") is not None else None


@contextlib.contextmanager
def open_client(*, workers: int | None = None, gpu_ids: Sequence[str] = (), cells_per_gpu: int = 1,
                scheduler: str | None = None) -> Iterator[Client]:
    """A client on the cluster asked for; a cluster started here is shut down on exit.

    Args:
        workers: a LocalCluster of this many worker processes, one cell at a time each.
        gpu_ids: instead, one pinned worker per GPU (:func:`gpu_worker_spec`).
        cells_per_gpu: threads and GPU slots of each GPU worker.
        scheduler: instead, connect to this running scheduler (its workers are its own).

    Raises:
        ValueError: the scheduler can't be reached within :data:`CONNECT_TIMEOUT_S` (names the address).
    """
    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as error:
            raise ValueError(f"--scheduler {scheduler}: can't reach a Dask scheduler there within "
                             f"{CONNECT_TIMEOUT_S} s ({type(error).__name__}: {error})") from error
        with client:
            yield client
        return
    dashboard = _dashboard_address()
    # Saturation 1: a worker is handed no more root cells than it has threads, so a cell waits in the
    # scheduler (where a stop can still skip it, and where a dying worker can't count it as a suspect).
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
        cluster = _start_cluster(workers, gpu_ids, cells_per_gpu, dashboard)
    with cluster, Client(cluster) as client:
        yield client


def _start_cluster(workers: int | None, gpu_ids: Sequence[str], cells_per_gpu: int, dashboard: str | None) -> SpecCluster:
    """A LocalCluster of ``workers`` single-thread processes, or a SpecCluster of pinned GPU workers."""
    if gpu_ids:
        scheduler_spec = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard": dashboard is not None,
                                                         "dashboard_address": dashboard}}
        return SpecCluster(workers=gpu_worker_spec(gpu_ids, cells_per_gpu), scheduler=scheduler_spec,
                           silence_logs=logging.WARNING)
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=0,
                        dashboard_address=dashboard, env=thread_environment(workers or 1))


def _cell_task(cell: Cell, executed: str, run_one: Callable[[Cell, Path], None], run: str,
               *dependencies: CellOutcome) -> CellOutcome:
    """The Dask task of one cell: run it unless done already, stopped or blocked; never raises.

    Args:
        cell: the cell.
        executed: its executed notebook's path.
        run_one: the executor.
        run: the run's token (metadata namespace and event topic).
        *dependencies: the outcomes of the cells it depends on.
    """
    client = distributed.get_client()
    recorded = client.get_metadata([_METADATA, run, cell.name], default=None)
    if recorded is not None:  # a recomputation of a finished attempt (its result was lost with a worker)
        return CellOutcome(**recorded)
    if client.get_metadata([_METADATA, run, _STOP], default=False):
        return CellOutcome(cell.name, "stopped")
    blocked = [d.name for d in dependencies if d.status != "ok"]
    if blocked:
        return CellOutcome(cell.name, "blocked", f"depends on failed cell(s) {blocked}")
    worker = distributed.get_worker()
    worker.log_event(f"{_METADATA}-{run}", {"cell": cell.name, "worker": worker.address})  # "running" count
    outcome = attempt_cell(cell, Path(executed), run_one)
    client.set_metadata([_METADATA, run, cell.name], dataclasses.asdict(outcome))
    return outcome


def _killed_reason(error: distributed.KilledWorker) -> str:
    """The failure line of a cell whose worker kept dying."""
    last = getattr(getattr(error, "last_worker", None), "address", None)
    return (f"KilledWorker: the worker process running this cell died {error.allowed_failures + 1} times "
            f"(distributed.scheduler.allowed-failures={error.allowed_failures})" + (f"; last on {last}" if last else ""))


class _DistributedRun:
    """One grid's tasks on a client: submission, the collection loop and the progress line."""

    def __init__(self, client: Client, cells: Sequence[tuple[int, Cell]], total: int, report: GridReport, *,
                 continue_on_error: bool, log: Callable[[str], None]) -> None:
        self.client, self.report, self.log, self.total = client, report, log, total
        self.continue_on_error = continue_on_error
        self.cells = {cell.name: (index, cell) for index, cell in cells}
        self.token = uuid.uuid4().hex[:8]  # keys unique on a shared scheduler, readable on the dashboard
        self.topic = f"{_METADATA}-{self.token}"
        self.keys = {name: f"{name}-{self.token}" for name in self.cells}
        self.futures: dict[str, distributed.Future] = {}
        self.started: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.running: set[str] = set()
        self.finished: set[str] = set()
        self.stopped = False
        self.shown = ""

    def submit(self, paths: GridPaths, run_one: Callable[[Cell, Path], None]) -> None:
        """Submit every cell in grid order, each depending on the futures of the cells it needs."""
        self.client.subscribe_topic(self.topic, lambda event: self.started.put(event[1]["cell"]))
        resources = {GPU_RESOURCE: 1} if _has_gpu_resources(self.client) else None
        for name, (_, cell) in self.cells.items():
            dependencies = [self.futures[d] for d in cell.depends_on if d in self.futures]
            self.futures[name] = self.client.submit(
                _cell_task, cell, str(executed_notebook(cell, paths)), run_one, self.token, *dependencies,
                key=self.keys[name], pure=False, resources=resources,
            )

    def collect(self) -> None:
        """Record every cell's outcome as it finishes, with a progress line whenever the counts change."""
        by_key = {future.key: name for name, future in self.futures.items()}
        pending = distributed.as_completed(list(self.futures.values()))
        while not pending.is_empty():
            batch = pending.next_batch(block=False)
            for future in batch:
                if future.status in ("finished", "error", "cancelled"):
                    self._finish(by_key[future.key], future)
                else:  # its result died with a worker after it finished: Dask recomputes it, wait again
                    pending.add(future)
            self._note_started()
            self._show_progress()
            if not batch:
                time.sleep(POLL_S)
        self._note_started()
        self._show_progress()

    def _note_started(self) -> None:
        while True:
            try:
                name = self.started.get_nowait()
            except queue.Empty:
                return
            if name not in self.finished and name not in self.running:
                self.running.add(name)
                index, cell = self.cells[name]
                self.log(f"[{index}/{self.total}] {name}: running {cell.notebook.name}")

    def _finish(self, name: str, future: distributed.Future) -> None:
        self._note_started()
        self.running.discard(name)
        self.finished.add(name)
        if future.status == "finished":
            outcome = future.result()
        elif future.status == "cancelled":
            outcome = CellOutcome(name, "failed", "cancelled: the Dask scheduler dropped this cell's task")
        else:
            outcome = self._error_outcome(name, future.exception())
        self._record(outcome)

    def _error_outcome(self, name: str, error: BaseException) -> CellOutcome:
        """A task that raised: its own worker kept dying, or an erred dependency's error reached it."""
        if isinstance(error, distributed.KilledWorker) and error.task == self.keys[name]:
            return CellOutcome(name, "failed", _killed_reason(error), str(error)[:2000])
        _, cell = self.cells[name]
        blocked = [d for d in cell.depends_on if d in self.report.failed
                   or (d in self.futures and self.futures[d].status in ("error", "cancelled"))]
        if blocked:
            return CellOutcome(name, "blocked", f"depends on failed cell(s) {blocked}")
        return CellOutcome(name, "failed", failure_reason(error), repr(error)[:2000])

    def _record(self, outcome: CellOutcome) -> None:
        index, cell = self.cells[outcome.name]
        prefix = f"[{index}/{self.total}] {outcome.name}"
        if outcome.status == "ok":
            self.report.ran.append(outcome.name)
            self.log(f"{prefix}: done in {outcome.seconds:.0f}s")
        elif outcome.status == "failed":
            self.report.failed[outcome.name] = outcome.reason
            self.log(f"{prefix}: FAILED after {outcome.seconds:.0f}s: {outcome.reason}")
            if outcome.detail:
                self.log(outcome.detail)
            if not self.continue_on_error and not self.stopped:
                self.stopped = True
                self.client.set_metadata([_METADATA, self.token, _STOP], True)
                self.log("stopping: cells not started yet will not run (--continue-on-error runs them)")
        elif outcome.status == "blocked" and self.continue_on_error:
            # Without --continue-on-error the sequential loop stops before reaching dependants; so here.
            self.report.failed[outcome.name] = outcome.reason
            blocked = outcome.reason.removeprefix("depends on failed cell(s) ")
            self.log(f"{prefix}: not run, depends on failed {blocked}")

    def _show_progress(self) -> None:
        done, failed = len(self.report.ran), sum(n in self.report.failed for n in self.cells)
        pending = len(self.cells) - len(self.finished) - len(self.running)
        line = f"progress: {done} done, {len(self.running)} running, {failed} failed, {pending} pending"
        if line != self.shown:
            self.shown = line
            self.log(line)

    def put_in_grid_order(self) -> None:
        """Order the report's lists like the sequential run's, whatever order the cells finished in."""
        order = {name: i for i, name in enumerate(self.cells)}
        ran = sorted((n for n in self.report.ran if n in order), key=order.__getitem__)
        self.report.ran[:] = [n for n in self.report.ran if n not in order] + ran
        failed = dict(self.report.failed)
        self.report.failed.clear()
        for name in sorted(failed, key=lambda n: order.get(n, -1)):
            self.report.failed[name] = failed[name]


def _has_gpu_resources(client: Client) -> bool:
    """Whether any worker offers the ``GPU`` resource (cells then ask for one unit each)."""
    info = client.scheduler_info(n_workers=-1)
    return any(GPU_RESOURCE in (worker.get("resources") or {}) for worker in info.get("workers", {}).values())


def _announce(client: Client, log: Callable[[str], None], *, local: bool) -> None:
    """Log the cluster's workers and dashboard; wait for a first worker of a remote cluster.

    A local scheduler serves the dashboard pages only with bokeh installed (its HTTP server, listed as
    the "dashboard" service, runs anyway); a remote one is taken at its word.
    """
    info = client.scheduler_info(n_workers=-1)
    if not info.get("workers"):
        log(f"waiting for a Dask worker to join {info.get('address', client.scheduler.address)} ...")
        client.wait_for_workers(1)
        info = client.scheduler_info(n_workers=-1)
    workers = info.get("workers", {}).values()
    threads = sum(w.get("nthreads", 0) for w in workers)
    gpus = sum((w.get("resources") or {}).get(GPU_RESOURCE, 0) for w in workers)
    log(f"Dask cluster at {info.get('address')}: {len(workers)} worker(s), {threads} thread(s)"
        + (f", {gpus:g} GPU slot(s)" if gpus else ""))
    if "dashboard" in info.get("services", {}) and (not local or _dashboard_address() is not None):
        log(f"dashboard: {client.dashboard_link}")


def run_cells(cells: Sequence[tuple[int, Cell]], total: int, paths: GridPaths, report: GridReport,
              run_one: Callable[[Cell, Path], None], *, continue_on_error: bool, log: Callable[[str], None],
              workers: int | None = None, gpu_ids: Sequence[str] = (), cells_per_gpu: int = 1,
              scheduler: str | None = None) -> None:
    """Run the cells that are due as Dask tasks and record their outcomes in ``report``.

    Args:
        cells: ``(position in the grid, cell)`` of the cells to run (already not skipped), in grid order.
        total: the number of cells in the grid (for the ``[i/n]`` prefixes).
        paths: the run's folders.
        report: filled with ``ran`` and ``failed``, in grid order.
        run_one: the executor, pickled to the workers (``functools.partial(execute_cell, ...)`` or a
            test fake).
        continue_on_error: run the other cells after a failure.
        log: where progress lines go.
        workers, gpu_ids, cells_per_gpu, scheduler: the cluster (:func:`open_client`).

    Raises:
        ValueError: the scheduler can't be reached.
    """
    if not cells:
        return  # nothing due: no cluster to start
    with open_client(workers=workers, gpu_ids=gpu_ids, cells_per_gpu=cells_per_gpu, scheduler=scheduler) as client:
        _announce(client, log, local=scheduler is None)
        run = _DistributedRun(client, cells, total, report, continue_on_error=continue_on_error, log=log)
        run.submit(paths, run_one)
        try:
            run.collect()
        finally:
            client.unsubscribe_topic(run.topic)
            client.set_metadata([_METADATA, run.token], None)  # the run's records, no longer needed
        run.put_in_grid_order()
