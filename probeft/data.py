"""Readers for the data sets of the paper, with validation that names the file and line.

* SentEval probing files (``tr|va|te <TAB> label <TAB> sentence``): :func:`read_senteval`.
* GLUE CoLA / SST-2 / RTE as distributed in ``glue_data`` TSV files, or from the ``datasets`` hub:
  :func:`read_glue`.
* SQuAD v1.1 official JSON: :func:`read_squad`.
* WikiText raw text: :func:`read_wikitext`.

Data locations always come from arguments or the ``PROBEFT_DATA_DIR`` environment variable; the expected layout
is the one of ``probeft.demo_data.write_demo_data``::

    <data_dir>/senteval/<task>.txt
    <data_dir>/glue/{CoLA,SST-2,RTE}/{train,dev}.tsv
    <data_dir>/squad/{train-v1.1.json | train-subset.json, dev-v1.1.json}
    <data_dir>/wikitext-2/wiki.test.raw

This module imports nothing else from :mod:`probeft`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "PROBING_TASKS",
    "PROBING_LABELS",
    "GLUE_TASKS",
    "GLUE_LABEL_NAMES",
    "ProbingSplit",
    "ProbingData",
    "read_senteval",
    "resolve_probing_file",
    "data_dir_from",
    "ClassificationSplit",
    "ClassificationData",
    "read_glue",
    "normalize_glue_task",
    "SquadExample",
    "read_squad",
    "resolve_squad_files",
    "read_wikitext",
    "resolve_wikitext_file",
]

PROBING_TASKS = ("bigram_shift", "coordination_inversion", "odd_man_out")
# Label order per task (index = class id): the "unchanged" class first, as in the SentEval README.
PROBING_LABELS: dict[str, tuple[str, ...]] = {
    "bigram_shift": ("O", "I"),
    "coordination_inversion": ("O", "I"),
    "odd_man_out": ("O", "C"),
}
GLUE_TASKS = ("cola", "sst2", "rte")
GLUE_LABEL_NAMES: dict[str, list[str]] = {
    "cola": ["unacceptable", "acceptable"],
    "sst2": ["negative", "positive"],
    "rte": ["entailment", "not_entailment"],
}
_GLUE_DIRS = {"cola": "CoLA", "sst2": "SST-2", "rte": "RTE"}
_SPLIT_CODES = {"tr": "train", "va": "dev", "te": "test"}
_SENTEVAL_URL = "https://raw.githubusercontent.com/facebookresearch/SentEval/main/data/probing/{task}.txt"
DATA_DIR_ENV = "PROBEFT_DATA_DIR"


def _cap_text(max_train: int | None, max_eval: int | None) -> str:
    for name, cap in (("max_train", max_train), ("max_eval", max_eval)):
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1):
            raise ValueError(f"{name} must be a positive integer or None, got {cap!r}")
    return f"max_train={max_train};max_eval={max_eval}"


# ----------------------------------------------------------------------------------------------------------
# Data directories
# ----------------------------------------------------------------------------------------------------------


def data_dir_from(data_dir: str | Path | None) -> Path:
    """The data directory: the explicit argument, else ``$PROBEFT_DATA_DIR``.

    Raises:
        ValueError: if neither is given.
        FileNotFoundError: if the directory does not exist.
    """
    source = "data_dir argument"
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get(DATA_DIR_ENV) or None
        source = f"${DATA_DIR_ENV}"
    if data_dir is None:
        raise ValueError(f"no data directory: pass data_dir=... or set the {DATA_DIR_ENV} environment variable")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"data directory {path} (from the {source}) does not exist")
    return path


def _data_cache_dir() -> Path:
    """Where downloaded files go: ``$PROBEFT_CACHE/data``, else ``~/.cache/probeft/data``."""
    root = os.environ.get("PROBEFT_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "probeft") / "data"


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("PROBEFT_OFFLINE", "HF_HUB_OFFLINE"))


def _download(url: str, target: Path, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``target`` atomically (temporary file, then rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            shutil.copyfileobj(response, out)
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target


# ----------------------------------------------------------------------------------------------------------
# SentEval probing tasks
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbingSplit:
    """One partition of a probing task: sentences and int64 class ids of shape (N,)."""

    sentences: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.sentences)


@dataclass(frozen=True)
class ProbingData:
    """A SentEval probing task: train (tr), dev (va) and test (te) splits.

    ``label_names[i]`` is the file's label for class id ``i``. ``sha256`` hashes the file bytes and the caps, so it
    can key feature caches.
    """

    task: str
    path: Path
    label_names: list[str]
    train: ProbingSplit
    dev: ProbingSplit
    test: ProbingSplit
    sha256: str

    def split(self, name: str) -> ProbingSplit:
        """The split called ``name`` (``"train"``, ``"dev"`` or ``"test"``)."""
        if name not in ("train", "dev", "test"):
            raise ValueError(f"unknown split {name!r}; expected train, dev or test")
        return getattr(self, name)


def read_senteval(
    path: str | Path, *, task: str | None = None, max_train: int | None = None, max_eval: int | None = None
) -> ProbingData:
    """Read a SentEval probing file (``partition<TAB>label<TAB>sentence`` per line).

    Extra middle columns are tolerated (the sentence is the last column). Blank lines are skipped. Caps keep the
    first ``max_train`` lines of ``tr`` and the first ``max_eval`` of ``va`` and of ``te`` (SentEval files are
    shuffled within each partition, so this is a deterministic random sample).

    Args:
        path: the file.
        task: task name (default: the file name without ``.txt``); fixes the label order for known tasks.
        max_train: cap on training sentences.
        max_eval: cap on dev and on test sentences.

    Returns:
        The parsed task.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: naming file and line for a wrong column count, unknown partition or empty sentence; for fewer
            than two labels, a label missing from ``tr``, or a missing partition.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SentEval probing file {path} does not exist")
    cap_text = _cap_text(max_train, max_eval)
    task = task or path.stem
    raw = path.read_bytes()
    columns: dict[str, tuple[list[str], list[str]]] = {split: ([], []) for split in _SPLIT_CODES.values()}
    for number, line in enumerate(raw.decode("utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            raise ValueError(
                f"{path}:{number}: expected 3 tab-separated columns (partition, label, sentence), got {len(fields)}"
            )
        code, label, sentence = fields[0].strip(), fields[1].strip(), fields[-1].strip()
        if code not in _SPLIT_CODES:
            raise ValueError(f"{path}:{number}: unknown partition {code!r}; expected one of tr, va, te")
        if not label:
            raise ValueError(f"{path}:{number}: empty label")
        if not sentence:
            raise ValueError(f"{path}:{number}: empty sentence")
        sentences, labels = columns[_SPLIT_CODES[code]]
        sentences.append(sentence)
        labels.append(label)

    for split, (sentences, _) in columns.items():
        if not sentences:
            code = {v: k for k, v in _SPLIT_CODES.items()}[split]
            raise ValueError(f"{path}: no lines for partition {code!r} ({split}); a probing file needs tr, va and te")
    all_labels = {label for _, labels in columns.values() for label in labels}
    if len(all_labels) < 2:
        raise ValueError(f"{path}: found fewer than two labels ({sorted(all_labels)}); a probing task needs >= 2")
    unseen = all_labels - set(columns["train"][1])
    if unseen:
        raise ValueError(f"{path}: labels {sorted(unseen)} occur in va/te but never in tr")
    known = PROBING_LABELS.get(task)
    label_names = list(known) if known is not None and set(known) == all_labels else sorted(all_labels)
    label_ids = {name: index for index, name in enumerate(label_names)}

    def make_split(split: str, cap: int | None) -> ProbingSplit:
        sentences, labels = columns[split]
        sentences, labels = sentences[:cap], labels[:cap]
        return ProbingSplit(sentences, np.array([label_ids[x] for x in labels], dtype=np.int64))

    digest = hashlib.sha256(raw)
    digest.update(cap_text.encode())
    return ProbingData(
        task=task,
        path=path,
        label_names=label_names,
        train=make_split("train", max_train),
        dev=make_split("dev", max_eval),
        test=make_split("test", max_eval),
        sha256=digest.hexdigest(),
    )


def resolve_probing_file(task: str | Path, data_dir: str | Path | None = None, *, download: bool = True) -> Path:
    """Find the file of a probing task.

    Looks at ``task`` itself (if it is a file), ``<data_dir>/senteval/<task>.txt``, ``<data_dir>/<task>.txt`` and
    the download cache. If none exists, ``task`` is one of :data:`PROBING_TASKS`, ``download`` is true and we are
    not offline (``PROBEFT_OFFLINE``/``HF_HUB_OFFLINE``), the file is downloaded from the SentEval repository
    into the cache.

    Args:
        task: task name or path to a probing file.
        data_dir: data directory (default: ``$PROBEFT_DATA_DIR``; neither is needed if ``task`` is a file).
        download: allow downloading.

    Raises:
        FileNotFoundError: listing the places looked at (and the download error, if any).
    """
    as_path = Path(task).expanduser()
    if as_path.is_file():
        return as_path
    name = str(task)
    candidates: list[Path] = []
    if data_dir is not None or os.environ.get(DATA_DIR_ENV):
        root = data_dir_from(data_dir)
        candidates += [root / "senteval" / f"{name}.txt", root / f"{name}.txt"]
    cached = _data_cache_dir() / "senteval" / f"{name}.txt"
    candidates.append(cached)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    if name not in PROBING_TASKS:
        raise FileNotFoundError(f"probing task {name!r} not found (known tasks: {PROBING_TASKS}); looked at {looked}")
    if not download or _offline():
        raise FileNotFoundError(f"probing file for {name!r} not found (downloads disabled); looked at {looked}")
    url = _SENTEVAL_URL.format(task=name)
    try:
        return _download(url, cached)
    except OSError as error:
        raise FileNotFoundError(
            f"probing file for {name!r} not found at {looked}, and downloading {url} failed: {error}"
        ) from error


# ----------------------------------------------------------------------------------------------------------
# GLUE
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassificationSplit:
    """Texts (and second texts for pair tasks) with int64 labels of shape (N,)."""

    texts_a: list[str]
    texts_b: list[str] | None
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts_a)


