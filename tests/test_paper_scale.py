"""Issue 27: features held once, one spectrum per set of features, float16 cache storage, disk estimates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from probeft import probing
from probeft.grid import cells, disk, runner, schema
from probeft.grid.cells import GridPaths
from probeft.probing import extract, feature_cache, mdl, probe, probe_lbfgs, stage


def _splits(seed: int = 0, probes: int = 3, dim: int = 6) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Correlated features with a linear signal, and labels, for train (200), dev (60) and test (60)."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim))
    weights = rng.normal(size=dim)
    features, labels = {}, {}
    for split, n in (("train", 200), ("dev", 60), ("test", 60)):
        x = rng.normal(size=(probes, n, dim)) @ mixing + 3.0
        labels[split] = (x[0] @ weights + rng.normal(scale=2.0, size=n) > x[0].mean(axis=0) @ weights).astype(np.int64)
        features[split] = x.astype(np.float32)
    return features, labels


# --- probe: standardise once, fit many label sets ---------------------------------------------------------------


def test_in_place_standardisation_equals_the_copying_one_exactly() -> None:
    features, _ = _splits()
    copied = probe.standardise({split: torch.from_numpy(x) for split, x in features.items()})
    owned = {split: torch.from_numpy(x.copy()) for split, x in features.items()}
    pointers = {split: x.data_ptr() for split, x in owned.items()}
    standardised = probe.standardise_features(owned, in_place=True)
    for split in features:
        assert standardised.splits[split].data_ptr() == pointers[split]  # no copy was made
        torch.testing.assert_close(standardised.splits[split], copied[split], rtol=0, atol=0)
    # Without in_place the caller's arrays are left alone.
    before = {split: x.copy() for split, x in features.items()}
    probe.standardise_features(features)
    for split in features:
        np.testing.assert_array_equal(features[split], before[split])


def test_task_and_control_fits_share_one_spectrum_and_match_separate_fits(monkeypatch) -> None:
    features, labels = _splits()
    control = {split: np.roll(y, 7) for split, y in labels.items()}
    separate = [probe.fit_probes(features["train"], y["train"], features["dev"], y["dev"], features["test"], y["test"])
                for y in (labels, control)]
    calls = []
    original = probe_lbfgs.Spectrum.of
    monkeypatch.setattr(probe_lbfgs.Spectrum, "of", classmethod(lambda cls, x: calls.append(1) or original(x)))
    standardised = probe.standardise_features(features)
    shared = [probe.fit_standardised(standardised, y) for y in (labels, control)]
    assert len(calls) == 1  # one eigendecomposition for both label sets
    for alone, together in zip(separate, shared):
        np.testing.assert_array_equal(alone.coef, together.coef)
        np.testing.assert_array_equal(alone.grid_dev_acc, together.grid_dev_acc)
        np.testing.assert_array_equal(alone.test_correct, together.test_correct)
    assert not np.array_equal(shared[0].test_correct, shared[1].test_correct)  # the fits did differ


def test_finiteness_is_found_in_any_chunk(monkeypatch) -> None:
    monkeypatch.setattr(probe, "_FINITE_CHUNK", 12)  # 2 rows of 6 at a time
    x = torch.zeros(3, 10, 6)
    assert probe.all_finite(x)
    x[2, 9, 5] = float("inf")
    assert not probe.all_finite(x)
    x[2, 9, 5] = 0.0
    x[1, 4, 0] = float("nan")
    assert not probe.all_finite(x)
    with pytest.raises(ValueError, match="dev_x contains NaN or infinite values"):
        probe.standardise_features({"train": torch.zeros(3, 10, 6), "dev": x})


# --- MDL: shared spectrum, shuffled in place and put back ---------------------------------------------------------


def test_mdl_on_standardised_features_equals_the_standalone_code_and_restores_the_order() -> None:
    features, labels = _splits()
    standardised = probe.standardise_features({"train": features["train"]})
    kept = standardised.train.clone()
    index = [("cls", layer) for layer in range(3)]
    rows = stage.mdl_task_rows(standardised, labels["train"], index, num_classes=2, seed=3)
    torch.testing.assert_close(standardised.train, kept, rtol=0, atol=0)  # permuted back exactly
    # The raw features give the same rows (same statistics, same spectrum, same order).
    assert rows == stage.mdl_task_rows(features["train"], labels["train"], index, num_classes=2, seed=3)
    # And the code equals online_codelength on the shuffled features, up to float rounding of the statistics.
    order = np.random.default_rng(3).permutation(200)
    direct = mdl.online_codelength(features["train"][:, order], labels["train"][order], num_classes=2)
    codes = [row["value"] for row in rows if row["metric"] == "codelength_kbits"]
    np.testing.assert_allclose(codes, direct.codelength_kbits, rtol=1e-5)
    assert min(codes) < 0.2  # the signal compresses (uniform code: 0.2 kbits)


def test_mdl_prefixes_reuse_the_full_spectrum(monkeypatch) -> None:
    features, labels = _splits()
    calls = []
    original = probe_lbfgs.Spectrum.of
    monkeypatch.setattr(probe_lbfgs.Spectrum, "of", classmethod(lambda cls, x: calls.append(x.shape) or original(x)))
    result = mdl.online_codelength(features["train"], labels["train"])
    assert [tuple(shape) for shape in calls] == [(3, 200, 6)] and result.block_ends.size == 8  # 1 eigh, 7 fits
    assert result.converged.all()


# --- feature cache: float16 storage, memory-mapped reads, estimates ----------------------------------------------


def _metadata(model: str = "m", cache_dtype: str = "float32") -> dict:
    return extract.feature_metadata(model=model, fingerprint={"revision": "r"}, data_sha256="0" * 64, num_layers=2,
                                    hidden_size=4, task="toy", cache_dtype=cache_dtype)


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {f"{split}.cls": rng.normal(size=(3, n, 4)).astype(np.float32) for split, n in (("train", 50), ("dev", 7))}


def test_float16_storage_halves_the_files_and_a_hit_equals_the_miss(tmp_path: Path) -> None:
    metadata32, metadata16 = _metadata(), _metadata(cache_dtype="float16")
    assert "cache_dtype" not in metadata32 and metadata16["cache_dtype"] == "float16"  # old float32 caches still match
    assert feature_cache.feature_cache_path(tmp_path, metadata32) != feature_cache.feature_cache_path(tmp_path, metadata16)
    full = feature_cache.load_or_extract(tmp_path / "f32", metadata32, _arrays)
    missed = feature_cache.load_or_extract(tmp_path / "f16", metadata16, _arrays, dtype="float16")
    hit = feature_cache.load_or_extract(tmp_path / "f16", metadata16, _arrays, dtype="float16", mmap=True)
    for name, values in full.items():
        assert missed[name].dtype == np.float16 and isinstance(hit[name], np.memmap)
        np.testing.assert_array_equal(missed[name], hit[name])
        np.testing.assert_array_equal(hit[name], values.astype(np.float16))
        data_bytes = {d: (tmp_path / d / f"{name}.npy").stat().st_size - 128 for d in ("f32", "f16")}
        assert data_bytes["f16"] * 2 == data_bytes["f32"] == values.nbytes
    stored = json.loads((tmp_path / "f16" / feature_cache.METADATA_FILE).read_text())
    assert stored["arrays"]["train.cls"]["dtype"] == "float16"
    with pytest.raises(ValueError, match="feature cache dtype 'int8' is not one of"):
        feature_cache.load_or_extract(tmp_path / "x", metadata32, _arrays, dtype="int8")


def test_a_changed_or_truncated_float16_file_is_found_by_the_streamed_hash(tmp_path: Path) -> None:
    metadata = _metadata(cache_dtype="float16")
    feature_cache.load_or_extract(tmp_path / "c", metadata, _arrays, dtype="float16")
    path = tmp_path / "c" / "train.cls.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x40
    path.write_bytes(bytes(raw))
    calls = []
    with pytest.warns(RuntimeWarning, match=r"train.cls.npy: its values changed since it was written"):
        feature_cache.load_or_extract(tmp_path / "c", metadata, lambda: calls.append(1) or _arrays(), dtype="float16")
    assert calls == [1]
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.warns(RuntimeWarning, match=r"train.cls.npy: holds \d+ data bytes, its header promises"):
        feature_cache.load_or_extract(tmp_path / "c", metadata, _arrays, dtype="float16")


def test_estimate_cache_bytes_is_what_the_cache_writes(tmp_path: Path) -> None:
    for dtype in feature_cache.CACHE_DTYPES:
        metadata = _metadata(cache_dtype=dtype)
        arrays = feature_cache.load_or_extract(tmp_path / dtype, metadata, _arrays, dtype=dtype)
        written = sum(a.nbytes for a in arrays.values())
        # 2 layers + embeddings, 57 sentences, width 4, one pooling
        assert feature_cache.estimate_cache_bytes(hidden_size=4, num_layers=2, sentences=57, poolings=1,
                                                  dtype=dtype) == written
    # The paper-size figure: 9.6 GB per (encoder, task) in float32, half in float16.
    paper = {d: feature_cache.estimate_cache_bytes(hidden_size=768, num_layers=12, sentences=120_000, dtype=d)
             for d in feature_cache.CACHE_DTYPES}
    assert paper == {"float32": 9_584_640_000, "float16": 4_792_320_000}


def test_stack_probes_float32_releases_what_it_copied() -> None:
    features = {"cls": np.arange(24, dtype=np.float16).reshape(3, 2, 4), "mean": -np.ones((3, 2, 4), np.float32)}
    expected, index = extract.stack_probes(features)
    stacked, same_index = extract.stack_probes_float32(features, release=True)
    assert same_index == index and stacked.dtype == torch.float32 and features == {}
    np.testing.assert_array_equal(stacked.numpy(), expected.astype(np.float32))


# --- the stage and the grid -----------------------------------------------------------------------------------------


def test_float16_storage_changes_the_stage_little_and_cpu_extraction_stays_float32(demo_data_dir, tmp_path) -> None:
    kwargs = {"max_train": 120, "max_eval": 40, "device": "cpu", "progress": False, "mdl": False}
    full = probing.run_probing("tiny-bert-L2", ["bigram_shift"], demo_data_dir, cache_dir=tmp_path / "a", **kwargs)
    with pytest.warns(UserWarning, match="extraction dtype float16 needs CUDA; extracting in float32 on cpu"):
        half = probing.run_probing("tiny-bert-L2", ["bigram_shift"], demo_data_dir, cache_dir=tmp_path / "b",
                                   cache_dtype="float16", dtype="float16", **kwargs)
    assert half.extraction_dtype == "float32" and half.cache_dtype == "float16"
    (folder,) = (tmp_path / "b").iterdir()
    assert json.loads((folder / "metadata.json").read_text())["arrays"]["train.cls"]["dtype"] == "float16"
    a, b = (run.rows.set_index(["pooling", "layer", "split", "metric"])["value"] for run in (full, half))
    assert list(a.index) == list(b.index)
    # Measured on 120/40/40 demo sentences: at most one test sentence of 40 flips.
    assert np.abs(a.to_numpy() - b.to_numpy()).max() <= 1 / 40 + 1e-12


def _config(tmp_path: Path, **probing_settings) -> schema.GridConfig:
    text = {
        "name": "t", "output_dir": str(tmp_path / "run"), "models": ["tiny-bert"],
        "finetune": {"tasks": ["cola"], "max_train": 8, "max_eval": 8},
        "probing": {"tasks": ["bigram_shift"], "finetune_tasks": ["none", "cola"], "max_train": 20, "max_eval": 10,
                    **probing_settings},
    }
    path = tmp_path / "grid.yaml"
    path.write_text(json.dumps(text))
    return schema.load_config(path)


def test_schema_takes_the_dtypes_and_names_a_bad_one(tmp_path: Path) -> None:
    config = _config(tmp_path, dtype="bfloat16", cache_dtype="float16", keep_finetuned_features=True)
    assert (config.probing.dtype, config.probing.cache_dtype, config.probing.keep_finetuned_features) == (
        "bfloat16", "float16", True)
    with pytest.raises(ValueError, match=r"grid.yaml: invalid grid config: probing.cache_dtype: Input should be "
                                         r"'float32' or 'float16'"):
        _config(tmp_path, cache_dtype="bfloat16")
    with pytest.raises(ValueError, match=r"probing.dtype: Input should be 'float32', 'bfloat16' or 'float16'"):
        _config(tmp_path, dtype="float64")


def test_probing_cells_drop_fine_tuned_features_unless_kept_and_pass_dtypes_only_when_set(tmp_path: Path) -> None:
    paths = GridPaths(tmp_path / "run", None)
    default = {c.name: c for c in runner.expand(_config(tmp_path), paths) if c.stage == "probing"}
    pretrained, finetuned = (default[n] for n in sorted(default, key=lambda n: "ft-none" not in n))
    assert pretrained.drop_features is None
    assert finetuned.drop_features == (str(paths.cache_dir / "features"), finetuned.parameters["model"])
    assert "dtype" not in finetuned.parameters and "cache_dtype" not in finetuned.parameters  # old cells stay complete
    kept = [c for c in runner.expand(_config(tmp_path, keep_finetuned_features=True, cache_dtype="float16"), paths)
            if c.stage == "probing"]
    assert all(c.drop_features is None and c.parameters["cache_dtype"] == "float16" for c in kept)


def test_a_complete_cell_drops_its_features_and_a_failed_one_keeps_them(tmp_path: Path, monkeypatch) -> None:
    cache_root, model_dir = tmp_path / "cache", tmp_path / "cells" / "finetune__x"
    feature_cache.load_or_extract(cache_root / "a", _metadata(model=str(model_dir / "epoch-3")), _arrays)
    feature_cache.load_or_extract(cache_root / "b", _metadata(model="tiny-bert"), _arrays)
    cell = cells.Cell("probing__x", "probing", Path("probing.ipynb"), {"output_dir": str(tmp_path / "cells" / "p")},
                      drop_features=(str(cache_root), str(model_dir)))
    monkeypatch.setattr(cells, "write_seal", lambda cell, executed: None)
    monkeypatch.setattr(cells.results, "cell_complete", lambda folder: False)
    assert cells.attempt_cell(cell, tmp_path / "nb.ipynb", lambda c, e: None).status == "failed"
    assert sorted(p.name for p in cache_root.iterdir()) == ["a", "b"]
    monkeypatch.setattr(cells.results, "cell_complete", lambda folder: True)
    assert cells.attempt_cell(cell, tmp_path / "nb.ipynb", lambda c, e: None).status == "ok"
    assert sorted(p.name for p in cache_root.iterdir()) == ["b"]  # the pre-trained encoder's stay


def test_disk_estimate_counts_the_data_and_drops_fine_tuned_features(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "senteval").mkdir(parents=True)
    lines = [f"{part}\t0\tw" for part, count in (("tr", 30), ("va", 12), ("te", 12)) for _ in range(count)]
    (data_dir / "senteval" / "bigram_shift.txt").write_text("\n".join(lines) + "\n")
    config = _config(tmp_path)  # max_train 20, max_eval 10: 40 sentences; tiny-bert: 4 layers, width 32
    per_cell = 5 * 40 * 32 * 2 * 4
    estimate = disk.estimate_grid_cache(config, GridPaths(tmp_path / "run", data_dir))
    assert (estimate.kept, estimate.peak, estimate.total_written, estimate.notes) == (per_cell, 2 * per_cell,
                                                                                       2 * per_cell, ())
    kept = disk.estimate_grid_cache(_config(tmp_path, keep_finetuned_features=True, cache_dtype="float16"),
                                    GridPaths(tmp_path / "run", data_dir))
    assert (kept.kept, kept.peak) == (per_cell, per_cell)
    text = disk.format_estimate(estimate, tmp_path / "run" / "cache" / "features", "float32")
    assert "at most on disk" in text and "kept at the end" in text
    assumed = disk.estimate_grid_cache(config, GridPaths(tmp_path / "run", None))
    assert assumed.notes and "100k/10k/10k assumed" in assumed.notes[0]


def test_a_probing_kernel_does_not_import_the_trainer() -> None:
    code = ("import sys; from probeft.finetune import checkpoints; from probeft import finetune; "
            "assert 'probeft.finetune.train' not in sys.modules; finetune.run_finetune; "
            "assert 'probeft.finetune.train' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_stacking_a_memory_mapped_cache_reads_each_layer_through_its_own_mapping(tmp_path: Path) -> None:
    arrays = {"train.cls": np.arange(3 * 5 * 4, dtype=np.float32).reshape(3, 5, 4),
              "train.mean": -np.arange(3 * 5 * 4, dtype=np.float32).reshape(3, 5, 4)}
    for dtype in feature_cache.CACHE_DTYPES:
        mapped = feature_cache.load_or_extract(tmp_path / dtype, _metadata(cache_dtype=dtype), lambda: arrays,
                                               dtype=dtype, mmap=True)
        assert all(isinstance(values, np.memmap) for values in mapped.values())
        split = {"cls": mapped["train.cls"], "mean": mapped["train.mean"]}
        stacked, index = extract.stack_probes_float32(split, release=True)
        expected, _ = extract.stack_probes({"cls": arrays["train.cls"], "mean": arrays["train.mean"]})
        assert index == [(p, layer) for p in ("cls", "mean") for layer in range(3)]
        np.testing.assert_array_equal(stacked.numpy(), expected)
