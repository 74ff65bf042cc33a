"""Control tasks for the sentence-level probing tasks (Hewitt & Liang 2019), for selectivity.

Construction. Each sentence is reduced to one *word type*: the lower-cased token at a fixed position
(``"first"``: the first whitespace token; ``"last"``: the last token holding a letter or digit, so the
sentence-final "." or "?" does not make every sentence one type). Each type gets a control class drawn
once from the task's train-split class prior; a sentence's control label is the class of its type. The
draw is a hash of ``(seed, type)`` mapped through the prior's cumulative sum, so it is a fixed random
function of the type: the same type has the same label in train, dev and test, in any call, whatever
other sentences are present, and a new seed gives an independent labelling.

Why it carries no linguistic signal. The label depends on nothing but the identity of one word and a
coin drawn without looking at any real label, so the only way to predict it on test sentences is to
memorise which types got which class (as in Hewitt & Liang's word-type control tasks). A probe that
scores high on it memorises lexical identity; selectivity (task accuracy minus control accuracy) gives
no credit for that. The expected control class prior equals the task's; the realised one varies with
how Zipfian the types are (large with few frequent types, small with many).

Which position. The label is independent of the real label only if the chosen token is: a perturbation
that moves or replaces it makes its type depend on the class. ``bigram_shift`` swaps two adjacent words
anywhere, so either end is moved in about one sentence in its length; ``coordination_inversion`` swaps the
clauses, so the first word becomes the second clause's subject (often a pronoun: in the demo data, whose
cue is exactly that, a strong leak) and the last word the first clause's last; ``odd_man_out`` replaces a
noun or verb, which the last word can be. :func:`agreement_moments` measures the leak without drawing (the
spread of control-real agreement across seeds, against the spread of a leak-free labelling). On the real
SentEval subsets (11k sentences per task) that spread is 0.6-1.1 points of agreement at either position,
so the leak is small; but the first words are few and frequent ("i", "he", "the", '"' take 10-18% each),
so a seed's realised control prior strays from the task's by about 10 points at ``"first"`` and about 2-3
at ``"last"`` (:func:`realised_prior_sd`). Hence the default ``"last"``, which also avoids the clause-swap
leak of the demo data; its residual leak there is bigram_shift's (a swapped final pair ends the sentence in
"the"): agreement spreads about 4 points across seeds instead of 1.5.

What a control can inform. A word-type control asks whether a probe's accuracy could come from
memorising word identities; it informs a task only where word identity could carry the real label.
``bigram_shift``'s two classes share their words (a swap reorders them), so no lexical memorisation can
solve it and a word-type control says nothing about it (its selectivity is the accuracy minus the
probe's skill at an unrelated lexical game). It does inform ``odd_man_out`` (the replaced word changes
which words occur) and, at the positions the swap moves, ``coordination_inversion``. The per-sentence
random-label control (:func:`random_labels`: every sentence its own label drawn from the train prior, no
word shared) measures the probe's capacity to memorise training sentences at all, for every task alike:
its train accuracy is what a probe of that size fits without any signal; on test it is at chance.

Baseline. A control probe that always predicts the control labels' majority class scores that class's
rate, not 1/C; with a realised prior of 0.53-0.59 on two classes "control accuracy 0.56" means no
memorisation. :func:`majority_rates` gives each split's rate of the train majority class, against which
the stage reports ``control_gain`` (control accuracy minus it) and ``selectivity_gain`` (the task's gain
over its own majority rate minus the control's).

Caching. The control task has the sentences of its task, and features depend only on sentences, so the
intended use is to REUSE the task's features and fit the same probes on the control labels. The control
:class:`~probeft.data.ProbingData` still gets its own ``task`` (``<task>-control``, no ``/`` because
feature-cache directory names embed the task) and ``sha256`` (hash of the task's sha256, position and
seed), so nothing keyed on them mistakes control labels for real ones.

Of probeft, this module imports only :mod:`probeft.data`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from probeft.data import ProbingData, ProbingSplit

__all__ = [
    "CONTROL_SUFFIX",
    "POSITIONS",
    "AgreementMoments",
    "agreement_moments",
    "chance_agreement",
    "class_prior",
    "control_labels",
    "control_task",
    "control_task_name",
    "label_agreement",
    "majority_rates",
    "random_labels",
    "realised_prior_sd",
    "token_types",
]

POSITIONS: tuple[str, ...] = ("first", "last")
CONTROL_SUFFIX = "-control"
# Bump when the construction changes, so control sha256s (and anything keyed on them) change too.
_SCHEME = "probeft-control-v1"
_WORD = re.compile(r"\w")
_PRIOR_TOLERANCE = 1e-6
_RANDOM_SCHEME_SEED = 26  # first entropy word of the random-label control's generator (issue 26)


def control_task_name(task: str) -> str:
    """The ``task`` of the control task of ``task``: ``"bigram_shift"`` -> ``"bigram_shift-control"``."""
    return f"{task}{CONTROL_SUFFIX}"


def _check_position(position: str) -> str:
    if position not in POSITIONS:
        raise ValueError(f"position={position!r} is unknown; expected one of {POSITIONS}")
    return position


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return int(seed)


def _check_prior(prior: Sequence[float] | np.ndarray) -> np.ndarray:
    """The prior as float64 ``(K,)``, K >= 2, non-negative, finite, summing to 1."""
    array = np.asarray(prior, dtype=np.float64)
    if array.ndim != 1 or array.size < 2:
        raise ValueError(f"prior must be a 1-d sequence of >= 2 class probabilities, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"prior must hold finite non-negative probabilities, got {array.tolist()}")
    if abs(array.sum() - 1.0) > _PRIOR_TOLERANCE:
        raise ValueError(f"prior must sum to 1, got {array.tolist()} (sum {array.sum():.6g})")
    return array


def token_types(sentences: Sequence[str], position: str = "last") -> list[str]:
    """The lower-cased word type at ``position`` of each sentence.

    Args:
        sentences: N whitespace-tokenised sentences (SentEval sentences are tokenised).
        position: ``"first"`` (first token) or ``"last"`` (last token with a letter or digit; the last
            token if none has one).

    Returns:
        N types.

    Raises:
        ValueError: for no sentences, a blank sentence (naming its index) or an unknown position.
    """
    _check_position(position)
    if len(sentences) == 0:
        raise ValueError("sentences is empty: a control task needs at least one sentence")
    types = []
    for index, sentence in enumerate(sentences):
        tokens = str(sentence).split()
        if not tokens:
            raise ValueError(f"sentences[{index}] is blank: every sentence needs a word type")
        if position == "first":
            token = tokens[0]
        else:  # skip final punctuation, which would make nearly every sentence one type
            token = next((t for t in reversed(tokens) if _WORD.search(t)), tokens[-1])
        types.append(token.lower())
    return types


def class_prior(labels: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    """Class frequencies of ``labels``.

    Args:
        labels: N class ids in ``[0, num_classes)``.
        num_classes: K >= 2.

    Returns:
        float64 ``(K,)`` summing to 1.

    Raises:
        ValueError: for no labels, K < 2, or a label outside ``[0, K)``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    array = np.asarray(labels)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"labels must be a non-empty 1-d sequence of class ids, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() >= num_classes:
        raise ValueError(f"labels must be integer class ids in [0, {num_classes}), got {np.unique(array).tolist()}")
    return np.bincount(array, minlength=num_classes).astype(np.float64) / array.size


