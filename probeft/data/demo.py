"""A small offline data directory generated from a template grammar (no line is copied from real data).

:func:`write_demo_data` writes the same layout as the real data (see :mod:`probeft.data`)::

    senteval/{bigram_shift,coordination_inversion,odd_man_out}.txt   SentEval format, tr/va/te ~ 80/10/10
    senteval/built_bigram_shift.{txt,changes.jsonl}   built by ``probeft make-probing-data`` (below)
    glue/CoLA/{train,dev}.tsv    no header: source, label, mark, sentence
    glue/SST-2/{train,dev}.tsv   header "sentence<TAB>label", lower-cased, tokenised
    glue/RTE/{train,dev}.tsv     header "index<TAB>sentence1<TAB>sentence2<TAB>label"
    squad/{train-v1.1.json,dev-v1.1.json}   official v1.1 JSON layout
    wikitext-2/wiki.test.raw     " = Title = " headings, paragraphs, blank lines written as " "
    wikitext-2/wiki.valid.tokens the same kind of text from its own stream, years after 1950 written as
                                 "<unk>" (the tokenised release's marker of a rare word): a masked-LM head's
                                 fitting text (probeft.diagnostics.mlm_head)

The tasks are made learnable by construction:

* ``bigram_shift``: I = two adjacent words swapped, O = original.
* ``coordination_inversion``: sentences "<clause with a name> , and|but|or <second clause>"; in 70% the second
  clause's subject is the matching pronoun, else another name. I = the two clauses swapped (a pronoun then comes
  before its name), O = original. The 30% without a cue keep the task from being trivial (ceiling ~85%).
* ``odd_man_out``: words come in topics (food, reading, music, ...) and an original sentence keeps verb, object
  and place in one topic; C = the verb or the noun replaced by one of another topic, O = original.
* ``built_bigram_shift``: not generated but BUILT, by the builder of ``probeft make-probing-data``
  (:func:`probeft.data.probing_builders.build_probing_data`, task bigram_shift, the same seed and split sizes)
  from a generated wiki-like corpus of ``4 * n_probing`` lines (the generator of ``wiki.test.raw``, its own
  stream), with the builder's ``.changes.jsonl`` sidecar; so the demo grid probes one task made the way a
  task from your own text is made (book page "Probing data from your own text"). Written when every split
  gets at least two lines.
* CoLA-like: 1 = grammatical, 0 = word order broken or subject-verb agreement broken.
* SST-2-like: 1 = positive, 0 = negative sentiment words (with some "x , but y" sentences where y decides).
* RTE-like: entailment when the hypothesis restates a fact of the premise, not_entailment when it changes the
  object, the place or the person.
* SQuAD-like: contexts of 2-4 facts, who/what/where questions whose answers are spans.

Labels are balanced (exactly half per class and split where the size is even). Output is deterministic for a seed
(each file has its own ``random.Random`` stream) and rewriting is idempotent (files are replaced atomically).

Generated data never writes over real data: :func:`write_demo_data` writes only into a folder that is
missing, empty, or marked as its own by :data:`DEMO_MARKER` (written before the data files, so an
interrupted write can be redone); any other folder is refused before a byte is written.

This module stays whole (~530 lines) because it is one template grammar: every generator draws from the same
word lists, which a test checks against the tiny tokenizers' vocabulary, and splitting it would scatter them.
It imports only :mod:`probeft.core.files`, the probing label names of :mod:`probeft.core.names` and, for the built
task, :mod:`probeft.data.probing_builders`.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from probeft.core.files import atomic_write_text
from probeft.core.names import PROBING_LABELS

__all__ = ["BUILT_TASK", "DEMO_MARKER", "DEMO_VOCABULARY", "NAMES", "TOPICS", "is_demo_data", "write_demo_data"]

# In every folder write_demo_data fills; the only folders it will write into again.
DEMO_MARKER = ".probeft-demo-data.json"
BUILT_TASK = "built_bigram_shift"  # the task built by make-probing-data's builder from generated text

# (name, subject pronoun)
NAMES: tuple[tuple[str, str], ...] = (
    ("John", "he"), ("Mary", "she"), ("Peter", "he"), ("Anna", "she"), ("David", "he"), ("Sarah", "she"),
    ("Tom", "he"), ("Lisa", "she"), ("Paul", "he"), ("Emma", "she"), ("Mark", "he"), ("Laura", "she"),
    ("James", "he"), ("Kate", "she"), ("George", "he"), ("Alice", "she"),
)  # fmt: skip


@dataclass(frozen=True)
class Topic:
    """Words that go together: verbs as (past, base, 3rd person present), nouns as (singular, plural), places."""

    verbs: tuple[tuple[str, str, str], ...]
    nouns: tuple[tuple[str, str], ...]
    places: tuple[str, ...]


def _topic(verbs: str, nouns: str, places: str) -> Topic:
    """Topic from compact strings: ``"ate/eat/eats ..."``, ``"apple/apples ..."``, ``"kitchen ..."``."""
    return Topic(
        tuple(tuple(forms.split("/")) for forms in verbs.split()),  # type: ignore[misc]
        tuple(tuple(forms.split("/")) for forms in nouns.split()),  # type: ignore[misc]
        tuple(places.split()),
    )


TOPICS: dict[str, Topic] = {
    "food": _topic(
        "ate/eat/eats cooked/cook/cooks baked/bake/bakes tasted/taste/tastes",
        "apple/apples cake/cakes bread/breads soup/soups pie/pies egg/eggs",
        "kitchen cafe restaurant",
    ),
    "reading": _topic(
        "read/read/reads wrote/write/writes printed/print/prints signed/sign/signs",
        "book/books letter/letters poem/poems report/reports note/notes story/stories",
        "library office school",
    ),
    "music": _topic(
        "played/play/plays sang/sing/sings heard/hear/hears recorded/record/records",
        "song/songs tune/tunes melody/melodies anthem/anthems ballad/ballads hymn/hymns",
        "studio church theatre",
    ),
    "vehicles": _topic(
        "drove/drive/drives parked/park/parks washed/wash/washes repaired/repair/repairs",
        "car/cars truck/trucks bus/buses bike/bikes van/vans taxi/taxis",
        "garage street station",
    ),
    "animals": _topic(
        "fed/feed/feeds walked/walk/walks brushed/brush/brushes chased/chase/chases",
        "dog/dogs cat/cats horse/horses rabbit/rabbits puppy/puppies goat/goats",
        "farm park yard",
    ),
    "clothes": _topic(
        "wore/wear/wears ironed/iron/irons folded/fold/folds sewed/sew/sews",
        "shirt/shirts dress/dresses coat/coats hat/hats scarf/scarves jacket/jackets",
        "shop bedroom market",
    ),
}

ADJECTIVES = tuple(
    "old new big small red blue green yellow white black warm cold bright dark heavy clean little large".split()
)
# (singular, plural) people nouns: subjects for agreement sentences.
PEOPLE = tuple(
    tuple(pair.split("/"))
    for pair in "man/men woman/women boy/boys girl/girls teacher/teachers student/students doctor/doctors "
    "farmer/farmers friend/friends".split()
)
# Present-tense verbs (3rd singular, plural) whose object can be any noun.
GENERAL_VERBS = tuple(
    tuple(pair.split("/"))
    for pair in "likes/like wants/want needs/need sees/see finds/find loves/love hates/hate buys/buy sells/sell "
    "keeps/keep".split()
)
POSITIVE_WORDS = tuple(
    "good great wonderful excellent brilliant charming delightful funny beautiful moving enjoyable fresh clever "
    "touching smart lovely superb".split()
)
NEGATIVE_WORDS = tuple(
    "bad awful boring dull terrible weak poor stupid tedious flat ugly messy lifeless predictable bland painful "
    "clumsy".split()
)
FILM_NOUNS = tuple("film movie story plot acting script cast performance ending dialogue music comedy drama".split())
INTENSIFIERS = ("very", "really", "quite", "truly", "remarkably", "utterly", "rather", "simply")
TOWNS = ("Oakford", "Riverton", "Millbrook", "Ashby", "Kingsley", "Westwood")
WIKI_BUILDINGS = ("museum", "church", "library", "station", "bridge", "castle", "tower", "school", "market", "hall")
CONJUNCTIONS = ("and", "but", "or")
_COORDINATION_PRONOUN_RATE = 0.7



def _vocabulary() -> tuple[str, ...]:
    words: set[str] = {n.lower() for n, _ in NAMES} | {p for _, p in NAMES} | {t.lower() for t in TOWNS}
    for topic in TOPICS.values():
        words |= {w for forms in topic.verbs for w in forms} | {w for forms in topic.nouns for w in forms}
        words |= set(topic.places)
    for group in (ADJECTIVES, POSITIVE_WORDS, NEGATIVE_WORDS, FILM_NOUNS, INTENSIFIERS, WIKI_BUILDINGS, CONJUNCTIONS):
        words |= set(group)
    words |= {w for pair in PEOPLE + GENERAL_VERBS for w in pair}
    return tuple(sorted(words))


# Every content word the grammar uses (lower-case); the tiny tokenizers of probeft.models know them as whole words.
DEMO_VOCABULARY: tuple[str, ...] = _vocabulary()


# ----------------------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------------------


def _capitalize_first(words: list[str]) -> list[str]:
    return [words[0][:1].upper() + words[0][1:]] + words[1:] if words else words


def _article(word: str) -> str:
    """The indefinite article for ``word``."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def _is_name(word: str) -> bool:
    return word in {n for n, _ in NAMES}


