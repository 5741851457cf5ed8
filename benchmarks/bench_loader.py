"""Training-loader throughput: crops per second from a folder, Parquet and tar shards, for
0, 1, 2 loader workers.

Usage:
    python benchmarks/bench_loader.py [--data data/demo-te/train] [--formats folder parquet tar]
        [--batches 300] [--workers 0 1 2]

The Parquet and tar versions of `--data` are made by `prepare` (16-bit FLAC at the model rate,
`--shard-size` files per shard) in a temporary folder. Each run draws `--batches` batches of
`--batch-size` crops of `--segment` seconds through `data.train_batches`, the trainer's path:
map-style data (folder, Parquet) builds a fresh loader per epoch, crossing epoch boundaries;
tar shards stream through one endless loader. "first batch" is the time to the first batch
(worker start-up included; for tar also the first shuffle buffer); "steady" counts the
remaining batches only. The median of `--repeats` runs is shown. Nothing is held out for
validation, so every format trains on the same files. The scan cache goes to a temporary
folder, so the corpus folder is not written to.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from telugu_codec.config import DataConfig
from telugu_codec.data import build_datasets, train_batches
from telugu_codec.data.prepare import prepare

ROOT = Path(__file__).resolve().parent.parent


def run_once(train: object, cfg: DataConfig, batches: int, seed: int) -> tuple[float, float, float]:
    """-> (seconds to the first batch, total seconds, steady-state crops per second)."""
    t0 = time.perf_counter()
    it = train_batches(train, cfg, seed=seed)
    batch = next(it).audio
    t_first = time.perf_counter()
    for _ in range(batches - 1):
        batch = next(it).audio
    t_end = time.perf_counter()
    it.close()  # shuts the loader's workers down before the next run
    assert batch.shape == (cfg.batch_size, 1, round(cfg.segment_seconds * train.sample_rate))
    steady = (batches - 1) * cfg.batch_size / max(t_end - t_first, 1e-9)
    return t_first - t0, t_end - t0, steady


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "data" / "demo-te" / "train"))
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--segment", type=float, default=1.0)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--formats", nargs="+", default=["folder", "parquet", "tar"])
    p.add_argument("--shard-size", default="32", help="files per Parquet / tar shard")
    args = p.parse_args()

    torch.set_num_threads(1)
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python "
        f"{platform.python_version()}, torch {torch.__version__}"
    )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        base = DataConfig(batch_size=args.batch_size, segment_seconds=args.segment, val_fraction=0)
        sources = {"folder": args.data}
        for fmt in ("parquet", "tar"):
            if fmt in args.formats:
                out = Path(tmp) / fmt
                prepare(args.data, out, fmt, args.shard_size, args.sample_rate, base, log=quiet)
                sources[fmt] = str(out)
        print(
            f"data: {args.data}; batch {args.batch_size} x {args.segment} s at "
            f"{args.sample_rate} Hz, {args.batches} batches per run, median of {args.repeats} "
            f"runs; Parquet and tar made by prepare with {args.shard_size} files per shard"
        )
        print()
        print("| data | workers | first batch (s) | total (s) | crops/s overall | crops/s steady |")
        print("|---|---:|---:|---:|---:|---:|")
        for fmt in args.formats:
            train, _, report = build_datasets(
                sources[fmt], base, args.sample_rate, cache_dir=tmp, log=quiet
            )
            for workers in args.workers:
                cfg = dataclasses.replace(base, num_workers=workers)
                runs = [run_once(train, cfg, args.batches, seed=r) for r in range(args.repeats)]
                first = statistics.median(r[0] for r in runs)
                total = statistics.median(r[1] for r in runs)
                steady = statistics.median(r[2] for r in runs)
                overall = args.batches * args.batch_size / total
                print(
                    f"| {fmt} ({report.n_train} files) | {workers} | {first:.3f} | {total:.2f} | "
                    f"{overall:.0f} | {steady:.0f} |",
                    flush=True,
                )
    print()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def quiet(_: str) -> None:
    pass


if __name__ == "__main__":
    main()
