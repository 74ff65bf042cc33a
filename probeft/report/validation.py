"""The committed real-weight runs under ``validation/``: what ``probeft export`` writes, read back for the book.

A committed run is a folder of small tables (``results.csv``, ``delta_intervals.csv``,
``claims.csv``, ``grid.json``, ``provenance.json``); the "Real weights" pages read it through
:func:`load_committed` and never run a model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from probeft import results
from probeft.report import display, pages
from probeft.verdicts import claims, delta_intervals


@dataclass(frozen=True)
class CommittedRun:
    """One exported run.

    Attributes:
        table: the long results table.
        intervals: paired Delta intervals, or None when the run has no ``delta_intervals.csv``.
        checks: the claims checks of :func:`probeft.verdicts.claims.claims_of_run`: recomputed from the
            per-sentence files exported with the run (``per_sentence/``); an older export's ``claims.csv``, or,
            when absent or stale, recomputed from ``delta_intervals.csv`` (point estimates without it).
        summary: one line naming the config, cells, wall time, device and versions.
    """

    table: pd.DataFrame
    intervals: pd.DataFrame | None
    checks: pd.DataFrame
    summary: str


def load_committed(run_dir: str | Path) -> CommittedRun | None:
    """Read an exported run, or None when ``run_dir`` holds no ``results.csv`` (e.g. a checkout without it).

    Raises:
        FileNotFoundError: results.csv is there but grid.json or provenance.json is not (a partial export).
    """
    run_dir = Path(run_dir)
    if not (run_dir / results.RESULTS_FILE).is_file():
        return None
    for name in ("grid.json", "provenance.json"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir / name}: missing from an exported run; re-run `probeft export`")
    table = results.load_results(run_dir / results.RESULTS_FILE)
    # what `probeft claims` shows: from the exported per-sentence files, else the stored claims.csv, else
    # recomputed from delta_intervals.csv, else points
    checks = claims.claims_of_run(run_dir).checks
    summary = pages.run_summary(json.loads((run_dir / "grid.json").read_text()),
                                 json.loads((run_dir / "provenance.json").read_text()))
    return CommittedRun(table=table,
                        intervals=delta_intervals.load_delta_intervals(run_dir / delta_intervals.DELTA_INTERVALS_FILE),
                        checks=checks, summary=summary)


def load_run_record(folder: str | Path) -> tuple[dict, dict]:
    """A run's ``grid.json`` and per-cell ``provenance.json`` from ``folder`` (``{}`` for a file that is absent).

    Args:
        folder: ``book/_generated`` (written by ``probeft book``) or an exported run under ``validation/``.

    Returns:
        ``(record, provenance)`` as :func:`probeft.report.display.run_banner` takes them.
    """
    folder = Path(folder)
    loaded = [json.loads((folder / name).read_text(encoding="utf-8")) if (folder / name).is_file() else {}
              for name in ("grid.json", "provenance.json")]
    return loaded[0], loaded[1]


def page_banner(folder: str | Path) -> display.Banner:
    """The banner a run page opens with (:func:`probeft.report.display.run_banner`) for the run in ``folder``."""
    record, provenance = load_run_record(folder)
    return display.run_banner(record, provenance)
