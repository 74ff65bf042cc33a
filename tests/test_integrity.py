"""Nothing on disk is trusted unchecked and no input destroys data (issue 22): one test per case."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from probeft.data import demo, locations
from probeft.grid import cli


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def real_data(tmp_path: Path) -> Path:
    """A folder that looks like a user's real data (not written by the demo generator)."""
    root = tmp_path / "real"
    (root / "senteval").mkdir(parents=True)
    (root / "senteval" / "bigram_shift.txt").write_text("tr\tO\tA sentence from the real corpus .\n")
    (root / "glue" / "CoLA").mkdir(parents=True)
    (root / "glue" / "CoLA" / "train.tsv").write_text("gj04\t1\t\tThe real one .\n")
    return root


def _demo_config(tmp_path: Path, data_dir: str) -> Path:
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump({
        "name": "demo", "data_dir": data_dir, "demo_data": True, "output_dir": str(tmp_path / "run"),
        "device": "cpu", "models": ["tiny-bert-L2"], "probing": {"tasks": ["bigram_shift"]},
    }))
    return path


@pytest.mark.parametrize("how", ["--data-dir", "PROBEFT_DATA_DIR", "config data_dir"])
def test_a_demo_config_never_writes_over_real_data(tmp_path, real_data, monkeypatch, capsys, how):
    before = _files(real_data)
    config = _demo_config(tmp_path, str(real_data) if how == "config data_dir" else str(tmp_path / "demo-data"))
    argv = ["grid", str(config)]
    if how == "--data-dir":
        argv += ["--data-dir", str(real_data)]
    elif how == "PROBEFT_DATA_DIR":
        monkeypatch.setenv(locations.DATA_DIR_ENV, str(real_data))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "refusing to write generated demo data" in err and str(real_data) in err and "Traceback" not in err
    assert _files(real_data) == before  # not a byte changed, no marker added
    assert not (tmp_path / "run").exists()  # refused before the run started


def test_a_demo_config_writes_into_a_new_or_its_own_folder(tmp_path, capsys):
    config = _demo_config(tmp_path, str(tmp_path / "demo-data"))
    assert cli.main(["grid", str(config), "--dry-run"]) == 0  # a dry run writes no data
    assert not (tmp_path / "demo-data").exists()
    written = demo.write_demo_data(tmp_path / "demo-data")
    assert demo.is_demo_data(written)
    assert demo.write_demo_data(written) == written  # its own folder: written again
