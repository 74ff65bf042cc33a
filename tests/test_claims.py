"""The paper's findings as checks: verdict rules, known synthetic runs, and the claims command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probeft import results
from probeft.core.names import NO_FINETUNE
from probeft.grid import cli
from probeft.results import predictions
from probeft.verdicts import claims, uncertainty

N_TEST = 400
LAYERS = range(5)  # 4-layer encoder: groups 0-2 and 3-4


def _correct(accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """``N_TEST`` booleans with exactly ``round(accuracy * N_TEST)`` True, at random places."""
    correct = np.zeros(N_TEST, dtype=bool)
    correct[rng.choice(N_TEST, int(round(accuracy * N_TEST)), replace=False)] = True
    return correct


def synthetic_run(accuracy, *, tasks=("bigram_shift", "odd_man_out"), finetunes=(("cola", "cls"),), seed=0):
    """Results rows and predictions of one model: ``accuracy(ft, task, pooling, layer)`` -> fraction.

    Dev accuracy equals test accuracy, so the dev-best layer is the test-best layer.
    """
    rng = np.random.default_rng(seed)
    rows, cells = [], []
    for ft, head in ((NO_FINETUNE, NO_FINETUNE), *finetunes):
        task_predictions = []
        for task in tasks:
            probes, correct = [], []
            for pooling in ("cls", "mean"):
                for layer in LAYERS:
                    c = _correct(accuracy(ft, task, pooling, layer), rng)
                    probes.append((pooling, layer))
                    correct.append(c)
                    for split in ("dev", "test"):
                        rows.append({"stage": "probing", "model": "m", "finetune_task": ft, "finetune_head": head,
                                     "seed": 0, "epoch": 0, "probe_task": task, "pooling": pooling, "layer": layer,
                                     "split": split, "metric": "accuracy", "value": float(c.mean())})
            task_predictions.append(predictions.TaskPredictions(task, probes, np.stack(correct), f"sha-{task}"))
        cell = {"model": "m", "finetune_task": ft, "finetune_head": head, "seed": 0, "epoch": 0}
        cells.append(predictions.CellPredictions(Path(f"{ft}.npz"), cell, {t.probe_task: t for t in task_predictions}))
    return results.results_frame(rows), cells


def paper_like(ft: str, task: str, pooling: str, layer: int) -> float:
    """Mean pooling better, bigram shift easiest, CoLA raises upper-layer CLS bigram shift."""
    base = 0.7 if task == "bigram_shift" else 0.6
    base += 0.1 if pooling == "mean" else 0.0
    if ft == "cola" and task == "bigram_shift" and pooling == "cls" and layer >= 3:
        base += 0.1
    return base


def by_claim(checks: pd.DataFrame, claim: str) -> pd.DataFrame:
    return checks[checks["claim"] == claim]


@pytest.mark.parametrize(
    ("estimate", "low", "high", "direction", "verdict"),
    [
        (0.1, 0.05, 0.15, ">", "holds"),
        (0.1, -0.01, 0.2, ">", "does not hold"),
        (-0.1, -0.2, -0.05, ">", "does not hold"),
        (-0.1, -0.2, -0.05, "<", "holds"),
        (0.0, -0.01, 0.01, ">=", "holds"),  # non-strict: no significant violation
        (-0.1, -0.2, -0.05, ">=", "does not hold"),
        (0.1, 0.05, 0.15, "<=", "does not hold"),
        (0.3, np.nan, np.nan, ">", "holds"),  # no interval: the point estimate decides
        (-0.3, np.nan, np.nan, ">", "does not hold"),
        (np.nan, np.nan, np.nan, ">", "not computable"),
    ],
)
def test_judge(estimate, low, high, direction, verdict):
    assert claims.judge(estimate, low, high, direction)[0] == verdict


def test_judge_rejects_unknown_direction():
    with pytest.raises(ValueError, match="direction"):
        claims.judge(0.1, 0.0, 0.2, "=>")


def test_paper_like_run_holds_where_built_in():
    table, cells = synthetic_run(paper_like)
    checks = claims.evaluate_claims(table, cells)
    f1 = by_claim(checks, "F1")
    assert len(f1) == 2 and (f1["verdict"] == "holds").all()
    # Best mean 0.8 vs best CLS 0.75 (CoLA raise is only fine-tuned), on bigram shift: +0.1 exactly.
    bigram = f1[f1["scope"] == "probe_task=bigram_shift"].iloc[0]
    assert bigram["estimate"] == pytest.approx(0.1) and bigram["ci_low"] > 0
    f2 = by_claim(checks, "F2")
    assert list(f2["verdict"]) == ["holds", "holds"]
    assert f2["estimate"].to_numpy() == pytest.approx([0.1, 0.1])
    f4 = by_claim(checks, "F4")
    assert list(f4["verdict"]) == ["holds", "holds"]
    assert f4.iloc[0]["estimate"] == pytest.approx(0.1)  # upper-layer Delta, CLS pooling
    # Nothing else changed: mean-pooling Deltas are 0, and F9 (fine-tuned CLS 0.8 <= mean 0.8) holds.
    f9 = by_claim(checks, "F9")
    assert (f9["verdict"] == "holds").all()
    assert f9[f9["scope"].str.contains("bigram")]["estimate"].iloc[0] == pytest.approx(0.0)
    # No perplexity / attention / SST-2 rows: not computable, with the reason.
    for claim in ("F5", "F6", "F7", "F8"):
        row = by_claim(checks, claim)
        assert list(row["verdict"]) == ["not computable"] and row["reason"].iloc[0].startswith("the run has no")


def test_interval_is_the_paired_bootstrap_of_the_statistic():
    table, cells = synthetic_run(paper_like)
    checks = claims.evaluate_claims(table, cells, resamples=500, seed=3)
    f4 = by_claim(checks, "F4").iloc[0]  # mean Delta over layers 3-4, CLS pooling, bigram shift
    pre = cells[0].tasks["bigram_shift"].correct[[3, 4]]  # probes ordered (cls, 0..4), (mean, 0..4)
    post = cells[1].tasks["bigram_shift"].correct[[3, 4]]
    sha_index = sorted(["sha-bigram_shift", "sha-odd_man_out"]).index("sha-bigram_shift")
    pre_boot = uncertainty.resampled_accuracies(pre, resamples=500, seed=3 + sha_index)
    post_boot = uncertainty.resampled_accuracies(post, resamples=500, seed=3 + sha_index)
    expected = uncertainty.percentile_interval((post_boot - pre_boot).mean(axis=0))
    assert (f4["ci_low"], f4["ci_high"]) == pytest.approx(expected)


def test_violations_are_found():
    def cls_better(ft, task, pooling, layer):
        return 0.8 if pooling == "cls" else 0.6

    checks = claims.evaluate_claims(*synthetic_run(cls_better))
    f1 = by_claim(checks, "F1")
    assert (f1["verdict"] == "does not hold").all()
    assert f1["estimate"].to_numpy() == pytest.approx([-0.2, -0.2])
    assert (f1["ci_high"] < 0).all()
    summary = claims.summarise(checks).set_index("claim")
    assert summary.loc["F1", "verdict"] == "does not hold" and summary.loc["F1", "reason"] == "0 of 2 checks hold"
    # Equal task accuracies: F2 is strict, so an interval around 0 does not hold.
    assert (by_claim(checks, "F2")["reason"] == "interval includes 0").all()


def test_lower_layer_change_fails_f3_upper_change_holds():
    def change(where):
        def accuracy(ft, task, pooling, layer):
            moved = ft != NO_FINETUNE and (layer <= 2 if where == "lower" else layer >= 3)
            return 0.6 - (0.1 if moved else 0.0)
        return accuracy

    lower = by_claim(claims.evaluate_claims(*synthetic_run(change("lower"))), "F3")
    upper = by_claim(claims.evaluate_claims(*synthetic_run(change("upper"))), "F3")
    assert len(lower) == 4 and (lower["verdict"] == "does not hold").all()  # 2 tasks x 2 poolings
    assert (upper["verdict"] == "holds").all()
    assert upper["estimate"].to_numpy() == pytest.approx(0.1)


def test_without_predictions_the_point_estimate_decides():
    table, _ = synthetic_run(paper_like)
    f1 = by_claim(claims.evaluate_claims(table, []), "F1")
    assert (f1["interval"] == "none").all() and f1["ci_low"].isna().all()
    assert (f1["verdict"] == "holds").all() and f1["reason"].str.contains("no probe_predictions.npz").all()


def _perplexity_rows(rises: dict[str, list[float]], k_max: int = 2) -> pd.DataFrame:
    rows = [{"stage": "perplexity", "model": "m", "metric": "perplexity", "split": "test", "value": 10.0,
             "k_replaced": -1}]
    for task, values in rises.items():
        for seed, rise in enumerate(values):
            for epoch in (1, 2):
                rows.append({"stage": "perplexity", "model": "m", "finetune_task": task, "finetune_head": "cls",
                             "seed": seed, "epoch": epoch, "metric": "perplexity", "split": "test",
                             "value": 10.0 + rise * epoch / 2, "k_replaced": -1})
            for k in range(k_max + 1):  # replacing layers brings it back to 10
                rows.append({"stage": "perplexity", "model": "m", "finetune_task": task, "finetune_head": "cls",
                             "seed": seed, "epoch": 2, "metric": "perplexity", "split": "test",
                             "value": 10.0 + rise * (1 - k / k_max), "k_replaced": k})
    return results.results_frame(rows)


def test_perplexity_claims_with_seed_intervals():
    checks = claims.evaluate_claims(_perplexity_rows({"cola": [1.0, 2.0, 3.0], "sst2": [5.0, 6.0, 7.0]}))
    f6 = by_claim(checks, "F6").set_index("scope")
    cola = f6.loc["ft=cola-cls"]
    half = 4.302652729911275 / np.sqrt(3)  # t(0.975, 2) * std 1 / sqrt(3)
    assert cola["estimate"] == pytest.approx(2.0)
    assert (cola["ci_low"], cola["ci_high"]) == pytest.approx((2 - half, 2 + half))
    assert cola["verdict"] == "does not hold" and cola["reason"] == "interval includes 0"  # 2 - 2.48 < 0
    difference = f6.loc["head=cls"]
    assert difference["estimate"] == pytest.approx(4.0) and difference["verdict"] == "holds"
    f7 = by_claim(checks, "F7").set_index("scope")
    assert f7.loc["ft=sst2-cls", "estimate"] == pytest.approx(-6.0) and f7.loc["ft=sst2-cls", "verdict"] == "holds"


def test_one_seed_perplexity_has_no_interval():
    f6 = by_claim(claims.evaluate_claims(_perplexity_rows({"cola": [-1.0]})), "F6")
    assert f6["interval"].tolist() == ["none"] and f6["verdict"].tolist() == ["does not hold"]
    assert "one seed" in f6["reason"].iloc[0]


def test_attention_entropy_claim():
    rows = []
    for ft, head, raise_by in ((NO_FINETUNE, NO_FINETUNE, 0.0), ("cola", "cls", 0.5), ("cola", "mean", 0.1)):
        for layer in range(1, 5):
            rows.append({"stage": "attention", "model": "m", "finetune_task": ft, "finetune_head": head,
                         "layer": layer, "metric": "entropy", "position": "first",
                         "value": 1.0 + (raise_by if layer >= 3 else 0.0)})
    f8 = by_claim(claims.evaluate_claims(results.results_frame(rows)), "F8")
    assert f8["estimate"].to_numpy() == pytest.approx([0.5, 0.4])
    assert (f8["verdict"] == "holds").all() and (f8["interval"] == "none").all()


def test_claims_command_prints_and_writes(tmp_path, capsys):
    table, cells = synthetic_run(paper_like)
    run = tmp_path / "run"
    (run / "cells").mkdir(parents=True)
    table.to_csv(run / results.RESULTS_FILE, index=False)
    assert cli.main(["claims", str(run), "--checks", "--resamples", "200"]) == 0
    printed = capsys.readouterr().out
    assert "F1" in printed and "holds" in printed and "not computable" in printed
    written = claims.load_claims(run / claims.CLAIMS_FILE)
    assert set(written["claim"]) == set(claims.CLAIMS)
    # Without cells' predictions the CLI falls back to point estimates.
    assert (written[written["claim"] == "F1"]["interval"] == "none").all()


def test_claims_command_names_a_missing_run(tmp_path, capsys):
    assert cli.main(["claims", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_load_claims_rejects_other_tables(tmp_path):
    path = tmp_path / "claims.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="claims.csv"):
        claims.load_claims(path)
    assert claims.load_claims(tmp_path / "absent.csv") is None


def test_claims_csv_round_trips(tmp_path):
    table, cells = synthetic_run(paper_like)
    written = claims.write_claims(table, cells, tmp_path / "claims.csv", resamples=100)
    pd.testing.assert_frame_equal(claims.load_claims(tmp_path / "claims.csv"), written, check_dtype=False)


def test_claims_command_keeps_the_intervals_of_an_exported_run(tmp_path, capsys):
    """An exported run (no cells/) re-checked from the CLI shows its stored interval verdicts, unchanged."""
    table, cells = synthetic_run(paper_like)
    run = tmp_path / "exported"
    run.mkdir()
    table.to_csv(run / results.RESULTS_FILE, index=False)
    with_intervals = claims.write_claims(table, cells, run / claims.CLAIMS_FILE)
    assert (with_intervals["interval"] != "none").any()
    before = (run / claims.CLAIMS_FILE).read_text()
    assert cli.main(["claims", str(run)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{run / claims.CLAIMS_FILE}: the verdicts computed with intervals")
    assert (run / claims.CLAIMS_FILE).read_text() == before
    # asked for point estimates: labelled as such, and they never replace the intervals
    assert cli.main(["claims", str(run), "--point-estimates", "--checks"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("POINT ESTIMATES ONLY (asked for)") and "holds bootstrap intervals" in printed
    assert "nan" not in printed.lower() and (run / claims.CLAIMS_FILE).read_text() == before
    # a point-estimate claims.csv has nothing to lose: --point-estimates rewrites it
    claims.write_claims(table, [], run / claims.CLAIMS_FILE).assign(verdict="x").to_csv(run / claims.CLAIMS_FILE, index=False)
    assert cli.main(["claims", str(run), "--point-estimates"]) == 0
    assert (claims.load_claims(run / claims.CLAIMS_FILE)["verdict"] != "x").all()


def test_the_cli_only_counts_complete_cells_like_the_grid(tmp_path, capsys):
    """``probeft claims`` on a run dir gives the verdicts the grid wrote: same function, same (complete) cells."""
    table, cells = synthetic_run(paper_like)
    run = tmp_path / "run"
    (run / "cells").mkdir(parents=True)
    table.to_csv(run / results.RESULTS_FILE, index=False)
    found = claims.claims_of_run(run)
    assert found.source == "point estimates" and found.note.startswith("POINT ESTIMATES ONLY (no cells'")


@pytest.mark.parametrize("name", ["minilm", "mpnet"])
def test_cli_claims_csv_and_book_agree_on_the_committed_runs(name, capsys):
    run = Path(__file__).resolve().parents[1] / "validation" / name
    stored = claims.load_claims(run / claims.CLAIMS_FILE)
    book = claims.summarise(stored).set_index("claim")["verdict"]  # what the real-weight page shows
    assert cli.main(["claims", str(run), "--no-write"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].endswith("an exported run); the book shows the same")
    cli_verdicts = {}
    for line in printed[2:]:
        claim, rest = line.strip().split(maxsplit=1)
        cli_verdicts[claim] = next(v for v in (claims.HOLDS, claims.FAILS, claims.NOT_COMPUTABLE) if rest.startswith(v))
    assert cli_verdicts == book.to_dict()


@pytest.mark.parametrize(("estimate", "direction", "verdict"), [
    (2.78e-17, ">", "does not hold"),  # an exact tie computed in another order is no gain
    (-2.78e-17, ">=", "holds"),
    (-2.78e-17, "<", "does not hold"),
])
def test_float_noise_is_a_tie(estimate, direction, verdict):
    assert claims.judge(estimate, np.nan, np.nan, direction)[0] == verdict
    assert claims.judge(0.01, 2.78e-17, 0.02, ">")[0] == "does not hold"  # the interval touches 0
