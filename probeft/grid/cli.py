"""Command line: ``probeft grid``, ``probeft check``, ``probeft claims``, ``probeft export``, ``probeft demo-data``,
``probeft make-probing-data``, ``probeft book``.

Examples::

    probeft check configs/paper.yaml  # before hours of GPU time: models, data, device, disk, a smoke run
    probeft grid configs/demo.yaml --dry-run
    probeft grid configs/minilm.yaml --data-dir /path/to/data --continue-on-error
    probeft claims runs/demo          # which of the paper's findings hold on a run, with intervals
    probeft export runs/minilm validation/minilm   # a run's small tables, for the "Real weights" pages
    probeft book runs/demo            # copy a run's results into the book and build it
    probeft make-probing-data corpus.txt data/mine --tasks bigram_shift odd_man_out --sizes 2000,500,500
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from probeft.core import files
from probeft.grid import schema

# The heavy modules (pandas, torch through the cell and runner modules, the verdicts) are imported in
# the commands that use them, so `probeft --help` and argument errors answer at once.
REPO_ROOT = Path(__file__).resolve().parents[2]  # probeft.grid.cells.REPO_ROOT, without importing torch
BOOK_INPUT_DIR = REPO_ROOT / "book" / "_generated"


def _grid_command(args: argparse.Namespace) -> int:
    from probeft.grid import cells, runner

    config = schema.load_config(args.config)
    paths = cells.resolve_paths(config, data_dir=args.data_dir, output_dir=args.output_dir)
    if config.demo_data and not args.dry_run:
        if paths.data_dir is None:
            raise ValueError(f"{args.config}: demo_data: true needs a data_dir")
        from probeft.data.demo import write_demo_data

        write_demo_data(paths.data_dir)
        print(f"demo data in {paths.data_dir}")
    try:
        report = runner.run_grid(
            config,
            paths,
            force=args.force,
            continue_on_error=args.continue_on_error,
            dry_run=args.dry_run,
            only_stages=args.stage,
            workers=args.workers,
            scheduler=args.scheduler,
            cells_per_gpu=args.cells_per_gpu,
            rerun_changed=args.rerun_changed,
        )
    except KeyboardInterrupt:
        done, total = runner.finished_cells(config, paths)
        print(f"\nprobeft grid: interrupted; {done} of {total} cells are complete and kept in {paths.output_dir}. "
              "Run the same command again to resume: complete cells are skipped.", file=sys.stderr)
        return 130
    if args.dry_run:
        from probeft.grid import disk, model_check

        problems = model_check.spec_problems({m.name: m.spec for m in config.models})
        for name, problem in problems.items():
            print(f"model {name!r} does not resolve offline: {problem}", file=sys.stderr)
        print(f"would run {len(report.ran)}, skip {len(report.skipped)} (complete), "
              f"{len(report.failed)} not runnable; {len(config.models) - len(problems)} of {len(config.models)} "
              "model specs resolve offline")
        estimate = disk.estimate_grid_cache(config, paths)
        if estimate is not None:
            print(disk.format_estimate(estimate, paths.cache_dir / "features", config.probing.cache_dtype))
        return 0 if report.ok and not problems else 1
    print(f"ran {len(report.ran)}, skipped {len(report.skipped)}, failed {len(report.failed)}")
    return 0 if report.ok else 1


def _check_command(args: argparse.Namespace) -> int:
    from probeft.grid import cells, preflight  # preflight imports every stage: only for this command

    config = schema.load_config(args.config)
    paths = cells.resolve_paths(config, data_dir=args.data_dir, output_dir=args.output_dir)
    if config.demo_data and paths.data_dir is not None:
        from probeft.data.demo import write_demo_data

        write_demo_data(paths.data_dir)  # as `probeft grid` does first; refuses a folder that is not demo data
    rows = preflight.check_config(config, paths, smoke=not args.no_smoke,
                                  log=lambda line: print(line, file=sys.stderr))
    print(preflight.format_table(rows))
    counts = preflight.check_table(rows)["status"].value_counts()
    failed, unverified = int(counts.get(preflight.FAILED, 0)), int(counts.get(preflight.UNVERIFIED, 0))
    print(f"{args.config}: {int(counts.get(preflight.OK, 0))} ok, {failed} failed, {unverified} not verifiable here")
    for row in (r for r in rows if r.status == preflight.FAILED):
        print(f"  failed: {row.area} {row.item}: {row.detail}")
    return 1 if failed else 0


def _claims_command(args: argparse.Namespace) -> int:
    import pandas as pd

    from probeft.verdicts import claims

    run_dir = Path(args.run_dir)
    found = claims.claims_of_run(run_dir, resamples=args.resamples, seed=args.seed,
                                 point_estimates=args.point_estimates)
    print(found.note)
    if found.source != "stored":
        target = run_dir / claims.CLAIMS_FILE
        try:
            existing = claims.load_claims(target)
        except ValueError:  # written with older columns: nothing to keep
            existing = None
        if args.no_write:
            print(f"(not written: --no-write; {target} is unchanged)")
        elif found.source == "point estimates" and existing is not None and (existing["interval"] != "none").any():
            # Point estimates never replace verdicts that have intervals.
            print(f"(not written: {target} holds bootstrap intervals)")
        else:
            files.atomic_write_text(target, found.checks.to_csv(index=False))
    checks = found.checks
    with pd.option_context("display.width", 200, "display.max_colwidth", 70, "display.max_rows", 500):
        summary = claims.summarise(checks)
        summary["finding"] = summary["finding"].map(lambda text: text if len(text) <= 60 else text[:57] + "...")
        print(summary[["claim", "verdict", "mde", "reason", "finding"]].to_string(index=False))
        if args.checks:
            shown = checks[["claim", "model", "scope", "quantity", "direction", "effect", "estimate", "ci_low",
                            "ci_high", "mde", "verdict"]].copy()
            for column in ("effect", "estimate", "ci_low", "ci_high", "mde"):  # no interval: "-", not NaN
                shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{v:.4f}")
            print()
            print(shown.to_string(index=False))
    return 0


def _demo_data_command(args: argparse.Namespace) -> int:
    from probeft.data.demo import write_demo_data

    print(write_demo_data(Path(args.out_dir), seed=args.seed))
    return 0


def _make_probing_data_command(args: argparse.Namespace) -> int:
    from probeft.data import probing_builders as pb  # spaCy is imported only by the tasks that need it

    settings = pb.BuildSettings(sizes=pb.parse_sizes(args.sizes), seed=args.seed, spacy_model=args.spacy_model,
                                word_content_words=args.word_content_words,
                                word_content_rank_start=args.word_content_rank_start,
                                target_band=pb.parse_band(args.target_band, option="--target-band"),
                                odd_man_out_band=pb.parse_band(args.odd_man_out_band, option="--odd-man-out-band"),
                                top_constituents_classes=args.top_constituents_classes)
    manifest = pb.build_probing_data(args.corpus, args.out_dir, args.tasks, settings,
                                     log=lambda line: print(line, file=sys.stderr))
    for entry in manifest["tasks"].values():
        counts = {code: sum(labels.values()) for code, labels in entry["lines"].items()}
        print(f"{Path(args.out_dir) / entry['file']}: {counts['tr']:,} / {counts['va']:,} / {counts['te']:,} "
              f"tr / va / te lines, {len(entry['labels'])} classes")
    print(f"{manifest['sentences_read']:,} corpus sentences in {manifest['seconds']:.1f} s "
          f"({manifest['sentences_per_second']:,} sentences/s); probe them with --data-dir {args.out_dir}")
    return 0


def prepare_book_inputs(run_dir: Path, book_input_dir: Path = BOOK_INPUT_DIR, *, notebooks: bool = True) -> None:
    """Copy a grid run's gathered results, Delta intervals, claims, grid record and provenance for the book.

    Args:
        run_dir: a grid output_dir.
        book_input_dir: the folder written (replaced whole).
        notebooks: also copy the executed notebooks of the complete cells (``notebooks/``); without
            them the folder holds only small tables, what ``probeft export`` commits under ``validation/``.
            The complete cells' per-sentence files (probe predictions, attention statistics) go to
            ``per_sentence/<cell>/``.

    Raises:
        FileNotFoundError: the run has no ``results.csv`` (run the grid first).
    """
    from probeft import report, results
    from probeft.results import attention_sentences, predictions
    from probeft.verdicts import claims, delta_intervals

    results_csv = run_dir / results.RESULTS_FILE
    results.load_results(results_csv)  # validates, and names the file when missing or malformed
    # Built aside and swapped in whole: a failed copy never leaves the book a mixture of two runs.
    with files.atomic_directory(book_input_dir) as staging:
        if notebooks:
            (staging / "notebooks").mkdir()
        shutil.copy2(results_csv, staging / results.RESULTS_FILE)
        for name in ("grid.json", delta_intervals.DELTA_INTERVALS_FILE, claims.CLAIMS_FILE):  # the intervals only where pairable
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, staging / name)
        cells = sorted(run_dir.glob("cells/*/provenance.json"))
        provenance = {p.parent.name: json.loads(p.read_text(encoding="utf-8")) for p in cells}
        # The complete cells' per-sentence files (~80 kB a probing cell, ~1 MB an attention cell): with them an
        # exported run's intervals and verdicts are recomputed exactly as from the run (claims_of_run).
        for cell in (c.parent for c in cells if results.cell_complete(c.parent)):
            for name in (predictions.PREDICTIONS_FILE, attention_sentences.ATTENTION_SENTENCES_FILE):
                if (cell / name).is_file():
                    (staging / results.PER_SENTENCE_DIR / cell.name).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(cell / name, staging / results.PER_SENTENCE_DIR / cell.name / name)
        (staging / "provenance.json").write_text(json.dumps(provenance, indent=1), encoding="utf-8")
        for notebook in sorted((run_dir / "notebooks").glob("*.ipynb")) if notebooks else []:
            if results.cell_complete(run_dir / "cells" / notebook.stem):
                # titled by the cell (stage, model, encoder, task, seed): the book's sidebar lists them by title
                titled = report.retitle_notebook(json.loads(notebook.read_text(encoding="utf-8")),
                                                 report.notebook_title(notebook.stem))
                (staging / "notebooks" / notebook.name).write_text(json.dumps(titled, indent=1), encoding="utf-8")


def _export_command(args: argparse.Namespace) -> int:
    destination = Path(args.dest)
    prepare_book_inputs(Path(args.run_dir).resolve(), destination.resolve(), notebooks=False)
    sizes = {p.name: p.stat().st_size for p in sorted(destination.iterdir())}
    print(f"exported {len(sizes)} files ({sum(sizes.values()) / 1e6:.2f} MB) to {destination}: {', '.join(sizes)}")
    return 0


# What the book's page kernels log on every page (myst-nb gives no way to pass them a log level): the
# transport notice of a local kernel, and the interrupt that stopping an idle kernel logs as an error.
KERNEL_NOISE = ("Kernel is running over TCP without encryption", "KeyboardInterrupt caught in kernel")


def _run_without_kernel_noise(command: list[str]) -> int:
    """Run ``command``, passing its output through except the page kernels' :data:`KERNEL_NOISE` lines."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as process:
        for line in process.stdout:
            if not any(noise in line for noise in KERNEL_NOISE):
                sys.stdout.write(line)
    return process.returncode


