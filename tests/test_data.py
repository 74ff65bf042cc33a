"""Tests of probeft.data: SentEval, GLUE, SQuAD and WikiText readers on small hand-made files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from probeft import data
from probeft.core import pins
from probeft.data import glue, locations, senteval, wikitext

SENTEVAL_LINES = [
    "tr\tO\tThe cat sat on the mat .",
    "tr\tI\tThe sat cat on the mat .",
    "tr\tO\tShe went home .",
    "tr\tI\tWent she home .",
    "va\tI\tA dog barked loudly .",
    "va\tO\tThe dog barked .",
    "te\tO\tHe ran fast .",
    "te\tI\tRan he fast .",
]


def _write(path: Path, lines: list[str] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(lines if isinstance(lines, str) else "\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PROBEFT_DATA_DIR", raising=False)
    monkeypatch.setenv("PROBEFT_CACHE", str(tmp_path / "cache"))


# ----------------------------------------------------------------------------------------------------------
# SentEval
# ----------------------------------------------------------------------------------------------------------


def test_read_senteval_splits_labels_and_hash(tmp_path: Path) -> None:
    path = _write(tmp_path / "bigram_shift.txt", SENTEVAL_LINES)
    probing = data.read_senteval(path)
    assert probing.task == "bigram_shift"
    assert probing.path == path
    assert probing.label_names == ["O", "I"]  # SentEval's unchanged class first
    assert probing.train.sentences == [line.split("\t")[2] for line in SENTEVAL_LINES[:4]]
    assert probing.train.labels.dtype == np.int64
    assert probing.train.labels.tolist() == [0, 1, 0, 1]
    assert probing.dev.labels.tolist() == [1, 0]
    assert probing.test.sentences == ["He ran fast .", "Ran he fast ."]
    assert probing.split("test") is probing.test
    caps_text = b"max_train=None;max_eval=None"
    assert probing.sha256 == hashlib.sha256(path.read_bytes() + caps_text).hexdigest()


def test_read_senteval_caps_take_the_first_lines_and_change_the_hash(tmp_path: Path) -> None:
    path = _write(tmp_path / "odd_man_out.txt", [line.replace("\tI\t", "\tC\t") for line in SENTEVAL_LINES])
    full = data.read_senteval(path)
    capped = data.read_senteval(path, max_train=3, max_eval=1)
    assert full.label_names == ["O", "C"]
    assert capped.train.sentences == full.train.sentences[:3]
    assert capped.dev.sentences == full.dev.sentences[:1]
    assert capped.test.labels.tolist() == full.test.labels[:1].tolist()
    assert capped.sha256 != full.sha256
    assert data.read_senteval(path, max_train=3, max_eval=1).sha256 == capped.sha256
    with pytest.raises(ValueError, match="max_train"):
        data.read_senteval(path, max_train=0)


def test_read_senteval_tolerates_extra_columns_blank_lines_and_unknown_tasks(tmp_path: Path) -> None:
    lines = [f"{p}\t{label}\t7\t{s}" for p, label, s in (line.split("\t") for line in SENTEVAL_LINES)]
    path = _write(tmp_path / "my_task.txt", lines[:3] + [""] + lines[3:])
    probing = data.read_senteval(path)
    assert probing.task == "my_task"
    assert probing.label_names == ["I", "O"]  # unknown task: sorted labels
    assert probing.train.sentences[0] == "The cat sat on the mat ."
    assert len(probing.train) == 4


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("tr\tO", r":3: expected 3 tab-separated columns"),
        ("xx\tO\tA sentence .", r":3: unknown partition 'xx'"),
        ("tr\tO\t   ", r":3: empty sentence"),
        ("tr\t\tA sentence .", r":3: empty label"),
    ],
)
def test_read_senteval_errors_name_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = _write(tmp_path / "bigram_shift.txt", SENTEVAL_LINES[:2] + [bad_line] + SENTEVAL_LINES[2:])
    with pytest.raises(ValueError, match=message) as error:
        data.read_senteval(path)
    assert str(path) in str(error.value)


def test_read_senteval_rejects_one_label_missing_splits_and_missing_files(tmp_path: Path) -> None:
    one_label = _write(tmp_path / "a.txt", [line.replace("\tI\t", "\tO\t") for line in SENTEVAL_LINES])
    with pytest.raises(ValueError, match="fewer than two labels"):
        data.read_senteval(one_label)
    no_test = _write(tmp_path / "b.txt", SENTEVAL_LINES[:6])
    with pytest.raises(ValueError, match="partition 'te'"):
        data.read_senteval(no_test)
    dev_only_label = _write(tmp_path / "c.txt", SENTEVAL_LINES + ["va\tX\tA new label ."])
    with pytest.raises(ValueError, match=r"\['X'\] occur in va/te but never in tr"):
        data.read_senteval(dev_only_label)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        data.read_senteval(tmp_path / "missing.txt")


def test_resolve_probing_file_looks_in_the_data_dir_then_fails_with_the_places(tmp_path: Path, monkeypatch) -> None:
    nested = _write(tmp_path / "data" / "senteval" / "bigram_shift.txt", SENTEVAL_LINES)
    flat = _write(tmp_path / "flat" / "odd_man_out.txt", SENTEVAL_LINES)
    assert data.resolve_probing_file("bigram_shift", tmp_path / "data") == nested
    assert data.resolve_probing_file("odd_man_out", tmp_path / "flat") == flat
    assert data.resolve_probing_file(str(flat), None) == flat  # a path is taken as is
    monkeypatch.setenv("PROBEFT_DATA_DIR", str(tmp_path / "data"))
    assert data.resolve_probing_file("bigram_shift", None) == nested
    with pytest.raises(FileNotFoundError) as error:
        data.resolve_probing_file("coordination_inversion", tmp_path / "data", download=False)
    message = str(error.value)
    assert str(tmp_path / "data" / "senteval" / "coordination_inversion.txt") in message
    assert str(tmp_path / "data" / "coordination_inversion.txt") in message
    with pytest.raises(FileNotFoundError, match="known tasks"):
        data.resolve_probing_file("no_such_task", tmp_path / "data")


def test_offline_environment_disables_downloads(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PROBEFT_OFFLINE", "1")
    monkeypatch.setattr(senteval, "_download", lambda *a, **k: pytest.fail("must not download when offline"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="downloads disabled"):
        data.resolve_probing_file("bigram_shift", tmp_path / "empty")


class FakeGitHub:
    """What GitHub serves for SentEval at the pinned commit: the raw files (raw.githubusercontent.com) and the
    commit's tree listing (api.github.com ``git/trees/<commit>?recursive=1``, in the documented shape: ``sha``,
    ``url``, ``tree`` entries with ``path``, ``mode``, ``type``, ``sha``, ``size``, ``url``, and ``truncated``)."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)  # task -> bytes served by the raw host
        self.listed = {task: senteval.git_blob_sha1(payload) for task, payload in files.items()}  # by the API
        self.fetched: list[str] = []

    def __call__(self, url: str, *, headers=None, timeout: float = 30.0) -> bytes:
        self.fetched.append(url)
        if url == senteval.SENTEVAL_TREE_URL:
            assert headers and headers.get("Accept") == "application/vnd.github+json"
            tree = [{"path": "data/probing/README.md", "mode": "100644", "type": "blob", "sha": "0" * 40, "size": 9,
                     "url": "https://api.github.com/repos/facebookresearch/SentEval/git/blobs/" + "0" * 40},
                    {"path": "data/probing", "mode": "040000", "type": "tree", "sha": "1" * 40,
                     "url": "https://api.github.com/repos/facebookresearch/SentEval/git/trees/" + "1" * 40}]
            tree += [{"path": f"data/probing/{task}.txt", "mode": "100644", "type": "blob", "sha": sha,
                      "size": len(self.files[task]),
                      "url": f"https://api.github.com/repos/facebookresearch/SentEval/git/blobs/{sha}"}
                     for task, sha in self.listed.items()]
            return json.dumps({"sha": senteval.SENTEVAL_COMMIT, "url": url, "tree": tree, "truncated": False}).encode()
        for task, payload in self.files.items():
            if url == senteval._SENTEVAL_URL.format(task=task):
                return payload
        raise OSError(f"404 {url}")


