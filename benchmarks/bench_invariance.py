"""Which CPU kernels change their bits with the batch size or the call length, and what the
fixed-order kernels (nn/fixed_order.py) cost the encoder (issue 24).

    PYTHONPATH=src python benchmarks/bench_invariance.py ops           # the kernel survey
    PYTHONPATH=src python benchmarks/bench_invariance.py rtf           # encode speed, 1 thread
    PYTHONPATH=OLD/src python benchmarks/bench_invariance.py rtf       # the same, older code

ops: for convolution shapes of the models, is output sample t of `F.conv1d` (oneDNN) the same
bits in a batch of 8 as alone, and over a 160-sample or a 1-sample call as over the whole
signal? The same for `W @ cols` (MKL sgemm) against the number of columns.

rtf: `Codec.encode` of 10 s of a speech-like signal at 16 kHz, one thread, best of 3, for the
`default` and `tiny-sf` presets (random weights: speed does not depend on them), timed in
process CPU seconds (on a shared machine wall time mostly measures the neighbours). Real-time
factor = audio seconds / CPU seconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F


def same(a: torch.Tensor, b: torch.Tensor) -> str:
    return "same" if torch.equal(a, b) else f"differs ({(a - b).abs().max().item():.1e})"


def bench_ops() -> None:
    torch.manual_seed(0)
    print("| conv (C_in -> C_out, K, dilation, stride) | batch 8 vs 1 | 160 outputs vs whole |"
          " 1 output vs whole |")  # fmt: skip
    print("|---|---|---|---|")
    for ci, co, k, d, s in [(2, 16, 7, 1, 1), (16, 16, 7, 3, 1), (16, 8, 7, 9, 1),
                            (16, 32, 4, 1, 2), (64, 64, 3, 1, 1), (256, 64, 3, 1, 1)]:  # fmt: skip
        w, b = torch.randn(co, ci, k), torch.randn(co)
        pad = (k - 1) * d - (s - 1)
        x = F.pad(torch.randn(8, ci, 2000), (pad, 0))
        full = F.conv1d(x, w, b, s, 0, d)
        one = torch.cat([F.conv1d(x[i : i + 1], w, b, s, 0, d) for i in range(8)])
        n = 160 // s
        tail = F.conv1d(x[:1, :, -(n * s + pad) :], w, b, s, 0, d)
        last = F.conv1d(x[:1, :, -(s + pad) :], w, b, s, 0, d)
        print(f"| {ci} -> {co}, {k}, {d}, {s} | {same(full, one)} | "
              f"{same(full[:1, :, -n:], tail)} | {same(full[:1, :, -1:], last)} |")  # fmt: skip
    print("\n| GEMM (M x K) | columns whose sums differ from a 3000-column product |")
    print("|---|---|")
    for m, k in [(2, 14), (4, 14), (16, 112), (64, 192), (256, 768)]:
        w, x = torch.randn(m, k), torch.randn(k, 3000)
        full = w @ x
        bad = [n for n in range(1, 400) if not torch.equal(w @ x[:, 5 : 5 + n], full[:, 5 : 5 + n])]
        print(f"| {m} x {k} | {bad[:12]}{' ...' if len(bad) > 12 else ''} ({len(bad)} of 399) |")
    from telugu_codec.nn.fixed_order import _gemm

    print("\n| fixed_order GEMM (M x K) | columns whose sums differ |")
    print("|---|---|")
    for m, k in [(1, 14), (2, 14), (3, 28), (16, 112)]:
        w, x = torch.randn(m, k), torch.randn(1, k, 3000)
        full = _gemm(w, x)
        bad = [
            n
            for n in range(1, 400)
            if not torch.equal(_gemm(w, x[..., 5 : 5 + n]), full[..., 5 : 5 + n])
        ]
        print(f"| {m} x {k} | {bad[:12]} ({len(bad)} of 399) |")


def bench_rtf(seconds: float) -> None:
    from telugu_codec.config import load_config
    from telugu_codec.model.codec import build_codec

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 16000)) / 16000
    wav = (0.1 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 3 * t))
           + 0.01 * rng.standard_normal(t.size)).astype(np.float32)  # fmt: skip
    print("| preset | encode s (10 s audio) | RTF |")
    print("|---|---|---|")
    for preset in ("default", "tiny-sf"):
        codec = build_codec(load_config(preset)).eval()
        codec.encode(wav[:16000], 16000)
        times = []
        for _ in range(3):
            t0 = time.process_time()  # CPU time: the machine is shared, wall time is noisy
            codec.encode(wav, 16000)
            times.append(time.process_time() - t0)
        best = min(times)
        print(f"| {preset} | {best:.3f} | {seconds / best:.1f}x |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["ops", "rtf"])
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.what == "ops":
        bench_ops()
    else:
        bench_rtf(args.seconds)


if __name__ == "__main__":
    main()
