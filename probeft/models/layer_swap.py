"""Layer replacement: put pre-trained transformer layers back into a fine-tuned model (paper Fig. 3c/d).

"Replace the top ``k`` layers" means: the last ``k`` of the L layer *applications* of the encoder use
the pre-trained weights, everything below them (and the embeddings) keeps the fine-tuned weights.
"Replace the bottom ``k`` layers" (:func:`replace_bottom_layers`, the contrast of issue 26's F7 check)
means the first ``k`` applications use the pre-trained weights and everything above them keeps the
fine-tuned ones.

* BERT / RoBERTa (``encoder.layer``, one module per layer): application ``i`` is layer ``i``.
* ALBERT (``encoder.albert_layer_groups``): the encoder applies group ``int(i / (L / G))`` at step ``i``
  (``G = num_hidden_groups``, 1 for the released models), so one set of weights serves several
  applications. Before replacing, the fine-tuned model is *untied*: it gets one group per application
  (``num_hidden_groups = L``), each a copy of the group it used, which computes exactly what the shared
  model computed. Then the last ``k`` copies take the pre-trained weights of their applications. ALBERT's
  embedding projection (``embedding_hidden_mapping_in``) counts as part of the embeddings.

Imports from :mod:`probeft`: ``models`` (architecture check, layer count).
"""

from __future__ import annotations

import copy

import torch
from transformers import PreTrainedModel

from probeft.models.loading import check_same_architecture

__all__ = ["LAYER_SIDES", "LayerSwapError", "layer_applications", "replace_bottom_layers", "replace_layers",
           "replace_top_layers", "untie_shared_layers"]

LAYER_SIDES = ("top", "bottom")  # which end of the encoder replace_layers restores


class LayerSwapError(ValueError):
    """The model has no layer layout that layer replacement knows (neither ``encoder.layer`` nor ALBERT groups)."""


def _is_albert(model: PreTrainedModel) -> bool:
    return hasattr(getattr(model.base_model, "encoder", None), "albert_layer_groups")


def layer_applications(model: PreTrainedModel, role: str = "given") -> list[torch.nn.Module]:
    """The module the encoder applies at each of its L layer steps, bottom to top.

    Args:
        model: a BERT / RoBERTa / ALBERT model (bare encoder or e.g. ``*ForMaskedLM``).
        role: how error messages name the model (``"fine-tuned"``, ``"pre-trained"``).

    Returns:
        L modules; for a shared-weight ALBERT the same group object appears several times.

    Raises:
        LayerSwapError: the model has neither layout.
    """
    encoder = getattr(model.base_model, "encoder", None)
    if _is_albert(model):
        config = model.base_model.config
        num_layers, num_groups = config.num_hidden_layers, config.num_hidden_groups
        # The same arithmetic as AlbertTransformer.forward, so each step gets the group it really uses.
        return [encoder.albert_layer_groups[int(i / (num_layers / num_groups))] for i in range(num_layers)]
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise LayerSwapError(
            f"{role} model {type(model).__name__} has neither an encoder.layer list (BERT/RoBERTa) nor ALBERT layer "
            "groups; layer replacement is not defined for it"
        )
    return list(layers)


def untie_shared_layers(model: PreTrainedModel) -> PreTrainedModel:
    """Give every layer application of an ALBERT model its own copy of the weights (in place).

    Afterwards ``config.num_hidden_groups == num_hidden_layers`` and group ``i`` is a copy of the group
    step ``i`` used before, so outputs are unchanged. BERT / RoBERTa models and already untied ALBERT
    models are returned as they are.

    Args:
        model: the model to untie.

    Returns:
        ``model`` (the same object).
    """
    if not _is_albert(model):
        return model
    config = model.base_model.config
    if config.num_hidden_groups == config.num_hidden_layers:
        return model
    # The copies keep pointing at the model's own config (read at forward time, e.g. the attention kernel).
    untied = [copy.deepcopy(group, {id(config): config}) for group in layer_applications(model)]
    model.base_model.encoder.albert_layer_groups = torch.nn.ModuleList(untied)
    config.num_hidden_groups = config.num_hidden_layers
    return model


