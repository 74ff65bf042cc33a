"""Tests for probeft.diagnostics.attention: entropy / EMD definitions, scipy agreement, padding invariance."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance
from transformers import BertTokenizerFast, PreTrainedModel

from probeft import models
from probeft.diagnostics import attention
from probeft.diagnostics.attention import attention_emd, attention_entropy, attention_statistics
from probeft.finetune.checkpoints import checkpoint_fields
from probeft.results import attention_sentences

SENTENCES = [
    "the cat sat on the mat .",
    "a dog ran .",
    "colourless green ideas sleep furiously in the old house by the river .",
    "we can 't put him at the scene .",
    "yes",
]


@pytest.fixture(scope="module")
def encoders(bert_dir) -> tuple[PreTrainedModel, PreTrainedModel]:
    """The tiny pre-trained encoder and a perturbed copy standing in for a fine-tuned one (eager attention)."""
    pretrained = models.load_encoder(bert_dir, attn_implementation="eager")
    finetuned = models.load_encoder(bert_dir, attn_implementation="eager")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in finetuned.encoder.layer:
            for param in layer.attention.parameters():
                param.add_(0.5 * torch.randn(param.shape, generator=generator))
    return pretrained, finetuned


def test_entropy_uniform_and_one_hot_with_padding():
    n, pad = 5, 3
    attn = torch.zeros(2, 1, 1, n + pad)
    attn[0, 0, 0, :n] = 1.0 / n  # uniform over the real keys
    attn[0, 0, 0, n:] = 0.3  # garbage mass on padded keys must be ignored
    attn[1, 0, 0, 2] = 1.0  # one-hot
    key_mask = torch.tensor([[1] * n + [0] * pad, [1] * n + [0] * pad])
    entropy = attention_entropy(attn, key_mask)
    assert entropy.shape == (2, 1, 1)
    assert entropy[0, 0, 0].item() == pytest.approx(math.log(n), abs=1e-6)
    assert entropy[1, 0, 0].item() == 0.0  # 0 * log 0 counts as 0, no NaN


def test_emd_hand_computed_and_identical():
    attn_a = torch.zeros(1, 1, 1, 6)
    attn_b = torch.zeros(1, 1, 1, 6)
    attn_a[..., 0] = 1.0
    attn_b[..., 2] = 1.0
    key_mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    assert attention_emd(attn_a, attn_b, key_mask).item() == pytest.approx(2.0, abs=1e-6)
    assert attention_emd(attn_b, attn_a, key_mask).item() == pytest.approx(2.0, abs=1e-6)
    half = torch.tensor([0.5, 0.0, 0.0, 0.5, 0.0, 0.0]).view(1, 1, 1, 6)  # 0.5 moved by 3 -> 1.5
    assert attention_emd(attn_a, half, key_mask).item() == pytest.approx(1.5, abs=1e-6)
    assert attention_emd(attn_a, attn_a, key_mask).item() == 0.0


def test_emd_matches_scipy_on_random_rows():
    generator = torch.Generator().manual_seed(0)
    batch, heads, tq, tk = 4, 3, 5, 9
    lengths = [9, 6, 3, 1]
    key_mask = torch.zeros(batch, tk, dtype=torch.long)
    for i, n in enumerate(lengths):
        key_mask[i, :n] = 1
    logits_a = torch.randn(batch, heads, tq, tk, generator=generator) * 2
    logits_b = torch.randn(batch, heads, tq, tk, generator=generator) * 2
    bias = torch.where(key_mask.bool(), 0.0, float("-inf"))[:, None, None, :]
    attn_a, attn_b = (logits_a + bias).softmax(-1), (logits_b + bias).softmax(-1)
    ours = attention_emd(attn_a, attn_b, key_mask)
    for i, n in enumerate(lengths):
        for h in range(heads):
            for q in range(tq):
                expected = wasserstein_distance(
                    np.arange(n), np.arange(n), attn_a[i, h, q, :n].numpy(), attn_b[i, h, q, :n].numpy()
                )
                assert ours[i, h, q].item() == pytest.approx(expected, abs=1e-6)
    assert ours[3].abs().max().item() == 0.0  # one real token: both distributions are the same point


def test_emd_ignores_left_padding():
    """Positions count over real tokens, so padding in front shifts nothing."""
    right = torch.tensor([[0.7, 0.2, 0.1, 0.0]]).view(1, 1, 1, 4)
    right_b = torch.tensor([[0.1, 0.2, 0.7, 0.0]]).view(1, 1, 1, 4)
    left, left_b = right.roll(1, -1), right_b.roll(1, -1)
    emd_right = attention_emd(right, right_b, torch.tensor([[1, 1, 1, 0]]))
    emd_left = attention_emd(left, left_b, torch.tensor([[0, 1, 1, 1]]))
    assert emd_right.item() == pytest.approx(1.2, abs=1e-6)  # 0.6 of mass moved by 2 positions
    assert emd_left.item() == pytest.approx(emd_right.item(), abs=1e-7)


def _values(table, **where):
    rows = table
    for column, value in where.items():
        rows = rows[rows[column] == value]
    return rows.sort_values(["label", "metric", "layer", "position"])["value"].to_numpy()


def test_statistics_rows_and_batch_padding_invariance(tokenizer, encoders):
    pretrained, finetuned = encoders
    kwargs = dict(positions="all", max_length=64, model_name="tiny", finetune_task="cola", probe_task="bigram_shift")
    alone = attention_statistics(pretrained, {"cls": finetuned}, tokenizer, SENTENCES[2:3], batch_size=1, **kwargs)
    padded_batch = ["a dog ran .", SENTENCES[2], "yes", "we sat on the mat ."]
    batched = attention_statistics(pretrained, {"cls": finetuned}, tokenizer, padded_batch, batch_size=4, **kwargs)
    one_by_one = attention_statistics(pretrained, {"cls": finetuned}, tokenizer, padded_batch, batch_size=1, **kwargs)
    np.testing.assert_allclose(_values(batched), _values(one_by_one), rtol=1e-5, atol=1e-6)

    # Position rows exist for every position of the longest sentence; positions past the short ones
    # are averaged over fewer inputs, so the long sentence alone must match there exactly.
    n_tokens = len(tokenizer(SENTENCES[2])["input_ids"])
    last = str(n_tokens - 1)
    for metric in ("entropy", "emd"):
        a = _values(alone, metric=metric, label="cls", position=last)
        b = _values(batched, metric=metric, label="cls", position=last)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    # Layout: layers 1..L, stage / columns per the results contract.
    assert set(batched["layer"]) == {1, 2, 3, 4}
    assert set(batched["stage"]) == {"attention"}
    assert set(batched["metric"]) == {"entropy", "emd"}
    pre_rows = batched[batched["label"] == "pretrained"]
    assert set(pre_rows["metric"]) == {"entropy"} and set(pre_rows["finetune_task"]) == {"none"}
    first = batched[(batched["position"] == "first")]
    assert (first["n"] == len(padded_batch)).all()
    all_rows = batched[batched["position"] == "all"]
    n_real = sum(len(ids) for ids in tokenizer(padded_batch)["input_ids"])
    assert (all_rows["n"] == n_real).all()
    emd = batched[batched["metric"] == "emd"]["value"]
    assert (emd > 0).all()  # the perturbed attention really moved
    entropy_first = _values(batched, metric="entropy", position="first", label="pretrained")
    assert (entropy_first > 0).all() and (entropy_first <= math.log(n_tokens) + 1e-6).all()


def test_roberta_left_padding_tokenizer_gives_same_statistics(tiny_models):
    """RoBERTa (position ids offset by padding) and a tokenizer set to pad left: batching changes nothing."""
    spec = str(tiny_models["tiny-roberta"])
    pretrained = models.load_encoder(spec, attn_implementation="eager")
    tokenizer = models.load_tokenizer(spec)
    tokenizer.padding_side = "left"  # attention_statistics pads right regardless
    batched = attention_statistics(pretrained, {"same": pretrained}, tokenizer, SENTENCES, batch_size=5, positions="all")
    single = attention_statistics(pretrained, {"same": pretrained}, tokenizer, SENTENCES, batch_size=1, positions="all")
    np.testing.assert_allclose(_values(batched), _values(single), rtol=1e-5, atol=1e-6)


def test_first_token_entropy_matches_direct_computation(tokenizer, encoders):
    pretrained, _ = encoders
    table = attention_statistics(pretrained, {}, tokenizer, SENTENCES, batch_size=2, max_length=64)
    expected = []
    with torch.no_grad():
        for sentence in SENTENCES:
            enc = tokenizer(sentence, return_tensors="pt")
            attns = pretrained(**enc, output_attentions=True).attentions
            p = torch.stack([a[0, :, 0, :] for a in attns])  # (L, H, T): first query
            expected.append((-(p * p.log()).sum(-1)).mean(-1))  # (L,)
    expected = torch.stack(expected).mean(0).numpy()
    got = table.sort_values("layer")["value"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert set(table["metric"]) == {"entropy"} and len(table) == 4


def test_per_sentence_first_token_values_are_in_sentence_order_and_average_to_the_rows(tmp_path, tokenizer, encoders):
    """The per-sentence arrays (what F8's interval resamples) come back in input order, batching aside."""
    pretrained, finetuned = encoders
    kept: dict[str, torch.Tensor] = {}
    table = attention_statistics(pretrained, {"cls": finetuned}, tokenizer, SENTENCES, batch_size=2,
                                 max_length=64, per_sentence=kept)
    assert sorted(kept) == ["emd/cls", "entropy/cls", "entropy/pretrained"]
    assert all(v.shape == (len(SENTENCES), 4) for v in kept.values())
    for key, metric, label in [("entropy/pretrained", "entropy", "pretrained"), ("emd/cls", "emd", "cls")]:
        rows = table[(table["metric"] == metric) & (table["label"] == label) & (table["position"] == "first")]
        np.testing.assert_allclose(kept[key].mean(0).numpy(), rows.sort_values("layer")["value"].to_numpy(), rtol=1e-6)
    with torch.no_grad():  # sentence 3 alone, computed directly: its row, whatever batch it sat in
        enc = tokenizer(SENTENCES[3], return_tensors="pt")
        attns = pretrained(**enc, output_attentions=True).attentions
        p = torch.stack([a[0, :, 0, :] for a in attns])
        direct = (-(p * p.log()).sum(-1)).mean(-1)
    np.testing.assert_allclose(kept["entropy/pretrained"][3].numpy(), direct.numpy(), rtol=1e-5)
    attention_sentences.save_attention_sentences(tmp_path, kept, {"cls": {"finetune_head": "cls", "seed": 2}}, model="m")
    stored = attention_sentences.load_attention_sentences(tmp_path)
    assert stored.model == "m" and stored.info == {"cls": {"finetune_head": "cls", "seed": 2}}
    assert sorted(stored.arrays) == sorted(kept)
    np.testing.assert_array_equal(stored.arrays["emd/cls"], kept["emd/cls"].numpy())
    assert [c.model for c in attention_sentences.load_attention_cells([tmp_path, tmp_path / "none"])] == ["m"]
    assert attention_sentences.load_attention_sentences(tmp_path / "elsewhere") is None
    (tmp_path / attention_sentences.ATTENTION_SENTENCES_FILE).write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="attention_per_sentence.npz: not a per-sentence attention file"):
        attention_sentences.load_attention_sentences(tmp_path)
    alone: dict[str, torch.Tensor] = {}
    attention_statistics(pretrained, {"cls": finetuned}, tokenizer, SENTENCES, batch_size=5, max_length=64,
                         per_sentence=alone)
    for key in kept:
        np.testing.assert_allclose(alone[key].numpy(), kept[key].numpy(), rtol=1e-5, atol=1e-6)


