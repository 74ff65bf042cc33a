"""What the book shows, read from results tables (never running a model): text and tables
(:mod:`~probeft.report.pages`, re-exported here), one figure function per figure
(:mod:`~probeft.report.plots`), and the committed validation runs (:mod:`~probeft.report.validation`).

May import: :mod:`probeft.core`, :mod:`probeft.results`, :mod:`probeft.verdicts`.
"""

from __future__ import annotations

from probeft.report.pages import (
    MARKER,
    attention_summary,
    cka_layer_table,
    claims_checks_table,
    compression_table,
    delta_marker_legend,
    delta_table,
    encoder_label,
    not_in_run,
    perplexity_summary,
    run_summary,
    selectivity_summary,
    table1,
)

__all__ = [
    "MARKER",
    "attention_summary",
    "cka_layer_table",
    "claims_checks_table",
    "compression_table",
    "delta_marker_legend",
    "delta_table",
    "encoder_label",
    "not_in_run",
    "perplexity_summary",
    "run_summary",
    "selectivity_summary",
    "table1",
]
