"""Tests for probeft.diagnostics.mlm_head (a masked-LM head fitted on a frozen encoder) and bottom-k layer replacement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from probeft import data, models
from probeft.diagnostics import mlm_head, perplexity
from probeft.diagnostics.mlm_head import HeadFitSettings, fit_mlm_head, save_fitted_head
from probeft.models import layer_swap

BLOCK_SIZE = 32
# Enough steps for the tiny head to learn the generated text's word frequencies, in about a second.
SETTINGS = HeadFitSettings(block_size=BLOCK_SIZE, max_blocks=120, epochs=4, learning_rate=1e-2, batch_size=64)


@pytest.fixture(scope="module")
def fitting_text(demo_data_dir: Path) -> tuple[str, str]:
    return data.read_wikitext_valid(demo_data_dir)


@pytest.fixture(scope="module")
def fitted(bert_dir: str, fitting_text: tuple[str, str]) -> mlm_head.FittedHead:
    text, source = fitting_text
    return fit_mlm_head(bert_dir, text, text_source=source, settings=SETTINGS)


@pytest.fixture(scope="module")
def head_dir(fitted: mlm_head.FittedHead, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_fitted_head(fitted, tmp_path_factory.mktemp("fitted") / "head")


@pytest.fixture(scope="module")
def test_blocks(bert_dir: str, demo_data_dir: Path) -> perplexity.MaskedBlocks:
    """Evaluation blocks of the demo's *test* text (the head never saw it)."""
    tokenizer = models.load_tokenizer(bert_dir)
    text, _ = data.read_wikitext_test(demo_data_dir)
    return perplexity.make_masked_blocks(perplexity.tokenize_stream(text, tokenizer), tokenizer,
                                         block_size=BLOCK_SIZE, mask_seed=0, max_blocks=12)


def test_fitted_head_lowers_the_loss_of_an_untrained_head(bert_dir, fitted, test_blocks):
    record = fitted.record
    assert record["heldout_perplexity"] < 0.8 * record["heldout_perplexity_untrained"]
    assert record["best_epoch"] >= 1 and record["mlm_head"] == "fitted" and record["label"] == mlm_head.ANALOGUE_NOTE
    untrained = models.new_mlm_model(bert_dir, seed=SETTINGS.seed)
    fitted_value = perplexity.masked_lm_perplexity(fitted.model, test_blocks, batch_size=6)
    untrained_value = perplexity.masked_lm_perplexity(untrained, test_blocks, batch_size=6)
    assert fitted_value < 0.8 * untrained_value  # on text it was not fitted on, too


def test_only_the_heads_own_parameters_change(bert_dir, fitted):
    pretrained = models.load_encoder(bert_dir).state_dict()
    encoder = fitted.model.base_model.state_dict()
    for name, value in encoder.items():
        assert torch.equal(value, pretrained[name]), name
    assert fitted.model.cls.predictions.decoder.weight is fitted.model.bert.embeddings.word_embeddings.weight
    assert set(fitted.record["trained_parameters"]) == {
        "cls.predictions.bias", "cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
        "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias"}
    untrained = models.new_mlm_model(bert_dir, seed=SETTINGS.seed)
    changed = [name for name, p in mlm_head.head_parameters(fitted.model).items()
               if not torch.equal(p, dict(untrained.named_parameters())[name])]
    assert "cls.predictions.transform.dense.weight" in changed and "cls.predictions.bias" in changed


def test_the_fit_is_deterministic_under_a_seed(bert_dir, fitting_text, fitted):
    text, source = fitting_text
    again = fit_mlm_head(bert_dir, text, text_source=source, settings=SETTINGS)
    for name, parameter in mlm_head.head_parameters(fitted.model).items():
        assert torch.equal(parameter, mlm_head.head_parameters(again.model)[name]), name
    assert again.record["history"] == fitted.record["history"]
    other = fit_mlm_head(bert_dir, text, text_source=source, settings=HeadFitSettings(**{**vars(SETTINGS), "seed": 1}))
    assert not torch.equal(other.model.cls.predictions.transform.dense.weight,
                           fitted.model.cls.predictions.transform.dense.weight)


