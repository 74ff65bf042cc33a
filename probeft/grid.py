"""The experiment grid: a validated YAML config expanded into papermill cells, run with skip/resume.

One YAML file (``configs/*.yaml``) names the models and, per stage, what to run. :func:`load_config`
validates it (unknown keys and bad values are errors naming the key), :func:`expand` turns it into
ordered :class:`Cell` objects (fine-tuning first, then probing, attention, perplexity), and
:func:`run_grid` executes each cell's notebook with papermill into
``<output_dir>/notebooks/<cell>.ipynb`` while the notebook writes ``<output_dir>/cells/<cell>/``.
A cell whose results are complete is skipped, so an interrupted grid resumes where it stopped.

Output layout::

    <output_dir>/cells/<cell>/{results.csv, provenance.json, epoch-<e>/ ...}
    <output_dir>/notebooks/<cell>.ipynb      executed notebooks (rendered by the book)
    <output_dir>/results.csv                 all complete cells, gathered
    <output_dir>/grid.json                   the resolved config and cell list
"""

from __future__ import annotations

import json
import os
import re
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from probeft import results

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
FINETUNE_TASKS = ("cola", "sst2", "rte", "squad")
HEADS = ("cls", "mean")
POOLINGS = ("cls", "mean")
STAGES = ("finetune", "probing", "attention", "perplexity")
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def slug(text: str) -> str:
    """A file-name-safe form of ``text`` (e.g. ``org/model`` -> ``org-model``)."""
    return _SLUG.sub("-", text).strip("-.") or "x"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelEntry(_Strict):
    """A model: ``name`` labels it in tables and file names; ``spec`` is a hub id, path or tiny name."""

    name: str
    spec: str


class TaskOverrides(_Strict):
    """Settings of one fine-tuning task that differ from the section's (e.g. SQuAD's batch size)."""

    epochs: int | None = Field(default=None, ge=1)
    learning_rate: float = Field(default=2e-5, gt=0)
    batch_size: int = Field(default=32, ge=1)
    max_length: int | None = Field(default=None, ge=8)
    max_train: int | None = Field(default=None, ge=1)
    max_eval: int | None = Field(default=None, ge=1)


class FinetuneSection(_Strict):
    """Fine-tuning runs: every model x task x head x seed (plus what later stages need)."""

    tasks: list[Literal["cola", "sst2", "rte", "squad"]] = Field(default_factory=list)
    heads: list[Literal["cls", "mean"]] = Field(default_factory=lambda: ["cls"])
    seeds: list[int] = Field(default_factory=lambda: [0])
    models: list[str] | None = None
    epochs: int | None = Field(default=None, ge=1)
    learning_rate: float = Field(default=2e-5, gt=0)
    batch_size: int = Field(default=32, ge=1)
    max_length: int | None = Field(default=None, ge=8)  # None: 128 for GLUE, 384 for SQuAD (the paper's)
    max_train: int | None = Field(default=None, ge=1)
    max_eval: int | None = Field(default=None, ge=1)
    per_task: dict[Literal["cola", "sst2", "rte", "squad"], TaskOverrides] = Field(default_factory=dict)

    def settings(self, task: str) -> dict[str, Any]:
        """The training settings of ``task``: the section's, then its ``per_task`` entry on top."""
        base = {k: getattr(self, k) for k in TaskOverrides.model_fields}
        override = self.per_task.get(task)
        return {**base, **(override.model_dump(exclude_unset=True) if override else {})}


