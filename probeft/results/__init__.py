"""The tidy results table, the one interface between runs and the report: its schema, each cell's
``results.csv`` and ``provenance.json`` and the gathered run table (:mod:`~probeft.results.table`,
re-exported here), the per-sentence probe predictions stored beside each probing cell
(:mod:`~probeft.results.predictions`) and attention statistics beside each attention cell
(:mod:`~probeft.results.attention_sentences`), and the table's aggregates: Deltas, layer groups, summaries
(:mod:`~probeft.results.analysis`).

May import: :mod:`probeft.core`.
"""

from __future__ import annotations

from probeft.results.table import (
    INT_DEFAULTS,
    PER_SENTENCE_DIR,
    PROVENANCE_FILE,
    REQUIRED_COLUMNS,
    RESULT_COLUMNS,
    RESULTS_FILE,
    RUNS_ENV,
    STRING_DEFAULTS,
    TRACKED_PACKAGES,
    as_list,
    cell_complete,
    gather,
    git_commit,
    hand_runs_dir,
    load_results,
    model_label,
    notebook_parameters,
    package_versions,
    provenance,
    results_frame,
    scratch_dir,
    validate_results,
    write_cell,
)

__all__ = [
    "INT_DEFAULTS",
    "PER_SENTENCE_DIR",
    "PROVENANCE_FILE",
    "REQUIRED_COLUMNS",
    "RESULTS_FILE",
    "RESULT_COLUMNS",
    "RUNS_ENV",
    "STRING_DEFAULTS",
    "TRACKED_PACKAGES",
    "as_list",
    "cell_complete",
    "gather",
    "git_commit",
    "hand_runs_dir",
    "load_results",
    "model_label",
    "notebook_parameters",
    "package_versions",
    "provenance",
    "results_frame",
    "scratch_dir",
    "validate_results",
    "write_cell",
]