def test_identical_models_have_zero_emd(tokenizer, encoders):
    pretrained, _ = encoders
    table = attention_statistics(pretrained, {"same": pretrained}, tokenizer, SENTENCES, batch_size=3)
    assert (table[table["metric"] == "emd"]["value"] == 0.0).all()


def test_non_eager_model_is_refused(tokenizer, bert_dir):
    sdpa = models.load_encoder(bert_dir, attn_implementation="sdpa")
    with pytest.raises(ValueError, match="eager"):
        attention_statistics(sdpa, {}, tokenizer, SENTENCES, batch_size=2)


def test_different_tokenisation_is_refused(tokenizer, encoders):
    pretrained, finetuned = encoders
    other = BertTokenizerFast(vocab={t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"])})
    with pytest.raises(ValueError, match="encodes sentence 0 differently"):
        attention_statistics(pretrained, {"cls": finetuned}, tokenizer, SENTENCES, finetuned_tokenizers={"cls": other})


def test_bad_arguments(tokenizer, encoders):
    pretrained, _ = encoders
    with pytest.raises(ValueError, match="positions"):
        attention_statistics(pretrained, {}, tokenizer, SENTENCES, positions="last")
    with pytest.raises(ValueError, match="no sentences"):
        attention_statistics(pretrained, {}, tokenizer, [])
    with pytest.raises(ValueError, match="key_mask"):
        attention_entropy(torch.ones(1, 1, 2, 3), torch.ones(1, 2))


def test_checkpoint_fields_read_by_attention(tmp_path):
    folder = tmp_path / "epoch-3"
    folder.mkdir()
    assert checkpoint_fields(folder) == {"epoch": 3}
    (folder / "checkpoint.json").write_text('{"task": "cola", "head": "mean", "seed": 7, "epoch": 3, "metrics": {}}')
    assert checkpoint_fields(folder) == {"epoch": 3, "finetune_task": "cola", "finetune_head": "mean", "seed": 7}
    (folder / "checkpoint.json").write_text("{not json")
    with pytest.raises(ValueError, match="checkpoint.json"):
        checkpoint_fields(folder)
    assert not hasattr(attention, "checkpoint_info")  # one implementation: probeft.finetune.checkpoints


def _save_checkpoint(encoder, tokenizer, folder: Path, **marker) -> Path:
    encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "checkpoint.json").write_text(json.dumps(marker))
    return folder


def test_load_models_resolves_run_folders_and_reads_markers(tmp_path, bert_dir, tokenizer, encoders):
    pretrained, perturbed = encoders
    run = tmp_path / "run"
    _save_checkpoint(pretrained, tokenizer, run / "epoch-1", task="cola", head="cls", seed=3, epoch=1)
    _save_checkpoint(perturbed, tokenizer, run / "epoch-2", task="cola", head="cls", seed=3, epoch=2)
    (run / "epoch-3").mkdir()  # incomplete (no marker): never used
    direct = _save_checkpoint(perturbed, tokenizer, tmp_path / "epoch-5", task="sst2", head="mean", seed=1, epoch=5)

    loaded = attention.load_models(bert_dir, {"cls": run, "mean": str(direct)}, device="cpu")
    assert loaded.checkpoints == {"cls": run / "epoch-2", "mean": direct}  # a run folder gives its final epoch
    assert loaded.finetuned_info == {
        "cls": {"epoch": 2, "finetune_task": "cola", "finetune_head": "cls", "seed": 3},
        "mean": {"epoch": 5, "finetune_task": "sst2", "finetune_head": "mean", "seed": 1},
    }
    for model in [loaded.pretrained, *loaded.finetuned_models.values()]:
        assert model.config._attn_implementation == "eager" and not model.training
    weight = "encoder.layer.0.attention.self.query.weight"
    assert torch.equal(loaded.finetuned_models["cls"].state_dict()[weight], perturbed.state_dict()[weight])
    assert torch.equal(loaded.pretrained.state_dict()[weight], pretrained.state_dict()[weight])
    assert loaded.tokenizer("a dog ran .")["input_ids"] == loaded.finetuned_tokenizers["mean"]("a dog ran .")["input_ids"]

    table = attention_statistics(
        loaded.pretrained, loaded.finetuned_models, loaded.tokenizer, SENTENCES, finetuned_info=loaded.finetuned_info,
        finetuned_tokenizers=loaded.finetuned_tokenizers,
    )
    emd = table[table["metric"] == "emd"].groupby("label")["seed"].first().to_dict()
    assert emd == {"cls": 3, "mean": 1}

    with pytest.raises(FileNotFoundError, match="neither a model folder"):
        attention.load_models(bert_dir, {"x": tmp_path / "nothing-here"})
    assert attention.load_models(bert_dir, {}).finetuned_models == {}