def _book_command(args: argparse.Namespace) -> int:
    book_root = Path(args.book_root).resolve()
    if not (book_root / "_toc.yml").is_file():
        raise FileNotFoundError(f"no _toc.yml in --book-root {book_root}")
    prepare_book_inputs(Path(args.run_dir).resolve(), book_root / "book" / "_generated")
    if args.prepare_only:
        return 0
    # --all: Sphinx re-reads only pages whose source changed, but every page depends on the run just copied.
    command = ["jupyter-book", "build", str(book_root), "-W", "-n", "--keep-going", "--all"]
    jb = Path(sys.executable).parent / "jupyter-book"
    if jb.exists():
        command[0] = str(jb)
    code = _run_without_kernel_noise(command)
    index = book_root / "_build" / "html" / "index.html"
    if code == 0 and not index.is_file():
        print(f"jupyter-book reported success but {index} is missing", file=sys.stderr)
        return 1
    if code == 0:
        from probeft.report import html_checks

        # What a reader would see wrong (a cut table, a figure without caption, a clashing number) fails the build.
        problems = html_checks.check_site(index.parent)
        for page, found in problems.items():
            print(f"{page}: " + "; ".join(found), file=sys.stderr)
        if problems:
            print(f"{len(problems)} page(s) of {index.parent} fail the HTML checks", file=sys.stderr)
            return 1
        print(f"report: {index}")
    return code


