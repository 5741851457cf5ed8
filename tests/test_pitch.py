"""The causal YIN tracker and the pitch code (pitch.py)."""

from __future__ import annotations

import math

import pytest
import torch

from telugu_codec import pitch

SR = 16000
S = pitch.TrackerSettings()


def vibrato_tone(f0: float, seconds: float = 1.0, depth: float = 0.03, rate: float = 5.5):
    """A 14-harmonic tone whose f0 swings +-depth at `rate` Hz -> ((T,), f0 at time t)."""
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR

    def inst(tt):
        return f0 * (1 + depth * torch.sin(2 * math.pi * rate * tt))

    ph = 2 * math.pi * torch.cumsum(inst(t) / SR, 0)
    x = sum((0.8**k) * torch.sin(k * ph + k) for k in range(1, 15))
    return (0.1 * x / x.std()).float(), inst


@pytest.mark.parametrize("f0", [60.0, 80.0, 110.0, 150.0, 220.0, 300.0, 400.0])
def test_harmonic_tones_with_vibrato_within_one_percent(f0):
    x, inst = vibrato_tone(f0)
    tr = pitch.track(x[None], S)
    n = tr.f0.shape[1]
    # the lagged products of period P cover the window's first window + P samples
    start = (torch.arange(n) + 1) * S.hop - S.context
    ref = inst((start + (S.window + SR / f0) / 2).double() / SR)
    skip = 3  # the first frames' windows reach before the signal
    assert tr.voiced[0, skip:].all()
    err = (tr.f0[0, skip:].double() / ref[skip:] - 1).abs()
    assert err.max() < 0.01, f"{f0} Hz: worst error {err.max():.4f}"


def test_noise_and_silence_are_unvoiced():
    g = torch.Generator().manual_seed(1)
    noise = 0.1 * torch.randn(2, SR, generator=g)
    assert pitch.track(noise, S).voiced.float().mean() < 0.05
    assert not pitch.track(torch.zeros(1, SR), S).voiced.any()
    quiet_tone = vibrato_tone(150.0)[0] * 1e-4  # -96 dBFS: below silence_db
    assert not pitch.track(quiet_tone[None], S).voiced.any()


@pytest.mark.parametrize(
    "make",
    [
        lambda x: (x * 50).clamp(-1, 1),  # hard clipped
        lambda x: x + 0.5,  # DC offset
        lambda x: x * 1e4,  # absurdly loud
        lambda x: x * 1e-9,  # nearly silent
        lambda x: torch.where(torch.arange(x.numel()) % 2 == 0, x, torch.nan),  # NaNs
    ],
)
def test_hostile_input_gives_finite_codes(make):
    x, _ = vibrato_tone(150.0)
    tr = pitch.track(make(x)[None], S)
    assert torch.isfinite(tr.f0).all() and torch.isfinite(tr.aperiodicity).all()
    codes = pitch.quantize(tr.f0, tr.voiced, S.fmin, S.fmax)
    assert codes.min() >= 0 and codes.max() <= pitch.PITCH_LEVELS


def test_dc_offset_and_clipping_keep_the_pitch():
    x, _ = vibrato_tone(150.0, depth=0.0)
    for y in ((x * 20).clamp(-1, 1), x + 0.3):
        tr = pitch.track(y[None], S)
        f0 = tr.f0[0, 3:][tr.voiced[0, 3:]]
        assert f0.numel() > 40 and (f0 / 150 - 1).abs().median() < 0.01


def test_tracker_is_causal():
    """Frame f depends on no sample at or after (f + 1) * hop: a stream needs no lookahead."""
    x, _ = vibrato_tone(150.0)
    y = x.clone()
    cut = 10 * S.hop + 7
    y[cut:] = torch.randn(y.numel() - cut)
    a, b = pitch.track(x[None], S), pitch.track(y[None], S)
    done = cut // S.hop  # frames 0..done-1 end at or before the cut
    assert torch.equal(a.f0[:, :done], b.f0[:, :done])
    assert not torch.equal(a.f0[:, done:], b.f0[:, done:])
    # and a prefix tracked alone gives the same frames (what a stream computes)
    c = pitch.track(x[None, : done * S.hop], S)
    assert torch.equal(c.f0, a.f0[:, :done])


def test_code_round_trip_and_range():
    f0 = torch.exp(torch.linspace(math.log(50), math.log(500), 1000))[None]
    voiced = torch.ones_like(f0, dtype=torch.bool)
    codes = pitch.quantize(f0, voiced, 50, 500)
    assert codes.min() == 1 and codes.max() == pitch.PITCH_LEVELS
    back, v = pitch.dequantize(codes, 50, 500)
    assert v.all() and ((back / f0 - 1).abs().max() < 0.0046)
    # out of range clamps, unvoiced is 0 and decodes to 0 Hz
    codes = pitch.quantize(
        torch.tensor([[10.0, 9000.0, 200.0]]), torch.tensor([[1, 1, 0]]) > 0, 50, 500
    )
    assert codes.tolist() == [[1, 255, 0]]
    assert pitch.dequantize(codes, 50, 500)[0][0, 2] == 0


def test_hold_unvoiced_is_causal_and_never_zero():
    f0 = torch.tensor([[0.0, 100.0, 0.0, 0.0, 200.0, 0.0]])
    held = pitch.hold_unvoiced(f0, f0 > 0, start=120.0)
    assert held.tolist() == [[120.0, 100.0, 100.0, 100.0, 200.0, 200.0]]
