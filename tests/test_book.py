"""Every book page runs for any subset of stages: its code cells are executed against synthetic results.

A jupyter-book build per subset would take minutes; the pages are MyST notebooks whose code cells
only read ``_generated/`` (relative to the page), so executing those cells in order, in a folder
holding a results table restricted to some stages, is what the build's execution does. The full
build is covered once by ``tests/test_end_to_end.py``.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from probeft import results
from probeft.report import Banner, Note, TableView

BOOK_DIR = Path(__file__).resolve().parent.parent / "book"
PAGES = ("figure1", "table1", "delta", "selectivity", "similarity", "attention", "perplexity", "claims", "provenance")
_CODE_CELL = re.compile(r"```\{code-cell\}[^\n]*\n(?:---\n.*?\n---\n)?(.*?)```", re.DOTALL)
NOTE = "Not in this run"


def code_cells(page: Path) -> list[str]:
    """The sources of a MyST page's code cells, in order (their ``---`` option blocks removed)."""
    return _CODE_CELL.findall(page.read_text(encoding="utf-8"))


def run_page(page: Path, workdir: Path) -> dict[str, Any]:
    """Execute a page's code cells in one namespace, as the book's kernel would, from ``workdir``.

    Returns:
        ``{"printed": stdout text, "displayed": objects passed to display() or left as a cell's
        last expression, "figures": number of matplotlib figures the page drew}``.
    """
    displayed: list[Any] = []
    namespace: dict[str, Any] = {"display": displayed.append, "__name__": "__page__"}
    stdout = io.StringIO()
    figures = 0
    plt.close("all")  # figures left open by earlier tests are not the page's
    previous = Path.cwd()
    os.chdir(workdir)
    try:
        with contextlib.redirect_stdout(stdout):
            for source in code_cells(page):
                tree = ast.parse(source)
                last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
                exec(compile(tree, f"{page.name}", "exec"), namespace)  # noqa: S102 - the page's own code
                if last is not None:
                    value = eval(compile(ast.Expression(last.value), page.name, "eval"), namespace)  # noqa: S307
                    if value is not None and not source.rstrip().endswith(";"):
                        displayed.append(value)
                figures += len(plt.get_fignums())
                plt.close("all")
    finally:
        os.chdir(previous)
    # The banner opens every run page whatever the run holds; tables are compared as the frames they show.
    banners = [d for d in displayed if isinstance(d, Banner)]
    shown = [d.frame if isinstance(d, TableView) else d for d in displayed if not isinstance(d, (Banner, Note))]
    notes = "\n".join(str(d) if isinstance(d, Note) else d.note or "" for d in displayed
                      if isinstance(d, (Note, TableView)))
    return {"printed": stdout.getvalue(), "displayed": shown, "figures": figures, "banners": banners, "notes": notes}


def probing_rows() -> list[dict]:
    """A 4-layer model probed pre-trained and after cola (cls and mean heads) and sst2 fine-tuning."""
    rows = []
    states = [("none", "none", 0.0), ("cola", "cls", -0.05), ("cola", "mean", 0.02), ("sst2", "cls", -0.1)]
    for ft, head, offset in states:
        for task in ("bigram_shift", "odd_man_out"):
            for pooling, base in (("cls", 0.55), ("mean", 0.65)):
                for split in ("train", "dev", "test"):
                    rows += [{"stage": "probing", "model": "m", "finetune_task": ft, "finetune_head": head,
                              "probe_task": task, "pooling": pooling, "layer": layer, "split": split,
                              "metric": "accuracy", "value": base + 0.02 * layer + offset * (layer >= 3)}
                             for layer in range(5)]
    return rows


def control_mdl_rows() -> list[dict]:
    """Control-task (control_accuracy, selectivity) and MDL (compression, codelength, uniform) rows of ``probing_rows``."""
    rows = []
    for row in probing_rows():
        control = 0.5 + 0.01 * row["layer"]
        rows.append({**row, "metric": "control_accuracy", "value": control, "control_seed": 0})
        rows.append({**row, "metric": "selectivity", "value": row["value"] - control, "control_seed": 0})
        if row["split"] == "train":
            compression = 1.0 + 0.1 * row["layer"] + (0.2 if row["pooling"] == "mean" else 0.0)
            rows.append({**row, "metric": "compression", "value": compression, "mdl_seed": 0})
            rows.append({**row, "metric": "codelength_kbits", "value": 0.6 / compression, "mdl_seed": 0})
    for ft, head in {(r["finetune_task"], r["finetune_head"]) for r in probing_rows()}:
        for task in ("bigram_shift", "odd_man_out"):
            rows.append({"stage": "probing", "model": "m", "finetune_task": ft, "finetune_head": head,
                         "probe_task": task, "layer": -1, "split": "train", "metric": "uniform_kbits", "value": 0.6})
    return rows


