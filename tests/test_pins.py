"""A run is pinned to hub commits once, loads them everywhere, records them, and resumes offline on the same ones."""

from __future__ import annotations

import glob
import json
import os
import types
from pathlib import Path

import pytest
from test_grid import fake_executor, write_config

from probeft import data, grid, models
from probeft.core import hub, pins
from probeft.data import hub_datasets, senteval
from probeft.grid import pinning

OLD = "0123456789abcdef0123456789abcdef01234567"  # the commit the run was pinned to
NEW = "89abcdef0123456789abcdef0123456789abcdef"  # what the hub's main branch moved to since


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    monkeypatch.delenv(pins.PINS_ENV, raising=False)
    hub.forget_probes()
    yield
    hub.forget_probes()


def _pin(tmp_path: Path, monkeypatch, **kinds) -> Path:
    path = pins.write_pins(tmp_path / pins.PINS_FILE, kinds)
    monkeypatch.setenv(pins.PINS_ENV, str(path))
    return path


# ----------------------------------------------------------------------------------------------------------
# The pins file
# ----------------------------------------------------------------------------------------------------------


def test_a_pins_file_round_trips_and_bad_ones_name_the_file_and_key(tmp_path):
    path = pins.write_pins(tmp_path / "p.json", {"models": {"org/enc": OLD, "org/off": None}})
    assert pins.read_pins(path) == {"models": {"org/enc": OLD, "org/off": None}, "datasets": {}, "senteval": {}}
    path.write_text('{"models": {"org/enc": "main"}}')
    with pytest.raises(pins.PinsFileError, match=r"p.json: models.org/enc = 'main' is not a 40-hex commit"):
        pins.read_pins(path)
    path.write_text('{"model": {}}')
    with pytest.raises(pins.PinsFileError, match=r"unknown keys \['model'\]"):
        pins.read_pins(path)
    path.write_text('{"models": {\n')
    with pytest.raises(pins.PinsFileError, match=r"p.json:2: not JSON"):
        pins.read_pins(path)


def test_a_pins_variable_naming_a_missing_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv(pins.PINS_ENV, str(tmp_path / "gone.json"))
    with pytest.raises(FileNotFoundError, match="gone.json, which does not exist"):
        pins.pinned_revision("models", "org/enc")


# ----------------------------------------------------------------------------------------------------------
# Models: revision= on every load, the pinned snapshot offline
# ----------------------------------------------------------------------------------------------------------


def _two_snapshot_cache(root: Path, repo_id: str) -> dict[str, Path]:
    """A huggingface_hub cache holding two commits of ``repo_id``; refs/main names the newer one."""
    storage = root / ("models--" + repo_id.replace("/", "--"))
    snapshots = {}
    for commit in (OLD, NEW):
        snapshot = storage / "snapshots" / commit
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text("{}")
        (snapshot / "model.safetensors").write_bytes(commit.encode())
        snapshots[commit] = snapshot
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(NEW)
    return snapshots


def test_a_run_pinned_online_resumes_offline_on_the_pinned_snapshot(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshots = _two_snapshot_cache(tmp_path / "hub", "org/enc")
    monkeypatch.setattr(hub, "hub_reachable", lambda **_: False)
    assert models.resolve_model("org/enc") == str(snapshots[NEW])  # unpinned: what refs/main names
    _pin(tmp_path, monkeypatch, models={"org/enc": OLD})
    assert models.resolve_model("org/enc") == str(snapshots[OLD])  # pinned: that commit, though main moved
    offline = models.model_fingerprint("org/enc")["revision"]
    monkeypatch.setattr(hub, "hub_reachable", lambda **_: True)
    assert models.resolve_model("org/enc") == "org/enc" and models.revision_kwargs("org/enc") == {"revision": OLD}
    online = models.model_fingerprint("org/enc")["revision"]
    assert offline == online == OLD  # the fine-tuning signature's model_revision: a resume is not refused


def test_every_hub_load_passes_the_pinned_revision_and_is_recorded(tmp_path, monkeypatch):
    import transformers

    monkeypatch.setattr(hub, "hub_reachable", lambda **_: True)
    _pin(tmp_path, monkeypatch, models={"org/enc": OLD})
    asked = []

    def fake_from_pretrained(name, **kwargs):
        asked.append((name, kwargs.get("revision")))
        return types.SimpleNamespace(model_input_names=["input_ids"])

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake_from_pretrained)
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", fake_from_pretrained)
    models.load_tokenizer("org/enc")
    models.load_config("org/enc")
    assert asked == [("org/enc", OLD), ("org/enc", OLD)]
    assert models.revision_kwargs("org/other") == {}  # not pinned: main
    assert models.hub_repo_id("org/enc") == "org/enc"
    assert models.hub_repo_id("tiny-bert") is None and models.hub_repo_id(str(tmp_path)) is None


