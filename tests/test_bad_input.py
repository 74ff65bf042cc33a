"""A sweep over malformed inputs: each gives one clear error naming the file and line (``path:line:``,
as compilers do) or the key, never a deep traceback, a hang or a half-written result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest
import yaml

from probeft import data, grid, results
from probeft.grid import cli


@pytest.fixture
def broken_data(demo_data_dir, tmp_path) -> Path:
    """A private copy of the demo data dir, for one case to break."""
    return Path(shutil.copytree(demo_data_dir, tmp_path / "data"))


def replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[number - 1] = text
    path.write_text("".join(lines), encoding="utf-8")


def replace_line_bytes(path: Path, number: int, raw: bytes) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    lines[number - 1] = raw
    path.write_bytes(b"".join(lines))


def senteval(root: Path) -> None:
    data.read_senteval(data.resolve_probing_file("bigram_shift", root, download=False))


def cola(root: Path) -> None:
    data.read_glue("cola", root)


def rte(root: Path) -> None:
    data.read_glue("rte", root)


def squad(root: Path) -> None:
    data.read_squad_splits(root)


# (case, file to break, how, reader, what the message must contain)
CASES: list[tuple[str, str, Callable[[Path], None], Callable[[Path], None], list[str]]] = [
    ("senteval: two fields", "senteval/bigram_shift.txt",
     lambda p: replace_line(p, 3, "tr\tI\n"), senteval, ["bigram_shift.txt:3:"]),
    ("senteval: unknown split tag", "senteval/bigram_shift.txt",
     lambda p: replace_line(p, 5, "xx\tI\tthe dog barked .\n"), senteval, ["bigram_shift.txt:5:", "xx"]),
    ("senteval: empty sentence", "senteval/bigram_shift.txt",
     lambda p: replace_line(p, 7, "tr\tI\t \n"), senteval, ["bigram_shift.txt:7:"]),
    ("glue: label not 0/1", "glue/CoLA/train.tsv",
     lambda p: replace_line(p, 4, "src\t7\t*\tThe dog barked .\n"), cola, ["train.tsv:4:"]),
    ("glue: short row", "glue/CoLA/dev.tsv",
     lambda p: replace_line(p, 2, "src\t1\n"), cola, ["dev.tsv:2:"]),
    ("glue: header without a column", "glue/RTE/train.tsv",
     lambda p: replace_line(p, 1, "index\tsentence1\tlabel\n"), rte, ["train.tsv", "sentence2"]),
    ("squad: not JSON", "squad/dev-v1.1.json",
     lambda p: p.write_text('{"data": [\n  {"title": "x",\n  oops\n', encoding="utf-8"), squad, ["dev-v1.1.json", "line 3"]),
    ("squad: question without answers", "squad/dev-v1.1.json",
     lambda p: p.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [
         {"context": "The cat sat .", "qas": [{"id": "q1", "question": "Who sat ?"}]}]}]}), encoding="utf-8"),
     squad, ["dev-v1.1.json", "q1", "answers"]),
    ("senteval: a third label in a binary task", "senteval/bigram_shift.txt",
     lambda p: replace_line(p, 3, "tr\tX\tthe dog barked .\n"), senteval, ["bigram_shift.txt:3:", "'X'", "'I'"]),
    *[(f"squad: answer_start {start!r}", "squad/dev-v1.1.json",
       lambda p, start=start: p.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [
           {"context": "The cat sat on the mat .", "qas": [{"id": "q7", "question": "Where ?",
                                                          "answers": [{"text": "mat .", "answer_start": start}]}]}]}]}),
                                 encoding="utf-8"),
       squad, ["dev-v1.1.json", "q7", "answer_start"]) for start in (-6, 0.9, True, "19")],
    ("senteval: not UTF-8", "senteval/bigram_shift.txt",
     lambda p: replace_line_bytes(p, 4, b"tr\tO\tthe caf\xe9 closed .\n"), senteval, ["bigram_shift.txt:4:", "utf-8"]),
    ("glue: not UTF-8", "glue/CoLA/train.tsv",
     lambda p: replace_line_bytes(p, 2, b"src\t1\t\tna\xefve .\n"), cola, ["train.tsv:2:", "utf-8"]),
    ("squad: not UTF-8", "squad/dev-v1.1.json",
     lambda p: p.write_bytes(b'{"version": "1.1",\n "data": [\xff]}'), squad, ["dev-v1.1.json:2:", "utf-8"]),
]


@pytest.mark.parametrize(("case", "relative", "breaks", "read", "named"), CASES, ids=[c[0] for c in CASES])
def test_malformed_data_is_named_by_file_and_line(broken_data, case, relative, breaks, read, named):
    breaks(broken_data / relative)
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        read(broken_data)
    message = str(error.value)
    for part in named:
        assert part in message, f"{case}: {message!r} does not name {part!r}"
    assert len(message.splitlines()) <= 3, f"{case}: not one clear error: {message!r}"


BAD_CONFIGS = [
    ("yaml syntax", "name: x\nmodels: [tiny-bert\nprobing: {}\n", ["grid.yaml", "line"]),
    ("unknown key", yaml.safe_dump({"name": "x", "models": ["tiny-bert"], "probng": {}}), ["grid.yaml", "probng"]),
    ("bad value", yaml.safe_dump({"name": "x", "models": ["tiny-bert"], "probing": {"max_length": 2}}),
     ["grid.yaml", "probing.max_length"]),
    ("not a mapping", "- just\n- a list\n", ["grid.yaml"]),
    ("a boolean for an integer", yaml.safe_dump({"name": "x", "models": ["tiny-bert"], "finetune": {"epochs": True}}),
     ["grid.yaml", "finetune.epochs"]),
    ("a float seed", yaml.safe_dump({"name": "x", "models": ["tiny-bert"], "finetune": {"seeds": [1.0]}}),
     ["grid.yaml", "finetune.seeds.0"]),
    ("a boolean learning rate", yaml.safe_dump({"name": "x", "models": ["tiny-bert"],
                                                "finetune": {"learning_rate": True}}),
     ["grid.yaml", "finetune.learning_rate"]),
    ("a duplicate key", "name: x\nmodels: [tiny-bert]\nprobing:\n  max_train: 10\n  max_train: 20\n",
     ["grid.yaml", "'max_train' given twice", "line 5"]),
    ("empty finetune.seeds", yaml.safe_dump({"name": "x", "models": ["tiny-bert"], "finetune": {"seeds": []}}),
     ["grid.yaml", "finetune.seeds"]),
    ("empty perplexity.seeds", yaml.safe_dump({"name": "x", "models": ["tiny-bert"], "perplexity": {"seeds": []}}),
     ["grid.yaml", "perplexity.seeds"]),
    ("empty attention.heads", yaml.safe_dump({"name": "x", "models": ["tiny-bert"], "attention": {"heads": []}}),
     ["grid.yaml", "attention.heads"]),
    ("a model name that leaves cells/", yaml.safe_dump({"name": "x", "models": [{"name": "../x", "spec": "tiny-bert"}]}),
     ["grid.yaml", "models.0.name", "'../x'"]),
]


@pytest.mark.parametrize(("case", "text", "named"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_malformed_configs_exit_2_with_one_line_naming_file_and_key(tmp_path, capsys, case, text, named):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    assert cli.main(["grid", str(path), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(part in err for part in named), err
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.slow
def test_a_cell_on_broken_data_fails_naming_the_line_and_writes_no_results(broken_data, tmp_path, capsys):
    replace_line(broken_data / "senteval" / "bigram_shift.txt", 3, "tr\tI\n")
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({
        "name": "broken", "output_dir": str(tmp_path / "run"), "data_dir": str(broken_data), "device": "cpu",
        "models": ["tiny-bert-L2"], "probing": {"tasks": ["bigram_shift"], "max_train": 40, "max_eval": 20}}))
    assert cli.main(["grid", str(path)]) == 1
    out = capsys.readouterr().out
    # the failure listing's line names the notebook's own error: file, line, what is wrong
    (listed,) = [line for line in out.splitlines() if line.startswith("  probing__")]
    assert "ValueError: " in listed and "bigram_shift.txt:3: expected 3 tab-separated columns" in listed, out
    cell = tmp_path / "run" / "cells" / "probing__model-tiny-bert-L2__ft-none__seed-0"
    assert not results.cell_complete(cell) and not (cell / results.RESULTS_FILE).exists()
    assert not (tmp_path / "run" / results.RESULTS_FILE).exists()
    assert not (tmp_path / "run" / grid.LOCK_FILE).exists()