@pytest.fixture
def github(monkeypatch):
    """A fake GitHub serving the three SentEval files, with downloads allowed."""
    payload = ("\n".join(SENTEVAL_LINES) + "\n").encode()
    fake = FakeGitHub({task: payload for task in ("bigram_shift", "coordination_inversion", "odd_man_out")})
    monkeypatch.setattr(senteval, "_fetch", fake)
    monkeypatch.setattr(senteval, "_BLOB_SHA1S", {})
    for variable in ("PROBEFT_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # set for every test (conftest, CI)
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("PROBEFT_HUB_PINS", raising=False)
    return fake


def test_probing_files_are_downloaded_once_into_the_cache(tmp_path: Path, github) -> None:
    path = data.resolve_probing_file("bigram_shift", "hub")
    assert path == tmp_path / "cache" / "data" / "senteval" / "bigram_shift.txt"  # files.cache_root("data")
    assert data.resolve_probing_file("bigram_shift", None) == path  # found in the cache, not fetched again
    assert github.fetched == [senteval._SENTEVAL_URL.format(task="bigram_shift"), senteval.SENTEVAL_TREE_URL]
    assert path.read_bytes() == github.files["bigram_shift"]
    assert pins.sources_read() == {"senteval:bigram_shift": github.listed["bigram_shift"]}


def test_a_download_whose_blob_sha1_differs_from_the_commit_is_refused_and_not_kept(tmp_path: Path, github) -> None:
    github.files["odd_man_out"] = github.files["odd_man_out"].replace(b"cat", b"bat")  # the raw host served other bytes
    with pytest.raises(senteval.SentEvalBytesError, match="git blob sha1 .* but data/probing/odd_man_out.txt at"):
        data.resolve_probing_file("odd_man_out", "hub")
    assert not (tmp_path / "cache" / "data" / "senteval" / "odd_man_out.txt").exists()


def test_a_run_pinned_to_a_blob_sha1_checks_downloads_and_cached_files(tmp_path: Path, github, monkeypatch) -> None:
    pins_file = pins.write_pins(tmp_path / "hub-pins.json", {"senteval": {"bigram_shift": github.listed["bigram_shift"],
                                                                          "odd_man_out": "e" * 40}})
    monkeypatch.setenv("PROBEFT_HUB_PINS", str(pins_file))
    data.resolve_probing_file("bigram_shift", "hub")
    assert senteval.SENTEVAL_TREE_URL not in github.fetched  # the pin is the check: no API call
    with pytest.raises(senteval.SentEvalBytesError, match="e{40}"):
        data.resolve_probing_file("odd_man_out", "hub")  # GitHub's bytes are not the ones the run is pinned to
    cached = _write(tmp_path / "cache" / "data" / "senteval" / "odd_man_out.txt", SENTEVAL_LINES)
    with pytest.raises(senteval.SentEvalBytesError, match=f"{cached}: git blob sha1 .* pinned to e{{40}}"):
        data.resolve_probing_file("odd_man_out", "hub")  # an earlier download with other bytes is refused too


def test_file_readers_need_a_data_folder_and_name_where_it_came_from(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="SQuAD files need a data folder.*PROBEFT_DATA_DIR"):
        data.resolve_squad_files(None)
    with pytest.raises(ValueError, match="WikiText files need a data folder, got data_dir='hub'"):
        data.resolve_wikitext_file("hub")
    with pytest.raises(FileNotFoundError, match=r"nowhere \(from the data_dir argument\)"):
        data.read_glue("cola", tmp_path / "nowhere")
    monkeypatch.setenv("PROBEFT_DATA_DIR", str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match=r"gone \(from the \$PROBEFT_DATA_DIR\)"):
        data.resolve_probing_file("bigram_shift", None)


def test_seeded_subset_is_the_sorted_seeded_sample() -> None:
    np.testing.assert_array_equal(data.seeded_subset(5, None), np.arange(5))
    np.testing.assert_array_equal(data.seeded_subset(5, 5), np.arange(5))
    expected = np.sort(np.random.default_rng(0).choice(100, size=10, replace=False))
    np.testing.assert_array_equal(data.seeded_subset(100, 10), expected)
    assert data.seeded_subset(100, 10).tolist() == [1, 3, 7, 17, 25, 29, 47, 58, 77, 81]
    assert data.seeded_subset(100, 10, seed=1).tolist() != data.seeded_subset(100, 10).tolist()


# ----------------------------------------------------------------------------------------------------------
# GLUE
# ----------------------------------------------------------------------------------------------------------

COLA_TRAIN = ["src1\t1\t\tThe \"big\" dog barked.", "src1\t0\t*\tDog the barked.", "src2\t1\t\tShe said 'hi'."]
SST_TRAIN = ["sentence\tlabel", "a charming film \t1", "dull and flat \t0", "it 's \"great\" \t1"]
RTE_TRAIN = [
    "index\tsentence1\tsentence2\tlabel",
    "0\tJohn ate the \"cake\" in the kitchen.\tJohn ate the cake.\tentailment",
    "1\tMary drove the car.\tMary drove the bus.\tnot_entailment",
]


def _glue_dir(root: Path, cola=COLA_TRAIN, sst=SST_TRAIN, rte=RTE_TRAIN) -> Path:
    for directory, lines in (("CoLA", cola), ("SST-2", sst), ("RTE", rte)):
        _write(root / "glue" / directory / "train.tsv", lines)
        _write(root / "glue" / directory / "dev.tsv", lines)
    return root


def test_read_glue_cola_keeps_quotes_and_reads_labels(tmp_path: Path) -> None:
    cola = data.read_glue("CoLA", _glue_dir(tmp_path))
    assert cola.task == "cola"
    assert cola.label_names == ["unacceptable", "acceptable"]
    assert cola.train.texts_a == ['The "big" dog barked.', "Dog the barked.", "She said 'hi'."]
    assert cola.train.texts_b is None
    assert cola.train.labels.dtype == np.int64
    assert cola.train.labels.tolist() == [1, 0, 1]
    assert len(cola.dev) == 3


def test_read_glue_sst2_and_rte(tmp_path: Path) -> None:
    root = _glue_dir(tmp_path)
    for name in ("sst2", "SST-2", "sst_2"):
        sst = data.read_glue(name, root)
        assert sst.task == "sst2"
    assert sst.label_names == ["negative", "positive"]
    assert sst.train.texts_a == ["a charming film ", "dull and flat ", "it 's \"great\" "]
    assert sst.train.labels.tolist() == [1, 0, 1]
    rte = data.read_glue("RTE", root)
    assert rte.label_names == ["entailment", "not_entailment"]
    assert rte.train.texts_a == ['John ate the "cake" in the kitchen.', "Mary drove the car."]
    assert rte.train.texts_b == ["John ate the cake.", "Mary drove the bus."]
    assert rte.train.labels.tolist() == [0, 1]


def test_read_glue_accepts_crlf_and_the_glue_dir_itself(tmp_path: Path) -> None:
    (tmp_path / "SST-2").mkdir()
    for split in ("train", "dev"):
        (tmp_path / "SST-2" / f"{split}.tsv").write_bytes(("\r\n".join(SST_TRAIN) + "\r\n").encode())
    sst = data.read_glue("sst2", tmp_path)
    assert sst.train.labels.tolist() == [1, 0, 1]
    assert sst.train.texts_a[1] == "dull and flat "


def test_read_glue_caps_are_deterministic_subsets_in_file_order(tmp_path: Path) -> None:
    lines = ["sentence\tlabel"] + [f"sentence number {i} \t{i % 2}" for i in range(50)]
    root = _glue_dir(tmp_path, sst=lines)
    capped = data.read_glue("sst2", root, max_train=10, max_eval=5)
    assert len(capped.train) == 10
    assert len(capped.dev) == 5
    numbers = [int(text.split()[2]) for text in capped.train.texts_a]
    assert numbers == sorted(numbers)
    assert capped.train.labels.tolist() == [n % 2 for n in numbers]
    assert data.read_glue("sst2", root, max_train=10).train.texts_a == capped.train.texts_a
    assert len(data.read_glue("sst2", root, max_train=500).train) == 50


@pytest.mark.parametrize(
    ("task", "kwargs", "error", "message"),
    [
        ("mnli", {}, ValueError, "unknown GLUE task 'mnli'"),
        ("cola", {"cola": COLA_TRAIN[:1] + ["src\t1\tonly three"]}, ValueError, r"CoLA/train.tsv:2: expected 4"),
        ("cola", {"cola": ["src\tyes\t\tA sentence."]}, ValueError, r":1: label 'yes'"),
        ("sst2", {"sst": ["text\tlabel", "a film\t1"]}, ValueError, r"missing columns \['sentence'\]"),
        ("rte", {"rte": ["index\tsentence1\tlabel", "0\tA.\tentailment"]}, ValueError,
         r"missing columns \['sentence2'\]"),
        ("rte", {"rte": RTE_TRAIN[:1] + ["0\tA.\tB.\tmaybe"]}, ValueError, r"RTE/train.tsv:2: label 'maybe'"),
        ("rte", {"rte": RTE_TRAIN[:1] + ["0\t\tB.\tentailment"]}, ValueError, r":2: empty sentence1"),
        ("sst2", {"sst": ["sentence\tlabel"]}, ValueError, "no examples"),
        ("sst2", {"sst": ""}, ValueError, "file is empty"),
        ("cola", {"cola": ["s\t1\t\tA.", "s\t1\t\tB."]}, ValueError, "fewer than two labels"),
    ],
)
def test_read_glue_errors(tmp_path: Path, task: str, kwargs: dict, error: type, message: str) -> None:
    root = _glue_dir(tmp_path, **kwargs)
    with pytest.raises(error, match=message):
        data.read_glue(task, root)


def test_read_glue_missing_files_say_where_they_looked(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as error:
        data.read_glue("rte", tmp_path)
    assert str(tmp_path / "glue" / "RTE" / "train.tsv") in str(error.value)


def test_read_glue_without_a_data_dir_uses_the_hub(monkeypatch) -> None:
    calls = []

    def fake_hub(task: str):
        calls.append(task)
        split = data.ClassificationSplit(["good", "bad"], None, np.array([1, 0]))
        return split, split

    monkeypatch.setattr(glue, "_read_glue_hub", fake_hub)
    sst = data.read_glue("SST-2")
    assert calls == ["sst2"]
    assert sst.train.texts_a == ["good", "bad"]
    monkeypatch.setenv("PROBEFT_DATA_DIR", "/nonexistent")  # an explicit "hub" wins over the variable
    assert data.read_glue("rte", "hub").train.labels.tolist() == [1, 0]
    assert calls == ["sst2", "rte"]


# ----------------------------------------------------------------------------------------------------------
# SQuAD and WikiText
# ----------------------------------------------------------------------------------------------------------


def _squad(context: str = "Mary baked the cake in the kitchen.", start: int = 0, text: str = "Mary") -> dict:
    qa = {"answers": [{"answer_start": start, "text": text}], "question": "Who baked the cake?", "id": "q1"}
    return {"data": [{"title": "Cakes", "paragraphs": [{"context": context, "qas": [qa]}]}], "version": "1.1"}


def test_read_squad(tmp_path: Path) -> None:
    document = _squad()
    second = {"answers": [{"answer_start": 27, "text": "kitchen"}, {"answer_start": 23, "text": "the kitchen"}],
              "question": "Where?", "id": "q2"}  # fmt: skip
    document["data"][0]["paragraphs"][0]["qas"].append(second)
    path = _write(tmp_path / "squad.json", json.dumps(document))
    examples = data.read_squad(path)
    assert [e.id for e in examples] == ["q1", "q2"]
    assert examples[0] == data.SquadExample(
        "q1", "Cakes", "Mary baked the cake in the kitchen.", "Who baked the cake?", ["Mary"], [0]
    )
    assert examples[1].answers == ["kitchen", "the kitchen"]
    assert examples[1].answer_starts == [27, 23]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_squad(start=3), r"question q1: answer 'Mary' is not at answer_start=3"),
        ({"version": "1.1"}, "'data' list"),
        ({"data": []}, "no questions"),
        ({"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [{"id": "q9", "question": "?"}]}]}]},
         r"question q9: missing field 'answers'"),
    ],
)  # fmt: skip
def test_read_squad_errors_name_file_and_question(tmp_path: Path, document: dict, message: str) -> None:
    path = _write(tmp_path / "bad.json", json.dumps(document))
    with pytest.raises(ValueError, match=message) as error:
        data.read_squad(path)
    assert str(path) in str(error.value)


