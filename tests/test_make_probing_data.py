"""`probeft make-probing-data` on generated text: every builder (balanced, disjoint splits, sidecar matching the
lines, the change really made), the ten SentEval task names, bad input, nothing half-written, the multi-class path
through the probing stage."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from probeft.core.names import PROBING_LABELS, PROBING_TASKS, SENTEVAL_LABELS, SENTEVAL_TASKS
from probeft.data import probing_builders as pb
from probeft.data import read_senteval, resolve_probing_file
from probeft.grid import schema
from probeft.grid.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent

# A small grammar: subjects and objects singular or plural, verbs past or present, optional adjectives and
# prepositional phrases, fronted adverbs and PPs, and two clauses joined by "and" / "but".
NOUNS = [("dog", "dogs"), ("cat", "cats"), ("farmer", "farmers"), ("teacher", "teachers"), ("student", "students"),
         ("bird", "birds"), ("doctor", "doctors"), ("painter", "painters"), ("sailor", "sailors"), ("writer", "writers")]
OBJECTS = [("apple", "apples"), ("letter", "letters"), ("book", "books"), ("car", "cars"), ("song", "songs"),
           ("picture", "pictures"), ("boat", "boats"), ("key", "keys"), ("flower", "flowers"), ("cake", "cakes")]
VERBS = [("saw", "sees", "see"), ("found", "finds", "find"), ("painted", "paints", "paint"),
         ("wrote", "writes", "write"), ("bought", "buys", "buy"), ("liked", "likes", "like"),
         ("carried", "carries", "carry"), ("watched", "watches", "watch"), ("opened", "opens", "open"),
         ("cleaned", "cleans", "clean")]
ADJECTIVES = ["old", "young", "small", "happy", "quiet", "tall", "green", "clever"]
PLACES = ["park", "garden", "city", "river", "market", "station", "school", "village", "forest", "harbour"]
SIZES = (240, 60, 60)
SETTINGS = pb.BuildSettings(sizes=SIZES, target_band=(1, 10**6), odd_man_out_band=(1, 10**6), bigram_tolerance=3.0,
                            word_content_words=6, word_content_rank_start=20, top_constituents_classes=3)


def _clause(rng: random.Random) -> list[str]:
    plural, past = rng.random() < 0.5, rng.random() < 0.5
    verb = rng.choice(VERBS)
    words = ["the", *[rng.choice(ADJECTIVES)] * (rng.random() < 0.5), rng.choice(NOUNS)[plural]]
    words.append(verb[0] if past else verb[2] if plural else verb[1])
    words += ["the", *[rng.choice(ADJECTIVES)] * (rng.random() < 0.5), rng.choice(OBJECTS)[rng.random() < 0.5]]
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        words += [rng.choice(["in", "near", "behind"]), "the", rng.choice(PLACES)]
    return words


def _sentence(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.3:
        words = _clause(rng) + [rng.choice(["and", "but"])] + _clause(rng)
    elif kind < 0.45:
        words = [rng.choice(["yesterday", "later", "suddenly"])] + _clause(rng)
    elif kind < 0.6:
        words = ["in", "the", rng.choice(PLACES)] + _clause(rng)
    else:
        words = _clause(rng)
    words[0] = words[0].capitalize()
    return " ".join(words) + " ."


def write_corpus(path: Path, n: int = 3000, *, seed: int = 0, per_line: int = 3) -> Path:
    """``n`` generated sentences, ``per_line`` to a line (documents), with a heading line as WikiText has."""
    rng = random.Random(seed)
    sentences = [_sentence(rng) for _ in range(n)]
    lines = [" = A heading = ", ""] + [" ".join(sentences[i:i + per_line]) for i in range(0, n, per_line)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_task(out_dir: Path, task: str) -> tuple[list[tuple[str, str, str]], list[dict]]:
    """The task file's ``(split, label, sentence)`` lines and its sidecar records."""
    lines = [tuple(line.split("\t")) for line in (out_dir / f"{task}.txt").read_text(encoding="utf-8").splitlines()]
    records = [json.loads(line) for line in (out_dir / f"{task}.changes.jsonl").read_text(encoding="utf-8").splitlines()]
    return lines, records