def test_saved_head_loads_as_mlm_head_from(bert_dir, fitted, head_dir, test_blocks, tmp_path):
    record = json.loads((head_dir / mlm_head.RECORD_FILE).read_text())
    assert record["fitting_text"].endswith("wiki.valid.tokens") and len(record["fitting_text_sha256"]) == 64
    assert record["blocks_fit"] + record["blocks_heldout"] == min(SETTINGS.max_blocks, record["blocks_total"])
    assert record["blocks_heldout"] == round(SETTINGS.heldout_fraction * (record["blocks_fit"] + record["blocks_heldout"]))
    assert set(record["files_sha256"]) >= {"config.json", "model.safetensors", "tokenizer.json"}
    loaded = models.load_mlm_model(bert_dir, mlm_head_from=str(head_dir))
    expected = perplexity.masked_lm_perplexity(fitted.model, test_blocks, batch_size=6)
    assert perplexity.masked_lm_perplexity(loaded, test_blocks, batch_size=6) == pytest.approx(expected, rel=1e-6)
    assert mlm_head.head_label(str(head_dir)) == "fitted"
    assert mlm_head.head_label(None) == mlm_head.head_label(bert_dir) == "pretrained"
    # Nothing half-written is left beside the head, and a changed file is refused by name.
    assert sorted(p.name for p in head_dir.parent.iterdir()) == ["head"]
    tampered = tmp_path / "head"
    tampered.mkdir()
    for path in head_dir.iterdir():
        (tampered / path.name).write_bytes(path.read_bytes())
    (tampered / "config.json").write_text((tampered / "config.json").read_text() + " ")
    with pytest.raises(ValueError, match="config.json changed"):
        mlm_head.head_label(str(tampered))


def test_perplexity_table_labels_the_fitted_head(bert_dir, head_dir, test_blocks):
    table = perplexity.perplexity_table(bert_dir, {}, test_blocks, model_name="m", batch_size=6, replacement=False,
                                        mlm_head_from=str(head_dir), mlm_head="fitted")
    assert table["mlm_head"].tolist() == ["fitted"]
    fitted_model = models.load_mlm_model(bert_dir, mlm_head_from=str(head_dir))
    assert table["value"].item() == perplexity.masked_lm_perplexity(fitted_model, test_blocks, batch_size=6)
    own = perplexity.perplexity_table(bert_dir, {}, test_blocks, model_name="m", batch_size=6, replacement=False)
    assert own["mlm_head"].tolist() == ["pretrained"] and own["value"].item() != table["value"].item()


def test_record_rows(fitted):
    rows = mlm_head.record_rows(fitted.record, model_name="m").set_index(["split", "epoch", "metric"])["value"]
    best = fitted.record["best_epoch"]
    assert rows.to_dict() == {("fit", best, "perplexity"): fitted.record["fit_perplexity"],
                              ("heldout", best, "perplexity"): fitted.record["heldout_perplexity"],
                              ("heldout", 0, "perplexity"): fitted.record["heldout_perplexity_untrained"],
                              ("heldout", 0, "perplexity_token_frequencies"): fitted.record["heldout_perplexity_unigram"]}


def test_unigram_perplexity_by_hand():
    # Frequencies (2+1, 0+1, 1+1) / 6 over a vocabulary of 3; held out: tokens 0 and 2.
    value = mlm_head.unigram_perplexity(torch.tensor([0, 0, 2]), torch.tensor([0, 2]), 3)
    assert value == pytest.approx(1 / ((3 / 6) * (2 / 6)) ** 0.5)


@pytest.mark.parametrize(("text", "match"), [
    ("  \n \n", "valid.txt: the fitting text is empty"),
    ("the " * 40, r"valid.txt: 40 tokens give 1 block\(s\) of 32 tokens; a head fit needs at least 2"),
    ("the word", "valid.txt: 5 tokens give no block of 32 tokens"),
])
def test_bad_fitting_text_names_the_file_and_the_counts(bert_dir, text, match):
    with pytest.raises(ValueError, match=match):
        fit_mlm_head(bert_dir, text, text_source="valid.txt", settings=SETTINGS)


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"heldout_fraction": 1.0}, {"max_blocks": 1}, {"learning_rate": 0.0}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError, match=f"bad head-fit settings {next(iter(bad))}="):
        HeadFitSettings(**bad)


