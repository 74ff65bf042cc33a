"""``probeft check``: every source resolved or said unverifiable, the disk estimate, a chained smoke of every stage."""

from __future__ import annotations

import json
import shutil
import types
from pathlib import Path

import pytest
from test_grid import write_config

from probeft import data, grid
from probeft.core import hub
from probeft.grid import cli, preflight
from probeft.grid.cells import Cell

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def _by_item(rows: list[preflight.CheckRow]) -> dict[str, preflight.CheckRow]:
    return {row.item: row for row in rows}


def test_a_small_grid_passes_with_a_smoke_run_of_every_stage_chained(tmp_path, demo_data_dir, tiny_models):
    config = grid.load_config(write_config(tmp_path, {
        "name": "t", "output_dir": str(tmp_path / "out"), "data_dir": str(demo_data_dir), "device": "cpu",
        "models": ["tiny-bert"],
        "finetune": {"tasks": ["cola", "rte"], "seeds": [0, 1]},
        "probing": {"tasks": ["bigram_shift"], "finetune_tasks": ["none", "cola"], "mdl": False},
        "attention": {"models": ["tiny-bert"], "finetune_task": "cola", "heads": ["cls"]},
        "perplexity": {"models": ["tiny-bert"], "finetune_tasks": ["cola"], "seeds": [0, 1]},
    }))
    rows = preflight.check_config(config, grid.resolve_paths(config), log=lambda _: None)
    assert [r for r in rows if r.status != preflight.OK] == []
    smoke = [r.item for r in rows if r.area == "smoke"]
    # one fine-tuning per (model, task, head) at the first seed; the fine-tuned probing cell probes its output
    assert smoke == ["finetune__model-tiny-bert__task-cola__head-cls__seed-0",
                     "finetune__model-tiny-bert__task-rte__head-cls__seed-0",
                     "probing__model-tiny-bert__ft-none__seed-0", "probing__model-tiny-bert__ft-cola-cls__seed-0",
                     "attention__model-tiny-bert__ft-cola__task-bigram_shift",
                     "perplexity__model-tiny-bert__ft-cola-cls"]
    found = _by_item(rows)
    cola = data.read_glue("cola", demo_data_dir)
    assert found["cola"].detail == f"{len(cola.train)} train / {len(cola.dev)} dev examples"
    shift = data.read_senteval(demo_data_dir / "senteval" / "bigram_shift.txt")
    assert found["probing bigram_shift"].detail.endswith(f"{len(shift.train)} / {len(shift.dev)} / {len(shift.test)} "
                                                         "tr / va / te")
    assert found["perplexity__model-tiny-bert__ft-cola-cls"].detail.startswith("pre-trained perplexity")
    assert not (tmp_path / "out").exists()  # the check writes nothing into the run's folder


def test_a_fitted_head_is_smoke_fitted_and_read_by_the_perplexity_smoke(tmp_path, demo_data_dir, tiny_models):
    config = grid.load_config(write_config(tmp_path, {
        "name": "t", "output_dir": str(tmp_path / "out"), "data_dir": str(demo_data_dir), "device": "cpu",
        "models": ["tiny-bert"], "finetune": {"tasks": ["cola"], "seeds": [0, 1]},
        "perplexity": {"finetune_tasks": ["cola"], "seeds": [0, 1], "block_size": 32, "mlm_head": "fitted"},
    }))
    rows = preflight.check_config(config, grid.resolve_paths(config), log=lambda _: None)
    assert [r for r in rows if r.status != preflight.OK] == []
    found = _by_item(rows)
    assert found["wikitext-valid"].detail.startswith(str(demo_data_dir / "wikitext-2" / "wiki.valid.tokens"))
    assert [r.item for r in rows if r.area == "smoke"] == [
        "finetune__model-tiny-bert__task-cola__head-cls__seed-0", "mlm_head__model-tiny-bert",
        "perplexity__model-tiny-bert__ft-cola-cls"]
    assert found["mlm_head__model-tiny-bert"].detail.startswith("head fitted on 3 blocks: held-out perplexity")
    assert found["perplexity__model-tiny-bert__ft-cola-cls"].detail.startswith("pre-trained perplexity")
    assert not (tmp_path / "out").exists()


def test_a_failing_stage_fails_the_check_and_its_dependants_are_not_run(tmp_path, demo_data_dir, monkeypatch):
    config = grid.load_config(write_config(tmp_path, {
        "name": "t", "output_dir": str(tmp_path / "out"), "data_dir": str(demo_data_dir), "device": "cpu",
        "models": ["tiny-bert"], "finetune": {"tasks": ["cola"]},
        "probing": {"tasks": ["bigram_shift"], "finetune_tasks": ["none", "cola"]},
    }))

    def broken(cell, data_dir):
        raise RuntimeError("CUDA error: an illegal memory access\nmore text")

    monkeypatch.setitem(preflight.SMOKES, "finetune", broken)
    monkeypatch.setitem(preflight.SMOKES, "probing", lambda cell, data_dir: "fine")
    rows = _by_item(preflight.check_config(config, grid.resolve_paths(config), log=lambda _: None))
    failed = rows["finetune__model-tiny-bert__task-cola__head-cls__seed-0"]
    assert failed.status == preflight.FAILED and failed.detail == "RuntimeError: CUDA error: an illegal memory access"
    assert rows["probing__model-tiny-bert__ft-none__seed-0"].status == preflight.OK
    dependant = rows["probing__model-tiny-bert__ft-cola-cls__seed-0"]
    assert dependant.status == preflight.UNVERIFIED and "which failed" in dependant.detail


