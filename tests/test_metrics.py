"""Tests for probeft.core.metrics against hand-computed values and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sklearn.metrics

from probeft.core import metrics


def test_accuracy_hand_computed() -> None:
    assert metrics.accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == pytest.approx(0.5)
    assert metrics.accuracy(np.array([2, 2, 0]), np.array([2, 2, 0])) == 1.0


def test_accuracy_rejects_length_mismatch_and_empty() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        metrics.accuracy([1, 0], [1])
    with pytest.raises(ValueError, match="empty"):
        metrics.accuracy([], [])


def test_mcc_binary_hand_computed() -> None:
    # TP=2 (idx 0,2), TN=1 (idx 4), FP=1 (idx 3), FN=1 (idx 1):
    # (2*1 - 1*1) / sqrt(3 * 3 * 2 * 2) = 1 / 6
    y_true = [1, 1, 1, 0, 0]
    y_pred = [1, 0, 1, 1, 0]
    assert metrics.matthews_corrcoef(y_true, y_pred) == pytest.approx(1.0 / 6.0)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_mcc_matches_sklearn_on_random_labels(num_classes: int) -> None:
    rng = np.random.default_rng(num_classes)
    for _ in range(20):
        y_true = rng.integers(0, num_classes, size=57)
        # Predictions correlated with the truth so MCC is not always near 0.
        y_pred = np.where(rng.random(57) < 0.6, y_true, rng.integers(0, num_classes, size=57))
        expected = sklearn.metrics.matthews_corrcoef(y_true, y_pred)
        assert metrics.matthews_corrcoef(y_true, y_pred) == pytest.approx(expected, abs=1e-12)


def test_mcc_degenerate_cases() -> None:
    assert metrics.matthews_corrcoef([1, 0, 1, 0], [1, 0, 1, 0]) == pytest.approx(1.0)
    assert metrics.matthews_corrcoef([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)
    # Constant prediction (majority baseline): undefined denominator -> 0, as sklearn.
    assert metrics.matthews_corrcoef([1, 0, 1, 1], [1, 1, 1, 1]) == 0.0
    assert sklearn.metrics.matthews_corrcoef([1, 0, 1, 1], [1, 1, 1, 1]) == 0.0


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("The Cat", "cat"),  # case + leading article
        ("  a   dog  ", "dog"),  # article + whitespace
        ("An apple, the pear.", "apple pear"),  # punctuation + two articles
        ("theory of the atom", "theory of atom"),  # "the" only as a whole word
        ("Denver Broncos!", "denver broncos"),
        ("U.S.A.", "usa"),
        ("rock'n'roll", "rocknroll"),
        ("", ""),
    ],
)
def test_normalize_answer(raw: str, normalised: str) -> None:
    assert metrics.normalize_answer(raw) == normalised


def test_exact_match_normalisation_and_max_over_gold() -> None:
    assert metrics.squad_exact_match("the Denver Broncos.", ["Denver Broncos"]) == 1.0
    assert metrics.squad_exact_match("Broncos", ["Denver Broncos"]) == 0.0
    assert metrics.squad_exact_match("Broncos", ["Denver Broncos", "broncos!"]) == 1.0


def test_f1_hand_computed() -> None:
    # pred tokens [denver, broncos, team], gold [denver, broncos]: P=2/3, R=1 -> F1 = 0.8
    assert metrics.squad_f1("the Denver Broncos team", ["Denver Broncos"]) == pytest.approx(0.8)
    # repeated tokens count by multiplicity: pred [cat, cat] vs gold [cat] -> P=1/2, R=1 -> 2/3
    assert metrics.squad_f1("cat cat", ["the cat"]) == pytest.approx(2.0 / 3.0)
    # no overlap -> 0; max over gold answers picks the better one (P=1, R=1/2 -> 2/3)
    assert metrics.squad_f1("Paris", ["London"]) == 0.0
    assert metrics.squad_f1("Paris", ["London", "Paris France"]) == pytest.approx(2.0 / 3.0)
    # only articles / punctuation -> empty after normalisation -> 0 (v1.1 has no empty-answer rule)
    assert metrics.squad_f1("the", ["a"]) == 0.0


def test_squad_scores_average_over_questions() -> None:
    references = {
        "q1": ["Denver Broncos", "The Broncos"],
        "q2": ["Santa Clara, California"],
        "q3": ["gold"],
        "q4": ["1990s"],
    }
    predictions = {
        "q1": "broncos",  # EM 1 (matches "The Broncos"), F1 1
        "q2": "Santa Clara",  # EM 0, F1: P=1, R=2/3 -> 0.8
        "q3": "silver",  # EM 0, F1 0
        # q4 missing -> scores 0
    }
    scores = metrics.squad_scores(predictions, references)
    assert scores["exact_match"] == pytest.approx(1.0 / 4.0)
    assert scores["f1"] == pytest.approx((1.0 + 0.8 + 0.0 + 0.0) / 4.0)
    assert not math.isnan(scores["f1"])


def test_squad_scores_rejects_unknown_ids_and_bad_gold() -> None:
    with pytest.raises(ValueError, match="not in references"):
        metrics.squad_scores({"zzz": "x"}, {"q1": ["x"]})
    with pytest.raises(ValueError, match="no gold answers"):
        metrics.squad_scores({"q1": "x"}, {"q1": []})
    with pytest.raises(ValueError, match="single string"):
        metrics.squad_f1("x", "x")
