"""The validity scan: every file read once, its result cached, unusable files sorted out.

`probe_file` reads a whole file once (rate, channels, length, NaN/Inf, clipping, level);
`scan_files` caches the results in a JSON file keyed by path, size and mtime so a large corpus
is not re-read every run; `check_files` sorts the scanned files into usable and skipped (counted
by reason) and notes the conversions done on the fly (other rates, stereo, 8-bit).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..config import DataConfig
from .corpora import AudioItem, relative_key

CACHE_NAME = ".telugu_codec_scan.json"
CACHE_VERSION = 1
MIN_SECONDS = 0.05  # shorter files are skipped: too short to crop or to validate on
# a sample at or above this magnitude counts as clipped; 8-bit and companded formats top out lower
CLIP_LEVEL = {"PCM_U8": 0.99, "PCM_S8": 0.99, "ULAW": 0.98, "ALAW": 0.98}
DEFAULT_CLIP_LEVEL = 0.999
MAX_SCAN_WORKERS = 16  # parallel probes by default (one per CPU up to this)
LOW_BIT_SUBTYPES = frozenset({"PCM_U8", "PCM_S8", "ULAW", "ALAW", "IMA_ADPCM", "MS_ADPCM"})


@dataclass
class FileStats:
    """What one full read of a file tells us.

    Attributes:
        sample_rate: rate of the file in Hz.
        channels: channel count.
        frames: samples per channel actually decoded.
        subtype: libsndfile subtype (``PCM_16``, ``PCM_U8``, ``FLOAT``, ``MPEG_LAYER_III``, ...).
        peak: largest absolute sample value.
        clipped_fraction: share of samples at full scale (see `CLIP_LEVEL`).
        level_db: RMS level of the whole file in dBFS (-inf for digital silence).
    """

    sample_rate: int
    channels: int
    frames: int
    subtype: str
    peak: float
    clipped_fraction: float
    level_db: float

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


@dataclass
class ScanEntry:
    """An item with its scan result: `stats` when readable, else `error` (a skip reason)."""

    item: AudioItem
    stats: FileStats | None = None
    error: str | None = None


def probe_file(path: Path) -> tuple[FileStats | None, str | None]:
    """Read a whole file once -> (stats, None), or (None, reason) for an unusable file.

    Reasons: ``missing``, ``empty`` (0 bytes or no samples), ``unsupported_format`` (e.g. mp3
    with a libsndfile older than 1.1), ``unreadable`` (not audio or corrupt), ``nonfinite``
    (NaN or infinite samples).
    """
    if not path.is_file():
        return None, "missing"
    if path.stat().st_size == 0:
        return None, "empty"
    if path.suffix.lower() == ".mp3" and "MP3" not in sf.available_formats():
        return None, "unsupported_format"
    try:
        with sf.SoundFile(str(path)) as f:
            acc = _Accumulator(f.subtype)
            for block in f.blocks(blocksize=1 << 16, dtype="float32", always_2d=True):
                if not acc.add(block):
                    return None, "nonfinite"
            rate, channels = int(f.samplerate), int(f.channels)
    except Exception:  # libsndfile raises several types for bad files
        return None, "unreadable"
    return acc.result(rate, channels)


def stats_of(data: np.ndarray, rate: int, subtype: str) -> tuple[FileStats | None, str | None]:
    """`probe_file`'s result for audio already decoded: data (T, C) float32."""
    acc = _Accumulator(subtype)
    if not acc.add(data):
        return None, "nonfinite"
    return acc.result(rate, data.shape[1])


