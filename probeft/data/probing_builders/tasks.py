"""The ten SentEval probing tasks built from a corpus, after Conneau et al. (2018) and SentEval's
``data/probing/README.md``.

Each builder takes the corpus's sentences (:class:`Corpus`), the settings and a seeded generator, and returns
the task's :class:`~probeft.data.probing_builders.splits.Line` list: balanced classes per split, no sentence in two
splits. Where SentEval used a constituency parse, spaCy gives a dependency parse, so two tasks are approximations
(see :func:`tree_depth` and :func:`top_constituents`).
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from probeft.core.names import SENTEVAL_LABELS
from probeft.data.probing_builders.corpus import Sentence, is_punctuation
from probeft.data.probing_builders.splits import (
    SPLITS,
    Line,
    ProbingBuildError,
    allocate_balanced,
    build_pairs,
    random_pairs,
)

__all__ = [
    "BUILDERS",
    "PARSER_FREE_TASKS",
    "BuildSettings",
    "Corpus",
    "TaskBuilder",
    "bigram_shift",
    "coordination_inversion",
    "length_bin",
    "obj_number",
    "odd_man_out",
    "past_present",
    "sentence_length",
    "subj_number",
    "top_constituents",
    "top_sequence",
    "tree_depth",
    "word_content",
]

_NOUN_TAGS = ("NN", "NNS")
_VERB_TAGS = ("VB", "VBD", "VBG", "VBN", "VBP", "VBZ")
_QUOTES = {'"', "``", "''", "“", "”"}
# Sentence-initial words lower-cased when coordination_inversion moves them inside: function words and verbs
# (a capitalised noun or adjective may be a name, which keeps its capital).
_LOWER_WHEN_INSIDE = {"DT", "PDT", "PRP", "PRP$", "EX", "IN", "RB", "RBR", "RBS", "WDT", "WP", "WP$", "WRB", "CC", "TO",
                      "MD", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ"}
_LENGTH_BINS = ((5, 8), (9, 12), (13, 16), (17, 20), (21, 25), (26, 28))  # SentEval's sentence_length bins


@dataclass(frozen=True)
class BuildSettings:
    """How the tasks are built (defaults: SentEval's).

    Attributes:
        sizes: lines per split (train, dev, test); SentEval has 100k / 10k / 10k.
        seed: seeds every random choice (each task draws from its own generator, so a task's file does not
            depend on which other tasks are built with it).
        spacy_model: the spaCy pipeline of the tasks that need tags or a parse.
        odd_man_out_band: corpus frequency range of odd_man_out's target and replacement words.
        target_band: corpus frequency range of the target words of past_present, subj_number and obj_number.
        bigram_tolerance: odd_man_out's bigram-plausibility filter: the replacement's bigrams with the preceding and
            following tokens must have counts within this factor of the original's on a natural-log scale
            (``|log(1 + c_new) - log(1 + c_old)|``, 1.0 = within a factor of about e).
        word_content_words: how many target words word_content has (its classes).
        word_content_rank_start: word_content's targets start after this many most frequent words.
        top_constituents_classes: top_constituents has this many most frequent sequences plus ``OTHER``.
    """

    sizes: tuple[int, int, int] = (100_000, 10_000, 10_000)
    seed: int = 0
    spacy_model: str = "en_core_web_sm"
    odd_man_out_band: tuple[int, int] = (40, 400)
    target_band: tuple[int, int] = (100, 5000)
    bigram_tolerance: float = 1.0
    word_content_words: int = 1000
    word_content_rank_start: int = 2000
    top_constituents_classes: int = 19


@dataclass
class Corpus:
    """The sentences the builders draw from, deduplicated by text.

    Attributes:
        plain: sentences tokenised without spaCy that pass the filter (parser-free tasks).
        plain_all: every plain sentence (corpus counts).
        parsed: spaCy's sentences that pass the filter, tagged and parsed (None when no task needs them).
        parsed_all: every spaCy sentence, tagged (corpus counts).
    """

    plain: list[Sentence] = field(default_factory=list)
    plain_all: list[Sentence] = field(default_factory=list)
    parsed: list[Sentence] | None = None
    parsed_all: list[Sentence] | None = None

    def tagged(self, task: str) -> list[Sentence]:
        """The parsed sentences (ProbingBuildError when the corpus was read without spaCy)."""
        if self.parsed is None:
            raise ProbingBuildError(f"task {task} needs the spaCy reading of the corpus")
        return self.parsed


TaskBuilder = Callable[[Corpus, BuildSettings, random.Random], tuple[list[Line], list[str]]]


def _lower_counts(sentences: Sequence[Sentence]) -> Counter[str]:
    return Counter(token.lower() for sentence in sentences for token in sentence.tokens)


def _sorted_by_rank(counts: Counter[str]) -> list[str]:
    """Words by descending count, ties by the word (deterministic)."""
    return sorted(counts, key=lambda word: (-counts[word], word))


# --- parser-free tasks ---------------------------------------------------------------------------------------------

def _shift_positions(sentence: Sentence) -> list[int]:
    """Positions ``i`` where tokens ``i`` and ``i + 1`` may be swapped: not the first token, no punctuation, and
    the two differ (a swap must change the sentence)."""
    tokens = sentence.tokens
    return [i for i in range(1, len(tokens) - 1)
            if not is_punctuation(tokens[i]) and not is_punctuation(tokens[i + 1])
            and tokens[i].lower() != tokens[i + 1].lower()]


def _swap(sentence: Sentence, split: str, rng: random.Random) -> tuple[tuple[str, ...], tuple[dict[str, Any], ...]]:
    del split  # any split: a swap needs no vocabulary
    i = rng.choice(_shift_positions(sentence))
    tokens = list(sentence.tokens)
    tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
    edit = {"op": "swap", "positions": [i, i + 1], "original": list(sentence.tokens[i:i + 2]),
            "replacement": tokens[i:i + 2]}
    return tuple(tokens), (edit,)


def bigram_shift(corpus: Corpus, settings: BuildSettings, rng: random.Random) -> tuple[list[Line], list[str]]:
    """bigram_shift (BShift): two adjacent tokens swapped (``I``) or not (``O``).

    As SentEval: the pair never includes the first token or a punctuation mark, and sentences with double quotes
    are left out. Each eligible sentence is used once, either swapped or kept.
    """
    pool = [s for s in corpus.plain if not _QUOTES & set(s.tokens) and _shift_positions(s)]
    labels = SENTEVAL_LABELS["bigram_shift"]
    return build_pairs("bigram_shift", random_pairs(pool, rng), labels, settings.sizes, rng, _swap), list(labels)


def length_bin(n_tokens: int) -> str | None:
    """SentEval's sentence_length class of a sentence of ``n_tokens`` tokens (``"0"`` .. ``"5"``), or None."""
    return next((str(k) for k, (low, high) in enumerate(_LENGTH_BINS) if low <= n_tokens <= high), None)


def sentence_length(corpus: Corpus, settings: BuildSettings, rng: random.Random) -> tuple[list[Line], list[str]]:
    """sentence_length (SentLen): the number of tokens, in SentEval's six bins 5-8, 9-12, 13-16, 17-20, 21-25,
    26-28 (classes ``0``-``5``). Tokens include punctuation marks."""
    candidates = [(label, s.text, s) for s in corpus.plain if (label := length_bin(len(s.tokens))) is not None]
    labels = SENTEVAL_LABELS["sentence_length"]
    chosen = allocate_balanced("sentence_length", candidates, labels, settings.sizes, rng)
    lines = [Line(split, label, s.tokens, s, evidence={"tokens": len(s.tokens)})
             for split in SPLITS for label, s in chosen[split]]
    return lines, list(labels)


def word_content(corpus: Corpus, settings: BuildSettings, rng: random.Random) -> tuple[list[Line], list[str]]:
    """word_content (WC): which of the target words the sentence contains.

    As SentEval: the targets are the first ``word_content_words`` lower-cased words of at least 4 letters in the
    corpus vocabulary ranked by frequency, from rank ``word_content_rank_start + 1`` on; a sentence qualifies when it
    contains exactly one target, exactly once. The label is the target word.
    """
    counts = _lower_counts(corpus.plain_all)
    ranked = _sorted_by_rank(counts)[settings.word_content_rank_start:]
    targets = [word for word in ranked if len(word) >= 4 and word.isalpha()][: settings.word_content_words]
    if len(targets) < settings.word_content_words:
        raise ProbingBuildError(
            f"task word_content: the corpus has {len(targets):,} words of 4+ letters after rank "
            f"{settings.word_content_rank_start:,}; {settings.word_content_words:,} target words are needed "
            "(lower --word-content-words or --word-content-rank-start)")
    target_set = set(targets)
    candidates = []
    for s in corpus.plain:
        found = [(i, token.lower()) for i, token in enumerate(s.tokens) if token.lower() in target_set]
        if len(found) == 1:
            position, word = found[0]
            candidates.append((word, s.text, (s, position)))
    chosen = allocate_balanced("word_content", candidates, targets, settings.sizes, rng)
    lines = [Line(split, label, s.tokens, s, evidence={"word": label, "position": position})
             for split in SPLITS for label, (s, position) in chosen[split]]
    return lines, targets


# --- tasks that need tags or a parse -------------------------------------------------------------------------------

def _depths(sentence: Sentence) -> list[int]:
    """Each token's depth in the dependency tree (the root is 1)."""
    assert sentence.heads is not None
    depths = [0] * len(sentence.tokens)
    for i in range(len(depths)):
        node, steps = i, 1
        while sentence.heads[node] != node and steps <= len(depths):
            node, steps = sentence.heads[node], steps + 1
        depths[i] = steps
    return depths


def tree_depth(corpus: Corpus, settings: BuildSettings, rng: random.Random) -> tuple[list[Line], list[str]]:
    """tree_depth (TreeDepth): the depth of the sentence's syntactic tree.

    Differs from SentEval: SentEval took the maximum depth of the constituency tree (classes 5-12) and sampled
    sentences to decorrelate depth from length. spaCy gives a dependency tree, whose depth (tokens on the longest
    root-to-leaf path, the root counting 1) is smaller for the same sentence; no decorrelation is done. The classes
    are the depths frequent enough for balanced splits: the rarest depth is dropped until every remaining one fills
    its share of the sizes. A depth's file label is the number itself, so the label set depends on the corpus.
    """
    sentences = corpus.tagged("tree_depth")
    depth_of = [(str(max(_depths(s))), s) for s in sentences]
    counts = Counter(depth for depth, _ in depth_of)
    classes = sorted(counts, key=int)
    total = sum(settings.sizes)
    while len(classes) >= 2 and min(counts[c] for c in classes) < total // len(classes):
        classes.remove(min(classes, key=lambda c: (counts[c], int(c))))
    if len(classes) < 2:
        raise ProbingBuildError(
            f"task tree_depth: no two tree depths have {total // 2:,} sentences each for balanced splits of "
            f"{'/'.join(map(str, settings.sizes))} (found {dict(sorted(counts.items(), key=lambda kv: int(kv[0])))})"
            "; use a larger corpus or smaller --sizes")
    candidates = [(depth, s.text, s) for depth, s in depth_of if depth in classes]
    chosen = allocate_balanced("tree_depth", candidates, classes, settings.sizes, rng)
    lines = [Line(split, label, s.tokens, s, evidence={"depth": int(label), "kind": "dependency"})
             for split in SPLITS for label, s in chosen[split]]
    return lines, classes


def _subtree(sentence: Sentence, head: int) -> list[int]:
    """The positions of ``head`` and everything under it."""
    assert sentence.heads is not None
    inside, frontier = {head}, [head]
    while frontier:
        node = frontier.pop()
        for child in sentence.children(node):
            if child not in inside:
                inside.add(child)
                frontier.append(child)
    return sorted(inside)


def _phrase(sentence: Sentence, child: int) -> str:
    """A Penn Treebank-like phrase label for the subtree of a dependent of the root."""
    assert sentence.tags is not None and sentence.deps is not None
    tag, dep = sentence.tags[child], sentence.deps[child]
    first = _subtree(sentence, child)[0]
    if sentence.tags[first] in ("WP", "WDT", "WP$"):
        return "WHNP"
    if sentence.tags[first] == "WRB" and dep in ("advmod", "npadvmod"):
        return "WHADVP"
    if dep == "cc":
        return "CC"
    if dep in ("prep", "agent"):
        return "PP"
    if dep == "advcl":
        return "SBAR" if sentence.deps[first] == "mark" or sentence.tags[first] in ("IN", "WRB") else "S"
    if dep in ("ccomp", "csubj", "csubjpass", "xcomp", "parataxis"):
        return "S"
    if dep == "mark" or tag == "IN":
        return "IN"
    if tag.startswith("RB"):
        return "ADVP"
    if tag.startswith(("NN", "PRP", "DT", "CD", "EX")):
        return "NP"
    if tag.startswith("JJ"):
        return "ADJP"
    if tag.startswith("VB") or tag == "MD":
        return "VP"
    return tag


def top_sequence(sentence: Sentence) -> str | None:
    """The top-constituent sequence of a parsed sentence (e.g. ``"NP_VP_."``), or None when SentEval would leave
    the sentence out (a sentence-internal punctuation mark among the top constituents).

    An approximation from the dependency parse (SentEval read the children of the constituency tree's top node):
    each dependent of the root left of it gives one phrase, labelled from its dependency relation and tag
    (nsubj -> NP, prep -> PP, advmod -> ADVP, cc -> CC, advcl -> SBAR or S, wh-words -> WHNP / WHADVP); a verbal
    root with its auxiliaries and right dependents is the ``VP`` (``SQ`` after a wh-phrase in a question); two
    coordinated clauses are ``S_CC_S``; a nominal root heads an ``NP`` followed by its right dependents' phrases;
    the final mark is ``.``.
    """
    assert sentence.tags is not None and sentence.deps is not None
    root, last = sentence.root, len(sentence.tokens) - 1
    children = sentence.children(root)
    if any(sentence.deps[c] == "punct" and c != last for c in children):
        return None
    verbal = sentence.tags[root].startswith("VB") or sentence.tags[root] == "MD"
    in_verb_phrase = ("aux", "auxpass", "neg", "prt")
    if verbal:
        conj = [c for c in children if sentence.deps[c] == "conj" and c > root and _has_subject(sentence, c)]
        if conj and any(sentence.deps[c] == "cc" for c in children) and _has_subject(sentence, root):
            return "S_CC_S_."
        left = [_phrase(sentence, c) for c in children if c < root and sentence.deps[c] not in in_verb_phrase]
        head = "SQ" if left and left[0].startswith("WH") and sentence.tokens[last] == "?" else "VP"
        if head == "SQ":
            return "_".join([left[0], "SQ", "."])
        return "_".join([*left, head, "."])
    right = [_phrase(sentence, c) for c in children if c > root and c != last]
    return "_".join(["NP" if sentence.tags[root].startswith(("NN", "PRP")) else _phrase(sentence, root),
                     *right, "."])


def top_constituents(corpus: Corpus, settings: BuildSettings, rng: random.Random) -> tuple[list[Line], list[str]]:
    """top_constituents (TopConst): the sequence of top constituents (``NP_VP_.``, ``PP_NP_VP_.``, ...).

    As SentEval: the classes are the ``top_constituents_classes`` most frequent sequences in the corpus plus
    ``OTHER`` for all the rest; sentences whose top sequence has internal punctuation are left out. Differs: the
    sequence is read off spaCy's dependency parse (:func:`top_sequence`), so the most frequent sequences, and how
    often each occurs, differ from SentEval's 19.
    """
    sequences = [(seq, s) for s in corpus.tagged("top_constituents") if (seq := top_sequence(s)) is not None]
    counts = Counter(seq for seq, _ in sequences)
    top = sorted(counts, key=lambda seq: (-counts[seq], seq))[: settings.top_constituents_classes]
    labels = sorted(top) + ["OTHER"]
    candidates = [(seq if seq in top else "OTHER", s.text, (s, seq)) for seq, s in sequences]
    chosen = allocate_balanced("top_constituents", candidates, labels, settings.sizes, rng)
    lines = [Line(split, label, s.tokens, s, evidence={"sequence": seq})
             for split in SPLITS for label, (s, seq) in chosen[split]]
    return lines, labels


def _has_subject(sentence: Sentence, head: int) -> bool:
    assert sentence.deps is not None
    return any(sentence.deps[c] in ("nsubj", "nsubjpass", "expl", "csubj") for c in sentence.children(head))


def _in_band(counts: Counter[str], word: str, band: tuple[int, int]) -> bool:
    return band[0] <= counts[word.lower()] <= band[1]


def _target_task(task: str, labels_of: Callable[[Sentence], tuple[int, str] | None], corpus: Corpus,
                 settings: BuildSettings, rng: random.Random) -> tuple[list[Line], list[str]]:
    """A task labelled from one target word; each word form stays in one split, as SentEval's."""
    sentences = corpus.tagged(task)
    counts = _lower_counts(corpus.parsed_all or sentences)
    candidates = []
    for s in sentences:
        found = labels_of(s)
        if found is not None and _in_band(counts, s.tokens[found[0]], settings.target_band):
            position, label = found
            candidates.append((label, s.tokens[position].lower(), (s, position)))
    labels = SENTEVAL_LABELS[task]
    chosen = allocate_balanced(task, candidates, labels, settings.sizes, rng)
    lines = [Line(split, label, s.tokens, s, evidence={"word": s.tokens[position], "position": position,
                                                       "tag": s.tags[position] if s.tags else None})
             for split in SPLITS for label, (s, position) in chosen[split]]
    return lines, list(labels)


def _tense(sentence: Sentence) -> tuple[int, str] | None:
    assert sentence.tags is not None
    root = sentence.root
    tag = sentence.tags[root]
    return (root, "PAST") if tag == "VBD" else (root, "PRES") if tag in ("VBP", "VBZ") else None


def past_present(corpus: Corpus, settings: BuildSettings, rng: random.Random) -> tuple[list[Line], list[str]]:
    """past_present (Tense): the main verb (the dependency root) is tagged VBD (``PAST``) or VBP / VBZ (``PRES``).

    As SentEval: only verbs whose corpus frequency lies in ``target_band`` (100-5,000), and each verb form occurs in
    one split only. A root that is not a finite verb (``will go``: VB under an auxiliary) leaves the sentence out.
    """
    return _target_task("past_present", _tense, corpus, settings, rng)


def _number_of(relations: tuple[str, ...]) -> Callable[[Sentence], tuple[int, str] | None]:
    def label(sentence: Sentence) -> tuple[int, str] | None:
        assert sentence.tags is not None and sentence.deps is not None
        for child in sentence.children(sentence.root):
            if sentence.deps[child] in relations and sentence.tags[child] in _NOUN_TAGS:
                return child, sentence.tags[child]
        return None
    return label


def subj_number(corpus: Corpus, settings: BuildSettings, rng: random.Random) -> tuple[list[Line], list[str]]:
    """subj_number (SubjNum): the subject of the main clause (nsubj / nsubjpass of the root) is a common noun
    tagged NN or NNS (the label). Band and one-split-per-noun-form as past_present."""
    return _target_task("subj_number", _number_of(("nsubj", "nsubjpass")), corpus, settings, rng)


def obj_number(corpus: Corpus, settings: BuildSettings, rng: random.Random) -> tuple[list[Line], list[str]]:
    """obj_number (ObjNum): the direct object of the main clause (dobj of the root) is tagged NN or NNS (the
    label). Band and one-split-per-noun-form as past_present."""
    return _target_task("obj_number", _number_of(("dobj",)), corpus, settings, rng)


@dataclass(frozen=True)
class _Vocabulary:
    """odd_man_out's replacement words: ``{split: {tag: [words]}}``, each word in one split only."""

    by_split: dict[str, dict[str, list[str]]]
    counts: Counter[str]
    bigrams: Counter[tuple[str, str]]


def _odd_man_out_vocabulary(corpus: Corpus, settings: BuildSettings, rng: random.Random) -> _Vocabulary:
    every = corpus.parsed_all or corpus.tagged("odd_man_out")
    counts: Counter[str] = Counter()
    tagged: Counter[tuple[str, str]] = Counter()
    bigrams: Counter[tuple[str, str]] = Counter()
    for s in every:
        lowered = [token.lower() for token in s.tokens]
        counts.update(lowered)
        bigrams.update(itertools.pairwise(lowered))
        tagged.update(zip(lowered, s.tags or ()))
    main_tag: dict[str, str] = {}
    for (word, tag), _ in sorted(tagged.items(), key=lambda kv: (-kv[1], kv[0])):
        main_tag.setdefault(word, tag)  # a word's most frequent tag
    words = sorted(w for w, tag in main_tag.items()
                   if tag in _NOUN_TAGS + _VERB_TAGS and w.isalpha() and _in_band(counts, w, settings.odd_man_out_band))
    rng.shuffle(words)
    total = sum(settings.sizes)
    by_split: dict[str, dict[str, list[str]]] = {split: {} for split in SPLITS}
    start = 0
    for split, size in zip(SPLITS, settings.sizes, strict=True):  # words shared out in proportion to the sizes
        end = len(words) if split == "test" else start + round(len(words) * size / total)
        for word in sorted(words[start:end]):
            by_split[split].setdefault(main_tag[word], []).append(word)
        start = end
    return _Vocabulary(by_split, counts, bigrams)


def _odd_positions(sentence: Sentence, counts: Counter[str], band: tuple[int, int]) -> list[int]:
    """Nouns and verbs in the frequency band, not first in the sentence (no capitalisation to fix)."""
    assert sentence.tags is not None
    return [i for i in range(1, len(sentence.tokens) - 1)
            if sentence.tags[i] in _NOUN_TAGS + _VERB_TAGS and sentence.tokens[i].isalpha()
            and sentence.tokens[i].islower() and _in_band(counts, sentence.tokens[i], band)]


def odd_man_out(corpus: Corpus, settings: BuildSettings, rng: random.Random) -> tuple[list[Line], list[str]]:
    """odd_man_out (SOMO): a noun or verb replaced by another word of the same tag (``C``) or not (``O``).

    As SentEval: target and replacement have a corpus frequency in ``odd_man_out_band`` (40-400); the replacement
    forms bigrams with the preceding and following tokens whose corpus counts are comparable on a log scale to the
    original's (``bigram_tolerance``); each replacement word is used in one split only (the band's words are shared
    out between splits first); no sentence occurs both as original and changed. A word's tag is its most frequent
    tag in the corpus; the target is a token with that tag (NN, NNS or a VB* tag) and the replacement has it too.
    """
    vocabulary = _odd_man_out_vocabulary(corpus, settings, rng)
    band, counts, bigrams = settings.odd_man_out_band, vocabulary.counts, vocabulary.bigrams

    def plausible(before: str, old: str, new: str, after: str) -> bool:
        return all(abs(math.log1p(bigrams[pair_new]) - math.log1p(bigrams[pair_old])) <= settings.bigram_tolerance
                   for pair_old, pair_new in (((before, old), (before, new)), ((old, after), (new, after))))

    def replace(sentence: Sentence, split: str, rng: random.Random):
        assert sentence.tags is not None
        positions = _odd_positions(sentence, counts, band)
        rng.shuffle(positions)
        lowered = [token.lower() for token in sentence.tokens]
        for i in positions:
            old, tag = lowered[i], sentence.tags[i]
            options = [w for w in vocabulary.by_split[split].get(tag, ())
                       if w != old and plausible(lowered[i - 1], old, w, lowered[i + 1])]
            if options:
                new = rng.choice(options)
                tokens = list(sentence.tokens)
                tokens[i] = new
                edit = {"op": "replace", "positions": [i], "original": [sentence.tokens[i]], "replacement": [new],
                        "tag": tag}
                return tuple(tokens), (edit,)
        return None

    pool = [s for s in corpus.tagged("odd_man_out") if _odd_positions(s, counts, band)]
    labels = SENTEVAL_LABELS["odd_man_out"]
    return build_pairs("odd_man_out", random_pairs(pool, rng), labels, settings.sizes, rng, replace), list(labels)


def _coordination(sentence: Sentence) -> tuple[int, int] | None:
    """``(cc, end)`` when the sentence is two main clauses joined by its only coordinating conjunction at ``cc``,
    the second clause running from ``cc + 1`` to ``end`` (exclusive; the final mark follows), else None."""
    assert sentence.tags is not None and sentence.deps is not None
    coordinators = [i for i, tag in enumerate(sentence.tags) if tag == "CC"]
    if len(coordinators) != 1:
        return None
    cc, root, end = coordinators[0], sentence.root, len(sentence.tokens) - 1
    if sentence.heads[cc] != root or sentence.deps[cc] != "cc" or not _has_subject(sentence, root):
        return None
    conjuncts = [c for c in sentence.children(root) if sentence.deps[c] == "conj" and c > cc]
    if len(conjuncts) != 1 or not _has_subject(sentence, conjuncts[0]):
        return None
    second = [i for i in _subtree(sentence, conjuncts[0]) if i != end]
    if second != list(range(cc + 1, end)) or cc < 2 or end - cc < 3:
        return None  # the conjunct must be exactly the rest of the sentence
    return cc, end


def _invert(sentence: Sentence, split: str, rng: random.Random):
    del split, rng  # deterministic: the two clauses swap places
    assert sentence.tags is not None
    cc, end = _coordination(sentence)  # type: ignore[misc]
    tokens, tags = list(sentence.tokens), sentence.tags
    comma = cc - 1 if tokens[cc - 1] == "," else None
    first, second = tokens[: comma if comma is not None else cc], tokens[cc + 1:end]
    if tags[0] in _LOWER_WHEN_INSIDE and first[0] != "I":
        first[0] = first[0][:1].lower() + first[0][1:]  # no longer sentence-initial
    second[0] = second[0][:1].upper() + second[0][1:]
    joint = [","] if comma is not None else []
    new = tuple(second + joint + [tokens[cc]] + first + tokens[end:])
    edit = {"op": "invert", "positions": [[0, len(first)], [cc + 1, end]], "original": [" ".join(tokens[: len(first)]),
            " ".join(tokens[cc + 1:end])], "replacement": [" ".join(second), " ".join(first)],
            "conjunction": tokens[cc]}
    return new, (edit,)


def coordination_inversion(corpus: Corpus, settings: BuildSettings,
                           rng: random.Random) -> tuple[list[Line], list[str]]:
    """coordination_inversion (CoordInv): two coordinated main clauses swapped (``I``) or not (``O``).

    As SentEval: only sentences whose only coordinating conjunction (tag CC) joins two main clauses (the root and a
    conjunct verb, each with a subject, the conjunct's subtree being the rest of the sentence), and no sentence in
    both orders. The classes are balanced by clause length: each kept/inverted pair joins a sentence whose first
    clause is longer with one whose second is longer (or two of equal lengths), so within each split both classes
    have as many sentences whose first shown clause is the longer as sentences whose second is.
    """
    strata: dict[int, list[Sentence]] = {-1: [], 0: [], 1: []}
    for s in corpus.tagged("coordination_inversion"):
        found = _coordination(s)
        if found is not None:
            cc, end = found
            first = cc - (1 if s.tokens[cc - 1] == "," else 0)
            strata[(first > end - cc - 1) - (first < end - cc - 1)].append(s)
    for stratum in strata.values():
        rng.shuffle(stratum)
    pairs = list(zip(strata[1], strata[-1])) + list(zip(strata[0][0::2], strata[0][1::2]))
    rng.shuffle(pairs)
    labels = SENTEVAL_LABELS["coordination_inversion"]
    return build_pairs("coordination_inversion", pairs, labels, settings.sizes, rng, _invert), list(labels)


BUILDERS: dict[str, TaskBuilder] = {
    "sentence_length": sentence_length,
    "word_content": word_content,
    "tree_depth": tree_depth,
    "top_constituents": top_constituents,
    "bigram_shift": bigram_shift,
    "past_present": past_present,
    "subj_number": subj_number,
    "obj_number": obj_number,
    "odd_man_out": odd_man_out,
    "coordination_inversion": coordination_inversion,
}
PARSER_FREE_TASKS: tuple[str, ...] = ("bigram_shift", "sentence_length", "word_content")
