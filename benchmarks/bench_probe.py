"""Benchmark: batched torch probes (probeft.probing.probe) vs scikit-learn, plus extraction throughput.

Both probe implementations see the same cached features (all layers x CLS/mean pooling), the
same train-statistics standardisation and the same L2 grid chosen on dev (ties -> stronger L2).
``l2`` maps to scikit-learn's ``C`` with :func:`probeft.probing.probe.sklearn_c` (``C = 2 / (l2 * N)``
for two classes, ``1 / (l2 * N)`` otherwise), so both minimise the same objective.

Run ``python benchmarks/bench_probe.py --help``; see benchmarks/README.md. Exits 0 with a
message when the data file is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from probeft import data, models
from probeft.core.devices import resolve_device
from probeft.core.names import POOLINGS
from probeft.data.locations import DATA_DIR_ENV
from probeft.probing import extract, probe


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-file", type=Path, default=None,
                        help="SentEval probing file (default: <data dir>/senteval/<task>.txt)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data directory (default: $PROBEFT_DATA_DIR, else $PROBEFT_SHARED_DATA or ../shared/data)")
    parser.add_argument("--task", default="bigram_shift", help="probing task when --data-file is not given")
    parser.add_argument("--model", default="all-minilm-l6-v2", help="model spec (probeft.models.resolve_model)")
    parser.add_argument("--max-train", type=int, default=None, help="cap on train sentences")
    parser.add_argument("--max-eval", type=int, default=None, help="cap on dev and on test sentences")
    parser.add_argument("--device", default="auto", help="device for extraction and the torch probe")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="feature cache root (default: $PROBEFT_CACHE/features or ~/.cache/probeft/features)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--throughput-sentences", type=int, default=1000,
                        help="train sentences used to time sorted vs unsorted extraction (0: skip)")
    parser.add_argument("--throughput-repeats", type=int, default=2, help="timed passes per mode (best one counts)")
    parser.add_argument("--tol", type=float, default=1e-5,
                        help="gradient tolerance of both solvers (probeft's default; scikit-learn's own is 1e-4)")
    parser.add_argument("--max-iter", type=int, default=10_000, help="iteration cap of both solvers")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch and for scikit-learn's BLAS (default: each library's own)")
    parser.add_argument("--dtype", default=None, choices=["float16", "bfloat16"],
                        help="half-precision extraction (CUDA only; default float32)")
    parser.add_argument("--no-sklearn", action="store_true", help="skip the scikit-learn baseline")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    return parser.parse_args(argv)


REPO_ROOT = Path(__file__).resolve().parent.parent


def _data_file(args: argparse.Namespace) -> Path | None:
    """The probing file to use, or None (with a message) when it cannot be found.

    Order: --data-file; --data-dir; $PROBEFT_DATA_DIR; $PROBEFT_SHARED_DATA or ../shared/data next to
    the repository (the validation-data convention of tests/conftest.py).
    """
    if args.data_file is not None:
        if args.data_file.is_file():
            return args.data_file
        print(f"skipping benchmark: --data-file {args.data_file} does not exist")
        return None
    data_dir = args.data_dir
    if data_dir is None and not os.environ.get(DATA_DIR_ENV):
        data_dir = Path(os.environ.get("PROBEFT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    try:
        return data.resolve_probing_file(args.task, data_dir, download=False)
    except (FileNotFoundError, ValueError) as error:
        print(f"skipping benchmark: {error}")
        return None


def _cache_root(args: argparse.Namespace) -> Path:
    if args.cache_dir is not None:
        return args.cache_dir
    root = os.environ.get("PROBEFT_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "probeft") / "features"


def _throughput(args: argparse.Namespace, sentences: list[str]) -> dict:
    """Sentences per second with length-sorted vs unsorted batching on the same sentences."""
    device = resolve_device(args.device)
    model = models.load_encoder(args.model, device=device, dtype=torch.float32)
    tokenizer = models.load_tokenizer(args.model)
    extract.extract_features(model, tokenizer, sentences[: args.batch_size], device=device, progress=False,
                             dtype=args.dtype)  # warm-up
    timings: dict[str, float] = {}
    features: dict[str, dict[str, np.ndarray]] = {}
    # Alternate the modes and keep each one's best time: the first pass over new sequence lengths
    # pays one-off costs (kernel selection on CUDA) that would otherwise count against one mode.
    for _ in range(args.throughput_repeats):
        for mode, sort in (("sorted", True), ("unsorted", False)):
            _synchronize(device)
            start = time.perf_counter()
            features[mode] = extract.extract_features(
                model, tokenizer, sentences, batch_size=args.batch_size, max_length=args.max_length,
                device=device, sort_by_length=sort, dtype=args.dtype, progress=False,
            )
            _synchronize(device)
            timings[mode] = min(timings.get(mode, float("inf")), time.perf_counter() - start)
    difference = max(float(np.abs(features["sorted"][p] - features["unsorted"][p]).max()) for p in POOLINGS)
    # Tokens the model processes, padding included: the load-independent part of the comparison.
    encoded = tokenizer(sentences, truncation=True, max_length=args.max_length)["input_ids"]
    lengths = np.array([len(ids) for ids in encoded])
    orders = {"sorted": np.argsort(-lengths, kind="stable"), "unsorted": np.arange(len(sentences))}
    padded_tokens = {}
    for mode, order in orders.items():
        batches = [order[i : i + args.batch_size] for i in range(0, len(order), args.batch_size)]
        padded_tokens[mode] = int(sum(len(batch) * lengths[batch].max() for batch in batches))
    return {
        "sentences": len(sentences),
        "tokens": int(lengths.sum()),
        "padded_tokens": padded_tokens,
        "device": str(device),
        "seconds": timings,
        "sentences_per_second": {mode: len(sentences) / seconds for mode, seconds in timings.items()},
        "max_abs_feature_difference": difference,
    }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _sklearn_probes(splits: dict[str, tuple[np.ndarray, np.ndarray]], l2_grid: tuple[float, ...],
                    tol: float, max_iter: int) -> dict:
    """One scikit-learn LogisticRegression per (probe, l2), standardised like probeft.probing.probe."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train_x, train_y = splits["train"]
    num_probes, n_train, _ = train_x.shape
    num_classes = int(train_y.max()) + 1
    accuracy = {split: np.zeros((num_probes, len(l2_grid))) for split in splits}
    not_converged = 0
    for p in range(num_probes):
        scaler = StandardScaler().fit(train_x[p])
        scaled = {split: scaler.transform(x[p]) for split, (x, _) in splits.items()}
        for g, l2 in enumerate(l2_grid):
            classifier = LogisticRegression(C=probe.sklearn_c(l2, n_train, num_classes), tol=tol, max_iter=max_iter)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                classifier.fit(scaled["train"], train_y)
            not_converged += sum(issubclass(w.category, ConvergenceWarning) for w in caught)
            for split, (_, y) in splits.items():
                accuracy[split][p, g] = classifier.score(scaled[split], y)
    grid = np.asarray(l2_grid)
    strongest_first = np.argsort(-grid, kind="stable")
    chosen = strongest_first[np.argmax(np.round(accuracy["dev"][:, strongest_first], 12), axis=1)]
    rows = np.arange(num_probes)
    return {
        "l2": grid[chosen],
        "test_acc": accuracy["test"][rows, chosen],
        "grid": accuracy,
        "not_converged": not_converged,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    path = _data_file(args)
    if path is None:
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    probing = data.read_senteval(path, max_train=args.max_train, max_eval=args.max_eval)
    sizes = {split: len(probing.split(split).sentences) for split in extract.SPLITS}
    print(f"data: {path} ({probing.task}) sizes {sizes}; model {args.model}; "
          f"torch threads {torch.get_num_threads()}; device {resolve_device(args.device)}")

    report: dict = {"data_file": str(path), "task": probing.task, "model": args.model, "sizes": sizes,
                    "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
                    "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    if args.throughput_sentences > 0:
        report["throughput"] = _throughput(args, probing.train.sentences[: args.throughput_sentences])
        rates = report["throughput"]["sentences_per_second"]
        padded = report["throughput"]["padded_tokens"]
        print(f"extraction throughput on {report['throughput']['sentences']} sentences "
              f"({report['throughput']['device']}): sorted {rates['sorted']:.1f} sent/s, unsorted "
              f"{rates['unsorted']:.1f} sent/s (x{rates['sorted'] / rates['unsorted']:.2f}); tokens incl. padding "
              f"{padded['sorted']} vs {padded['unsorted']} ({report['throughput']['tokens']} real); "
              f"max |feature diff| {report['throughput']['max_abs_feature_difference']:.2e}")

    start = time.perf_counter()
    features = extract.extract_probing_features(
        args.model, probing, cache_dir=_cache_root(args), batch_size=args.batch_size,
        max_length=args.max_length, device=args.device, dtype=args.dtype, progress=True,
    )
    report["features_seconds"] = time.perf_counter() - start
    print(f"features (extracted or loaded from cache under {_cache_root(args)}): {report['features_seconds']:.1f} s")

    stacked = {split: extract.stack_probes(features[split]) for split in extract.SPLITS}
    index = stacked["train"][1]
    splits = {split: (stacked[split][0], probing.split(split).labels) for split in extract.SPLITS}

    device = resolve_device(args.device)
    _synchronize(device)
    start = time.perf_counter()
    ours = probe.fit_probes(*splits["train"], *splits["dev"], *splits["test"], device=device,
                            tol=args.tol, max_iter=args.max_iter)
    _synchronize(device)
    torch_seconds = time.perf_counter() - start
    report["torch"] = {"seconds": torch_seconds, "device": str(device), "l2": ours.l2.tolist(),
                       "test_acc": ours.test_acc.tolist(), "dev_acc": ours.dev_acc.tolist(),
                       "n_iter_max": int(ours.n_iter.max()), "converged": bool(ours.converged.all()),
                       "grid_dev_acc": ours.grid_dev_acc.tolist(), "grid_test_acc": ours.grid_test_acc.tolist()}
    if args.no_sklearn:
        print(f"torch probes on {device}: {torch_seconds:.2f} s; test accuracy per probe:")
        for p, (pooling, layer) in enumerate(index):
            print(f"{pooling:>7} {layer:>5} | l2 {ours.l2[p]:7.0e} | test {ours.test_acc[p] * 100:6.2f}")
        return _write(args, report)
    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    with threadpool_limits(args.threads):  # None: leave BLAS threads as they are
        theirs = _sklearn_probes(splits, probe.L2_GRID, args.tol, args.max_iter)
    sklearn_seconds = time.perf_counter() - start

    difference = np.abs(ours.test_acc - theirs["test_acc"]) * 100
    grid_difference = max(float(np.abs(ours.grid_test_acc - theirs["grid"]["test"]).max()),
                          float(np.abs(ours.grid_dev_acc - theirs["grid"]["dev"]).max())) * 100
    print(f"\n{'pooling':>7} {'layer':>5} | {'l2 torch':>8} {'l2 sk':>8} | "
          f"{'test torch':>10} {'test sk':>8} {'|diff|':>7}")
    for p, (pooling, layer) in enumerate(index):
        print(f"{pooling:>7} {layer:>5} | {ours.l2[p]:8.0e} {theirs['l2'][p]:8.0e} | "
              f"{ours.test_acc[p] * 100:10.2f} {theirs['test_acc'][p] * 100:8.2f} {difference[p]:7.2f}")
    speedup = sklearn_seconds / torch_seconds
    print(f"\nwall time: torch probes {torch_seconds:.2f} s ({len(index)} probes x {len(probe.L2_GRID)} L2 at once, "
          f"L-BFGS iterations max {int(ours.n_iter.max())}, all converged: {bool(ours.converged.all())}); "
          f"scikit-learn {sklearn_seconds:.2f} s ({len(index) * len(probe.L2_GRID)} fits, "
          f"{theirs['not_converged']} not converged)")
    print(f"speed-up x{speedup:.1f}; max |test acc diff| at chosen L2 {difference.max():.2f} points; "
          f"max |dev/test acc diff| over the whole L2 grid {grid_difference:.2f} points")

    report.update({
        "probes": [{"pooling": pooling, "layer": layer} for pooling, layer in index],
        "l2_grid": list(probe.L2_GRID),
        "sklearn": {"seconds": sklearn_seconds, "l2": theirs["l2"].tolist(), "test_acc": theirs["test_acc"].tolist(),
                    "not_converged": theirs["not_converged"], "grid_dev_acc": theirs["grid"]["dev"].tolist(),
                    "grid_test_acc": theirs["grid"]["test"].tolist()},
        "speedup": speedup,
        "max_abs_test_acc_diff_points": float(difference.max()),
        "max_abs_grid_acc_diff_points": grid_difference,
    })
    return _write(args, report)


def _write(args: argparse.Namespace, report: dict) -> int:
    report["load_average_end"] = os.getloadavg()
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