def _balanced_labels(rng: random.Random, n: int, classes: tuple) -> list:
    """``n`` labels, half of each class (the extra one, if n is odd, drawn at random), in random order."""
    labels = [classes[i % 2] for i in range(n - n % 2)]
    if n % 2:
        labels.append(rng.choice(classes))
    rng.shuffle(labels)
    return labels


def _split_sizes(n: int, fractions: tuple[float, ...]) -> list[int]:
    """Sizes of the parts of ``n`` items (the first part takes the rounding remainder; each part >= 1)."""
    rest = [max(1, round(n * f)) for f in fractions[1:]]
    if n - sum(rest) < 1:
        raise ValueError(f"n={n} is too small to split into {len(fractions)} non-empty parts")
    return [n - sum(rest)] + rest


def _rng(seed: int, name: str) -> random.Random:
    """An independent, reproducible stream per output file (str seeds are hashed with SHA-512, not hash())."""
    return random.Random(f"probeft-demo:{seed}:{name}")


# ----------------------------------------------------------------------------------------------------------
# Probing sentences
# ----------------------------------------------------------------------------------------------------------


def _topic_sentence(rng: random.Random) -> tuple[list[str], dict[str, int], str]:
    """A topic-coherent sentence as words, the positions of its verb and noun, and its topic."""
    topic_name = rng.choice(sorted(TOPICS))
    topic = TOPICS[topic_name]
    name, _ = rng.choice(NAMES)
    verb = rng.choice(topic.verbs)[0]
    noun = rng.choice(topic.nouns)[0]
    place = rng.choice(topic.places)
    adjective = rng.choice(ADJECTIVES)
    template = rng.randrange(4)
    if template == 0:
        words = [name, verb, "the", adjective, noun, "in", "the", place, "."]
    elif template == 1:
        words = ["yesterday", name, verb, _article(noun), noun, "at", "the", place, "."]
    elif template == 2:
        other, _ = rng.choice([n for n in NAMES if n[0] != name])
        words = [name, "and", other, verb, "the", adjective, noun, "near", "the", place, "."]
    else:
        person = rng.choice(PEOPLE)[0]
        words = ["the", adjective, person, verb, "the", noun, "in", "the", place, "."]
    return _capitalize_first(words), {"verb": words.index(verb), "noun": words.index(noun)}, topic_name


