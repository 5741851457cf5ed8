"""`telugu-codec demo`: a thin wrapper over `demo.run_demo`."""

from __future__ import annotations

import argparse

from ..demo import DEMO_PRESET, run_demo
from . import command


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="demo folder (default runs/demo)")
    p.add_argument(
        "--data",
        help="corpus with train/ and val/ (default: the two-voice Telugu corpus in "
        "data/te-2voice, made on the first run; the bundled espeak corpus is data/demo-te)",
    )
    p.add_argument(
        "--minutes",
        type=float,
        help="optional cap on the whole demo; training stops early if it runs out (default: "
        "train to the step budget)",
    )
    p.add_argument("--config", default=DEMO_PRESET, help=f"preset to train (default {DEMO_PRESET})")
    p.add_argument(
        "--max-steps", type=int, help="step budget (default: the preset's train.max_steps)"
    )
    p.add_argument(
        "--init-from",
        metavar="CKPT_OR_NAME",
        help="fine-tune from this codec (e.g. the shipped te-small) instead of from scratch",
    )
    p.add_argument(
        "--no-pretrained",
        action="store_true",
        help="skip scoring the shipped te-small before training",
    )
    p.add_argument("--fresh", action="store_true", help="delete a previous demo run first")
    p.add_argument("--max-eval-files", type=int, help="evaluate on at most this many files")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", help="dotted config overrides")


@command("demo", "train, guard and evaluate a Telugu codec on the bundled corpus", _demo_args)
def cmd_demo(args: argparse.Namespace) -> int:
    run_demo(
        out=args.out,
        data=args.data,
        minutes=args.minutes,
        config=args.config,
        max_steps=args.max_steps,
        fresh=args.fresh,
        max_eval_files=args.max_eval_files,
        overrides=args.overrides,
        progress=not args.no_progress,
        init_from=args.init_from,
        pretrained=not args.no_pretrained,
    )
    return 0
