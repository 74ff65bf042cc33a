"""``probeft make-probing-data``: SentEval-format probing tasks from a plain-text corpus, written whole or not at all."""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from probeft.core.files import atomic_directory
from probeft.data.probing_builders.corpus import (
    Sentence,
    corpus_lines,
    load_spacy,
    parsed_sentences,
    plain_sentences,
)
from probeft.data.probing_builders.splits import (
    SPLIT_CODES,
    SPLITS,
    Line,
    ProbingBuildError,
    senteval_line,
    sidecar_record,
)
from probeft.data.probing_builders.tasks import BUILDERS, PARSER_FREE_TASKS, BuildSettings, Corpus

__all__ = ["MANIFEST_FILE", "SIDECAR_SUFFIX", "build_probing_data", "normalise_build_tasks"]

MANIFEST_FILE = "make_probing_data.json"  # written last; also marks a folder this command may replace
SIDECAR_SUFFIX = ".changes.jsonl"


def normalise_build_tasks(tasks: Sequence[str]) -> list[str]:
    """Task names (``"bigram-shift"`` -> ``"bigram_shift"``), each once, in the order given.

    Raises:
        ValueError: an unknown task, listing the ten; or no task.
    """
    names = []
    for task in tasks:
        name = str(task).strip().lower().replace("-", "_")
        if name not in BUILDERS:
            raise ValueError(f"unknown probing task {task!r}; expected some of {', '.join(BUILDERS)}")
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"no probing task given; expected some of {', '.join(BUILDERS)}")
    return names


def _unique(sentences: list[Sentence]) -> list[Sentence]:
    """The first occurrence of each sentence text: a repeated sentence could otherwise land in two splits."""
    seen: set[str] = set()
    kept = []
    for sentence in sentences:
        if sentence.text not in seen:
            seen.add(sentence.text)
            kept.append(sentence)
    return kept


def _check_out_dir(out_dir: Path) -> None:
    """OUT_DIR is new, or a folder this command wrote before (it is replaced whole)."""
    if out_dir.exists() and not (out_dir.is_dir() and (out_dir / MANIFEST_FILE).is_file()):
        what = "a file" if not out_dir.is_dir() else f"a folder without {MANIFEST_FILE}"
        raise FileExistsError(f"{out_dir} is {what}, not one written by make-probing-data: it would be replaced "
                              "whole; give a new folder")


def _read_corpus(path: Path, tasks: list[str], settings: BuildSettings,
                 log: Callable[[str], None]) -> tuple[Corpus, dict[str, Any] | None, int]:
    """The corpus's sentences for ``tasks``, the spaCy pipeline's meta (or None), and the sentences read."""
    lines = corpus_lines(path)
    if not any(lines):
        raise ProbingBuildError(f"task {tasks[0]}: corpus {path} is empty (0 sentences found; "
                                f"{sum(settings.sizes):,} needed for sizes {'/'.join(map(str, settings.sizes))})")
    corpus, meta, read = Corpus(), None, 0
    parser_tasks = [task for task in tasks if task not in PARSER_FREE_TASKS]
    if parser_tasks:
        nlp = load_spacy(settings.spacy_model, parser_tasks[0])  # before any work: a missing model fails fast
        meta = {key: nlp.meta.get(key) for key in ("lang", "name", "version", "spacy_version")}
        started = time.perf_counter()
        kept, every = parsed_sentences(lines, nlp)
        corpus.parsed, corpus.parsed_all = _unique(kept), every
        read += len(every)
        log(f"spaCy {meta['lang']}_{meta['name']} {meta['version']}: {len(every):,} sentences parsed in "
            f"{time.perf_counter() - started:.1f} s, {len(corpus.parsed):,} distinct of 5-28 tokens")
    if len(parser_tasks) < len(tasks):
        kept, every = plain_sentences(lines)
        corpus.plain, corpus.plain_all = _unique(kept), every
        read = max(read, len(every))
    return corpus, meta, read


