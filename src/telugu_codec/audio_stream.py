"""Audio in blocks, for encoding and decoding in bounded memory: files or pipes (`-`).

`AudioReader` reads a file (or stdin) block by block with libsndfile, mixes to mono and resamples
with a streaming soxr resampler, so memory does not grow with duration. `AudioWriter` writes
blocks to a file (atomically: temp file + rename) or to stdout as a WAV whose size fields say
"unknown" (0xFFFFFFFF), as streaming tools do.

Input rates outside MIN_INPUT_RATE..MAX_INPUT_RATE are refused: a file that declares 1 Hz would
otherwise be "resampled" into 16,000 times as many samples.
"""

from __future__ import annotations

import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from .audio import wav_declared_frames
from .errors import AudioError, StorageError

MIN_INPUT_RATE = 4000  # Hz: below telephone band there is no speech to code
MAX_INPUT_RATE = 768000
MAX_CHANNELS = 64
STDIO = "-"
# what a failing write raises: OSError, or libsndfile's errors (RuntimeErrors)
WRITE_ERRORS = (OSError, RuntimeError)


def check_input_rate(rate: int, source: str) -> None:
    """Raise AudioError for a sample rate no real recording has."""
    if not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
        raise AudioError(
            f"{source} declares a sample rate of {rate} Hz; telugu-codec accepts "
            f"{MIN_INPUT_RATE}..{MAX_INPUT_RATE} Hz"
        )


class AudioReader:
    """Mono float32 blocks at `sample_rate` from a file or stdin.

    Args:
        path: an audio file, or "-" for stdin (WAV, AIFF, AU or raw-headed formats that
            libsndfile reads from a pipe; other formats: save to a file first).
        sample_rate: the rate to deliver.
        block_seconds: seconds of input read per block.

    Attributes:
        source_rate, channels: the input's.
        notices: one-line notes about conversions (mixdown, resampling).
    """

    def __init__(self, path: str | Path, sample_rate: int, block_seconds: float = 10.0):
        self.name = "stdin" if str(path) == STDIO else str(path)
        self.sample_rate = sample_rate
        if str(path) == STDIO:
            target = sys.stdin.buffer.fileno()
        else:
            p = Path(path)
            if not p.exists():
                raise AudioError(f"audio file not found: {p}")
            if p.is_dir():
                raise AudioError(f"expected an audio file, got a directory: {p}")
            if p.stat().st_size == 0:
                raise AudioError(f"audio file is empty (0 bytes): {p}")
            target = str(p)
        try:
            self.file = (
                sf.SoundFile(target, closefd=False)
                if isinstance(target, int)
                else (sf.SoundFile(target))
            )
        except Exception as e:  # libsndfile raises several types for bad input
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise AudioError(f"cannot read audio from {self.name}: {msg}") from e
        self.source_rate = int(self.file.samplerate)
        self.channels = int(self.file.channels)
        check_input_rate(self.source_rate, self.name)
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise AudioError(f"{self.name} has {self.channels} channels (at most {MAX_CHANNELS})")
        self.block = max(1, int(block_seconds * self.source_rate))
        self.notices = []
        if self.channels > 1:
            self.notices.append(f"mixed {self.channels} channels down to mono")
        if self.source_rate != sample_rate:
            self.notices.append(f"resampled {self.source_rate} Hz -> {sample_rate} Hz")
        declared = None if isinstance(target, int) else wav_declared_frames(target)
        if declared is not None and declared > self.file.frames:  # libsndfile reads what is there
            rate = self.source_rate
            self.notices.append(
                f"warning: {self.name} is cut short: its header declares {declared / rate:.2f} s "
                f"but only {self.file.frames / rate:.2f} s are there; using what is there"
            )
        self.samples_out = 0

    def blocks(self) -> Iterator[np.ndarray]:
        """Yield (n,) float32 mono blocks at `sample_rate` until the input ends."""
        resampler = None
        if self.source_rate != self.sample_rate:
            resampler = soxr.ResampleStream(
                self.source_rate, self.sample_rate, 1, dtype="float32", quality="HQ"
            )
        got = 0
        while True:
            try:
                data = self.file.read(self.block, dtype="float32", always_2d=True)
            except Exception as e:
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise AudioError(f"cannot read audio from {self.name}: {msg}") from e
            last = len(data) < self.block
            got += len(data)
            if not np.isfinite(data).all():
                raise AudioError(f"{self.name} contains NaN or infinite samples")
            x = data.mean(axis=1) if self.channels > 1 else data[:, 0]
            x = np.ascontiguousarray(x, dtype=np.float32)
            if resampler is not None:
                x = resampler.resample_chunk(x, last=last)
            if x.size:
                self.samples_out += x.size
                yield x
            if last:
                break
        if got == 0:
            raise AudioError(f"{self.name} has no samples")

    def close(self) -> None:
        self.file.close()