def cka_rows() -> list[dict]:
    """CKA of each fine-tuned state of ``probing_rows`` to the pre-trained one: 1 - 0.1 * layer (no CLS layer 0)."""
    return [{**row, "metric": "cka", "value": 1.0 - 0.1 * row["layer"]} for row in probing_rows()
            if row["finetune_task"] != "none" and row["split"] == "test"
            and not (row["pooling"] == "cls" and row["layer"] == 0)]


def finetune_rows() -> list[dict]:
    return [{"stage": "finetune", "model": "m", "finetune_task": task, "finetune_head": head, "seed": seed,
             "epoch": epoch, "split": "dev", "metric": metric, "value": 0.1 * epoch + 0.01 * seed + bonus}
            for task, head, metric, bonus in (("cola", "cls", "mcc", 0.2), ("cola", "mean", "mcc", 0.3),
                                              ("sst2", "cls", "accuracy", 0.6))
            for seed in (0, 1) for epoch in (1, 2)]


def attention_rows() -> list[dict]:
    return [{"stage": "attention", "model": "m", "finetune_task": ft, "finetune_head": head, "layer": layer,
             "probe_task": "bigram_shift", "split": "test", "metric": metric, "value": value + 0.1 * layer,
             "position": position}
            for ft, head, value in (("none", "none", 2.0), ("cola", "cls", 1.0), ("cola", "mean", 1.8))
            for metric in ("entropy", "emd") if not (ft == "none" and metric == "emd")
            for position in ("first", "0") for layer in range(1, 5)]


def perplexity_rows() -> list[dict]:
    rows = [{"stage": "perplexity", "model": "m", "epoch": 0, "split": "test", "metric": "perplexity",
             "value": 10.0, "k_replaced": -1}]
    for seed in (0, 1):
        rows += [{"stage": "perplexity", "model": "m", "finetune_task": "cola", "finetune_head": "cls", "seed": seed,
                  "epoch": epoch, "split": "test", "metric": "perplexity", "value": 10.0 + 2 * epoch + seed,
                  "k_replaced": -1} for epoch in (0, 1, 2)]
        rows += [{"stage": "perplexity", "model": "m", "finetune_task": "cola", "finetune_head": "cls", "seed": seed,
                  "epoch": 2, "split": "test", "metric": "perplexity", "value": 14.0 - k + seed, "k_replaced": k}
                 for k in range(5)]
    return rows


def full_table() -> pd.DataFrame:
    """A schema-valid table with all four stages (what a complete grid gathers)."""
    return results.results_frame(probing_rows() + control_mdl_rows() + cka_rows() + finetune_rows()
                                 + attention_rows() + perplexity_rows())


NEW_PROBING_METRICS = {"control_accuracy", "selectivity", "compression", "codelength_kbits", "uniform_kbits", "cka"}


def synthetic_intervals(table: pd.DataFrame, half_width: float = 0.01) -> pd.DataFrame:
    """A ``delta_intervals.csv`` for ``table``'s Deltas: seeds pooled, every interval delta +- half_width."""
    from probeft.results import analysis
    from probeft.verdicts import delta_intervals

    delta = analysis.probing_delta(table)
    keys = ["model", "finetune_task", "finetune_head", "probe_task", "pooling"]
    layers = delta.groupby([*keys, "layer"], as_index=False)["delta"].mean().assign(level="layer", layer_group="none")
    groups = analysis.delta_by_layer_group(delta).assign(level="layer_group", layer=-1)
    frame = pd.concat([layers, groups], ignore_index=True).assign(seed=delta_intervals.POOLED_SEED, seeds=1)
    frame["ci_low"], frame["ci_high"] = frame["delta"] - half_width, frame["delta"] + half_width
    frame["p_bootstrap"] = np.where(delta_intervals.excludes_zero(frame), 0.001, 1.0)
    frame["refits"], frame["interval_levels"] = 0, "sentences"
    return delta_intervals.add_q_values(frame).reindex(columns=delta_intervals.COLUMNS)


