"""Spectral front ends shared by losses, discriminators and metrics.

Pure functions over waveforms: a mel filterbank identical to ``librosa.filters.mel`` defaults
(Slaney mel scale, Slaney area normalisation; checked against librosa in tests/test_spectral.py),
STFT magnitudes and mel spectrograms. Filterbanks and windows are cached per
(parameters, device, dtype), so calling these every training step costs only the STFT.

librosa is a test dependency only; everything here is numpy + torch.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

# Slaney's Auditory Toolbox mel scale (the librosa default, htk=False): linear below 1 kHz with
# 3 mels per 200 Hz, logarithmic above with 27 mels per factor 6.4 in frequency.
_F_SP = 200.0 / 3.0  # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # = 15 mels
_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale (librosa ``hz_to_mel(htk=False)``).

    Args:
        hz: frequencies in Hz, any shape.

    Returns:
        Mels, same shape as `hz`, float64.
    """
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    return np.where(hz >= _MIN_LOG_HZ, log_part, mel)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of `hz_to_mel` (librosa ``mel_to_hz(htk=False)``).

    Args:
        mel: mels, any shape.

    Returns:
        Frequencies in Hz, same shape as `mel`, float64.
    """
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * _F_SP
    log_part = _MIN_LOG_HZ * np.exp(_LOG_STEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log_part, hz)


def _mel_filterbank_np(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None
) -> np.ndarray:
    """Triangular Slaney-normalised filters, float64 array (n_mels, n_fft // 2 + 1)."""
    if fmax is None:
        fmax = sample_rate / 2.0
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)  # (F,)
    # n_mels + 2 band edges equally spaced in mel
    mel_edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_edges)  # (n_mels + 1,)
    ramps = mel_edges[:, None] - fft_freqs[None, :]  # (n_mels + 2, F)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))  # (n_mels, F)
    # Slaney normalisation: each triangle has unit area in Hz (times 2 / bandwidth)
    enorm = 2.0 / (mel_edges[2 : n_mels + 2] - mel_edges[:n_mels])
    return weights * enorm[:, None]


@lru_cache(maxsize=64)
def _cached_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float,
    fmax: float | None,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    fb = _mel_filterbank_np(sample_rate, n_fft, n_mels, fmin, fmax)
    return torch.from_numpy(fb).to(device=device, dtype=dtype)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Mel filterbank equal to ``librosa.filters.mel`` with its defaults (Slaney scale + norm).

    Args:
        sample_rate: sampling rate in Hz.
        n_fft: FFT size; the filterbank covers its n_fft // 2 + 1 non-negative bins.
        n_mels: number of mel bands.
        fmin: lowest band edge in Hz.
        fmax: highest band edge in Hz; ``None`` means sample_rate / 2.

    Returns:
        (n_mels, n_fft // 2 + 1) weights. A cached tensor: do not modify it in place.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return _cached_filterbank(
        int(sample_rate),
        int(n_fft),
        int(n_mels),
        float(fmin),
        None if fmax is None else float(fmax),
        dev,
        dtype,
    )


