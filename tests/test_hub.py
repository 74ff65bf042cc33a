"""A hub id or hub data set without network fails in seconds, naming what was asked and what to pass instead."""

from __future__ import annotations

import socket
import time

import pytest

from probeft import data, models
from probeft.core import hub
from probeft.models import loading


@pytest.fixture(autouse=True)
def fresh_probe(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    hub.forget_probes()
    yield
    hub.forget_probes()


@pytest.fixture
def unreachable(monkeypatch):
    """A hub endpoint on a local port nobody listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(hub, "cached_snapshot", lambda repo_id, revision=None: None)  # and nothing in the local cache
    return port


def test_reachability_is_one_tcp_connection_to_the_endpoint(monkeypatch, unreachable):
    assert not hub.hub_reachable()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}/")
        assert hub.hub_endpoint() == f"http://127.0.0.1:{server.getsockname()[1]}"
        assert hub.hub_reachable()
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline requested: unreachable without trying
        assert not hub.hub_reachable()


def test_a_hub_model_without_network_or_cache_fails_fast_naming_it(unreachable):
    started = time.monotonic()
    with pytest.raises(hub.HubUnreachableError, match=r"model 'org/encoder'.*unreachable.*pass a local path") as error:
        models.load_encoder("org/encoder")
    assert time.monotonic() - started < 10  # no 40 s of retries
    assert isinstance(error.value, FileNotFoundError) and "tiny-bert" in str(error.value)


def test_a_cached_hub_model_is_used_from_the_cache_when_the_hub_is_down(unreachable, monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "cached_snapshot", lambda repo_id, revision=None: tmp_path / "snapshots" / "abc")
    assert models.resolve_model("org/encoder") == str(tmp_path / "snapshots" / "abc")


def test_reachable_hub_passes_the_id_through(monkeypatch):
    monkeypatch.setattr(hub, "hub_reachable", lambda **_: True)
    assert hub.resolve_hub_model("org/encoder") == "org/encoder"


@pytest.mark.parametrize("spec", ["/no/such/model", "./missing", "a/b/c", "~/nothing-here-xyz"])
def test_a_missing_path_is_named_as_a_missing_folder(spec):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        models.resolve_model(spec)


def test_hub_data_sets_fail_fast_naming_the_data_and_the_data_dir(unreachable):
    with pytest.raises(hub.HubUnreachableError, match=r"GLUE cola \(nyu-mll/glue\).*--data-dir"):
        data.read_glue("cola", "hub")
    with pytest.raises(hub.HubUnreachableError, match=r"SQuAD v1.1"):
        data.read_squad_splits("hub")
    with pytest.raises(hub.HubUnreachableError, match=r"WikiText-2"):
        data.read_wikitext_test("hub")


def test_a_cached_snapshot_used_offline_has_the_online_revision(unreachable, monkeypatch, tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "models--org--encoder" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").write_bytes(b"weights")
    monkeypatch.setattr(hub, "cached_snapshot", lambda repo_id, revision=None: snapshot)
    monkeypatch.setattr(loading, "_hub_revision", lambda repo_id, revision=None: commit)
    offline = models.model_fingerprint("org/encoder")
    monkeypatch.setattr(hub, "hub_reachable", lambda **_: True)
    online = models.model_fingerprint("org/encoder")
    assert offline["revision"] == online["revision"] == commit
    # a local folder that merely lies in a cache layout of another model is hashed as before
    assert models.model_fingerprint(str(snapshot))["revision"] != commit


@pytest.mark.parametrize(("env", "offline"), [
    ({"HF_HUB_OFFLINE": "1"}, True),  # datasets follows HF_HUB_OFFLINE when HF_DATASETS_OFFLINE is unset
    ({"HF_HUB_OFFLINE": "ON"}, True),
    ({"HF_DATASETS_OFFLINE": "yes"}, True),
    ({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "0"}, False),  # datasets' own switch wins
])
def test_datasets_offline_mode_reads_the_cache_instead_of_refusing(unreachable, monkeypatch, env, offline):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert hub.datasets_offline() is offline
    if offline:
        hub.require_hub("WikiText-2", instead="pass a data dir")  # the datasets cache will be read
    else:
        with pytest.raises(hub.HubUnreachableError, match="WikiText-2"):
            hub.require_hub("WikiText-2", instead="pass a data dir")


@pytest.mark.parametrize("name", ["PROBEFT_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
@pytest.mark.parametrize("value", ["1", "on", "TRUE", "yes"])
def test_senteval_never_downloads_under_any_offline_switch(monkeypatch, name, value):
    from probeft.data import senteval

    for other in ("PROBEFT_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(other, raising=False)
    assert not senteval.downloads_disabled()
    monkeypatch.setenv(name, value)
    assert senteval.downloads_disabled()


def _hub_cache(root, repo_id: str, commit: str, *, listed_extra: str | None = None):
    """A huggingface_hub 2.x cache of ``repo_id``: refs/main, a snapshot with config.json and weights, and
    (as a filtered ``hf download --include`` leaves it) a tree listing that names a file never downloaded."""
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache

    storage = root / ("models--" + repo_id.replace("/", "--"))
    snapshot = storage / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(commit)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").write_bytes(b"weights")
    if listed_extra is not None:
        entries = {name: TreeCacheEntry(size=1, blob_id="0" * 40)
                   for name in ("config.json", "model.safetensors", listed_extra)}
        write_tree_cache(str(storage), commit, entries)
    return snapshot


def test_a_filtered_hub_download_is_still_found_offline(monkeypatch, tmp_path):
    from huggingface_hub import snapshot_download

    monkeypatch.setattr(hub, "hub_reachable", lambda **_: False)  # the real cache lookup, no network
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = _hub_cache(tmp_path / "hub", "org/filtered", commit, listed_extra="flax_model.msgpack")
    with pytest.raises(Exception, match="incomplete"):  # what huggingface_hub itself says of this cache
        snapshot_download("org/filtered", local_files_only=True, cache_dir=str(tmp_path / "hub"))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert hub.cached_snapshot("org/filtered") == snapshot
    assert models.resolve_model("org/filtered") == str(snapshot)
    assert models.model_fingerprint("org/filtered")["revision"] == commit


def test_the_first_cell_of_a_hub_model_records_its_commit_before_the_download(monkeypatch, tmp_path):
    """Nothing cached yet (the cell's own load will fill the cache): the hub says which commit it serves."""
    import types

    import huggingface_hub

    monkeypatch.setattr(hub, "cached_snapshot", lambda repo_id, revision=None: None)
    monkeypatch.setattr(hub, "hub_reachable", lambda **_: True)
    asked = []

    class FakeApi:
        def model_info(self, repo_id, revision=None):
            asked.append(repo_id)
            return types.SimpleNamespace(id=repo_id, sha="fedcba9876543210fedcba9876543210fedcba98")

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert loading._hub_revision("org/fresh") == "fedcba9876543210fedcba9876543210fedcba98" and asked == ["org/fresh"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def no_proxy_env(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                 "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_the_hub_check_goes_through_the_proxy_the_libraries_use(monkeypatch, no_proxy_env):
    """A proxy-only network: the hub endpoint itself is unreachable, the proxy listens."""
    monkeypatch.setenv("HF_ENDPOINT", f"https://127.0.0.1:{_free_port()}")
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.getsockname()[1]}")
        assert hub.connect_target(hub.hub_endpoint()) == ("127.0.0.1", proxy.getsockname()[1])
        assert hub.hub_reachable()
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the hub exempted from the proxy: connected directly
        hub.forget_probes()
        assert not hub.hub_reachable()


def test_a_failed_hub_check_is_tried_again_later(monkeypatch, no_proxy_env):
    port = _free_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert not hub.hub_reachable()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        assert not hub.hub_reachable()  # within RETRY_AFTER_S the failure stands (no 3 s wait per call)
        monkeypatch.setattr(hub, "RETRY_AFTER_S", 0.0)
        assert hub.hub_reachable()  # the network came back: found, not one failure cached for good
