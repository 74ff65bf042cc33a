"""Tests of probeft.data.demo: layout, readers, balance, determinism and that each task is learnable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from probeft import data
from probeft.data import demo
from probeft.models import tiny

SIZES = dict(n_probing=200, n_glue=100, n_squad=40, n_wiki_lines=60)
EXPECTED_DEFAULT_DIGESTS = {  # sha256[:16] of write_demo_data(seed=0) with the default sizes
    "glue/CoLA/dev.tsv": "619df961739953f6", "glue/CoLA/train.tsv": "2e55187fecaafd50",
    "glue/RTE/dev.tsv": "157716d1a6a8fdaf", "glue/RTE/train.tsv": "4b85819ebbe323f3",
    "glue/SST-2/dev.tsv": "6a7486fb6a7b3ff3", "glue/SST-2/train.tsv": "65d292803a0e1307",
    "senteval/bigram_shift.txt": "437c8b31cd86bccb", "senteval/coordination_inversion.txt": "320937ea3b9632c3",
    "senteval/odd_man_out.txt": "93ef4b91274dcfbf", "squad/dev-v1.1.json": "7c6a5bd4978ec375",
    "squad/train-v1.1.json": "70745b75cf1914cf", "wikitext-2/wiki.test.raw": "50839a107cd41a6f",
    "wikitext-2/wiki.valid.tokens": "22a500da62dca694",
    "senteval/built_bigram_shift.txt": "35b75fc9befadf87", "senteval/built_bigram_shift.changes.jsonl": "7e02eda2fdc2d132",
}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.write_demo_data(tmp_path_factory.mktemp("demo") / "data", seed=0, **SIZES)


def _files(root: Path) -> dict[str, bytes]:
    """The data files of a demo folder (not its marker)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != demo.DEMO_MARKER}


def test_layout_matches_the_real_data(demo_dir: Path) -> None:
    assert sorted(_files(demo_dir)) == [
        "glue/CoLA/dev.tsv", "glue/CoLA/train.tsv", "glue/RTE/dev.tsv", "glue/RTE/train.tsv",
        "glue/SST-2/dev.tsv", "glue/SST-2/train.tsv",
        "senteval/bigram_shift.txt", "senteval/built_bigram_shift.changes.jsonl", "senteval/built_bigram_shift.txt",
        "senteval/coordination_inversion.txt", "senteval/odd_man_out.txt",
        "squad/dev-v1.1.json", "squad/train-v1.1.json", "wikitext-2/wiki.test.raw", "wikitext-2/wiki.valid.tokens",
    ]  # fmt: skip


def test_the_built_task_is_make_probing_datas_bigram_shift_of_generated_text(demo_dir: Path) -> None:
    """built_bigram_shift: balanced, each line's record names its corpus sentence and the swap made."""
    import json

    built = data.read_senteval(data.resolve_probing_file(demo.BUILT_TASK, demo_dir, download=False))
    assert built.task == "built_bigram_shift" and sorted(built.label_names) == ["I", "O"]
    assert (len(built.train), len(built.dev), len(built.test)) == (160, 20, 20)
    for split in (built.train, built.dev, built.test):
        assert split.labels.mean() == 0.5
    records = (demo_dir / "senteval" / "built_bigram_shift.changes.jsonl").read_text().splitlines()
    assert len(records) == 200
    lines = (demo_dir / "senteval" / "built_bigram_shift.txt").read_text().splitlines()
    first = json.loads(records[0])
    assert first["sentence"] == lines[0].split("\t")[2]


@pytest.mark.parametrize("task", data.PROBING_TASKS)
def test_probing_files_read_back_balanced(demo_dir: Path, task: str) -> None:
    probing = data.read_senteval(data.resolve_probing_file(task, demo_dir, download=False))
    assert probing.label_names == list(data.PROBING_LABELS[task])
    assert (len(probing.train), len(probing.dev), len(probing.test)) == (160, 20, 20)
    for split in (probing.train, probing.dev, probing.test):
        assert split.labels.mean() == 0.5
    assert len(set(probing.train.sentences)) > 150  # varied sentences


@pytest.mark.parametrize("task", data.GLUE_TASKS)
def test_glue_files_read_back_balanced(demo_dir: Path, task: str) -> None:
    glue = data.read_glue(task, demo_dir)
    assert (len(glue.train), len(glue.dev)) == (80, 20)
    for split in (glue.train, glue.dev):
        assert 0.4 <= split.labels.mean() <= 0.6
    assert (glue.train.texts_b is not None) == (task == "rte")


def test_glue_file_formats(demo_dir: Path) -> None:
    for line in (demo_dir / "glue" / "CoLA" / "train.tsv").read_text().splitlines():
        source, label, mark, sentence = line.split("\t")
        assert mark == ("" if label == "1" else "*")
        assert sentence[0].isupper() and sentence.endswith(".")
    sst = (demo_dir / "glue" / "SST-2" / "train.tsv").read_text().splitlines()
    assert sst[0] == "sentence\tlabel"
    assert all(line == line.lower() and line.split("\t")[0].endswith(" ") for line in sst[1:])
    rte = (demo_dir / "glue" / "RTE" / "dev.tsv").read_text().splitlines()
    assert rte[0] == "index\tsentence1\tsentence2\tlabel"
    assert [int(line.split("\t")[0]) for line in rte[1:]] == list(range(20))


