"""Snake's hand-written backward (`nn.activations._SnakeFn`) against autograd through its formula.

Usage:
    python benchmarks/bench_snake.py [PRESET] [THREADS]

Times one generator step of PRESET (codec forward, its reconstruction losses, backward, AdamW)
with each Snake, interleaved round by round so both see the same machine load, and prints the
medians and their ratio. The discriminators are not part of it (they use LeakyReLU).
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

import telugu_codec.nn.activations as activations
from telugu_codec.config import load_config
from telugu_codec.losses import build_generator_losses
from telugu_codec.model.codec import build_codec

NEW = activations.snake


def formula(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The Snake before the hand-written backward: autograd through x + sin^2(a x) / a."""
    if torch.is_grad_enabled() and (x.requires_grad or alpha.requires_grad):
        return x + (alpha + 1e-9).reciprocal() * torch.sin(alpha * x).pow(2)
    return NEW(x, alpha)


def main() -> None:
    preset = sys.argv[1] if len(sys.argv) > 1 else "tiny-istft"
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    cfg = load_config(preset)
    codec = build_codec(cfg).train()
    losses = build_generator_losses(cfg.loss, cfg.model.sample_rate)
    opt = torch.optim.AdamW(codec.parameters(), 1e-4)
    x = torch.randn(cfg.data.batch_size, 1, int(cfg.data.segment_seconds * cfg.model.sample_rate))
    x *= 0.05

    def step() -> float:
        t = time.perf_counter()
        out = codec(x)
        terms = losses(out.audio, x)
        total = sum(losses.weights[k] * v for k, v in terms.items()) + out.commit_loss
        opt.zero_grad()
        total.backward()
        opt.step()
        return time.perf_counter() - t

    times: dict[str, list[float]] = {"hand-written": [], "formula": []}
    for r in range(12):
        for name, fn in (("hand-written", NEW), ("formula", formula)):
            activations.snake = fn
            dt = step()
            if r >= 2:
                times[name].append(dt)
    activations.snake = NEW
    threads = torch.get_num_threads()
    for name, v in times.items():
        print(f"{preset}, {threads} threads, {name}: {statistics.median(v) * 1000:.0f} ms/step")
    ratio = statistics.median(times["formula"]) / statistics.median(times["hand-written"])
    print(f"speed-up {ratio:.3f}")


if __name__ == "__main__":
    main()
