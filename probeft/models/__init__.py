"""Encoders by spec: loading and fingerprints (:mod:`~probeft.models.loading`, re-exported here), the tiny
random encoders (:mod:`~probeft.models.tiny`), the packaged all-mpnet-base-v2 (:mod:`~probeft.models.packaged`)
and replacing the top or bottom layers with pre-trained ones (:mod:`~probeft.models.layer_swap`).

May import: :mod:`probeft.core`.
"""

from __future__ import annotations

from probeft.models.loading import (
    MINILM_ALIAS,
    MINILM_HUB_ID,
    MPNET_ALIAS,
    MPNET_HUB_ID,
    TINY_MODEL_NAMES,
    check_same_architecture,
    hub_repo_id,
    load_config,
    load_encoder,
    load_encoder_weights,
    load_mlm_model,
    load_tokenizer,
    model_fingerprint,
    new_mlm_model,
    num_hidden_layers,
    resolve_model,
    revision_kwargs,
)

__all__ = [
    "MINILM_ALIAS",
    "MINILM_HUB_ID",
    "MPNET_ALIAS",
    "MPNET_HUB_ID",
    "TINY_MODEL_NAMES",
    "check_same_architecture",
    "hub_repo_id",
    "load_config",
    "load_encoder",
    "load_encoder_weights",
    "load_mlm_model",
    "load_tokenizer",
    "model_fingerprint",
    "new_mlm_model",
    "num_hidden_layers",
    "resolve_model",
    "revision_kwargs",
]