def replace_layers(
    finetuned: PreTrainedModel, pretrained: PreTrainedModel, k: int, *, side: str = "top",
    replace_embeddings: bool = False,
) -> PreTrainedModel:
    """Let ``k`` layer applications at one end of ``finetuned`` use the weights of ``pretrained`` (in place).

    ``side="top"``: the last ``k`` applications; ``side="bottom"``: the first ``k``. ``k = 0`` changes no
    output; ``k = L`` gives every application the pre-trained layer weights (either side). The embeddings
    (and any task or MLM head) are not touched unless ``replace_embeddings=True``. An ALBERT ``finetuned``
    is untied first (see :func:`untie_shared_layers`); ``pretrained`` is never modified. Calls on one side
    accumulate: replacing k + 1 layers after k equals replacing k + 1 layers of the original.

    Args:
        finetuned: model to modify (a bare encoder or e.g. a ``*ForMaskedLM``).
        pretrained: model of the same architecture providing the weights.
        k: number of layer applications to replace, 0 <= k <= L.
        side: ``"top"`` or ``"bottom"`` (:data:`LAYER_SIDES`).
        replace_embeddings: also copy the embedding layer (token, position, type embeddings + LayerNorm;
            for ALBERT also the embedding-to-hidden projection).

    Returns:
        ``finetuned`` (the same object).

    Raises:
        LayerSwapError: a model with no known layer layout.
        ValueError: different architectures / layer counts, k out of range, or an unknown ``side``.
    """
    if side not in LAYER_SIDES:
        raise ValueError(f"side must be one of {list(LAYER_SIDES)}, got {side!r}")
    layer_applications(finetuned, "fine-tuned")  # refuse an unknown layout before anything changes
    source = layer_applications(pretrained, "pre-trained")
    check_same_architecture(finetuned.config, pretrained.config, "fine-tuned model", "pre-trained model")
    num_layers = len(source)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= num_layers:
        raise ValueError(f"k must be an integer in [0, {num_layers}], got {k!r}")
    target = layer_applications(untie_shared_layers(finetuned), "fine-tuned")
    if len(target) != num_layers:
        raise ValueError(f"layer counts differ: fine-tuned {len(target)}, pre-trained {num_layers}")
    replaced = range(num_layers - k, num_layers) if side == "top" else range(k)
    with torch.no_grad():
        for index in replaced:
            target[index].load_state_dict(source[index].state_dict())
        if replace_embeddings:
            finetuned.base_model.embeddings.load_state_dict(pretrained.base_model.embeddings.state_dict())
            if _is_albert(finetuned):
                finetuned.base_model.encoder.embedding_hidden_mapping_in.load_state_dict(
                    pretrained.base_model.encoder.embedding_hidden_mapping_in.state_dict()
                )
    return finetuned


def replace_top_layers(
    finetuned: PreTrainedModel, pretrained: PreTrainedModel, k: int, *, replace_embeddings: bool = False
) -> PreTrainedModel:
    """Let the last ``k`` layer applications of ``finetuned`` use the weights of ``pretrained`` (in place).

    :func:`replace_layers` with ``side="top"`` (see there for arguments, errors and ALBERT).
    """
    return replace_layers(finetuned, pretrained, k, side="top", replace_embeddings=replace_embeddings)


def replace_bottom_layers(
    finetuned: PreTrainedModel, pretrained: PreTrainedModel, k: int, *, replace_embeddings: bool = False
) -> PreTrainedModel:
    """Let the first ``k`` layer applications of ``finetuned`` use the weights of ``pretrained`` (in place).

    :func:`replace_layers` with ``side="bottom"``: the contrast to :func:`replace_top_layers` (does restoring
    the lower layers recover as much as restoring the upper ones?).
    """
    return replace_layers(finetuned, pretrained, k, side="bottom", replace_embeddings=replace_embeddings)