class ProbingSection(_Strict):
    """Probing cells: every model x fine-tuning state (``none`` = pre-trained) x fine-tuning seed."""

    tasks: list[str] = Field(default_factory=lambda: ["bigram_shift", "coordination_inversion", "odd_man_out"])
    poolings: list[Literal["cls", "mean"]] = Field(default_factory=lambda: ["cls", "mean"])
    finetune_tasks: list[Literal["none", "cola", "sst2", "rte", "squad"]] = Field(default_factory=lambda: ["none"])
    finetune_head: Literal["cls", "mean"] = "cls"
    models: list[str] | None = None
    max_train: int | None = Field(default=None, ge=2)
    max_eval: int | None = Field(default=None, ge=2)
    batch_size: int = Field(default=64, ge=1)
    max_length: int = Field(default=128, ge=8)

    @field_validator("tasks")
    @classmethod
    def _tasks_nonempty(cls, tasks: list[str]) -> list[str]:
        if not tasks:
            raise ValueError("probing.tasks must name at least one probing task")
        return tasks


class AttentionSection(_Strict):
    """Attention cells: pre-trained vs models fine-tuned on ``finetune_task`` with each head."""

    models: list[str] | None = None
    finetune_task: Literal["cola", "sst2", "rte", "squad"] = "cola"
    heads: list[Literal["cls", "mean"]] = Field(default_factory=lambda: ["cls", "mean"])
    seed: int = 0
    probe_task: str = "bigram_shift"
    max_sentences: int | None = Field(default=1000, ge=1)
    batch_size: int = Field(default=32, ge=1)
    max_length: int = Field(default=128, ge=8)


class PerplexitySection(_Strict):
    """Perplexity cells: per model x fine-tuning task, over fine-tuning seeds and epochs."""

    models: list[str] | None = None
    finetune_tasks: list[Literal["cola", "sst2", "rte", "squad"]] = Field(default_factory=lambda: ["cola", "sst2"])
    head: Literal["cls", "mean"] = "cls"
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    block_size: int = Field(default=128, ge=8)
    max_blocks: int | None = Field(default=None, ge=1)
    mask_seed: int = 0
    batch_size: int = Field(default=16, ge=1)


class GridConfig(_Strict):
    """A whole experiment grid (one YAML file)."""

    name: str
    description: str = ""
    data_dir: str | None = None
    demo_data: bool = False
    output_dir: str
    device: str = "auto"
    kernel_name: str = "python3"
    models: list[ModelEntry]
    finetune: FinetuneSection | None = None
    probing: ProbingSection | None = None
    attention: AttentionSection | None = None
    perplexity: PerplexitySection | None = None

    @field_validator("models", mode="before")
    @classmethod
    def _models_from_strings(cls, models: Any) -> Any:
        if not isinstance(models, list) or not models:
            raise ValueError("models must be a non-empty list of specs or {name, spec} entries")
        return [{"name": slug(m), "spec": m} if isinstance(m, str) else m for m in models]

    @model_validator(mode="after")
    def _check_references(self) -> GridConfig:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        for section_name in STAGES:
            section = getattr(self, section_name)
            unknown = [m for m in (getattr(section, "models", None) or []) if m not in names]
            if unknown:
                raise ValueError(f"{section_name}.models names unknown model(s) {unknown}; known: {names}")
        return self


