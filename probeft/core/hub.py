"""Is the Hugging Face hub reachable? One quick check, so a hub id without network fails in seconds.

Without it, ``from_pretrained`` and ``datasets.load_dataset`` retry an unreachable hub for about
40 s (five HEAD requests with back-off) before they fail. :func:`hub_reachable` opens one TCP
connection to the hub endpoint (timeout :data:`PROBE_TIMEOUT_S`) and remembers the answer for the
process; :func:`resolve_hub_model` then uses the local Hugging Face cache when the hub is down and
raises :class:`HubUnreachableError`, naming the model and how to pass a local copy, when there is
none. ``HF_HUB_OFFLINE=1`` means "unreachable" without trying.

This module imports nothing else from :mod:`probeft`.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

__all__ = [
    "PROBE_TIMEOUT_S",
    "HubUnreachableError",
    "datasets_offline",
    "env_flag",
    "hub_endpoint",
    "hub_reachable",
    "require_hub",
    "resolve_hub_model",
]

PROBE_TIMEOUT_S = 3.0
_LOCAL_HINT = ("pass a local path instead (a folder saved with save_pretrained, e.g. a copy of the model downloaded "
               "on a machine with internet), or a built-in offline name: tiny-bert, tiny-roberta, tiny-albert, "
               "all-minilm-l6-v2, all-mpnet-base-v2")


class HubUnreachableError(FileNotFoundError):
    """A hub model or data set was asked for, the hub can't be reached, and there is no local copy."""


def hub_endpoint() -> str:
    """The hub's base URL: ``$HF_ENDPOINT`` or ``https://huggingface.co``."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def env_flag(name: str) -> bool:
    """Whether environment variable ``name`` is set to a true value as the Hugging Face libraries read it
    (``1``, ``true``, ``yes``, ``on``; any case)."""
    return os.environ.get(name, "").strip().upper() in {"1", "TRUE", "YES", "ON"}


def _offline_requested() -> bool:
    return env_flag("HF_HUB_OFFLINE") or env_flag("TRANSFORMERS_OFFLINE")


def datasets_offline() -> bool:
    """Whether ``datasets`` reads only its cache: ``HF_DATASETS_OFFLINE`` when set, else ``HF_HUB_OFFLINE``
    (the rule of ``datasets.config``)."""
    if os.environ.get("HF_DATASETS_OFFLINE") is not None:
        return env_flag("HF_DATASETS_OFFLINE")
    return env_flag("HF_HUB_OFFLINE")


@functools.cache
def _probe(endpoint: str, timeout: float) -> bool:
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:  # DNS failure, refused, timed out, no route
        return False


def hub_reachable(*, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub endpoint opens within ``timeout`` seconds (cached per endpoint)."""
    return not _offline_requested() and _probe(hub_endpoint(), timeout)


def _cached_snapshot(repo_id: str) -> Path | None:
    """The local Hugging Face cache's snapshot folder of ``repo_id`` holding a config.json, or None."""
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, or not a valid repo id: both mean "no local copy"
        return None
    return folder if (folder / "config.json").is_file() else None


def resolve_hub_model(repo_id: str) -> str:
    """``repo_id`` itself when the hub is reachable, else its cached snapshot folder (no network needed).

    Raises:
        HubUnreachableError: the hub is unreachable and ``repo_id`` is not in the local cache; the
            message names the model, the endpoint, and how to pass a local copy.
    """
    if hub_reachable():
        return repo_id
    cached = _cached_snapshot(repo_id)
    if cached is not None:
        return str(cached)
    why = "HF_HUB_OFFLINE is set" if _offline_requested() else f"{hub_endpoint()} is unreachable"
    raise HubUnreachableError(
        f"model {repo_id!r} is not a local folder or a built-in name, so it would come from the Hugging Face hub, "
        f"but {why} and the model is not in the local cache; {_LOCAL_HINT}"
    )


def require_hub(what: str, *, instead: str) -> None:
    """Raise :class:`HubUnreachableError` naming ``what`` and the alternative ``instead`` when the hub is down.

    For the ``datasets`` hub readers; in ``datasets``' offline mode (``HF_DATASETS_OFFLINE``, else
    ``HF_HUB_OFFLINE``: :func:`datasets_offline`) the check is skipped and the datasets cache is used.
    """
    if datasets_offline() or hub_reachable():
        return
    raise HubUnreachableError(
        f"{what} would come from the Hugging Face hub, but {hub_endpoint()} is unreachable; {instead} "
        "(or set HF_DATASETS_OFFLINE=1 to read the datasets cache)"
    )