class _Accumulator:
    """Peak, clipped samples and energy of a file, block by block."""

    def __init__(self, subtype: str):
        self.subtype = subtype
        self.clip = CLIP_LEVEL.get(subtype, DEFAULT_CLIP_LEVEL)
        self.frames = self.clipped = 0
        self.peak = self.sumsq = 0.0

    def add(self, block: np.ndarray) -> bool:
        """Add a (T, C) block; False if it holds NaN or infinite samples."""
        if not np.isfinite(block).all():
            return False
        if block.size == 0:
            return True
        mag = np.abs(block)
        self.frames += block.shape[0]
        self.peak = max(self.peak, float(mag.max()))
        self.clipped += int(np.count_nonzero(mag >= self.clip))
        self.sumsq += float(np.square(block, dtype=np.float64).sum())
        return True

    def result(self, rate: int, channels: int) -> tuple[FileStats | None, str | None]:
        if self.frames == 0:
            return None, "empty"
        n = self.frames * channels
        mean_square = self.sumsq / n
        level = 10 * math.log10(mean_square) if mean_square > 0 else -math.inf
        stats = FileStats(
            rate, channels, self.frames, self.subtype, self.peak, self.clipped / n, level
        )
        return stats, None


class _ScanCache:
    """JSON file of probe results keyed by path (relative to the corpus root where possible)."""

    def __init__(self, file: Path | None, root: Path, log: Callable[[str], None]):
        self.file, self.root, self.log = file, root, log
        self.records: dict[str, dict] = {}
        self.dirty = False
        if file is not None and file.is_file():
            try:
                data = json.loads(file.read_text(encoding="utf-8"))
                if data.get("version") == CACHE_VERSION:
                    self.records = data.get("files", {})
            except (OSError, ValueError, AttributeError):
                self.records = {}  # a broken cache is rebuilt, never trusted

    def key(self, path: Path) -> str:
        key = relative_key(path, self.root)
        return key if key != path.as_posix() else str(path)

    def get(self, path: Path) -> tuple[FileStats | None, str | None] | None:
        rec = self.records.get(self.key(path))
        if rec is None:
            return None
        try:
            st = path.stat()
        except OSError:
            return None
        if rec.get("size") != st.st_size or rec.get("mtime_ns") != st.st_mtime_ns:
            return None
        if rec.get("error"):
            return None, str(rec["error"])
        try:
            s = dict(rec["stats"])
            s["level_db"] = -math.inf if s["level_db"] is None else s["level_db"]
            return FileStats(**s), None
        except (KeyError, TypeError, ValueError):
            return None  # a malformed record is probed again

    def put(self, path: Path, stats: FileStats | None, error: str | None) -> None:
        try:
            st = path.stat()
        except OSError:
            return  # missing files are not cached: they may appear later
        rec: dict = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if stats is not None:
            s = asdict(stats)
            s["level_db"] = None if math.isinf(s["level_db"]) else s["level_db"]
            rec["stats"] = s
        else:
            rec["error"] = error
        self.records[self.key(path)] = rec
        self.dirty = True

    def save(self) -> None:
        if self.file is None or not self.dirty:
            return
        text = json.dumps({"version": CACHE_VERSION, "files": self.records})
        tmp = None
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.file.parent, prefix=f".{self.file.name}.")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, self.file)  # atomic: concurrent ranks never see half a file
            self.dirty = False
        except OSError as e:
            self.log(f"note: cannot write the scan cache {self.file} ({e}); pass a cache_dir")
            self.file = None  # scan without a cache from here on
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)


def scan_cache_file(root: Path, cache_dir: str | Path | None) -> Path:
    """Where the scan of the corpus at `root` is cached: in `cache_dir`, else in `root`."""
    if cache_dir is None:
        return root / CACHE_NAME
    digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    return Path(cache_dir) / f"scan-{root.name}-{digest}.json"