def load_config(path: str | Path) -> GridConfig:
    """Read and validate a grid YAML file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: invalid YAML or schema violations, naming the file and the offending keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid config not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    try:
        return GridConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<top>'}: {e['msg']}" for e in error.errors()
        )
        raise ValueError(f"{path}: invalid grid config: {problems}") from error


@dataclass(frozen=True)
class Cell:
    """One papermill run: a notebook, its parameters, and the cells it depends on."""

    name: str
    stage: str
    notebook: Path
    parameters: dict[str, Any]
    depends_on: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class GridPaths:
    """Resolved locations of a run."""

    output_dir: Path
    data_dir: Path | None

    @property
    def cells_dir(self) -> Path:
        return self.output_dir / "cells"

    @property
    def notebooks_dir(self) -> Path:
        return self.output_dir / "notebooks"

    @property
    def cache_dir(self) -> Path:
        return self.output_dir / "cache"

    @property
    def results_csv(self) -> Path:
        return self.output_dir / results.RESULTS_FILE


def resolve_paths(config: GridConfig, *, data_dir: str | None = None, output_dir: str | None = None) -> GridPaths:
    """Apply overrides: ``--data-dir`` beats ``PROBEFT_DATA_DIR`` beats the config; paths are made absolute.

    Relative paths are taken from the current working directory.
    """
    chosen_data = data_dir or os.environ.get("PROBEFT_DATA_DIR") or config.data_dir
    return GridPaths(
        output_dir=Path(output_dir or config.output_dir).resolve(),
        data_dir=Path(chosen_data).resolve() if chosen_data else None,
    )


def head_for(task: str, head: str) -> str:
    """The head a fine-tuning run really uses: SQuAD always has the token-level span head."""
    return "span" if task == "squad" else head


def finetune_cell_name(model: str, task: str, head: str, seed: int) -> str:
    """Deterministic name of a fine-tuning cell."""
    return f"finetune__model-{model}__task-{task}__head-{head_for(task, head)}__seed-{seed}"


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
            for task in (t for t in config.probing.finetune_tasks if t != "none"):
                runs += [(model, task, config.probing.finetune_head, seed) for seed in seeds]
    if config.attention:
        for model in _section_models(config, config.attention):
            runs += [(model, config.attention.finetune_task, h, config.attention.seed) for h in config.attention.heads]
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
        Fine-tuning cells, then probing, attention and perplexity cells.
    """
    # No data dir anywhere: the notebooks read from the hub ("hub"), never the offline demo data.
    common = {"data_dir": str(paths.data_dir) if paths.data_dir else "hub", "device": config.device}
    cells: list[Cell] = []
    ft = config.finetune or FinetuneSection()
    for model, task, head, seed in _finetune_runs(config):
        name = finetune_cell_name(model.name, task, head, seed)
        params = {
            "model": model.spec, "model_name": model.name, "task": task, "head": head_for(task, head), "seed": seed,
            **ft.settings(task),
        }
        cells.append(_cell(name, "finetune", "finetune.ipynb", params, common, paths))

    def finetuned_dir(model: ModelEntry, task: str, head: str, seed: int) -> str:
        return str(paths.cells_dir / finetune_cell_name(model.name, task, head, seed))

    if config.probing:
        pr = config.probing
        seeds = config.finetune.seeds if config.finetune else [0]
        for model in _section_models(config, pr):
            for task in pr.finetune_tasks:
                for seed in (seeds[:1] if task == "none" else seeds):
                    head = "none" if task == "none" else head_for(task, pr.finetune_head)
                    source = model.spec if task == "none" else finetuned_dir(model, task, head, seed)
                    depends = () if task == "none" else (Path(source).name,)
                    name = f"probing__model-{model.name}__ft-{task}" + ("" if task == "none" else f"-{head}")
                    params = {
                        "model": source, "model_name": model.name, "finetune_task": task, "finetune_head": head,
                        "seed": seed, "epoch": -1 if task != "none" else 0, "probe_tasks": list(pr.tasks),
                        "poolings": list(pr.poolings), "max_train": pr.max_train, "max_eval": pr.max_eval,
                        "batch_size": pr.batch_size, "max_length": pr.max_length,
                        "cache_dir": str(paths.cache_dir / "features"),
                    }
                    cells.append(_cell(f"{name}__seed-{seed}", "probing", "probing.ipynb", params, common, paths, depends))
    if config.attention:
        at = config.attention
        for model in _section_models(config, at):
            finetuned = {f"{at.finetune_task}-{h}": finetuned_dir(model, at.finetune_task, h, at.seed) for h in at.heads}
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
            for task in pp.finetune_tasks:
                runs = {seed: finetuned_dir(model, task, pp.head, seed) for seed in pp.seeds}
                params = {
                    "model": model.spec, "model_name": model.name, "finetune_task": task, "finetune_head": pp.head,
                    "finetune_runs": runs, "block_size": pp.block_size, "max_blocks": pp.max_blocks,
                    "mask_seed": pp.mask_seed, "batch_size": pp.batch_size,
                }
                name = f"perplexity__model-{model.name}__ft-{task}-{pp.head}"
                depends = tuple(Path(p).name for p in runs.values())
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


