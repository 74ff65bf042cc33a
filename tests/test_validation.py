"""probeft.report.validation: reading an exported run back (absent, partial, with and without claims.csv)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from test_book import full_table, write_generated  # the book tests' synthetic run

from probeft import report, results
from probeft.report import validation
from probeft.verdicts import claims, delta_intervals


@pytest.fixture()
def exported(tmp_path):
    """A folder laid out as ``probeft export`` writes it, from the book tests' synthetic table."""
    table = full_table()
    generated = write_generated(tmp_path / "made", table, intervals=True) / "_generated"
    dest = tmp_path / "validation" / "synthetic"
    shutil.copytree(generated, dest, ignore=shutil.ignore_patterns("notebooks"))
    return dest, table


def test_load_committed_reads_every_table(exported):
    dest, table = exported
    run = validation.load_committed(dest)
    pd.testing.assert_frame_equal(run.table, results.load_results(dest / results.RESULTS_FILE))
    assert len(run.table) == len(table)
    pd.testing.assert_frame_equal(run.intervals, delta_intervals.load_delta_intervals(dest / "delta_intervals.csv"))
    record, provenance = (json.loads((dest / name).read_text()) for name in ("grid.json", "provenance.json"))
    assert run.summary == report.run_summary(record, provenance) and run.summary.startswith("Config 'synthetic'")
    # no claims.csv: recomputed from the exported Delta intervals, as `probeft claims` does
    pd.testing.assert_frame_equal(run.checks, claims.evaluate_claims(run.table, intervals=run.intervals))


def test_load_committed_prefers_the_written_claims(exported):
    dest, _ = exported
    written = claims.evaluate_claims(validation.load_committed(dest).table).assign(verdict="supported")
    written.to_csv(dest / claims.CLAIMS_FILE, index=False)
    checks = validation.load_committed(dest).checks
    assert (checks["verdict"] == "supported").all() and len(checks) == len(written)


def test_load_committed_absent_and_partial(exported, tmp_path):
    dest, _ = exported
    assert validation.load_committed(tmp_path / "nowhere") is None
    assert validation.load_committed(dest).intervals is not None
    (dest / "delta_intervals.csv").unlink()
    assert validation.load_committed(dest).intervals is None
    (dest / "provenance.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"provenance\.json.*probeft export"):
        validation.load_committed(dest)
