"""Balanced, seeded, disjoint train / dev / test splits of built probing lines, and their SentEval and sidecar form."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from probeft.data.probing_builders.corpus import Sentence

__all__ = [
    "SPLITS",
    "SPLIT_CODES",
    "Line",
    "ProbingBuildError",
    "allocate_balanced",
    "build_pairs",
    "parse_band",
    "parse_sizes",
    "random_pairs",
    "senteval_line",
    "sidecar_record",
]

SPLITS: tuple[str, ...] = ("train", "dev", "test")
SPLIT_CODES = {"train": "tr", "dev": "va", "test": "te"}
T = TypeVar("T")


class ProbingBuildError(ValueError):
    """A probing task cannot be built from the corpus as asked (the message names the task and the counts)."""


@dataclass(frozen=True)
class Line:
    """One line of a built task file, with what it was made from.

    Attributes:
        split: ``"train"``, ``"dev"`` or ``"test"``.
        label: the class.
        tokens: the sentence written (changed or not).
        source: the corpus sentence it was made from.
        changes: what was changed, one dict per edit (positions, original and replacement words); empty when the
            sentence is as in the corpus.
        evidence: what the label was read from (the target word, its tag and position, the depth, ...).
    """

    split: str
    label: str
    tokens: tuple[str, ...]
    source: Sentence
    changes: tuple[dict[str, Any], ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)


def parse_sizes(text: str) -> tuple[int, int, int]:
    """``"1000,100,100"`` -> lines per split (train, dev, test); ValueError unless three positive integers."""
    parts = [part.strip() for part in str(text).split(",")]
    try:
        sizes = tuple(int(part) for part in parts)
    except ValueError:
        sizes = ()
    if len(sizes) != 3 or min(sizes) < 2:
        raise ValueError(f"--sizes {text!r}: expected three integers >= 2, lines of train,dev,test (e.g. 1000,100,100)")
    return sizes  # type: ignore[return-value]


def parse_band(text: str, *, option: str) -> tuple[int, int]:
    """``"40-400"`` -> ``(40, 400)``, a corpus frequency range; ValueError naming ``option`` otherwise."""
    low, _, high = str(text).partition("-")
    try:
        band = int(low), int(high)
    except ValueError:
        band = (0, -1)
    if not 1 <= band[0] <= band[1]:
        raise ValueError(f"{option} {text!r}: expected LOW-HIGH corpus counts with 1 <= LOW <= HIGH (e.g. 40-400)")
    return band


def _sizes_text(sizes: Sequence[int]) -> str:
    return "/".join(f"{size:,}" for size in sizes) + " (train/dev/test)"


def allocate_balanced(
    task: str,
    candidates: Sequence[tuple[str, Hashable, T]],
    labels: Sequence[str],
    sizes: Sequence[int],
    rng: random.Random,
) -> dict[str, list[tuple[str, T]]]:
    """Pick ``size // len(labels)`` items per class for each split, keeping each group inside one split.

    A group is what must not cross splits: the sentence itself, or a target word form (SentEval puts each verb form
    of past_present and each noun form of subj_number / obj_number in one partition only). Groups are taken in a
    seeded order and each goes to the split that still needs the most sentences of its class.

    Args:
        task: the task, for errors.
        candidates: ``(label, group, item)`` for every eligible sentence.
        labels: the classes, each of which must fill its quota.
        sizes: lines per split (train, dev, test).
        rng: the task's random generator.

    Returns:
        ``{split: [(label, item), ...]}``.

    Raises:
        ProbingBuildError: a class cannot fill its quota, naming the class, the sentences found and needed.
    """
    quota = {split: size // len(labels) for split, size in zip(SPLITS, sizes, strict=True)}
    if min(quota.values()) < 1:
        raise ProbingBuildError(f"task {task}: sizes {_sizes_text(sizes)} give fewer than one line per class for its "
                                f"{len(labels)} classes; at least {len(labels)} lines per split are needed")
    grouped: dict[str, dict[Hashable, list[T]]] = defaultdict(lambda: defaultdict(list))
    for label, group, item in candidates:
        grouped[label][group].append(item)
    group_split: dict[Hashable, str] = {}
    chosen: dict[str, list[tuple[str, T]]] = {split: [] for split in SPLITS}
    for label in labels:
        groups = grouped.get(label, {})
        keys = sorted(groups, key=str)
        rng.shuffle(keys)
        have = dict.fromkeys(SPLITS, 0)
        for key in keys:
            split = group_split.get(key)
            if split is None:
                open_splits = [s for s in SPLITS if have[s] < quota[s]]
                if not open_splits:
                    break
                split = max(open_splits, key=lambda s: quota[s] - have[s])  # a big group wastes least there
                group_split[key] = split
            items = groups[key][: quota[split] - have[split]]
            chosen[split] += [(label, item) for item in items]
            have[split] += len(items)
        if any(have[s] < quota[s] for s in SPLITS):
            found = sum(len(items) for items in groups.values())
            got = ", ".join(f"{s} {have[s]:,} of {quota[s]:,}" for s in SPLITS)
            raise ProbingBuildError(
                f"task {task}: class {label!r} has {found:,} eligible sentences ({len(groups):,} distinct "
                f"{'sentences' if all(len(v) == 1 for v in groups.values()) else 'target words'}); "
                f"{sum(quota.values()):,} are needed for balanced splits of {_sizes_text(sizes)} over "
                f"{len(labels)} classes (got {got}); use a larger corpus or smaller --sizes")
    return chosen


def random_pairs(pool: Sequence[Sentence], rng: random.Random) -> list[tuple[Sentence, Sentence]]:
    """``pool`` shuffled and paired off (an odd one out is left)."""
    order = list(pool)
    rng.shuffle(order)
    return list(zip(order[0::2], order[1::2]))


def build_pairs(
    task: str,
    pairs: Sequence[tuple[Sentence, Sentence]],
    labels: tuple[str, str],
    sizes: Sequence[int],
    rng: random.Random,
    perturb: Callable[[Sentence, str, random.Random], tuple[tuple[str, ...], tuple[dict[str, Any], ...]] | None],
) -> list[Line]:
    """Lines of a changed-or-not task: from each pair one sentence is changed and the other kept as it is.

    So both classes come from the same eligible sentences and no sentence occurs in both versions. Pairs fill
    train, then dev, then test (they are in a seeded random order).

    Args:
        task: the task, for errors.
        pairs: eligible sentences in pairs, in a seeded random order.
        labels: ``(unchanged, changed)`` labels, e.g. ``("O", "I")``.
        sizes: lines per split; each split gets ``size // 2`` of each class.
        rng: the task's random generator (which sentence of a pair is changed, and how).
        perturb: ``(sentence, split, rng) -> (tokens, changes)``, or None when it cannot be changed in that split.

    Raises:
        ProbingBuildError: too few pairs, naming the task, the sentences found and needed.
    """
    unchanged, changed = labels
    need = {split: size // 2 for split, size in zip(SPLITS, sizes, strict=True)}
    have = dict.fromkeys(SPLITS, 0)
    lines: list[Line] = []
    failed = 0
    for first, second in pairs:
        split = next((s for s in SPLITS if have[s] < need[s]), None)
        if split is None:
            break
        if rng.random() < 0.5:
            first, second = second, first
        made = perturb(first, split, rng)
        if made is None:
            first, second = second, first
            made = perturb(first, split, rng)
        if made is None:
            failed += 1
            continue
        tokens, edits = made
        lines += [Line(split, changed, tokens, first, edits), Line(split, unchanged, second.tokens, second)]
        have[split] += 1
    if any(have[s] < need[s] for s in SPLITS):
        made_pairs = sum(have.values())
        extra = f"; {failed:,} pairs had no valid change" if failed else ""
        raise ProbingBuildError(
            f"task {task}: {2 * len(pairs):,} eligible sentences gave {2 * made_pairs:,} lines{extra}; "
            f"{2 * sum(need.values()):,} are needed for balanced splits of {_sizes_text(sizes)} (each sentence is "
            "used once, changed or not); use a larger corpus or smaller --sizes")
    return lines


def senteval_line(line: Line) -> str:
    """``tr|va|te <TAB> label <TAB> sentence``."""
    return f"{SPLIT_CODES[line.split]}\t{line.label}\t{' '.join(line.tokens)}"


def sidecar_record(line: Line, number: int) -> dict[str, Any]:
    """The audit record of file line ``number`` (1-based): where the sentence came from and what was changed."""
    return {
        "line": number,
        "split": SPLIT_CODES[line.split],
        "label": line.label,
        "sentence": " ".join(line.tokens),
        "source": {"line": line.source.line, "sentence": line.source.index, "text": line.source.text},
        "changes": list(line.changes),
        "evidence": line.evidence,
    }
