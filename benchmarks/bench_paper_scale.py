"""Benchmark: one paper-size probing cell (wall time, peak RSS) before and after issue 27, cache sizes, float16 storage.

A probing cell here is what :func:`probeft.probing.run_probing` does for one task once its features are cached:
read the feature cache, fit the task probes, the control probes and the online-code MDL (all 26 probes =
13 layers x {cls, mean}, 4 L2 values), with bootstrap intervals. Features are real all-MiniLM-L6-v2
bigram_shift features resampled to size: N train / N/10 dev / N/10 test sentences drawn with replacement
(seed 0) from each split, 13 layers taken from MiniLM's 7 (layer l <- l // 2), and for D = 768 each
vector is the concatenation of two MiniLM layers (l // 2 and (l + 1) // 2), so the features stay
strongly correlated, as an encoder's are.

Each cell runs in a child process with the probeft found at ``--code`` (``PYTHONPATH``), so the same script
times the code before issue 27 (a ``git worktree`` of the older commit) and after. A watchdog thread in the
parent polls the child's RSS (with its children) every 0.2 s and kills it above ``--rss-limit-gib``
(default 21), reporting the cell as aborted; the child's own ``ru_maxrss`` is its peak.

Also: the feature-cache size per (encoder, task) for each storage dtype
(:func:`probeft.probing.feature_cache.estimate_cache_bytes`, checked against the files), and with
``--float16-accuracy`` the test-accuracy difference between float16 and float32 storage on the real
MiniLM bigram_shift features (all probes, task and control), with the current code.

Needs MiniLM features of bigram_shift: ``--source-cache`` (a feature-cache folder written by
``probeft.probing.extract.extract_probing_features``), or they are extracted from
``<data dir>/senteval/bigram_shift.txt`` (``--data-dir``, else ``$PROBEFT_DATA_DIR``, else
``$PROBEFT_SHARED_DATA`` or ``../shared/data``); without them it prints a message and exits 0.

    python benchmarks/bench_paper_scale.py --code . --label after --sizes 2000 8000 --dims 384 768 --out after.json
    python benchmarks/bench_paper_scale.py --code /tmp/before --label before --sizes 2000 --out before.json

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
GIB = 1024**3
LAYERS = 13  # a base-size encoder's 12 layers + embeddings
POOLINGS = ("cls", "mean")
SPLITS = ("train", "dev", "test")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="data folder with senteval/bigram_shift.txt")
    parser.add_argument("--source-cache", type=Path, default=None,
                        help="feature-cache folder of MiniLM bigram_shift features (default: extract them)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/bench_paper_scale"),
                        help="where the resampled caches are written (deleted after each size)")
    parser.add_argument("--code", type=Path, default=REPO_ROOT, help="the probeft checkout the cells run with")
    parser.add_argument("--label", default="after", help="name of this code in the output")
    parser.add_argument("--sizes", type=int, nargs="*", default=[2000, 8000, 32000, 100000], help="train sentences N")
    parser.add_argument("--dims", type=int, nargs="*", default=[384, 768], choices=[384, 768], help="feature width D")
    parser.add_argument("--cache-dtype", default="float32", choices=["float32", "float16"],
                        help="storage dtype of the resampled caches (the code before issue 27 reads float32 only)")
    parser.add_argument("--rss-limit-gib", type=float, default=21.0, help="kill a cell above this RSS (GiB)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="kill a cell after this many seconds")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the cells")
    parser.add_argument("--float16-accuracy", action="store_true",
                        help="also compare float16 and float32 storage on the real MiniLM features (current code)")
    parser.add_argument("--device", default="cpu", help="device of the probes")
    parser.add_argument("--synthetic", action="store_true",
                        help="correlated Gaussian features with a linear teacher instead of MiniLM's (timing only; "
                             "for a machine without the data or the model, e.g. a lent GPU)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)  # internal: run one cell
    return parser.parse_args(argv)


# --- the cell, run in a child process with the probeft under test -------------------------------------------------


def _missing() -> dict:
    raise RuntimeError("the resampled feature cache is incomplete or does not verify")


def _child(cache_dir: Path, device: str, threads: int | None) -> None:
    """Run one probing cell on a resampled cache and print its timings as JSON (last line)."""
    import torch

    from probeft.probing import control as control_tasks
    from probeft.probing import feature_cache, stage

    if threads:
        torch.set_num_threads(threads)
    record = json.loads((cache_dir / feature_cache.METADATA_FILE).read_text())
    metadata = record["metadata"]
    labels = {split: np.load(cache_dir.parent / f"{cache_dir.name}.labels.{split}.npy") for split in SPLITS}
    control = {split: np.load(cache_dir.parent / f"{cache_dir.name}.control.{split}.npy") for split in SPLITS}
    del control_tasks  # the control labels are precomputed (same for both codes)
    started = time.perf_counter()
    target = torch.device(device)
    new_code = hasattr(stage, "_standardised_probes")
    if new_code:  # after issue 27: memory-mapped, one standardised copy shared by the three fits
        arrays = feature_cache.load_or_extract(cache_dir, metadata, _missing, dtype=record["arrays"]["train.cls"]["dtype"],
                                               mmap=True)
        features = {split: {p: arrays.pop(f"{split}.{p}") for p in POOLINGS} for split in SPLITS}
        loaded = time.perf_counter()
        standardised, probes = stage._standardised_probes(features, POOLINGS, target)
        task_rows, _ = stage._fit_rows(standardised, probes, labels)
        fitted = time.perf_counter()
        control_rows, _ = stage._fit_rows(standardised, probes, control, metric="control_accuracy")
        controlled = time.perf_counter()
        mdl_rows = stage.mdl_task_rows(standardised, labels["train"], probes, num_classes=2)
    else:  # before: what run_probing did at commit c9a63c2
        arrays = feature_cache.load_or_extract(cache_dir, metadata, _missing)
        features = {split: {p: arrays.pop(f"{split}.{p}") for p in POOLINGS} for split in SPLITS}
        loaded = time.perf_counter()
        stacked, probes = stage._stack(features, POOLINGS)
        task_rows, _ = stage._fit_stacked(stacked, probes, labels, device=target)
        fitted = time.perf_counter()
        control_rows, _ = stage._fit_stacked(stacked, probes, control, device=target,
                                             metric="control_accuracy")
        controlled = time.perf_counter()
        mdl_rows = stage.mdl_task_rows(stacked["train"], labels["train"], probes, num_classes=2, device=target)
    done = time.perf_counter()
    result = {
        "wall_s": done - started, "load_s": loaded - started, "task_s": fitted - loaded,
        "control_s": controlled - fitted, "mdl_s": done - controlled,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB,
        "peak_cuda_gib": torch.cuda.max_memory_allocated() / GIB if target.type == "cuda" else None,
        "test_accuracy": [r["value"] for r in task_rows if r["split"] == "test"],
        "control_test_accuracy": [r["value"] for r in control_rows if r["split"] == "test"],
        "codelength_kbits": [r["value"] for r in mdl_rows if r["metric"] == "codelength_kbits"],
    }
    print(json.dumps(result))


# --- the parent: data, resampled caches, watchdog --------------------------------------------------------------------


def _data_file(args: argparse.Namespace) -> Path | None:
    data_dir = args.data_dir or os.environ.get("PROBEFT_DATA_DIR") or os.environ.get(
        "PROBEFT_SHARED_DATA", str(REPO_ROOT.parent / "shared" / "data"))
    path = Path(data_dir) / "senteval" / "bigram_shift.txt"
    return path if path.is_file() else None


def _source_features(args: argparse.Namespace, cache_dtype: str = "float32") -> tuple[dict, dict, list[list[str]]] | None:
    """MiniLM bigram_shift features split -> pooling -> (7, N, 384), labels and sentences per split."""
    from probeft import data
    from probeft.probing import extract

    path = _data_file(args)
    if path is None:
        return None
    task = data.read_senteval(path)
    cache_root = args.source_cache.parent if args.source_cache else args.work_dir / "source"
    features = extract.extract_probing_features("all-minilm-l6-v2", task, cache_dir=cache_root, device="cpu",
                                                progress=False, cache_dtype=cache_dtype)
    labels = {"train": task.train.labels, "dev": task.dev.labels, "test": task.test.labels}
    sentences = [task.train.sentences, task.dev.sentences, task.test.sentences]
    return features, labels, sentences


def _synthetic_features() -> tuple[dict, dict, list[list[str]]]:
    """MiniLM-shaped stand-in: split -> pooling -> (7, N, 384) correlated features, teacher labels, dummy words."""
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(384, 384)).astype(np.float32) / 20.0
    teacher = rng.normal(size=384).astype(np.float32)
    features, labels, sentences = {}, {}, []
    for split, n in (("train", 8000), ("dev", 1500), ("test", 1500)):
        base = rng.normal(size=(n, 384)).astype(np.float32) @ mixing
        labels[split] = (base @ teacher + rng.normal(scale=3.0, size=n) > 0).astype(np.int64)
        features[split] = {p: np.stack([base + rng.normal(scale=0.5 + 0.1 * layer, size=(n, 384)).astype(np.float32)
                                        for layer in range(7)]) for p in POOLINGS}
        sentences.append([f"w{i % 97}" for i in range(n)])
    return features, labels, sentences


def _control_labels(sentences: list[list[str]], labels: dict) -> dict:
    from probeft.data import ProbingData, ProbingSplit
    from probeft.probing import control

    splits = [ProbingSplit(list(s), labels[name]) for s, name in zip(sentences, SPLITS)]
    task = ProbingData(task="bigram_shift", path=Path("bigram_shift.txt"), label_names=["I", "O"],
                       train=splits[0], dev=splits[1], test=splits[2], sha256="bench")
    controlled = control.control_task(task, seed=0, position="last")
    return {"train": controlled.train.labels, "dev": controlled.dev.labels, "test": controlled.test.labels}


def _write_resampled(source: tuple, n: int, dim: int, cache_dir: Path, dtype: str) -> int:
    """Write a resampled cache (the feature-cache layout, hashes included); returns its array bytes."""
    features, labels, sentences = source
    control = _control_labels(sentences, labels)
    rng = np.random.default_rng(0)
    cache_dir.mkdir(parents=True, exist_ok=True)
    entries, total = {}, 0
    sizes = {"train": n, "dev": max(2, n // 10), "test": max(2, n // 10)}
    for split in SPLITS:
        rows = rng.integers(0, len(labels[split]), size=sizes[split])
        np.save(cache_dir.parent / f"{cache_dir.name}.labels.{split}.npy", np.asarray(labels[split])[rows])
        np.save(cache_dir.parent / f"{cache_dir.name}.control.{split}.npy", np.asarray(control[split])[rows])
        for pooling in POOLINGS:
            values = features[split][pooling]  # (7, N_source, 384)
            array = np.empty((LAYERS, sizes[split], dim), dtype=dtype)
            for layer in range(LAYERS):
                array[layer, :, :384] = values[layer // 2][rows]
                if dim == 768:
                    array[layer, :, 384:] = values[(layer + 1) // 2][rows]
            np.save(cache_dir / f"{split}.{pooling}.npy", array)
            digest = hashlib.sha256(memoryview(array).cast("B")).hexdigest()
            entries[f"{split}.{pooling}"] = {"shape": list(array.shape), "dtype": dtype, "sha256": digest}
            total += array.nbytes
            del array
    metadata = {"bench": "paper_scale", "n": n, "num_feature_layers": LAYERS, "hidden_size": dim}
    if dtype != "float32":
        metadata["cache_dtype"] = dtype
    record = {"metadata": metadata, "arrays": entries, "info": {}}
    (cache_dir / "metadata.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return total


def _run_child(args: argparse.Namespace, cache_dir: Path) -> dict:
    """One cell in a child process under the RSS watchdog (no watchdog without psutil: the limit is then not enforced)."""
    try:
        import psutil
    except ImportError:
        psutil = None

    # The code under test first; the rest of the path (e.g. a bundle's site folder) after it.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(args.code.resolve()), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(cache_dir), "--device", args.device]
    if args.threads:
        command += ["--threads", str(args.threads)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = {"peak": 0, "killed": None}
    limit = args.rss_limit_gib * GIB

    def watch() -> None:
        if psutil is None:
            return
        watched = psutil.Process(process.pid)
        started = time.time()
        while process.poll() is None:
            try:
                rss = sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)])
            except psutil.Error:
                break
            state["peak"] = max(state["peak"], rss)
            if rss > limit or time.time() - started > args.timeout:
                state["killed"] = (f"RSS {rss / GIB:.1f} GiB above the limit {args.rss_limit_gib} GiB" if rss > limit
                                   else f"ran past {args.timeout:.0f} s")
                process.kill()
                break
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    stdout, stderr = process.communicate()
    thread.join()
    if state["killed"]:
        return {"status": "aborted", "reason": state["killed"], "watchdog_peak_gib": state["peak"] / GIB}
    if process.returncode != 0:
        return {"status": "failed", "reason": stderr.strip().splitlines()[-1] if stderr.strip() else "no output"}
    result = json.loads(stdout.strip().splitlines()[-1])
    return {"status": "ok", **result, "watchdog_peak_gib": state["peak"] / GIB}


def _float16_effect(args: argparse.Namespace) -> dict:
    """Test accuracy with float16 vs float32 storage on the real MiniLM bigram_shift features (current code)."""
    from probeft.probing import stage

    source = _source_features(args)
    if source is None:
        return {}
    features, labels, sentences = source
    control = _control_labels(sentences, labels)
    out = {}
    for dtype in ("float32", "float16"):
        split_features = {split: {p: np.asarray(features[split][p]).astype(dtype) for p in POOLINGS} for split in SPLITS}
        import torch

        standardised, probes = stage._standardised_probes(split_features, POOLINGS, torch.device("cpu"))
        task_rows, _ = stage._fit_rows(standardised, probes, labels)
        control_rows, _ = stage._fit_rows(standardised, probes, control, metric="control_accuracy")
        mdl_rows = stage.mdl_task_rows(standardised, labels["train"], probes, num_classes=2)
        out[dtype] = {
            "test_accuracy": np.array([r["value"] for r in task_rows if r["split"] == "test"]),
            "control_test_accuracy": np.array([r["value"] for r in control_rows if r["split"] == "test"]),
            "codelength_kbits": np.array([r["value"] for r in mdl_rows if r["metric"] == "codelength_kbits"]),
        }
    diff = {key: np.abs(out["float16"][key] - out["float32"][key]) for key in out["float32"]}
    return {
        "probes": len(probes), "n_test": len(labels["test"]),
        "max_abs_test_accuracy_diff": float(diff["test_accuracy"].max()),
        "mean_abs_test_accuracy_diff": float(diff["test_accuracy"].mean()),
        "probes_with_a_different_test_accuracy": int((diff["test_accuracy"] > 0).sum()),
        "max_abs_control_test_accuracy_diff": float(diff["control_test_accuracy"].max()),
        "max_rel_codelength_diff": float((diff["codelength_kbits"] / out["float32"]["codelength_kbits"]).max()),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.child is not None:
        _child(args.child, args.device, args.threads)
        return 0
    if _data_file(args) is None and args.source_cache is None and not args.synthetic:
        print("skipping benchmark: no senteval/bigram_shift.txt (give --data-dir or set PROBEFT_DATA_DIR)")
        return 0
    from probeft.probing.feature_cache import CACHE_DTYPES, estimate_cache_bytes

    source = _synthetic_features() if args.synthetic else _source_features(args)
    report: dict = {"label": args.label, "code": str(args.code.resolve()), "cells": [], "cpu_count": os.cpu_count(),
                    "load_start": os.getloadavg()}
    for n in args.sizes:
        for dim in args.dims:
            cache_dir = args.work_dir / f"n{n}-d{dim}-{args.cache_dtype}" / "cache"
            shutil.rmtree(cache_dir.parent, ignore_errors=True)
            nbytes = _write_resampled(source, n, dim, cache_dir, args.cache_dtype)
            print(f"[{args.label}] N={n} D={dim}: cache {nbytes / GIB:.2f} GiB ({args.cache_dtype}); running", flush=True)
            cell = {"n_train": n, "dim": dim, "probes": LAYERS * len(POOLINGS), "cache_gib": nbytes / GIB,
                    "cache_dtype": args.cache_dtype, **_run_child(args, cache_dir)}
            shutil.rmtree(cache_dir.parent, ignore_errors=True)
            report["cells"].append(cell)
            shown = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in cell.items() if not isinstance(v, list)}
            print(json.dumps(shown), flush=True)
    report["cache_size_per_encoder_task_gb"] = {
        f"{name} (L={layers}, D={dim}, 100k/10k/10k)": {
            dtype: estimate_cache_bytes(hidden_size=dim, num_layers=layers, sentences=120_000, dtype=dtype) / 1e9
            for dtype in CACHE_DTYPES}
        for name, layers, dim in (("base", 12, 768), ("MiniLM", 6, 384))}
    if args.float16_accuracy:
        report["float16_vs_float32_minilm_bigram_shift"] = _float16_effect(args)
        print(json.dumps(report["float16_vs_float32_minilm_bigram_shift"]), flush=True)
    report["load_end"] = os.getloadavg()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
