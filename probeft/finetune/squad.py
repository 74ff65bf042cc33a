"""SQuAD v1.1 for the span head: context windows, answer token positions and answer post-processing.

Long contexts are split into windows of ``max_length`` tokens (question first, then a slice of the
context) that overlap by ``doc_stride`` tokens. Each window is labelled with the token span of the
question's first gold answer (or 0 / 0 when the window does not hold it). Predictions are the best
valid span of the ``n_best`` start and end candidates over all windows of a question, at most
``max_answer_length`` tokens long; they are scored with :func:`probeft.core.metrics.squad_scores`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from transformers import PreTrainedTokenizerBase

from probeft import data

__all__ = ["SquadFeatures", "postprocess_squad", "prepare_squad_features", "squad_answer_positions"]


@dataclass
class SquadFeatures:
    """Tokenised SQuAD windows (one example may yield several), labelled with answer positions.

    Attributes:
        inputs: model inputs per window (``input_ids``, ``attention_mask`` [, ``token_type_ids``]).
        example_index: for each window, the index of its example in the example list.
        offsets: for each window and token, the (start, end) character span in the context, or
            ``None`` for question, special and padding tokens.
        start_positions: for each window, the token where the first gold answer starts (0: not in it).
        end_positions: for each window, the token where the first gold answer ends (0: not in it).
    """

    inputs: dict[str, list[list[int]]]
    example_index: list[int]
    offsets: list[list[tuple[int, int] | None]]
    start_positions: list[int]
    end_positions: list[int]

    def __len__(self) -> int:
        return len(self.example_index)

    def columns(self) -> dict[str, list]:
        """Trainer columns: the model inputs plus ``start_positions`` / ``end_positions``, one entry per window."""
        return {**self.inputs, "start_positions": self.start_positions, "end_positions": self.end_positions}


def _tokenize_squad(
    examples: Sequence[data.SquadExample], tokenizer: PreTrainedTokenizerBase, max_length: int, doc_stride: int,
    token_types: bool,
) -> Any:
    if not tokenizer.is_fast:
        raise ValueError("SQuAD feature preparation needs a fast tokenizer (offset mappings)")
    if tokenizer.padding_side != "right":
        raise ValueError("SQuAD feature preparation expects tokenizer.padding_side == 'right'")
    # Question first, context second; only the context is truncated, in overlapping windows.
    return tokenizer(
        [example.question.lstrip() for example in examples],
        [example.context for example in examples],
        truncation="only_second",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids=token_types,  # asked for: some tokenizers no longer return them by default
        padding=False,
    )


def squad_answer_positions(
    examples: Sequence[data.SquadExample],
    example_index: Sequence[int],
    offsets: Sequence[Sequence[tuple[int, int] | None]],
) -> tuple[list[int], list[int]]:
    """Token start / end positions of each window's first gold answer.

    A window that does not contain the whole answer gets position 0 (the first token) for both start
    and end, the usual "no answer in this window" target.

    Args:
        examples: the questions.
        example_index: for each window, the index of its question in ``examples``.
        offsets: for each window and token, the character span in the context or None.

    Returns:
        (start_positions, end_positions), one entry per window.
    """
    starts, ends = [], []
    for window, window_offsets in enumerate(offsets):
        example = examples[example_index[window]]
        answer_start = example.answer_starts[0]
        answer_end = answer_start + len(example.answers[0])  # exclusive character end
        context_tokens = [t for t, span in enumerate(window_offsets) if span is not None]
        inside = bool(context_tokens) and (
            window_offsets[context_tokens[0]][0] <= answer_start
            and window_offsets[context_tokens[-1]][1] >= answer_end
        )
        if not inside:
            starts.append(0)
            ends.append(0)
            continue
        start_token = next(t for t in context_tokens if window_offsets[t][1] > answer_start)
        end_token = next(t for t in reversed(context_tokens) if window_offsets[t][0] < answer_end)
        starts.append(start_token)
        ends.append(max(end_token, start_token))
    return starts, ends


def prepare_squad_features(
    examples: Sequence[data.SquadExample],
    tokenizer: PreTrainedTokenizerBase,
    keys: Sequence[str] = ("input_ids", "attention_mask"),
    *,
    max_length: int = 384,
    doc_stride: int = 128,
) -> SquadFeatures:
    """Windows of every question, for training (their answer positions) and prediction (their offsets).

    Args:
        examples: SQuAD questions (every one has at least one gold answer).
        tokenizer: a fast tokenizer with ``padding_side == "right"``.
        keys: tokenizer outputs to keep as model inputs.
        max_length: tokens per window.
        doc_stride: context tokens shared by consecutive windows.

    Raises:
        ValueError: a slow tokenizer or left padding.
    """
    encoded = _tokenize_squad(examples, tokenizer, max_length, doc_stride, "token_type_ids" in keys)
    offsets = []
    for window in range(len(encoded["input_ids"])):
        sequence_ids = encoded.sequence_ids(window)
        offsets.append([
            tuple(span) if sequence_ids[token] == 1 else None
            for token, span in enumerate(encoded["offset_mapping"][window])
        ])
    example_index = list(encoded["overflow_to_sample_mapping"])
    starts, ends = squad_answer_positions(examples, example_index, offsets)
    return SquadFeatures(
        inputs={key: encoded[key] for key in keys}, example_index=example_index, offsets=offsets,
        start_positions=starts, end_positions=ends,
    )


def postprocess_squad(
    examples: Sequence[data.SquadExample],
    features: SquadFeatures,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    *,
    n_best: int = 20,
    max_answer_length: int = 30,
) -> dict[str, str]:
    """Turn window logits into one answer text per question.

    For each window, the ``n_best`` highest start and end logits are paired; a pair is valid if both
    tokens lie in the context, ``start <= end`` and the span has at most ``max_answer_length`` tokens.
    The answer is the context text of the valid pair with the highest ``start + end`` logit over all
    windows of the question (empty string if there is none).

    Args:
        examples: the questions the features were built from.
        features: their windows (:func:`prepare_squad_features`).
        start_logits: (F, T) start logits, one row per window; T may exceed a window's length (padding,
            e.g. -100 from the Trainer's concatenation), such positions are ignored.
        end_logits: (F, T) end logits.
        n_best: candidates per side per window.
        max_answer_length: longest answer in tokens.

    Returns:
        Question id -> predicted answer text.

    Raises:
        ValueError: the logits do not have one row per window.
    """
    if len(start_logits) != len(features) or len(end_logits) != len(features):
        raise ValueError(
            f"got logits for {len(start_logits)} / {len(end_logits)} windows but {len(features)} features"
        )
    best: dict[int, tuple[float, str]] = {}
    for window, offsets in enumerate(features.offsets):
        length = len(offsets)
        start_row = np.asarray(start_logits[window][:length], dtype=np.float64)
        end_row = np.asarray(end_logits[window][:length], dtype=np.float64)
        example_idx = features.example_index[window]
        context = examples[example_idx].context
        start_candidates = np.argsort(start_row)[::-1][:n_best]
        end_candidates = np.argsort(end_row)[::-1][:n_best]
        for start in start_candidates:
            for end in end_candidates:
                if offsets[start] is None or offsets[end] is None:
                    continue
                if end < start or end - start + 1 > max_answer_length:
                    continue
                score = start_row[start] + end_row[end]
                if example_idx not in best or score > best[example_idx][0]:
                    best[example_idx] = (score, context[offsets[start][0] : offsets[end][1]])
    return {example.id: best[idx][1] if idx in best else "" for idx, example in enumerate(examples)}