def test_squad_files_read_back_with_correct_spans(demo_dir: Path) -> None:
    train_path, dev_path = data.resolve_squad_files(demo_dir)
    train, dev = data.read_squad(train_path), data.read_squad(dev_path)  # the reader checks every span
    assert (len(train), len(dev)) == (32, 8)
    assert len({e.id for e in train + dev}) == 40
    assert json.loads(dev_path.read_text())["version"] == "1.1"
    for example in train + dev:
        assert example.question.endswith("?")
        assert 2 <= example.context.count(".") <= 4  # 2-4 facts per context
        assert example.context.count(example.answers[0]) >= 1
    assert any(len(e.answers) > 1 for e in dev)


def test_wikitext_valid_is_a_fitting_text_of_its_own(demo_dir: Path) -> None:
    """The validation split: the tokenised release's form (``<unk>`` markers), other text than the test split."""
    text, source = data.read_wikitext_valid(demo_dir)
    assert source.endswith("wikitext-2/wiki.valid.tokens") and len(text.split("\n")) - 1 == SIZES["n_wiki_lines"]
    assert "<unk>" in text and text != data.read_wikitext(data.resolve_wikitext_file(demo_dir))


def test_wikitext_layout(demo_dir: Path) -> None:
    text = data.read_wikitext(data.resolve_wikitext_file(demo_dir))
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) - 1 == SIZES["n_wiki_lines"]
    body = lines[:-1]
    assert all(line.startswith(" ") for line in body)
    assert " " in body  # blank lines are a single space
    titles = [line for line in body if line.startswith(" = ") and not line.startswith(" = = ")]
    assert titles and all(line.endswith(" = ") for line in titles)
    assert any(line.startswith(" = = ") for line in body)


def test_same_seed_gives_identical_bytes_other_seed_differs(demo_dir: Path, tmp_path: Path) -> None:
    again = demo.write_demo_data(tmp_path / "again", seed=0, **SIZES)
    assert _files(again) == _files(demo_dir)
    demo.write_demo_data(again, seed=0, **SIZES)  # idempotent: rewriting changes nothing, leaves no tmp files
    assert _files(again) == _files(demo_dir)
    other = _files(demo.write_demo_data(tmp_path / "other", seed=1, **SIZES))
    assert other.keys() == _files(demo_dir).keys()
    assert all(other[name] != content for name, content in _files(demo_dir).items())


def test_default_demo_data_keeps_its_bytes(tmp_path: Path) -> None:
    """The files every demo run reads (the default sizes, seed 0) are pinned: a change to the grammar or to how
    files are written would change the demo grid's results. Digests measured on the original generator."""
    root = demo.write_demo_data(tmp_path, seed=0)
    digests = {name: hashlib.sha256(content).hexdigest()[:16] for name, content in _files(root).items()}
    assert digests == EXPECTED_DEFAULT_DIGESTS


def test_bad_sizes_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_probing"):
        demo.write_demo_data(tmp_path, n_probing=2)
    with pytest.raises(ValueError, match="n_glue"):
        demo.write_demo_data(tmp_path, n_glue=True)


# ----------------------------------------------------------------------------------------------------------
# The labels mean what they say
# ----------------------------------------------------------------------------------------------------------

_NAMES = {name for name, _ in demo.NAMES}
_PRONOUNS = {pronoun for _, pronoun in demo.NAMES}
_VERB_TOPIC = {verb[0]: t for t, topic in demo.TOPICS.items() for verb in topic.verbs}
_NOUN_TOPIC = {noun[0]: t for t, topic in demo.TOPICS.items() for noun in topic.nouns}


def _tag(word: str) -> str:
    """Word class of a probing-sentence word (the literal word for function words)."""
    lower = word.lower()
    if lower in ("a", "an"):
        return "DET"
    if word in _NAMES:
        return "NAME"
    for tag, words in (("VERB", _VERB_TOPIC), ("NOUN", _NOUN_TOPIC), ("ADJ", demo.ADJECTIVES),
                       ("PERSON", {p[0] for p in demo.PEOPLE}),
                       ("PLACE", {p for t in demo.TOPICS.values() for p in t.places})):  # fmt: skip
        if lower in words:
            return tag
    return lower


def _probing(demo_dir: Path, task: str) -> list[tuple[str, str]]:
    probing = data.read_senteval(demo_dir / "senteval" / f"{task}.txt")
    return [(probing.label_names[y], s) for split in (probing.train, probing.dev, probing.test)
            for s, y in zip(split.sentences, split.labels)]  # fmt: skip


