"""Benchmark: `probeft make-probing-data` on WikiText-2, its build speed, and a probe of it beside SentEval.

Builds bigram_shift and odd_man_out from ``wikitext-2/wiki.test.raw`` (sentences/s, spaCy parse included for
odd_man_out), then probes an encoder on them with :func:`probeft.probing.run_probing` and on the SentEval subsets
of the same tasks capped to the same split sizes, and prints the test accuracy per layer and pooling side by side.

Run ``python benchmarks/bench_make_probing_data.py --help``; see benchmarks/README.md. Exits 0 with a message
when the data are absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from probeft.data import probing_builders as pb

TASKS = ("bigram_shift", "odd_man_out")


def _shared_data() -> Path:
    return Path(os.environ.get("PROBEFT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=_shared_data() / "wikitext-2" / "wiki.test.raw",
                        help="plain-text corpus (default: $PROBEFT_SHARED_DATA or ../shared/data, wikitext-2)")
    parser.add_argument("--senteval-dir", type=Path, default=_shared_data() / "senteval",
                        help="folder with the SentEval files of the same tasks (compared when present)")
    parser.add_argument("--out-dir", type=Path, default=None, help="where the built tasks go (default: a temp dir)")
    parser.add_argument("--sizes", default="3000,500,500", help="train,dev,test lines of the built tasks")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--model", default="all-minilm-l6-v2", help="model spec; '' to skip probing")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    return parser.parse_args(argv)


def _build(args: argparse.Namespace, out_dir: Path) -> dict:
    """Each task built on its own, so each time includes reading (and parsing) the corpus, as one CLI call would."""
    speeds = {}
    for task in args.tasks:
        started = time.perf_counter()
        manifest = pb.build_probing_data(args.corpus, out_dir / task, [task],
                                         pb.BuildSettings(sizes=pb.parse_sizes(args.sizes)), log=print)
        seconds = time.perf_counter() - started
        speeds[task] = {"sentences": manifest["sentences_read"], "seconds": round(seconds, 2),
                        "sentences_per_second": round(manifest["sentences_read"] / seconds, 1),
                        "spacy": manifest["spacy"]}
        print(f"{task}: {manifest['sentences_read']:,} corpus sentences in {seconds:.1f} s = "
              f"{manifest['sentences_read'] / seconds:,.0f} sentences/s")
    return speeds


def _probe(args: argparse.Namespace, out_dir: Path) -> pd.DataFrame:
    from probeft import probing

    train, dev, _ = pb.parse_sizes(args.sizes)
    frames = []
    for source, files in (("built", {t: out_dir / t / f"{t}.txt" for t in args.tasks}),
                          ("senteval", {t: args.senteval_dir / f"{t}.txt" for t in args.tasks})):
        for task, path in files.items():
            if not path.is_file():
                print(f"{path} absent: {source} {task} not probed")
                continue
            run = probing.run_probing(args.model, [str(path)], None, max_train=train, max_eval=dev,
                                      device=args.device, progress=False, control=False, mdl=False)
            rows = run.rows[(run.rows["metric"] == "accuracy") & (run.rows["split"] == "test")]
            frames.append(rows.assign(source=source, probe_task=task)[["probe_task", "source", "pooling", "layer",
                                                                         "value"]])
    table = pd.concat(frames).pivot_table(index=["probe_task", "pooling", "layer"], columns="source", values="value")
    return table.reset_index()


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if not args.corpus.is_file():
        print(f"corpus {args.corpus} not found; nothing to benchmark")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-probing-data-") as scratch:
        out_dir = args.out_dir or Path(scratch)
        result: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                    "load": os.getloadavg()}, "corpus": str(args.corpus), "sizes": args.sizes,
                        "build": _build(args, out_dir)}
        if args.model:
            table = _probe(args, out_dir)
            print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
            result["model"], result["test_accuracy"] = args.model, table.to_dict(orient="records")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
