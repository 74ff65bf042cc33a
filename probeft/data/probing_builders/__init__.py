"""Probing tasks built from any plain-text corpus (``probeft make-probing-data``): the ten SentEval tasks after
Conneau et al. (2018), in SentEval's file format, with a sidecar recording every change made.

* :func:`build_probing_data`, :class:`BuildSettings` (:mod:`~probeft.data.probing_builders.build`).
* The builders, one per task (:mod:`~probeft.data.probing_builders.tasks`); splits and balancing
  (:mod:`~probeft.data.probing_builders.splits`); reading the corpus, with or without spaCy
  (:mod:`~probeft.data.probing_builders.corpus`).

spaCy (extra ``probing-data``) is needed by the tasks that read tags or a parse; bigram_shift,
sentence_length and word_content work without it.
"""

from __future__ import annotations

from probeft.data.probing_builders.build import MANIFEST_FILE, SIDECAR_SUFFIX, build_probing_data, normalise_build_tasks
from probeft.data.probing_builders.corpus import DEFAULT_SPACY_MODEL, MAX_TOKENS, MIN_TOKENS, Sentence
from probeft.data.probing_builders.splits import Line, ProbingBuildError, parse_band, parse_sizes
from probeft.data.probing_builders.tasks import BUILDERS, PARSER_FREE_TASKS, BuildSettings, Corpus

__all__ = [
    "BUILDERS",
    "DEFAULT_SPACY_MODEL",
    "MANIFEST_FILE",
    "MAX_TOKENS",
    "MIN_TOKENS",
    "PARSER_FREE_TASKS",
    "SIDECAR_SUFFIX",
    "BuildSettings",
    "Corpus",
    "Line",
    "ProbingBuildError",
    "Sentence",
    "build_probing_data",
    "normalise_build_tasks",
    "parse_band",
    "parse_sizes",
]
