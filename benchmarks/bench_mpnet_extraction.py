"""Benchmark: all-mpnet-base-v2 feature extraction, length-sorted vs unsorted batching, in one run.

Times :func:`probeft.probing.extract.extract_features` (all 13 hidden states, CLS and mean pooling) on the
first ``--sentences`` training sentences of a SentEval file, once with length-sorted batches (the
default of every probing run) and once in file order (``sort_by_length=False``), alternating the
two modes and keeping each one's best pass. Also reports the first-use assembly of the model from
its PyPI parts, tokens incl. padding per mode, and the largest feature difference between modes.

Run ``python benchmarks/bench_mpnet_extraction.py --help``; see benchmarks/README.md. Exits 0 with
a message when the data file or the ``mpnet`` extra is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from probeft import data, models
from probeft.core.devices import resolve_device
from probeft.core.names import POOLINGS
from probeft.data.locations import DATA_DIR_ENV
from probeft.models import packaged
from probeft.probing import extract


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=os.environ.get(DATA_DIR_ENV) or None,
                        help=f"data directory holding senteval/<task>.txt (default: ${DATA_DIR_ENV})")
    parser.add_argument("--task", default="bigram_shift", help="SentEval probing task")
    parser.add_argument("--model", default=packaged.MPNET_ALIAS,
                        help="model spec (probeft.models.resolve_model)")
    parser.add_argument("--sentences", type=int, default=1000, help="training sentences to extract (first N)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=1, help="timed passes per mode (best one counts)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.sentences < 1 or args.repeats < 1:
        parser.error("--sentences and --repeats must be at least 1")
    return args


def _sentences(args: argparse.Namespace) -> list[str] | None:
    """The first ``--sentences`` training sentences, or None (with a message) when the file is absent."""
    if args.data_dir is None:
        print(f"skipping benchmark: no data dir (pass --data-dir or set ${DATA_DIR_ENV})")
        return None
    try:
        path = data.resolve_probing_file(args.task, args.data_dir, download=False)
    except (FileNotFoundError, ValueError) as error:
        print(f"skipping benchmark: {error}")
        return None
    return data.read_senteval(path, max_train=args.sentences, max_eval=2).train.sentences


def _resolve_seconds(spec: str) -> float | None:
    """Seconds to resolve ``spec`` (the first-use assembly for the MPNet alias), or None when it cannot be."""
    start = time.perf_counter()
    try:
        models.resolve_model(spec)
    except packaged.ModelPartsMissingError as error:
        print(f"skipping benchmark: {error}")
        return None
    return time.perf_counter() - start


def _padded_tokens(lengths: np.ndarray, order: np.ndarray, batch_size: int) -> int:
    """Tokens the model processes with batches taken from ``order``, padding included."""
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return int(sum(len(batch) * lengths[batch].max() for batch in batches))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_modes(args: argparse.Namespace, sentences: list[str]) -> dict:
    """Best seconds per mode (sorted / unsorted), alternating modes so machine load hits both alike."""
    device = resolve_device(args.device)
    model, tokenizer = extract.load_for_extraction(args.model, device)
    settings = {"batch_size": args.batch_size, "max_length": args.max_length, "device": device, "progress": False}
    extract.extract_features(model, tokenizer, sentences[: args.batch_size], **settings)  # warm-up
    seconds: dict[str, float] = {}
    features: dict[str, dict[str, np.ndarray]] = {}
    for _ in range(args.repeats):
        for mode, sort in (("sorted", True), ("unsorted", False)):
            _synchronize(device)
            start = time.perf_counter()
            features[mode] = extract.extract_features(model, tokenizer, sentences, sort_by_length=sort, **settings)
            _synchronize(device)
            seconds[mode] = min(seconds.get(mode, float("inf")), time.perf_counter() - start)
    encoded = tokenizer(sentences, truncation=True, max_length=args.max_length)["input_ids"]
    lengths = np.array([len(ids) for ids in encoded])
    orders = {"sorted": np.argsort(-lengths, kind="stable"), "unsorted": np.arange(len(sentences))}
    return {
        "device": str(device),
        "layers": models.num_hidden_layers(model),
        "seconds": seconds,
        "sentences_per_second": {mode: len(sentences) / s for mode, s in seconds.items()},
        "tokens": int(lengths.sum()),
        "padded_tokens": {mode: _padded_tokens(lengths, order, args.batch_size) for mode, order in orders.items()},
        "max_abs_feature_difference": max(
            float(np.abs(features["sorted"][p] - features["unsorted"][p]).max()) for p in POOLINGS
        ),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    sentences = _sentences(args)
    if sentences is None:
        return 0
    resolve_seconds = _resolve_seconds(args.model)
    if resolve_seconds is None:
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{args.model}: resolved in {resolve_seconds:.1f} s; {len(sentences)} {args.task} sentences, batch size "
          f"{args.batch_size}, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    report = {
        "model": args.model, "task": args.task, "data_dir": str(args.data_dir), "sentences": len(sentences),
        "batch_size": args.batch_size, "max_length": args.max_length, "repeats": args.repeats,
        "resolve_seconds": resolve_seconds, "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(), "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
    }
    report.update(_time_modes(args, sentences))
    rates, padded = report["sentences_per_second"], report["padded_tokens"]
    print(f"extraction on {report['device']} ({report['layers']} layers): sorted {rates['sorted']:.1f} sent/s "
          f"({report['seconds']['sorted']:.1f} s), unsorted {rates['unsorted']:.1f} sent/s "
          f"({report['seconds']['unsorted']:.1f} s), x{rates['sorted'] / rates['unsorted']:.2f}; tokens incl. "
          f"padding {padded['sorted']} vs {padded['unsorted']} ({report['tokens']} real); "
          f"max |feature diff| {report['max_abs_feature_difference']:.2e}")
    report["load_average_end"] = os.getloadavg()
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
