"""The whole pipeline on a tiny grid: every notebook through papermill, then the book (slow)."""

from __future__ import annotations

import shutil

import pytest
import yaml

from probeft import cli, grid, results

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    config = {
        "name": "e2e",
        "data_dir": str(root / "data"),
        "demo_data": True,
        "output_dir": str(root / "run"),
        "device": "cpu",
        "models": ["tiny-bert-L2"],
        "finetune": {"tasks": ["cola"], "epochs": 1, "max_train": 64, "max_eval": 32, "learning_rate": 1e-3},
        "probing": {"tasks": ["bigram_shift"], "finetune_tasks": ["none", "cola"], "max_train": 120, "max_eval": 40},
        "attention": {"finetune_task": "cola", "heads": ["cls", "mean"], "max_sentences": 20},
        "perplexity": {"finetune_tasks": ["cola"], "seeds": [0], "block_size": 32, "max_blocks": 4},
    }
    path = root / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    code = cli.main(["grid", str(path)])
    return root, path, code


def test_grid_runs_every_stage(grid_run):
    root, _, code = grid_run
    assert code == 0
    table = results.load_results(root / "run" / "results.csv")
    assert set(table["stage"]) == {"finetune", "probing", "attention", "perplexity"}
    probing = table[(table["stage"] == "probing") & (table["split"] == "test")]
    assert set(probing["finetune_task"]) == {"none", "cola"} and set(probing["layer"]) == {0, 1, 2}
    assert len(list((root / "run" / "notebooks").glob("*.ipynb"))) == 6
    executed = (root / "run" / "notebooks" / "probing__model-tiny-bert-L2__ft-none__seed-0.ipynb").read_text()
    assert "injected-parameters" in executed


def test_second_run_skips_everything(grid_run, capsys):
    _, path, _ = grid_run
    capsys.readouterr()
    assert cli.main(["grid", str(path)]) == 0
    assert "ran 0, skipped 6, failed 0" in capsys.readouterr().out


def test_book_builds_from_the_run(grid_run, tmp_path):
    root, _, _ = grid_run
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(grid.REPO_ROOT / name, tmp_path / name)
    shutil.copytree(grid.REPO_ROOT / "book", tmp_path / "book", ignore=shutil.ignore_patterns("_generated"))
    assert cli.main(["book", str(root / "run"), "--book-root", str(tmp_path)]) == 0
    html = tmp_path / "_build" / "html"
    assert (html / "index.html").is_file()
    figure_page = (html / "book" / "figure1.html").read_text()
    assert "<img" in figure_page and "Test accuracy of the probes" in figure_page
    assert (html / "book" / "_generated" / "notebooks" / "probing__model-tiny-bert-L2__ft-none__seed-0.html").is_file()
    delta_page = (html / "book" / "delta.html").read_text()
    assert "bigram_shift" in delta_page
    assert "(-)" in (html / "book" / "table1.html").read_text()  # our number, then "-": tiny models are not in the paper
