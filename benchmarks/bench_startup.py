"""Start-up time of `build_datasets` for many short files: folder (first and second run),
manifest with durations, tar shards and Parquet made from the same files by `prepare`.

Usage:
    python benchmarks/bench_startup.py [--files 100000] [--seconds 0.5] [--root /tmp/bench-startup]

Writes `--files` noise files of `--seconds` (16 kHz, 16-bit wav) in folders of 1000 under
`--root` (kept between runs: delete it yourself), then times, each in a fresh subprocess so no
import or page-cache state of one step helps another step's Python objects:

1. folder, first run: discovery + the parallel probe of every file (no scan cache);
2. folder, second run: discovery + the scan cache;
3. a manifest (TSV) with durations: no probe;
4. `prepare` to tar shards and to Parquet (not start-up; shown for scale);
5. the tar shards (brace pattern + index.json): no probe, only the validation members read;
6. the Parquet folder: footers and the small columns read, no audio.

"start-up" is the wall time of `build_datasets` plus the first training batch; the file
system's page cache is warm after step 1 (the files were just written), as on a machine that
trains repeatedly from local disk.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from telugu_codec.config import DataConfig
from telugu_codec.data import build_datasets, train_batches
t_import = time.perf_counter()
cfg = DataConfig(batch_size=8, segment_seconds=0.25, num_workers=0, scan_workers={workers})
train, val, report = build_datasets({data!r}, cfg, 16000, cache_dir={cache!r}, log=lambda m: None)
t_built = time.perf_counter()
batch = next(train_batches(train, cfg, seed=0))
t_batch = time.perf_counter()
print(json.dumps({{"import": t_import - t0, "build": t_built - t_import,
                  "first_batch": t_batch - t_built, "train": report.n_train,
                  "layout": report.layout}}))
"""


def make_files(root: Path, n: int, seconds: float) -> float:
    """Write n 16-bit wav files (skips those already there); returns seconds spent.

    One header is made with soundfile and reused: the files differ only in their samples.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    base = (rng.standard_normal(int(16000 * seconds)) * 0.05 * 32767).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, base, 16000, format="WAV", subtype="PCM_16")
    header = buf.getvalue()[: -base.nbytes]
    for i in range(n):
        path = root / f"d{i // 1000:03d}" / f"u{i:06d}.wav"
        if i % 1000 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(header + np.roll(base, i * 37).tobytes())
    return time.perf_counter() - t0


def timed(data: str, cache: str, workers: int) -> dict:
    code = CHILD.format(data=data, cache=cache, workers=workers)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["wall"] = wall
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=100_000)
    p.add_argument("--seconds", type=float, default=0.5)
    p.add_argument("--root", default="/tmp/bench-startup")
    p.add_argument("--scan-workers", type=int, default=0, help="data.scan_workers (0: default)")
    p.add_argument("--shard-size", default="1000")
    p.add_argument(
        "--steps",
        nargs="+",
        default=["folder", "manifest", "tar", "parquet"],
        help="which rows to measure (the manifest is always written: prepare reads it)",
    )
    args = p.parse_args()

    root = Path(args.root)
    folder, cache = root / "folder", root / f"cache-{args.files}"
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}"
    )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    made = make_files(folder, args.files, args.seconds)
    print(f"{args.files} files of {args.seconds} s at 16 kHz in {folder} (written in {made:.0f} s)")
    rows = []

    def row(name: str, res: dict) -> None:
        rows.append((name, res))
        print(
            f"| {name} | {res['build']:.1f} | {res['first_batch']:.2f} | "
            f"{res['build'] + res['first_batch']:.1f} | {res['train']} |",
            flush=True,
        )

    print()
    print("| data | build_datasets (s) | first batch (s) | start-up (s) | training items |")
    print("|---|---:|---:|---:|---:|")
    if "folder" in args.steps:
        if cache.exists():
            for f in cache.iterdir():
                f.unlink()
        first = timed(str(folder), str(cache), args.scan_workers)
        row("folder, first run (probe every file)", first)
        row("folder, second run (scan cache)", timed(str(folder), str(cache), args.scan_workers))

    manifest = root / f"manifest-{args.files}.tsv"
    if not manifest.exists():
        lines = ["path\tduration"]
        lines += [f"{p}\t{args.seconds}" for p in sorted(folder.rglob("*.wav"))[: args.files]]
        manifest.write_text("\n".join(lines) + "\n")
    if "manifest" in args.steps:
        row("manifest with durations (no probe)", timed(str(manifest), str(cache), 0))

    from telugu_codec.config import DataConfig
    from telugu_codec.data.prepare import prepare

    for fmt in [f for f in ("tar", "parquet") if f in args.steps]:
        out = root / f"{fmt}-{args.files}"
        if not (out / "index.json").exists():
            t0 = time.perf_counter()
            prepare(manifest, out, fmt, args.shard_size, 16000, DataConfig(), log=lambda m: None)
            print(f"(prepare --format {fmt}: {time.perf_counter() - t0:.0f} s)")
    if "tar" in args.steps:
        index = json.loads((root / f"tar-{args.files}" / "index.json").read_text())
        n = len(index["shards"])
        spec = str(root / f"tar-{args.files}" / f"train-{{000000..{n - 1:06d}}}.tar")
        row(f"tar shards, {n} x {args.shard_size} (index.json)", timed(spec, str(cache), 0))
    if "parquet" in args.steps:
        data = str(root / f"parquet-{args.files}")
        row("Parquet folder (footers + small columns)", timed(data, str(cache), 0))
    print()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
