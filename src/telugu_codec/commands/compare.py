"""`telugu-codec compare`: a thin wrapper over `compare.run_study` (the recipe study)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..compare import run_study
from ..errors import CodecError
from . import command


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--presets",
        required=True,
        help="comma-separated recipes: presets, each with optional +key=value changes, "
        "e.g. l1-vq,dac,tiny,tiny+loss.loudness=0",
    )
    p.add_argument("--data", required=True, help="training audio")
    p.add_argument("--val-data", help="validation audio (default: held-out split of --data)")
    p.add_argument("--out", required=True, help="folder for the runs, table and plot")
    p.add_argument("--minutes", type=float, required=True, help="training budget per recipe")
    p.add_argument(
        "--size",
        default="tiny",
        help="preset whose model size and batch all use; 'own': each preset keeps its own model",
    )
    p.add_argument("--val-every", type=int, help="validation interval in steps")
    p.add_argument("--max-steps", type=int, help="also stop each recipe after this many steps")
    p.add_argument("--jobs", type=int, default=1, help="recipes trained at the same time")
    p.add_argument("--threads", type=int, help="torch threads per recipe (default cores/jobs)")
    p.add_argument("overrides", nargs="*", help="dotted overrides applied to every recipe")


@command(
    "compare", "train several recipes on the same budget and compare their health", _compare_args
)
def cmd_compare(args: argparse.Namespace) -> int:
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    if not presets:
        raise CodecError("--presets needs at least one preset name")
    run_study(
        presets,
        args.data,
        args.out,
        args.minutes,
        size=args.size,
        val_data=args.val_data,
        val_every=args.val_every,
        max_steps=args.max_steps,
        overrides=args.overrides,
        jobs=args.jobs,
        threads=args.threads,
    )
    print(f"wrote {Path(args.out) / 'compare.md'} and compare.png")
    return 0
