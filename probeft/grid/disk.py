"""How much disk a grid's feature cache needs: the estimate ``probeft grid --dry-run`` prints.

Per probing cell and task the cache holds ``(L + 1) x sentences x D x poolings`` values
(:func:`probeft.probing.feature_cache.estimate_cache_bytes`) in ``probing.cache_dtype``. The pre-trained
encoders' features stay (fine-tuned cells read them for CKA); a fine-tuned encoder's are deleted once its
cell is complete unless ``probing.keep_finetuned_features``, so the cache peaks at the kept features plus
one fine-tuned cell's. Sentence counts come from the probing files when they are in the data folder (caps
applied), else the paper's 100k / 10k / 10k; widths and depths from each model's config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from probeft.core import names
from probeft.grid.cells import GridPaths
from probeft.grid.schema import GridConfig
from probeft.probing.feature_cache import estimate_cache_bytes

__all__ = ["PAPER_SENTENCES", "CacheEstimate", "estimate_grid_cache", "format_estimate"]

PAPER_SENTENCES: tuple[int, int, int] = (100_000, 10_000, 10_000)  # train, dev, test per SentEval task


@dataclass(frozen=True)
class CacheEstimate:
    """Feature-cache bytes of a grid.

    Attributes:
        kept: bytes that stay at the end (pre-trained encoders', and fine-tuned ones' if kept).
        peak: most bytes on disk at once (``kept`` plus the largest fine-tuned cell's features when dropped).
        total_written: bytes written over the run.
        notes: one line per assumption (unknown model sizes, sentence counts taken from the paper).
    """

    kept: int
    peak: int
    total_written: int
    notes: tuple[str, ...]


def _sentences(task: str, data_dir: Path | None, max_train: int | None, max_eval: int | None) -> tuple[int, bool]:
    """Train + dev + test sentences of a probing task and whether they were counted from its file."""
    counts = {"tr": 0, "va": 0, "te": 0}
    path = None if data_dir is None else next(
        (p for p in (data_dir / "senteval" / f"{task}.txt", data_dir / f"{task}.txt") if p.is_file()), None)
    if path is None:
        counts = dict(zip(("tr", "va", "te"), PAPER_SENTENCES))
    else:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                partition = line.split("\t", 1)[0]
                if partition in counts:
                    counts[partition] += 1
    train = min(counts["tr"], max_train) if max_train else counts["tr"]
    evaluation = sum(min(counts[p], max_eval) if max_eval else counts[p] for p in ("va", "te"))
    return train + evaluation, path is not None


def _model_size(spec: str) -> tuple[int, int] | None:
    """``(layers, hidden size)`` from a model's config, or None when it cannot be read offline."""
    try:
        from probeft import models

        config = models.load_config(spec)
        return int(config.num_hidden_layers), int(config.hidden_size)
    except Exception:  # noqa: BLE001 - an estimate: an unreadable model is reported, not fatal
        return None


def estimate_grid_cache(config: GridConfig, paths: GridPaths) -> CacheEstimate | None:
    """The feature-cache bytes of a grid's probing cells (None: the grid has no probing section)."""
    probing = config.probing
    if probing is None:
        return None
    wanted = probing.models
    notes: list[str] = []
    sentences, assumed = 0, []
    for task in probing.tasks:
        count, counted = _sentences(task, paths.data_dir, probing.max_train, probing.max_eval)
        sentences += count
        if not counted:
            assumed.append(task)
    if assumed:
        notes.append(f"sentences of {assumed} not found in the data folder: the paper's 100k/10k/10k assumed")
    seeds = len(config.finetune.seeds) if config.finetune else 1
    kept = peak_finetuned = written = 0
    for model in (m for m in config.models if wanted is None or m.name in wanted):
        size = _model_size(model.spec)
        if size is None:
            notes.append(f"model {model.name} ({model.spec}): config not readable offline, left out")
            continue
        per_cell = estimate_cache_bytes(hidden_size=size[1], num_layers=size[0], sentences=sentences,
                                        poolings=len(probing.poolings), dtype=probing.cache_dtype)
        for task in probing.finetune_tasks:
            cells = 1 if task == names.NO_FINETUNE else seeds
            written += cells * per_cell
            if task == names.NO_FINETUNE or probing.keep_finetuned_features:
                kept += cells * per_cell
            else:
                peak_finetuned = max(peak_finetuned, per_cell)
    return CacheEstimate(kept=kept, peak=kept + peak_finetuned, total_written=written, notes=tuple(notes))


def _size(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.0f} MB"


def format_estimate(estimate: CacheEstimate, cache_dir: Path, cache_dtype: str) -> str:
    """Lines for ``--dry-run``: peak, kept and written bytes of the feature cache."""
    lines = [(f"feature cache {cache_dir} ({cache_dtype}): about {_size(estimate.peak)} at most on disk, "
              f"{_size(estimate.kept)} kept at the end, {_size(estimate.total_written)} written in all")]
    lines += [f"  note: {note}" for note in estimate.notes]
    return "\n".join(lines)
