"""What the book shows, read from results tables (never running a model): text and tables
(:mod:`~probeft.report.pages`, shown through :mod:`~probeft.report.display`; both re-exported here), one figure function per figure
(:mod:`~probeft.report.plots`), and the committed validation runs (:mod:`~probeft.report.validation`).

May import: :mod:`probeft.core`, :mod:`probeft.results`, :mod:`probeft.verdicts`.
"""

from __future__ import annotations

from probeft.report.display import Banner, Note, TableView, finetune_differences, run_banner, show_table
from probeft.report.pages import (
    MARKER,
    attention_group_table,
    attention_summary,
    best_layers_table,
    cka_layer_table,
    claims_checks_table,
    compression_table,
    config_table,
    delta_marker_legend,
    delta_table,
    encoder_label,
    findings_table,
    finetune_epochs_table,
    not_in_run,
    notebook_title,
    paper_delta_note,
    paper_delta_table,
    perplexity_summary,
    perplexity_table,
    probe_comparison_table,
    retitle_notebook,
    run_summary,
    selectivity_summary,
    selectivity_table,
    sources_table,
    table1,
)

__all__ = [
    "MARKER",
    "Banner",
    "Note",
    "TableView",
    "attention_group_table",
    "attention_summary",
    "best_layers_table",
    "cka_layer_table",
    "claims_checks_table",
    "compression_table",
    "config_table",
    "delta_marker_legend",
    "delta_table",
    "encoder_label",
    "findings_table",
    "finetune_differences",
    "finetune_epochs_table",
    "not_in_run",
    "paper_delta_note",
    "paper_delta_table",
    "notebook_title",
    "perplexity_summary",
    "perplexity_table",
    "probe_comparison_table",
    "retitle_notebook",
    "run_banner",
    "run_summary",
    "selectivity_summary",
    "selectivity_table",
    "sources_table",
    "show_table",
    "table1",
]