def write_generated(workdir: Path, table: pd.DataFrame, *, intervals: bool = False) -> Path:
    """Lay out ``workdir/_generated/`` as ``probeft book`` does, holding ``table`` (and its Delta intervals)."""
    generated = workdir / "_generated"
    (generated / "notebooks").mkdir(parents=True, exist_ok=True)
    # A grid without some stages has no columns of theirs at all (e.g. no ``position``).
    table.dropna(axis=1, how="all").to_csv(generated / results.RESULTS_FILE, index=False)
    cell = {"device": "cpu", "wall_time_s": 1.0, "git_commit": "0123456789abcdef",
            "packages": {"torch": "t", "transformers": "tr"}}
    (generated / "provenance.json").write_text(json.dumps({f"{stage}__cell": cell for stage in set(table["stage"])}))
    (generated / "grid.json").write_text(json.dumps({"config": {"name": "synthetic"}}))
    probing = table[(table["stage"] == "probing") & (table["split"] == "test")]
    if intervals and (probing["finetune_task"] == "none").any() and (probing["finetune_task"] != "none").any():
        synthetic_intervals(table).to_csv(generated / "delta_intervals.csv", index=False)
    return workdir


def subset(table: pd.DataFrame, stages: set[str], *, probed: set[str] | None = None,
           poolings: set[str] | None = None) -> pd.DataFrame:
    """``table`` restricted to ``stages``; probing rows optionally to fine-tuning states and poolings."""
    keep = table["stage"].isin(stages)
    probing = table["stage"] == "probing"
    if probed is not None:
        keep &= ~probing | table["finetune_task"].isin(probed)
    if poolings is not None:
        keep &= ~probing | table["pooling"].isin(poolings)
    return table[keep].reset_index(drop=True)


# name -> (stages, probed fine-tuning states, poolings); ``None`` keeps all.
SUBSETS: dict[str, tuple[set[str], set[str] | None, set[str] | None]] = {
    "finetune only": ({"finetune"}, None, None),
    "probing only": ({"probing"}, None, None),
    "attention only": ({"attention"}, None, None),
    "perplexity only": ({"perplexity"}, None, None),
    # The bug of issue 7: fine-tuning, but only the pre-trained encoders probed.
    "finetune, pre-trained probes": ({"finetune", "probing"}, {"none"}, None),
    "probes of fine-tuned encoders only": ({"finetune", "probing"}, {"cola", "sst2"}, None),
    "cls pooling only": ({"finetune", "probing"}, None, {"cls"}),
    "everything": ({"finetune", "probing", "attention", "perplexity"}, None, None),
}


def page_has_content(page: str, table: pd.DataFrame) -> bool:
    """Whether ``page`` has rows to show for ``table`` (else it must print the "not in this run" note)."""
    probing = table[table["stage"] == "probing"]
    pretrained = (probing["finetune_task"] == "none").any()
    return {
        "figure1": bool(pretrained),
        "table1": bool((table["stage"] == "finetune").any()),
        "delta": bool(pretrained and (probing["finetune_task"] != "none").any()),
        "selectivity": bool(probing["metric"].isin(["selectivity", "compression"]).any()),
        "similarity": bool((probing["metric"] == "cka").any()),
        "attention": bool((table["stage"] == "attention").any()),
        "perplexity": bool((table["stage"] == "perplexity").any()),
        "claims": True,  # the summary of F1-F9 always shows, "not computable" rows included
        "provenance": True,
    }[page]


@pytest.mark.parametrize("with_intervals", [False, True], ids=["no intervals", "intervals"])
@pytest.mark.parametrize("name", list(SUBSETS))
def test_every_page_runs_for_any_subset_of_stages(name, with_intervals, tmp_path):
    stages, probed, poolings = SUBSETS[name]
    table = subset(full_table(), stages, probed=probed, poolings=poolings)
    workdir = write_generated(tmp_path, table, intervals=with_intervals)
    for page in PAGES:
        out = run_page(BOOK_DIR / f"{page}.md", workdir)
        if page_has_content(page, table):
            assert out["displayed"] or out["figures"], f"{page}: shows nothing for {name}"
        else:
            assert NOTE in out["printed"], f"{page}: no 'not in this run' note for {name}"
            assert out["figures"] == 0 and not out["displayed"], f"{page}: shows content it has no rows for"