def test_read_squad_invalid_json_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        data.read_squad(_write(tmp_path / "broken.json", "{"))
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        data.read_squad(tmp_path / "nothing.json")


def test_resolve_squad_files_prefers_the_full_train_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train-subset.json"):
        data.resolve_squad_files(tmp_path)
    subset = _write(tmp_path / "squad" / "train-subset.json", "{}")
    dev = _write(tmp_path / "squad" / "dev-v1.1.json", "{}")
    assert data.resolve_squad_files(tmp_path) == (subset, dev)
    full = _write(tmp_path / "squad" / "train-v1.1.json", "{}")
    assert data.resolve_squad_files(tmp_path) == (full, dev)


def test_read_wikitext(tmp_path: Path) -> None:
    text = " \n = Title = \n \n Some text here . \n"
    path = _write(tmp_path / "wikitext-2" / "wiki.test.raw", text)
    assert data.resolve_wikitext_file(tmp_path) == path
    assert data.read_wikitext(path) == text
    with pytest.raises(ValueError, match="no text"):
        data.read_wikitext(_write(tmp_path / "blank.raw", " \n \n"))
    with pytest.raises(FileNotFoundError, match="wiki.valid.raw"):
        data.resolve_wikitext_file(tmp_path, split="valid")


def test_read_wikitext_valid_prefers_raw_and_names_both_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"neither .*wiki\.valid\.raw nor .*wiki\.valid\.tokens"):
        data.read_wikitext_valid(tmp_path)
    tokens = _write(tmp_path / "wikitext-2" / "wiki.valid.tokens", " = B = \n \n <unk> text .\n")
    assert data.read_wikitext_valid(tmp_path) == (tokens.read_text(), str(tokens))
    raw = _write(tmp_path / "wikitext-2" / "wiki.valid.raw", " = B = \n \n Rare text .\n")
    assert data.read_wikitext_valid(tmp_path) == (raw.read_text(), str(raw))