def _draw_type_label(word_type: str, cumulative_prior: np.ndarray, seed: int) -> int:
    """The control class of one type: a uniform number hashed from (seed, type), through the prior's CDF.

    A hash rather than a generator stream, so a type's class does not depend on which other types were
    drawn before it (train alone and train+dev+test give the same map).
    """
    digest = hashlib.sha256(f"{_SCHEME}\0{seed}\0{word_type}".encode()).digest()
    uniform = int.from_bytes(digest[:8], "big") / 2.0**64  # in [0, 1)
    # side="right": a zero-probability class k has cumulative[k] == cumulative[k-1] and is never chosen.
    return min(int(np.searchsorted(cumulative_prior, uniform, side="right")), cumulative_prior.size - 1)


def control_labels(
    sentences: Sequence[str],
    *,
    type_labels: Mapping[str, int] | None = None,
    prior: Sequence[float] | np.ndarray,
    seed: int,
    position: str = "last",
) -> tuple[np.ndarray, dict[str, int]]:
    """Control labels: each sentence gets the control class of the word type at ``position``.

    Args:
        sentences: N sentences.
        type_labels: type -> class ids already fixed (e.g. the map returned for another split); these
            are kept, missing types are drawn. None: draw all.
        prior: ``(K,)`` class probabilities the types' classes are drawn from (the task's train prior).
        seed: the labelling's seed; a type's class depends only on (seed, type, prior).
        position: which token is the type (see :func:`token_types`).

    Returns:
        ``(labels, type_labels)``: int64 ``(N,)`` control labels and a new dict of every type seen so far
        (the given map plus the types of ``sentences``) -> class id.

    Raises:
        ValueError: for empty or blank sentences, an unknown position, a prior that is not a probability
            vector of length >= 2, a non-integer seed, or a ``type_labels`` class outside ``[0, K)``.
    """
    cumulative = np.cumsum(_check_prior(prior))
    seed = _check_seed(seed)
    types = token_types(sentences, position)
    mapping = dict(type_labels or {})
    bad = {t: c for t, c in mapping.items() if isinstance(c, bool) or not isinstance(c, (int, np.integer))
           or not 0 <= c < cumulative.size}  # fmt: skip
    if bad:
        raise ValueError(f"type_labels must map types to class ids in [0, {cumulative.size}); bad: {bad}")
    for word_type in types:
        if word_type not in mapping:
            mapping[word_type] = _draw_type_label(word_type, cumulative, seed)
    labels = np.fromiter((mapping[t] for t in types), dtype=np.int64, count=len(types))
    return labels, {t: int(c) for t, c in mapping.items()}