@dataclass(frozen=True)
class ClassificationData:
    """A GLUE task: ``label_names[i]`` is the name of class id ``i``."""

    task: str
    label_names: list[str]
    train: ClassificationSplit
    dev: ClassificationSplit


def normalize_glue_task(task: str) -> str:
    """``"SST-2"`` / ``"sst_2"`` / ``"CoLA"`` -> ``"sst2"`` / ``"cola"``; ValueError for other tasks."""
    key = str(task).strip().lower().replace("-", "").replace("_", "")
    if key not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task {task!r}; expected one of {GLUE_TASKS} (case-insensitive, 'sst-2' ok)")
    return key


def _cap_indices(n: int, cap: int | None) -> np.ndarray:
    """Indices of a capped subset: all if ``cap`` is None or >= n, else a seeded random subset in file order.

    GLUE files are ordered (CoLA by source, CoLA dev in-domain first), so taking the first lines would be biased.
    """
    if cap is None or cap >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size=cap, replace=False))


def _apply_cap(split: ClassificationSplit, cap: int | None) -> ClassificationSplit:
    keep = _cap_indices(len(split), cap)
    if len(keep) == len(split):
        return split
    texts_b = None if split.texts_b is None else [split.texts_b[i] for i in keep]
    return ClassificationSplit([split.texts_a[i] for i in keep], texts_b, split.labels[keep])


