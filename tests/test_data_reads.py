"""The record of data files read (sha256 per file), its provenance keys, and the content comparison."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from probeft import data, results
from probeft.core import data_reads


def write_probing_file(path: Path, sentences: int = 6) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{split}\t{'I' if i % 2 else 'O'}\tsentence number {i} of {split} ." for split in ("tr", "va", "te")
             for i in range(sentences)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_data_text_is_read_text_and_records_the_bytes_hash(tmp_path):
    path = tmp_path / "crlf.tsv"
    payload = "\ufeffsentence\tlabel\r\nA b .\t1\rC d .\t0\n".encode()
    path.write_bytes(payload)
    assert data_reads.read_data_text(path, encoding="utf-8-sig") == path.read_text(encoding="utf-8-sig")
    assert data_reads.data_files_read() == {str(path.resolve()): hashlib.sha256(payload).hexdigest()}
    assert data_reads.sha256_of_file(path, chunk_bytes=7) == hashlib.sha256(payload).hexdigest()


def test_every_reader_records_its_file(demo_data_dir):
    data.read_senteval(demo_data_dir / "senteval" / "bigram_shift.txt", max_train=10, max_eval=10)
    data.read_glue("cola", demo_data_dir)
    data.read_wikitext_test(demo_data_dir)
    data.read_squad_splits(demo_data_dir)
    keys = set(data_reads.provenance_data_files(demo_data_dir))
    assert {"senteval/bigram_shift.txt", "glue/CoLA/train.tsv", "glue/CoLA/dev.tsv",
            "wikitext-2/wiki.test.raw"} <= keys
    assert any(key.startswith("squad/") for key in keys) and not any(Path(k).is_absolute() for k in keys)
    for key, digest in data_reads.provenance_data_files(demo_data_dir).items():
        assert digest == data_reads.sha256_of_file(demo_data_dir / key)


def test_provenance_keys_are_relative_under_the_data_dir_and_absolute_outside(tmp_path):
    inside = write_probing_file(tmp_path / "data" / "senteval" / "bigram_shift.txt")
    outside = write_probing_file(tmp_path / "elsewhere" / "coordination_inversion.txt")
    for path in (inside, outside):
        data.read_senteval(path)
    recorded = data_reads.provenance_data_files(tmp_path / "data")
    assert set(recorded) == {"senteval/bigram_shift.txt", str(outside.resolve())}
    assert set(data_reads.provenance_data_files("hub")) == {str(inside.resolve()), str(outside.resolve())}
    data_reads.forget_data_files_read()
    assert data_reads.data_files_read() == {}


def test_changed_data_files_sees_edits_and_missing_files_and_not_a_moved_copy(tmp_path):
    original = write_probing_file(tmp_path / "a" / "senteval" / "bigram_shift.txt")
    data.read_senteval(original)
    recorded = data_reads.provenance_data_files(tmp_path / "a")
    copy = write_probing_file(tmp_path / "b" / "senteval" / "bigram_shift.txt")  # same bytes, other folder
    hashes: dict[str, str] = {}
    assert data_reads.changed_data_files(recorded, tmp_path / "b", hashes=hashes) == {}
    assert data_reads.changed_data_files(recorded, tmp_path / "a", hashes=hashes) == {}
    assert len(hashes) == 2
    write_probing_file(copy, sentences=7)  # edited in place
    old, new = recorded["senteval/bigram_shift.txt"], data_reads.sha256_of_file(copy)
    assert data_reads.changed_data_files(recorded, tmp_path / "b") == {"senteval/bigram_shift.txt": (old, new)}
    assert data_reads.changed_data_files(recorded, tmp_path / "c") == {
        "senteval/bigram_shift.txt": (old, data_reads.MISSING)}
    assert data_reads.changed_data_files(recorded, None) == {"senteval/bigram_shift.txt": (old, data_reads.MISSING)}


def test_write_cell_stores_the_files_read_in_the_provenance(tmp_path):
    path = write_probing_file(tmp_path / "data" / "senteval" / "bigram_shift.txt")
    data.read_senteval(path)
    table = results.results_frame([{"stage": "probing", "model": "m", "metric": "acc", "value": 0.5}])
    results.write_cell(tmp_path / "cell", table, params={"data_dir": str(tmp_path / "data")}, started=0.0,
                       device="cpu")
    record = json.loads((tmp_path / "cell" / results.PROVENANCE_FILE).read_text())
    assert record["data_files"] == {"senteval/bigram_shift.txt": data_reads.sha256_of_file(path)}