def test_a_failed_save_leaves_nothing(fitted, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(fitted.tokenizer, "save_pretrained", broken)
    with pytest.raises(OSError, match="disk full"):
        save_fitted_head(fitted, tmp_path / "head")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------------------
# Bottom-k layer replacement (the F7 contrast)
# ------------------------------------------------------------------------------------------------------------


def _perturbed(model_dir: str, parent: Path) -> Path:
    """``model_dir``'s encoder with every transformer layer perturbed, saved as ``parent/epoch-1``."""
    encoder = models.load_encoder(model_dir)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in encoder.encoder.layer.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=generator))
    out = parent / "epoch-1"
    encoder.save_pretrained(out)
    models.load_tokenizer(model_dir).save_pretrained(out)
    return out


def test_bottom_replacement_ends_at_the_pretrained_and_starts_at_the_finetuned(bert_dir, test_blocks, tmp_path):
    finetuned = _perturbed(bert_dir, tmp_path)
    bottom = perplexity.replacement_curve(finetuned, bert_dir, test_blocks, side="bottom", batch_size=6)
    top = perplexity.replacement_curve(finetuned, bert_dir, test_blocks, side="top", batch_size=6)
    num_layers = models.num_hidden_layers(models.load_encoder(bert_dir))
    finetuned_value = perplexity.masked_lm_perplexity(
        models.load_mlm_model(str(finetuned), mlm_head_from=bert_dir), test_blocks, batch_size=6)
    pretrained_value = perplexity.masked_lm_perplexity(models.load_mlm_model(bert_dir), test_blocks, batch_size=6)
    assert bottom[0] == top[0] == finetuned_value
    assert bottom[num_layers] == top[num_layers] == pretrained_value
    assert all(bottom[k] != top[k] for k in range(1, num_layers))  # the two ends restore different layers

    table = perplexity.perplexity_table(bert_dir, {0: {1: finetuned}}, test_blocks, model_name="m", batch_size=6,
                                        finetune_task="cola", sides=("top", "bottom"))
    curves = table[table["k_replaced"] >= 0].set_index(["replaced_layers", "k_replaced"])["value"]
    assert curves["bottom"].to_dict() == bottom and curves["top"].to_dict() == top
    assert set(table.loc[table["k_replaced"] == -1, "replaced_layers"]) == {"none"}


@pytest.mark.parametrize("name", ["tiny-roberta", "tiny-albert"])
def test_bottom_replacement_of_a_model_by_itself_changes_nothing(tiny_models, name):
    spec = str(tiny_models[name])
    mlm = models.load_mlm_model(spec)
    inputs = torch.randint(5, 50, (2, 12))
    with torch.no_grad():
        before = mlm(input_ids=inputs).logits
        layer_swap.replace_bottom_layers(mlm, models.load_mlm_model(spec), 2)
        assert torch.equal(mlm(input_ids=inputs).logits, before)


def test_bottom_replacement_restores_exactly_the_first_k_layers(bert_dir, tmp_path):
    pretrained = models.load_mlm_model(bert_dir)
    finetuned = models.load_mlm_model(str(_perturbed(bert_dir, tmp_path)), mlm_head_from=bert_dir)
    before = [layer.state_dict() for layer in layer_swap.layer_applications(finetuned)]
    before = [{k: v.clone() for k, v in state.items()} for state in before]
    layer_swap.replace_bottom_layers(finetuned, pretrained, 2)
    source = layer_swap.layer_applications(pretrained)
    for index, layer in enumerate(layer_swap.layer_applications(finetuned)):
        reference = source[index].state_dict() if index < 2 else before[index]
        assert all(torch.equal(v, reference[k]) for k, v in layer.state_dict().items()), index
    with pytest.raises(ValueError, match="side must be one of"):
        layer_swap.replace_layers(finetuned, pretrained, 1, side="middle")