def check_common(out_dir: Path, task: str, n_labels: int) -> tuple[list[tuple[str, str, str]], list[dict]]:
    """What every built task must satisfy: SentEval format, balanced classes per split, no source sentence in two
    splits or twice, a sidecar record per line matching it; returns the lines and records."""
    lines, records = read_task(out_dir, task)
    assert len(records) == len(lines)
    for number, ((code, label, sentence), record) in enumerate(zip(lines, records, strict=True), start=1):
        assert (record["line"], record["split"], record["label"], record["sentence"]) == (number, code, label, sentence)
    assert [code for code, _, _ in lines] == sorted((code for code, _, _ in lines), key=["tr", "va", "te"].index)
    for code, size in zip(("tr", "va", "te"), SIZES, strict=True):
        counts = Counter(label for c, label, _ in lines if c == code)
        assert len(counts) == n_labels and set(counts.values()) == {size // n_labels}
    sources = [(r["source"]["line"], r["source"]["sentence"]) for r in records]
    assert len(set(sources)) == len(sources)  # each corpus sentence used once: never in two splits
    texts = [r["source"]["text"] for r in records]
    assert len(set(texts)) == len(texts)
    data = read_senteval(out_dir / f"{task}.txt", task=task)  # the reader takes it, labels and all
    assert len(data.label_names) == n_labels
    return lines, records


def check_unchanged_lines(records: list[dict], unchanged: str) -> list[dict]:
    """Unchanged-class lines are the corpus sentence as it is; returns the changed-class records."""
    changed = []
    for record in records:
        if record["label"] == unchanged:
            assert record["changes"] == [] and record["sentence"] == record["source"]["text"]
        else:
            assert len(record["changes"]) == 1 and record["sentence"] != record["source"]["text"]
            changed.append(record)
    return changed


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


@pytest.fixture(scope="module")
def plain_built(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plain") / "built"
    pb.build_probing_data(corpus, out, list(pb.PARSER_FREE_TASKS), SETTINGS)
    return out


@pytest.fixture(scope="module")
def parsed_built(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    pytest.importorskip("spacy")
    try:
        nlp = pb.corpus.load_spacy(pb.DEFAULT_SPACY_MODEL, "test")
    except ValueError as error:
        pytest.skip(str(error))
    out = tmp_path_factory.mktemp("parsed") / "built"
    tasks = [task for task in pb.BUILDERS if task not in pb.PARSER_FREE_TASKS]
    pb.build_probing_data(corpus, out, tasks, SETTINGS)
    return out, nlp


# --- the ten names --------------------------------------------------------------------------------------------------

def test_the_ten_senteval_tasks_and_their_labels():
    assert len(SENTEVAL_TASKS) == 10 and set(SENTEVAL_TASKS) == set(pb.BUILDERS)
    assert PROBING_TASKS == ("bigram_shift", "coordination_inversion", "odd_man_out")  # the paper's three, unchanged
    assert set(SENTEVAL_LABELS) == set(SENTEVAL_TASKS) - {"word_content"}
    assert {task: SENTEVAL_LABELS[task] for task in PROBING_LABELS} == PROBING_LABELS
    assert SENTEVAL_LABELS["sentence_length"] == ("0", "1", "2", "3", "4", "5")
    assert SENTEVAL_LABELS["tree_depth"] == ("5", "6", "7", "8", "9", "10", "11", "12")
    assert len(SENTEVAL_LABELS["top_constituents"]) == 20 and "OTHER" in SENTEVAL_LABELS["top_constituents"]
    assert SENTEVAL_LABELS["past_present"] == ("PRES", "PAST") and SENTEVAL_LABELS["obj_number"] == ("NN", "NNS")


def _senteval_file(path: Path, labels: list[str]) -> Path:
    lines = [f"{code}\t{label}\tsentence {code} {label} {i} ." for code in ("tr", "va", "te")
             for i, label in enumerate(labels)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_reader_orders_and_checks_labels_of_the_new_tasks(tmp_path):
    full = read_senteval(_senteval_file(tmp_path / "tree_depth.txt", [str(d) for d in range(12, 4, -1)]))
    assert full.label_names == [str(d) for d in range(5, 13)]
    built = read_senteval(_senteval_file(tmp_path / "built" / "tree_depth.txt", ["10", "3", "4"]))
    assert built.label_names == ["3", "4", "10"]  # a built file's dependency depths: numeric order
    tense = read_senteval(_senteval_file(tmp_path / "past_present.txt", ["PAST", "PRES"]))
    assert tense.label_names == ["PRES", "PAST"] and list(tense.train.labels) == [1, 0]
    with pytest.raises(ValueError, match=r"label '7' is not one of sentence_length's labels"):
        read_senteval(_senteval_file(tmp_path / "sentence_length.txt", ["0", "7"]))
    words = read_senteval(_senteval_file(tmp_path / "word_content.txt", ["zebra", "apple", "mango"]))
    assert words.label_names == ["apple", "mango", "zebra"]


@pytest.mark.parametrize("task", [t for t in SENTEVAL_TASKS if t not in PROBING_TASKS])
def test_every_senteval_name_resolves_from_a_data_dir_and_is_known_for_download(task, tmp_path, monkeypatch):
    _senteval_file(tmp_path / "senteval" / f"{task}.txt", list(SENTEVAL_LABELS.get(task, ("tiger", "lion"))))
    assert resolve_probing_file(task, tmp_path) == tmp_path / "senteval" / f"{task}.txt"
    monkeypatch.setenv("PROBEFT_OFFLINE", "1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="downloads disabled"):  # a SentEval task: would be downloaded
        resolve_probing_file(task, tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="not found \\(known tasks"):
        resolve_probing_file(f"{task}_typo", tmp_path / "empty")


def test_grid_schema_takes_the_new_task_names(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("name: t\noutput_dir: out\nmodels: [tiny-bert-L2]\n"
                    "probing: {tasks: [top_constituents, word_content, bigram_shift]}\n")
    config = schema.load_config(path)
    assert config.probing.tasks == ["top_constituents", "word_content", "bigram_shift"]
    assert schema.ProbingSection().tasks == list(PROBING_TASKS)  # the default stays the paper's three


# --- parser-free builders -------------------------------------------------------------------------------------------

def test_bigram_shift_swaps_two_adjacent_words(plain_built):
    _lines, records = check_common(plain_built, "bigram_shift", 2)
    changed = check_unchanged_lines(records, "O")
    assert {r["label"] for r in changed} == {"I"}
    for record in changed:
        (edit,) = record["changes"]
        i, j = edit["positions"]
        source, tokens = record["source"]["text"].split(), record["sentence"].split()
        assert j == i + 1 and i >= 1 and edit["replacement"] == edit["original"][::-1]
        assert source[i:j + 1] == edit["original"] and tokens[i:j + 1] == edit["replacement"]
        assert tokens[:i] + tokens[j + 1:] == source[:i] + source[j + 1:]
        assert all(any(ch.isalnum() for ch in word) for word in edit["original"])  # no punctuation moved


def test_sentence_length_bins(plain_built):
    lines, records = check_common(plain_built, "sentence_length", 6)
    bins = {0: range(5, 9), 1: range(9, 13), 2: range(13, 17), 3: range(17, 21), 4: range(21, 26), 5: range(26, 29)}
    for _, label, sentence in lines:
        assert len(sentence.split()) in bins[int(label)]
    assert all(r["changes"] == [] for r in records)


def test_word_content_has_exactly_one_target_word(plain_built):
    lines, _records = check_common(plain_built, "word_content", 6)
    targets = {label for _, label, _ in lines}
    for _, label, sentence in lines:
        assert [word for word in sentence.lower().split() if word in targets] == [label]
    manifest = json.loads((plain_built / pb.MANIFEST_FILE).read_text())
    assert sorted(manifest["tasks"]["word_content"]["labels"]) == sorted(targets)
    assert manifest["spacy"] is None and manifest["settings"]["sizes"] == list(SIZES)


def test_same_seed_same_files_other_seed_other_files(corpus, plain_built, tmp_path):
    again = tmp_path / "again"
    pb.build_probing_data(corpus, again, ["bigram_shift"], SETTINGS)
    assert (again / "bigram_shift.txt").read_bytes() == (plain_built / "bigram_shift.txt").read_bytes()
    other = tmp_path / "other"
    pb.build_probing_data(corpus, other, ["bigram_shift"], pb.BuildSettings(**{**SETTINGS.__dict__, "seed": 1}))
    assert (other / "bigram_shift.txt").read_bytes() != (plain_built / "bigram_shift.txt").read_bytes()


def test_cli_builds_parser_free_tasks_without_spacy(corpus, tmp_path):
    """spaCy made unimportable in a fresh interpreter: the parser-free tasks build, a parser task fails by name."""
    code = ("import sys; sys.modules['spacy'] = None; from probeft.grid.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    ok = subprocess.run([sys.executable, "-c", code, "make-probing-data", str(corpus), str(tmp_path / "a"),
                         "--tasks", "bigram-shift", "sentence_length", "--sizes", "240,60,60"],
                        capture_output=True, text=True, env=env, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "240 / 60 / 60 tr / va / te lines, 2 classes" in ok.stdout
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "bigram_shift.changes.jsonl", "bigram_shift.txt", pb.MANIFEST_FILE, "sentence_length.changes.jsonl",
        "sentence_length.txt"]
    failed = subprocess.run([sys.executable, "-c", code, "make-probing-data", str(corpus), str(tmp_path / "b"),
                             "--tasks", "bigram_shift", "odd_man_out", "--sizes", "240,60,60"],
                            capture_output=True, text=True, env=env, check=False)
    assert failed.returncode == 2
    assert "task odd_man_out needs spaCy's tagger and parser, but spaCy is not installed" in failed.stderr
    assert not (tmp_path / "b").exists()


# --- bad input --------------------------------------------------------------------------------------------------------

def test_empty_corpus_names_the_task_and_counts(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(pb.ProbingBuildError, match=r"task bigram_shift: corpus .* is empty \(0 sentences found; "
                                                   r"360 needed"):
        pb.build_probing_data(empty, tmp_path / "out", ["bigram_shift"], SETTINGS)
    assert not (tmp_path / "out").exists()


def test_too_few_sentences_name_task_found_and_needed(tmp_path):
    small = write_corpus(tmp_path / "small.txt", n=150)
    with pytest.raises(pb.ProbingBuildError, match=r"task bigram_shift: 1\d\d eligible sentences gave 1\d\d lines; "
                                                   r"360 are needed for balanced splits of 240/60/60"):
        pb.build_probing_data(small, tmp_path / "out", ["bigram_shift"], SETTINGS)
    medium = write_corpus(tmp_path / "medium.txt", n=450)  # enough for bigram_shift, not for six length bins
    with pytest.raises(pb.ProbingBuildError, match=r"task sentence_length: class '\d' has \d+ eligible sentences"
                                                   r".*60 are needed"):
        pb.build_probing_data(medium, tmp_path / "out", ["bigram_shift", "sentence_length"], SETTINGS)
    assert not (tmp_path / "out").exists()  # nothing half-written: not even the first task's files


def test_failed_rebuild_leaves_the_old_folder_and_foreign_folders_are_refused(corpus, tmp_path):
    out = tmp_path / "out"
    pb.build_probing_data(corpus, out, ["bigram_shift"], SETTINGS)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(pb.ProbingBuildError, match="task word_content"):
        pb.build_probing_data(corpus, out, ["bigram_shift", "word_content"],
                              pb.BuildSettings(**{**SETTINGS.__dict__, "seed": 5, "word_content_words": 500}))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left behind
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not one written by make-probing-data"):
        pb.build_probing_data(corpus, foreign, ["bigram_shift"], SETTINGS)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_bad_arguments(corpus, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"unknown probing task 'bigram_shfit'; expected some of sentence_length"):
        pb.build_probing_data(corpus, tmp_path / "out", ["bigram_shfit"], SETTINGS)
    with pytest.raises(ValueError, match="--sizes '100,10': expected three integers"):
        pb.parse_sizes("100,10")
    assert pb.parse_band("40-400", option="--odd-man-out-band") == (40, 400)
    for bad in ("400-40", "0-10", "40", "a-b"):
        with pytest.raises(ValueError, match=f"--odd-man-out-band '{bad}': expected LOW-HIGH"):
            pb.parse_band(bad, option="--odd-man-out-band")
    with pytest.raises(FileNotFoundError, match="corpus .*missing.txt does not exist"):
        pb.build_probing_data(tmp_path / "missing.txt", tmp_path / "out", ["bigram_shift"], SETTINGS)
    assert main(["make-probing-data", str(corpus), str(tmp_path / "out"), "--tasks", "bigram_shift",
                 "--sizes", "4,1,1"]) == 2
    assert "expected three integers >= 2" in capsys.readouterr().err
    with pytest.raises(pb.ProbingBuildError, match="task odd_man_out needs the spaCy reading"):
        pb.BUILDERS["odd_man_out"](pb.Corpus(), SETTINGS, random.Random(0))


def test_missing_spacy_model_names_the_task(corpus, tmp_path):
    pytest.importorskip("spacy")
    with pytest.raises(ValueError, match=r"task tree_depth needs the spaCy pipeline 'xx_no_such_model', which is "
                                         r"not installed"):
        pb.build_probing_data(corpus, tmp_path / "out", ["bigram_shift", "tree_depth"],
                              pb.BuildSettings(**{**SETTINGS.__dict__, "spacy_model": "xx_no_such_model"}))
    assert not (tmp_path / "out").exists()


# --- builders that need spaCy ---------------------------------------------------------------------------------------

def test_odd_man_out_replaces_one_word_by_one_of_the_same_tag(parsed_built):
    out, nlp = parsed_built
    _lines, records = check_common(out, "odd_man_out", 2)
    changed = check_unchanged_lines(records, "O")
    replacements_by_split: dict[str, set[str]] = {"tr": set(), "va": set(), "te": set()}
    for record in changed:
        (edit,) = record["changes"]
        (i,) = edit["positions"]
        source, tokens = record["source"]["text"].split(), record["sentence"].split()
        assert source[i] == edit["original"][0] != edit["replacement"][0] == tokens[i]
        assert tokens[:i] + tokens[i + 1:] == source[:i] + source[i + 1:]
        assert edit["tag"] in ("NN", "NNS", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ")
        assert nlp(record["source"]["text"])[i].tag_ == edit["tag"]
        replacements_by_split[record["split"]].add(edit["replacement"][0])
    tr, va, te = replacements_by_split.values()
    assert tr and va and te and not (tr & va or tr & te or va & te)  # a replacement word lives in one split


def test_coordination_inversion_swaps_the_two_clauses(parsed_built):
    out, _ = parsed_built
    _lines, records = check_common(out, "coordination_inversion", 2)
    changed = check_unchanged_lines(records, "O")
    first_longer = Counter()
    for record in changed:
        (edit,) = record["changes"]
        source, tokens = record["source"]["text"].split(), record["sentence"].split()
        assert sorted(w.lower() for w in source) == sorted(w.lower() for w in tokens)
        first, second = edit["original"]
        assert record["sentence"].lower() == f"{second} {edit['conjunction']} {first} .".lower()
        assert tokens[0][0].isupper()
    for record in records:
        shown = record["sentence"].split()
        cc = next(i for i, w in enumerate(shown) if w in ("and", "but"))
        first_longer[record["label"], (cc > len(shown) - cc - 2) - (cc < len(shown) - cc - 2)] += 1
    # Balanced by clause length: as many kept as inverted sentences whose first shown clause is the longer.
    for sign in (-1, 0, 1):
        assert first_longer["O", sign] == first_longer["I", sign]


def test_tense_and_number_labels_come_from_the_parse_and_forms_stay_in_one_split(parsed_built):
    out, nlp = parsed_built
    for task, labels in (("past_present", {"PAST": {"VBD"}, "PRES": {"VBP", "VBZ"}}),
                         ("subj_number", {"NN": {"NN"}, "NNS": {"NNS"}}), ("obj_number", {"NN": {"NN"}, "NNS": {"NNS"}})):
        _lines, records = check_common(out, task, 2)
        split_of: dict[str, str] = {}
        for record in records:
            word = record["evidence"]["word"].lower()
            assert split_of.setdefault(word, record["split"]) == record["split"], (task, word)
            assert record["evidence"]["tag"] in labels[record["label"]]
        for record in records[::25]:  # parsed again: the label's word has the label's role and tag
            doc = nlp(record["sentence"])
            token = doc[record["evidence"]["position"]]
            root = next(t for t in doc if t.dep_ == "ROOT")
            role = {"past_present": token == root, "subj_number": token.dep_ in ("nsubj", "nsubjpass")
                    and token.head == root, "obj_number": token.dep_ == "dobj" and token.head == root}[task]
            assert role and token.tag_ in labels[record["label"]], (task, record)
    verbs = {r["evidence"]["word"].lower() for r in read_task(out, "past_present")[1]}
    assert verbs <= {form for verb in VERBS for form in verb}


def test_tree_depth_is_the_dependency_depth(parsed_built):
    out, nlp = parsed_built
    _lines, records = check_common(out, "tree_depth", 6)
    for record in records[::10]:
        doc = nlp(record["sentence"])
        assert int(record["label"]) == max(1 + len(list(token.ancestors)) for token in doc)


def test_top_constituents_classes(parsed_built):
    out, _ = parsed_built
    lines, records = check_common(out, "top_constituents", 4)
    labels = sorted({label for _, label, _ in lines})
    assert labels == sorted(["NP_VP_.", "PP_NP_VP_.", "S_CC_S_.", "OTHER"])
    for record in records:
        sequence = record["evidence"]["sequence"]
        assert record["label"] == (sequence if sequence in labels else "OTHER")
        if record["label"] == "PP_NP_VP_.":
            assert record["sentence"].split()[0] == "In"
        if record["label"] == "S_CC_S_.":
            assert {"and", "but"} & set(record["sentence"].split())


# --- the multi-class path through the probing stage --------------------------------------------------------------

def test_multiclass_built_task_goes_through_probe_control_and_mdl(plain_built, tmp_path):
    from probeft import probing

    run = probing.run_probing("tiny-bert-L2", ["sentence_length"], plain_built, poolings=["mean"], device="cpu",
                              progress=False, control=True, mdl=True, cache_dir=tmp_path / "features")
    rows = run.rows
    assert set(rows["metric"]) >= {"accuracy", "control_accuracy", "selectivity", "codelength_kbits", "compression"}
    test = rows[(rows["metric"] == "accuracy") & (rows["split"] == "test")]
    assert len(test) == 3 and test["value"].between(0, 1).all() and test["ci_low"].notna().all()
    # Six balanced classes: a probe that learns the lengths beats 1/6 chance on test.
    assert test["value"].max() > 0.4
    uniform = rows.loc[rows["metric"] == "uniform_kbits", "value"].iloc[0]
    assert uniform == pytest.approx(240 * math.log2(6) / 1000)