def _bigram_shift(rng: random.Random, inverted: bool) -> str:
    words, _, _ = _topic_sentence(rng)
    if inverted:
        # Swap two adjacent words (never the final period); pick a pair of different words.
        candidates = [i for i in range(len(words) - 2) if words[i].lower() != words[i + 1].lower()]
        i = rng.choice(candidates)
        words[i], words[i + 1] = words[i + 1], words[i]
        words = [w if _is_name(w) else w.lower() for w in words]
        words = _capitalize_first(words)
    return " ".join(words)


def _clause(rng: random.Random, subject: str) -> list[str]:
    topic = TOPICS[rng.choice(sorted(TOPICS))]
    words = [subject, rng.choice(topic.verbs)[0], "the", rng.choice(topic.nouns)[0]]
    if rng.random() < 0.5:
        words += ["in", "the", rng.choice(topic.places)]
    return words


def _coordination(rng: random.Random, inverted: bool) -> str:
    (name, pronoun), (other_name, _) = rng.sample(NAMES, 2)
    # Most second clauses refer back to the first subject with a pronoun (inverting puts the pronoun before its
    # name); the rest name a second person, which leaves no cue, so the task is learnable but not trivial.
    second_subject = pronoun if rng.random() < _COORDINATION_PRONOUN_RATE else other_name
    first, second = _clause(rng, name), _clause(rng, second_subject)
    if inverted:
        first, second = second, first
    conjunction = rng.choice(CONJUNCTIONS)
    words = first + [",", conjunction] + second + ["."]
    words = [w if _is_name(w) else w.lower() for w in words]
    return " ".join(_capitalize_first(words))