def spool_stdin(folder: str | Path | None = None) -> Path:
    """Copy stdin to a temporary file in blocks (for inputs that need two passes)."""
    fd, tmp = tempfile.mkstemp(prefix="telugu-codec-stdin-", suffix=".audio", dir=folder)
    with os.fdopen(fd, "wb") as f:
        shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
    return Path(tmp)


def clip_gain(reader: AudioReader, target_rms: float, max_gain_db: float) -> float:
    """The whole-clip gain of audio.normalize, from one pass over the blocks (float64 sums)."""
    total, n = 0.0, 0
    for x in reader.blocks():
        total += float(np.dot(x.astype(np.float64), x.astype(np.float64)))
        n += x.size
    level = (total / max(n, 1)) ** 0.5
    max_gain = 10.0 ** (max_gain_db / 20.0)
    return min(target_rms / max(level, target_rms / max_gain), max_gain)


class AudioWriter:
    """Write (n,) float32 blocks to an audio file (atomic) or to stdout as a streaming WAV.

    Samples are clipped to [-1, 1], as `audio.write_audio` does. WAV files hold 32-bit float,
    FLAC 16-bit PCM.
    """

    def __init__(self, path: str | Path, sample_rate: int):
        self.stdout: BinaryIO | None = None
        self.samples = 0
        if str(path) == STDIO:
            self.stdout = sys.stdout.buffer
            # RIFF and data sizes unknown (0xFFFFFFFF): readers take samples until the end
            fmt = struct.pack("<HHIIHH", 3, 1, sample_rate, sample_rate * 4, 4, 32)
            self.stdout.write(
                b"RIFF\xff\xff\xff\xffWAVEfmt "
                + struct.pack("<I", len(fmt))
                + fmt
                + b"data\xff\xff\xff\xff"
            )
            return
        self.path = Path(path)
        fmt = {".flac": "FLAC", ".ogg": "OGG"}.get(self.path.suffix.lower(), "WAV")
        subtype = {"FLAC": "PCM_16", "OGG": "VORBIS"}.get(fmt, "FLOAT")
        self.tmp: Path | None = None
        self.file = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
            )
            os.close(fd)
            self.tmp = Path(tmp)
            self.file = sf.SoundFile(tmp, "w", sample_rate, 1, subtype, format=fmt)
        except WRITE_ERRORS as e:
            self.abort()
            raise StorageError.writing(self.path, e) from e

    def write(self, x: np.ndarray) -> None:
        x = np.clip(np.asarray(x, dtype=np.float32).reshape(-1), -1.0, 1.0)
        self.samples += x.size
        if self.stdout is not None:
            self.stdout.write(x.astype("<f4").tobytes())
            self.stdout.flush()  # a player downstream gets each block as it is decoded
            return
        try:
            self.file.write(x)
        except WRITE_ERRORS as e:  # e.g. the disk filled up: a one-line error, nothing left
            self.abort()
            raise StorageError.writing(self.path, e) from e

    def close(self) -> None:
        """Finish: flush stdout, or close the temp file and rename it into place."""
        if self.stdout is not None:
            self.stdout.flush()
            return
        try:
            self.file.close()
            os.replace(self.tmp, self.path)
        except WRITE_ERRORS as e:
            self.abort()
            raise StorageError.writing(self.path, e) from e

    def abort(self) -> None:
        """Drop a partly written file (never raises)."""
        if self.stdout is None:
            if self.file is not None:
                try:
                    self.file.close()
                except WRITE_ERRORS:
                    pass
            if self.tmp is not None:
                self.tmp.unlink(missing_ok=True)
