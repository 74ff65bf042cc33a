"""How a book page shows a table and which run it comes from: complete, labelled, scrollable HTML.

pandas' notebook display cuts long tables to 10 rows ("...") and lets wide ones run off the page, and
``print`` lines interleave with tables once jupyter-book merges a cell's output streams. A
:class:`TableView` renders the whole frame itself (title above it, wide tables in a horizontally
scrolling box, long ones behind a collapsible section under a short summary, and always a CSV
download), so what a reader sees never depends on pandas' display options. :func:`run_banner` is the
box every run page opens with: which config, models, data, caps, seeds and device produced its numbers.

This module imports only :mod:`probeft.core` from probeft.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from probeft.core import names

__all__ = ["COLLAPSE_ROWS", "Banner", "Note", "TableView", "finetune_differences", "run_banner", "show_table"]

# Tables longer than this show behind a collapsible section (a reader scrolls past 25 rows, not 150).
COLLAPSE_ROWS = 25

# The paper's fine-tuning recipe (Sec. 3), the setting the Table 1 text quotes.
PAPER_LEARNING_RATE = 2e-5
PAPER_BATCH_SIZE = 32


def _csv_link(frame: pd.DataFrame, csv_name: str) -> str:
    # A data: URI keeps the download inside the page: nothing to copy into the build, works offline.
    payload = base64.b64encode(frame.to_csv().encode("utf-8")).decode("ascii")
    name = html.escape(csv_name)
    return (f'<p class="probeft-download"><a download="{name}" href="data:text/csv;base64,{payload}">'
            f"Download {name}</a> ({len(frame)} rows)</p>")


@dataclass(frozen=True)
class TableView:
    """A table as a book page shows it; ``frame`` is exactly what the analysis returned.

    Attributes:
        frame: the table (strings or numbers; every row and column is rendered).
        title: a label shown above the table (e.g. ``"Table 2: CLS pooling"``), so two tables of one
            cell can never be confused.
        note: a sentence shown under the table (a legend).
        csv_name: file name of the CSV download; ``None``: no download link.
        collapsed: put the table behind a collapsible section (the page shows a summary above it).
        index: show the frame's index (off for a plain row number, which only takes width).
    """

    frame: pd.DataFrame
    title: str | None = None
    note: str | None = None
    csv_name: str | None = None
    collapsed: bool = False
    index: bool = True

    def _repr_html_(self) -> str:
        table = self.frame.to_html(max_rows=None, max_cols=None, na_rep="-", border=0, index=self.index,
                                   classes="probeft-table")
        body = f'<div class="probeft-scroll" style="overflow-x: auto; max-width: 100%;">{table}</div>'
        if self.collapsed:
            body = (f"<details><summary>Show all {len(self.frame)} rows</summary>{body}</details>")
        parts = ['<div class="probeft-table-block">']
        if self.title:
            parts.append(f'<p class="probeft-table-title"><strong>{html.escape(self.title)}</strong></p>')
        parts.append(body)
        if self.note:
            parts.append(f'<p class="probeft-table-note">{html.escape(self.note)}</p>')
        if self.csv_name:
            parts.append(_csv_link(self.frame, self.csv_name))
        parts.append("</div>")
        return "".join(parts)


def show_table(frame: pd.DataFrame, *, title: str | None = None, note: str | None = None,
               csv_name: str | None = None, collapse: bool | None = None, index: bool = True) -> TableView:
    """A :class:`TableView` of ``frame``; long tables (over :data:`COLLAPSE_ROWS` rows) collapse by default.

    Args:
        frame: the table.
        title: label above the table.
        note: sentence under the table.
        csv_name: CSV download name; defaults to none.
        collapse: force the collapsible section on or off.
        index: show the frame's index.
    """
    collapsed = len(frame) > COLLAPSE_ROWS if collapse is None else collapse
    return TableView(frame, title=title, note=note, csv_name=csv_name, collapsed=collapsed, index=index)


@dataclass(frozen=True)
class Note:
    """A short paragraph (or an admonition box) in a page's output, as HTML rather than printed text.

    Printed lines render as a monospace block cut at the column's right edge; a note wraps.

    Attributes:
        text: plain text (escaped).
        kind: ``None`` for a paragraph, else a Sphinx admonition class (``"note"``, ``"warning"``).
        title: the admonition's title.
    """

    text: str
    kind: str | None = None
    title: str | None = None

    def _repr_html_(self) -> str:
        text = html.escape(self.text)
        if self.kind is None:
            return f'<p class="probeft-note">{text}</p>'
        title = f'<p class="admonition-title">{html.escape(self.title or self.kind.title())}</p>'
        return f'<div class="admonition {self.kind}">{title}<p>{text}</p></div>'

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Banner:
    """The box at the top of a run page: one line per aspect of the run, and a warning for the demo.

    Attributes:
        lines: ``(label, text)`` pairs, e.g. ``("Models", "tiny-bert, tiny-roberta")``.
        demo: the run is the offline demo (its numbers check the pipeline, not the paper).
    """

    lines: tuple[tuple[str, str], ...]
    demo: bool

    def _repr_html_(self) -> str:
        items = "".join(f"<li><strong>{html.escape(k)}:</strong> {html.escape(v)}</li>" for k, v in self.lines)
        kind, title = ("warning", "Demo run: these numbers check the pipeline, not the paper") if self.demo else (
            "note", "The run shown on this page")
        lead = ("Tiny random encoders fine-tuned and probed on generated data: every table and figure below "
                "shows that the pipeline runs end to end, not what the paper found. "
                "See the Real weights pages for pre-trained encoders on real data.") if self.demo else ""
        lead_html = f"<p>{html.escape(lead)}</p>" if lead else ""
        return (f'<div class="admonition {kind} probeft-banner"><p class="admonition-title">{html.escape(title)}</p>'
                f"{lead_html}<ul>{items}</ul></div>")

    def __str__(self) -> str:
        return "\n".join(f"{k}: {v}" for k, v in self.lines)


def _join(values: Sequence | None) -> str:
    return ", ".join(str(v) for v in values) if values else "-"


def _caps(config: Mapping) -> str:
    """What each stage was limited to (the caps that make a run smaller than the paper's)."""
    parts = []
    finetune = config.get("finetune") or {}
    for key, what in (("max_train", "training examples"), ("max_eval", "dev examples")):
        if finetune.get(key):
            parts.append(f"fine-tuning {finetune[key]:,} {what}")
    for task, override in (finetune.get("per_task") or {}).items():
        if (override or {}).get("max_train"):
            parts.append(f"{task} fine-tuning {override['max_train']:,} training examples")
    probing = config.get("probing") or {}
    for key, what in (("max_train", "training"), ("max_eval", "dev/test")):
        if probing.get(key):
            parts.append(f"probing {probing[key]:,} {what} sentences per task")
    attention = config.get("attention") or {}
    if attention.get("max_sentences"):
        parts.append(f"attention {attention['max_sentences']:,} sentences")
    perplexity = config.get("perplexity") or {}
    if perplexity.get("max_blocks"):
        parts.append(f"perplexity {perplexity['max_blocks']} blocks of {perplexity.get('block_size', '?')} tokens")
    return "; ".join(parts) or "none (full data sets)"


def _seeds(config: Mapping) -> str:
    parts = []
    for stage in ("finetune", "perplexity"):
        section = config.get(stage) or {}
        if section.get("seeds"):
            parts.append(f"{'fine-tuning' if stage == 'finetune' else 'perplexity'} {_join(section['seeds'])}")
    return "; ".join(parts) or "-"


def _data(record: Mapping, provenance: Mapping[str, Mapping]) -> str:
    config = record.get("config", {})
    if config.get("demo_data"):
        return f"generated demo data ({record.get('data_dir') or config.get('data_dir') or 'data/demo'})"
    # The data location a run used is recorded per cell (a config may leave it to the CLI or PROBEFT_DATA_DIR).
    used = sorted({str(p.get("params", {}).get("data_dir")) for p in provenance.values()
                   if p.get("params", {}).get("data_dir")})
    return _join(used or [record.get("data_dir") or config.get("data_dir") or "?"])


def run_banner(record: Mapping, provenance: Mapping[str, Mapping]) -> Banner:
    """Which run a page shows: config, models, data, caps, seeds, device; flags the demo.

    Args:
        record: the run's ``grid.json`` (``{"config": {...}, "data_dir": ...}``); ``{}`` when absent.
        provenance: cell name -> that cell's ``provenance.json``.
    """
    config = record.get("config", {})
    models = [m["name"] if m["name"] == m.get("spec", m["name"]) else f"{m['name']} ({m['spec']})"
              for m in config.get("models", [])]
    devices = sorted({str(p.get("device", "?")) for p in provenance.values()}) or [str(config.get("device", "?"))]
    name = config.get("name", "?")
    description = config.get("description") or ""
    lines = (
        ("Config", f"{name}" + (f": {description}" if description else "")),
        ("Models", _join(models)),
        ("Data", _data(record, provenance)),
        ("Caps", _caps(config)),
        ("Seeds", _seeds(config)),
        ("Device", f"{_join(devices)}; {len(provenance)} cells"),
    )
    return Banner(lines=lines, demo=bool(config.get("demo_data")))


def finetune_differences(config: Mapping) -> Note:
    """Where a run's fine-tuning setting differs from the paper's (learning rate, batch size, epochs, caps).

    Args:
        config: the run's config (``grid.json``'s ``config``).

    Returns:
        A note naming every difference, or saying there is none.
    """
    finetune = config.get("finetune") or {}
    if not finetune:
        return Note("This run has no fine-tuning stage.")
    differences = []
    rate = finetune.get("learning_rate")
    if rate is not None and float(rate) != PAPER_LEARNING_RATE:
        differences.append(f"learning rate {float(rate):g} (paper {PAPER_LEARNING_RATE:g})")
    batch = finetune.get("batch_size")
    if batch is not None and int(batch) != PAPER_BATCH_SIZE:
        differences.append(f"batch size {batch} (paper {PAPER_BATCH_SIZE})")
    for task in finetune.get("tasks", []):
        override = (finetune.get("per_task") or {}).get(task) or {}
        epochs = override.get("epochs") or finetune.get("epochs")
        if epochs is not None and int(epochs) != names.default_epochs(task):
            differences.append(f"{epochs} epochs on {task} (paper {names.default_epochs(task)})")
        cap = override.get("max_train") or finetune.get("max_train")
        if cap:
            differences.append(f"{task} training set capped at {int(cap):,} examples (paper: all)")
    if not differences:
        return Note("This run used the paper's fine-tuning setting.", kind="note", title="This run")
    return Note("This run differs from the paper's setting: " + "; ".join(differences) + ".",
                kind="warning", title="This run differs")
