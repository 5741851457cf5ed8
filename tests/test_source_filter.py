"""The source-filter decoder, its excitation and the codec's pitch channel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from telugu_codec import pitch
from telugu_codec.config import load_config
from telugu_codec.errors import CodecError, ConfigError
from telugu_codec.model.codec import Codec, build_codec
from telugu_codec.model.excitation import NoiseTable, harmonic_source, interpolate_frames

from .conftest import TINY_OVERRIDES

SR = 16000
SF = [
    "model.decoder.kind=source_filter",
    "model.pitch.enabled=true",
    "model.decoder.istft.dim=32",
    "model.decoder.istft.intermediate_dim=64",
    "model.decoder.istft.layers=1",
    "model.decoder.istft.upsample=2",
]


def sf_codec(*extra: str) -> Codec:
    codec = build_codec(load_config(None, TINY_OVERRIDES + SF + list(extra)))
    codec.train()
    codec(torch.randn(2, 1, 3200) * 0.1)  # k-means initialisation of the codebooks
    return codec.eval()


def tone(f0: float, seconds: float = 1.0, harmonics: int = 12) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = sum(0.7**k * np.sin(2 * np.pi * k * f0 * t + k) for k in range(1, harmonics + 1))
    return (0.2 * x / np.abs(x).max()).astype(np.float32)


def median_f0(y: np.ndarray | torch.Tensor) -> float:
    y = torch.as_tensor(np.asarray(y, dtype=np.float32))
    tr = pitch.track(y[None] / (y.abs().max() + 1e-9) * 0.3, pitch.TrackerSettings())
    f0 = tr.f0[0, 5:][tr.voiced[0, 5:]]
    assert f0.numel() > 10, "the output is not voiced"
    return float(f0.median())


def test_pulse_train_is_every_harmonic_to_nyquist():
    f0 = torch.full((1, SR), 173.0, dtype=torch.float64)
    exc, end = harmonic_source(f0, torch.ones(1, SR), None, SR)
    k = int(SR / 2 // 173)
    t = torch.arange(1, SR + 1, dtype=torch.float64) / SR
    ref = sum(torch.cos(2 * math.pi * j * 173 * t) for j in range(1, k + 1)) / math.sqrt(k / 2)
    assert (exc[0].double() - ref).abs().max() < 0.02
    assert abs(float(exc.std()) - 1) < 0.01
    # one second of 173 Hz is 173 whole cycles: the phase is back where it started
    assert abs(math.cos(float(end[0])) - 1) < 1e-9


def test_phase_carries_across_calls():
    """Two halves with the first's end phase = one whole: what a stream decoder relies on."""
    f0 = 100 + 50 * torch.rand(2, 4000, dtype=torch.float64)
    v = torch.ones(2, 4000)
    whole, _ = harmonic_source(f0, v, None, SR)
    a, mid = harmonic_source(f0[:, :1500], v[:, :1500], None, SR)
    b, _ = harmonic_source(f0[:, 1500:], v[:, 1500:], mid, SR)
    assert torch.allclose(torch.cat([a, b], -1), whole, atol=2e-3)


def test_interpolation_and_noise_are_positional():
    vals = torch.tensor([[100.0, 200.0, 300.0]])
    y = interpolate_frames(vals, 10, 0.0, 30)
    assert y[0, 0] == 100 and y[0, 5] == 150 and y[0, 20] == 300 and y[0, 29] == 300
    table = NoiseTable()
    whole = table(torch.tensor([5]), 1000)
    assert torch.equal(table(torch.tensor([505]), 500), whole[:, 500:])
    assert abs(float(whole.std()) - 1) < 0.1


@pytest.mark.parametrize("t", [1, 7, 319, 320, 321, 1000, 3201])
def test_output_length_equals_input_length(t):
    codec = sf_codec()
    with torch.no_grad():
        out = codec(torch.randn(2, 1, t) * 0.1)
    assert out.audio.shape == (2, 1, t) and torch.isfinite(out.audio).all()
    enc = codec.encode(tone(150, t / SR if t > 1 else 1 / SR), SR)
    assert enc.pitch.shape == (enc.frames,)
    assert codec.decode(enc).shape == (max(t, 1),)


