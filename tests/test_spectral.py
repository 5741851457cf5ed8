"""Spectral front ends: mel filterbank against librosa, STFT / mel shapes and values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from telugu_codec.spectral import (
    complex_stft,
    hz_to_mel,
    log_mel_spectrogram,
    mel_filterbank,
    mel_spectrogram,
    mel_to_hz,
    stft_magnitude,
)

librosa = pytest.importorskip("librosa")


@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels", "fmin", "fmax"),
    [
        (16000, 1024, 80, 0.0, None),
        (16000, 32, 5, 0.0, None),
        (22050, 512, 40, 50.0, 8000.0),
        (24000, 2048, 320, 0.0, None),
        (16000, 256, 64, 0.0, None),  # more mels than bins can fill: some empty filters
    ],
)
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax):
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax).numpy()
    assert ours.shape == (n_mels, n_fft // 2 + 1)
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)


def test_mel_scale_is_slaney_and_invertible():
    hz = np.array([0.0, 500.0, 1000.0, 4000.0, 8000.0])
    np.testing.assert_allclose(hz_to_mel(hz), librosa.hz_to_mel(hz), rtol=1e-10)
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, atol=1e-8)
    assert hz_to_mel(1000.0) == pytest.approx(15.0)  # the linear/log break point


def test_stft_magnitude_of_a_sine_peaks_at_its_bin():
    sr, n_fft = 16000, 512
    k = 40  # exactly on bin 40
    t = torch.arange(sr // 4) / sr
    wav = torch.sin(2 * torch.pi * (k * sr / n_fft) * t)[None, None]  # (1, 1, T)
    mag = stft_magnitude(wav, n_fft=n_fft, hop_length=128)
    assert mag.shape == (1, n_fft // 2 + 1, 1 + wav.shape[-1] // 128)
    mid = mag[0, :, mag.shape[-1] // 2]
    assert int(mid.argmax()) == k
    # periodic Hann: a full-scale sine on a bin centre has magnitude sum(window) / 2 = n_fft / 4
    assert float(mid[k]) == pytest.approx(n_fft / 4, rel=1e-3)


def test_mel_spectrogram_matches_librosa():
    wav = torch.randn(2, 1, 3001)
    ours = mel_spectrogram(wav, 16000, n_fft=1024, hop_length=256, n_mels=80)
    ref = librosa.feature.melspectrogram(
        y=wav[:, 0].numpy(),
        sr=16000,
        n_fft=1024,
        hop_length=256,
        n_mels=80,
        power=1.0,
        pad_mode="reflect",
    )
    assert ours.shape == ref.shape == (2, 80, 1 + 3001 // 256)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("length", [1, 7, 100, 511, 513])
def test_inputs_shorter_than_the_window_are_padded(length):
    wav = torch.randn(3, length)
    mel = mel_spectrogram(wav, 16000, n_fft=1024, hop_length=256, n_mels=40)
    assert mel.shape == (3, 40, 1 + length // 256)
    assert torch.isfinite(mel).all()
    spec = complex_stft(wav, n_fft=1024, hop_length=256, center=False)
    assert spec.shape == (3, 513, 1 + max(0, length - 1024) // 256)


def test_batch_layouts_agree_and_log_mel_floors():
    wav = torch.randn(2, 1, 2000)
    a = mel_spectrogram(wav, 16000, 512, 128, 40)
    b = mel_spectrogram(wav[:, 0], 16000, 512, 128, 40)
    torch.testing.assert_close(a, b)
    silent = log_mel_spectrogram(torch.zeros(1, 2000), 16000, 512, 128, 40, floor=1e-5)
    torch.testing.assert_close(silent, torch.full_like(silent, -5.0))
    with pytest.raises(ValueError):
        mel_spectrogram(torch.randn(2, 2, 100), 16000, 512, 128, 40)


def test_filterbank_is_cached_per_device_and_dtype():
    a = mel_filterbank(16000, 512, 40)
    assert mel_filterbank(16000, 512, 40) is a
    b = mel_filterbank(16000, 512, 40, dtype=torch.float64)
    assert b.dtype == torch.float64 and b is not a
