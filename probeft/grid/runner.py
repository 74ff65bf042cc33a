"""The experiment grid: a validated YAML config expanded into papermill cells, run with skip/resume.

One YAML file (``configs/*.yaml``) names the models and, per stage, what to run.
:func:`probeft.grid.schema.load_config` validates it (unknown keys and bad values are errors naming
the key; re-exported here), :func:`expand` turns it into
ordered :class:`Cell` objects (fine-tuning first, then probing, attention, perplexity), and
:func:`run_grid` executes each cell's notebook with papermill into
``<output_dir>/notebooks/<cell>.ipynb`` while the notebook writes ``<output_dir>/cells/<cell>/``.
A cell whose results are complete is skipped, so an interrupted grid resumes where it stopped; a
complete cell whose parameters changed since it ran (and every cell computed from it) is refused, or
run again with ``rerun_changed`` (:mod:`probeft.grid.cell_state`).

Output layout::

    <output_dir>/cells/<cell>/{results.csv, provenance.json, epoch-<e>/ ...}
    <output_dir>/cells/mlm_head__model-<m>/head/   a fitted masked-LM head (perplexity.mlm_head: fitted)
    <output_dir>/notebooks/<cell>.ipynb      executed notebooks (rendered by the book)
    <output_dir>/results.csv                 all complete cells, gathered
    <output_dir>/delta_intervals.csv         paired Delta intervals from the probing cells'
                                             probe_predictions.npz (probeft.verdicts.delta_intervals)
    <output_dir>/claims.csv                  the paper's findings checked on this run (probeft.verdicts.claims)
    <output_dir>/grid.json                   the resolved config and cell list
    <output_dir>/hub-pins.json               commits of the hub models / data sets and SentEval downloads the
                                             run is pinned to (probeft.grid.pinning), when it fetches any
    <output_dir>/grid.lock                   while a run holds the folder (pid, host, start time)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from probeft import results
from probeft.core import files, names, progress
from probeft.data import locations
from probeft.diagnostics import mlm_head
from probeft.grid import cell_state, pinning
from probeft.grid.cells import (
    MLM_HEAD_NOTEBOOK,
    NOTEBOOK_DIR,
    Cell,
    GridPaths,
    GridReport,
    attempt_cell,
    execute_cell,
    executed_notebook,
    incomplete_reasons,
)
from probeft.grid.schema import STAGES, FinetuneSection, GridConfig, ModelEntry
from probeft.probing import feature_cache
from probeft.results import attention_sentences
from probeft.verdicts import claims, delta_intervals

__all__ = [
    "LOCK_FILE",
    "expand",
    "finetune_cell_name",
    "finished_cells",
    "gather_outputs",
    "mlm_head_cell_name",
    "run_grid",
    "visible_gpu_ids",
]

LOCK_FILE = "grid.lock"  # in the output dir while a run holds it (probeft.core.files.exclusive_lock)


def finetune_cell_name(model: str, task: str, head: str, seed: int) -> str:
    """Deterministic name of a fine-tuning cell."""
    return f"finetune__model-{model}__task-{task}__head-{names.head_for(task, head)}__seed-{seed}"


def mlm_head_cell_name(model: str) -> str:
    """Deterministic name of the cell that fits ``model``'s masked-LM head (``perplexity.mlm_head: fitted``)."""
    return f"mlm_head__model-{model}"


def _section_models(config: GridConfig, section: Any) -> list[ModelEntry]:
    wanted = getattr(section, "models", None)
    return [m for m in config.models if wanted is None or m.name in wanted]


def _finetune_runs(config: GridConfig) -> list[tuple[ModelEntry, str, str, int]]:
    """All (model, task, head, seed) fine-tuning runs the config asks for or later stages need."""
    runs: list[tuple[ModelEntry, str, str, int]] = []
    if config.finetune:
        for model in _section_models(config, config.finetune):
            for task in config.finetune.tasks:
                for head in config.finetune.heads:
                    runs += [(model, task, head, seed) for seed in config.finetune.seeds]
    if config.probing:
        seeds = config.finetune.seeds if config.finetune else [0]
        for model in _section_models(config, config.probing):
            for task in (t for t in config.probing.finetune_tasks if t != names.NO_FINETUNE):
                runs += [(model, task, config.probing.finetune_head, seed) for seed in seeds]
    if config.attention:
        for model in _section_models(config, config.attention):
            runs += [(model, config.attention.finetune_task, h, seed)
                     for h in config.attention.heads for seed in config.attention.finetune_seeds()]
    if config.perplexity:
        for model in _section_models(config, config.perplexity):
            for task in config.perplexity.finetune_tasks:
                runs += [(model, task, config.perplexity.head, seed) for seed in config.perplexity.seeds]
    unique: dict[str, tuple[ModelEntry, str, str, int]] = {}
    for run in runs:
        unique.setdefault(finetune_cell_name(run[0].name, run[1], run[2], run[3]), run)
    return list(unique.values())


