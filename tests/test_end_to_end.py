"""The whole pipeline on a tiny grid: every notebook through papermill, then the book (slow)."""

from __future__ import annotations

import html
import re
import shutil

import pandas as pd
import pytest
import yaml

from probeft import grid, report, results
from probeft.core import paper
from probeft.grid import cell_state, cli
from probeft.report import html_checks
from probeft.results import attention_sentences, predictions
from probeft.verdicts import claims, delta_intervals

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
    assert set(probing["finetune_task"]) == {"none", "cola"} and set(probing["layer"]) == {-1, 0, 1, 2}
    # layer -1: the label sets' majority rates, one per task and split (not a probe)
    assert set(probing.loc[probing["layer"] == -1, "metric"]) == {"majority_rate", "control_majority_rate"}
    assert len(list((root / "run" / "notebooks").glob("*.ipynb"))) == 6
    executed = (root / "run" / "notebooks" / "probing__model-tiny-bert-L2__ft-none__seed-0.ipynb").read_text()
    assert "injected-parameters" in executed
    # Every probing cell keeps its probes' test correctness; the grid pairs them into Delta intervals.
    for cell in ("probing__model-tiny-bert-L2__ft-none__seed-0", "probing__model-tiny-bert-L2__ft-cola-cls__seed-0"):
        loaded = predictions.load_predictions(root / "run" / "cells" / cell)
        assert loaded.tasks["bigram_shift"].correct.shape == (6, 40)
    intervals = delta_intervals.load_delta_intervals(root / "run" / "delta_intervals.csv")
    assert intervals is not None and set(intervals["finetune_task"]) == {"cola"}
    # accuracy, control-accuracy and selectivity (paired) test rows carry intervals
    with_ci = probing[probing["metric"].isin(["accuracy", "control_accuracy", "selectivity"])]
    assert with_ci[["ci_low", "ci_high"]].notna().all(axis=None)
    assert {"selectivity", "control_accuracy", "compression", "uniform_kbits"} <= set(table["metric"])
    # CKA of the fine-tuned encoder to the pre-trained one; the pre-trained encoder has none
    cka = probing[probing["metric"] == "cka"]
    assert set(cka["finetune_task"]) == {"cola"} and len(cka) == 5  # mean 0-2, cls 1-2 (layer 0 constant)
    assert ((cka["value"] > 0) & (cka["value"] <= 1 + 1e-9)).all()
    # The paper's findings are checked on every run: claims.csv equals a fresh evaluation of the run.
    checks = claims.load_claims(root / "run" / "claims.csv")
    assert checks is not None and list(dict.fromkeys(checks["claim"])) == list(claims.CLAIMS)
    cell_dirs = sorted((root / "run" / "cells").glob("*"))
    cells = delta_intervals.load_cell_predictions(cell_dirs)
    fresh = claims.evaluate_claims(table, cells, attention_cells=attention_sentences.load_attention_cells(cell_dirs))
    pd.testing.assert_frame_equal(checks.reset_index(drop=True), fresh, check_dtype=False)
    # F8 from the attention cell's per-sentence entropies: an interval over sentences (one seed here)
    f8 = checks[checks["claim"] == "F8"]
    assert set(f8["interval"]) == {"95% bootstrap over fine-tuning seeds, then sentences"} and f8["ci_low"].notna().all()
    by_claim = claims.summarise(checks).set_index("claim")["verdict"]
    assert by_claim["F5"] == "not computable"  # no SST-2 in this grid
    decided = [claims.SUPPORTED, claims.CONTRADICTED, claims.INCONCLUSIVE]
    assert by_claim[["F1", "F3", "F6", "F7", "F8"]].isin(decided).all()
    f4 = checks[checks["claim"] == "F4"]
    assert f4["ci_low"].notna().all() and (f4["ci_low"] <= f4["estimate"]).all() and (f4["estimate"] <= f4["ci_high"]).all()


def test_second_run_skips_everything(grid_run, capsys):
    _, path, _ = grid_run
    capsys.readouterr()
    assert cli.main(["grid", str(path)]) == 0
    assert "ran 0, skipped 6, failed 0" in capsys.readouterr().out


def test_each_cell_records_the_data_files_it_read_and_the_same_data_elsewhere_is_no_change(grid_run, tmp_path,
                                                                                          capsys):
    root, path, _ = grid_run
    read = {cell.name: set(cell_state.recorded_data_files(cell)) for cell in (root / "run" / "cells").iterdir()}
    assert read == {
        "finetune__model-tiny-bert-L2__task-cola__head-cls__seed-0": {"glue/CoLA/train.tsv", "glue/CoLA/dev.tsv"},
        "finetune__model-tiny-bert-L2__task-cola__head-mean__seed-0": {"glue/CoLA/train.tsv", "glue/CoLA/dev.tsv"},
        "probing__model-tiny-bert-L2__ft-none__seed-0": {"senteval/bigram_shift.txt"},
        "probing__model-tiny-bert-L2__ft-cola-cls__seed-0": {"senteval/bigram_shift.txt"},
        "attention__model-tiny-bert-L2__ft-cola__task-bigram_shift": {"senteval/bigram_shift.txt"},
        "perplexity__model-tiny-bert-L2__ft-cola-cls": {"wikitext-2/wiki.test.raw"},
    }
    copy = shutil.copytree(root / "data", tmp_path / "data-copy")
    capsys.readouterr()
    assert cli.main(["grid", str(path), "--data-dir", str(copy), "--dry-run"]) == 0
    out = capsys.readouterr().out
    # same bytes under another path: every cell complete, none would run
    assert "changed" not in out and ": would run" not in out and "would run 0, skip " in out