def control_task(probing: ProbingData, seed: int = 0, position: str = "last") -> ProbingData:
    """The control task of a probing task: same sentences, control labels on every split.

    Classes are drawn from the train split's class prior. The type map is built from all splits' types,
    so dev/test types unseen in train also get a class (which no probe can know: as in Hewitt & Liang,
    such sentences are where memorisation fails).

    Args:
        probing: the task (from :func:`probeft.data.read_senteval`).
        seed: the labelling's seed.
        position: ``"first"`` or ``"last"`` (see the module docstring for the choice).

    Returns:
        A :class:`ProbingData` with ``task`` = :func:`control_task_name` (task), the same ``path``,
        ``label_names`` and sentences, int64 control labels, and ``sha256`` = sha256 of the task's sha256,
        the position and the seed (so it differs from the task's and between seeds).

    Raises:
        ValueError: an unknown position or a non-integer seed.
    """
    _check_position(position)
    seed = _check_seed(seed)
    prior = class_prior(probing.train.labels, len(probing.label_names))
    splits = (probing.train, probing.dev, probing.test)
    everything = [sentence for split in splits for sentence in split.sentences]
    labels, _ = control_labels(everything, prior=prior, seed=seed, position=position)
    boundaries = np.cumsum([len(split) for split in splits])[:-1]
    train, dev, test = (
        ProbingSplit(list(split.sentences), part) for split, part in zip(splits, np.split(labels, boundaries))
    )
    digest = hashlib.sha256(f"{_SCHEME}\0{probing.sha256}\0{position}\0{seed}".encode()).hexdigest()
    return dataclasses.replace(
        probing, task=control_task_name(probing.task), train=train, dev=dev, test=test, sha256=digest
    )


def label_agreement(control: Sequence[int] | np.ndarray, real: Sequence[int] | np.ndarray) -> float:
    """Fraction of sentences whose control label equals the real label.

    Args:
        control: ``(N,)`` control labels.
        real: ``(N,)`` real labels.

    Raises:
        ValueError: for empty or differently shaped inputs.
    """
    control, real = np.asarray(control), np.asarray(real)
    if control.ndim != 1 or control.shape != real.shape or control.size == 0:
        raise ValueError(f"control and real must be non-empty and of equal 1-d shape, got {control.shape}, {real.shape}")
    return float(np.mean(control == real))


def chance_agreement(control_prior: Sequence[float] | np.ndarray, real_prior: Sequence[float] | np.ndarray) -> float:
    """Agreement of independent labellings with these priors: ``sum_k control_prior[k] * real_prior[k]``.

    Args:
        control_prior: ``(K,)``.
        real_prior: ``(K,)``.

    Raises:
        ValueError: for priors that are not probability vectors of one length.
    """
    control_prior, real_prior = _check_prior(control_prior), _check_prior(real_prior)
    if control_prior.shape != real_prior.shape:
        raise ValueError(f"control_prior and real_prior differ in length: {control_prior.size} vs {real_prior.size}")
    return float(control_prior @ real_prior)


@dataclass(frozen=True)
class AgreementMoments:
    """Control-real agreement over random type labellings (seeds), computed exactly, not sampled.

    ``expected``: the mean agreement, ``sum_k prior[k] * real frequency[k]`` (chance).
    ``sd``: its standard deviation across seeds.
    ``inflation``: ``sd**2`` over the variance a type-free labelling (every sentence its own type) would
    have. About 1 when the type at the position is independent of the real label, whatever the type
    frequencies; well above 1 when the perturbation moves that token (a leak).
    """

    expected: float
    sd: float
    inflation: float