def scan_files(
    items: list[AudioItem],
    root: Path,
    cache_file: Path | None,
    log: Callable[[str], None] = print,
    workers: int = 0,
) -> list[ScanEntry]:
    """Probe every item (see `probe_file`), reusing cached results for unchanged files.

    New files are probed in parallel threads (libsndfile and numpy release the GIL while they
    decode and reduce), with a progress bar on a terminal and a line every 30 s otherwise; the
    cache is written every 30 s, so an interrupted scan resumes where it stopped.

    Args:
        items: files to check.
        root: the corpus folder; cache keys are relative to it.
        cache_file: JSON cache path, or None for no cache.
        log: receives progress lines for long scans.
        workers: parallel probes (0: one per CPU, at most `MAX_SCAN_WORKERS`).

    Returns:
        One `ScanEntry` per item, in the same order; `item.duration` is set for readable files.
    """
    cache = _ScanCache(cache_file, root, log)
    results: list[tuple[FileStats | None, str | None] | None] = [cache.get(it.path) for it in items]
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        if len(todo) > 200:
            log(f"scanning {len(todo)} audio files (cached in {cache_file}) ...")
        workers = max(workers, 0) or min(MAX_SCAN_WORKERS, os.cpu_count() or 1)
        workers = workers if len(todo) > 16 else 1
        bar = _progress_bar(len(todo)) if len(todo) > 200 else None
        t0 = last = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for n, (i, res) in enumerate(
                zip(todo, pool.map(lambda i: probe_file(items[i].path), todo)), 1
            ):
                results[i] = res
                cache.put(items[i].path, *res)
                if bar is not None:
                    bar.update(1)
                if time.monotonic() - last > 30:
                    last = time.monotonic()
                    if bar is None:
                        log(f"  scanned {n}/{len(todo)} files in {last - t0:.0f} s")
                    cache.save()
        if bar is not None:
            bar.close()
        cache.save()
    entries = []
    for it, res in zip(items, results):
        stats, error = res  # type: ignore[misc]
        if stats is not None:
            it.duration = stats.duration
        entries.append(ScanEntry(it, stats, error))
    return entries


def _progress_bar(total: int):
    """A tqdm bar on a terminal, else None (logs and tests get the periodic lines)."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc="scan", dynamic_ncols=True, leave=False)


@dataclass
class CheckedFiles:
    """Usable entries of one source plus what was skipped or converted (reason -> paths)."""

    usable: list[ScanEntry]
    skipped: dict[str, list[str]] = field(default_factory=dict)
    converted: dict[str, list[str]] = field(default_factory=dict)


def check_files(entries: list[ScanEntry], cfg: DataConfig, sample_rate: int) -> CheckedFiles:
    """Sort scanned files into usable and skipped, noting conversions done on the fly.

    Skip reasons beyond `probe_file`'s: ``too_short`` (under `MIN_SECONDS`), ``low_rate`` (below
    ``cfg.min_sample_rate``), ``silent`` (whole file below ``cfg.silence_db``), ``clipped`` (more
    than ``cfg.max_clipped_fraction`` of the samples at full scale). Conversions: ``resampled``,
    ``upsampled_low_rate`` (a rate below `sample_rate`: no content above the old Nyquist),
    ``mixed_to_mono``, ``low_bit_depth`` (8-bit or companded), ``some_clipping``.
    """
    out = CheckedFiles([])
    for e in entries:
        path, s = str(e.item.path), e.stats
        reason = e.error
        if s is not None:
            if s.duration < MIN_SECONDS:
                reason = "too_short"
            elif cfg.min_sample_rate and s.sample_rate < cfg.min_sample_rate:
                reason = "low_rate"
            elif s.level_db < cfg.silence_db:
                reason = "silent"
            elif s.clipped_fraction > cfg.max_clipped_fraction:
                reason = "clipped"
        if reason is not None:
            out.skipped.setdefault(reason, []).append(path)
            continue
        assert s is not None
        notes = []
        if s.sample_rate != sample_rate:
            notes.append("resampled")
        if s.sample_rate < sample_rate:
            notes.append("upsampled_low_rate")
        if s.channels > 1:
            notes.append("mixed_to_mono")
        if s.subtype in LOW_BIT_SUBTYPES:
            notes.append("low_bit_depth")
        if s.clipped_fraction > 0:
            notes.append("some_clipping")
        for note in notes:
            out.converted.setdefault(note, []).append(path)
        out.usable.append(e)
    return out
