from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from telugu_codec.audio import denormalize, load_audio, normalize, rms
from telugu_codec.errors import AudioError


@pytest.mark.parametrize("level", [1e-3, 0.05, 0.158, 0.7])
def test_denormalize_restores_amplitude(level):
    x = torch.randn(3, 1, 4000)
    x = x / rms(x.view(3, -1)).view(3, 1, 1) * level
    y, gain = normalize(x)
    expected = min(0.158, level * 100.0)  # the gain is capped at 40 dB
    assert torch.allclose(rms(y.view(3, -1)), torch.full((3, 1), expected), rtol=1e-4)
    back = denormalize(y, gain)
    assert torch.allclose(back, x, rtol=1e-5, atol=1e-7)


def test_silence_gives_finite_bounded_gain():
    x = torch.zeros(2, 1, 1000)
    x[1] = 1e-9
    y, gain = normalize(x, max_gain_db=40.0)
    assert torch.isfinite(y).all() and torch.isfinite(gain).all()
    assert float(gain.max()) <= 100.0 + 1e-3
    assert float(y.abs().max()) < 1e-6


def test_load_audio_mixes_and_resamples(tmp_path):
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], 1).astype(np.float32)
    sf.write(tmp_path / "a.flac", stereo * 0.5, 44100)
    a = load_audio(tmp_path / "a.flac", 16000)
    assert a.wav.shape == (16000,)
    assert a.source_rate == 44100 and a.source_channels == 2
    assert len(a.notices) == 2
    # the mono mix of (s, 0) is s / 2
    assert abs(float(np.sqrt(np.mean(a.wav**2))) - 0.25 / np.sqrt(2)) < 0.01


@pytest.mark.parametrize(
    "content,match",
    [(b"", "empty"), (b"not audio at all" * 10, "cannot read"), (None, "not found")],
)
def test_bad_files_give_clear_errors(tmp_path, content, match):
    p = tmp_path / "x.wav"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(AudioError, match=match):
        load_audio(p, 16000)


def test_nan_audio_is_rejected(tmp_path):
    x = np.zeros(100, dtype=np.float32)
    x[5] = np.nan
    sf.write(tmp_path / "n.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "n.wav", 16000)


def test_a_wav_cut_short_is_noticed(tmp_path):
    from telugu_codec.audio import wav_declared_frames

    sf.write(tmp_path / "a.wav", np.zeros(16000, dtype=np.float32) + 0.1, 16000, subtype="FLOAT")
    data = (tmp_path / "a.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) - 4000 * 4])
    assert wav_declared_frames(tmp_path / "a.wav") == 16000
    assert not load_audio(tmp_path / "a.wav", 16000).notices
    loaded = load_audio(tmp_path / "cut.wav", 16000)
    assert len(loaded.wav) == 12000
    assert any("cut short" in n for n in loaded.notices)
    sf.write(tmp_path / "b.flac", np.zeros(1600, dtype=np.float32), 16000)
    assert wav_declared_frames(tmp_path / "b.flac") is None
