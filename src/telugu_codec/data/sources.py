"""Map-style audio that is not probed at start-up: `AudioSource` and the datasets over it.

A folder is scanned once (`scan`) so that every file's length and quality are known before
training. A large corpus should not wait for that: a manifest that carries durations, a Parquet
or Arrow dataset (`parquet`) and tar shards (`shards`, streamed) are used as they are. For the
map-style ones this module gives

- `AudioSource`: random access to item `row` (`open(row)`: a path, or an open binary file for
  audio stored inside a container), and the items (key, speaker, duration, split label) that
  `split` works on;
- `FileSource`: files listed by a manifest (or a folder read with ``data.scan=never``);
- `SourceTrainDataset` / `SourceValDataset`: `TrainDataset` / `ValDataset` whose lengths are
  read from each item's header the first time it is used, and whose unreadable items are
  replaced by the next readable one (and counted) instead of stopping the run.

The crops are the same function of (seed, epoch, index) as a scanned folder's, so the same audio
gives the same crops however it is stored.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch

from ..config import DataConfig
from ..errors import CodecError
from .corpora import AudioItem
from .datasets import ReadFailures, TrainDataset, ValDataset, read_span
from .scan import ScanEntry

# what reading a bad item raises: libsndfile (RuntimeError), missing files (OSError), pyarrow
# (ArrowInvalid is a ValueError, ArrowIOError an OSError), our own errors
READ_ERRORS = (RuntimeError, OSError, ValueError, EOFError, CodecError)
MAX_SUBSTITUTES = 16  # unreadable items in a row before the run stops


class AudioSource:
    """Random access to the audio of one corpus, item by item (`row`).

    Subclasses set `root` (split keys are paths relative to it), `layout` (for the report) and
    implement `items`, `open` and `label`. An instance is sent to every loader worker, so it
    must pickle small and open its files lazily.
    """

    root: Path
    layout: str

    def __len__(self) -> int:
        raise NotImplementedError

    def items(self) -> list[AudioItem]:
        """One item per row, ``item.row`` set, with what is known without reading audio."""
        raise NotImplementedError

    def open(self, row: int) -> str | BinaryIO:
        """Something `soundfile.SoundFile` opens: a path, or a new file object over the audio's
        bytes (a fresh one on every call)."""
        raise NotImplementedError

    def label(self, row: int) -> str:
        """A human-readable name of the row (a path, ``shard.parquet#12``)."""
        raise NotImplementedError


class FileSource(AudioSource):
    """Audio files used without a start-up probe (a manifest with durations, ``scan=never``)."""

    def __init__(self, root: Path, layout: str, items: list[AudioItem]):
        self.root, self.layout = root, layout
        self.paths = [str(it.path) for it in items]
        for row, it in enumerate(items):  # the items are the corpus's own: numbered in place
            it.row = row
        self._items = items

    def __len__(self) -> int:
        return len(self.paths)

    def items(self) -> list[AudioItem]:
        return self._items

    def open(self, row: int) -> str:
        return self.paths[row]

    def label(self, row: int) -> str:
        return self.paths[row]

    def __getstate__(self) -> dict:
        return {"root": self.root, "layout": self.layout, "paths": self.paths, "_items": []}


def header_length(handle: str | BinaryIO, sample_rate: int) -> int:
    """Length in samples at `sample_rate` from an audio header (no decoding). Raises on
    unreadable or empty audio."""
    with sf.SoundFile(handle) as f:
        frames, rate = int(f.frames), int(f.samplerate)
    if frames <= 0 or rate <= 0:
        raise ValueError("no samples")
    return frames * sample_rate // rate


class _SourceReads:
    """`_length` / `_read` through an `AudioSource`, shared by the training and validation sets."""

    source: AudioSource
    rows: np.ndarray
    sample_rate: int
    _lengths: dict[int, int]

    def _init_source(
        self, source: AudioSource, entries: list[ScanEntry], cfg: DataConfig, sample_rate: int
    ) -> None:
        # what `_AudioSet.__init__` sets from scan stats, taken from the items instead
        self.cfg, self.sample_rate, self.source = cfg, sample_rate, source
        if any(e.item.row is None for e in entries):
            raise ValueError("every entry of a source dataset needs its row")
        self.rows = np.array([e.item.row for e in entries], dtype=np.int64)
        self.speakers = [e.item.speaker for e in entries]
        self.durations = np.array(
            [math.nan if e.item.duration is None else e.item.duration for e in entries],
            dtype=np.float64,
        )
        self.max_gain_db = max(cfg.normalize_db - cfg.silence_db, 0.0)
        self._lengths = {}  # filled as items are used, in each process
        self.failures = ReadFailures()  # validation items that went bad (training: `skipped`)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def paths(self) -> list[str]:
        """Labels of the items (paths for files), in dataset order."""
        return [self.source.label(int(r)) for r in self.rows]

    @property
    def hours(self) -> float:
        """Hours from the items' durations; NaN when a duration is unknown."""
        return float(self.durations.sum()) / 3600

    def _length(self, index: int) -> int:
        n = self._lengths.get(index)
        if n is None:
            n = header_length(self.source.open(int(self.rows[index])), self.sample_rate)
            self._lengths[index] = n
        return n

    def _read(self, index: int, start: int, length: int) -> np.ndarray:
        return read_span(self.source.open(int(self.rows[index])), start, length, self.sample_rate)

    def label(self, index: int) -> str:
        return self.source.label(int(self.rows[index]))


class SourceTrainDataset(_SourceReads, TrainDataset):
    """`TrainDataset` over an `AudioSource`: lengths from headers, bad items replaced.

    Items are ``(crop, skipped)``: the crop of item `index` (as `TrainDataset.crop` draws it)
    or, when that item cannot be read, of the next readable one, and how many were passed over.
    """

    def __init__(
        self, source: AudioSource, entries: list[ScanEntry], cfg: DataConfig, sample_rate: int
    ):
        self._init_source(source, entries, cfg, sample_rate)
        self.segment = int(round(cfg.segment_seconds * sample_rate))
        if self.segment <= 0:
            raise CodecError(f"data.segment_seconds must be positive, got {cfg.segment_seconds}")

    def __getitem__(self, key: int | tuple[int, int, int]) -> tuple[torch.Tensor, int]:
        if isinstance(key, (tuple, list)):
            seed, epoch, index = (int(k) for k in key)
        else:
            seed, epoch, index = 0, 0, int(key)
        return self.checked_crop(index, epoch, seed)

    def checked_crop(self, index: int, epoch: int = 0, seed: int = 0) -> tuple[torch.Tensor, int]:
        """(crop (1, T), items passed over): the crop of `index` or of the next readable item.

        Raises:
            CodecError: `MAX_SUBSTITUTES` items in a row cannot be read.
        """
        error: Exception | None = None
        for k in range(min(MAX_SUBSTITUTES, len(self))):
            i = (index + k) % len(self)
            try:
                x = self.crop(i, epoch, seed)
            except READ_ERRORS as e:
                error = e
                continue
            if bool(torch.isfinite(x).all()):
                return x, k
            error = ValueError("NaN or infinite samples")
        raise CodecError(
            f"{MAX_SUBSTITUTES} items in a row cannot be read, from {self.label(index)} on "
            f"({error}); check the data"
        )


class SourceValDataset(_SourceReads, ValDataset):
    """`ValDataset` over an `AudioSource` (lengths from headers)."""

    def __init__(
        self, source: AudioSource, entries: list[ScanEntry], cfg: DataConfig, sample_rate: int
    ):
        self._init_source(source, entries, cfg, sample_rate)
        self.max_len = max(1, int(round(cfg.val_max_seconds * sample_rate)))

    def readable_only(self) -> list[str]:
        """Drop items whose header cannot be read; returns their labels."""
        keep, bad = [], []
        for i in range(len(self)):
            try:
                self._length(i)
                keep.append(i)
            except READ_ERRORS:
                bad.append(self.label(i))
        self.rows, self.durations = self.rows[keep], self.durations[keep]
        self.speakers = [self.speakers[i] for i in keep]
        self._lengths = {j: self._lengths[i] for j, i in enumerate(keep)}
        return bad