def test_delta_page_shows_each_head_and_the_analysis_numbers(tmp_path):
    from probeft import report

    table = full_table()
    out = run_page(BOOK_DIR / "delta.md", write_generated(tmp_path, table))
    shown_cls, shown_mean, beside_paper = out["displayed"]
    pd.testing.assert_frame_equal(shown_cls, report.delta_table(table, pooling="cls"))
    pd.testing.assert_frame_equal(shown_mean, report.delta_table(table, pooling="mean"))
    assert beside_paper["ours"].to_dict()[("m", "cola", "cls", "bigram_shift", "cls", "layers 3-4")] == "-5.00"
    # layers 3-4 carry each fine-tuning's offset: -5 points (cola, cls head), +2 (cola, mean head), -10 (sst2)
    upper = shown_cls[("bigram_shift", "layers 3-4")]
    assert upper.to_dict() == {("m", "cola", "cls"): "-5.00", ("m", "cola", "mean"): "2.00", ("m", "sst2", "cls"): "-10.00"}
    assert set(shown_cls[("odd_man_out", "layers 0-2")]) == {"0.00"}
    assert out["figures"] == 2


def test_cls_only_run_draws_figure4_without_the_mean_baseline(tmp_path):
    table = subset(full_table(), {"probing"}, poolings={"cls"})
    out = run_page(BOOK_DIR / "delta.md", write_generated(tmp_path, table))
    assert len(out["displayed"]) == 2 and out["figures"] == 1
    assert "fine-tuned encoders probed with mean pooling" in out["printed"]


def test_delta_page_marks_deltas_whose_interval_excludes_zero(tmp_path):
    from probeft import report
    from probeft.verdicts import delta_intervals

    table = full_table()
    out = run_page(BOOK_DIR / "delta.md", write_generated(tmp_path, table, intervals=True))
    shown_cls, shown_mean, _ = out["displayed"]  # the third: beside the paper
    intervals = delta_intervals.load_delta_intervals(tmp_path / "_generated" / "delta_intervals.csv")
    pd.testing.assert_frame_equal(shown_cls, report.delta_table(table, pooling="cls", intervals=intervals))
    # +-1 point intervals: the upper layers' offsets exclude 0, the unchanged lower layers do not
    upper = shown_cls[("bigram_shift", "layers 3-4")]
    assert upper.to_dict() == {("m", "cola", "cls"): "-5.00*", ("m", "cola", "mean"): "2.00*",
                               ("m", "sst2", "cls"): "-10.00*"}
    assert set(shown_mean[("odd_man_out", "layers 0-2")]) == {"0.00"}
    assert "*: Benjamini-Hochberg q < 0.05" in out["notes"] and out["figures"] == 2
    # without the file: the same numbers, no marker, and a note saying why
    plain = run_page(BOOK_DIR / "delta.md", write_generated(tmp_path / "plain", table))
    assert plain["displayed"][0][("bigram_shift", "layers 3-4")].to_dict()[("m", "sst2", "cls")] == "-10.00"
    assert "Not in this run: per-sentence probe predictions" in plain["notes"]


def test_figures_draw_intervals_as_bands():
    from probeft.report import plots

    table = full_table()
    plain = plots.figure_delta(table, pooling="cls")
    banded = plots.figure_delta(table, pooling="cls", intervals=synthetic_intervals(table))
    assert sum(len(ax.collections) for ax in plain.axes) == 0
    assert sum(len(ax.collections) for ax in banded.axes) == 2 * 3  # 2 probing tasks x 3 fine-tuned encoders
    test = table["split"] == "test"
    with_ci = table.assign(ci_low=table["value"].where(test) - 0.02, ci_high=table["value"].where(test) + 0.02)
    assert sum(len(ax.collections) for ax in plots.figure1(table).axes) == 0
    assert sum(len(ax.collections) for ax in plots.figure1(with_ci).axes) == 2 * 2  # 2 tasks x 2 poolings
    plt.close("all")


