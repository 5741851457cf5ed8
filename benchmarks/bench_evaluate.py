"""Evaluation throughput: files/s and where the time goes (codec, baselines, metrics).

Runs `telugu_codec.evaluation.evaluate.evaluate` over a folder (default: the bundled corpus's
val split) with a checkpoint (default: a freshly initialised codec of the `default` preset,
whose speed is that of a trained one) and prints the time split plus the summary table.

    .venv/bin/python benchmarks/bench_evaluate.py [--data data/demo-te/val] [--threads 1]
        [--checkpoint CKPT] [--max-files N] [--baselines opus,codec2] [--metrics default]
        [--out /tmp/bench_evaluate]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from telugu_codec.config import load_config
from telugu_codec.evaluation.evaluate import evaluate
from telugu_codec.model.codec import build_codec

ROOT = Path(__file__).resolve().parents[1]


def _per_metric_times(data: str, which: str, n_files: int) -> str:
    """Mean seconds per call of each metric on (file + noise at 20 dB SNR, file) pairs."""
    import numpy as np

    from telugu_codec.audio import load_audio
    from telugu_codec.evaluation.evaluate import list_inputs
    from telugu_codec.metrics import METRICS, resolve_metrics

    paths = list_inputs(data)[0][:n_files]
    wavs = [load_audio(p, 16000).wav for p in paths]
    rng = np.random.default_rng(0)
    pairs = [(w + 0.1 * np.sqrt(np.mean(w**2)) * rng.standard_normal(w.shape), w) for w in wavs]
    pairs = [(p.astype(np.float32), t) for p, t in pairs]
    lines = [f"\nper metric, mean of {len(pairs)} files (first call excluded):", "| metric | ms |"]
    lines.append("|---|---|")
    for name in resolve_metrics(which):
        spec = METRICS[name]
        spec.fn(*pairs[0], 16000)  # warm-up: model loading, JIT, filter design
        t0 = time.perf_counter()
        for pred, target in pairs:
            spec.fn(pred, target, 16000)
        lines.append(f"| {name} | {(time.perf_counter() - t0) / len(pairs) * 1000:.1f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "data" / "demo-te" / "val"))
    p.add_argument("--checkpoint", default=None, help="default: a random `default` codec")
    p.add_argument("--config", default="default", help="preset for the random codec")
    p.add_argument("--bitrates", default="1.5,3,6")
    p.add_argument("--baselines", default="opus,codec2")
    p.add_argument("--metrics", default="default")
    p.add_argument("--max-files", type=int, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--out", default=None, help="report folder (default: a temp folder)")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory(prefix="bench-eval-")
    ckpt = args.checkpoint
    if ckpt is None:
        ckpt = build_codec(load_config(args.config, [])).save(Path(tmp.name) / "codec.safetensors")
    out = Path(args.out) if args.out else Path(tmp.name) / "report"
    t0 = time.perf_counter()
    report = evaluate(
        ckpt,
        args.data,
        out,
        bitrates=[float(b) for b in args.bitrates.split(",")],
        baselines=args.baselines,
        max_files=args.max_files,
        metrics=args.metrics,
        force=True,
        progress=False,
    )
    wall = time.perf_counter() - t0
    t = report.timings
    n = report.files_evaluated
    audio_s = t["audio_seconds"]
    n_codec = sum(1 for s in report.summaries if s.family == "codec")
    n_base = len(report.summaries) - n_codec
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, ")
    print(f"         {torch.get_num_threads()} torch threads, load average {os.getloadavg()}")
    print(f"data: {args.data}: {n} files, {audio_s:.1f} s of audio; checkpoint {ckpt}")
    print(f"systems: {n_codec} codec bitrates + {n_base} baseline settings; metrics {args.metrics}")
    print(f"throughput: {n / wall:.3f} files/s, {audio_s / wall:.2f} audio-s/s ({wall:.1f} s)")
    print("| stage | seconds | share | per file (s) | x real time |")
    print("|---|---|---|---|---|")
    for stage in ("load", "codec", "baselines", "metrics", "write"):
        sec = t.get(stage, 0.0)
        speed = f"{audio_s / sec:.1f}" if sec > 0 else "-"
        print(f"| {stage} | {sec:.2f} | {sec / wall:.0%} | {sec / max(n, 1):.3f} | {speed} |")
    if n_codec and t["codec"] > 0:
        print(f"codec encode+bytes+decode: {audio_s * n_codec / t['codec']:.1f}x real time")
    print(_per_metric_times(args.data, args.metrics, min(n, 10)))
    print(f"\nreport: {out / 'report.md'}\n")
    md = (out / "report.md").read_text()
    print(md.split("\n![")[0])
    tmp.cleanup()


if __name__ == "__main__":
    main()