def test_bigram_shift_inverted_sentences_break_every_template(demo_dir: Path) -> None:
    rows = _probing(demo_dir, "bigram_shift")
    original_shapes = {tuple(_tag(w) for w in s.split()) for label, s in rows if label == "O"}
    assert len(original_shapes) <= 4  # the four sentence templates
    for label, sentence in rows:
        if label == "I":
            assert tuple(_tag(w) for w in sentence.split()) not in original_shapes, sentence
            assert sentence[0].isupper()


def test_coordination_inversion_puts_the_pronoun_before_its_name(demo_dir: Path) -> None:
    with_pronoun = {"O": 0, "I": 0}
    for label, sentence in _probing(demo_dir, "coordination_inversion"):
        words = sentence.split()
        conjunction = words.index(",") + 1
        assert words[conjunction] in demo.CONJUNCTIONS
        first_subject, second_subject = words[0].lower(), words[conjunction + 1]
        if second_subject in _PRONOUNS or first_subject in _PRONOUNS:
            with_pronoun[label] += 1
            assert (first_subject in _PRONOUNS) == (label == "I"), sentence
    assert min(with_pronoun.values()) > 40


def test_odd_man_out_changed_sentences_mix_topics(demo_dir: Path) -> None:
    for label, sentence in _probing(demo_dir, "odd_man_out"):
        words = [w.lower() for w in sentence.split()]
        verb = next(w for w in words if w in _VERB_TOPIC)
        noun = next(w for w in words if w in _NOUN_TOPIC)
        assert (_VERB_TOPIC[verb] == _NOUN_TOPIC[noun]) == (label == "O"), sentence


def test_glue_tasks_are_learnable_by_a_simple_classifier(tmp_path: Path) -> None:
    """A bag-of-n-grams logistic regression beats chance clearly on CoLA-, SST-2- and RTE-like data."""
    feature_extraction = pytest.importorskip("sklearn.feature_extraction.text")
    linear_model = pytest.importorskip("sklearn.linear_model")
    root = demo.write_demo_data(tmp_path, seed=3, n_probing=6, n_glue=800, n_squad=2, n_wiki_lines=1)
    for task in ("cola", "sst2"):
        glue = data.read_glue(task, root)
        vectorizer = feature_extraction.CountVectorizer(ngram_range=(1, 3), token_pattern=r"\S+", lowercase=False)
        train_x = vectorizer.fit_transform(glue.train.texts_a)
        classifier = linear_model.LogisticRegression(max_iter=2000).fit(train_x, glue.train.labels)
        accuracy = classifier.score(vectorizer.transform(glue.dev.texts_a), glue.dev.labels)
        assert accuracy > 0.75, (task, accuracy)
    # RTE-like: entailed hypotheses only use premise content words; most non-entailed ones bring a new one.
    rte = data.read_glue("rte", root)
    function_words = {"was", "a", "an"}
    novel = np.array([bool(set(h.rstrip(".").split()) - set(p.replace(",", "").rstrip(".").split()) - function_words)
                      for p, h in zip(rte.train.texts_a, rte.train.texts_b)])  # fmt: skip
    assert not novel[rte.train.labels == 0].any()
    assert novel[rte.train.labels == 1].mean() > 0.5


def test_tiny_tokenizers_know_the_demo_vocabulary() -> None:
    assert set(demo.DEMO_VOCABULARY) <= set(tiny.TINY_VOCABULARY_WORDS)


def test_demo_data_never_writes_over_a_folder_it_did_not_write(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "senteval").mkdir(parents=True)
    (real / "senteval" / "bigram_shift.txt").write_text("tr\tO\tA real sentence .\n")
    before = _files(real)
    with pytest.raises(FileExistsError, match=r"refusing .*real.*senteval/bigram_shift.txt"):
        demo.write_demo_data(real, **SIZES)
    assert _files(real) == before and not demo.is_demo_data(real)  # nothing written, not even the marker
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(NotADirectoryError, match="a-file"):
        demo.write_demo_data(tmp_path / "a-file", **SIZES)


def test_demo_data_rewrites_its_own_folder_and_adopts_an_unmarked_identical_one(tmp_path: Path) -> None:
    own = demo.write_demo_data(tmp_path / "own", seed=0, **SIZES)
    assert demo.is_demo_data(own)
    (own / "senteval" / "bigram_shift.txt").write_text("edited")  # its own folder: rewritten whole
    assert _files(demo.write_demo_data(own, seed=0, **SIZES)) == _files(demo.write_demo_data(tmp_path / "b", **SIZES))
    # Demo data written before the marker existed: every file equals what the generator writes, so it is taken.
    (own / demo.DEMO_MARKER).unlink()
    demo.write_demo_data(own, seed=0, **SIZES)
    assert demo.is_demo_data(own)
    # ... but not with other sizes, whose files differ.
    (own / demo.DEMO_MARKER).unlink()
    with pytest.raises(FileExistsError):
        demo.write_demo_data(own, seed=0, **{**SIZES, "n_glue": 60})