def _tsv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of the non-blank lines of a TSV file. No quote handling: GLUE text contains quotes."""
    text = path.read_text(encoding="utf-8-sig")
    return [(n, line.rstrip("\r").split("\t")) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]


def _header_columns(path: Path, rows: list[tuple[int, list[str]]], required: tuple[str, ...]) -> dict[str, int]:
    if not rows:
        raise ValueError(f"{path}: file is empty")
    header = [h.strip() for h in rows[0][1]]
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path}:{rows[0][0]}: header {header} is missing columns {missing}")
    return {c: header.index(c) for c in required}


def _parse_label(path: Path, number: int, value: str, names: dict[str, int]) -> int:
    value = value.strip()
    if value not in names:
        raise ValueError(f"{path}:{number}: label {value!r} is not one of {sorted(names)}")
    return names[value]


def _read_glue_tsv(task: str, path: Path) -> ClassificationSplit:
    """Parse one GLUE TSV file (``task`` normalised).

    CoLA: no header, 4 columns (source, label, original mark, sentence). SST-2: header ``sentence label``.
    RTE: header ``index sentence1 sentence2 label`` with entailment / not_entailment labels.
    """
    rows = _tsv_rows(path)
    if task == "cola":
        columns, body, width = {"label": 1, "sentence1": 3}, rows, 4
        label_ids = {"0": 0, "1": 1}
    else:
        required = ("sentence", "label") if task == "sst2" else ("sentence1", "sentence2", "label")
        header = _header_columns(path, rows, required)
        columns = {"sentence1" if k == "sentence" else k: v for k, v in header.items()}
        body, width = rows[1:], len(rows[0][1])
        label_ids = {"0": 0, "1": 1} if task == "sst2" else {n: i for i, n in enumerate(GLUE_LABEL_NAMES["rte"])}
    texts_a: list[str] = []
    texts_b: list[str] = []
    labels: list[int] = []
    for number, fields in body:
        if len(fields) != width:
            raise ValueError(f"{path}:{number}: expected {width} tab-separated columns, got {len(fields)}")
        labels.append(_parse_label(path, number, fields[columns["label"]], label_ids))
        for name, texts in (("sentence1", texts_a), ("sentence2", texts_b)):
            if name in columns:
                if not fields[columns[name]].strip():
                    raise ValueError(f"{path}:{number}: empty {name if task == 'rte' else 'sentence'}")
                texts.append(fields[columns[name]])
    if not texts_a:
        raise ValueError(f"{path}: no examples")
    return ClassificationSplit(texts_a, texts_b if task == "rte" else None, np.array(labels, dtype=np.int64))


def _glue_files(task: str, root: Path) -> tuple[Path, Path]:
    """(train, dev) TSV paths under ``root/glue/<Dir>/`` or ``root/<Dir>/``."""
    looked: list[str] = []
    for base in (root / "glue" / _GLUE_DIRS[task], root / _GLUE_DIRS[task]):
        train, dev = base / "train.tsv", base / "dev.tsv"
        if train.is_file() and dev.is_file():
            return train, dev
        looked += [str(train), str(dev)]
    raise FileNotFoundError(f"GLUE {task} files not found; looked for {', '.join(looked)}")


def _read_glue_hub(task: str) -> tuple[ClassificationSplit, ClassificationSplit]:
    """Train and validation splits from the ``datasets`` hub copy of GLUE (needs internet or an HF cache)."""
    import datasets

    loaded = datasets.load_dataset("nyu-mll/glue", task)

    def convert(split) -> ClassificationSplit:
        if task == "rte":
            texts_a, texts_b = list(split["sentence1"]), list(split["sentence2"])
        else:
            texts_a, texts_b = list(split["sentence"]), None
        return ClassificationSplit(texts_a, texts_b, np.asarray(split["label"], dtype=np.int64))

    return convert(loaded["train"]), convert(loaded["validation"])


def read_glue(
    task: str, data_dir: str | Path | None = None, *, max_train: int | None = None, max_eval: int | None = None
) -> ClassificationData:
    """Read a GLUE task (CoLA, SST-2 or RTE) from TSV files or, without any data dir, from the hub.

    Files: ``<data_dir>/glue/{CoLA,SST-2,RTE}/{train,dev}.tsv`` (or ``<data_dir>/{CoLA,...}/``). If ``data_dir``
    is None and ``$PROBEFT_DATA_DIR`` is unset, the task is loaded with ``datasets.load_dataset("nyu-mll/glue",
    task)`` (same label ids). Caps keep a seeded random subset of that many examples, in file order.

    Args:
        task: ``"cola"``, ``"sst2"`` (``"sst-2"`` ok) or ``"rte"``, any case.
        data_dir: data directory.
        max_train: cap on training examples.
        max_eval: cap on dev examples.

    Returns:
        The task; ``texts_b`` is set for RTE only. Label names: CoLA unacceptable/acceptable, SST-2
        negative/positive, RTE entailment/not_entailment.

    Raises:
        ValueError: unknown task, bad caps, or malformed lines (naming file and line).
        FileNotFoundError: files not found (listing where it looked).
    """
    key = normalize_glue_task(task)
    _cap_text(max_train, max_eval)
    if data_dir is None and not os.environ.get(DATA_DIR_ENV):
        train, dev = _read_glue_hub(key)
    else:
        train_path, dev_path = _glue_files(key, data_dir_from(data_dir))
        train, dev = _read_glue_tsv(key, train_path), _read_glue_tsv(key, dev_path)
    if len(set(train.labels.tolist())) < 2:
        raise ValueError(f"GLUE {key}: the training split has fewer than two labels")
    return ClassificationData(
        task=key,
        label_names=list(GLUE_LABEL_NAMES[key]),
        train=_apply_cap(train, max_train),
        dev=_apply_cap(dev, max_eval),
    )


# ----------------------------------------------------------------------------------------------------------
# SQuAD
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SquadExample:
    """One SQuAD question; ``answers[i]`` starts at character ``answer_starts[i]`` of ``context``."""

    id: str
    title: str
    context: str
    question: str
    answers: list[str]
    answer_starts: list[int]


def read_squad(path: str | Path) -> list[SquadExample]:
    """Read a SQuAD v1.1 file in the official JSON layout (``{"data": [{"title", "paragraphs": [...]}]}``).

    Every answer must be a span of its context at ``answer_start``.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: naming the file (and question id) for invalid JSON, missing fields, no answers, or an answer
            that is not found at its ``answer_start``; or if the file holds no questions.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SQuAD file {path} does not exist")
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise ValueError(f"{path}: expected the official SQuAD layout, an object with a 'data' list")
    examples: list[SquadExample] = []
    for article_index, article in enumerate(document["data"]):
        where = f"{path}: article {article_index}"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise ValueError(f"{where}: missing 'paragraphs' list")
        title = str(article.get("title", ""))
        for paragraph_index, paragraph in enumerate(article["paragraphs"]):
            if not isinstance(paragraph, dict) or "context" not in paragraph or "qas" not in paragraph:
                raise ValueError(f"{where} ({title!r}) paragraph {paragraph_index}: needs 'context' and 'qas'")
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                examples.append(_squad_example(path, title, context, qa))
    if not examples:
        raise ValueError(f"{path}: no questions")
    return examples


