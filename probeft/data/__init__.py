"""Readers for the data sets of the paper, with validation that names the file and line.

* SentEval probing files (``tr|va|te <TAB> label <TAB> sentence``): :func:`read_senteval`
  (:mod:`probeft.data.senteval`).
* GLUE CoLA / SST-2 / RTE as distributed in ``glue_data`` TSV files, or from the ``datasets`` hub:
  :func:`read_glue` (:mod:`probeft.data.glue`).
* SQuAD v1.1 official JSON, or the hub: :func:`read_squad`, :func:`read_squad_splits`
  (:mod:`probeft.data.squad`).
* WikiText raw text, or the hub: :func:`read_wikitext`, :func:`read_wikitext_test`,
  :func:`read_wikitext_valid` (the fitting text of a masked-LM head)
  (:mod:`probeft.data.wikitext`).
* Caps: :func:`seeded_subset` (:mod:`probeft.data.caps`).
* Where the data lie: :mod:`probeft.data.locations`; generated offline demo data: :mod:`probeft.data.demo`.
* The ten SentEval probing tasks built from any plain-text corpus (``probeft make-probing-data``):
  :mod:`probeft.data.probing_builders` (imported on demand; spaCy only for the tasks that need a parse).

Where the data lie is decided by :func:`probeft.data.locations.data_location` (argument, else
``$PROBEFT_DATA_DIR``, else the hub). The expected layout is the one of
:func:`probeft.data.demo.write_demo_data`::

    <data_dir>/senteval/<task>.txt
    <data_dir>/glue/{CoLA,SST-2,RTE}/{train,dev}.tsv
    <data_dir>/squad/{train-v1.1.json | train-subset.json, dev-v1.1.json}
    <data_dir>/wikitext-2/wiki.test.raw
    <data_dir>/wikitext-2/{wiki.valid.raw | wiki.valid.tokens}

May import: :mod:`probeft.core`.
"""

from __future__ import annotations

from probeft.data.caps import seeded_subset
from probeft.data.glue import (
    GLUE_LABEL_NAMES,
    GLUE_TASKS,
    ClassificationData,
    ClassificationSplit,
    normalize_glue_task,
    read_glue,
)
from probeft.data.senteval import (
    PROBING_LABELS,
    PROBING_TASKS,
    SENTEVAL_LABELS,
    SENTEVAL_TASKS,
    ProbingData,
    ProbingSplit,
    read_senteval,
    resolve_probing_file,
)
from probeft.data.squad import SquadExample, read_squad, read_squad_splits, resolve_squad_files
from probeft.data.wikitext import (
    read_wikitext,
    read_wikitext_test,
    read_wikitext_valid,
    resolve_wikitext_file,
    resolve_wikitext_valid_file,
)

__all__ = [
    "PROBING_TASKS",
    "PROBING_LABELS",
    "SENTEVAL_TASKS",
    "SENTEVAL_LABELS",
    "GLUE_TASKS",
    "GLUE_LABEL_NAMES",
    "ProbingSplit",
    "ProbingData",
    "read_senteval",
    "resolve_probing_file",
    "ClassificationSplit",
    "ClassificationData",
    "read_glue",
    "normalize_glue_task",
    "seeded_subset",
    "SquadExample",
    "read_squad",
    "read_squad_splits",
    "resolve_squad_files",
    "read_wikitext",
    "read_wikitext_test",
    "read_wikitext_valid",
    "resolve_wikitext_file",
    "resolve_wikitext_valid_file",
]
