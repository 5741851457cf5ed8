"""`tokenize` speed (hours of audio per hour) and kill-resume bit-identity (issue 24).

Usage:
    python benchmarks/bench_tokenize.py speed [--data data/demo-te/manifest.tsv] [--threads 2]
        [--config default] [--batch-seconds 60]
    python benchmarks/bench_tokenize.py kills [--kills 10] [--files 24] [--seconds 3]

speed: a randomly initialised codec of `--config` (random weights cost the same as trained
ones) tokenizes `--data` with `--threads` torch threads, in this process; prints audio hours,
wall time, hours per hour (= the real-time factor) and the time spent listing and reading.

kills: an uninterrupted `telugu-codec tokenize` run (a subprocess) into a reference folder,
then runs into a second folder that are SIGKILLed after a uniformly random delay in
(0, reference wall time) and rerun, until `--kills` kills have landed (a run that finishes
before its kill completes the folder, which is compared and started afresh). Every completed
folder must hold the same bytes as the reference (shards, index, skipped list, vocab, plan).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parent.parent


def _load_avg() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def speed(args: argparse.Namespace) -> None:
    from telugu_codec.config import load_config
    from telugu_codec.model.codec import build_codec
    from telugu_codec.tokens.tokenize import tokenize

    torch.set_num_threads(args.threads)
    codec = build_codec(load_config(args.config)).eval().remove_weight_norm()
    print(
        f"codec: {args.config} preset, random weights, {codec.num_parameters() / 1e6:.2f} M "
        f"parameters, {codec.frame_rate:g} frames/s, n_q {codec.max_n_q}; torch threads "
        f"{args.threads}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"load average before: {_load_avg()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if args.limit:  # the first N rows of a manifest
            lines = Path(data).read_text(encoding="utf-8").splitlines()
            root = Path(data).resolve().parent
            head = lines[0].split("\t")
            rows = [ln.split("\t") for ln in lines[1 : args.limit + 1]]
            at = head.index("path")
            for r in rows:
                r[at] = str(root / r[at])
            data = Path(tmp) / "subset.tsv"
            data.write_text("\n".join("\t".join(x) for x in [head, *rows]) + "\n")
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        r = tokenize(
            codec,
            [str(data)],
            Path(tmp) / "out",
            batch_seconds=args.batch_seconds,
            shard_items=args.shard_items,
            log=lambda s: None,
        )
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    hours = r.hours
    print(
        f"{r.rows} files, {hours * 60:.2f} min of audio in {wall:.1f} s wall, {cpu:.1f} s CPU "
        f"(this process, all threads): {hours * 3600 / wall:.0f} h/h wall-clock "
        f"({hours * 3600 / wall:.0f}x real time); {hours * 3600 / cpu:.0f} audio-hours per "
        f"CPU-hour; load average after: {_load_avg()}"
    )


def _corpus(root: Path, files: int, seconds: float) -> Path:
    rng = np.random.default_rng(0)
    for i in range(files):
        n = int(seconds * 16000 * rng.uniform(0.5, 1.5))
        sf.write(root / f"u{i:03d}.wav", (0.1 * rng.standard_normal(n)).astype(np.float32), 16000)
    (root / "broken.wav").write_bytes(b"RIFF" + b"\0" * 40)  # listed in skipped.json
    return root


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".tmp")
    }


def kills(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "corpus").mkdir()
        corpus = _corpus(tmp / "corpus", args.files, args.seconds)
        ckpt = tmp / "codec.safetensors"
        from telugu_codec.config import load_config
        from telugu_codec.model.codec import build_codec

        build_codec(load_config(args.config)).save(ckpt)
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))

        def cmd(out: Path) -> list[str]:
            return [sys.executable, "-m", "telugu_codec", "tokenize", str(corpus), "--out",
                    str(out), "--checkpoint", str(ckpt), "--shard-items", str(args.shard_items),
                    "--threads", "1"]  # fmt: skip

        t0 = time.perf_counter()
        subprocess.run(cmd(tmp / "ref"), env=env, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        ref = _snapshot(tmp / "ref")
        shards = sum(1 for k in ref if k.startswith("tokens-"))
        print(
            f"reference: {args.files} files + 1 broken, {shards} shards, {wall:.1f} s wall "
            f"(process start included); load average {_load_avg()}"
        )
        landed, folders, identical, mid_shard = 0, 0, 0, 0
        out = tmp / "run0"
        while landed < args.kills:
            proc = subprocess.Popen(
                cmd(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            delay = rng.uniform(0, wall)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            if proc.returncode == -signal.SIGKILL:
                landed += 1
                mid_shard += int(any(out.glob(".tokens-*.tmp")))
                print(f"  kill {landed} after {delay:.1f} s", flush=True)
                continue
            if proc.returncode != 0:
                raise SystemExit(f"tokenize failed with status {proc.returncode}")
            folders += 1
            same = _snapshot(out) == ref
            identical += int(same)
            print(f"  folder {folders} complete: {'identical' if same else 'DIFFERENT'}")
            out = tmp / f"run{folders}"
        while True:  # finish the last folder
            r = subprocess.run(cmd(out), env=env, capture_output=True)
            if r.returncode == 0:
                break
        folders += 1
        same = _snapshot(out) == ref
        identical += int(same)
        print(
            f"{landed} kills at random moments ({mid_shard} while a shard was being written); "
            f"{identical}/{folders} resumed folders bit-identical to the uninterrupted run"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--data", default=str(ROOT / "data/demo-te/manifest.tsv"))
    s.add_argument("--config", default="default")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--batch-seconds", type=float, default=60.0)
    s.add_argument("--shard-items", type=int, default=1000)
    s.add_argument("--limit", type=int, default=0, help="only the first N rows of a manifest")
    k = sub.add_parser("kills")
    k.add_argument("--kills", type=int, default=10)
    k.add_argument("--files", type=int, default=24)
    k.add_argument("--seconds", type=float, default=3.0)
    k.add_argument("--shard-items", type=int, default=2)
    k.add_argument("--config", default="default")
    k.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    speed(args) if args.what == "speed" else kills(args)


if __name__ == "__main__":
    main()