def _squad_example(path: Path, title: str, context: str, qa: dict) -> SquadExample:
    qid = qa.get("id", "<no id>") if isinstance(qa, dict) else "<not an object>"
    for field in ("id", "question", "answers"):
        if not isinstance(qa, dict) or field not in qa:
            raise ValueError(f"{path}: question {qid}: missing field {field!r}")
    if not qa["answers"]:
        raise ValueError(f"{path}: question {qid}: no answers (SQuAD v1.1 questions all have answers)")
    answers: list[str] = []
    starts: list[int] = []
    for answer in qa["answers"]:
        try:
            text, start = str(answer["text"]), int(answer["answer_start"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: question {qid}: answer needs 'text' and an integer 'answer_start'") from error
        if context[start : start + len(text)] != text:
            raise ValueError(
                f"{path}: question {qid}: answer {text!r} is not at answer_start={start} of its context"
            )
        answers.append(text)
        starts.append(start)
    return SquadExample(str(qa["id"]), title, context, str(qa["question"]), answers, starts)


def resolve_squad_files(data_dir: str | Path | None = None) -> tuple[Path, Path]:
    """(train, dev) SQuAD files: ``squad/train-v1.1.json`` (else ``squad/train-subset.json``) and
    ``squad/dev-v1.1.json`` under the data directory.

    Raises:
        FileNotFoundError: listing where it looked.
    """
    root = data_dir_from(data_dir) / "squad"
    train_candidates = [root / "train-v1.1.json", root / "train-subset.json"]
    train = next((p for p in train_candidates if p.is_file()), None)
    dev = root / "dev-v1.1.json"
    if train is None or not dev.is_file():
        looked = [str(p) for p in train_candidates] + [str(dev)]
        raise FileNotFoundError(f"SQuAD files not found; looked for {', '.join(looked)}")
    return train, dev


def _use_hub(data_dir: str | Path | None) -> bool:
    """No data dir given and none in the environment: read from the Hugging Face hub."""
    return (data_dir is None or str(data_dir) == "") and not os.environ.get(DATA_DIR_ENV)


def read_squad_splits(data_dir: str | Path | None = None) -> tuple[list[SquadExample], list[SquadExample]]:
    """SQuAD v1.1 (train, dev) examples from the data dir's JSON files or, without a data dir, the hub."""
    if not _use_hub(data_dir):
        train, dev = resolve_squad_files(data_dir)
        return read_squad(train), read_squad(dev)
    import datasets

    loaded = datasets.load_dataset("rajpurkar/squad")

    def convert(split) -> list[SquadExample]:
        return [SquadExample(row["id"], row["title"], row["context"], row["question"], list(row["answers"]["text"]),
                             [int(s) for s in row["answers"]["answer_start"]]) for row in split]

    return convert(loaded["train"]), convert(loaded["validation"])


# ----------------------------------------------------------------------------------------------------------
# WikiText
# ----------------------------------------------------------------------------------------------------------


def read_wikitext_test(data_dir: str | Path | None = None) -> tuple[str, str]:
    """WikiText-2 raw test text and where it came from: ``wikitext-2/wiki.test.raw`` or the hub."""
    if not _use_hub(data_dir):
        path = resolve_wikitext_file(data_dir)
        return read_wikitext(path), str(path)
    import datasets

    rows = datasets.load_dataset("Salesforce/wikitext", "wikitext-2-raw-v1", split="test")["text"]
    return "".join(rows), "hub:Salesforce/wikitext/wikitext-2-raw-v1/test"


def resolve_wikitext_file(data_dir: str | Path | None = None, split: str = "test") -> Path:
    """``<data_dir>/wikitext-2/wiki.<split>.raw``; FileNotFoundError naming the path if absent."""
    path = data_dir_from(data_dir) / "wikitext-2" / f"wiki.{split}.raw"
    if not path.is_file():
        raise FileNotFoundError(f"WikiText file not found: {path}")
    return path


def read_wikitext(path: str | Path) -> str:
    """The raw text of a WikiText file (``wiki.*.raw``), unchanged.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it holds no text.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"WikiText file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ValueError(f"{path}: no text")
    return text
