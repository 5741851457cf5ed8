"""`telugu-codec evaluate` and `telugu-codec report`: thin wrappers over the evaluation."""

from __future__ import annotations

import argparse

from . import command


def _floats(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected numbers like 1.5,3,6, got {text!r}") from e


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="codec file, checkpoint or run folder")
    p.add_argument("--data", required=True, help="folder of audio files, manifest or one file")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument(
        "--bitrates",
        type=_floats,
        default=None,
        help="codec bitrates in kbps, e.g. 1.5,3,6 (default: those of 1.5/3/6 the model can do)",
    )
    p.add_argument(
        "--baselines", default="opus,codec2", help="comma-separated: opus, codec2, or none"
    )
    p.add_argument("--max-files", type=int, default=None, help="evaluate at most N files")
    p.add_argument(
        "--metrics",
        default=None,
        help=(
            "comma-separated metric names, 'default' or 'all' (adds DNSMOS, ViSQOL and "
            "pesq_split: PESQ-WB with only the codec's magnitudes, or only its phase)"
        ),
    )
    p.add_argument("--examples", type=int, default=2, help="write decoded audio for N files")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true", help="overwrite an existing report")


@command("evaluate", "score a checkpoint against Opus and Codec2 on a set of files", _evaluate_args)
def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..evaluation.evaluate import evaluate
    from ..evaluation.report import render_markdown

    report = evaluate(
        args.checkpoint,
        args.data,
        args.out,
        bitrates=args.bitrates,
        baselines=args.baselines,
        max_files=args.max_files,
        metrics=args.metrics,
        n_examples=args.examples,
        force=args.force,
        progress=not args.no_progress,
    )
    print(render_markdown(report).split("\n![")[0].rstrip())
    print(f"\nwrote {report.paths['markdown']} (and report.json, per_file.csv, PNGs, audio/)")
    print(f"listen: {report.paths['html']} (a blind test: telugu-codec listen {args.out})")
    return 0


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="training run folder holding metrics.jsonl")
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/report)")


@command("report", "plot a training run's metrics.jsonl into PNGs and report.md", _report_args)
def cmd_report(args: argparse.Namespace) -> int:
    from ..evaluation.run_report import report_run

    path = report_run(args.run_dir, args.out)
    print(f"wrote {path}")
    return 0
