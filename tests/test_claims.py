"""The paper's findings as checks: three-valued verdicts, MDEs, known simulated runs, and the claims command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probeft import results
from probeft.core.names import FITTED_HEAD_NOTE, NO_FINETUNE
from probeft.grid import cli
from probeft.results import attention_sentences, predictions
from probeft.verdicts import claims, delta_intervals, margins, power, uncertainty

N_TEST = 400
LAYERS = range(5)  # 4-layer encoder: groups 0-2 and 3-4
SUPPORTED, CONTRADICTED, INCONCLUSIVE = claims.SUPPORTED, claims.CONTRADICTED, claims.INCONCLUSIVE


def _correct(accuracy: float, rng: np.random.Generator, n_test: int = N_TEST) -> np.ndarray:
    """``n_test`` booleans with exactly ``round(accuracy * n_test)`` True, at random places."""
    correct = np.zeros(n_test, dtype=bool)
    correct[rng.choice(n_test, int(round(accuracy * n_test)), replace=False)] = True
    return correct


def synthetic_run(accuracy, *, tasks=("bigram_shift", "odd_man_out"), finetunes=(("cola", "cls"),), seed=0,
                  n_test=N_TEST):
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
                    c = _correct(accuracy(ft, task, pooling, layer), rng, n_test)
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
    base += 0.15 if pooling == "mean" else 0.0
    if ft == "cola" and task == "bigram_shift" and pooling == "cls" and layer >= 3:
        base += 0.1
    return base


def by_claim(checks: pd.DataFrame, claim: str) -> pd.DataFrame:
    return checks[checks["claim"] == claim]


@pytest.mark.parametrize(
    ("estimate", "low", "high", "direction", "effect", "verdict"),
    [
        (0.1, 0.05, 0.15, ">", 0.02, SUPPORTED),
        (0.01, 0.005, 0.015, ">", 0.02, SUPPORTED),  # the direction holds, smaller than claimed (said in the reason)
        (0.1, -0.01, 0.2, ">", 0.02, INCONCLUSIVE),
        (0.0, -0.01, 0.015, ">", 0.02, CONTRADICTED),  # rules out the claimed 2 points
        (0.0, -0.01, 0.015, ">", 0.0, INCONCLUSIVE),  # a direction-only claim: includes 0
        (-0.1, -0.2, -0.05, ">", 0.0, CONTRADICTED),
        (-0.1, -0.2, -0.05, "<", 0.02, SUPPORTED),
        (0.0, -0.01, 0.01, "<", 0.02, CONTRADICTED),
        (0.0, -0.01, 0.01, "<=", 0.02, SUPPORTED),  # non-superiority: below the margin
        (0.03, 0.01, 0.05, "<=", 0.02, INCONCLUSIVE),
        (0.1, 0.05, 0.15, "<=", 0.02, CONTRADICTED),
        (0.0, -0.01, 0.01, ">=", 0.02, SUPPORTED),  # non-inferiority: above -margin
        (-0.1, -0.15, -0.05, ">=", 0.02, CONTRADICTED),
        (0.3, np.nan, np.nan, ">", 0.02, SUPPORTED),  # no interval: the point estimate decides
        (-0.3, np.nan, np.nan, ">", 0.02, CONTRADICTED),
        (np.nan, np.nan, np.nan, ">", 0.02, "not computable"),
    ],
)
def test_judge(estimate, low, high, direction, effect, verdict):
    assert claims.judge(estimate, low, high, direction, effect)[0] == verdict


def test_judge_says_underpowered_and_smaller_than_claimed():
    verdict, reason = claims.judge(0.01, -0.05, 0.07, ">", 0.02, mde=0.084)
    assert verdict == INCONCLUSIVE and reason.endswith("underpowered: MDE 8.4 points > 2.0 points")
    assert "below the claimed 2.0 points" in claims.judge(0.01, 0.005, 0.015, ">", 0.02)[1]


def test_judge_rejects_unknown_direction_and_negative_effect():
    with pytest.raises(ValueError, match="direction"):
        claims.judge(0.1, 0.0, 0.2, "=>")
    with pytest.raises(ValueError, match="effect"):
        claims.judge(0.1, 0.0, 0.2, ">", -0.02)


def test_mde_matches_the_closed_form():
    factor = 1.959963984540054 + 0.8416212335729143  # z_0.975 + z_0.8
    assert power.minimum_detectable_effect(1.0) == pytest.approx(factor)
    assert power.paired_accuracy_mde(0.1, 300) == pytest.approx(factor * np.sqrt(0.1 / 300))  # 5.1 points
    assert power.paired_accuracy_mde(0.1, 300) == pytest.approx(0.05115, abs=1e-5)
    assert power.se_from_interval(-1.959963984540054, 1.959963984540054) == pytest.approx(1.0)
    assert np.isnan(power.se_from_interval(np.nan, 1.0))
    # 4x the sentences halve the MDE; 90% power needs more
    assert power.paired_accuracy_mde(0.1, 1200) == pytest.approx(power.paired_accuracy_mde(0.1, 300) / 2)
    assert power.minimum_detectable_effect(1.0, power=0.9) > factor
    with pytest.raises(ValueError, match="alpha"):
        power.minimum_detectable_effect(1.0, alpha=0)
    with pytest.raises(ValueError, match="discordant"):
        power.paired_accuracy_mde(1.5, 300)


def test_a_check_carries_the_mde_of_its_interval():
    table, cells = synthetic_run(paper_like)
    f1 = by_claim(claims.evaluate_claims(table, cells, resamples=300), "F1").iloc[0]
    se = power.se_from_interval(f1["ci_low"], f1["ci_high"])
    assert f1["mde"] == pytest.approx(power.minimum_detectable_effect(se)) and f1["effect"] == margins.EFFECT


def test_every_margin_is_justified_once():
    table = margins.margins_table()
    assert {"EFFECT", "F4_RATIO", "F9_MARGIN", "F3_TREND", "F7_RECOVERY", "F8_LAST_LAYERS"} <= set(table["name"])
    assert table["name"].is_unique and (table["justification"].str.len() > 40).all()
    assert table.set_index("name").loc["F4_RATIO", "value"] == margins.F4_RATIO == 0.5


def test_paper_like_run_is_supported_where_built_in():
    table, cells = synthetic_run(paper_like)
    checks = claims.evaluate_claims(table, cells)
    f1 = by_claim(checks, "F1")
    assert len(f1) == 2 and (f1["verdict"] == SUPPORTED).all()
    # Best mean 0.85 vs best CLS 0.7 (CoLA raise is only fine-tuned), on bigram shift: +0.15 exactly.
    bigram = f1[f1["scope"] == "probe_task=bigram_shift"].iloc[0]
    assert bigram["estimate"] == pytest.approx(0.15) and bigram["ci_low"] > 0
    f4 = by_claim(checks, "F4")
    assert list(f4["verdict"]) == [SUPPORTED, SUPPORTED]
    assert f4.iloc[0]["estimate"] == pytest.approx(0.1)  # upper-layer Delta, CLS pooling
    assert f4.iloc[1]["estimate"] == pytest.approx(-0.05)  # mean-pooling gain 0 - 0.5 x 0.1
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


def _flat(value):
    return lambda ft, task, pooling, layer: value


def _pooling(mean, cls):
    return lambda ft, task, pooling, layer: mean if pooling == "mean" else cls


def _tuned(pre, post, *, where=lambda task, pooling, layer: True):
    return lambda ft, task, pooling, layer: post if ft != NO_FINETUNE and where(task, pooling, layer) else pre


def _cola_bigram(cls_gain, mean_gain, base=0.6):
    def accuracy(ft, task, pooling, layer):
        if ft == "cola" and task == "bigram_shift" and layer >= 3:
            return base + (cls_gain if pooling == "cls" else mean_gain)
        return base
    return accuracy


def _gain_vs_mean(tuned_cls, pre_mean, pre_cls=0.5):
    def accuracy(ft, task, pooling, layer):
        if pooling == "mean":
            return pre_mean
        return tuned_cls if ft != NO_FINETUNE and layer >= 3 else pre_cls
    return accuracy


# claim, quantity (a substring), scenario -> (accuracy function, n_test, expected verdict, underpowered)
KNOWN = {
    ("F1", "mean - CLS", "true"): (_pooling(0.85, 0.65), 400, SUPPORTED, False),
    ("F1", "mean - CLS", "false"): (_pooling(0.6, 0.8), 400, CONTRADICTED, False),
    ("F1", "mean - CLS", "underpowered"): (_pooling(0.72, 0.7), 40, INCONCLUSIVE, True),
    ("F3", "depth slope", "true"): (_tuned(0.7, 0.5, where=lambda t, p, layer: layer >= 3), 400, SUPPORTED, False),
    ("F3", "depth slope", "false"): (_tuned(0.7, 0.5, where=lambda t, p, layer: layer <= 2), 400, CONTRADICTED, False),
    ("F3", "depth slope", "underpowered"): (_tuned(0.7, 0.66, where=lambda t, p, layer: layer >= 3), 40,
                                            INCONCLUSIVE, True),
    ("F3", "share", "true"): (_tuned(0.7, 0.5, where=lambda t, p, layer: layer >= 3), 400, SUPPORTED, False),
    ("F3", "share", "false"): (_tuned(0.7, 0.5, where=lambda t, p, layer: layer <= 2), 400, CONTRADICTED, False),
    ("F4", ", CLS pooling", "true"): (_cola_bigram(0.2, 0.0), 400, SUPPORTED, False),
    ("F4", ", CLS pooling", "false"): (_cola_bigram(-0.2, 0.0), 400, CONTRADICTED, False),
    ("F4", ", CLS pooling", "underpowered"): (_cola_bigram(0.04, 0.0), 40, INCONCLUSIVE, True),
    ("F4", "mean pooling - 0.5", "true"): (_cola_bigram(0.2, 0.0), 400, SUPPORTED, False),
    ("F4", "mean pooling - 0.5", "false"): (_cola_bigram(0.2, 0.2), 400, CONTRADICTED, False),
    ("F4", "mean pooling - 0.5", "underpowered"): (_cola_bigram(0.1, 0.05), 40, INCONCLUSIVE, False),
    ("F9", "max over layers", "true"): (_gain_vs_mean(0.75, 0.9), 400, SUPPORTED, False),
    ("F9", "max over layers", "false"): (_gain_vs_mean(0.95, 0.7), 400, CONTRADICTED, False),
    ("F9", "max over layers", "underpowered"): (_gain_vs_mean(0.9, 0.9), 40, INCONCLUSIVE, True),
}


@pytest.mark.parametrize(("claim", "quantity", "scenario"), list(KNOWN))
def test_each_check_has_its_known_answer(claim, quantity, scenario):
    """A simulated run where the claim is true, one where it is false, and one too small to tell."""
    accuracy, n_test, verdict, underpowered = KNOWN[(claim, quantity, scenario)]
    table, cells = synthetic_run(accuracy, n_test=n_test, seed=1)
    checks = by_claim(claims.evaluate_claims(table, cells, resamples=400), claim)
    own = checks[checks["quantity"].str.contains(quantity, regex=False)]
    assert len(own) and (own["verdict"] == verdict).all(), own[["scope", "estimate", "ci_low", "ci_high", "reason"]]
    assert own["reason"].str.contains("underpowered").all() == underpowered
    assert (own["interval"] != "none").all()


def test_a_paper_effect_per_check_can_replace_the_margin():
    table, cells = synthetic_run(paper_like)
    checks = claims.evaluate_claims(table, cells, resamples=300)
    f4 = by_claim(checks, "F4").iloc[0]  # CLS gain 0.1, interval about [0.05, 0.15]
    key = (f4["claim"], f4["model"], f4["scope"], f4["quantity"])
    larger = claims.with_effects(checks, {key: 0.3}).loc[f4.name]  # a paper effect of 30 points is ruled out
    assert f4["verdict"] == SUPPORTED and larger["verdict"] == SUPPORTED and "below the claimed 30.0" in larger["reason"]
    checks.loc[f4.name, ["ci_low", "ci_high"]] = [-0.01, 0.2]  # an interval that includes 0, and below 0.3
    rejudged = claims.with_effects(checks, {key: 0.3}).loc[f4.name]
    assert rejudged["verdict"] == CONTRADICTED and rejudged["effect"] == 0.3
    assert rejudged["reason"] == "interval excludes the claimed effect of 30.0 points"
    assert claims.with_effects(checks, {}).equals(checks)


def test_f3_trend_is_calibrated_without_any_change():
    """|Delta| of noise is positive: without the noise floor a null run would look like a depth trend."""
    verdicts = []
    for seed in range(8):
        table, cells = synthetic_run(_flat(0.7), n_test=200, seed=seed)
        trend = by_claim(claims.evaluate_claims(table, cells, resamples=200), "F3").iloc[0]
        verdicts.append(trend["verdict"])
    assert verdicts.count(SUPPORTED) <= 1


def test_f9_is_checked_only_where_fine_tuning_gave_a_gain():
    table, cells = synthetic_run(_flat(0.7))
    f9 = by_claim(claims.evaluate_claims(table, cells, resamples=200), "F9")
    assert list(f9["verdict"]) == ["not computable"]


def test_an_exported_run_is_judged_from_its_delta_intervals():
    """No cells: Deltas take the stored paired intervals; contrasts of two probes are wider (unpaired)."""
    table, cells = synthetic_run(paper_like)
    intervals = delta_intervals.delta_intervals(cells, resamples=1000)
    test = table["split"] == "test"
    cis = [uncertainty.bootstrap_accuracy_ci(c) for cell in cells for t in cell.tasks.values() for c in t.correct]
    assert len(cis) == test.sum()  # rows and probes in the same order (ft, task, pooling, layer)
    table.loc[test, "ci_low"] = [c.low for c in cis]
    table.loc[test, "ci_high"] = [c.high for c in cis]
    exported = claims.evaluate_claims(table, [], intervals=intervals)
    computed = claims.evaluate_claims(table, cells)
    same = ~exported["quantity"].str.contains("noise floor")  # the floor comes from the replicates
    pd.testing.assert_series_equal(exported["estimate"][same], computed["estimate"][same])
    assert (exported["verdict"] == computed["verdict"]).mean() > 0.8
    stored = intervals[(intervals["seed"] == -1) & (intervals["level"] == "layer_group")
                       & (intervals["probe_task"] == "bigram_shift") & (intervals["pooling"] == "cls")].iloc[1]
    f4 = by_claim(exported, "F4").iloc[0]
    assert (f4["ci_low"], f4["ci_high"]) == pytest.approx((stored["ci_low"], stored["ci_high"]), abs=2e-3)
    assert f4["interval"] == claims.EXPORTED_PAIRED
    f1_exported, f1_computed = (by_claim(c, "F1").iloc[0] for c in (exported, computed))
    assert f1_exported["interval"] == claims.EXPORTED_UNPAIRED
    assert f1_exported["ci_high"] - f1_exported["ci_low"] > f1_computed["ci_high"] - f1_computed["ci_low"]


def test_without_predictions_the_point_estimate_decides():
    table, _ = synthetic_run(paper_like)
    f1 = by_claim(claims.evaluate_claims(table, []), "F1")
    assert (f1["interval"] == "none").all() and f1["ci_low"].isna().all() and f1["mde"].isna().all()
    assert (f1["verdict"] == SUPPORTED).all() and f1["reason"].str.contains("no probe_predictions.npz").all()


def test_summary_counts_the_verdicts():
    checks = pd.DataFrame([claims._check("F1", "m", "s", "q", ">", estimate=e, low=lo, high=hi, effect=0.02)
                           for e, lo, hi in ((0.1, 0.05, 0.15), (0.0, -0.05, 0.05), (0.0, -0.05, 0.05))])
    row = claims.summarise(checks).set_index("claim").loc["F1"]
    assert (row["supported"], row["contradicted"], row["inconclusive"]) == (1, 0, 2)
    assert row["verdict"] == INCONCLUSIVE and row["reason"] == "1 supported, 2 inconclusive (2 underpowered)"
    assert row["mde"] == "7.1 points"
    contradicted = pd.concat([checks, pd.DataFrame([claims._check("F1", "m", "s", "q", ">", estimate=-0.1,
                                                                  low=-0.2, high=-0.05)])])
    assert claims.summarise(contradicted).set_index("claim").loc["F1", "verdict"] == CONTRADICTED


def _perplexity_rows(rises: dict[str, list[float]], recovered_by_last: float = 1.0, depth: int = 4) -> pd.DataFrame:
    """Perplexity 10 pre-trained; per seed a rise; restoring the last layer recovers ``recovered_by_last`` of it."""
    rows = [{"stage": "perplexity", "model": "m", "metric": "perplexity", "split": "test", "value": 10.0,
             "k_replaced": -1}]
    for task, values in rises.items():
        for seed, rise in enumerate(values):
            for epoch in (1, 2):
                rows.append({"stage": "perplexity", "model": "m", "finetune_task": task, "finetune_head": "cls",
                             "seed": seed, "epoch": epoch, "metric": "perplexity", "split": "test",
                             "value": 10.0 + rise * epoch / 2, "k_replaced": -1})
            for k in range(depth + 1):  # the last layer brings back ``recovered_by_last``, the rest evenly
                left = 1.0 if k == 0 else (1 - recovered_by_last) * (1 - (k - 1) / (depth - 1))
                rows.append({"stage": "perplexity", "model": "m", "finetune_task": task, "finetune_head": "cls",
                             "seed": seed, "epoch": 2, "metric": "perplexity", "split": "test",
                             "value": 10.0 + rise * left, "k_replaced": k})
    return results.results_frame(rows)


def test_perplexity_claims_with_seed_intervals():
    checks = claims.evaluate_claims(_perplexity_rows({"cola": [1.0, 2.0, 3.0], "sst2": [5.0, 6.0, 7.0]}))
    f6 = by_claim(checks, "F6").set_index("scope")
    cola = f6.loc["ft=cola-cls"]
    half = 4.302652729911275 / np.sqrt(3)  # t(0.975, 2) * std 1 / sqrt(3)
    assert cola["estimate"] == pytest.approx(2.0)
    assert (cola["ci_low"], cola["ci_high"]) == pytest.approx((2 - half, 2 + half))
    assert cola["verdict"] == INCONCLUSIVE and cola["reason"].startswith("interval includes 0")  # 2 - 2.48 < 0
    difference = f6.loc["head=cls"]
    assert difference["estimate"] == pytest.approx(4.0) and difference["verdict"] == SUPPORTED


@pytest.mark.parametrize(("recovered", "rises", "verdict"), [
    (0.9, [5.0, 6.0, 7.0], SUPPORTED),  # the last layer (k = 1 of 4) carries 90% of the rise
    (0.1, [5.0, 6.0, 7.0], CONTRADICTED),  # the rise is spread over the depth
    (0.6, [-1.0, 0.5, 3.0], INCONCLUSIVE),  # seeds disagree
])
def test_f7_small_k_recovers_most_of_the_rise(recovered, rises, verdict):
    f7 = by_claim(claims.evaluate_claims(_perplexity_rows({"sst2": rises}, recovered)), "F7").iloc[0]
    assert f7["scope"] == "ft=sst2-cls, k=1 of L=4" and f7["verdict"] == verdict
    assert f7["estimate"] == pytest.approx((recovered - 0.5) * np.mean(rises))


def _with_bottom_rows(table: pd.DataFrame, rises: list[float], recovered_by_first: float, depth: int = 4) -> pd.DataFrame:
    """``table`` plus bottom-replacement rows: restoring the first layer recovers ``recovered_by_first`` of the rise."""
    rows = []
    for seed, rise in enumerate(rises):
        for k in range(depth + 1):
            left = 1.0 if k == 0 else (1 - recovered_by_first) * (1 - (k - 1) / (depth - 1))
            rows.append({"stage": "perplexity", "model": "m", "finetune_task": "sst2", "finetune_head": "cls",
                         "seed": seed, "epoch": 2, "metric": "perplexity", "split": "test",
                         "value": 10.0 + rise * left, "k_replaced": k, "replaced_layers": "bottom"})
    return results.results_frame([*table.to_dict("records"), *rows])


@pytest.mark.parametrize(("last", "first", "rises", "verdict"), [
    (0.9, 0.1, [5.0, 6.0, 7.0], SUPPORTED),  # the last layer carries the rise, the first little of it
    (0.1, 0.9, [5.0, 6.0, 7.0], CONTRADICTED),  # restoring the first layer recovers more
    (0.5, 0.5, [5.0, 6.0, 7.0], INCONCLUSIVE),  # no difference: the interval [0, 0] includes 0
])
def test_f7_last_k_against_first_k(last, first, rises, verdict):
    table = _with_bottom_rows(_perplexity_rows({"sst2": rises}, last), rises, first)
    f7 = by_claim(claims.evaluate_claims(table), "F7")
    assert len(f7) == 2
    share, contrast = f7.iloc[0], f7.iloc[1]
    assert share["quantity"] == "perplexity recovered by the last 1 layers - 0.5 x the rise"
    assert share["estimate"] == pytest.approx((last - 0.5) * np.mean(rises))  # the first check is unchanged
    assert contrast["scope"] == "ft=sst2-cls, k=1 of L=4"
    assert contrast["quantity"] == "perplexity recovered by the last 1 layers - by the first 1 layers"
    assert contrast["estimate"] == pytest.approx((last - first) * np.mean(rises))
    half = 4.302652729911275 * abs(last - first) / np.sqrt(3)  # t(0.975, 2) * sd of (last - first) x rises 5, 6, 7
    assert (contrast["ci_low"], contrast["ci_high"]) == pytest.approx(
        ((last - first) * 6 - half, (last - first) * 6 + half), abs=1e-9)
    assert contrast["verdict"] == verdict and contrast["effect"] == margins.F7_FIRST_K_CONTRAST == 0.0
    assert f"first 1 layers {first * np.mean(rises):.2f}" in contrast["reason"]


def test_f7_contrast_with_one_seed_and_without_bottom_rows():
    one = by_claim(claims.evaluate_claims(_with_bottom_rows(_perplexity_rows({"sst2": [4.0]}, 0.9), [4.0], 0.2)), "F7")
    assert one["interval"].tolist() == ["none", "none"] and one["verdict"].tolist() == [SUPPORTED, SUPPORTED]
    # A table written before bottom replacement (no replaced_layers column): the F7 check alone, as before.
    old = _perplexity_rows({"sst2": [5.0, 6.0, 7.0]}, 0.9)
    assert "replaced_layers" not in old
    assert by_claim(claims.evaluate_claims(old), "F7")["quantity"].tolist() == [
        "perplexity recovered by the last 1 layers - 0.5 x the rise"]


def test_fitted_head_perplexity_is_checked_apart_and_labelled_an_analogue():
    pretrained = _perplexity_rows({"cola": [1.0, 2.0, 3.0]}, 0.9)
    fitted = _perplexity_rows({"cola": [-3.0, -2.0, -1.0]}, 0.9).assign(mlm_head="fitted")
    checks = claims.evaluate_claims(results.results_frame([*pretrained.to_dict("records"), *fitted.to_dict("records")]))
    f6 = by_claim(checks, "F6").set_index("scope")
    assert list(f6.index) == ["ft=cola-cls", "ft=cola-cls, fitted MLM head"]
    assert f6.loc["ft=cola-cls", "estimate"] == pytest.approx(2.0)  # the pre-trained head's, unchanged
    assert f6.loc["ft=cola-cls, fitted MLM head", "estimate"] == pytest.approx(-2.0)
    assert FITTED_HEAD_NOTE in f6.loc["ft=cola-cls, fitted MLM head", "reason"]
    assert FITTED_HEAD_NOTE not in f6.loc["ft=cola-cls", "reason"]
    f7 = by_claim(checks, "F7")
    assert f7["scope"].tolist() == ["ft=cola-cls, k=1 of L=4", "ft=cola-cls, k=1 of L=4, fitted MLM head"]


def test_one_seed_perplexity_has_no_interval():
    f6 = by_claim(claims.evaluate_claims(_perplexity_rows({"cola": [-1.0]})), "F6")
    assert f6["interval"].tolist() == ["none"] and f6["verdict"].tolist() == [CONTRADICTED]
    assert "one seed" in f6["reason"].iloc[0]


def _attention_rows(cls_raise: list[float], mean_raise: list[float], top: int = 6) -> pd.DataFrame:
    """Entropy 1.0 everywhere; fine-tuning adds ``*_raise[seed]`` in the last three of ``top`` layers."""
    rows = []
    runs = [(NO_FINETUNE, NO_FINETUNE, 0, 0.0)] + [("cola", "cls", s, r) for s, r in enumerate(cls_raise)] + [
        ("cola", "mean", s, r) for s, r in enumerate(mean_raise)]
    for ft, head, seed, raise_by in runs:
        for layer in range(1, top + 1):
            rows.append({"stage": "attention", "model": "m", "finetune_task": ft, "finetune_head": head, "seed": seed,
                         "layer": layer, "metric": "entropy", "position": "first",
                         "value": 1.0 + (raise_by if layer > top - 3 else 0.0)})
    return results.results_frame(rows)


@pytest.mark.parametrize(("cls_raise", "mean_raise", "verdicts"), [
    ([0.5, 0.6, 0.55], [0.1, 0.12, 0.08], [SUPPORTED, SUPPORTED]),
    ([-0.5, -0.6, -0.55], [0.1, 0.12, 0.08], [CONTRADICTED, CONTRADICTED]),
    ([0.5, -0.4, 0.1], [0.1, -0.3, 0.4], [INCONCLUSIVE, INCONCLUSIVE]),
])
def test_attention_entropy_claim_over_the_last_three_layers(cls_raise, mean_raise, verdicts):
    f8 = by_claim(claims.evaluate_claims(_attention_rows(cls_raise, mean_raise)), "F8")
    assert f8["scope"].tolist() == ["ft=cola, layers 4-6"] * 2 and f8["verdict"].tolist() == verdicts
    assert f8["estimate"].to_numpy() == pytest.approx([np.mean(cls_raise), np.mean(cls_raise) - np.mean(mean_raise)])
    one_seed = by_claim(claims.evaluate_claims(_attention_rows([0.5], [0.1])), "F8")
    assert (one_seed["interval"] == "none").all() and (one_seed["verdict"] == SUPPORTED).all()


def _attention_sentences(cls_raise: float, mean_raise: float, *, seeds: int, n: int, noise: float,
                         rng_seed: int = 0) -> attention_sentences.AttentionSentences:
    """Per-sentence first-token entropies (N, 6): fine-tuning adds ``*_raise`` (+ per-sentence noise) in layers 4-6."""
    rng = np.random.default_rng(rng_seed)
    pre = 1.0 + 0.3 * rng.standard_normal((n, 6))
    arrays, info = {"entropy/pretrained": pre}, {}
    for head, raise_by in (("cls", cls_raise), ("mean", mean_raise)):
        for s in range(seeds):
            shift = np.zeros((n, 6))
            shift[:, 3:] = raise_by + noise * rng.standard_normal((n, 1)) + 0.02 * rng.standard_normal()
            label = f"cola-{head}-seed-{s}"
            arrays[f"entropy/{label}"] = pre + shift
            info[label] = {"finetune_task": "cola", "finetune_head": head, "seed": s}
    return attention_sentences.AttentionSentences("m", arrays, info)


@pytest.mark.parametrize(("cls_raise", "mean_raise", "n", "verdicts"), [
    (0.3, 0.05, 400, [SUPPORTED, SUPPORTED]),
    (-0.3, 0.05, 400, [CONTRADICTED, CONTRADICTED]),
    (0.01, 0.0, 30, [INCONCLUSIVE, INCONCLUSIVE]),  # underpowered: 30 sentences, noise 0.5
])
def test_f8_from_per_sentence_entropies_resamples_seeds_and_sentences(cls_raise, mean_raise, n, verdicts):
    cell = _attention_sentences(cls_raise, mean_raise, seeds=3, n=n, noise=0.5)
    rows = _attention_rows([9.0], [9.0])  # the rows' means are ignored where per-sentence values exist
    f8 = by_claim(claims.evaluate_claims(rows, attention_cells=[cell], resamples=400), "F8")
    assert f8["scope"].tolist() == ["ft=cola, layers 4-6"] * 2 and f8["verdict"].tolist() == verdicts
    assert set(f8["interval"]) == {"95% bootstrap over fine-tuning seeds, then sentences"}
    cls = np.mean([cell.arrays[f"entropy/cola-cls-seed-{s}"][:, 3:].mean() - cell.arrays["entropy/pretrained"][:, 3:].mean()
                   for s in range(3)])
    assert f8["estimate"].iloc[0] == pytest.approx(cls)


def test_f8_interval_widens_with_the_spread_between_seeds():
    """Seeds that disagree widen the interval; one seed gives the paired bootstrap over sentences alone."""
    def width(cell):
        f8 = by_claim(claims.evaluate_claims(_attention_rows([0.1], [0.1]), attention_cells=[cell], resamples=400), "F8")
        return float(f8["ci_high"].iloc[0] - f8["ci_low"].iloc[0])
    calm = _attention_sentences(0.2, 0.0, seeds=3, n=300, noise=0.2)
    spread = attention_sentences.AttentionSentences("m", dict(calm.arrays), calm.info)
    spread.arrays["entropy/cola-cls-seed-0"] = calm.arrays["entropy/cola-cls-seed-0"] + np.r_[[0] * 3, [0.4] * 3]
    spread.arrays["entropy/cola-cls-seed-1"] = calm.arrays["entropy/cola-cls-seed-1"] - np.r_[[0] * 3, [0.4] * 3]
    assert width(spread) > 3 * width(calm)


def test_claims_command_prints_and_writes(tmp_path, capsys):
    table, cells = synthetic_run(paper_like)
    run = tmp_path / "run"
    (run / "cells").mkdir(parents=True)
    table.to_csv(run / results.RESULTS_FILE, index=False)
    assert cli.main(["claims", str(run), "--checks", "--resamples", "200"]) == 0
    printed = capsys.readouterr().out
    assert "F1" in printed and "supported" in printed and "not computable" in printed
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
    cli_verdicts = {}
    for line in printed:
        claim, _, rest = line.strip().partition(" ")
        if claim in claims.CLAIMS:
            cli_verdicts[claim] = next(v for v in claims.VERDICTS if rest.strip().startswith(v))
    assert cli_verdicts == book.to_dict() and len(cli_verdicts) == len(claims.CLAIMS)
    # the stored file is what the committed files give today: recomputed from the per-sentence files exported
    # with the run, the grid's own computation; or, an older export without them, from delta_intervals.csv
    found = claims.claims_of_run(run)
    if (run / results.PER_SENTENCE_DIR).is_dir():
        assert found.source == "computed" and printed[0].endswith(f"exported with the run ({run / 'per_sentence'})")
        pd.testing.assert_frame_equal(found.checks, stored, check_dtype=False)
    else:
        assert found.source == "stored" and printed[0].endswith("an exported run); the book shows the same")
        table = results.load_results(run / results.RESULTS_FILE)
        intervals = delta_intervals.load_delta_intervals(run / delta_intervals.DELTA_INTERVALS_FILE)
        pd.testing.assert_frame_equal(claims.evaluate_claims(table, intervals=intervals), stored, check_dtype=False)


def test_a_stale_claims_csv_is_recomputed_from_the_exported_intervals(tmp_path, capsys):
    """An exported run whose claims.csv predates the three-valued verdicts: recomputed, and rewritten."""
    table, cells = synthetic_run(paper_like)
    run = tmp_path / "exported"
    run.mkdir()
    table.to_csv(run / results.RESULTS_FILE, index=False)
    delta_intervals.delta_intervals(cells, resamples=200).to_csv(run / delta_intervals.DELTA_INTERVALS_FILE,
                                                                 index=False)
    (run / claims.CLAIMS_FILE).write_text("claim,model,verdict\nF1,m,holds\n")
    found = claims.claims_of_run(run)
    assert found.source == "exported" and "had older columns" in found.note
    assert cli.main(["claims", str(run)]) == 0
    pd.testing.assert_frame_equal(claims.load_claims(run / claims.CLAIMS_FILE), found.checks, check_dtype=False)


@pytest.mark.parametrize(("estimate", "direction", "verdict"), [
    (2.78e-17, ">", "contradicted"),  # an exact tie computed in another order is no gain
    (-2.78e-17, "<=", "supported"),
    (-2.78e-17, "<", "contradicted"),
])
def test_float_noise_is_a_tie(estimate, direction, verdict):
    assert claims.judge(estimate, np.nan, np.nan, direction)[0] == verdict
    assert claims.judge(0.01, 2.78e-17, 0.02, ">")[0] == "inconclusive"  # the interval touches 0


# --- the claims' own intervals: seeds, probe refits and test sentences, as delta_intervals.csv ----------------

def _seeded_run(rng: np.random.Generator, *, seeds: int, refits: int, sentences: int = 300, delta: float = 0.05,
                sd_seed: float = 0.03, sd_refit: float = 0.015):
    """One probe (bigram shift, CLS, layer 0) of a pre-trained and ``seeds`` fine-tuned encoders, true Delta known.

    As ``tests/test_uncertainty.py``'s simulation: sentence difficulty ``u_j`` shared by every fit; a fit is
    right where ``u_j + noise < p_j + its offset``; a fine-tuning seed adds ``N(0, sd_seed)``.

    Returns:
        ``(table, cells, (a, refits_a, b, refits_b))``.
    """
    difficulty = rng.random(sentences)
    base = rng.uniform(0.35, 0.65, sentences)
    gain = rng.uniform(delta - 0.15, delta + 0.15, sentences)

    def fits(probability: np.ndarray) -> np.ndarray:
        offset = rng.normal(0.0, sd_refit, (refits + 1, 1))
        return difficulty + 0.05 * rng.standard_normal((refits + 1, sentences)) < probability + offset

    encoders = [(NO_FINETUNE, NO_FINETUNE, 0, fits(base))]
    encoders += [("cola", "cls", s, fits(base + gain + rng.normal(0.0, sd_seed))) for s in range(seeds)]
    rows, cells = [], []
    for ft, head, seed, fitted in encoders:
        for split in ("dev", "test"):
            rows.append({"stage": "probing", "model": "m", "finetune_task": ft, "finetune_head": head, "seed": seed,
                         "epoch": 0, "probe_task": "bigram_shift", "pooling": "cls", "layer": 0, "split": split,
                         "metric": "accuracy", "value": float(fitted[0].mean())})
        task = predictions.TaskPredictions("bigram_shift", [("cls", 0)], fitted[:1], "sha", refits=fitted[1:, None])
        cell = {"model": "m", "finetune_task": ft, "finetune_head": head, "seed": seed, "epoch": 0}
        cells.append(predictions.CellPredictions(Path(f"{ft}-{seed}.npz"), cell, {"bigram_shift": task}))
    pre, tuned = encoders[0][3], np.stack([e[3] for e in encoders[1:]])
    return results.results_frame(rows), cells, (pre[0], pre[1:], tuned[:, 0], tuned[:, 1:])


def test_claims_intervals_draw_seeds_and_refits_as_the_delta_intervals_do():
    table, cells, (a, refits_a, b, refits_b) = _seeded_run(np.random.default_rng(5), seeds=4, refits=6)
    accuracies = claims.Accuracies(table, cells, resamples=4000, seed=1)
    assert accuracies.label() == "95% bootstrap over fine-tuning seeds, probe refits, then test sentences"
    delta = accuracies.delta("m", "cola", "cls", "bigram_shift", "cls", 0)
    assert delta[0] == pytest.approx(b.mean() - a.mean())  # the full fits' point estimate, seeds averaged
    low, high = accuracies.delta_interval("m", "cola", "cls", "bigram_shift", "cls", 0)
    stored = uncertainty.hierarchical_bootstrap_delta(a, b, refits_a=refits_a, refits_b=refits_b, resamples=4000,
                                                      seed=1)
    width = stored.high - stored.low
    assert abs(low - stored.low) < 0.12 * width and abs(high - stored.high) < 0.12 * width
    # Seeds averaged inside a sentence-only bootstrap (what the claims drew before) is much narrower here.
    resampled = uncertainty.resampled_accuracies(np.concatenate([a[None], b]), resamples=4000, seed=1)
    sentences_only = uncertainty.percentile_interval(resampled[1:].mean(axis=0) - resampled[0])
    assert high - low > 1.3 * (sentences_only[1] - sentences_only[0])


def test_claims_intervals_cover_a_known_delta_with_seed_and_refit_variance():
    rng = np.random.default_rng(2026)
    covered = []
    for run in range(120):
        table, cells, _ = _seeded_run(rng, seeds=3, refits=5)
        low, high = claims.Accuracies(table, cells, resamples=300, seed=run).delta_interval(
            "m", "cola", "cls", "bigram_shift", "cls", 0)
        covered.append(low <= 0.05 <= high)
    assert 0.88 <= np.mean(covered) <= 1.0


def test_one_seed_without_refits_keeps_the_sentence_bootstrap_bit_for_bit():
    table, cells = synthetic_run(paper_like)
    accuracies = claims.Accuracies(table, cells, resamples=300, seed=4)
    assert accuracies.label() == claims.BOOTSTRAP
    pre = cells[0].tasks["odd_man_out"].correct[[7]]  # (mean, 2)
    post = cells[1].tasks["odd_man_out"].correct[[7]]
    sha_index = sorted(["sha-bigram_shift", "sha-odd_man_out"]).index("sha-odd_man_out")
    expected = (uncertainty.resampled_accuracies(post, resamples=300, seed=4 + sha_index)
                - uncertainty.resampled_accuracies(pre, resamples=300, seed=4 + sha_index))[0]
    assert np.array_equal(accuracies.delta("m", "cola", "cls", "odd_man_out", "mean", 2)[1:], expected)


def test_an_exported_run_is_recomputed_from_its_per_sentence_files(tmp_path):
    """``probeft export`` copies the cells' per-sentence files: the export gives the run's checks exactly."""
    table, cells = synthetic_run(paper_like)
    attention = _attention_sentences(0.3, 0.05, seeds=3, n=200, noise=0.5)
    attention_rows = _attention_rows([0.3] * 3, [0.05] * 3)
    run = tmp_path / "run"
    for cell in cells:
        cell_dir = run / "cells" / f"probing__model-m__ft-{cell.cell['finetune_task']}"
        cell_dir.mkdir(parents=True)
        predictions.save_predictions(cell_dir, list(cell.tasks.values()), **cell.cell)
        own = table[table["finetune_task"] == cell.cell["finetune_task"]]
        results.write_cell(cell_dir, own, params={}, started=0.0, device="cpu")
    cell_dir = run / "cells" / "attention__model-m__ft-cola__task-bigram_shift"
    cell_dir.mkdir(parents=True)
    attention_sentences.save_attention_sentences(cell_dir, attention.arrays, attention.info, model="m")
    results.write_cell(cell_dir, attention_rows, params={}, started=0.0, device="cpu")
    results.gather(sorted((run / "cells").iterdir()), run / results.RESULTS_FILE)
    in_run = claims.claims_of_run(run, resamples=300)
    assert in_run.source == "computed"
    f8 = by_claim(in_run.checks, "F8")
    assert set(f8["interval"]) == {"95% bootstrap over fine-tuning seeds, then sentences"}
    exported = tmp_path / "exported"
    assert cli.main(["export", str(run), str(exported)]) == 0
    copied = sorted(p.relative_to(exported) for p in exported.rglob("*.npz"))
    assert copied == sorted(Path(results.PER_SENTENCE_DIR) / p.relative_to(run / "cells") for p in run.rglob("*.npz"))
    assert len(copied) == 3
    (exported / claims.CLAIMS_FILE).unlink(missing_ok=True)
    found = claims.claims_of_run(exported, resamples=300)
    assert found.source == "computed" and "exported with the run" in found.note
    pd.testing.assert_frame_equal(found.checks, in_run.checks)


def test_the_summary_says_when_a_finding_was_checked_with_a_fitted_head():
    fitted = {"claim": "F6", "model": "m", "scope": "ft=cola-cls, fitted MLM head", "quantity": "q", "direction": ">",
              "effect": 0.0, "estimate": 5.0, "ci_low": 1.0, "ci_high": 9.0, "interval": "t", "unit": "perplexity",
              "mde": 3.0, "verdict": SUPPORTED, "reason": f"interval excludes 0 on the claimed side; {FITTED_HEAD_NOTE}"}
    summary = claims.summarise(pd.DataFrame([fitted], columns=claims.CHECK_COLUMNS)).set_index("claim")
    assert summary.loc["F6", "reason"] == "1 supported; all with a fitted MLM head (an analogue)"
    assert summary.loc["F7", "verdict"] == claims.NOT_COMPUTABLE and "fitted" not in summary.loc["F7", "reason"]