@pytest.mark.parametrize("name", ["probing only", "everything", "cls pooling only"])
def test_pages_without_control_and_mdl_rows(name, tmp_path):
    """A run probed with control=False, mdl=False: the selectivity page notes it, the others are unchanged."""
    stages, probed, poolings = SUBSETS[name]
    table = subset(full_table(), stages, probed=probed, poolings=poolings)
    old = table[~table["metric"].isin(NEW_PROBING_METRICS)].reset_index(drop=True)
    out = run_page(BOOK_DIR / "selectivity.md", write_generated(tmp_path / "old", old))
    assert out["printed"].count(NOTE) == 2 and out["figures"] == 0 and not out["displayed"]
    out = run_page(BOOK_DIR / "similarity.md", tmp_path / "old")
    assert out["printed"].count(NOTE) == 1 and out["figures"] == 0 and not out["displayed"]
    for page in ("figure1", "delta"):
        with_new = run_page(BOOK_DIR / f"{page}.md", write_generated(tmp_path / f"{page}-new", table))
        without = run_page(BOOK_DIR / f"{page}.md", write_generated(tmp_path / f"{page}-old", old))
        assert with_new["printed"] == without["printed"] and with_new["figures"] == without["figures"]
        assert len(with_new["displayed"]) == len(without["displayed"])
        for a, b in zip(with_new["displayed"], without["displayed"]):
            pd.testing.assert_frame_equal(a, b)


def test_delta_ignores_the_new_probing_metrics():
    from probeft.results import analysis

    table = full_table()
    old = table[~table["metric"].isin(NEW_PROBING_METRICS)]
    pd.testing.assert_frame_equal(analysis.probing_delta(table).reset_index(drop=True),
                                  analysis.probing_delta(old).reset_index(drop=True))


def test_selectivity_page_shows_the_analysis_numbers(tmp_path):
    from probeft import report
    from probeft.results import analysis

    table = full_table()
    out = run_page(BOOK_DIR / "selectivity.md", write_generated(tmp_path, table))
    assert out["figures"] == 1 and NOTE not in out["printed"]
    best_shown, shown = out["displayed"]
    pd.testing.assert_frame_equal(shown, report.compression_table(table))
    pd.testing.assert_frame_equal(best_shown, report.selectivity_table(table))
    # layer 4, mean pooling: 1 + 0.4 + 0.2
    assert shown.loc[("m", "pre-trained", "bigram_shift", "mean"), 4] == "1.60"
    assert shown.loc[("m", "cola (cls)", "odd_man_out", "cls"), 0] == "1.00"
    assert "best selectivity" not in out["printed"]  # a table now, not a monospace block
    # pre-trained mean pooling: accuracy 0.65 + 0.02 * layer, control 0.5 + 0.01 * layer -> best at layer 4
    selectivity = analysis.selectivity_by_layer(table)
    best = selectivity[(selectivity["finetune_task"] == "none") & (selectivity["pooling"] == "mean")
                       & (selectivity["probe_task"] == "bigram_shift") & (selectivity["layer"] == 4)]
    assert best["selectivity"].item() == pytest.approx(0.73 - 0.54)
    assert "m, pre-trained, bigram_shift (mean): best selectivity 19.0 points at layer 4" in report.selectivity_summary(table)
    assert best_shown.loc[("m", "pre-trained", "bigram_shift", "mean")].to_dict() == {
        "best layer": "4", "selectivity": "19.0", "accuracy": "73.0", "control accuracy": "54.0",
        "control gain": "-", "selectivity vs majority": "-"}  # rows recorded without majority rates
    assert set(shown["noise floor"]) == {"-"}  # and without the MDL noise floor


def test_similarity_page_shows_the_analysis_numbers(tmp_path):
    from probeft import report
    from probeft.results import analysis

    table = full_table()
    out = run_page(BOOK_DIR / "similarity.md", write_generated(tmp_path, table))
    assert out["figures"] == 1 and NOTE not in out["printed"]
    (shown,) = out["displayed"]
    pd.testing.assert_frame_equal(shown, report.cka_layer_table(table))
    assert shown.loc[("m", "cola (cls)", "bigram_shift", "mean"), 3] == "0.700"
    assert shown.loc[("m", "sst2 (cls)", "odd_man_out", "cls"), 0] == "-"  # constant CLS embedding: no row
    assert "pre-trained" not in shown.index.get_level_values("encoder")
    frame = analysis.cka_by_layer(table)
    assert set(frame["seeds"]) == {1} and (frame["cka_std"] == 0).all()


