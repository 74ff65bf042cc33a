"""Tests for probeft.probing.control: seeded word-type control labels, their prior, and their independence from real labels."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from probeft.core.names import PROBING_TASKS
from probeft.data import ProbingData, read_senteval
from probeft.data.demo import write_demo_data
from probeft.probing import control


def _sentences_with_last_words(n_types: int, repeats: int) -> list[str]:
    """``n_types * repeats`` sentences; sentence i ends in word ``w{i % n_types}`` then ".", varied openings."""
    openings = ("The dog saw", "Yesterday she found", "I think that")
    return [f"{openings[i % 3]} W{i % n_types} ." for i in range(n_types * repeats)]


@pytest.fixture(scope="module")
def demo_tasks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ProbingData]:
    """The three generated probing tasks, 1200 lines each (the other demo files kept minimal)."""
    root = write_demo_data(tmp_path_factory.mktemp("control-demo"), seed=3, n_probing=1200, n_glue=4, n_squad=2,
                           n_wiki_lines=1)  # fmt: skip
    return {task: read_senteval(Path(root) / "senteval" / f"{task}.txt") for task in PROBING_TASKS}


def _all_sentences_and_labels(data: ProbingData) -> tuple[list[str], np.ndarray]:
    splits = (data.train, data.dev, data.test)
    return [s for split in splits for s in split.sentences], np.concatenate([split.labels for split in splits])


# ------------------------------------------------------------------------------------------------------
# Types and determinism
# ------------------------------------------------------------------------------------------------------


def test_token_types_hand_examples() -> None:
    sentences = ["The cat sat .", '" Hi there ! "', "Only", "? !"]
    assert control.token_types(sentences, "first") == ["the", '"', "only", "?"]
    # "last" skips final punctuation; a sentence without any word falls back to its last token.
    assert control.token_types(sentences, "last") == ["sat", "there", "only", "!"]


def test_same_seed_same_labels_other_seed_different() -> None:
    sentences = _sentences_with_last_words(n_types=400, repeats=3)
    first, map_first = control.control_labels(sentences, prior=[0.5, 0.5], seed=7)
    again, map_again = control.control_labels(sentences, prior=[0.5, 0.5], seed=7)
    other, map_other = control.control_labels(sentences, prior=[0.5, 0.5], seed=8)
    assert first.dtype == np.int64 and first.shape == (1200,)
    np.testing.assert_array_equal(first, again)
    assert map_first == map_again and len(map_first) == 400
    # Independent draws disagree on half the types; 400 types put that fraction within 0.5 +- 0.1 (4 sd).
    changed = np.mean([map_first[t] != map_other[t] for t in map_first])
    assert 0.4 < changed < 0.6


def test_a_type_always_gets_the_same_label() -> None:
    sentences = _sentences_with_last_words(n_types=50, repeats=6)
    labels, type_labels = control.control_labels(sentences, prior=[0.3, 0.7], seed=0)
    types = control.token_types(sentences, "last")
    for word_type, label in zip(types, labels):
        assert type_labels[word_type] == label
    # Labels are lower-cased types: capitalisation does not make a new type.
    assert control.control_labels(["the dog saw w3 ."], prior=[0.3, 0.7], seed=0)[0][0] == type_labels["w3"]
    # A type's label does not depend on the other sentences (a subset and the full set agree) ...
    subset, _ = control.control_labels(sentences[::7], prior=[0.3, 0.7], seed=0)
    np.testing.assert_array_equal(subset, labels[::7])
    # ... and a given map is kept, unknown types are added.
    forced = {t: 1 - c for t, c in type_labels.items() if t != "w0"}
    relabelled, extended = control.control_labels(sentences, type_labels=forced, prior=[0.3, 0.7], seed=0)
    assert extended["w0"] == type_labels["w0"] and extended["w1"] == 1 - type_labels["w1"]
    np.testing.assert_array_equal(relabelled, [extended[t] for t in types])
    assert "w0" not in forced  # the caller's map is not modified


@pytest.mark.parametrize("prior", [(0.5, 0.5), (0.3, 0.7), (0.2, 0.3, 0.5)])
def test_prior_preserved_on_a_large_sample(prior: tuple[float, ...]) -> None:
    # 4000 equally frequent types: each class frequency has sd <= sqrt(0.25 / 4000) = 0.008; the band is 3 sd.
    sentences = _sentences_with_last_words(n_types=4000, repeats=2)
    labels, type_labels = control.control_labels(sentences, prior=prior, seed=11)
    frequencies = np.bincount(labels, minlength=len(prior)) / len(labels)
    np.testing.assert_allclose(frequencies, prior, atol=0.024)
    assert set(type_labels.values()) == set(range(len(prior)))


def test_zero_probability_class_is_never_drawn() -> None:
    labels, _ = control.control_labels(_sentences_with_last_words(300, 1), prior=[0.0, 0.4, 0.6], seed=2)
    assert labels.min() == 1


# ------------------------------------------------------------------------------------------------------
# The control ProbingData
# ------------------------------------------------------------------------------------------------------


def test_control_task_keeps_sentences_and_relabels_consistently(demo_tasks: dict[str, ProbingData]) -> None:
    data = demo_tasks["bigram_shift"]
    original_test_labels = data.test.labels.copy()
    controlled = control.control_task(data, seed=5)
    assert controlled.task == "bigram_shift-control" == control.control_task_name("bigram_shift")
    assert controlled.label_names == data.label_names and controlled.path == data.path
    for name in ("train", "dev", "test"):
        split, control_split = data.split(name), controlled.split(name)
        assert control_split.sentences == split.sentences
        assert control_split.labels.dtype == np.int64 and control_split.labels.shape == split.labels.shape
    np.testing.assert_array_equal(data.test.labels, original_test_labels)  # the task itself is untouched
    # One type, one label across splits, matching control_labels with the train prior.
    sentences, _ = _all_sentences_and_labels(data)
    expected, _ = control.control_labels(
        sentences, prior=control.class_prior(data.train.labels, 2), seed=5, position="last"
    )
    np.testing.assert_array_equal(np.concatenate([controlled.train.labels, controlled.dev.labels,
                                                  controlled.test.labels]), expected)  # fmt: skip
    # Different labels need a different key; the same seed gives the same key.
    assert controlled.sha256 != data.sha256
    assert controlled.sha256 != control.control_task(data, seed=6).sha256
    assert controlled.sha256 != control.control_task(data, seed=5, position="first").sha256
    assert controlled.sha256 == control.control_task(data, seed=5).sha256


# ------------------------------------------------------------------------------------------------------
# Independence from the real labels
# ------------------------------------------------------------------------------------------------------


def test_chance_agreement_hand_computed() -> None:
    assert control.chance_agreement([0.3, 0.7], [0.5, 0.5]) == pytest.approx(0.5)
    assert control.chance_agreement([0.2, 0.8], [0.2, 0.8]) == pytest.approx(0.68)
    assert control.label_agreement([0, 1, 1, 0], [0, 1, 0, 1]) == pytest.approx(0.5)


def test_agreement_moments_hand_computed() -> None:
    # Types a, a, b with real labels 1, 1, 0. The four labellings (c_a, c_b) agree 1/3, 0, 1, 2/3:
    # mean 1/2, variance 14/36 - 9/36 = 5/36; leak-free variance 3 * 0.25 / 9 = 3/36, so inflation 5/3.
    moments = control.agreement_moments(["x a", "y a", "z b"], [1, 1, 0], [0.5, 0.5], position="last")
    assert moments.expected == pytest.approx(0.5)
    assert moments.sd == pytest.approx(math.sqrt(5 / 36))
    assert moments.inflation == pytest.approx(5 / 3)


def test_realised_prior_sd_hand_computed() -> None:
    # Type masses 1/2, 1/4, 1/4: sum of squares 3/8; sd = sqrt(p (1 - p) * 3/8).
    sd = control.realised_prior_sd(["a", "a", "b", "c"], [0.2, 0.8], position="first")
    np.testing.assert_allclose(sd, [math.sqrt(0.16 * 3 / 8)] * 2)


@pytest.mark.parametrize("task", PROBING_TASKS)
def test_control_labels_are_independent_of_real_labels_on_demo_data(
    demo_tasks: dict[str, ProbingData], task: str
) -> None:
    data = demo_tasks[task]
    sentences, real = _all_sentences_and_labels(data)
    prior = control.class_prior(data.train.labels, 2)
    chance = control.chance_agreement(prior, control.class_prior(real, 2))
    agreements = np.array([
        control.label_agreement(np.concatenate([c.train.labels, c.dev.labels, c.test.labels]), real)
        for c in (control.control_task(data, seed=seed) for seed in range(30))
    ])  # fmt: skip
    # Demo data have few types (~20-50 last words), so one seed's agreement strays by a few points; over 30
    # seeds the mean has sd <= 0.045 / sqrt(30) ~ 0.008, and a leak would shift the seeds' spread, not the mean.
    assert abs(agreements.mean() - chance) < 0.03
    assert np.abs(agreements - chance).max() < 0.15
    moments = control.agreement_moments(sentences, real, prior, position="last")
    assert moments.expected == pytest.approx(chance)
    # Residual leak: a demo bigram swap of the final pair ends ~1 in 8 inverted sentences in "the", a last word
    # no original has, so bigram_shift spreads ~2.7x wider than leak-free (inflation ~7); still within +-5 points.
    assert moments.inflation < (10.0 if task == "bigram_shift" else 2.0)
    assert moments.sd < 0.05
    assert agreements.std() == pytest.approx(moments.sd, rel=0.35)  # the exact spread matches the sampled one


def test_agreement_moments_detect_the_clause_swap_leak(demo_tasks: dict[str, ProbingData]) -> None:
    # Inverted demo coordinations start with the second clause's subject, mostly "he"/"she", which never starts
    # an original: the first word carries the class, and the seeds' agreements spread far wider than chance.
    data = demo_tasks["coordination_inversion"]
    sentences, real = _all_sentences_and_labels(data)
    prior = control.class_prior(data.train.labels, 2)
    assert control.agreement_moments(sentences, real, prior, position="first").inflation > 10
    assert control.agreement_moments(sentences, real, prior, position="last").inflation < 2


# ------------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"sentences": []}, "sentences"),
        ({"sentences": ["a b", "   "]}, r"sentences\[1\]"),
        ({"prior": [0.5, 0.6]}, "prior"),
        ({"prior": [1.0]}, "prior"),
        ({"prior": [-0.5, 1.5]}, "prior"),
        ({"position": "middle"}, "position"),
        ({"seed": 1.5}, "seed"),
        ({"type_labels": {"b": 2}}, "type_labels"),
    ],
)
def test_control_labels_rejects_bad_input(kwargs: dict, parameter: str) -> None:
    arguments = {"sentences": ["a b", "c d"], "prior": [0.5, 0.5], "seed": 0, **kwargs}
    sentences = arguments.pop("sentences")
    with pytest.raises(ValueError, match=parameter):
        control.control_labels(sentences, **arguments)


def test_other_functions_reject_bad_input(demo_tasks: dict[str, ProbingData]) -> None:
    with pytest.raises(ValueError, match="position"):
        control.control_task(demo_tasks["odd_man_out"], position="middle")
    with pytest.raises(ValueError, match="seed"):
        control.control_task(demo_tasks["odd_man_out"], seed="0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels"):
        control.class_prior([0, 2], 2)
    with pytest.raises(ValueError, match="real_labels"):
        control.agreement_moments(["a", "b"], [0], [0.5, 0.5])
    with pytest.raises(ValueError, match="differ in length"):
        control.chance_agreement([0.5, 0.5], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="control and real"):
        control.label_agreement([], [])