def _ordered(lines: list[Line], rng: random.Random) -> list[Line]:
    """Ordered by split (tr, va, te), shuffled within each, as SentEval's files."""
    ordered = []
    for split in SPLITS:
        part = [line for line in lines if line.split == split]
        rng.shuffle(part)
        ordered += part
    return ordered


def build_probing_data(
    corpus: str | Path,
    out_dir: str | Path,
    tasks: Sequence[str],
    settings: BuildSettings | None = None,
    *,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Build SentEval-format probing tasks from a plain-text corpus (one document or sentence per line).

    Writes ``OUT_DIR/<task>.txt`` (``tr|va|te <TAB> label <TAB> sentence``), ``OUT_DIR/<task>.changes.jsonl`` (one
    record per line of the task file, in the same order: split, label, sentence, the corpus line and sentence it
    came from, every change made, and what the label was read from) and ``OUT_DIR/make_probing_data.json`` (corpus
    sha256, settings, spaCy pipeline, lines per split and class, file sha256s). The folder is built aside and
    swapped in whole: after an error OUT_DIR is as it was. A grid reads the tasks with ``--data-dir OUT_DIR``.

    Args:
        corpus: the text file.
        out_dir: a new folder, or one this function wrote before (replaced).
        tasks: names from :data:`~probeft.data.probing_builders.tasks.BUILDERS`.
        settings: sizes, seed, spaCy pipeline, frequency bands (default: SentEval's).
        log: progress lines.

    Returns:
        The manifest written.

    Raises:
        FileNotFoundError: no corpus.
        FileExistsError: OUT_DIR exists and was not written by this function.
        ValueError: unknown task; spaCy or its pipeline missing for a task that needs it (naming the task);
            :class:`~probeft.data.probing_builders.splits.ProbingBuildError` when a task has too few eligible
            sentences (naming the task, the count found and the count needed).
    """
    settings = settings or BuildSettings()
    names = normalise_build_tasks(tasks)
    corpus_path, out_path = Path(corpus), Path(out_dir)
    _check_out_dir(out_path)
    started = time.perf_counter()
    sentences, spacy_meta, read = _read_corpus(corpus_path, names, settings, log)
    built: dict[str, tuple[list[Line], list[str], float]] = {}
    for name in names:
        task_started = time.perf_counter()
        rng = random.Random(f"{settings.seed}:{name}")  # per task: a file does not depend on the other tasks asked
        lines, labels = BUILDERS[name](sentences, settings, rng)
        built[name] = (_ordered(lines, rng), labels, time.perf_counter() - task_started)
        log(f"{name}: {len(lines):,} lines, {len(labels)} classes")
    seconds = time.perf_counter() - started
    manifest: dict[str, Any] = {
        "corpus": str(corpus_path.resolve()),
        "corpus_sha256": hashlib.sha256(corpus_path.read_bytes()).hexdigest(),
        "settings": asdict(settings),
        "spacy": spacy_meta,
        "sentences_read": read,
        "seconds": round(seconds, 3),
        "sentences_per_second": round(read / seconds, 1) if seconds > 0 else None,
        "tasks": {},
    }
    with atomic_directory(out_path) as staging:
        for name, (lines, labels, task_seconds) in built.items():
            text = "".join(senteval_line(line) + "\n" for line in lines)
            sidecar = "".join(json.dumps(sidecar_record(line, number), ensure_ascii=False) + "\n"
                              for number, line in enumerate(lines, start=1))
            (staging / f"{name}.txt").write_text(text, encoding="utf-8")
            (staging / f"{name}{SIDECAR_SUFFIX}").write_text(sidecar, encoding="utf-8")
            counts = Counter((line.split, line.label) for line in lines)
            manifest["tasks"][name] = {
                "file": f"{name}.txt",
                "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                "sidecar": f"{name}{SIDECAR_SUFFIX}",
                "reading": "plain" if name in PARSER_FREE_TASKS else "spacy",
                "labels": labels,
                "lines": {SPLIT_CODES[s]: {label: counts[s, label] for label in labels if counts[s, label]}
                          for s in SPLITS},
                "seconds": round(task_seconds, 3),
            }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    return manifest
