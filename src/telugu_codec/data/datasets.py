"""Training crops and validation items: the datasets the loaders draw from.

Training crops are a pure function of (seed, epoch, index), so the batches do not depend on
the number of loader workers and a resumed run sees exactly the crops it would have seen.
Everything is read at the model's rate (mono, resampled with soxr) and loudness-normalised.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from ..audio import db_rms, resample, to_mono
from ..config import DataConfig
from ..errors import CodecError
from .scan import ScanEntry

PEAK_LIMIT = 0.99  # loudness normalisation never pushes a sample beyond this
RESAMPLE_MARGIN_S = 0.01  # extra source audio read on each side of a crop before resampling


def read_span(path: str | Path | BinaryIO, start: int, length: int, sample_rate: int) -> np.ndarray:
    """Read `length` samples starting at sample `start`, both counted at `sample_rate`.

    Only the needed part of the file is decoded (plus a short margin for the resampler). The
    result is mixed to mono, resampled with soxr and zero-padded past the end of the file.
    `path` may also be an open binary file (audio bytes from a Parquet row or a tar member).

    Returns:
        (length,) float32.
    """
    with sf.SoundFile(path if hasattr(path, "read") else str(path)) as f:
        src_rate = int(f.samplerate)
        if src_rate == sample_rate:
            f.seek(min(start, f.frames))
            x = to_mono(f.read(length, dtype="float32", always_2d=True))
        else:
            ratio = src_rate / sample_rate
            first = int(math.floor(start * ratio))
            margin = int(math.ceil(RESAMPLE_MARGIN_S * src_rate))
            a = max(0, first - margin)
            n = (first - a) + int(math.ceil(length * ratio)) + margin
            f.seek(min(a, f.frames))
            raw = to_mono(f.read(n, dtype="float32", always_2d=True))
            y = resample(raw, src_rate, sample_rate) if raw.size else raw
            offset = int(round(start - a / ratio))
            x = y[offset : offset + length]
    out = np.zeros(length, dtype=np.float32)
    out[: len(x)] = x
    return out


def loudness_normalize(x: np.ndarray, target_db: float, max_gain_db: float) -> np.ndarray:
    """Scale (T,) audio to `target_db` dBFS RMS, amplifying by at most `max_gain_db` and never
    past a peak of `PEAK_LIMIT` (loud, peaky audio then ends a little below the target)."""
    level = db_rms(x)
    if not math.isfinite(level):
        return x.astype(np.float32)
    gain = 10.0 ** (min(target_db - level, max_gain_db) / 20.0)
    peak = float(np.abs(x).max()) * gain
    if peak > PEAK_LIMIT:
        gain *= PEAK_LIMIT / peak
    return (x * gain).astype(np.float32)


class _AudioSet(Dataset):
    """Shared state of the two datasets: plain arrays, cheap to send to loader workers."""

    def __init__(self, entries: list[ScanEntry], cfg: DataConfig, sample_rate: int):
        self.cfg = cfg
        self.sample_rate = sample_rate
        self.paths = [str(e.item.path) for e in entries]
        self.speakers = [e.item.speaker for e in entries]
        rates = np.array([e.stats.sample_rate for e in entries if e.stats], dtype=np.int64)
        frames = np.array([e.stats.frames for e in entries if e.stats], dtype=np.int64)
        if len(rates) != len(entries):
            raise ValueError("every entry of a dataset must have scan stats")
        # length of each file at the model rate
        self.lengths = frames * sample_rate // np.maximum(rates, 1)
        # never amplify more than it takes to lift a crop at the silence threshold to the target
        self.max_gain_db = max(cfg.normalize_db - cfg.silence_db, 0.0)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def hours(self) -> float:
        return float(self.lengths.sum()) / self.sample_rate / 3600

    def _normalize(self, x: np.ndarray) -> np.ndarray:
        return loudness_normalize(x, self.cfg.normalize_db, self.max_gain_db)

    # the two reads a source of audio provides (data/sources.py overrides them for audio that
    # is not probed at start-up: Parquet/Arrow rows, manifests with durations)
    def _length(self, index: int) -> int:
        """Length of item `index` in samples at the model rate."""
        return int(self.lengths[index])

    def _read(self, index: int, start: int, length: int) -> np.ndarray:
        """(length,) float32 of item `index` from sample `start` (see `read_span`)."""
        return read_span(self.paths[index], start, length, self.sample_rate)


class TrainDataset(_AudioSet):
    """Random fixed-length training crops, a pure function of (seed, epoch, index).

    Each crop is `cfg.segment_seconds` long at `sample_rate`, mono, loudness-normalised to
    `cfg.normalize_db`. Crops quieter than `cfg.silence_db` are re-drawn up to
    `cfg.silence_retries` times (the loudest draw is kept if all are quiet). Files shorter than a
    segment are placed at a random offset and zero-padded.

    Items are addressed by `(seed, epoch, index)` keys, as `EpochSampler` yields them; a plain
    integer index means seed 0, epoch 0.
    """

    def __init__(self, entries: list[ScanEntry], cfg: DataConfig, sample_rate: int):
        super().__init__(entries, cfg, sample_rate)
        self.segment = int(round(cfg.segment_seconds * sample_rate))
        if self.segment <= 0:
            raise CodecError(f"data.segment_seconds must be positive, got {cfg.segment_seconds}")

    def __getitem__(self, key: int | tuple[int, int, int]) -> torch.Tensor:
        if isinstance(key, (tuple, list)):
            seed, epoch, index = (int(k) for k in key)
        else:
            seed, epoch, index = 0, 0, int(key)
        return self.crop(index, epoch, seed)

    def crop(self, index: int, epoch: int = 0, seed: int = 0) -> torch.Tensor:
        """The training crop of file `index` in `epoch` of a run seeded with `seed`.

        Returns:
            (1, T) float32, T = round(segment_seconds * sample_rate).
        """
        rng = np.random.default_rng([1, seed, epoch, index])  # 1: crop stream (2: order)
        n, seg = self._length(index), self.segment
        if n <= seg:
            x = self._normalize(self._read(index, 0, n))
            out = np.zeros(seg, dtype=np.float32)
            offset = int(rng.integers(0, seg - n + 1))
            out[offset : offset + n] = x
            return torch.from_numpy(out).unsqueeze(0)
        best, best_db = None, -math.inf
        for _ in range(1 + max(self.cfg.silence_retries, 0)):
            start = int(rng.integers(0, n - seg + 1))
            x = self._read(index, start, seg)
            level = db_rms(x)
            if best is None or level > best_db:
                best, best_db = x, level
            if level >= self.cfg.silence_db:
                break
        assert best is not None
        return torch.from_numpy(self._normalize(best)).unsqueeze(0)


class ValDataset(_AudioSet):
    """Deterministic validation items: the centre `cfg.val_max_seconds` of each file (the whole
    file when shorter), loudness-normalised like training crops. Items vary in length."""

    def __init__(self, entries: list[ScanEntry], cfg: DataConfig, sample_rate: int):
        super().__init__(entries, cfg, sample_rate)
        self.max_len = max(1, int(round(cfg.val_max_seconds * sample_rate)))

    def __getitem__(self, index: int) -> torch.Tensor:
        """Returns: (1, T) float32 with T = min(file length, val_max_seconds * sample_rate)."""
        n = self._length(index)
        length = min(n, self.max_len)
        x = self._read(index, (n - length) // 2, length)
        return torch.from_numpy(self._normalize(x)).unsqueeze(0)