def expand(config: GridConfig, paths: GridPaths) -> list[Cell]:
    """Expand a config into ordered cells (dependencies always come before their dependants).

    Args:
        config: the validated grid.
        paths: resolved output and data folders.

    Returns:
        Fine-tuning cells, then probing (per model the pre-trained encoder first; fine-tuned cells get
        ``cka_reference`` = the pre-trained spec when ``probing.cka`` and ``none`` is probed too),
        attention and perplexity cells (with ``perplexity.mlm_head: fitted``, per model first the cell
        fitting its head, stage ``perplexity``, notebook ``mlm_head.ipynb``, on which its perplexity cells depend).
    """
    # No data dir anywhere: the notebooks read from the hub ("hub"), never the offline demo data.
    common = {"data_dir": str(paths.data_dir) if paths.data_dir else locations.HUB, "device": config.device}
    cells: list[Cell] = []
    ft = config.finetune or FinetuneSection()
    for model, task, head, seed in _finetune_runs(config):
        name = finetune_cell_name(model.name, task, head, seed)
        params = {
            "model": model.spec, "model_name": model.name, "task": task, "head": names.head_for(task, head), "seed": seed,
            **ft.settings(task),
        }
        cells.append(_cell(name, "finetune", "finetune.ipynb", params, common, paths))

    def finetuned_dir(model: ModelEntry, task: str, head: str, seed: int) -> str:
        return str(paths.cells_dir / finetune_cell_name(model.name, task, head, seed))

    if config.probing:
        pr = config.probing
        seeds = config.finetune.seeds if config.finetune else [0]
        for model in _section_models(config, pr):
            # The pre-trained encoder first, whatever its position: its cell fills the feature cache
            # that the fine-tuned cells' CKA reads, so with CKA they also depend on it (on Dask too).
            ordered = sorted(pr.finetune_tasks, key=lambda t: t != names.NO_FINETUNE)
            with_cka = pr.cka and names.NO_FINETUNE in pr.finetune_tasks
            pretrained_cell = f"probing__model-{model.name}__ft-{names.NO_FINETUNE}__seed-{seeds[0]}"
            for task in ordered:
                for seed in (seeds[:1] if task == names.NO_FINETUNE else seeds):
                    head = names.NO_FINETUNE if task == names.NO_FINETUNE else names.head_for(task, pr.finetune_head)
                    source = model.spec if task == names.NO_FINETUNE else finetuned_dir(model, task, head, seed)
                    depends = () if task == names.NO_FINETUNE else (
                        (Path(source).name, pretrained_cell) if with_cka else (Path(source).name,))
                    name = f"probing__model-{model.name}__ft-{task}" + ("" if task == names.NO_FINETUNE else f"-{head}")
                    params = {
                        "model": source, "model_name": model.name, "finetune_task": task, "finetune_head": head,
                        "seed": seed, "epoch": -1 if task != names.NO_FINETUNE else 0, "probe_tasks": list(pr.tasks),
                        "poolings": list(pr.poolings), "max_train": pr.max_train, "max_eval": pr.max_eval,
                        "batch_size": pr.batch_size, "max_length": pr.max_length,
                        "cache_dir": str(paths.cache_dir / "features"),
                        "control": pr.control, "control_task_seed": pr.control_seed, "mdl": pr.mdl,
                        "cka_reference": model.spec if with_cka and task != names.NO_FINETUNE else None,
                    }
                    # Only when not the default, so cells that ran before these settings existed stay complete.
                    params |= {key: getattr(pr, key) for key in ("dtype", "cache_dtype") if getattr(pr, key) != "float32"}
                    params |= {"refits": pr.refits} if pr.refits else {}
                    params |= {"control_seeds": pr.control_seeds} if pr.control_seeds is not None else {}
                    params |= {"random_control": True} if pr.random_control else {}
                    params |= {"mdl_l2": pr.mdl_l2} if pr.mdl_l2 != "fixed" else {}
                    if pr.probes_for(model.name) != ["linear"]:
                        params |= {"probes": pr.probes_for(model.name), "mlp_seed": pr.mlp_seed}
                    # Nothing reads a fine-tuned encoder's features after its cell (CKA reads the pre-trained ones).
                    drop = None if task == names.NO_FINETUNE or pr.keep_finetuned_features else (
                        str(paths.cache_dir / "features"), source)
                    cell = _cell(f"{name}__seed-{seed}", "probing", "probing.ipynb", params, common, paths, depends)
                    cells.append(dataclasses.replace(cell, drop_features=drop))
    if config.attention:
        at = config.attention
        for model in _section_models(config, at):
            finetuned = {}
            for h in at.heads:
                for s in at.finetune_seeds():
                    # `seed` keeps the labels of cells from before `seeds` existed, so those stay complete.
                    label = f"{at.finetune_task}-{h}" if at.seeds is None else f"{at.finetune_task}-{h}-seed-{s}"
                    finetuned[label] = finetuned_dir(model, at.finetune_task, h, s)
            params = {
                "model": model.spec, "model_name": model.name, "finetuned": finetuned, "finetune_task": at.finetune_task,
                "probe_task": at.probe_task, "max_sentences": at.max_sentences, "batch_size": at.batch_size,
                "max_length": at.max_length,
            }
            name = f"attention__model-{model.name}__ft-{at.finetune_task}__task-{at.probe_task}"
            depends = tuple(Path(p).name for p in finetuned.values())
            cells.append(_cell(name, "attention", "attention.ipynb", params, common, paths, depends))
    if config.perplexity:
        pp = config.perplexity
        for model in _section_models(config, pp):
            head_cell = None
            if pp.mlm_head == "fitted":  # one head per model, shared by every task and seed of it
                head_cell = mlm_head_cell_name(model.name)
                params = {"model": model.spec, "model_name": model.name, "block_size": pp.block_size,
                          **pp.fit_settings().model_dump()}
                cells.append(_cell(head_cell, "perplexity", MLM_HEAD_NOTEBOOK, params, common, paths))
            for task in pp.finetune_tasks:
                runs = {seed: finetuned_dir(model, task, pp.head, seed) for seed in pp.seeds}
                params = {
                    "model": model.spec, "model_name": model.name, "finetune_task": task, "finetune_head": pp.head,
                    "finetune_runs": runs, "block_size": pp.block_size, "max_blocks": pp.max_blocks,
                    "mask_seed": pp.mask_seed, "batch_size": pp.batch_size,
                }
                # Only when not the default, so cells that ran before these settings existed stay complete.
                params |= {} if pp.bottom_layers else {"replace_bottom": False}
                depends = tuple(Path(p).name for p in runs.values())
                if head_cell is not None:
                    params["mlm_head_from"] = str(paths.cells_dir / head_cell / mlm_head.HEAD_FOLDER)
                    depends += (head_cell,)
                name = f"perplexity__model-{model.name}__ft-{task}-{pp.head}"
                cells.append(_cell(name, "perplexity", "perplexity.ipynb", params, common, paths, depends))
    return cells