def build_parser() -> argparse.ArgumentParser:
    """The ``probeft`` argument parser."""
    parser = argparse.ArgumentParser(prog="probeft", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    grid_parser = sub.add_parser("grid", help="run a YAML experiment grid with papermill")
    grid_parser.add_argument("config", help="grid YAML file, e.g. configs/demo.yaml")
    grid_parser.add_argument("--data-dir", help="overrides PROBEFT_DATA_DIR and the config's data_dir")
    grid_parser.add_argument("--output-dir", help="overrides the config's output_dir")
    grid_parser.add_argument("--dry-run", action="store_true", help="list the cells that would run")
    grid_parser.add_argument("--continue-on-error", action="store_true", help="run the other cells after a failure")
    grid_parser.add_argument("--force", action="store_true", help="re-run cells that are already complete")
    grid_parser.add_argument("--rerun-changed", action="store_true",
                             help="run again complete cells whose parameters changed since they ran, and the cells "
                                  "that depend on them (their old outputs are deleted); without it they are an error")
    grid_parser.add_argument("--stage", action="append", choices=schema.STAGES, help="only this stage (repeatable)")
    grid_parser.add_argument("--workers", type=int, metavar="N",
                             help="run the cells on a local Dask cluster of N worker processes (1: one after another "
                                  "in this process; default: one worker per visible CUDA GPU when there are 2+, else 1)")
    grid_parser.add_argument("--scheduler", metavar="ADDRESS",
                             help="run the cells on the workers of a running Dask scheduler, e.g. tcp://host:8786")
    grid_parser.add_argument("--cells-per-gpu", type=int, default=1, metavar="K",
                             help="cells run at once on each GPU worker (default 1)")
    grid_parser.set_defaults(func=_grid_command)

    check_parser = sub.add_parser("check", help="check a grid before running it: models, data, device, disk, and a "
                                  "smoke run of every stage on tiny slices (exit 1 when anything fails)")
    check_parser.add_argument("config", help="grid YAML file, e.g. configs/paper.yaml")
    check_parser.add_argument("--data-dir", help="overrides PROBEFT_DATA_DIR and the config's data_dir")
    check_parser.add_argument("--output-dir", help="overrides the config's output_dir (its pins and free disk)")
    check_parser.add_argument("--no-smoke", action="store_true", help="skip the smoke run of the stages")
    check_parser.set_defaults(func=_check_command)

    claims_parser = sub.add_parser("claims", help="evaluate the paper's findings F1-F9 on a grid run")
    claims_parser.add_argument("run_dir", help="a grid output_dir, e.g. runs/demo")
    claims_parser.add_argument("--checks", action="store_true", help="also print every check with its interval")
    claims_parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    claims_parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    claims_parser.add_argument("--no-write", action="store_true", help="don't (re)write RUN_DIR/claims.csv")
    claims_parser.add_argument("--point-estimates", action="store_true",
                               help="recompute from the results table's point estimates only (no intervals; never "
                                    "replaces a claims.csv with intervals)")
    claims_parser.set_defaults(func=_claims_command)

    demo_parser = sub.add_parser("demo-data", help="write the generated offline demo data set")
    demo_parser.add_argument("out_dir")
    demo_parser.add_argument("--seed", type=int, default=0)
    demo_parser.set_defaults(func=_demo_data_command)

    make_parser = sub.add_parser("make-probing-data", help="build SentEval-format probing tasks from a plain-text "
                                 "corpus (one document or sentence per line), with a record of every change")
    make_parser.add_argument("corpus", help="text file, one document or sentence per line")
    make_parser.add_argument("out_dir", help="new folder (or one this command wrote: replaced whole)")
    make_parser.add_argument("--tasks", nargs="+", required=True, metavar="TASK",
                             help="any of the ten SentEval tasks, e.g. bigram_shift odd_man_out; bigram_shift, "
                                  "sentence_length and word_content need no spaCy")
    make_parser.add_argument("--spacy-model", default="en_core_web_sm",
                             help="installed spaCy pipeline for the tasks that need tags or a parse "
                                  "(default en_core_web_sm, from the extra probing-data)")
    make_parser.add_argument("--seed", type=int, default=0)
    make_parser.add_argument("--sizes", default="100000,10000,10000",
                             help="lines of train,dev,test, shared equally among the classes (default SentEval's)")
    make_parser.add_argument("--word-content-words", type=int, default=1000, help="word_content's classes")
    make_parser.add_argument("--word-content-rank-start", type=int, default=2000,
                             help="word_content's targets follow this many most frequent words")
    make_parser.add_argument("--target-band", default="100-5000", metavar="LOW-HIGH",
                             help="corpus frequency of the target words of past_present, subj_number, obj_number "
                                  "(default SentEval's 100-5000; lower it for a small corpus)")
    make_parser.add_argument("--odd-man-out-band", default="40-400", metavar="LOW-HIGH",
                             help="corpus frequency of odd_man_out's target and replacement words (default 40-400)")
    make_parser.add_argument("--top-constituents-classes", type=int, default=19, metavar="K",
                             help="top_constituents: the K most frequent sequences plus OTHER (default 19)")
    make_parser.set_defaults(func=_make_probing_data_command)

    export_parser = sub.add_parser("export", help="copy a run's small tables (no notebooks, checkpoints, features)")
    export_parser.add_argument("run_dir", help="a grid output_dir, e.g. runs/minilm")
    export_parser.add_argument("dest", help="folder to (re)write, e.g. validation/minilm")
    export_parser.set_defaults(func=_export_command)

    book_parser = sub.add_parser("book", help="build the jupyter-book report from a grid run")
    book_parser.add_argument("run_dir", help="a grid output_dir, e.g. runs/demo")
    book_parser.add_argument("--prepare-only", action="store_true", help="copy inputs, don't build")
    book_parser.add_argument("--book-root", default=str(REPO_ROOT), help="folder with _config.yml and _toc.yml")
    book_parser.set_defaults(func=_book_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; bad input exits 2 with the message on stderr."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, files.LockHeldError) as error:
        print(f"probeft {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