def test_offline_the_paper_grid_says_what_it_could_not_verify(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(hub, "cached_snapshot", lambda repo_id, revision=None: None)
    config_path = write_config(tmp_path, {
        "name": "paper", "output_dir": str(tmp_path / "out"), "device": "cpu",
        "models": ["bert-base-cased", "tiny-bert"], "finetune": {"tasks": ["cola", "squad"]},
        "probing": {"tasks": ["bigram_shift"], "finetune_tasks": ["none", "cola"]},
    })
    code = cli.main(["check", str(config_path)])
    out = capsys.readouterr().out
    assert code == 0, out  # nothing failed: the offline machine just can't see the hub
    def line(item: str) -> str:
        return next(line for line in out.splitlines() if f"  {item}  " in line)

    assert line("bert-base-cased").startswith("unverified") and "not in the local cache" in line("bert-base-cased")
    assert line("tiny-bert").startswith("ok")
    assert "can't be reached: not checked" in line("cola (nyu-mll/glue)") and line("squad (rajpurkar/squad)")
    assert "downloads are off" in line("probing bigram_shift")
    assert "checkpoints of bert-base-cased not counted (size unknown offline)" in out
    assert "not run: model bert-base-cased is not available here" in out
    assert "not run: data cola not available here" in out  # tiny-bert's cells need the hub's GLUE
    assert out.splitlines()[-1].endswith(": 2 ok, 0 failed, 14 not verifiable here")  # tiny-bert and the CPU


def test_a_broken_data_folder_fails_naming_the_file(tmp_path, demo_data_dir, capsys):
    data_dir = tmp_path / "data"
    shutil.copytree(demo_data_dir, data_dir)
    (data_dir / "glue" / "RTE" / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    config_path = write_config(tmp_path, {"name": "t", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir),
                                          "device": "cpu", "models": ["tiny-bert"], "finetune": {"tasks": ["rte"]}})
    assert cli.main(["check", str(config_path), "--no-smoke"]) == 1
    out = capsys.readouterr().out
    assert "failed: data rte: ValueError: " in out and "dev.tsv:2: label 'maybe'" in out


def test_online_models_and_data_resolve_to_the_hubs_commits(tmp_path, monkeypatch):
    """The online branch against fakes of what huggingface_hub returns: ModelInfo.sha and siblings with sizes."""
    import huggingface_hub

    monkeypatch.setattr(hub, "hub_reachable", lambda **_: True)
    monkeypatch.setattr(hub, "hub_commit", lambda kind, repo_id: COMMIT if repo_id != "org/missing" else None)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"num_hidden_layers": 12, "hidden_size": 768}))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo_id, filename, revision=None: str(config_file))

    class FakeApi:
        def model_info(self, repo_id, revision=None, files_metadata=False):
            assert files_metadata and revision == COMMIT
            siblings = [types.SimpleNamespace(rfilename="model.safetensors", size=440_000_000),
                        types.SimpleNamespace(rfilename="pytorch_model.bin", size=440_000_000),
                        types.SimpleNamespace(rfilename="config.json", size=570)]
            return types.SimpleNamespace(sha=COMMIT, siblings=siblings)

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(preflight, "downloads_disabled", lambda: False)
    monkeypatch.setattr(preflight, "senteval_blob_sha1s", lambda: {"bigram_shift": "b" * 40})
    config = grid.load_config(write_config(tmp_path, {
        "name": "t", "output_dir": str(tmp_path / "out"), "device": "cpu", "models": ["org/enc", "org/missing"],
        "finetune": {"tasks": ["cola"]}, "probing": {"tasks": ["bigram_shift"], "finetune_tasks": ["none", "cola"]},
    }))
    rows = _by_item(preflight.check_config(config, grid.resolve_paths(config), smoke=False, log=lambda _: None))
    assert rows["org/enc"].status == preflight.OK and rows["org/enc"].detail == f"hub org/enc at commit {COMMIT[:12]}"
    assert rows["org/missing"].status == preflight.FAILED and "does not serve 'org/missing'" in rows["org/missing"].detail
    assert rows["cola (nyu-mll/glue/cola)"].detail == f"hub commit {COMMIT[:12]}"
    assert rows["probing bigram_shift"].detail == "would download SentEval bigram_shift.txt, git blob bbbbbbbbbbbb"
    assert rows[str(tmp_path / "out")].status == preflight.UNVERIFIED  # org/missing's size is unknown


def _cell(name: str, stage: str, **parameters) -> Cell:
    return Cell(name=name, stage=stage, notebook=Path(f"{stage}.ipynb"), parameters=parameters)


def test_the_checkpoint_estimate_counts_epochs_and_optimiser_state():
    shapes = {"m": preflight.ModelShape(layers=2, hidden=4, weight_bytes=100)}
    cells = [
        _cell("ft", "finetune", model="m", task="cola", epochs=None),  # the paper's 3 epochs for CoLA
        _cell("ft-sst2", "finetune", model="m", task="sst2", epochs=None),  # 1 epoch
        _cell("ft-rte", "finetune", model="m", task="rte", epochs=5),
        _cell("pr", "probing", model="m"),  # features: probeft.grid.disk
    ]
    assert preflight.estimate_checkpoint_bytes(cells, shapes) == ((3 + 2) * 100 + (1 + 2) * 100 + (5 + 2) * 100, [])
    assert preflight.estimate_checkpoint_bytes(cells, {"m": None}) == (0, ["m"])


@pytest.mark.parametrize(("count", "text"), [(512, "512 B"), (3_210_000, "3.2 MB"), (431e9, "431.0 GB"),
                                             (2.5e12, "2500.0 GB")])
def test_sizes_read_in_decimal_units(count, text):
    assert preflight._size(count) == text