def test_book_builds_from_the_run(grid_run, tmp_path):
    root, _, _ = grid_run
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(grid.REPO_ROOT / name, tmp_path / name)
    shutil.copytree(grid.REPO_ROOT / "book", tmp_path / "book", ignore=shutil.ignore_patterns("_generated"))
    assert cli.main(["book", str(root / "run"), "--book-root", str(tmp_path)]) == 0
    site = tmp_path / "_build" / "html"
    assert (site / "index.html").is_file()
    figure_page = (site / "book" / "figure1.html").read_text()
    assert "<img" in figure_page and "Figure 1: test accuracy of the probes" in figure_page
    # what a reader sees: no cut table, every figure captioned, every number its heading's (issue 23)
    assert html_checks.check_site(site) == {}
    assert "Demo run: these numbers check the pipeline, not the paper" in figure_page  # the banner
    assert (site / "book" / "_generated" / "notebooks" / "probing__model-tiny-bert-L2__ft-none__seed-0.html").is_file()
    table = results.load_results(root / "run" / "results.csv")
    # Tables 2 and 5 show the Delta numbers the analysis computes from the run's results, in order.
    delta_cells = table_cells((site / "book" / "delta.html").read_text())
    intervals = delta_intervals.load_delta_intervals(root / "run" / "delta_intervals.csv")
    assert (tmp_path / "book" / "_generated" / "delta_intervals.csv").is_file()
    expected = [v for pooling in ("cls", "mean")
                for v in report.delta_table(table, pooling=pooling, intervals=intervals).to_numpy().ravel()]
    assert is_subsequence(expected, delta_cells), (expected, delta_cells)
    # Table 1: "ours (paper)"; tiny models are not in the paper, so their reference is "-".
    table1 = report.table1(table, paper.TABLE1_METRICS, paper.TABLE1)
    assert table1.loc[("tiny-bert-L2", "cls"), "cola"].endswith(" (-)")
    assert is_subsequence(list(table1.to_numpy().ravel()), table_cells((site / "book" / "table1.html").read_text()))
    # the selectivity page: the selectivity figure and the compression numbers of the run
    selectivity_page = (site / "book" / "selectivity.html").read_text()
    assert "<img" in selectivity_page and "Not in this run" not in selectivity_page
    compression = list(report.compression_table(table).to_numpy().ravel())
    assert is_subsequence(compression, table_cells(selectivity_page)), compression
    # the CKA page: its figure and the run's CKA numbers
    similarity_page = (site / "book" / "similarity.html").read_text()
    assert "<img" in similarity_page and "Not in this run" not in similarity_page
    cka_cells = [v for v in report.cka_layer_table(table).to_numpy().ravel() if v != "-"]
    assert is_subsequence(cka_cells, table_cells(similarity_page)), cka_cells
    # the claims page shows the run's claims.csv, check by check
    claims_page = (site / "book" / "claims.html").read_text()
    shown = report.claims_checks_table(claims.load_claims(root / "run" / "claims.csv"))
    assert is_subsequence(list(shown["estimate"]), table_cells(claims_page)), shown


def table_cells(page: str) -> list[str]:
    """The text of every ``<td>`` of an HTML page, in document order."""
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", page, re.S)]


def is_subsequence(wanted: list[str], found: list[str]) -> bool:
    """Whether ``wanted`` appears in ``found`` in the same order (other cells may lie between)."""
    remaining = iter(found)
    return all(any(item == cell for cell in remaining) for item in wanted)


def test_a_moved_run_skips_everything_and_a_changed_setting_reruns_only_its_cell(grid_run, tmp_path, capsys):
    root, path, _ = grid_run
    moved = tmp_path / "moved"
    shutil.copytree(root / "run", moved)
    config = yaml.safe_load(path.read_text())
    config["output_dir"] = str(moved)
    changed = tmp_path / "grid.yaml"
    changed.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    # papermill's recorded parameters match the config although every path in them moved
    assert cli.main(["grid", str(changed)]) == 0
    assert "ran 0, skipped 6, failed 0" in capsys.readouterr().out
    config["perplexity"]["max_blocks"] = 3
    changed.write_text(yaml.safe_dump(config))
    assert cli.main(["grid", str(changed)]) == 2
    assert "perplexity__model-tiny-bert-L2__ft-cola-cls: parameters changed: max_blocks 4 -> 3" in capsys.readouterr().err
    assert cli.main(["grid", str(changed), "--rerun-changed"]) == 0
    assert "ran 1, skipped 5, failed 0" in capsys.readouterr().out
    perplexity = cell_state.recorded_parameters(moved / "notebooks" / "perplexity__model-tiny-bert-L2__ft-cola-cls.ipynb")
    assert perplexity is not None and perplexity["max_blocks"] == 3
