"""`telugu-codec prepare`: a corpus -> tar or Parquet shards at the codec rate."""

from __future__ import annotations

import argparse

from . import command


def _prepare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="folder, manifest, corpus layout or Parquet/Arrow dataset")
    p.add_argument("out", help="output folder for the shards and index.json")
    p.add_argument("--format", default="tar", choices=("tar", "parquet"), help="shard format")
    p.add_argument(
        "--shard-size",
        default="1000",
        help="files per shard (1000) or bytes per shard (512MB, 1GiB); default 1000 files",
    )
    p.add_argument(
        "--config", default="default", help="preset whose model rate and data checks apply"
    )
    p.add_argument("--sample-rate", type=int, help="resample to this rate (default: the config's)")
    p.add_argument("--prefix", default="train", help="shard names: PREFIX-000000.tar")
    p.add_argument("--workers", type=int, default=0, help="parallel conversions (0: one per CPU)")
    p.add_argument("--force", action="store_true", help="write into a folder with an index")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. data.silence_db=-60")


@command("prepare", "convert a corpus into tar or Parquet shards with an index", _prepare_args)
def cmd_prepare(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..data.prepare import prepare

    cfg = load_config(args.config, args.overrides)
    prepare(
        args.src,
        args.out,
        fmt=args.format,
        shard_size=args.shard_size,
        sample_rate=args.sample_rate or cfg.model.sample_rate,
        cfg=cfg.data,
        prefix=args.prefix,
        workers=args.workers,
        force=args.force,
    )
    return 0
