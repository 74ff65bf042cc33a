"""Hub data sets (GLUE, SQuAD, WikiText) loaded at the run's pinned commit, with the commit read recorded.

``datasets`` stores what it prepared under ``<cache>/<namespace>___<name>/<config>/<version>/<commit>/``,
for a download and for an offline read from its cache alike; that last folder name is the data set's hub
commit, so it is what a cell records (:func:`probeft.core.pins.note_read`). When the run is pinned
(:mod:`probeft.core.pins`), the load asks for that commit, and an offline read that finds another commit in
the cache (``datasets`` then takes its newest cached copy, whatever its commit) is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from probeft.core import pins
from probeft.core.hub import require_hub

__all__ = ["HUB_DATASETS", "commit_of_loaded", "load_hub_dataset"]

# task -> (repo id, config) of the hub copies the readers use
HUB_DATASETS: dict[str, tuple[str, str | None]] = {
    "cola": ("nyu-mll/glue", "cola"),
    "sst2": ("nyu-mll/glue", "sst2"),
    "rte": ("nyu-mll/glue", "rte"),
    "squad": ("rajpurkar/squad", None),
    "wikitext": ("Salesforce/wikitext", "wikitext-2-raw-v1"),
}
_COMMIT = re.compile(r"[0-9a-f]{40}")
_INSTEAD = "pass a data dir (--data-dir or PROBEFT_DATA_DIR) in the layout of `probeft demo-data`"


def commit_of_loaded(loaded: Any) -> str | None:
    """The hub commit a ``datasets`` Dataset / DatasetDict was prepared from: the 40-hex folder its arrow
    cache files lie in, or None (in-memory data, or a non-hub builder)."""
    files = getattr(loaded, "cache_files", None)
    if isinstance(files, Mapping):  # a DatasetDict: split -> cache files
        groups = list(files.values())
    elif files is None and isinstance(loaded, Mapping):
        groups = [getattr(split, "cache_files", None) or [] for split in loaded.values()]
    else:
        groups = [files or []]
    for group in groups:
        for cache_file in group:
            folder = Path(cache_file["filename"]).parent.name
            if _COMMIT.fullmatch(folder):
                return folder
    return None


def load_hub_dataset(repo_id: str, config: str | None, *, what: str, split: str | None = None) -> Any:
    """``datasets.load_dataset(repo_id, config, split=split)`` at the run's pinned commit, recorded.

    Args:
        repo_id: e.g. ``"nyu-mll/glue"``.
        config: the data set's configuration (``"cola"``), or None.
        what: how error messages name it, e.g. ``"GLUE cola (nyu-mll/glue)"``.
        split: one split, or None for all.

    Raises:
        probeft.core.hub.HubUnreachableError: the hub can't be reached and ``datasets`` is not in offline mode.
        ValueError: the run is pinned to one commit and ``datasets`` read another (an older cached copy).
    """
    import datasets

    require_hub(what, instead=_INSTEAD)
    pinned = pins.pinned_revision("datasets", repo_id)
    loaded = datasets.load_dataset(repo_id, config, split=split, revision=pinned)
    commit = commit_of_loaded(loaded)
    if pinned is not None and commit is not None and commit != pinned:
        raise ValueError(
            f"{what}: the run is pinned to commit {pinned} ({pins.pins_path()}), but datasets read commit {commit} "
            "from its cache (offline, it takes its newest cached copy); go online once to fetch the pinned commit, "
            f"or {_INSTEAD}"
        )
    name = repo_id if config is None else f"{repo_id}/{config}"
    pins.note_read("datasets", name, commit or pinned or "unknown")
    return loaded
