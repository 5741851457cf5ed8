"""Forward + backward time and peak memory of each discriminator family on CPU.

Usage:
    python benchmarks/bench_discriminators.py [--batch 8] [--seconds 1.0] [--repeats 3]

What is measured, per family at its default config (`DiscriminatorConfig()` fields):
- time: one discriminator update's worth of compute on one batch: forward of a (B, 1, T)
  waveform through every sub-discriminator, a scalar loss (sum of the logits' means) and
  backward into the parameters (the input needs no gradient). Median of `--repeats` runs after
  one warm-up run, `torch.set_num_threads(--threads)`.
- memory: torch's CPU allocator keeps no statistics and `tracemalloc` does not see its
  allocations (they bypass Python's allocator), so each family runs in a fresh process and we
  report the growth of the process's peak resident set size (``ru_maxrss``) across the first
  forward + backward, after the model, its input and torch itself are loaded. This is the extra
  memory the step needed at its peak (activations, feature maps, gradients); it can
  under-count by whatever freed memory the allocator reused.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import statistics
import time

import torch

from telugu_codec.config import DiscriminatorConfig
from telugu_codec.model.discriminators import Discriminators

FAMILIES = ("msd", "mpd", "stftd", "mrd")


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _step(disc: Discriminators, wav: torch.Tensor) -> None:
    disc.zero_grad(set_to_none=True)
    outs = disc(wav)
    loss = torch.stack([o.logits.mean() for o in outs]).sum()
    loss.backward()


def _bench_one(kind: str, batch: int, samples: int, repeats: int, threads: int) -> dict:
    """Run in a fresh process: build one family, measure memory then time."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = DiscriminatorConfig(kinds=(kind,))
    disc = Discriminators(cfg, sample_rate=16000)
    wav = 0.1 * torch.randn(batch, 1, samples)
    params = sum(p.numel() for p in disc.parameters())
    rss_before = _maxrss_mib()
    _step(disc, wav)  # also the warm-up
    peak_growth = _maxrss_mib() - rss_before
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _step(disc, wav)
        times.append(time.perf_counter() - t0)
    return {
        "kind": kind,
        "subs": len(disc.names),
        "params": params,
        "ms": 1000 * statistics.median(times),
        "ms_min": 1000 * min(times),
        "peak_mib": peak_growth,
        "rss_mib": _maxrss_mib(),
    }


def _worker(args: tuple, queue: mp.Queue) -> None:
    queue.put(_bench_one(*args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kinds", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    args = parser.parse_args()
    samples = int(args.seconds * args.sample_rate)

    load_before = os.getloadavg()
    ctx = mp.get_context("spawn")
    rows = []
    for kind in args.kinds:
        queue = ctx.Queue()
        proc = ctx.Process(
            target=_worker,
            args=((kind, args.batch, samples, args.repeats, args.threads), queue),
        )
        proc.start()
        rows.append(queue.get())
        proc.join()

    print(
        f"batch {args.batch} x {args.seconds:g} s @ {args.sample_rate} Hz, "
        f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or 'cpu'}, "
        f"median of {args.repeats} after 1 warm-up"
    )
    print(f"load average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print(
        "| family | sub-discriminators | parameters | fwd+bwd ms (median) | fwd+bwd ms (min) "
        "| peak RSS growth MiB | process peak RSS MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['kind']} | {r['subs']} | {r['params'] / 1e6:.2f} M | {r['ms']:.0f} "
            f"| {r['ms_min']:.0f} | {r['peak_mib']:.0f} | {r['rss_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