def test_bitrate_counts_the_pitch_channel():
    codec = sf_codec()
    assert codec.has_pitch and codec.pitch_bitrate == 400
    assert codec.bitrate(2) == 50 * 2 * 6 + 400
    # 1 kbps = the pitch channel + 2 codebooks of 6 bits (1000 bit/s); never rounded up
    assert codec.n_q_for_bitrate(1.0) == 2
    assert codec.n_q_for_bitrate(0.99) == 1
    with pytest.raises(CodecError):
        codec.n_q_for_bitrate(0.5)  # below the side channel plus one codebook


def test_pitch_is_tracked_and_sent():
    codec = sf_codec()
    enc = codec.encode(tone(150), SR)
    f0, voiced = pitch.dequantize(torch.as_tensor(enc.pitch), 50, 500)
    assert voiced[3:].all() and (f0[3:] / 150 - 1).abs().max() < 0.01


def test_pitch_shift_moves_the_source_an_octave():
    """With the filter flat (weights zeroed) the output is the source: +12 doubles its f0."""
    codec = sf_codec("model.decoder.source_filter.free_level=1e-4")
    with torch.no_grad():
        codec.decoder.proj.weight.zero_()
    enc = codec.encode(tone(140), SR)
    base = median_f0(codec.decode(enc))
    up = median_f0(codec.decode(enc, pitch_shift=12))
    assert abs(base / 140 - 1) < 0.02
    assert abs(up / base - 2) < 0.04  # within 2 %


def test_zero_ablation_sends_unvoiced():
    codec = sf_codec("model.pitch.zero=true")
    assert not codec.encode(tone(150), SR).pitch.any()


@pytest.mark.parametrize(
    "kind", ["whisper", "noise", "music", "silence", "one_sample", "clipped_square"]
)
def test_hostile_audio_decodes_to_finite_audio(kind):
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    wav = {
        "whisper": 0.003 * rng.standard_normal(SR),
        "noise": 0.5 * rng.standard_normal(SR),
        "music": sum(0.2 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0, 1046.5)),
        "silence": np.zeros(SR),
        "one_sample": np.array([0.5]),
        "clipped_square": np.sign(np.sin(2 * np.pi * 90 * t)),
    }[kind].astype(np.float32)
    codec = sf_codec()
    y = codec.decode(codec.encode(wav, SR))
    assert y.shape == (len(wav),) and torch.isfinite(y).all()


def test_codes_without_their_pitch_are_refused():
    codec = sf_codec()
    enc = codec.encode(tone(150), SR)
    enc.pitch = None
    with pytest.raises(CodecError, match="pitch"):
        codec.decode(enc)
    enc.pitch = np.zeros(3, dtype=np.int64)
    with pytest.raises(CodecError, match="pitch codes for"):
        codec.decode(enc)
    enc.pitch = np.full(enc.frames, 256)
    with pytest.raises(CodecError, match="pitch codes must be"):
        codec.decode(enc)


@pytest.mark.parametrize("shift", [float("nan"), 30.0, -25.0])
def test_absurd_pitch_shift_is_refused(shift):
    codec = sf_codec()
    with pytest.raises(CodecError, match="pitch shift"):
        codec.decode(codec.encode(tone(150), SR), pitch_shift=shift)


def test_pitch_shift_needs_a_pitch_model():
    codec = build_codec(load_config(None, TINY_OVERRIDES)).eval()
    codec.train()
    codec(torch.randn(2, 1, 3200) * 0.1)
    codec.eval()
    with pytest.raises(CodecError, match="pitch"):
        codec.decode(codec.encode(tone(150), SR), pitch_shift=3)


def test_source_filter_needs_the_pitch_channel():
    with pytest.raises(ConfigError, match="pitch.enabled"):
        load_config(None, TINY_OVERRIDES + ["model.decoder.kind=source_filter"])


def test_save_load_round_trip_keeps_decoding(tmp_path):
    codec = sf_codec()
    enc = codec.encode(tone(150), SR)
    path = codec.save(tmp_path)
    again = Codec.load(path)
    assert torch.allclose(again.decode(enc), codec.decode(enc), atol=1e-5)