def _odd_man_out(rng: random.Random, replaced: bool) -> str:
    words, positions, topic_name = _topic_sentence(rng)
    if replaced:
        # Replace the verb or the noun by the same word class from another topic (a semantic misfit).
        other = TOPICS[rng.choice([t for t in sorted(TOPICS) if t != topic_name])]
        if rng.random() < 0.5:
            words[positions["verb"]] = rng.choice(other.verbs)[0]
        else:
            words[positions["noun"]] = rng.choice(other.nouns)[0]
    return " ".join(words)


_PROBING_GENERATORS = {
    "bigram_shift": _bigram_shift,
    "coordination_inversion": _coordination,
    "odd_man_out": _odd_man_out,
}


def _probing_file(task: str, n: int, seed: int) -> str:
    rng = _rng(seed, task)
    original, changed = PROBING_LABELS[task]
    lines: list[str] = []
    for code, size in zip(("tr", "va", "te"), _split_sizes(n, (0.8, 0.1, 0.1))):
        for label in _balanced_labels(rng, size, (original, changed)):
            lines.append(f"{code}\t{label}\t{_PROBING_GENERATORS[task](rng, label == changed)}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------
# GLUE-like tasks
# ----------------------------------------------------------------------------------------------------------


def _cola_sentence(rng: random.Random, grammatical: bool) -> str:
    topic = TOPICS[rng.choice(sorted(TOPICS))]
    name, _ = rng.choice(NAMES)
    noun_sg, noun_pl = rng.choice(topic.nouns)
    adjective = rng.choice(ADJECTIVES)
    person_sg, person_pl = rng.choice(PEOPLE)
    verb_sg, verb_pl = rng.choice(GENERAL_VERBS)
    plural_subject = rng.random() < 0.5
    subject = ["the", person_pl if plural_subject else person_sg]
    if grammatical:
        words = rng.choice([
            [name, rng.choice(topic.verbs)[0], "the", adjective, noun_sg],
            subject + [verb_pl if plural_subject else verb_sg, "the", adjective, noun_sg],
            subject + [verb_pl if plural_subject else verb_sg, noun_pl],
            [name, verb_sg, "the", noun_pl, "in", "the", rng.choice(topic.places)],
        ])
    else:
        kind = rng.randrange(3)
        if kind == 0:  # agreement broken
            words = subject + [verb_sg if plural_subject else verb_pl, "the", adjective, noun_sg]
        elif kind == 1:  # verb moved to the end
            words = [name, "the", adjective, noun_sg, rng.choice(topic.verbs)[0]]
        else:  # determiner after its noun
            words = [name, rng.choice(topic.verbs)[0], adjective, noun_sg, "the"]
    words = _capitalize_first(words)
    return " ".join(words) + "."  # CoLA style: the period is attached to the last word


def _cola_file(rng: random.Random, n: int) -> str:
    lines = []
    for label in _balanced_labels(rng, n, (1, 0)):
        mark = "" if label else "*"
        lines.append(f"demo{rng.randrange(1, 4)}\t{label}\t{mark}\t{_cola_sentence(rng, bool(label))}")
    return "\n".join(lines) + "\n"


def _sst_sentence(rng: random.Random, positive: bool) -> str:
    good, bad = (POSITIVE_WORDS, NEGATIVE_WORDS) if positive else (NEGATIVE_WORDS, POSITIVE_WORDS)
    noun, noun2 = rng.sample(FILM_NOUNS, 2)
    template = rng.randrange(5)
    if template == 0:
        words = ["the", noun, "is", rng.choice(INTENSIFIERS), rng.choice(good), "."]
    elif template == 1:
        first = rng.choice(good)
        words = [_article(first), first, "and", rng.choice(good), noun]
    elif template == 2:
        second = rng.choice(good)
        words = [rng.choice(INTENSIFIERS), rng.choice(good), ",", "with", _article(second), second, noun]
    elif template == 3:
        adjective = rng.choice(good)
        words = ["it", "'s", _article(adjective), adjective, noun, "about", rng.choice(PEOPLE)[1]]
    else:  # the clause after "but" decides
        words = ["the", noun, "is", rng.choice(bad), ",", "but", "the", noun2, "is", rng.choice(good), "."]
    return " ".join(words) + " "  # SST-2 style: trailing space before the tab


def _sst_file(rng: random.Random, n: int) -> str:
    lines = ["sentence\tlabel"]
    lines += [f"{_sst_sentence(rng, bool(label))}\t{label}" for label in _balanced_labels(rng, n, (1, 0))]
    return "\n".join(lines) + "\n"


def _fact(rng: random.Random, name: str) -> dict[str, str]:
    topic = TOPICS[rng.choice(sorted(TOPICS))]
    past, base, _ = rng.choice(topic.verbs)
    return {
        "name": name, "past": past, "base": base, "noun": rng.choice(topic.nouns)[0],
        "adjective": rng.choice(ADJECTIVES), "place": rng.choice(topic.places), "topic": topic,
    }  # fmt: skip


def _rte_pair(rng: random.Random, entailed: bool) -> tuple[str, str]:
    (name1, _), (name2, _) = rng.sample(NAMES, 2)
    fact1, fact2 = _fact(rng, name1), _fact(rng, name2)
    premise = (
        f"{name1} {fact1['past']} the {fact1['adjective']} {fact1['noun']} in the {fact1['place']}, "
        f"and {name2} {fact2['past']} the {fact2['noun']}."
    )
    fact = rng.choice([fact1, fact2])
    kind = rng.randrange(3)
    if entailed:
        hypothesis = [
            f"{fact['name']} {fact['past']} the {fact['noun']}.",
            f"{name1} was in the {fact1['place']}.",
            f"{name1} {fact1['past']} {_article(fact1['noun'])} {fact1['noun']}.",
        ][kind]
    else:
        other_noun = rng.choice([n for n, _ in fact["topic"].nouns if n != fact["noun"]])
        other_place = rng.choice([p for t in TOPICS.values() for p in t.places if p != fact1["place"]])
        hypothesis = [
            f"{fact['name']} {fact['past']} the {other_noun}.",
            f"{name1} was in the {other_place}.",
            f"{name2} {fact1['past']} the {fact1['noun']}." if fact2["noun"] != fact1["noun"]
            else f"{name1} {fact1['past']} the {other_noun}.",
        ][kind]  # fmt: skip
    return premise, hypothesis


def _rte_file(rng: random.Random, n: int) -> str:
    lines = ["index\tsentence1\tsentence2\tlabel"]
    for index, label in enumerate(_balanced_labels(rng, n, ("entailment", "not_entailment"))):
        premise, hypothesis = _rte_pair(rng, label == "entailment")
        lines.append(f"{index}\t{premise}\t{hypothesis}\t{label}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------
# SQuAD-like and WikiText-like
# ----------------------------------------------------------------------------------------------------------


def _squad_paragraph(rng: random.Random, first_id: int, seed: int, with_variants: bool) -> dict:
    """A context of 2-4 facts about different people, with one question per fact."""
    names = rng.sample(NAMES, rng.randint(2, 4))
    context = ""
    qas = []
    used_nouns: set[str] = set()
    for name, _ in names:
        fact = _fact(rng, name)
        while fact["noun"] in used_nouns:  # keep answers unique within the context
            fact = _fact(rng, name)
        used_nouns.add(fact["noun"])
        sentence = f"{name} {fact['past']} the {fact['adjective']} {fact['noun']} in the {fact['place']}."
        start = len(context) + (1 if context else 0)
        context = f"{context} {sentence}" if context else sentence
        obj = f"the {fact['adjective']} {fact['noun']}"
        place = f"the {fact['place']}"
        kind = rng.randrange(3)
        if kind == 0:
            question, answer, offset = f"Who {fact['past']} {obj}?", name, 0
        elif kind == 1:
            question, answer, offset = f"What did {name} {fact['base']}?", obj, sentence.index(obj)
        else:
            question = f"Where did {name} {fact['base']} the {fact['noun']}?"
            answer, offset = place, sentence.index(place)
        answers = [{"answer_start": start + offset, "text": answer}]
        if with_variants and answer.startswith("the "):  # dev sets have several reference answers
            answers.append({"answer_start": start + offset + 4, "text": answer[4:]})
        qas.append({"answers": answers, "question": question, "id": f"{seed:08x}{first_id + len(qas):016x}"})
    return {"context": context, "qas": qas}


def _squad_file(rng: random.Random, n_questions: int, seed: int, id_offset: int, with_variants: bool) -> str:
    articles: list[dict] = []
    count = 0
    while count < n_questions:
        title = f"{rng.choice(TOWNS)}_{len(articles) + 1}"
        paragraphs = []
        for _ in range(rng.randint(2, 4)):
            if count >= n_questions:
                break
            paragraph = _squad_paragraph(rng, id_offset + count, seed, with_variants)
            paragraph["qas"] = paragraph["qas"][: n_questions - count]
            count += len(paragraph["qas"])
            paragraphs.append(paragraph)
        articles.append({"title": title, "paragraphs": paragraphs})
    return json.dumps({"data": articles, "version": "1.1"})


def _wiki_sentence(rng: random.Random, town: str) -> str:
    building = rng.choice(WIKI_BUILDINGS)
    year = rng.randint(1100, 1990)
    template = rng.randrange(5)
    if template == 0:
        return f"The {building} in {town} was built in {year} ."
    if template == 1:
        direction = rng.choice(("north", "south", "east", "west"))
        return f"It is one of the {rng.choice(ADJECTIVES)} buildings in the {direction} of the county ."
    if template == 2:
        return f"In {year} the town had a population of {rng.randint(1, 9)} @,@ {rng.randint(100, 999)} people ."
    if template == 3:
        name, pronoun = rng.choice(NAMES)
        opened, lived = rng.choice(("opened", "visited", "closed")), rng.choice(("lived", "worked", "stayed"))
        return f"{name} {opened} the {building} in {year} , and {pronoun} {lived} in {town} ."
    return f"The {rng.choice(ADJECTIVES)} {building} is known for its {rng.choice(('tower', 'hall', 'bridge'))} ."


def _wikitext_file(rng: random.Random, n_lines: int) -> str:
    lines: list[str] = []
    while len(lines) < n_lines:
        town = rng.choice(TOWNS)
        lines += [" ", f" = {town} = ", " "]
        for section in ("History", "Buildings", "Population")[: rng.randint(1, 3)]:
            lines += [f" = = {section} = = ", " "]
            for _ in range(rng.randint(1, 2)):
                paragraph = " ".join(_wiki_sentence(rng, town) for _ in range(rng.randint(2, 6)))
                lines += [f" {paragraph} ", " "]
    return "\n".join(lines[:n_lines]) + "\n"


def _wikitext_tokens_file(rng: random.Random, n_lines: int) -> str:
    """Wiki-like lines as the tokenised release has them: some rare words (here years after 1950) as ``<unk>``."""
    text = _wikitext_file(rng, n_lines)
    return re.sub(r"\b19[5-9][0-9]\b", "<unk>", text)


def _built_probing_files(seed: int, n_probing: int) -> dict[str, str]:
    """:data:`BUILT_TASK` and its sidecar, built by make-probing-data's builder from a generated corpus.

    Returns:
        relative path -> text; empty when a split would get fewer than two lines (balanced 2 classes).
    """
    from probeft.data.probing_builders import SIDECAR_SUFFIX, BuildSettings, build_probing_data

    sizes = tuple(2 * (size // 2) for size in _split_sizes(n_probing, (0.8, 0.1, 0.1)))
    if min(sizes) < 2:
        return {}
    corpus_text = _wikitext_file(_rng(seed, "built-corpus"), 4 * n_probing)
    with tempfile.TemporaryDirectory(prefix="probeft-demo-build-") as scratch:
        corpus, out_dir = Path(scratch) / "corpus.txt", Path(scratch) / "built"
        corpus.write_text(corpus_text, encoding="utf-8")
        build_probing_data(corpus, out_dir, ["bigram_shift"], BuildSettings(sizes=sizes, seed=seed))
        return {f"senteval/{BUILT_TASK}.txt": (out_dir / "bigram_shift.txt").read_text(encoding="utf-8"),
                f"senteval/{BUILT_TASK}{SIDECAR_SUFFIX}":
                    (out_dir / f"bigram_shift{SIDECAR_SUFFIX}").read_text(encoding="utf-8")}


# ----------------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------------


def write_demo_data(
    out_dir: str | Path,
    *,
    seed: int = 0,
    n_probing: int = 1200,
    n_glue: int = 600,
    n_squad: int = 300,
    n_wiki_lines: int = 400,
) -> Path:
    """Write the demo data directory (same layout as the real data; see the module docstring).

    Args:
        out_dir: target directory: missing, empty, or earlier demo data (its files are replaced).
        seed: seed of the generator (same seed -> byte-identical files).
        n_probing: lines per probing task, split tr/va/te 80/10/10.
        n_glue: examples per GLUE task, split train/dev 80/20.
        n_squad: questions, split train/dev 80/20.
        n_wiki_lines: lines of ``wiki.test.raw`` and of ``wiki.valid.tokens``.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        FileExistsError: ``out_dir`` holds files but no :data:`DEMO_MARKER` (it may be real data).
        NotADirectoryError: ``out_dir`` is a file.
    """
    for name, value, minimum in (("n_probing", n_probing, 6), ("n_glue", n_glue, 4), ("n_squad", n_squad, 2),
                                 ("n_wiki_lines", n_wiki_lines, 1)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    out_dir = Path(out_dir)
    contents: dict[str, str] = {}  # relative path -> text, in the order written (wiki.test.raw last)
    for task in PROBING_LABELS:
        contents[f"senteval/{task}.txt"] = _probing_file(task, n_probing, seed)
    contents |= _built_probing_files(seed, n_probing)
    n_train, n_dev = _split_sizes(n_glue, (0.8, 0.2))
    for directory, make in (("CoLA", _cola_file), ("SST-2", _sst_file), ("RTE", _rte_file)):
        for split, size in (("train", n_train), ("dev", n_dev)):
            contents[f"glue/{directory}/{split}.tsv"] = make(_rng(seed, f"{directory}/{split}"), size)
    squad_train, squad_dev = _split_sizes(n_squad, (0.8, 0.2))
    contents["squad/train-v1.1.json"] = _squad_file(
        _rng(seed, "squad/train"), squad_train, seed, 0, with_variants=False)
    contents["squad/dev-v1.1.json"] = _squad_file(
        _rng(seed, "squad/dev"), squad_dev, seed, squad_train, with_variants=True)
    contents["wikitext-2/wiki.valid.tokens"] = _wikitext_tokens_file(_rng(seed, "wikitext-valid"), n_wiki_lines)
    contents["wikitext-2/wiki.test.raw"] = _wikitext_file(_rng(seed, "wikitext"), n_wiki_lines)
    _claim_folder(out_dir, contents, {"generator": __name__, "seed": seed, "n_probing": n_probing,
                                      "n_glue": n_glue, "n_squad": n_squad, "n_wiki_lines": n_wiki_lines})
    for relative, text in contents.items():
        atomic_write_text(out_dir / relative, text)
    return out_dir


def is_demo_data(folder: str | Path) -> bool:
    """Whether ``folder`` was written by :func:`write_demo_data` (it holds :data:`DEMO_MARKER`)."""
    return (Path(folder) / DEMO_MARKER).is_file()


def _claim_folder(out_dir: Path, contents: dict[str, str], record: dict[str, object]) -> None:
    """Make ``out_dir`` the generator's own (mark it) or refuse, before any data file is written.

    A folder without the marker is taken only when empty, or when every file in it is byte-equal to
    what this call writes (demo data of a probeft that wrote no marker yet): real data never is.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"demo data: {out_dir} is a file, not a folder")
    if out_dir.is_dir() and not is_demo_data(out_dir):
        expected = {relative: text.encode("utf-8") for relative, text in contents.items()}
        foreign = [path for path in sorted(out_dir.rglob("*")) if path.is_file()
                   and path.read_bytes() != expected.get(path.relative_to(out_dir).as_posix())]
        if foreign:
            raise FileExistsError(
                f"refusing to write generated demo data into {out_dir}: it holds files the demo did not write "
                f"(e.g. {foreign[0].relative_to(out_dir)}) and no {DEMO_MARKER}, so it may be real data. Give the "
                "demo an empty or new folder, or use a config with demo_data: false (e.g. configs/minilm.yaml) "
                "to run on the data there."
            )
    atomic_write_text(out_dir / DEMO_MARKER, json.dumps(record, indent=2, sort_keys=True) + "\n")