def test_without_a_data_dir_squad_and_wikitext_come_from_the_hub(monkeypatch):
    import datasets

    monkeypatch.delenv("PROBEFT_DATA_DIR", raising=False)
    row = {"id": "q1", "title": "T", "context": "Paris is in France.", "question": "Where is Paris?",
           "answers": {"text": ["France"], "answer_start": [12]}}
    calls = []

    def fake_load_dataset(name, config=None, split=None, revision=None):
        calls.append((name, config, split))
        assert revision is None  # nothing pinned
        if name == "rajpurkar/squad":
            return {"train": [row], "validation": [row, row]}
        return {"text": [" = A = \n", "", " Text .\n"]}  # the hub serves a blank line as ""

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(wikitext, "WIKITEXT2_TEST_SHA256", hashlib.sha256(b" = A = \n \n Text .\n").hexdigest())
    train, dev = data.read_squad_splits(None)
    assert (len(train), len(dev)) == (1, 2) and train[0].answers == ["France"] and train[0].answer_starts == [12]
    text, source = data.read_wikitext_test(None)
    assert text == " = A = \n \n Text .\n" and source.startswith("hub:")
    assert calls == [("rajpurkar/squad", None, None), ("Salesforce/wikitext", "wikitext-2-raw-v1", "test")]
    assert locations.data_location("hub", fallback="demo") is None


