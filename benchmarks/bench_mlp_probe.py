"""Benchmark: batched MLP probes (probeft.probing.probe_mlp) vs scikit-learn's MLPClassifier, time and accuracy.

Both see the same features (standardised with the train statistics), the same hidden layer (50 sigmoid units),
optimiser (Adam, lr 1e-3, batch 64) and L2 settings, and choose each probe's setting on dev. What differs is
what each library does by itself: probeft trains all probes x settings at once, stops each MLP on dev accuracy
(SentEval's rule) and keeps its best dev epoch; scikit-learn trains one MLP per probe and setting and stops on
its training loss (its default, ``n_iter_no_change=10``, at most 200 epochs). scikit-learn has no dropout, so
the compared grid is the dropout-0 part of :data:`probeft.probing.probe_mlp.MLP_GRID` (weight decay 1e-4 and
1e-2); its ``alpha`` is ``weight_decay * batch_size`` (it divides the penalty by the batch size). probeft's
full grid (with dropout) is timed too.

Features: synthetic by default (``P`` probes of ``D`` Gaussian features, labels of a random one-hidden-layer
teacher, so a linear probe falls short); with ``--real``, all-MiniLM-L6-v2 features of a SentEval task (all
layers x CLS/mean pooling) when the data (``--data-dir``, ``$PROBEFT_DATA_DIR``, else ``$PROBEFT_SHARED_DATA``
or ``../shared/data``) and the model are available; it exits 0 with a message otherwise.

Run ``python benchmarks/bench_mlp_probe.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from probeft.core.devices import resolve_device
from probeft.probing import probe, probe_mlp

REPO_ROOT = Path(__file__).resolve().parent.parent


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", action="store_true", help="MiniLM features of a SentEval task instead of synthetic")
    parser.add_argument("--probes", type=int, default=8, help="synthetic: number of probes P")
    parser.add_argument("--dim", type=int, default=64, help="synthetic: feature width D")
    parser.add_argument("--train", type=int, default=2000, help="train examples (real: cap)")
    parser.add_argument("--eval", type=int, default=500, help="dev and test examples each (real: cap)")
    parser.add_argument("--data-dir", type=Path, default=None, help="real: data folder with senteval/<task>.txt")
    parser.add_argument("--task", default="bigram_shift", help="real: SentEval task")
    parser.add_argument("--model", default="all-minilm-l6-v2", help="real: model spec")
    parser.add_argument("--cache-dir", type=Path, default=None, help="real: feature cache root")
    parser.add_argument("--device", default="cpu", help="device of the probeft probes (and of extraction)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch and scikit-learn's BLAS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-sklearn", action="store_true", help="skip the scikit-learn baseline")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    return parser.parse_args(argv)


def _synthetic(args: argparse.Namespace) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """``P`` probes of Gaussian features; label = sign of ``(x.a)(x.b) + 0.5 x.c`` (an interaction a linear probe
    misses, plus a linear part it gets), read through a random rotation per probe (same information, other basis)."""
    rng = np.random.default_rng(args.seed)
    n = {"train": args.train, "dev": args.eval, "test": args.eval}
    a, b, c = (rng.normal(size=args.dim) / np.sqrt(args.dim) for _ in range(3))
    rotations = [np.linalg.qr(rng.normal(size=(args.dim, args.dim)))[0] for _ in range(args.probes)]
    splits = {}
    for split, size in n.items():
        x = rng.normal(size=(size, args.dim))
        labels = ((x @ a) * (x @ b) + 0.5 * (x @ c) > 0).astype(np.int64)
        splits[split] = (np.stack([(x @ r).astype(np.float32) for r in rotations]), labels)
    return splits, [f"probe {p}" for p in range(args.probes)]


def _real(args: argparse.Namespace) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]] | None:
    """MiniLM features of ``args.task`` (all layers x poolings), or None with a message when unavailable."""
    from probeft import data
    from probeft.data.locations import DATA_DIR_ENV
    from probeft.probing import extract

    data_dir = args.data_dir
    if data_dir is None and not os.environ.get(DATA_DIR_ENV):
        data_dir = Path(os.environ.get("PROBEFT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    try:
        path = data.resolve_probing_file(args.task, data_dir, download=False)
    except (FileNotFoundError, ValueError) as error:
        print(f"skipping the real-feature benchmark: {error}")
        return None
    probing = data.read_senteval(path, max_train=args.train, max_eval=args.eval)
    root = os.environ.get("PROBEFT_CACHE")
    cache = args.cache_dir or (Path(root).expanduser() if root else Path.home() / ".cache" / "probeft") / "features"
    try:
        features = extract.extract_probing_features(args.model, probing, cache_dir=cache, device=args.device,
                                                    progress=True)
    except (OSError, ValueError, ImportError) as error:
        print(f"skipping the real-feature benchmark: model {args.model!r} not available ({error})")
        return None
    stacked = {split: extract.stack_probes(features[split]) for split in extract.SPLITS}
    names = [f"{pooling} {layer}" for pooling, layer in stacked["train"][1]]
    return {split: (stacked[split][0], probing.split(split).labels) for split in extract.SPLITS}, names


def _sklearn(splits: dict[str, tuple[np.ndarray, np.ndarray]], grid: list[probe_mlp.MLPSetting], seed: int,
             batch_size: int = 64) -> dict:
    """One MLPClassifier per probe and setting; the setting with the best dev accuracy (first on ties) per probe."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    standardised = probe.standardise_features({split: x for split, (x, _) in splits.items()})
    xs = {split: standardised.splits[split].numpy() for split in splits}
    ys = {split: y for split, (_, y) in splits.items()}
    num_probes = xs["train"].shape[0]
    accuracy = {split: np.zeros((num_probes, len(grid))) for split in splits}
    epochs = np.zeros((num_probes, len(grid)), dtype=np.int64)
    for p in range(num_probes):
        for g, setting in enumerate(grid):
            classifier = MLPClassifier(hidden_layer_sizes=(setting.hidden,), activation="logistic", solver="adam",
                                       alpha=setting.weight_decay * batch_size, batch_size=batch_size,
                                       learning_rate_init=1e-3, max_iter=200, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                classifier.fit(xs["train"][p], ys["train"])
            epochs[p, g] = classifier.n_iter_
            for split in splits:
                accuracy[split][p, g] = float(np.mean(classifier.predict(xs[split][p]) == ys[split]))
    chosen = np.argmax(np.round(accuracy["dev"], 12), axis=1)
    rows = np.arange(num_probes)
    return {"test_acc": accuracy["test"][rows, chosen], "dev_acc": accuracy["dev"][rows, chosen], "epochs": epochs,
            "chosen": chosen}


def _timed(function, device: torch.device):  # noqa: ANN001, ANN202 - a small timing helper
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = _real(args) if args.real else _synthetic(args)
    if loaded is None:
        return 0
    splits, names = loaded
    device = resolve_device(args.device)
    sizes = {split: int(y.shape[0]) for split, (_, y) in splits.items()}
    dim = int(splits["train"][0].shape[2])
    print(f"{'MiniLM ' + args.task if args.real else 'synthetic'} features: {len(names)} probes, D={dim}, sizes {sizes}; "
          f"device {device}; torch threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}")
    compared = [s for s in probe_mlp.MLP_GRID if s.dropout == 0.0]
    arrays = [a for split in ("train", "dev", "test") for a in splits[split]]
    linear, linear_seconds = _timed(lambda: probe.fit_probes(*arrays, device=device), device)
    ours, ours_seconds = _timed(lambda: probe_mlp.fit_mlp_probes(*arrays, grid=compared, seed=args.seed,
                                                                 device=device), device)
    full, full_seconds = _timed(lambda: probe_mlp.fit_mlp_probes(*arrays, seed=args.seed, device=device), device)
    report = {"features": "real" if args.real else "synthetic", "task": args.task if args.real else None,
              "probes": names, "dim": dim, "sizes": sizes, "device": str(device), "platform": platform.platform(),
              "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg(),
              "linear": {"seconds": linear_seconds, "test_acc": linear.test_acc.tolist()},
              "probeft_mlp": {"seconds": ours_seconds, "grid": [vars(s) for s in compared],
                              "test_acc": ours.test_acc.tolist(), "epochs_max": int(ours.epochs.max())},
              "probeft_mlp_full_grid": {"seconds": full_seconds, "grid": [vars(s) for s in probe_mlp.MLP_GRID],
                                        "test_acc": full.test_acc.tolist()}}
    theirs = None
    if not args.no_sklearn:
        from threadpoolctl import threadpool_limits

        start = time.perf_counter()
        with threadpool_limits(args.threads):
            theirs = _sklearn(splits, compared, args.seed)
        report["sklearn"] = {"seconds": time.perf_counter() - start, "test_acc": theirs["test_acc"].tolist(),
                             "epochs_max": int(theirs["epochs"].max())}
    header = f"{'probe':>10} | {'linear':>6} | {'probeft MLP':>11} | {'full grid':>9}"
    print(header + (f" | {'sklearn MLP':>11}" if theirs else ""))
    for p, name in enumerate(names):
        line = (f"{name:>10} | {100 * linear.test_acc[p]:6.1f} | {100 * ours.test_acc[p]:11.1f} | "
                f"{100 * full.test_acc[p]:9.1f}")
        print(line + (f" | {100 * theirs['test_acc'][p]:11.1f}" if theirs else ""))
    print(f"mean test accuracy: linear {100 * linear.test_acc.mean():.1f}, probeft MLP {100 * ours.test_acc.mean():.1f} "
          f"(full grid {100 * full.test_acc.mean():.1f})"
          + (f", scikit-learn MLP {100 * theirs['test_acc'].mean():.1f}" if theirs else ""))
    print(f"wall time: linear {linear_seconds:.1f} s; probeft MLP {ours_seconds:.1f} s ({len(names)} probes x "
          f"{len(compared)} settings at once; full grid of {len(probe_mlp.MLP_GRID)}: {full_seconds:.1f} s)"
          + (f"; scikit-learn {report['sklearn']['seconds']:.1f} s ({len(names) * len(compared)} fits, "
             f"x{report['sklearn']['seconds'] / ours_seconds:.1f})" if theirs else ""))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
