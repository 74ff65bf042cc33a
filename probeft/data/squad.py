"""SQuAD v1.1 in the official JSON layout, or from the ``datasets`` hub."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from probeft.core.data_reads import read_data_text
from probeft.data.hub_datasets import HUB_DATASETS, load_hub_dataset
from probeft.data.locations import data_location, required_data_dir

__all__ = ["SquadExample", "read_squad", "read_squad_splits", "resolve_squad_files"]


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
        document = json.loads(read_data_text(path, encoding="utf-8-sig"))
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
        text = answer.get("text") if isinstance(answer, dict) else None
        start = answer.get("answer_start") if isinstance(answer, dict) else None
        # Exact types: int() would turn 0.9 into 0 and true into 1, and a negative start slices from the end.
        if not isinstance(text, str) or not text or type(start) is not int:
            raise ValueError(f"{path}: question {qid}: answer needs a non-empty string 'text' and an integer "
                             f"'answer_start', got text={text!r}, answer_start={start!r}")
        if not 0 <= start <= len(context) - len(text):
            raise ValueError(f"{path}: question {qid}: answer_start={start} is outside its context "
                             f"(0 to {len(context) - len(text)} for an answer of {len(text)} characters)")
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

    Args:
        data_dir: data folder, or None for ``$PROBEFT_DATA_DIR``.

    Raises:
        ValueError: no data folder (None with the variable unset, or ``"hub"``).
        FileNotFoundError: listing where it looked, or naming a data folder that does not exist.
    """
    root = required_data_dir(data_dir, "SQuAD files") / "squad"
    train_candidates = [root / "train-v1.1.json", root / "train-subset.json"]
    train = next((p for p in train_candidates if p.is_file()), None)
    dev = root / "dev-v1.1.json"
    if train is None or not dev.is_file():
        looked = [str(p) for p in train_candidates] + [str(dev)]
        raise FileNotFoundError(f"SQuAD files not found; looked for {', '.join(looked)}")
    return train, dev


def read_squad_splits(data_dir: str | Path | None = None) -> tuple[list[SquadExample], list[SquadExample]]:
    """SQuAD v1.1 (train, dev) examples from the data folder's JSON files or from the hub.

    Args:
        data_dir: data folder, ``"hub"`` or None (see :func:`probeft.data.locations.data_location`).
    """
    root = data_location(data_dir)
    if root is not None:
        train, dev = resolve_squad_files(root)
        return read_squad(train), read_squad(dev)
    repo_id, config = HUB_DATASETS["squad"]
    loaded = load_hub_dataset(repo_id, config, what=f"SQuAD v1.1 ({repo_id})")

    def convert(split) -> list[SquadExample]:
        return [SquadExample(row["id"], row["title"], row["context"], row["question"], list(row["answers"]["text"]),
                             [int(s) for s in row["answers"]["answer_start"]]) for row in split]

    return convert(loaded["train"]), convert(loaded["validation"])