@dataclass
class GridReport:
    """What a grid run did."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def execute_cell(cell: Cell, executed_path: Path, *, kernel_name: str) -> None:
    """Run one cell's notebook with papermill (imported lazily: the grid validates without it)."""
    import papermill

    executed_path.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(cell.notebook),
        str(executed_path),
        parameters=cell.parameters,
        kernel_name=kernel_name,
        cwd=str(REPO_ROOT),
        progress_bar=False,
    )


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
) -> GridReport:
    """Run every cell not yet complete, in order, then gather ``results.csv``.

    Args:
        config: the validated grid.
        paths: resolved folders.
        force: re-run complete cells too.
        continue_on_error: keep going after a failed cell (its dependants are skipped as failed).
        dry_run: only list what would run.
        only_stages: restrict to these stages.
        log: where progress lines go.
        executor: replaces papermill (tests); called as ``executor(cell, executed_notebook_path)``.

    Returns:
        A :class:`GridReport`; ``report.ok`` is False when any cell failed.
    """
    if only_stages:
        unknown = [s for s in only_stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; stages are {list(STAGES)}")
    cells = expand(config, paths)
    run_one = executor or (lambda cell, path: execute_cell(cell, path, kernel_name=config.kernel_name))
    report = GridReport()
    if not dry_run:
        _prepare(config, paths, cells, log)
    for index, cell in enumerate(cells, 1):
        if only_stages and cell.stage not in only_stages:
            continue
        cell_dir = Path(cell.parameters["output_dir"])
        executed = paths.notebooks_dir / f"{cell.name}.ipynb"
        prefix = f"[{index}/{len(cells)}] {cell.name}"
        if not force and results.cell_complete(cell_dir) and executed.is_file():
            report.skipped.append(cell.name)
            log(f"{prefix}: complete, skipped")
            continue
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
        started = time.time()
        try:
            run_one(cell, executed)
            if not results.cell_complete(cell_dir):
                raise RuntimeError(f"notebook finished but wrote no complete results in {cell_dir}")
        except Exception as error:  # noqa: BLE001 - any notebook failure is reported per cell
            report.failed[cell.name] = f"{type(error).__name__}: {error}".splitlines()[0][:500]
            log(f"{prefix}: FAILED after {time.time() - started:.0f}s: {report.failed[cell.name]}")
            log("".join(traceback.format_exception_only(type(error), error)).strip()[:2000])
            if not continue_on_error:
                break
            continue
        report.ran.append(cell.name)
        log(f"{prefix}: done in {time.time() - started:.0f}s")
    if not dry_run:
        complete = [Path(c.parameters["output_dir"]) for c in cells if results.cell_complete(c.parameters["output_dir"])]
        if complete:
            table = results.gather(complete, paths.results_csv)
            log(f"gathered {len(table)} rows from {len(complete)} cells into {paths.results_csv}")
    if report.failed:
        log(f"{len(report.failed)} cell(s) failed:")
        for name, why in report.failed.items():
            log(f"  {name}: {why}")
    return report


def _prepare(config: GridConfig, paths: GridPaths, cells: list[Cell], log: Callable[[str], None]) -> None:
    """Create folders and record the resolved grid (demo data is made by the CLI beforehand)."""
    paths.output_dir.mkdir(parents=True, exist_ok=True)
    if paths.data_dir is not None and not paths.data_dir.is_dir():
        raise FileNotFoundError(f"data_dir does not exist: {paths.data_dir}")
    record = {
        "config": config.model_dump(),
        "output_dir": str(paths.output_dir),
        "data_dir": str(paths.data_dir) if paths.data_dir else None,
        "cells": [{"name": c.name, "stage": c.stage, "notebook": c.notebook.name} for c in cells],
    }
    results.atomic_write_text(paths.output_dir / "grid.json", json.dumps(record, indent=2))
