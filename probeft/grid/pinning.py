"""Pin a grid's hub models, hub data sets and downloaded SentEval files to commits once, when it starts.

:func:`hub_sources` lists what a config would fetch (no network); :func:`pin_run` resolves each to the
commit the hub serves now, keeps every commit an earlier start of the same output dir already pinned (a
resume sees the same bytes, online or offline), and writes ``<output_dir>/hub-pins.json``
(:mod:`probeft.core.pins`). :func:`pins_active` hands the file to the cells through the environment.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from probeft import models
from probeft.core import hub, pins
from probeft.core.names import SENTEVAL_TASKS
from probeft.data.hub_datasets import HUB_DATASETS
from probeft.data.senteval import downloads_disabled, resolve_probing_file, senteval_blob_sha1s
from probeft.grid.schema import GridConfig

__all__ = ["hub_sources", "pin_run", "pins_active"]


def _section_model_specs(config: GridConfig, section) -> list[str]:
    wanted = getattr(section, "models", None)
    return [m.spec for m in config.models if wanted is None or m.name in wanted]


def hub_sources(config: GridConfig, data_dir: Path | None) -> dict[str, list[str]]:
    """What a grid would fetch online: ``{"models": [repo ids], "datasets": [repo ids], "senteval": [tasks]}``.

    Models are those of the config whose spec is a hub id (:func:`probeft.models.hub_repo_id`). Data sets come
    from the hub when there is no data folder; SentEval files are downloaded when the data folder (if any)
    lacks them. Nothing is loaded and nothing is fetched.

    Args:
        config: the validated grid.
        data_dir: the grid's data folder, or None for the hub.
    """
    specs = {m.spec for m in config.models}
    model_ids = sorted({repo for spec in specs if (repo := models.hub_repo_id(spec)) is not None})
    dataset_ids: set[str] = set()
    if data_dir is None:
        if config.finetune:
            dataset_ids |= {HUB_DATASETS[task][0] for task in config.finetune.tasks}
        if config.perplexity:
            dataset_ids.add(HUB_DATASETS["wikitext"][0])
    probe_tasks: set[str] = set(config.probing.tasks) if config.probing else set()
    if config.attention:
        probe_tasks.add(config.attention.probe_task)
    senteval = []
    for task in sorted(t for t in probe_tasks if t in SENTEVAL_TASKS):
        try:
            resolve_probing_file(task, data_dir if data_dir is not None else "hub", download=False)
        except FileNotFoundError:
            senteval.append(task)
    return {"models": model_ids, "datasets": sorted(dataset_ids), "senteval": senteval}


def _resolve(kind: str, name: str) -> str | None:
    """The commit (or SentEval blob sha1) ``name`` is at now, or None when it can't be told (offline)."""
    if kind == "senteval":
        if downloads_disabled():
            return None
        try:
            return senteval_blob_sha1s().get(name)
        except (OSError, ValueError):
            return None
    if kind == "models":
        return hub.hub_commit("models", name) or _cached_model_commit(name)
    return hub.hub_commit("datasets", name)


def _cached_model_commit(repo_id: str) -> str | None:
    """The commit of the cached snapshot ``refs/main`` names, so an offline start still pins what it will read."""
    cached = hub.cached_snapshot(repo_id)
    return cached.name if cached is not None else None


def pin_run(config: GridConfig, data_dir: Path | None, output_dir: Path,
            log: Callable[[str], None] = print) -> Path | None:
    """Resolve and write the run's pins; None (and no file) when the grid fetches nothing.

    Commits already in ``<output_dir>/hub-pins.json`` are kept; only new or unresolved entries are asked for.
    An entry that can't be resolved (offline) stays ``null``: its cells record the commit they read.

    Raises:
        probeft.core.pins.PinsFileError: the existing pins file is damaged (naming it).
    """
    sources = hub_sources(config, data_dir)
    if not any(sources.values()):
        return None
    path = output_dir / pins.PINS_FILE
    pinned = pins.read_pins(path) if path.is_file() else {kind: {} for kind in pins.KINDS}
    unresolved = []
    for kind, names in sources.items():
        for name in names:
            if pinned[kind].get(name) is None:
                pinned[kind][name] = _resolve(kind, name)
                if pinned[kind][name] is None:
                    unresolved.append(f"{kind[:-1] if kind != 'senteval' else 'SentEval'} {name}")
                else:
                    log(f"pinned {name} to {pinned[kind][name][:12]} ({path.name})")
    pins.write_pins(path, pinned)
    if unresolved:
        log(f"could not pin {', '.join(unresolved)} (offline or unknown): their cells record the commit they read")
    return path


@contextlib.contextmanager
def pins_active(path: Path | None) -> Iterator[None]:
    """Set :data:`probeft.core.pins.PINS_ENV` to ``path`` for the cells started inside (kernels and Dask
    workers inherit it); restore the previous value after."""
    before = os.environ.get(pins.PINS_ENV)
    if path is None:
        os.environ.pop(pins.PINS_ENV, None)
    else:
        os.environ[pins.PINS_ENV] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(pins.PINS_ENV, None)
        else:
            os.environ[pins.PINS_ENV] = before
