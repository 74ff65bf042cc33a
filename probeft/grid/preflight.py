"""``probeft check CONFIG``: verify a grid in minutes before it spends hours.

For every model and data source of a config it says where it resolves to (hub commit, cached snapshot,
local folder and weight hash, data files and their sizes), whether the device and precision are usable,
how much disk the run's checkpoints and feature caches will take against the free space, and then runs
each stage once on tiny slices with the config's own models and data (fine-tuning one epoch on 16
examples, probing 64 sentences, attention on 8, perplexity on 2 blocks, a fitted masked-LM head on 4), chained as
the grid chains them.

Each line of the result is ``ok``, ``failed`` (with the reason) or ``unverified`` (what could not be checked
here, e.g. a hub model on an offline machine); the command exits 1 when anything failed. Nothing is
written outside a temporary folder, which is removed at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from probeft import data, finetune, models, probing
from probeft.core import devices, hub, pins
from probeft.core.names import NO_FINETUNE, SENTEVAL_TASKS, default_epochs
from probeft.data import locations
from probeft.data.hub_datasets import HUB_DATASETS
from probeft.data.senteval import downloads_disabled, senteval_blob_sha1s
from probeft.diagnostics import attention, mlm_head, perplexity
from probeft.finetune import checkpoints
from probeft.grid import disk
from probeft.grid.cells import Cell, GridPaths, is_mlm_head_cell
from probeft.grid.pinning import hub_sources
from probeft.grid.runner import expand
from probeft.grid.schema import GridConfig

__all__ = ["FAILED", "OK", "UNVERIFIED", "CheckRow", "ModelShape", "check_config", "check_table",
           "estimate_checkpoint_bytes", "format_table"]

OK, FAILED, UNVERIFIED = "ok", "failed", "unverified"
SMOKE_FINETUNE = {"epochs": 1, "max_train": 16, "max_eval": 8, "batch_size": 8, "progress": False}
SMOKE_PROBING = {"max_train": 64, "max_eval": 32}
SMOKE_SENTENCES = 8
SMOKE_BLOCKS = 2
SMOKE_HEAD_FIT = {"max_blocks": 4, "epochs": 1}  # a head fitted on 3 blocks, judged on 1
WIKITEXT_VALID = "wikitext-valid"  # the data source a fitted head needs besides the test split


@dataclass(frozen=True)
class CheckRow:
    """One line of the check: what was checked, how it came out, and what was found or why it failed."""

    area: str  # model | data | device | disk | smoke
    item: str
    status: str  # OK | FAILED | UNVERIFIED
    detail: str
    seconds: float = 0.0


def _size(count: float) -> str:
    """Bytes as a short decimal size: ``"512 B"``, ``"3.2 MB"``, ``"431.0 GB"``."""
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def _reason(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


# ----------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    """What the disk estimate needs of a model: layers L, width D and the bytes of its weight files."""

    layers: int
    hidden: int
    weight_bytes: int


def _weight_bytes(folder: Path) -> int:
    weights = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file()]
    safetensors = [p for p in weights if p.suffix == ".safetensors"]
    return sum(p.stat().st_size for p in (safetensors or weights))  # a repo may ship both formats


def _check_model(spec: str, pinned: dict[str, str | None]) -> tuple[CheckRow, ModelShape | None]:
    """Resolve one model spec without loading its weights."""
    repo_id = models.hub_repo_id(spec)
    if repo_id is not None and hub.hub_reachable():
        commit = hub.hub_commit("models", repo_id)
        if commit is None:
            return CheckRow("model", spec, FAILED, f"the hub ({hub.hub_endpoint()}) does not serve {repo_id!r} "
                            "(a typo, a gated or private model without a token?)"), None
        was = pinned.get(repo_id)
        note = f"; the run is pinned to {was[:12]}" if was and was != commit else ""
        shape = _hub_model_shape(repo_id, was or commit)
        return CheckRow("model", spec, OK, f"hub {repo_id} at commit {commit[:12]}{note}"), shape
    try:
        folder = Path(models.resolve_model(spec))
    except hub.HubUnreachableError:
        why = "HF_HUB_OFFLINE is set" if not hub.hub_reachable() and hub.env_flag("HF_HUB_OFFLINE") else (
            f"{hub.hub_endpoint()} is unreachable")
        return CheckRow("model", spec, UNVERIFIED, f"hub model {repo_id}: {why} and it is not in the local cache; "
                        "not checked"), None
    except Exception as error:  # noqa: BLE001 - reported as the row's reason
        return CheckRow("model", spec, FAILED, _reason(error)), None
    config = models.load_config(spec)
    shape = ModelShape(int(config.num_hidden_layers), int(config.hidden_size), _weight_bytes(folder))
    revision = models.model_fingerprint(spec)["revision"]
    where = "cached hub snapshot (offline)" if repo_id is not None else f"local folder {folder}"
    return CheckRow("model", spec, OK, f"{where}, revision {revision[:16]}, L={shape.layers}, D={shape.hidden}, "
                    f"weights {_size(shape.weight_bytes)}"), shape


def _hub_model_shape(repo_id: str, revision: str) -> ModelShape | None:
    """L, D and weight bytes of a hub model from its config.json and file listing (no weights downloaded)."""
    try:
        import json

        from huggingface_hub import HfApi, hf_hub_download

        config = json.loads(Path(hf_hub_download(repo_id, "config.json", revision=revision)).read_text())
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
        sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
        safetensors = [size for name, size in sizes.items() if name.endswith(".safetensors")]
        weights = safetensors or [size for name, size in sizes.items() if name.endswith(".bin")]
        return ModelShape(int(config["num_hidden_layers"]), int(config["hidden_size"]), int(sum(weights)))
    except Exception:  # noqa: BLE001 - the disk estimate says "unknown" for this model
        return None


# ----------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------


def _senteval_counts(path: Path) -> tuple[int, int, int]:
    task = data.read_senteval(path)
    return len(task.train), len(task.dev), len(task.test)


def _check_data(config: GridConfig, data_dir: Path | None, pinned: dict[str, dict[str, str | None]]
                ) -> tuple[list[CheckRow], set[str]]:
    """Rows for every data source, and the sources not usable here (their smoke is not run)."""
    rows: list[CheckRow] = []
    unusable: set[str] = set()
    where = str(data_dir) if data_dir is not None else locations.HUB
    finetune_tasks = list(config.finetune.tasks) if config.finetune else []
    for section in (config.probing, config.attention, config.perplexity):
        for task in getattr(section, "finetune_tasks", None) or [getattr(section, "finetune_task", None)]:
            if task and task != NO_FINETUNE and task not in finetune_tasks:
                finetune_tasks.append(task)
    text_sources = [*finetune_tasks, *(["wikitext"] if config.perplexity else []),
                    *([WIKITEXT_VALID] if config.perplexity and config.perplexity.mlm_head == "fitted" else [])]
    for task in text_sources:
        started = time.monotonic()
        if data_dir is None:
            repo_id, subset = HUB_DATASETS["wikitext" if task == WIKITEXT_VALID else task]
            commit = hub.hub_commit("datasets", repo_id)
            if commit is None:
                unusable.add(task)
                rows.append(CheckRow("data", f"{task} ({repo_id})", UNVERIFIED,
                                     f"the hub ({hub.hub_endpoint()}) can't be reached: not checked; pass --data-dir"))
            else:
                was = pinned["datasets"].get(repo_id)
                note = f"; the run is pinned to {was[:12]}" if was and was != commit else ""
                rows.append(CheckRow("data", f"{task} ({repo_id}/{subset or ''})", OK,
                                     f"hub commit {commit[:12]}{note}", time.monotonic() - started))
            continue
        try:
            if task in ("wikitext", WIKITEXT_VALID):
                read = data.read_wikitext_test if task == "wikitext" else data.read_wikitext_valid
                text, source = read(data_dir)
                found = f"{source}: {len(text):,} characters"
            elif task == "squad":
                train, dev = data.read_squad_splits(data_dir)
                found = f"{len(train):,} train / {len(dev):,} dev questions"
            else:
                read = data.read_glue(task, data_dir)
                found = f"{len(read.train):,} train / {len(read.dev):,} dev examples"
            rows.append(CheckRow("data", task, OK, found, time.monotonic() - started))
        except Exception as error:  # noqa: BLE001 - reported as the row's reason
            unusable.add(task)
            rows.append(CheckRow("data", task, FAILED, _reason(error), time.monotonic() - started))
    probe_tasks = list(config.probing.tasks) if config.probing else []
    if config.attention and config.attention.probe_task not in probe_tasks:
        probe_tasks.append(config.attention.probe_task)
    for task in probe_tasks:
        started = time.monotonic()
        try:
            path = data.resolve_probing_file(task, where, download=False)
            tr, va, te = _senteval_counts(path)
            rows.append(CheckRow("data", f"probing {task}", OK, f"{path}: {tr:,} / {va:,} / {te:,} tr / va / te",
                                 time.monotonic() - started))
        except FileNotFoundError as error:
            if task not in SENTEVAL_TASKS:
                unusable.add(task)
                rows.append(CheckRow("data", f"probing {task}", FAILED, _reason(error)))
                continue
            unusable.add(task)  # the smoke would download it: the grid does that, the check does not
            if downloads_disabled():
                rows.append(CheckRow("data", f"probing {task}", UNVERIFIED, "not in the data dir or the download "
                                     "cache, and downloads are off (offline): not checked"))
                continue
            try:
                blob = pinned["senteval"].get(task) or senteval_blob_sha1s().get(task)
                rows.append(CheckRow("data", f"probing {task}", OK if blob else FAILED,
                                     f"would download SentEval {task}.txt, git blob {blob[:12]}" if blob
                                     else f"the pinned SentEval commit has no {task}.txt"))
            except (OSError, ValueError) as listing_error:
                rows.append(CheckRow("data", f"probing {task}", UNVERIFIED, f"GitHub unreachable: {listing_error}"))
        except Exception as error:  # noqa: BLE001 - reported as the row's reason
            unusable.add(task)
            rows.append(CheckRow("data", f"probing {task}", FAILED, _reason(error), time.monotonic() - started))
    return rows, unusable


# ----------------------------------------------------------------------------------------------------------
# Device and disk
# ----------------------------------------------------------------------------------------------------------


def _check_device(config: GridConfig) -> tuple[CheckRow, bool]:
    try:
        device = devices.resolve_device(config.device)
    except ValueError as error:
        return CheckRow("device", config.device, FAILED, _reason(error)), False
    if device.type != "cuda":
        return CheckRow("device", config.device, OK, f"{device}: fine-tuning in fp32 (no CUDA GPU here)"), True
    import torch

    precision = finetune.resolved_precision("auto", cuda=True)
    name = torch.cuda.get_device_name(device)
    free, total = torch.cuda.mem_get_info(device)
    return CheckRow("device", config.device, OK, f"{device} {name}, {free / 2**30:.0f} of {total / 2**30:.0f} GiB "
                    f"free; precision auto -> {precision}"), True


def estimate_checkpoint_bytes(cells: Iterable[Cell], shapes: dict[str, ModelShape | None]) -> tuple[int, list[str]]:
    """Bytes a grid's fine-tuning checkpoints take, and the model specs whose size is unknown (offline).

    Each epoch of each fine-tuning run keeps the encoder (its weight files' size, plus the small head), and
    the latest epoch's optimiser state (Adam: twice the weights) stays for resuming.

    Args:
        cells: the grid's cells (:func:`probeft.grid.runner.expand`).
        shapes: model spec -> its shape, or None when unknown.
    """
    total = 0
    unknown: set[str] = set()
    for cell in (c for c in cells if c.stage == "finetune"):
        params = cell.parameters
        shape = shapes.get(params["model"])
        if shape is None:
            unknown.add(params["model"])
            continue
        total += (int(params.get("epochs") or default_epochs(params["task"])) + 2) * shape.weight_bytes
    return total, sorted(unknown)


def _check_disk(config: GridConfig, paths: GridPaths, cells: list[Cell], shapes: dict[str, ModelShape | None]
                ) -> CheckRow:
    """Checkpoints plus the feature cache's peak (:func:`probeft.grid.disk.estimate_grid_cache`) vs free space."""
    checkpoints_bytes, unknown = estimate_checkpoint_bytes(cells, shapes)
    features = disk.estimate_grid_cache(config, paths)
    feature_bytes = 0 if features is None else features.peak
    notes = [] if features is None else list(features.notes)
    total = checkpoints_bytes + feature_bytes
    existing = next(p for p in (paths.output_dir, *paths.output_dir.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    detail = (f"checkpoints {_size(checkpoints_bytes)} + feature cache at its peak {_size(feature_bytes)} = "
              f"{_size(total)}; {_size(free)} free at {existing}")
    if unknown:
        notes.insert(0, f"checkpoints of {', '.join(unknown)} not counted (size unknown offline)")
    if notes:
        return CheckRow("disk", str(paths.output_dir), UNVERIFIED, f"{detail}; " + "; ".join(notes))
    return CheckRow("disk", str(paths.output_dir), OK if total < free else FAILED,
                    detail if total < free else f"{detail}: not enough space")


# ----------------------------------------------------------------------------------------------------------
# Smoke: every stage once on tiny slices, chained as the grid chains them
# ----------------------------------------------------------------------------------------------------------


def _smoke_finetune(cell: Cell, data_dir: Any) -> str:
    params = cell.parameters
    config = finetune.FinetuneConfig(
        model=params["model"], model_name=params["model_name"], task=params["task"], head=params["head"],
        seed=params["seed"], learning_rate=params["learning_rate"], max_length=params["max_length"],
        device=params["device"], **{**SMOKE_FINETUNE, "batch_size": min(SMOKE_FINETUNE["batch_size"],
                                                                       params["batch_size"])},
    ).resolved()
    table = finetune.run_finetune(config, data_dir, params["output_dir"])
    final = table[table["epoch"] == table["epoch"].max()]
    return ", ".join(f"{m} {v:.2f}" for m, v in zip(final["metric"], final["value"], strict=True))


def _smoke_probing(cell: Cell, data_dir: Any) -> str:
    params = cell.parameters
    weights, _ = checkpoints.resolve_checkpoint(params["model"], params["epoch"])
    run = probing.run_probing(
        weights, params["probe_tasks"], data_dir, poolings=params["poolings"],
        max_train=min(SMOKE_PROBING["max_train"], params["max_train"] or SMOKE_PROBING["max_train"]),
        max_eval=min(SMOKE_PROBING["max_eval"], params["max_eval"] or SMOKE_PROBING["max_eval"]),
        batch_size=params["batch_size"], max_length=params["max_length"], device=params["device"],
        cache_dir=params["cache_dir"], progress=False, control=params["control"],
        control_seed=params["control_task_seed"], mdl=params["mdl"], cka_reference=params["cka_reference"],
        probes=params.get("probes", ["linear"]), mlp_seed=params.get("mlp_seed", 0),
    )
    return f"{len(run.rows)} rows"


def _smoke_attention(cell: Cell, data_dir: Any) -> str:
    params = cell.parameters
    task = data.read_senteval(data.resolve_probing_file(params["probe_task"], data_dir), task=params["probe_task"],
                              max_eval=SMOKE_SENTENCES)
    loaded = attention.load_models(params["model"], params["finetuned"], device=params["device"])
    table = attention.attention_statistics(
        loaded.pretrained, loaded.finetuned_models, loaded.tokenizer, task.test.sentences,
        batch_size=params["batch_size"], max_length=params["max_length"], model_name=params["model_name"],
        finetune_task=params["finetune_task"], probe_task=params["probe_task"], split="test",
        finetuned_info=loaded.finetuned_info, finetuned_tokenizers=loaded.finetuned_tokenizers,
    )
    return f"{len(table)} rows"


def _smoke_perplexity(cell: Cell, data_dir: Any) -> str:
    params = cell.parameters
    text, _ = data.read_wikitext_test(data_dir)
    tokenizer = models.load_tokenizer(params["model"])
    blocks = perplexity.make_masked_blocks(perplexity.tokenize_stream(text, tokenizer), tokenizer,
                                           block_size=params["block_size"], mask_seed=params["mask_seed"],
                                           max_blocks=SMOKE_BLOCKS)
    head_from = params.get("mlm_head_from")
    table = perplexity.perplexity_table(
        params["model"], perplexity.finetune_checkpoints(params["finetune_runs"]), blocks,
        model_name=params["model_name"], finetune_task=params["finetune_task"],
        finetune_head=params["finetune_head"], batch_size=params["batch_size"], device=params["device"],
        sides=("top", "bottom") if params.get("replace_bottom", True) else ("top",),
        mlm_head_from=head_from, mlm_head=mlm_head.head_label(head_from),
    )
    pretrained = table[(table["finetune_task"] == NO_FINETUNE)]["value"].iloc[0]
    return f"pre-trained perplexity {pretrained:.1f} on {SMOKE_BLOCKS} blocks"


def _smoke_mlm_head(cell: Cell, data_dir: Any) -> str:
    """Fit a head on a few blocks of the fitting text and save it where the perplexity smoke reads it."""
    params = cell.parameters
    text, source = data.read_wikitext_valid(data_dir)
    known = {field.name for field in dataclasses.fields(mlm_head.HeadFitSettings)}
    settings = mlm_head.HeadFitSettings(**{**{k: v for k, v in params.items() if k in known}, **SMOKE_HEAD_FIT})
    fitted = mlm_head.fit_mlm_head(params["model"], text, text_source=source, settings=settings,
                                   device=params["device"])
    mlm_head.save_fitted_head(fitted, Path(params["output_dir"]) / mlm_head.HEAD_FOLDER)
    return (f"head fitted on {fitted.record['blocks_fit']} blocks: held-out perplexity "
            f"{fitted.record['heldout_perplexity_untrained']:.1f} -> {fitted.record['heldout_perplexity']:.1f}")


SMOKES: dict[str, Callable[[Cell, Any], str]] = {
    "finetune": _smoke_finetune, "probing": _smoke_probing, "attention": _smoke_attention,
    "perplexity": _smoke_perplexity,
}


def _smoke_cells(cells: list[Cell]) -> list[Cell]:
    """One cell per distinct job, shrunk: fine-tuning per (model, task, head) at the first seed; probing the
    pre-trained and the first fine-tuned encoder per model; attention as is; perplexity per model, one seed."""
    chosen: list[Cell] = []
    seen: set[tuple] = set()
    first_seed = {}
    for cell in cells:
        params = cell.parameters
        if cell.stage == "finetune":
            first_seed.setdefault(params["model"], params["seed"])
            key = ("finetune", params["model"], params["task"], params["head"])
            if params["seed"] != first_seed[params["model"]]:
                continue
        elif cell.stage == "probing":
            key = ("probing", params["model_name"], params["finetune_task"] == NO_FINETUNE)
        elif is_mlm_head_cell(cell):
            key = ("mlm_head", params["model_name"])
        elif cell.stage == "perplexity":
            key = ("perplexity", params["model_name"])
            runs = dict(list(params["finetune_runs"].items())[:1])
            dropped = {Path(run).name for run in params["finetune_runs"].values()} - {Path(r).name for r in runs.values()}
            cell = dataclasses.replace(cell, parameters={**params, "finetune_runs": runs},
                                       depends_on=tuple(d for d in cell.depends_on if d not in dropped))
        else:
            key = (cell.name,)
        if key not in seen:
            seen.add(key)
            chosen.append(cell)
    return chosen


def _run_smoke(cells: list[Cell], data_dir: Any, blocked: dict[str, str], log: Callable[[str], None]) -> list[CheckRow]:
    rows: list[CheckRow] = []
    outcome: dict[str, str] = {}  # smoke-run cell -> OK / FAILED / UNVERIFIED
    for cell in _smoke_cells(cells):
        why = blocked.get(cell.name)
        for dependency in cell.depends_on:
            if why is None and outcome.get(dependency) != OK:
                why = f"needs {dependency}, which " + {FAILED: "failed", UNVERIFIED: "was not run"}.get(
                    outcome.get(dependency, ""), "the smoke does not run")
        if why:
            rows.append(CheckRow("smoke", cell.name, UNVERIFIED, f"not run: {why}"))
            outcome[cell.name] = UNVERIFIED
            continue
        log(f"smoke: {cell.name}")
        started = time.monotonic()
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the Trainer prints a metrics dict per epoch
                found = (_smoke_mlm_head if is_mlm_head_cell(cell) else SMOKES[cell.stage])(cell, data_dir)
            rows.append(CheckRow("smoke", cell.name, OK, found, time.monotonic() - started))
            outcome[cell.name] = OK
        except Exception as error:  # noqa: BLE001 - reported as the row's reason
            outcome[cell.name] = FAILED
            rows.append(CheckRow("smoke", cell.name, FAILED, _reason(error), time.monotonic() - started))
    return rows


def _blocked_cells(cells: list[Cell], unusable_models: set[str], unusable_data: set[str]) -> dict[str, str]:
    """Cells whose model or data could not be verified here: their smoke is not run."""
    blocked = {}
    for cell in cells:
        params = cell.parameters
        model = params.get("model")
        needs = [params.get("task"), params.get("probe_task"), *params.get("probe_tasks", [])]
        if cell.stage == "perplexity":
            needs.append(WIKITEXT_VALID if is_mlm_head_cell(cell) else "wikitext")
        if model in unusable_models:
            blocked[cell.name] = f"model {model} is not available here"
        elif bad := [n for n in needs if n in unusable_data]:
            blocked[cell.name] = f"data {', '.join(bad)} not available here"
    return blocked


# ----------------------------------------------------------------------------------------------------------
# The whole check
# ----------------------------------------------------------------------------------------------------------


def check_config(config: GridConfig, paths: GridPaths, *, smoke: bool = True,
                 log: Callable[[str], None] = print) -> list[CheckRow]:
    """Check a grid before running it: models, data, device, disk, and (``smoke``) every stage on tiny slices.

    Args:
        config: the validated grid.
        paths: its resolved folders (the data dir is read; the output dir is only looked at).
        smoke: run the stages on tiny slices.
        log: progress lines.

    Returns:
        One :class:`CheckRow` per item checked.
    """
    pins_file = paths.output_dir / pins.PINS_FILE
    pinned = pins.read_pins(pins_file) if pins_file.is_file() else {kind: {} for kind in pins.KINDS}
    rows: list[CheckRow] = []
    shapes: dict[str, ModelShape | None] = {}
    unusable_models: set[str] = set()
    for entry in config.models:
        started = time.monotonic()
        row, shapes[entry.spec] = _check_model(entry.spec, pinned["models"])
        rows.append(dataclasses.replace(row, seconds=time.monotonic() - started))
        if row.status != OK:
            unusable_models.add(entry.spec)
    data_rows, unusable_data = _check_data(config, paths.data_dir, pinned)
    rows += data_rows
    device_row, device_ok = _check_device(config)
    rows.append(device_row)
    rows.append(_check_disk(config, paths, expand(config, paths), shapes))
    sources = hub_sources(config, paths.data_dir)
    if any(sources.values()):
        rows.append(CheckRow("pins", str(pins_file), OK if pins_file.is_file() else UNVERIFIED,
                             "the run's commits: " + ", ".join(f"{n} {c[:12] if c else 'unresolved'}"
                                                              for kind in pins.KINDS for n, c in pinned[kind].items())
                             if pins_file.is_file() else "written when the grid starts (online: every hub source "
                             "is pinned to the commit it serves then)"))
    if not smoke:
        return rows
    if not device_ok:
        rows.append(CheckRow("smoke", "all stages", UNVERIFIED, f"not run: device {config.device} is not usable"))
        return rows
    with tempfile.TemporaryDirectory(prefix="probeft-check-") as scratch:
        smoke_paths = GridPaths(output_dir=Path(scratch), data_dir=paths.data_dir)
        cells = expand(config, smoke_paths)
        data_dir = locations.data_location(str(paths.data_dir) if paths.data_dir else locations.HUB)
        rows += _run_smoke(cells, data_dir, _blocked_cells(cells, unusable_models, unusable_data), log)
    return rows


def check_table(rows: list[CheckRow]) -> pd.DataFrame:
    """The rows as a table (columns status, area, item, seconds, detail)."""
    frame = pd.DataFrame([dataclasses.asdict(r) for r in rows], columns=["status", "area", "item", "seconds", "detail"])
    frame["seconds"] = frame["seconds"].round(1)
    return frame


def format_table(rows: list[CheckRow]) -> str:
    """The rows as left-aligned text columns, one line each (the detail last, unclipped)."""
    table = check_table(rows).astype({"seconds": str})
    widths = {column: max(len(column), *(len(str(v)) for v in table[column])) for column in table.columns[:-1]}
    lines = ["  ".join(column.ljust(widths.get(column, 0)) for column in table.columns).rstrip()]
    for record in table.itertuples(index=False):
        cells = [str(value).ljust(widths[column]) for column, value in zip(table.columns[:-1], record[:-1], strict=True)]
        lines.append("  ".join([*cells, str(record[-1])]))
    return "\n".join(lines)
