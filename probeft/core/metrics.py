"""Task metrics for fine-tuning: Matthews correlation, accuracy and SQuAD v1.1 EM / F1.

All metrics are returned as fractions in [0, 1] (MCC in [-1, 1]); the official SQuAD script reports
percentages, we divide by 100 so every row of the results table uses the same scale.

The SQuAD functions follow the definition of the official v1.1 evaluation: both strings are
normalised (lower-cased, punctuation removed, the articles "a", "an", "the" removed, whitespace
collapsed), exact match compares the normalised strings, F1 is the harmonic mean of token precision
and recall over the bag of normalised tokens; each question takes the maximum over its gold answers
and the data-set score is the mean over questions.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "accuracy",
    "matthews_corrcoef",
    "normalize_answer",
    "squad_exact_match",
    "squad_f1",
    "squad_scores",
]

_PUNCTUATION = frozenset(string.punctuation)
# Articles are removed as whole words only ("theory" keeps its "the"); the official script replaces
# them by a space and lets the whitespace step collapse the gap.
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _as_label_array(values: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
    """Converts labels to a 1-d integer array, rejecting other shapes with a message naming ``name``."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def _check_same_length(y_true: np.ndarray, y_pred: np.ndarray) -> None:
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {len(y_true)} vs {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("y_true and y_pred are empty; a metric over no examples is undefined")


def accuracy(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> float:
    """Fraction of predictions equal to the gold label.

    Args:
        y_true: Gold labels, shape (N,).
        y_pred: Predicted labels, shape (N,).

    Returns:
        Accuracy in [0, 1].
    """
    true = _as_label_array(y_true, "y_true")
    pred = _as_label_array(y_pred, "y_pred")
    _check_same_length(true, pred)
    return float(np.mean(true == pred))


def matthews_corrcoef(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> float:
    """Matthews correlation coefficient (the CoLA metric), multi-class form.

    Uses the confusion-matrix form of the K-class MCC (Gorodkin 2004), which equals the familiar
    ``(TP*TN - FP*FN) / sqrt(...)`` for two classes. When a prediction or the gold labels are constant
    the denominator is zero; the correlation is then defined as 0 (as in scikit-learn), which is what
    a majority-class baseline gets on CoLA.

    Args:
        y_true: Gold labels, shape (N,).
        y_pred: Predicted labels, shape (N,).

    Returns:
        MCC in [-1, 1].
    """
    true = _as_label_array(y_true, "y_true")
    pred = _as_label_array(y_pred, "y_pred")
    _check_same_length(true, pred)
    classes, encoded = np.unique(np.concatenate([true, pred]), return_inverse=True)
    true_idx, pred_idx = encoded[: len(true)], encoded[len(true) :]
    confusion = np.zeros((len(classes), len(classes)), dtype=np.float64)
    np.add.at(confusion, (true_idx, pred_idx), 1.0)
    true_counts = confusion.sum(axis=1)  # (K,) examples per gold class
    pred_counts = confusion.sum(axis=0)  # (K,) examples per predicted class
    correct = np.trace(confusion)
    total = confusion.sum()
    numerator = correct * total - true_counts @ pred_counts
    denominator = np.sqrt((total**2 - pred_counts @ pred_counts) * (total**2 - true_counts @ true_counts))
    if denominator == 0.0:
        return 0.0
    return float(numerator / denominator)


def normalize_answer(text: str) -> str:
    """Normalises an answer string as the SQuAD v1.1 evaluation does.

    Steps, in this order: lower-case; drop every ASCII punctuation character; replace the whole
    words "a", "an", "the" by a space; collapse runs of whitespace to one space and strip the ends.

    Args:
        text: A predicted or gold answer.

    Returns:
        The normalised string, e.g. ``"The  Cat's hat!"`` -> ``"cats hat"``.
    """
    lowered = text.lower()
    without_punct = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    without_articles = _ARTICLES.sub(" ", without_punct)
    return " ".join(without_articles.split())


def _exact_match_one(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def _f1_one(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    # Bag-of-tokens overlap: a token counts as often as it occurs in both strings.
    overlap = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2.0 * precision * recall / (precision + recall)


def _best_over_gold(prediction: str, golds: Sequence[str], score_one) -> float:
    if isinstance(golds, str):
        raise ValueError("gold answers must be a list of strings per question, got a single string")
    if len(golds) == 0:
        raise ValueError("a question has no gold answers; SQuAD v1.1 questions have at least one")
    return max(score_one(prediction, gold) for gold in golds)


def squad_exact_match(prediction: str, golds: Sequence[str]) -> float:
    """Exact match of one prediction: 1.0 if it equals any gold answer after normalisation, else 0.0."""
    return _best_over_gold(prediction, golds, _exact_match_one)


def squad_f1(prediction: str, golds: Sequence[str]) -> float:
    """Token F1 of one prediction, the maximum over its gold answers."""
    return _best_over_gold(prediction, golds, _f1_one)


def squad_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Data-set level SQuAD v1.1 exact match and F1 (as fractions).

    Every question in ``references`` is scored; a question without a prediction scores 0 (the
    official script does the same, with a warning), predictions for unknown ids are an error.

    Args:
        predictions: Question id -> predicted answer text.
        references: Question id -> list of gold answer texts.

    Returns:
        ``{"exact_match": em, "f1": f1}``, both in [0, 1].
    """
    if len(references) == 0:
        raise ValueError("references is empty; there are no questions to score")
    unknown = set(predictions) - set(references)
    if unknown:
        example = sorted(unknown)[:3]
        raise ValueError(f"predictions hold {len(unknown)} question ids not in references, e.g. {example}")
    exact, f1 = 0.0, 0.0
    for question_id, golds in references.items():
        prediction = predictions.get(question_id)
        if prediction is None:
            continue
        exact += squad_exact_match(prediction, golds)
        f1 += squad_f1(prediction, golds)
    return {"exact_match": exact / len(references), "f1": f1 / len(references)}
