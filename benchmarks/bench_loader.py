"""Training-loader throughput: crops per second for 0, 1, 2 loader workers.

Usage:
    python benchmarks/bench_loader.py [--data data/demo-te] [--batches 300] [--workers 0 1 2]

Each run builds a fresh loader (as every epoch does: persistent workers are off) and reads
`--batches` batches of `--batch-size` crops of `--segment` seconds, crossing epoch boundaries
through `infinite_batches`. "first batch" is the time to the first batch (worker start-up
included); "steady" counts the remaining batches only. The median of `--repeats` runs is shown.
The scan cache goes to a temporary folder, so the corpus folder is not written to.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from telugu_codec.config import DataConfig
from telugu_codec.data import TrainDataset, build_datasets, infinite_batches

ROOT = Path(__file__).resolve().parent.parent


def run_once(
    train: TrainDataset, cfg: DataConfig, batches: int, seed: int
) -> tuple[float, float, float]:
    """-> (seconds to the first batch, total seconds, steady-state crops per second)."""
    t0 = time.perf_counter()
    it = infinite_batches(train, cfg, seed=seed)
    _, _, batch = next(it)
    t_first = time.perf_counter()
    for _ in range(batches - 1):
        _, _, batch = next(it)
    t_end = time.perf_counter()
    it.close()  # shuts the loader's workers down before the next run
    assert batch.shape == (cfg.batch_size, 1, train.segment)
    steady = (batches - 1) * cfg.batch_size / max(t_end - t_first, 1e-9)
    return t_first - t0, t_end - t0, steady


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "data" / "demo-te"))
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--segment", type=float, default=1.0)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    torch.set_num_threads(1)
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python "
        f"{platform.python_version()}, torch {torch.__version__}"
    )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as cache:
        base = DataConfig(batch_size=args.batch_size, segment_seconds=args.segment)
        train, _, report = build_datasets(
            args.data, base, args.sample_rate, cache_dir=cache, log=lambda s: None
        )
    print(
        f"data: {args.data}: {report.n_train} training files, {report.hours_train:.2f} h; "
        f"batch {args.batch_size} x {args.segment} s at {args.sample_rate} Hz, "
        f"{args.batches} batches per run, median of {args.repeats} runs"
    )
    print()
    print("| workers | first batch (s) | total (s) | crops/s overall | crops/s steady |")
    print("|---:|---:|---:|---:|---:|")
    for workers in args.workers:
        cfg = DataConfig(
            batch_size=args.batch_size, segment_seconds=args.segment, num_workers=workers
        )
        runs = [run_once(train, cfg, args.batches, seed=r) for r in range(args.repeats)]
        first = statistics.median(r[0] for r in runs)
        total = statistics.median(r[1] for r in runs)
        steady = statistics.median(r[2] for r in runs)
        overall = args.batches * args.batch_size / total
        print(f"| {workers} | {first:.3f} | {total:.2f} | {overall:.0f} | {steady:.0f} |")
    print()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