def test_claims_page_shows_the_run_evaluation(tmp_path):
    from probeft import report
    from probeft.verdicts import claims

    table = full_table()
    out = run_page(BOOK_DIR / "claims.md", write_generated(tmp_path, table))
    summary, checks_shown, margins_shown = out["displayed"]
    expected = claims.evaluate_claims(table)  # no claims.csv in _generated: point estimates from the table
    pd.testing.assert_frame_equal(summary, report.findings_table(claims.summarise(expected)))
    pd.testing.assert_frame_equal(checks_shown, report.claims_checks_table(expected))
    # synthetic attention: the CLS head lowers first-token entropy (1.0 vs 2.0 pre-trained): contradicted
    assert summary.loc["F8", "verdict"] == "contradicted"
    # every margin with its justification, from the one module that states them
    from probeft.verdicts import margins
    pd.testing.assert_frame_equal(margins_shown, margins.margins_table())
    # with a claims.csv the page shows that file, not a re-evaluation
    written = expected.assign(verdict="supported")
    written.to_csv(tmp_path / "_generated" / claims.CLAIMS_FILE, index=False)
    summary, *_ = run_page(BOOK_DIR / "claims.md", tmp_path)["displayed"]
    counts = claims.summarise(written).set_index("claim")["checks"]
    assert (summary["verdict"].drop(index=[c for c in summary.index if counts[c] == 0]) == "supported").all()


@pytest.mark.parametrize(("run", "figures"), [("minilm", 5), ("mpnet", 4)])
def test_validation_pages_read_the_committed_tables_or_note_their_absence(tmp_path, run, figures):
    from probeft import report
    from probeft.verdicts import claims, delta_intervals

    table = full_table()
    generated = write_generated(tmp_path / "made", table, intervals=True) / "_generated"
    shutil.copytree(generated, tmp_path / "validation" / run)
    (tmp_path / "book").mkdir()
    out = run_page(BOOK_DIR / f"validation_{run}.md", tmp_path / "book")
    record = json.loads((generated / "grid.json").read_text())
    provenance = json.loads((generated / "provenance.json").read_text())
    assert report.run_summary(record, provenance) in out["notes"] and NOTE not in out["printed"]
    assert [str(b) for b in out["banners"]] == [str(report.run_banner(record, provenance))]
    # no claims.csv: recomputed from the exported Delta intervals, as `probeft claims` does
    checks = claims.evaluate_claims(results.load_results(generated / results.RESULTS_FILE),
                                    intervals=delta_intervals.load_delta_intervals(generated / "delta_intervals.csv"))
    # the summary of every finding first, then every check
    pd.testing.assert_frame_equal(out["displayed"][0], report.findings_table(claims.summarise(checks)))
    pd.testing.assert_frame_equal(out["displayed"][1], report.claims_checks_table(checks))
    assert out["figures"] == figures  # Figure 1, Figure 4 (CLS Deltas), Figure 2, CKA; MiniLM: Figure 3 (analogue)
    (tmp_path / "elsewhere" / "book").mkdir(parents=True)
    absent = run_page(BOOK_DIR / f"validation_{run}.md", tmp_path / "elsewhere" / "book")
    assert NOTE in absent["printed"] and not absent["displayed"] and absent["figures"] == 0


def test_the_committed_validation_tables_load_and_hold_their_claims():
    """What the "Real weights" pages show: the committed tables are valid and claims.csv matches results.csv."""
    from probeft.verdicts import claims

    for run in sorted((BOOK_DIR.parent / "validation").iterdir()):
        table = results.load_results(run / results.RESULTS_FILE)
        checks = claims.load_claims(run / claims.CLAIMS_FILE)
        assert checks is not None and set(checks["claim"]) == set(claims.CLAIMS), run
        computable = checks[checks["verdict"] != "not computable"]
        point = claims.evaluate_claims(table)  # point estimates from the table: the same estimates
        # (except F3's |Delta| slope, which subtracts a noise floor, and F3's share of significant layers,
        # which needs the intervals of delta_intervals.csv)
        comparable = computable[~computable["quantity"].str.contains("noise floor|significant Delta")]
        merged = comparable.merge(point, on=["claim", "model", "scope", "quantity"], suffixes=("", "_point"))
        assert len(merged) == len(comparable) and np.allclose(merged["estimate"], merged["estimate_point"]), run