def _cell(
    name: str,
    stage: str,
    notebook: str,
    params: dict[str, Any],
    common: dict[str, Any],
    paths: GridPaths,
    depends_on: Sequence[str] = (),
) -> Cell:
    full = {**params, **common, "output_dir": str(paths.cells_dir / name)}
    return Cell(name=name, stage=stage, notebook=NOTEBOOK_DIR / notebook, parameters=full, depends_on=tuple(depends_on))


def run_grid(
    config: GridConfig,
    paths: GridPaths,
    *,
    force: bool = False,
    continue_on_error: bool = False,
    dry_run: bool = False,
    only_stages: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
    executor: Callable[[Cell, Path], None] | None = None,
    workers: int | None = 1,
    scheduler: str | None = None,
    cells_per_gpu: int = 1,
    rerun_changed: bool = False,
) -> GridReport:
    """Run every cell not yet complete, in order, then gather ``results.csv``, holding the output dir's lock.

    Two grids writing one output dir would interleave cells and gathers, so a run holds
    ``<output_dir>/grid.lock`` (:data:`LOCK_FILE`: pid, host and start time; removed at the end, taken
    over when its holder crashed) and a second run on the same folder refuses with
    :class:`probeft.core.files.LockHeldError`. A dry run takes no lock.

    With ``workers > 1``, ``scheduler``, or ``workers=None`` on a machine with CUDA GPUs, the cells run as
    Dask tasks (:mod:`probeft.grid.dask_backend`, imported only then) with the same skip, failure and gather
    semantics; the driver (this process) keeps the lock and gathers.

    Args:
        config: the validated grid.
        paths: resolved folders.
        force: re-run complete cells too.
        rerun_changed: run again the complete cells whose parameters changed since they ran, and the cells
            that depend on them, deleting their old outputs first; without it such cells are an error.
        continue_on_error: keep going after a failed cell (its dependants are skipped as failed).
        dry_run: only list what would run (always in this process).
        only_stages: restrict to these stages.
        log: where progress lines go.
        executor: replaces papermill (tests); called as ``executor(cell, executed_notebook_path)``. On the
            distributed backend it is pickled to the workers.
        workers: 1 runs the cells one after another in this process (no Dask); N > 1 starts a local
            Dask cluster of N worker processes with one thread each; None picks: one worker per visible
            CUDA GPU (pinned with ``CUDA_VISIBLE_DEVICES``) when there are two or more, or
            ``cells_per_gpu > 1``, and the config's device is ``auto`` or ``cuda``; else 1.
        scheduler: address of a running Dask scheduler to use instead of a local cluster.
        cells_per_gpu: cells run at once on one GPU (threads of each GPU worker).

    Returns:
        A :class:`GridReport`; ``report.ok`` is False when any cell failed.

    Raises:
        probeft.core.files.LockHeldError: another live run holds the output dir.
        ValueError: a bad ``workers`` / ``scheduler`` / ``cells_per_gpu`` (the message names the flag), or
            the scheduler can't be reached.
        probeft.grid.cell_state.StaleCellsError: complete cells ran with other parameters (a ValueError that
            lists each cell and parameter) and ``rerun_changed`` is not set; nothing has run.
    """
    _check_backend_options(workers, scheduler, cells_per_gpu)
    if paths.output_dir.exists() and not paths.output_dir.is_dir():
        raise ValueError(f"output_dir {paths.output_dir} is a file; give a folder (--output-dir or output_dir:)")
    options = dict(force=force, continue_on_error=continue_on_error, dry_run=dry_run, only_stages=only_stages,
                   log=log, executor=executor, workers=workers, scheduler=scheduler, cells_per_gpu=cells_per_gpu,
                   rerun_changed=rerun_changed)
    if dry_run:
        return _run_cells(config, paths, **options)
    with files.exclusive_lock(paths.output_dir / LOCK_FILE, what=f"the grid output dir {paths.output_dir}"):
        return _run_cells(config, paths, **options)


