"""The padding-masked mean over tokens: the one implementation used by extraction and the mean head.

This module imports nothing else from :mod:`probeft`.
"""

from __future__ import annotations

import torch

__all__ = ["masked_mean"]


def masked_mean(
    hidden: torch.Tensor, attention_mask: torch.Tensor, special_tokens_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over the real tokens of each sequence, accumulated in float32.

    Padding never enters the mean (transformers #17463: an unmasked mean changes with the batch).

    Args:
        hidden: ``(B, T, D)`` token states (any float dtype).
        attention_mask: ``(B, T)``; 1 for tokens, 0 for padding.
        special_tokens_mask: optional ``(B, T)``; 1 marks special tokens, which are then excluded too.

    Returns:
        ``(B, D)`` float32 means. A row without any selected token gives zeros.

    Raises:
        ValueError: the shapes do not fit.
    """
    if hidden.ndim != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"masked_mean needs hidden (B, T, D) and attention_mask (B, T); got {tuple(hidden.shape)} "
            f"and {tuple(attention_mask.shape)}"
        )
    keep = attention_mask.bool()
    if special_tokens_mask is not None:
        if special_tokens_mask.shape != attention_mask.shape:
            raise ValueError(
                f"special_tokens_mask has shape {tuple(special_tokens_mask.shape)}, "
                f"expected {tuple(attention_mask.shape)}"
            )
        keep = keep & ~special_tokens_mask.bool()
    weights = keep.to(torch.float32).unsqueeze(-1)  # (B, T, 1)
    total = (hidden.to(torch.float32) * weights).sum(dim=1)  # (B, D)
    return total / weights.sum(dim=1).clamp(min=1.0)