def test_run_summary_counts_cells_and_hours():
    from probeft import report

    cell = {"device": "cpu", "wall_time_s": 1800.0, "git_commit": "0123456789abcdef", "packages": {"torch": "2.13.0"}}
    text = report.run_summary({"config": {"name": "minilm"}}, {"finetune__a": cell, "probing__b": cell, "probing__c": cell})
    assert text == ("Config 'minilm': 3 cells (1 finetune, 2 probing), 1.50 h of cell wall time on cpu; probeft commit "
                    "0123456789; torch 2.13.0, transformers ?.")


def test_the_sources_table_lists_what_each_cell_read_by_version():
    from probeft import report

    commit = "0123456789abcdef0123456789abcdef01234567"
    provenance = {
        "probing-cell": {"sources": {"models:bert-base-cased": commit, "senteval:bigram_shift": "b" * 40},
                         "data_files": {"senteval/odd_man_out.txt": "f" * 64}},
        "old-cell": {"data_files": {"glue/CoLA/train.tsv": "a" * 64}},  # ran before sources were recorded
    }
    table = report.sources_table(provenance)
    assert table.values.tolist() == [
        ["probing-cell", "model", "bert-base-cased", commit],
        ["probing-cell", "SentEval download", "bigram_shift", "b" * 40],
        ["probing-cell", "data file", "senteval/odd_man_out.txt", "sha256 " + "f" * 16],
        ["old-cell", "data file", "glue/CoLA/train.tsv", "sha256 " + "a" * 16],
    ]
    assert report.sources_table({}).columns.tolist() == ["cell", "kind", "source", "version"]


def with_mlp_rows(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` plus MLP probe rows: each linear accuracy / control accuracy / selectivity row copied with
    ``probe="mlp"``, accuracy and control accuracy 0.1 higher (so selectivity is the same)."""
    rows = table[(table["stage"] == "probing") & table["metric"].isin(["accuracy", "control_accuracy", "selectivity"])]
    mlp = rows.assign(probe="mlp")
    mlp.loc[mlp["metric"] != "selectivity", "value"] += 0.1
    return results.validate_results(pd.concat([table, mlp], ignore_index=True), source="with_mlp_rows")


def test_selectivity_page_shows_linear_and_mlp_side_by_side_and_other_pages_ignore_the_mlp(tmp_path):
    from probeft import report

    table = full_table()
    both = with_mlp_rows(table)
    out = run_page(BOOK_DIR / "selectivity.md", write_generated(tmp_path / "both", both))
    best_shown, comparison, compression = out["displayed"]
    pd.testing.assert_frame_equal(best_shown, report.selectivity_table(table))  # the linear probe's
    pd.testing.assert_frame_equal(comparison, report.probe_comparison_table(both))
    row = comparison.loc[("m", "pre-trained", "bigram_shift", "mean")]
    # accuracy 0.65 + 0.02 * layer (best layer 4), the MLP's 10 points higher; selectivity 0.73 - 0.54 for both
    assert row.to_dict() == {"linear layer": "4", "mlp layer": "4", "linear accuracy": "73.0", "mlp accuracy": "83.0",
                             "linear selectivity": "19.0", "mlp selectivity": "19.0",
                             "linear best selectivity": "19.0", "mlp best selectivity": "19.0"}
    for page in ("figure1", "delta", "claims"):
        with_mlp = run_page(BOOK_DIR / f"{page}.md", write_generated(tmp_path / f"{page}-mlp", both))
        linear = run_page(BOOK_DIR / f"{page}.md", write_generated(tmp_path / f"{page}-linear", table))
        assert with_mlp["printed"] == linear["printed"] and with_mlp["figures"] == linear["figures"]
        for a, b in zip(with_mlp["displayed"], linear["displayed"], strict=True):
            pd.testing.assert_frame_equal(a, b)