def _hub_rows(raw: str) -> list[str]:
    """What the hub's Salesforce/wikitext serves for a raw file: one row per line, a blank line as ""."""
    return [line if line.strip() else "" for line in raw.splitlines(keepends=True)]


def test_hub_wikitext_rows_rebuild_the_raw_file_byte_for_byte(demo_data_dir, monkeypatch):
    import datasets

    raw_path = demo_data_dir / "wikitext-2" / "wiki.test.raw"
    raw = raw_path.read_text(encoding="utf-8")
    rows = _hub_rows(raw)
    assert "" in rows and "".join(rows) != raw  # joining the rows as served loses the blank lines' bytes
    monkeypatch.delenv("PROBEFT_DATA_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: {"text": rows})
    monkeypatch.setattr(wikitext, "WIKITEXT2_TEST_SHA256", hashlib.sha256(raw_path.read_bytes()).hexdigest())
    text, source = data.read_wikitext_test(None)
    assert text == data.read_wikitext_test(demo_data_dir)[0] == raw
    assert source.endswith(wikitext.WIKITEXT2_TEST_SHA256)
    rows[3] = rows[3].replace(" ", "  ", 1)  # the hub's data changed upstream
    with pytest.raises(ValueError, match="do not rebuild wiki.test.raw: sha256"):
        data.read_wikitext_test(None)


@pytest.mark.shared_data
def test_the_real_wikitext2_test_file_has_the_pinned_sha256(shared_data_dir):
    raw = (shared_data_dir / "wikitext-2" / "wiki.test.raw").read_text(encoding="utf-8")
    rebuilt = wikitext.raw_from_hub_rows(_hub_rows(raw))
    assert hashlib.sha256(rebuilt.encode("utf-8")).hexdigest() == wikitext.WIKITEXT2_TEST_SHA256


def test_senteval_downloads_from_a_pinned_commit(tmp_path, github):
    data.resolve_probing_file("odd_man_out", "hub")
    assert github.fetched[0] == (f"https://raw.githubusercontent.com/facebookresearch/SentEval/"
                                 f"{senteval.SENTEVAL_COMMIT}/data/probing/odd_man_out.txt")
    assert len(senteval.SENTEVAL_COMMIT) == 40 and "/main/" not in github.fetched[0]
    assert senteval.SENTEVAL_TREE_URL.startswith("https://api.github.com/repos/facebookresearch/SentEval/git/trees/"
                                                 + senteval.SENTEVAL_COMMIT)


def test_git_blob_sha1_is_gits_object_id():
    assert senteval.git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object
    assert senteval.git_blob_sha1(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob


def test_senteval_lines_split_as_senteval_reads_them(tmp_path):
    """A form feed or U+2028 inside a sentence is text to SentEval's reader; only \\n, \\r\\n and \\r end lines."""
    lines = ["tr\tO\tthe cat sat .", "tr\tI\tsat cat the .", "va\tO\ta dog\x0cbarked .", "va\tI\tbarked dog a .",
             "te\tO\tit\u2028rained .", "te\tI\trained it ."]
    path = tmp_path / "bigram_shift.txt"
    path.write_bytes(("\r\n".join(lines[:2]) + "\r\n" + "\n".join(lines[2:]) + "\n").encode("utf-8"))
    probing = data.read_senteval(path)
    assert [len(probing.train.sentences), len(probing.dev.sentences), len(probing.test.sentences)] == [2, 2, 2]
    assert probing.dev.sentences[0] == "a dog\x0cbarked ." and probing.test.sentences[0] == "it\u2028rained ."
