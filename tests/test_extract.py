"""Tests for probeft.probing.extract and probeft.probing.feature_cache: pooling, layers, batching, special tokens, the cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from probeft import data, models
from probeft.core.names import POOLINGS
from probeft.core.pooling import masked_mean
from probeft.models import tiny
from probeft.probing import extract, feature_cache

SENTENCES = [
    "The cat sat on the mat .",
    "A dog .",
    "We walked to the pool , and Evan took my hand again while the sun went down behind the hills .",
    "Hi",
    "She shook her head and smiled at the old man who sold newspapers on the corner .",
    "It rained .",
]


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny BERT with 3 layers and tiny RoBERTa with 2 layers (RoBERTa: <s> first, padding-aware positions)."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "tiny-bert": tiny.build_tiny_model("tiny-bert", root / "bert", num_layers=3),
        "tiny-roberta": tiny.build_tiny_model("tiny-roberta", root / "roberta", num_layers=2),
    }


@pytest.fixture(scope="module")
def bert(tiny_dirs: dict[str, Path]) -> tuple[torch.nn.Module, object]:
    spec = str(tiny_dirs["tiny-bert"])
    return models.load_encoder(spec), models.load_tokenizer(spec)


def _features(model, tokenizer, sentences, **kwargs) -> dict[str, np.ndarray]:
    return extract.extract_features(model, tokenizer, sentences, progress=False, **kwargs)


def test_masked_mean_hand_computed() -> None:
    """The shared masked mean that extraction pools with (probeft.core.pooling)."""
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    attention = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    special = torch.tensor([[1, 0, 1, 0], [1, 0, 0, 1]])
    expected = [hidden[0, :3].mean(0).numpy(), hidden[1].mean(0).numpy()]
    np.testing.assert_allclose(masked_mean(hidden, attention), expected)
    np.testing.assert_allclose(
        masked_mean(hidden, attention, special), [hidden[0, 1].numpy(), hidden[1, 1:3].mean(0).numpy()]
    )
    half = masked_mean(hidden.half(), attention)
    assert half.dtype == torch.float32
    with pytest.raises(ValueError, match="attention_mask"):
        masked_mean(hidden, attention[:, :3])


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-roberta"])
def test_features_do_not_depend_on_batch_padding(tiny_dirs: dict[str, Path], name: str) -> None:
    spec = str(tiny_dirs[name])
    model, tokenizer = models.load_encoder(spec), models.load_tokenizer(spec)
    batched = _features(model, tokenizer, SENTENCES, batch_size=len(SENTENCES), sort_by_length=False)
    for index in (1, 3):  # short sentences, padded heavily inside the batch
        alone = _features(model, tokenizer, [SENTENCES[index]], batch_size=1)
        for pooling in POOLINGS:
            np.testing.assert_allclose(batched[pooling][:, index], alone[pooling][:, 0], atol=1e-5)


def test_layer_count_is_layers_plus_one_and_layer_zero_is_embeddings(tiny_dirs: dict[str, Path], bert) -> None:
    model, tokenizer = bert
    features = _features(model, tokenizer, SENTENCES[:2])
    assert models.num_hidden_layers(model) == 3
    for pooling in POOLINGS:
        assert features[pooling].shape == (4, 2, 32)
        assert features[pooling].dtype == np.float32
    roberta = str(tiny_dirs["tiny-roberta"])
    two_layer = _features(models.load_encoder(roberta), models.load_tokenizer(roberta), SENTENCES[:2])
    assert two_layer["cls"].shape[0] == 3
    with torch.inference_mode():
        ids = tokenizer(SENTENCES[0], return_tensors="pt")["input_ids"]
        embeddings = model.embeddings(input_ids=ids)[0, 0].numpy()
    np.testing.assert_allclose(features["cls"][0, 0], embeddings, atol=1e-5)


def test_sorted_and_unsorted_batching_agree_in_original_order(bert) -> None:
    model, tokenizer = bert
    sorted_ = _features(model, tokenizer, SENTENCES, batch_size=2, sort_by_length=True)
    unsorted = _features(model, tokenizer, SENTENCES, batch_size=2, sort_by_length=False)
    alone = _features(model, tokenizer, [SENTENCES[2]], batch_size=1)
    for pooling in POOLINGS:
        np.testing.assert_allclose(sorted_[pooling], unsorted[pooling], atol=1e-5)
        np.testing.assert_allclose(sorted_[pooling][:, 2], alone[pooling][:, 0], atol=1e-5)  # order kept


def test_excluding_special_tokens_matches_hand_computed_mean(bert) -> None:
    model, tokenizer = bert
    included = _features(model, tokenizer, SENTENCES[:3], batch_size=3)
    excluded = _features(model, tokenizer, SENTENCES[:3], batch_size=3, mean_includes_special=False)
    assert not np.allclose(included["mean"], excluded["mean"], atol=1e-4)
    np.testing.assert_array_equal(included["cls"], excluded["cls"])
    for index, sentence in enumerate(SENTENCES[:3]):
        encoded = tokenizer(sentence, return_tensors="pt")
        tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
        with torch.inference_mode():
            states = model(**encoded, output_hidden_states=True).hidden_states
        for layer, state in enumerate(states):
            np.testing.assert_allclose(excluded["mean"][layer, index], state[0, 1:-1].mean(0).numpy(), atol=1e-5)
            np.testing.assert_allclose(included["mean"][layer, index], state[0].mean(0).numpy(), atol=1e-5)


def test_restores_training_mode_and_rejects_bad_input(bert) -> None:
    model, tokenizer = bert
    model.train()
    _features(model, tokenizer, SENTENCES[:1])
    assert model.training
    model.eval()
    with pytest.raises(ValueError, match="poolings"):
        _features(model, tokenizer, SENTENCES[:1], poolings=("max",))
    with pytest.raises(ValueError, match="sentence 1 is empty"):
        _features(model, tokenizer, ["fine", "  "])
    with pytest.raises(ValueError, match="only supported on CUDA"):
        _features(model, tokenizer, SENTENCES[:1], device="cpu", dtype=torch.float16)


def _metadata(**changes) -> dict:
    base = extract.feature_metadata(
        model="tiny-bert", fingerprint={"model": "tiny-bert", "resolved": "/x", "revision": "abc"},
        data_sha256="0" * 64, num_layers=2, hidden_size=4, task="toy",
    )
    base.update(changes)
    return base


def _arrays(layers: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"train.cls": rng.normal(size=(layers, 5, 4)).astype(np.float32),
            "train.mean": rng.normal(size=(layers, 5, 4)).astype(np.float32)}


def test_cache_hit_returns_identical_arrays_without_recomputing(tmp_path: Path) -> None:
    calls = []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return _arrays()

    cache = tmp_path / "features"
    first = feature_cache.load_or_extract(cache, _metadata(), compute)
    second = feature_cache.load_or_extract(cache, _metadata(), compute)
    assert len(calls) == 1
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    stored = json.loads((cache / feature_cache.METADATA_FILE).read_text())
    assert stored["metadata"]["num_feature_layers"] == 3 and stored["arrays"]["train.cls"]["shape"] == [3, 5, 4]
    assert "resolved" not in stored["metadata"]["model_fingerprint"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features"]  # no staging directories left behind
    feature_cache.load_or_extract(cache, _metadata(), compute, refresh=True)
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"max_length": 64}, "max_length"),
        ({"num_feature_layers": 13}, "num_feature_layers"),
        ({"model_fingerprint": {"model": "tiny-bert", "revision": "def"}}, "model_fingerprint"),
        ({"mean_includes_special": False}, "mean_includes_special"),
    ],
)
def test_cache_with_other_metadata_is_refused(tmp_path: Path, changes: dict, key: str) -> None:
    feature_cache.load_or_extract(tmp_path / "c", _metadata(), _arrays)
    with pytest.raises(feature_cache.FeatureCacheMismatch, match=key) as caught:
        feature_cache.load_or_extract(tmp_path / "c", _metadata(**changes), lambda: pytest.fail("must not recompute"))
    assert caught.value.differing_keys == [key]
    assert isinstance(caught.value, ValueError)


def test_cache_checks_array_shapes_against_metadata(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected 3 layers"):
        feature_cache.load_or_extract(tmp_path / "c", _metadata(), lambda: _arrays(layers=2))
    assert not (tmp_path / "c").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a feature cache"):
        feature_cache.load_or_extract(tmp_path / "other", _metadata(), _arrays)


def test_a_failed_computation_leaves_no_cache_and_no_staging_folder(tmp_path: Path) -> None:
    def broken() -> dict[str, np.ndarray]:
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        feature_cache.load_or_extract(tmp_path / "c", _metadata(), broken)
    assert list(tmp_path.iterdir()) == []


def test_a_cache_finished_by_another_process_meanwhile_is_kept_and_checked(tmp_path: Path) -> None:
    cache = tmp_path / "c"
    theirs = {name: array + 1 for name, array in _arrays().items()}

    def compute_while_another_writes() -> dict[str, np.ndarray]:
        feature_cache.load_or_extract(cache, _metadata(), lambda: theirs)  # the other process finishes first
        return _arrays()

    kept = feature_cache.load_or_extract(cache, _metadata(), compute_while_another_writes)
    np.testing.assert_array_equal(kept["train.cls"], theirs["train.cls"])
    with pytest.raises(feature_cache.FeatureCacheMismatch, match="max_length"):
        feature_cache.load_or_extract(cache, _metadata(max_length=64), lambda: _arrays())


def test_refresh_replaces_the_cache_atomically(tmp_path: Path) -> None:
    cache = tmp_path / "c"
    feature_cache.load_or_extract(cache, _metadata(), _arrays)
    newer = {name: array * 2 for name, array in _arrays().items()}
    feature_cache.load_or_extract(cache, _metadata(), lambda: newer, refresh=True)
    np.testing.assert_array_equal(np.load(cache / "train.mean.npy"), newer["train.mean"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # old copy and staging folder removed


def test_cache_path_depends_on_settings_not_on_revision(tmp_path: Path) -> None:
    base = feature_cache.feature_cache_path(tmp_path, _metadata())
    assert base.parent == tmp_path and base.name.startswith("tiny-bert__toy__")
    other_revision = _metadata(model_fingerprint={"model": "tiny-bert", "revision": "def"})
    assert feature_cache.feature_cache_path(tmp_path, other_revision) == base  # found, then refused
    assert feature_cache.feature_cache_path(tmp_path, _metadata(max_length=64)) != base


def test_stack_probes_and_layer_range() -> None:
    features = {"cls": np.zeros((3, 5, 4), np.float32), "mean": np.ones((3, 5, 4), np.float32)}
    stacked, index = extract.stack_probes(features)
    assert stacked.shape == (6, 5, 4)
    assert index == [("cls", 0), ("cls", 1), ("cls", 2), ("mean", 0), ("mean", 1), ("mean", 2)]
    assert stacked[3:].min() == 1.0
    subset, index = extract.stack_probes(features, poolings=["mean"], layers=[2])
    assert subset.shape == (1, 5, 4) and index == [("mean", 2)]
    with pytest.raises(ValueError, match=r"layers \[3\] out of range: the features hold layers 0..2"):
        extract.stack_probes(features, layers=[0, 3])


def test_extract_probing_features_caches_per_split(tiny_dirs: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    lines = [f"{part}\t{label}\t{sentence}" for part in ("tr", "va", "te")
             for label, sentence in zip("OIOIOI", SENTENCES)]
    probing_file = tmp_path / "toy.txt"
    probing_file.write_text("\n".join(lines) + "\n")
    probing = data.read_senteval(probing_file, max_eval=4)
    spec = str(tiny_dirs["tiny-bert"])

    calls = []
    original = extract.extract_features
    monkeypatch.setattr(extract, "extract_features", lambda *a, **k: calls.append(1) or original(*a, **k))
    first = extract.extract_probing_features(spec, probing, cache_dir=tmp_path / "cache", device="cpu", progress=False)
    assert len(calls) == 3  # train, dev, test
    second = extract.extract_probing_features(spec, probing, cache_dir=tmp_path / "cache", device="cpu", progress=False)
    assert len(calls) == 3
    assert first["train"]["cls"].shape == (4, 6, 32) and first["dev"]["mean"].shape == (4, 4, 32)
    for split in extract.SPLITS:
        for pooling in POOLINGS:
            np.testing.assert_array_equal(first[split][pooling], second[split][pooling])
    model, tokenizer = models.load_encoder(spec), models.load_tokenizer(spec)
    direct = original(model, tokenizer, probing.test.sentences, progress=False)
    np.testing.assert_allclose(first["test"]["mean"], direct["mean"], atol=1e-6)
    # Another cap -> other data hash -> another cache directory, not a clash.
    capped = data.read_senteval(probing_file, max_eval=2)
    extract.extract_probing_features(spec, capped, cache_dir=tmp_path / "cache", device="cpu", progress=False)
    assert len(list((tmp_path / "cache").iterdir())) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_half_precision_on_cuda_is_close_to_float32(bert) -> None:
    model, tokenizer = bert
    full = _features(model, tokenizer, SENTENCES, device="cpu")
    half = _features(model, tokenizer, SENTENCES, device="cuda", dtype=torch.float16)
    model.to("cpu")
    for pooling in POOLINGS:
        assert half[pooling].dtype == np.float32
        np.testing.assert_allclose(half[pooling], full[pooling], atol=5e-2, rtol=5e-2)