@lru_cache(maxsize=64)
def _cached_hann(win_length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.hann_window(win_length, periodic=True, device=device, dtype=dtype)


def _as_batch(wav: torch.Tensor) -> torch.Tensor:
    """(B, 1, T) or (B, T) -> (B, T) float32 (STFT needs fp32 on CPU and for bf16 inputs)."""
    if wav.dim() == 3:
        if wav.shape[1] != 1:
            raise ValueError(f"expected mono (B, 1, T), got shape {tuple(wav.shape)}")
        wav = wav[:, 0]
    elif wav.dim() != 2:
        raise ValueError(f"expected (B, 1, T) or (B, T), got shape {tuple(wav.shape)}")
    if wav.dtype not in (torch.float32, torch.float64):
        wav = wav.float()
    return wav


def complex_stft(
    wav: torch.Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    center: bool = True,
    pad_mode: str = "reflect",
) -> torch.Tensor:
    """Short-time Fourier transform with a periodic Hann window.

    Inputs shorter than the window are zero-padded on the right to one window; when
    ``center=True`` and the input is too short for reflection padding (T <= n_fft // 2),
    constant (zero) padding is used instead of `pad_mode`.

    Args:
        wav: (B, 1, T) or (B, T) waveform.
        n_fft: FFT size.
        hop_length: frame step in samples.
        win_length: window length (<= n_fft); ``None`` means n_fft.
        center: pad n_fft // 2 on both sides so frame k is centred on sample k * hop_length.
        pad_mode: padding used when ``center=True`` ("reflect" or "constant").

    Returns:
        (B, n_fft // 2 + 1, frames) complex tensor; frames = 1 + T // hop_length when centred.
    """
    x = _as_batch(wav)
    win_length = n_fft if win_length is None else win_length
    if not center and x.shape[-1] < n_fft:
        x = F.pad(x, (0, n_fft - x.shape[-1]))
    if center and pad_mode == "reflect" and x.shape[-1] <= n_fft // 2:
        pad_mode = "constant"
    window = _cached_hann(win_length, x.device, x.dtype)
    return torch.stft(
        x,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window,
        center=center,
        pad_mode=pad_mode,
        return_complex=True,
    )


def stft_magnitude(
    wav: torch.Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    center: bool = True,
    pad_mode: str = "reflect",
    power: float = 1.0,
) -> torch.Tensor:
    """Magnitude (``power=1``) or power (``power=2``) spectrogram.

    Args:
        wav: (B, 1, T) or (B, T) waveform.
        n_fft, hop_length, win_length, center, pad_mode: as in `complex_stft`.
        power: exponent applied to |STFT|.

    Returns:
        (B, n_fft // 2 + 1, frames) non-negative real tensor.
    """
    spec = complex_stft(wav, n_fft, hop_length, win_length, center, pad_mode)
    if power == 2.0:
        return spec.real.square() + spec.imag.square()
    mag = spec.abs()
    return mag if power == 1.0 else mag.pow(power)


def mel_spectrogram(
    wav: torch.Tensor,
    sample_rate: int,
    n_fft: int,
    hop_length: int,
    n_mels: int,
    win_length: int | None = None,
    fmin: float = 0.0,
    fmax: float | None = None,
    center: bool = True,
    pad_mode: str = "reflect",
    power: float = 1.0,
) -> torch.Tensor:
    """Mel spectrogram (linear amplitude; take the log yourself or use `log_mel_spectrogram`).

    Args:
        wav: (B, 1, T) or (B, T) waveform.
        sample_rate: sampling rate in Hz (for the filterbank).
        n_fft, hop_length, win_length, center, pad_mode: as in `complex_stft`.
        n_mels: number of mel bands.
        fmin, fmax: filterbank band limits in Hz (fmax ``None`` = Nyquist).
        power: 1 for a magnitude mel spectrogram, 2 for a power one.

    Returns:
        (B, n_mels, frames) non-negative tensor.
    """
    spec = stft_magnitude(wav, n_fft, hop_length, win_length, center, pad_mode, power)
    fb = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, spec.device, spec.dtype)
    return torch.matmul(fb, spec)  # (n_mels, F) @ (B, F, frames) -> (B, n_mels, frames)


def log_mel_spectrogram(
    wav: torch.Tensor,
    sample_rate: int,
    n_fft: int,
    hop_length: int,
    n_mels: int,
    floor: float = 1e-5,
    **kwargs: object,
) -> torch.Tensor:
    """``log10(max(mel, floor))`` of `mel_spectrogram` (the DAC mel-loss representation).

    Args:
        wav: (B, 1, T) or (B, T) waveform.
        floor: lower clamp before the log (1e-5 = -100 dB re. amplitude 1).
        **kwargs: passed to `mel_spectrogram`.

    Returns:
        (B, n_mels, frames) tensor.
    """
    mel = mel_spectrogram(wav, sample_rate, n_fft, hop_length, n_mels, **kwargs)  # type: ignore[arg-type]
    return mel.clamp_min(floor).log10()