def agreement_moments(
    sentences: Sequence[str],
    real_labels: Sequence[int] | np.ndarray,
    prior: Sequence[float] | np.ndarray,
    position: str = "last",
) -> AgreementMoments:
    """How far control labels at ``position`` can agree with the real labels by leakage.

    With ``n[t, k]`` the number of sentences of type t and real class k, and independent type classes
    ``c_t ~ prior``, agreement is ``A = sum_t n[t, c_t] / N``: its mean is ``sum_t sum_k prior[k] n[t, k] / N``
    and its variance ``sum_t Var(n[t, c_t]) / N**2``.

    Args:
        sentences: N sentences.
        real_labels: ``(N,)`` real class ids in ``[0, K)``.
        prior: ``(K,)`` control class prior.
        position: as in :func:`token_types`.

    Raises:
        ValueError: for bad sentences or position, a bad prior, or labels not matching the sentences.
    """
    prior = _check_prior(prior)
    types = token_types(sentences, position)
    real = np.asarray(real_labels)
    if real.shape != (len(types),):
        raise ValueError(f"real_labels must have shape ({len(types)},) like sentences, got {real.shape}")
    class_prior(real, prior.size)  # validates the ids
    type_ids = {t: i for i, t in enumerate(dict.fromkeys(types))}
    counts = np.zeros((len(type_ids), prior.size))  # (T, K): n[t, k]
    np.add.at(counts, (np.array([type_ids[t] for t in types]), real), 1.0)
    n = len(types)
    mean_per_type = counts @ prior  # (T,)
    variance = float(((counts**2) @ prior - mean_per_type**2).sum()) / n**2
    # Type-free reference: each sentence alone, Var(1[c == y_i]) = prior[y_i] (1 - prior[y_i]).
    reference = float((prior[real] * (1 - prior[real])).sum()) / n**2
    inflation = variance / reference if reference > 0 else float("nan")
    return AgreementMoments(expected=float(mean_per_type.sum()) / n, sd=variance**0.5, inflation=inflation)


def realised_prior_sd(
    sentences: Sequence[str], prior: Sequence[float] | np.ndarray, position: str = "last"
) -> np.ndarray:
    """Standard deviation across seeds of the realised control class frequencies.

    Types draw their class independently, so class k's frequency is ``sum_t m_t 1[c_t = k]`` with type
    masses ``m_t``: mean ``prior[k]``, variance ``prior[k] (1 - prior[k]) sum_t m_t**2``. Few frequent
    types make it large.

    Args:
        sentences: N sentences.
        prior: ``(K,)`` control class prior.
        position: as in :func:`token_types`.

    Returns:
        float64 ``(K,)``.

    Raises:
        ValueError: for bad sentences, position or prior.
    """
    prior = _check_prior(prior)
    types = token_types(sentences, position)
    _, counts = np.unique(np.array(types, dtype=object), return_counts=True)
    concentration = float(((counts / len(types)) ** 2).sum())
    return np.sqrt(prior * (1 - prior) * concentration)


def majority_rates(labels: Mapping[str, Sequence[int] | np.ndarray]) -> dict[str, float]:
    """Rate of the train split's majority class in each split (what a constant classifier scores).

    Args:
        labels: split -> ``(N_split,)`` integer labels; ``"train"`` defines the majority class (ties: the
            smallest label).

    Returns:
        split -> rate in [0, 1].

    Raises:
        ValueError: no ``"train"`` labels, or an empty split (naming it).
    """
    if "train" not in labels:
        raise ValueError(f"labels must include 'train' (it defines the majority class), got {list(labels)}")
    arrays = {split: np.asarray(values) for split, values in labels.items()}
    for split, values in arrays.items():
        if values.size == 0:
            raise ValueError(f"{split} labels are empty")
    majority = int(np.argmax(np.bincount(arrays["train"].astype(np.int64))))
    return {split: float(np.mean(values == majority)) for split, values in arrays.items()}


def random_labels(labels: Mapping[str, Sequence[int] | np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """A per-sentence random-label control: every sentence of every split gets its own label.

    Each label is drawn independently from the train split's class prior, with
    ``numpy.random.default_rng([_RANDOM_SCHEME_SEED, seed])`` (splits in the order given). Unlike
    :func:`control_labels` no two sentences share a label through a shared word, so the only way to fit
    the train labels is to memorise sentences: a probe's train accuracy on them is its memorisation
    capacity, and its test accuracy is chance (the prior's majority rate at best).

    Args:
        labels: split -> ``(N_split,)`` real integer labels (only their sizes and the train prior are used).
        seed: the labelling's seed.

    Returns:
        split -> ``(N_split,)`` int64 random labels; at least two classes in train.
    """
    seed = _check_seed(seed)
    if "train" not in labels:
        raise ValueError(f"labels must include 'train' (its prior is drawn from), got {list(labels)}")
    train = np.asarray(labels["train"]).astype(np.int64)
    prior = np.bincount(train) / train.size
    rng = np.random.default_rng([_RANDOM_SCHEME_SEED, seed])
    drawn = {split: rng.choice(prior.size, size=len(values), p=prior).astype(np.int64)
             for split, values in labels.items()}
    if np.unique(drawn["train"]).size < 2:
        raise ValueError(f"random labels of {train.size} train sentences hold a single class; need more sentences")
    return drawn
