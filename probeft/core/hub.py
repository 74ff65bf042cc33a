"""Is the Hugging Face hub reachable? One quick check, so a hub id without network fails in seconds.

Without it, ``from_pretrained`` and ``datasets.load_dataset`` retry an unreachable hub for about
40 s (five HEAD requests with back-off) before they fail. :func:`hub_reachable` opens one TCP
connection (timeout :data:`PROBE_TIMEOUT_S`) to where the libraries would connect: the proxy that
``HTTPS_PROXY`` / ``ALL_PROXY`` name unless ``NO_PROXY`` exempts the hub, else the hub endpoint. A success
is remembered for the process, a failure for :data:`RETRY_AFTER_S` only; :func:`resolve_hub_model` then uses the local Hugging Face cache when the hub is down and
raises :class:`HubUnreachableError`, naming the model and how to pass a local copy, when there is
none. ``HF_HUB_OFFLINE=1`` means "unreachable" without trying.

This module imports nothing else from :mod:`probeft`.
"""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

__all__ = [
    "PROBE_TIMEOUT_S",
    "HubUnreachableError",
    "cached_snapshot",
    "connect_target",
    "forget_probes",
    "datasets_offline",
    "env_flag",
    "hub_commit",
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


RETRY_AFTER_S = 60.0  # a failed probe is tried again after this long (a network can come back)
_SUCCEEDED: set[tuple[str, int]] = set()  # (host, port) that answered once: reachable for the process
_FAILED_AT: dict[tuple[str, int], float] = {}  # (host, port) -> when it last failed


def connect_target(endpoint: str) -> tuple[str, int]:
    """Where an HTTP client honouring the proxy environment connects for ``endpoint``: ``(host, port)`` of
    the proxy (``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY``, any case) unless ``NO_PROXY`` names the
    endpoint's host, else of the endpoint itself."""
    url = urlparse(endpoint)
    host = url.hostname or ""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass_environment(host, proxies):
        parsed = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        default = {"https": 443, "socks5": 1080, "socks5h": 1080, "socks4": 1080}.get(parsed.scheme, 80)
        return parsed.hostname or "", parsed.port or default
    return host, url.port or (443 if url.scheme == "https" else 80)


def _probe(endpoint: str, timeout: float) -> bool:
    target = connect_target(endpoint)
    if target in _SUCCEEDED:
        return True
    if time.monotonic() - _FAILED_AT.get(target, -RETRY_AFTER_S) < RETRY_AFTER_S:
        return False
    try:
        with socket.create_connection(target, timeout=timeout):
            _SUCCEEDED.add(target)
            return True
    except OSError:  # DNS failure, refused, timed out, no route
        _FAILED_AT[target] = time.monotonic()
        return False


def forget_probes() -> None:
    """Forget every remembered probe answer (tests; a process whose network changed)."""
    _SUCCEEDED.clear()
    _FAILED_AT.clear()


def hub_reachable(*, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub (or the proxy in front of it) opens within ``timeout`` seconds."""
    return not _offline_requested() and _probe(hub_endpoint(), timeout)


def cached_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """The local Hugging Face cache's snapshot folder of ``repo_id`` holding a config.json, or None.

    ``revision`` None means the commit the cache's ``refs/main`` names; else that commit's snapshot.

    Looked up file by file (``try_to_load_from_cache``), as transformers does: ``snapshot_download(
    local_files_only=True)`` refuses a snapshot whose cached tree listing names files that were never
    downloaded (any filtered download, e.g. ``hf download --include``), although the model loads.
    """
    try:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - not a valid repo id: no local copy
        return None
    return Path(config).parent if isinstance(config, str) else None


def resolve_hub_model(repo_id: str, revision: str | None = None) -> str:
    """``repo_id`` itself when the hub is reachable, else its cached snapshot folder (no network needed).

    Args:
        repo_id: the hub model id.
        revision: the commit the run is pinned to (:mod:`probeft.core.pins`); offline, that commit's snapshot
            is used, so a run started online resumes offline on the same weights.

    Raises:
        HubUnreachableError: the hub is unreachable and ``repo_id`` is not in the local cache; the
            message names the model, the endpoint, and how to pass a local copy.
    """
    if hub_reachable():
        return repo_id
    cached = cached_snapshot(repo_id, revision)
    if cached is not None:
        return str(cached)
    why = "HF_HUB_OFFLINE is set" if _offline_requested() else f"{hub_endpoint()} is unreachable"
    which = f"commit {revision} of the model (the run is pinned to it)" if revision else "the model"
    raise HubUnreachableError(
        f"model {repo_id!r} is not a local folder or a built-in name, so it would come from the Hugging Face hub, "
        f"but {why} and {which} is not in the local cache; {_LOCAL_HINT}"
    )


def hub_commit(kind: str, repo_id: str) -> str | None:
    """The commit the hub's main branch of a model or data set is at now, or None when the hub can't say.

    Args:
        kind: ``"models"`` or ``"datasets"``.
        repo_id: the hub id.
    """
    if not hub_reachable():
        return None
    try:
        from huggingface_hub import HfApi

        api = HfApi()
        info = api.model_info(repo_id) if kind == "models" else api.dataset_info(repo_id)
        return str(info.sha) if info.sha else None
    except Exception:  # noqa: BLE001 - no such repo, gated, a network error: the caller says "unresolved"
        return None


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
