"""A quiet, informative console and notebooks that are easy to run by hand (issue 23)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probeft import report, results
from probeft.core import progress
from probeft.grid import cli, model_check, runner

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_list_parameters_accept_one_plain_string():
    assert results.as_list("bigram_shift") == ["bigram_shift"]  # not ['b', 'i', ...]
    assert results.as_list(["cls", "mean"]) == ["cls", "mean"]
    assert results.as_list(("mean",)) == ["mean"] and results.as_list(None) == []


def test_model_label_defaults_to_the_models_own_name(tmp_path):
    assert results.model_label("tiny-roberta") == "tiny-roberta"
    assert results.model_label("tiny-roberta", "mine") == "mine"
    assert results.model_label("org/name") == "org/name"
    run = tmp_path / "finetune__model-x__task-cola" / "epoch-3"
    run.mkdir(parents=True)
    assert results.model_label(str(run)) == "finetune__model-x__task-cola"


def test_hand_runs_go_under_the_runs_folder_not_the_temp_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(results.RUNS_ENV, str(tmp_path))
    first = results.scratch_dir(None, "probing")
    assert first.parent == tmp_path / "hand" and first.name.startswith("probing-") and first.is_dir()
    assert results.scratch_dir(str(tmp_path / "named"), "probing") == tmp_path / "named"
    monkeypatch.delenv(results.RUNS_ENV)
    assert results.hand_runs_dir() == REPO_ROOT / "runs" / "hand"  # an editable checkout's runs/


@pytest.mark.parametrize(("cell", "title"), [
    ("probing__model-tiny-bert__ft-cola-cls__seed-0", "Probing: tiny-bert fine-tuned on cola (cls), seed 0"),
    ("probing__model-tiny-bert__ft-none__seed-1", "Probing: tiny-bert pre-trained, seed 1"),
    ("finetune__model-tiny-albert__task-squad__head-span__seed-0", "Fine-tuning: tiny-albert on squad (span head), seed 0"),
    ("attention__model-tiny-roberta__ft-cola__task-bigram_shift",
     "Attention: tiny-roberta fine-tuned on cola (bigram_shift sentences)"),
    ("perplexity__model-tiny-bert__ft-sst2-cls", "Perplexity: tiny-bert fine-tuned on sst2 (cls)"),
    ("mlm_head__model-all-minilm-l6-v2", "Masked-LM head fitted: all-minilm-l6-v2"),
])
def test_executed_notebooks_get_one_title_per_cell(cell, title):
    assert report.notebook_title(cell) == title
    notebook = {"cells": [{"cell_type": "code", "metadata": {}, "source": "x = 1"},
                          {"cell_type": "markdown", "metadata": {}, "source": ["# Probing an encoder\n", "text"]}]}
    titled = report.retitle_notebook(notebook, title)
    assert titled["cells"][1]["source"] == f"# {title}\n\n*Probing an encoder*\ntext"


def test_heartbeat_reports_elapsed_time_and_the_marked_step(tmp_path):
    lines: list[str] = []
    with runner.heartbeat("[1/1] cell", tmp_path, lines.append, every=0.05):
        progress.mark(tmp_path, "probing features")
        deadline = time.monotonic() + 5
        while not any("step: probing features" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.01)
    assert any(line.startswith("[1/1] cell: running for ") and line.endswith("step: probing features")
               for line in lines)
    count = len(lines)
    time.sleep(0.15)
    assert len(lines) == count  # stopped with the cell


def test_a_stale_progress_file_is_not_shown_for_a_new_attempt(tmp_path):
    progress.mark(tmp_path, "old step")
    lines: list[str] = []
    with runner.heartbeat("[1/1] cell", tmp_path, lines.append, every=0.05):
        time.sleep(0.2)
    assert lines and not any("old step" in line for line in lines)


def test_model_specs_are_checked_offline(tmp_path):
    assert model_check.spec_problem("tiny-roberta") is None
    assert "not a built-in name" in model_check.spec_problem("tiny-bertt")
    assert model_check.spec_problem(str(tmp_path / "missing" / "x" / "y")).endswith("no such folder")
    (tmp_path / "model").mkdir()
    assert "config.json" in model_check.spec_problem(str(tmp_path / "model"))
    (tmp_path / "model" / "config.json").write_text("{}")
    assert model_check.spec_problem(str(tmp_path / "model")) is None


def test_dry_run_says_would_run_and_refuses_an_unknown_model(tmp_path, capsys):
    config = (REPO_ROOT / "configs" / "demo.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.replace("models: [tiny-bert, tiny-roberta, tiny-albert]", "models: [tiny-bert, tiny-bertt]")
                   .replace("output_dir: runs/demo", f"output_dir: {tmp_path / 'run'}")
                   .replace("models: [tiny-roberta]", "models: [tiny-bert]"))
    assert cli.main(["grid", str(bad), "--dry-run"]) == 1
    out, err = capsys.readouterr()
    assert "would run " in out and "ran " not in out.replace("would run", "")
    assert "'tiny-bertt' does not resolve offline" in err
    assert not (tmp_path / "run" / "cells").exists()  # a dry run writes no cell


def test_help_does_not_import_torch():
    code = "import sys; from probeft.grid import cli; cli.build_parser(); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert done.stdout.strip() == "False"


def test_kernel_log_is_quiet_but_errors_still_fail(tmp_path):
    """The kernel runs at log level CRITICAL: no transport warning, no false KeyboardInterrupt; a failing cell fails."""
    nbformat = pytest.importorskip("nbformat")
    from probeft.grid import cells

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                      nbformat.v4.new_code_cell("print(x)")]
    path = tmp_path / "ok.ipynb"
    nbformat.write(notebook, path)
    code = ("import papermill, sys; papermill.execute_notebook(sys.argv[1], sys.argv[2], kernel_name='python3', "
            f"progress_bar=False, extra_arguments=[{cells.KERNEL_QUIET!r}])")
    done = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "out.ipynb")],
                          capture_output=True, text=True, check=True, cwd=tmp_path)
    assert "without encryption" not in done.stderr and "KeyboardInterrupt" not in done.stderr
    assert json.loads((tmp_path / "out.ipynb").read_text())["cells"][1]["outputs"][0]["text"] == ["1\n"]
    notebook.cells[1] = nbformat.v4.new_code_cell("raise ValueError('boom')")
    nbformat.write(notebook, path)
    failed = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "out.ipynb")],
                            capture_output=True, text=True, cwd=tmp_path, check=False)
    assert failed.returncode != 0 and "boom" in failed.stderr
