"""The source of the source-filter decoder: a band-limited harmonic pulse train and noise.

From per-frame pitch (the bitstream's side channel, pitch.py) to audio-rate excitation:

- f0 and voicing are linearly interpolated between the frames' anchor samples (the centres of
  the tracker's analysis windows), unvoiced frames holding the last voiced f0;
- the phase is the running sum of 2 pi f0 / sr in float64 (continuous across frames, exact
  over hours; a stream carries it across calls as `phase0`);
- the pulse train is sum_{k=1..K} cos(k phi) with K = floor(sr / 2 / f0), every harmonic up to
  Nyquist, in closed form (the Dirichlet kernel: sin((K + 1/2) phi) / (2 sin(phi / 2)) - 1/2),
  scaled to unit RMS and multiplied by the voicing;
- the noise is a fixed table of white Gaussian noise indexed by absolute sample position, so
  decoding is deterministic and a streamed decode equals an offline one.

NSF (Wang et al. 2019) and SiFi-GAN (Yoneyama et al. 2023) drive a neural filter with a sine or
pulse source from F0; DDSP (Engel et al. 2020) sums harmonics with noise; FARGAN conditions on a
pitch-phase embedding.
"""

from __future__ import annotations

import math

import torch
from torch import nn

NOISE_TABLE = 1 << 16  # samples of the noise table (4.1 s at 16 kHz)
NOISE_SEED = 20261202


def interpolate_frames(values: torch.Tensor, hop: int, offset: float, length: int) -> torch.Tensor:
    """(B, F) per-frame values anchored at samples offset + f * hop -> (B, length) float64.

    Linear between anchors, held before the first and after the last. Sample n depends on the
    frames whose anchors bracket it, i.e. on at most one frame after the one it lies in.
    """
    b, n = values.shape
    v = values.double()
    pos = (torch.arange(length, device=values.device, dtype=torch.float64) - offset) / hop
    pos = pos.clamp(0, max(n - 1, 0))
    i0 = pos.floor().long().clamp(max=max(n - 2, 0))
    frac = (pos - i0).clamp(0, 1) if n > 1 else torch.zeros_like(pos)
    i1 = (i0 + 1).clamp(max=n - 1)
    return v[:, i0] * (1 - frac) + v[:, i1] * frac


def phase_increment(f0_hz: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """(B, T) f0 -> (B, T) float64 radians per sample (what the pulse train's phase adds)."""
    return (2 * math.pi / sample_rate) * f0_hz.double().clamp(min=1.0, max=sample_rate / 2)


def harmonic_source(
    f0_hz: torch.Tensor, voicing: torch.Tensor, phase0: torch.Tensor | None, sample_rate: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Band-limited pulse train.

    Args:
        f0_hz: (B, T) float64 instantaneous f0 (never 0: unvoiced parts hold a value).
        voicing: (B, T) float in [0, 1].
        phase0: (B,) float64 phase before the first sample (None = 0).
        sample_rate: Hz.

    Returns:
        ((B, T) float32 excitation of unit RMS where voiced, (B,) float64 phase after the last
        sample, modulo 2 pi).
    """
    f0 = f0_hz.clamp(min=1.0, max=sample_rate / 2)
    phase = torch.cumsum(phase_increment(f0, sample_rate), dim=-1)  # float64: exact over hours
    if phase0 is not None:
        phase = phase + phase0.to(phase)[:, None]
    phase = torch.remainder(phase, 2 * math.pi)
    end = phase[:, -1] if phase.shape[-1] else torch.zeros(f0.shape[0], dtype=torch.float64)
    ph = phase.float()  # in [0, 2 pi): float32 is enough from here on
    k = torch.floor(0.5 * sample_rate / f0).float().clamp(min=1)
    half = torch.sin(0.5 * ph)
    near = half.abs() < 1e-4
    dirichlet = torch.sin((k + 0.5) * ph) / torch.where(near, torch.ones_like(half), 2 * half)
    pulses = torch.where(near, k, dirichlet - 0.5)  # sum_{k=1..K} cos(k phi)
    exc = pulses * torch.rsqrt(k / 2) * voicing.float()
    return exc, end


class NoiseTable(nn.Module):
    """White Gaussian noise of unit RMS indexed by absolute sample position (deterministic)."""

    def __init__(self, size: int = NOISE_TABLE, seed: int = NOISE_SEED):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("table", torch.randn(size, generator=g), persistent=False)

    def forward(self, offsets: torch.Tensor, length: int) -> torch.Tensor:
        """(B,) int64 start positions -> (B, length) noise."""
        n = torch.arange(length, device=offsets.device)
        idx = torch.remainder(offsets.long()[:, None] + n[None], self.table.numel())
        return self.table[idx]
