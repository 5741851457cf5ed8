"""Audio I/O, mono mixdown, resampling (soxr) and loudness normalisation."""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from .errors import AudioError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")


@dataclass
class LoadedAudio:
    """Audio as the codec wants it.

    Attributes:
        wav: (T,) float32 mono at `sample_rate`.
        sample_rate: rate of `wav`.
        source_rate: rate of the file.
        source_channels: channel count of the file.
        notices: one-line human notes about conversions done (mixdown, resampling).
    """

    wav: np.ndarray
    sample_rate: int
    source_rate: int
    source_channels: int
    notices: list[str] = field(default_factory=list)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read any file libsndfile understands -> ((T, C) float32, rate). Raises AudioError."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"audio file not found: {path}")
    if path.is_dir():
        raise AudioError(f"expected an audio file, got a directory: {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"audio file is empty (0 bytes): {path}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises several types for bad files
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioError(f"cannot read audio from {path}: {msg}") from e
    if data.shape[0] == 0:
        raise AudioError(f"audio file has no samples: {path}")
    if not np.isfinite(data).all():
        raise AudioError(f"audio file contains NaN or infinite samples: {path}")
    return data, int(rate)


def to_mono(data: np.ndarray) -> np.ndarray:
    """(T, C) -> (T,) by averaging channels."""
    return data.mean(axis=1) if data.ndim == 2 else data


def resample(wav: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample (T,) or (T, C) float32 with soxr (high quality)."""
    if orig_rate == target_rate:
        return wav
    return soxr.resample(wav, orig_rate, target_rate, quality="HQ").astype(np.float32)


def _info(path: str | Path) -> int | None:
    """The sample rate a file declares, or None when libsndfile cannot tell."""
    try:
        return int(sf.info(str(path)).samplerate)
    except Exception:  # read_audio reports unreadable files with the right message
        return None


def load_audio(path: str | Path, sample_rate: int) -> LoadedAudio:
    """Read a file, mix to mono and resample to `sample_rate`, noting each conversion."""
    from .audio_stream import check_input_rate

    info = _info(path)
    if info is not None:  # refuse an absurd rate before reading, let alone resampling
        check_input_rate(info, str(path))
    data, rate = read_audio(path)
    check_input_rate(rate, str(path))
    notices = []
    channels = data.shape[1]
    wav = to_mono(data)
    if channels > 1:
        notices.append(f"mixed {channels} channels down to mono")
    if rate != sample_rate:
        wav = resample(wav, rate, sample_rate)
        notices.append(f"resampled {rate} Hz -> {sample_rate} Hz")
    return LoadedAudio(
        np.ascontiguousarray(wav, dtype=np.float32), sample_rate, rate, channels, notices
    )


def write_audio(path: str | Path, wav: np.ndarray | torch.Tensor, sample_rate: int) -> None:
    """Write (T,) audio atomically (temp file + rename); format from the extension."""
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().float().cpu().numpy()
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower(), "WAV")
    subtype = {"FLAC": "PCM_16", "OGG": "VORBIS"}.get(fmt, "FLOAT")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        sf.write(tmp, np.clip(wav, -1.0, 1.0), sample_rate, format=fmt, subtype=subtype)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def rms(x: torch.Tensor) -> torch.Tensor:
    """Root mean square over the last axis, keeping dims: (..., T) -> (..., 1)."""
    return x.float().pow(2).mean(dim=-1, keepdim=True).sqrt()


def db_to_amplitude(db: float) -> float:
    return 10.0 ** (db / 20.0)


def normalize(
    x: torch.Tensor, target_rms: float = 0.158, max_gain_db: float = 40.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each item to `target_rms` (-16 dBFS by default).

    Silence is safe: the gain is capped at `max_gain_db`, so an all-zero input gets gain
    10**(max_gain_db/20) and stays zero, never NaN.

    Args:
        x: (B, C, T).

    Returns:
        (x * gain, gain) with gain (B, 1, 1) float32.
    """
    level = rms(x.reshape(x.shape[0], -1)).view(-1, 1, 1)
    max_gain = db_to_amplitude(max_gain_db)
    gain = (target_rms / level.clamp_min(target_rms / max_gain)).clamp(max=max_gain)
    return x * gain.to(x.dtype), gain


def denormalize(y: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """Undo `normalize`: y / gain, gain (B, 1, 1) or (B,)."""
    return y / gain.view(-1, *([1] * (y.dim() - 1))).to(y.dtype)


def db_rms(x: np.ndarray) -> float:
    """RMS level in dBFS of a (T,) array (-inf for silence)."""
    level = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return 20 * math.log10(level) if level > 0 else -math.inf
