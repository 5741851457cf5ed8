"""Training crops and validation items: the datasets the loaders draw from.

Training crops are a pure function of (seed, epoch, index), so the batches do not depend on
the number of loader workers and a resumed run sees exactly the crops it would have seen.
Everything is read at the model's rate (mono, resampled with soxr) and loudness-normalised.

A file that goes bad after the scan (deleted, truncated, corrupted, NaN samples) does not stop
training: the item is replaced by the crop of another file, chosen by (seed, epoch, index),
and the failure is recorded in `ReadFailures` (and its JSON-lines file, which the trainer
reads to log each bad file once and to stop when too many fail). Healthy files' crops do not
change.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from ..audio import db_rms, resample, to_mono
from ..config import DataConfig
from ..errors import AudioError, CodecError
from .scan import ScanEntry

PEAK_LIMIT = 0.99  # loudness normalisation never pushes a sample beyond this
RESAMPLE_MARGIN_S = 0.01  # extra source audio read on each side of a crop before resampling
SUBSTITUTE_TRIES = 8  # other files tried in place of one that cannot be read
# what reading a file that went bad can raise (libsndfile's errors are RuntimeErrors)
READ_ERRORS = (OSError, RuntimeError, ValueError, AudioError, sf.SoundFileError)


def read_span(
    path: str | Path | BinaryIO,
    start: int,
    length: int,
    sample_rate: int,
    expected_frames: int | None = None,
) -> np.ndarray:
    """Read `length` samples starting at sample `start`, both counted at `sample_rate`.

    Only the needed part of the file is decoded (plus a short margin for the resampler). The
    result is mixed to mono, resampled with soxr and zero-padded past the end of the file.
    `path` may also be an open binary file (audio bytes from a Parquet row or a tar member).

    Args:
        expected_frames: the file's length (at its own rate) when it was scanned; a file whose
            length changed since is refused with an `AudioError` (a truncated file would
            otherwise give silently zero-padded crops).

    Returns:
        (length,) float32.
    """
    with sf.SoundFile(path if hasattr(path, "read") else str(path)) as f:
        if expected_frames is not None and f.frames != expected_frames:
            raise AudioError(
                f"{path} changed since the scan ({expected_frames} frames, now {f.frames})"
            )
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


class ReadFailures:
    """Files that could not be read during training, each with the error.

    Kept in memory and, when `log_file` is set, appended to it as JSON lines: loader workers
    are separate processes, and the file is how their failures reach the trainer
    (`new_records`).

    Args:
        log_file: the JSON-lines file (``RUN/data_errors.jsonl``), or None.
    """

    def __init__(self, log_file: Path | None = None):
        self.log_file = log_file
        self.paths: dict[str, str] = {}  # path -> first error, in this process
        self._offset = 0  # how much of log_file `new_records` has read

    def record(self, path: str, error: BaseException) -> None:
        msg = str(error).splitlines()[0] if str(error) else type(error).__name__
        first = path not in self.paths
        self.paths.setdefault(path, msg)
        if self.log_file is not None and first:
            line = json.dumps({"time": time.time(), "path": path, "error": msg})
            try:
                with open(self.log_file, "a") as f:
                    f.write(line + "\n")
            except OSError:
                pass  # the in-memory record still counts it

    def new_records(self) -> list[dict]:
        """Records appended to `log_file` (by any process) since the last call."""
        if self.log_file is None or not self.log_file.exists():
            return []
        with open(self.log_file, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line being written is read next time
        self._offset += end
        out = []
        for line in data[:end].decode(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out


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
        self.frames = frames  # at each file's own rate, as scanned
        self.failures = ReadFailures()
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

    # the reads a source of audio provides (data/sources.py overrides them for audio that is
    # not probed at start-up: Parquet/Arrow rows, manifests with durations)
    def _length(self, index: int) -> int:
        """Length of item `index` in samples at the model rate."""
        return int(self.lengths[index])

    def label(self, index: int) -> str:
        """A human-readable name of item `index` (its path)."""
        return self.paths[index]

    def _read(self, index: int, start: int, length: int) -> np.ndarray:
        """`read_span` of file `index`, refusing a file changed since the scan or non-finite."""
        x = read_span(self.paths[index], start, length, self.sample_rate, int(self.frames[index]))
        if not np.isfinite(x).all():
            raise AudioError(f"{self.paths[index]} now holds NaN or infinite samples")
        return x

    def _substitutes(self, index: int, seed: int, epoch: int) -> list[int]:
        """Other items to use in place of `index` when it cannot be read, in a fixed order."""
        n = len(self)
        if n <= 1:
            return []
        rng = np.random.default_rng([4, seed, epoch, index])  # 4: substitutes
        return [int(j) for j in (index + rng.integers(1, n, SUBSTITUTE_TRIES)) % n]


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
        for i in [index, *self._substitutes(index, seed, epoch)]:
            if self.paths[i] in self.failures.paths:
                continue  # known bad in this process: do not read it again
            try:
                audio, start = self.crop_at(i, epoch, seed)
            except READ_ERRORS as e:
                self.failures.record(self.paths[i], e)
                continue
            return self.make_item(audio, i, start)
        # nothing readable near this item: silence keeps the batch shape (the trainer stops
        # long before this is common, at data.max_bad_fraction)
        return self.make_item(torch.zeros(1, self.segment), None, 0)

    def make_item(self, audio: torch.Tensor, index: int | None, start: int) -> torch.Tensor:
        """What an item is, given its crop: the (1, T) crop itself. Subclasses that add per-crop
        targets (data/teacher_crops.py) override this and keep the crop draws and the bad-file
        substitution above. `index` is None for the silent stand-in; `start` as `crop_at`."""
        return audio

    def crop(self, index: int, epoch: int = 0, seed: int = 0) -> torch.Tensor:
        """The training crop of file `index` in `epoch` of a run seeded with `seed`.

        Returns:
            (1, T) float32, T = round(segment_seconds * sample_rate).
        """
        return self.crop_at(index, epoch, seed)[0]

    def crop_at(self, index: int, epoch: int = 0, seed: int = 0) -> tuple[torch.Tensor, int]:
        """`crop` and the file sample the crop's first sample is (negative: a short file placed
        at an offset in a zero-padded crop)."""
        rng = np.random.default_rng([1, seed, epoch, index])  # 1: crop stream (2: order)
        n, seg = self._length(index), self.segment
        if n <= seg:
            x = self._normalize(self._read(index, 0, n))
            out = np.zeros(seg, dtype=np.float32)
            offset = int(rng.integers(0, seg - n + 1))
            out[offset : offset + n] = x
            return torch.from_numpy(out).unsqueeze(0), -offset
        best, best_db, best_start = None, -math.inf, 0
        for _ in range(1 + max(self.cfg.silence_retries, 0)):
            start = int(rng.integers(0, n - seg + 1))
            x = self._read(index, start, seg)
            level = db_rms(x)
            if best is None or level > best_db:
                best, best_db, best_start = x, level, start
            if level >= self.cfg.silence_db:
                break
        assert best is not None
        return torch.from_numpy(self._normalize(best)).unsqueeze(0), best_start


class ValDataset(_AudioSet):
    """Deterministic validation items: the centre `cfg.val_max_seconds` of each file (the whole
    file when shorter), loudness-normalised like training crops. Items vary in length."""

    def __init__(self, entries: list[ScanEntry], cfg: DataConfig, sample_rate: int):
        super().__init__(entries, cfg, sample_rate)
        self.max_len = max(1, int(round(cfg.val_max_seconds * sample_rate)))

    def __getitem__(self, index: int) -> torch.Tensor:
        """Returns: (1, T) float32 with T = min(file length, val_max_seconds * sample_rate)."""
        n_items = len(self)
        for i in [index, *((index + k) % n_items for k in range(1, n_items))]:
            try:
                n = self._length(i)
                length = min(n, self.max_len)
                x = self._read(i, (n - length) // 2, length)
            except READ_ERRORS as e:  # another validation file stands in for it
                self.failures.record(self.label(i), e)
                continue
            return torch.from_numpy(self._normalize(x)).unsqueeze(0)
        raise CodecError(
            f"none of the {n_items} validation files can be read any more (e.g. "
            f"{next(iter(self.failures.paths.items()), '?')}); check the data disk"
        )