def test_a_local_model_load_records_its_weight_hash(tiny_models):
    pins.forget_sources_read()
    models.load_encoder("tiny-bert")
    recorded = pins.sources_read()
    assert recorded == {"models:tiny-bert": models.model_fingerprint("tiny-bert")["revision"]}
    assert len(recorded["models:tiny-bert"]) == 16


# ----------------------------------------------------------------------------------------------------------
# Data sets: the datasets cache as datasets writes it
# ----------------------------------------------------------------------------------------------------------


def _cached_glue(cache: Path, commit: str) -> None:
    """GLUE CoLA prepared by ``datasets`` as a hub load leaves it: ``nyu-mll___glue/cola/0.0.0/<commit>/``
    (the hub's parquet files go through the Parquet builder with the repo's commit as its hash)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets.packaged_modules.parquet.parquet import Parquet

    files = {}
    for split, count in (("train", 6), ("validation", 4)):
        table = pa.table({"sentence": [f"Sentence {i} ." for i in range(count)], "label": [i % 2 for i in range(count)],
                          "idx": list(range(count))})
        files[split] = str(cache.parent / f"{commit[:6]}-{split}.parquet")
        pq.write_table(table, files[split])
    staging = cache.parent / f"staging-{commit[:6]}"
    Parquet(cache_dir=str(staging), dataset_name="glue", config_name="cola", hash=commit,
            data_files=files).download_and_prepare()
    # a hub load names the builder folder "<namespace>___<name>/<config>" (datasets.builder._relative_data_dir)
    built = Path(glob.glob(str(staging / "glue" / "cola-*" / "0.0.0" / commit))[0])
    target = cache / "nyu-mll___glue" / "cola" / "0.0.0" / commit
    target.parent.mkdir(parents=True, exist_ok=True)
    built.rename(target)


@pytest.fixture
def datasets_cache(tmp_path, monkeypatch):
    import datasets

    cache = tmp_path / "datasets"
    cache.mkdir()
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub switch only: datasets follows it
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    return cache


def test_a_cached_hub_data_set_read_offline_records_its_commit(datasets_cache):
    _cached_glue(datasets_cache, OLD)
    task = data.read_glue("cola", "hub")
    assert len(task.train) == 6 and task.train.texts_a[0] == "Sentence 0 ."
    assert pins.sources_read() == {"datasets:nyu-mll/glue/cola": OLD}


def test_offline_datasets_reading_another_commit_than_the_pinned_one_is_refused(datasets_cache, tmp_path,
                                                                                 monkeypatch):
    _cached_glue(datasets_cache, NEW)  # only the newer commit is cached; datasets ignores revision= offline
    _pin(tmp_path, monkeypatch, datasets={"nyu-mll/glue": OLD})
    with pytest.raises(ValueError, match=f"pinned to commit {OLD}.*read commit {NEW}"):
        data.read_glue("cola", "hub")
    _cached_glue(datasets_cache, OLD)
    os.utime(datasets_cache / "nyu-mll___glue" / "cola" / "0.0.0" / OLD)
    assert len(data.read_glue("cola", "hub").dev) == 4  # the pinned commit cached (and newest): read


def test_commit_of_loaded_reads_the_arrow_folder():
    fake = types.SimpleNamespace(cache_files=[{"filename": f"/c/nyu-mll___glue/cola/0.0.0/{OLD}/glue-train.arrow"}])
    assert hub_datasets.commit_of_loaded({"train": fake}) == OLD
    assert hub_datasets.commit_of_loaded(types.SimpleNamespace(cache_files=[])) is None


# ----------------------------------------------------------------------------------------------------------
# The grid pins once at the start and keeps its pins
# ----------------------------------------------------------------------------------------------------------


def _hub_config(tmp_path: Path) -> grid.GridConfig:
    return grid.load_config(write_config(tmp_path, {
        "name": "t", "output_dir": str(tmp_path / "out"), "models": ["tiny-bert", "org/enc"],
        "finetune": {"tasks": ["cola"]},
        "probing": {"tasks": ["bigram_shift"], "finetune_tasks": ["none", "cola"]},
    }))


def test_the_grid_pins_what_it_fetches_once_and_keeps_the_pins_on_resume(tmp_path, monkeypatch):
    config = _hub_config(tmp_path)
    assert pinning.hub_sources(config, None) == {"models": ["org/enc"], "datasets": ["nyu-mll/glue"],
                                                 "senteval": ["bigram_shift"]}
    served = {"models": OLD, "datasets": NEW}
    monkeypatch.setattr(hub, "hub_commit", lambda kind, repo_id: served[kind])
    monkeypatch.setattr(pinning, "downloads_disabled", lambda: False)
    monkeypatch.setattr(pinning, "senteval_blob_sha1s", lambda: {"bigram_shift": "b" * 40})
    logged: list[str] = []
    path = pinning.pin_run(config, None, tmp_path / "out", logged.append)
    assert pins.read_pins(path) == {"models": {"org/enc": OLD}, "datasets": {"nyu-mll/glue": NEW},
                                    "senteval": {"bigram_shift": "b" * 40}}
    assert any(line.startswith("pinned org/enc to 0123456789ab") for line in logged)
    served.update(models=NEW, datasets=OLD)  # the hub moved on; a resume keeps the run's commits
    pinning.pin_run(config, None, tmp_path / "out", logged.append)
    assert pins.read_pins(path)["models"] == {"org/enc": OLD}
    assert pins.read_pins(path)["datasets"] == {"nyu-mll/glue": NEW}


def test_an_offline_start_pins_nothing_it_cannot_resolve_and_says_so(tmp_path, monkeypatch):
    config = _hub_config(tmp_path)
    monkeypatch.setattr(hub, "hub_commit", lambda kind, repo_id: None)
    monkeypatch.setattr(hub, "cached_snapshot", lambda repo_id, revision=None: None)
    logged: list[str] = []
    path = pinning.pin_run(config, None, tmp_path / "out", logged.append)
    assert pins.read_pins(path)["models"] == {"org/enc": None}
    assert any("could not pin model org/enc" in line and "SentEval bigram_shift" in line for line in logged)
    data_dir = tmp_path / "data"
    (data_dir / "senteval").mkdir(parents=True)
    (data_dir / "senteval" / "bigram_shift.txt").write_text("tr\tO\tA b c .\n")
    local = grid.load_config(write_config(tmp_path, {"name": "t", "output_dir": str(tmp_path / "o2"),
                                                     "models": ["tiny-bert"], "probing": {"tasks": ["bigram_shift"]}}))
    assert pinning.hub_sources(local, data_dir) == {"models": [], "datasets": [], "senteval": []}
    assert pinning.pin_run(local, data_dir, tmp_path / "o2", logged.append) is None  # nothing fetched: no file


def test_grid_cells_see_the_pins_file_and_the_variable_is_restored(tmp_path, monkeypatch):
    config = _hub_config(tmp_path)
    monkeypatch.setattr(hub, "hub_commit", lambda kind, repo_id: OLD)
    monkeypatch.setattr(pinning, "downloads_disabled", lambda: True)
    seen: list[str | None] = []
    write = fake_executor([])

    def executor(cell, executed):
        seen.append(os.environ.get(pins.PINS_ENV))
        write(cell, executed)

    report = grid.run_grid(config, grid.resolve_paths(config), executor=executor, log=lambda _: None)
    assert report.ok and seen and set(seen) == {str(tmp_path / "out" / pins.PINS_FILE)}
    assert pins.PINS_ENV not in os.environ
    assert json.loads((tmp_path / "out" / pins.PINS_FILE).read_text())["models"] == {"org/enc": OLD}


def test_senteval_blob_sha1s_reads_githubs_tree_listing(monkeypatch):
    listing = {"sha": senteval.SENTEVAL_COMMIT, "truncated": False, "tree": [
        {"path": "data/probing/odd_man_out.txt", "mode": "100644", "type": "blob", "sha": "c" * 40, "size": 5},
        {"path": "data/probing", "mode": "040000", "type": "tree", "sha": "d" * 40},
        {"path": "senteval/tools.py", "mode": "100644", "type": "blob", "sha": "e" * 40, "size": 5}]}
    monkeypatch.setattr(senteval, "_BLOB_SHA1S", {})
    monkeypatch.setattr(senteval, "_fetch", lambda url, **_: json.dumps(listing).encode())
    assert senteval.senteval_blob_sha1s() == {"odd_man_out": "c" * 40}
    monkeypatch.setattr(senteval, "_BLOB_SHA1S", {})
    monkeypatch.setattr(senteval, "_fetch", lambda url, **_: b'{"message": "API rate limit exceeded"}')
    with pytest.raises(ValueError, match="not a git tree listing"):
        senteval.senteval_blob_sha1s()
