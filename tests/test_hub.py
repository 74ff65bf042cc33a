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
    hub._probe.cache_clear()
    yield
    hub._probe.cache_clear()


@pytest.fixture
def unreachable(monkeypatch):
    """A hub endpoint on a local port nobody listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(hub, "_cached_snapshot", lambda repo_id: None)  # and nothing in the local cache
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
    monkeypatch.setattr(hub, "_cached_snapshot", lambda repo_id: tmp_path / "snapshots" / "abc")
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
    monkeypatch.setattr(hub, "_cached_snapshot", lambda repo_id: snapshot)
    monkeypatch.setattr(loading, "_hub_revision", lambda repo_id: commit)
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
    assert not senteval._offline()
    monkeypatch.setenv(name, value)
    assert senteval._offline()