def _check_backend_options(workers: int | None, scheduler: str | None, cells_per_gpu: int) -> None:
    """Reject impossible backend choices before anything runs; messages name the command-line flag."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"--workers (workers) must be a whole number >= 1, got {workers!r}")
    if isinstance(cells_per_gpu, bool) or not isinstance(cells_per_gpu, int) or cells_per_gpu < 1:
        raise ValueError(f"--cells-per-gpu (cells_per_gpu) must be a whole number >= 1, got {cells_per_gpu!r}")
    if scheduler is not None and not str(scheduler).strip():
        raise ValueError("--scheduler (scheduler) must be a scheduler address, e.g. tcp://host:8786; got ''")
    if scheduler and workers not in (None, 1):
        raise ValueError(f"--workers {workers} and --scheduler {scheduler} exclude each other: the scheduler's "
                         "cluster has its own workers")
    if cells_per_gpu > 1 and (scheduler or workers is not None):
        raise ValueError("--cells-per-gpu applies to the GPU workers probeft starts itself (no --workers, no "
                         "--scheduler); with --scheduler give each worker threads and GPU resources instead")


def visible_gpu_ids() -> list[str]:
    """The CUDA devices this process may use, as ``CUDA_VISIBLE_DEVICES`` entries (ids or UUIDs).

    ``CUDA_VISIBLE_DEVICES`` when set (empty or ``-1`` means none), else ``0 .. torch.cuda.device_count()-1``.
    """
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        ids: list[str] = []
        for entry in (e.strip() for e in listed.split(",")):
            if not entry or entry.startswith("-"):
                break  # CUDA ignores everything from the first invalid entry on
            ids.append(entry)
        return ids
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _dask_request(config: GridConfig, workers: int | None, scheduler: str | None, cells_per_gpu: int,
                  log: Callable[[str], None]) -> dict[str, Any] | None:
    """The cluster to run on, as :func:`probeft.grid.dask_backend.run_cells` keywords; None = sequential, no Dask."""
    if scheduler:
        return {"scheduler": scheduler}
    if workers is not None:
        return {"workers": workers} if workers > 1 else None
    # workers not given: one pinned worker per GPU, when that is worth a cluster and the config lets cells
    # choose their GPU (an explicit cuda:N or cpu is the user's choice for every cell).
    if config.device not in ("auto", "cuda"):
        return None
    gpus = visible_gpu_ids()
    if len(gpus) < 2 and not (gpus and cells_per_gpu > 1):
        return None
    if importlib.util.find_spec("distributed") is None:
        log(f"{len(gpus)} GPUs visible but Dask is not installed (pip install 'probeft[dask]'): running the cells "
            "one after another")
        return None
    return {"gpu_ids": tuple(gpus), "cells_per_gpu": cells_per_gpu}


def _run_cells(
    config: GridConfig,
    paths: GridPaths,
    *,
    force: bool = False,
    continue_on_error: bool = False,
    dry_run: bool = False,
    only_stages: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
    executor: Callable[[Cell, Path], None] | None = None,
    workers: int | None = 1,
    scheduler: str | None = None,
    cells_per_gpu: int = 1,
    rerun_changed: bool = False,
) -> GridReport:
    """Run every cell not yet complete, then gather ``results.csv``; see :func:`run_grid` (no lock here)."""
    if only_stages:
        unknown = [s for s in only_stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; stages are {list(STAGES)}")
    cells = expand(config, paths)
    # A partial, not a lambda: the distributed backend pickles it to the workers.
    run_one = executor or functools.partial(execute_cell, kernel_name=config.kernel_name)
    report = GridReport()
    request = None if dry_run else _dask_request(config, workers, scheduler, cells_per_gpu, log)
    changed = set() if force else _handle_changed_cells(cells, paths, rerun=rerun_changed, dry_run=dry_run,
                                                         only_stages=only_stages, log=log)
    pins_file = None
    if not dry_run:
        _prepare(config, paths, cells, log)
        pins_file = pinning.pin_run(config, paths.data_dir, paths.output_dir, log)
    with pinning.pins_active(pins_file):  # cells load hub models and data at the pinned commits
        if request is None:
            _run_sequentially(cells, paths, report, run_one, force=force, continue_on_error=continue_on_error,
                              dry_run=dry_run, only_stages=only_stages, log=log, changed=changed)
        else:
            from probeft.grid import dask_backend  # only here: the sequential path never imports Dask

            to_run = [(index, cell) for index, cell in enumerate(cells, 1)
                      if not _skipped(cell, index, len(cells), paths, report, force=force,
                                      only_stages=only_stages, log=log, changed=changed)]
            dask_backend.run_cells(to_run, len(cells), paths, report, run_one,
                                   continue_on_error=continue_on_error, log=log, **request)
    if not dry_run:
        gather_outputs(cells, paths, log)
    if report.failed:
        log(f"{len(report.failed)} cell(s) failed:")
        for name, why in report.failed.items():
            log(f"  {name}: {why}")
    return report


def _handle_changed_cells(cells: list[Cell], paths: GridPaths, *, rerun: bool, dry_run: bool,
                          only_stages: Sequence[str] | None, log: Callable[[str], None]) -> set[str]:
    """Refuse complete cells whose parameters or data changed, or (``rerun``) delete their outputs so they run again.

    With ``only_stages``, changed cells of other stages are refused even with ``rerun``: deleting them
    without running them would leave their dependants without inputs, and keeping them would gather
    their old rows.

    Returns:
        The names of those cells (a dry run deletes nothing but lists them as running again).
    """
    complete = [c.name for c in cells if _complete(c, paths)]
    stale = cell_state.stale_cells(cells, {c.name: executed_notebook(c, paths) for c in cells}, complete,
                                   paths.output_dir)
    if not stale:
        return set()
    listing = "\n".join(f"  {name}: {why}" for name, why in stale.items())
    if not (rerun or dry_run):
        raise cell_state.StaleCellsError(
            f"{len(stale)} complete cell(s) in {paths.output_dir} ran with other parameters or data than the config "
            f"gives them now, or were computed from cells that changed or must run again:\n{listing}\n"
            "Run them again (their old outputs are deleted) with --rerun-changed, or use a new --output-dir.")
    outside = [c.name for c in cells if c.name in stale and only_stages and c.stage not in only_stages]
    if outside and not dry_run:
        raise cell_state.StaleCellsError(
            f"--rerun-changed with --stage {' '.join(only_stages or ())}: {len(outside)} changed cell(s) belong to "
            f"other stages and would not run again:\n" + "\n".join(f"  {name}: {stale[name]}" for name in outside)
            + "\nAdd their stages, run without --stage, or use a new --output-dir.")
    log(f"{len(stale)} complete cell(s) changed since they ran" + (
        ", would run again with --rerun-changed:" if dry_run and not rerun else ", running them again:"))
    log(listing)
    if dry_run:
        if outside:
            log(f"  of these, {outside} are not in --stage and would be refused")
        return set(stale)
    for cell in (c for c in cells if c.name in stale):
        # Old checkpoints must not be resumed nor old rows gathered: the cell starts from nothing.
        shutil.rmtree(cell.parameters["output_dir"], ignore_errors=True)
        executed_notebook(cell, paths).unlink(missing_ok=True)
        feature_cache.drop_features_of(paths.cache_dir / "features", cell.parameters["output_dir"])
    return set(stale)


def finished_cells(config: GridConfig, paths: GridPaths) -> tuple[int, int]:
    """``(complete, total)`` cells of a grid in ``paths`` (e.g. to report after an interruption)."""
    cells = expand(config, paths)
    return sum(_complete(cell, paths) for cell in cells), len(cells)


def _complete(cell: Cell, paths: GridPaths) -> bool:
    """A cell's results, provenance and executed notebook verify against its seal (:func:`incomplete_reasons`)."""
    return not incomplete_reasons(cell, executed_notebook(cell, paths))


def _skipped(cell: Cell, index: int, total: int, paths: GridPaths, report: GridReport, *, force: bool,
             only_stages: Sequence[str] | None, log: Callable[[str], None], changed: set[str]) -> bool:
    """Whether a cell is left out: another stage, or complete (then recorded as skipped) unless ``force`` or
    it is one of the ``changed`` cells that run again."""
    if only_stages and cell.stage not in only_stages:
        return True
    if force or cell.name in changed:
        return False
    reasons = incomplete_reasons(cell, executed_notebook(cell, paths))
    if not reasons:
        report.skipped.append(cell.name)
        log(f"[{index}/{total}] {cell.name}: complete, skipped")
        return True
    if (Path(cell.parameters["output_dir"]) / results.PROVENANCE_FILE).is_file():  # it had finished: say why
        log(f"[{index}/{total}] {cell.name}: runs again: " + "; ".join(reasons))
    return False


HEARTBEAT_S = 30.0  # a running cell says how long it has run, and in which step, this often


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


@contextlib.contextmanager
def heartbeat(prefix: str, cell_dir: Path, log: Callable[[str], None], *,
              every: float = HEARTBEAT_S) -> Iterator[None]:
    """While the block runs, log every ``every`` seconds the elapsed time and the step the notebook marked.

    The step comes from the progress file the notebook writes (:func:`probeft.core.progress.mark`); one
    left by an earlier attempt is removed first, so the step shown is always this attempt's.

    Args:
        prefix: the cell's log prefix (``"[3/33] probing__..."``).
        cell_dir: the cell's output folder.
        log: where the lines go.
        every: seconds between lines.
    """
    (cell_dir / progress.PROGRESS_FILE).unlink(missing_ok=True)
    started = time.monotonic()
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            marked = progress.current_step(cell_dir)
            step = f", step: {marked[0]}" if marked else ""
            log(f"{prefix}: running for {_duration(time.monotonic() - started)}{step}")

    thread = threading.Thread(target=beat, name="probeft-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _run_sequentially(
    cells: list[Cell],
    paths: GridPaths,
    report: GridReport,
    run_one: Callable[[Cell, Path], None],
    *,
    force: bool,
    continue_on_error: bool,
    dry_run: bool,
    only_stages: Sequence[str] | None,
    log: Callable[[str], None],
    changed: set[str],
) -> None:
    """Run the cells one after another in this process, in order, filling ``report``."""
    for index, cell in enumerate(cells, 1):
        if _skipped(cell, index, len(cells), paths, report, force=force, only_stages=only_stages, log=log,
                    changed=changed):
            continue
        prefix = f"[{index}/{len(cells)}] {cell.name}"
        blocked = [d for d in cell.depends_on if d in report.failed]
        if blocked:
            report.failed[cell.name] = f"depends on failed cell(s) {blocked}"
            log(f"{prefix}: not run, depends on failed {blocked}")
            continue
        if dry_run:
            report.ran.append(cell.name)
            log(f"{prefix}: would run {cell.notebook.name}")
            continue
        log(f"{prefix}: running {cell.notebook.name}")
        with heartbeat(prefix, Path(cell.parameters["output_dir"]), log):
            outcome = attempt_cell(cell, executed_notebook(cell, paths), run_one)
        if outcome.status != "ok":
            report.failed[cell.name] = outcome.reason
            log(f"{prefix}: FAILED after {outcome.seconds:.0f}s: {outcome.reason}")
            log(outcome.detail)
            if not continue_on_error:
                break
            continue
        report.ran.append(cell.name)
        log(f"{prefix}: done in {outcome.seconds:.0f}s")


def gather_outputs(cells: Sequence[Cell], paths: GridPaths, log: Callable[[str], None] = print) -> None:
    """Gather the complete cells into ``results.csv``, ``delta_intervals.csv`` and ``claims.csv``.

    The one gather both backends use, in the driver, after every cell has finished; cells are taken in
    grid order, so the tables do not depend on which cell finished first.
    """
    complete = [Path(c.parameters["output_dir"]) for c in cells if _complete(c, paths)]
    if not complete:
        # Tables of an earlier run (e.g. cells since deleted by --rerun-changed) must not outlive their cells.
        for name in (results.RESULTS_FILE, delta_intervals.DELTA_INTERVALS_FILE, claims.CLAIMS_FILE):
            if (paths.output_dir / name).exists():
                (paths.output_dir / name).unlink()
                log(f"no complete cell: removed the stale {paths.output_dir / name}")
        return
    table = results.gather(complete, paths.results_csv)
    log(f"gathered {len(table)} rows from {len(complete)} cells into {paths.results_csv}")
    intervals_csv = paths.output_dir / delta_intervals.DELTA_INTERVALS_FILE
    intervals = delta_intervals.write_delta_intervals(complete, intervals_csv)
    if intervals is not None:
        log(f"wrote {len(intervals)} paired Delta intervals into {intervals_csv}")
    checks = claims.write_claims(table, delta_intervals.load_cell_predictions(complete),
                                 paths.output_dir / claims.CLAIMS_FILE,
                                 attention_cells=attention_sentences.load_attention_cells(complete))
    held = claims.summarise(checks)["verdict"].value_counts().to_dict()
    log(f"evaluated the paper's findings into {paths.output_dir / claims.CLAIMS_FILE}: {held}")


def _prepare(config: GridConfig, paths: GridPaths, cells: list[Cell], log: Callable[[str], None]) -> None:
    """Create folders and record the resolved grid (demo data is made by the CLI beforehand)."""
    paths.output_dir.mkdir(parents=True, exist_ok=True)
    if paths.data_dir is not None and not paths.data_dir.is_dir():
        raise FileNotFoundError(f"data_dir does not exist: {paths.data_dir}")
    # This run holds the output dir's lock, so no writer is left: half-written files are a crash's remains.
    leftovers = [path for folder in (paths.cells_dir, paths.notebooks_dir, paths.cache_dir)
                 for path in files.remove_crash_leftovers(folder)]
    if leftovers:
        log(f"removed {len(leftovers)} half-written file(s) or folder(s) left by an interrupted run")
    record = {
        "config": config.model_dump(),
        "output_dir": str(paths.output_dir),
        "data_dir": str(paths.data_dir) if paths.data_dir else None,
        "cells": [{"name": c.name, "stage": c.stage, "notebook": c.notebook.name} for c in cells],
    }
    files.atomic_write_text(paths.output_dir / "grid.json", json.dumps(record, indent=2))
