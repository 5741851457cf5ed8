"""Data pipeline: corpus discovery, a cached validity scan, train/val split, crops and loaders.

Inputs (see docs/data.md):

- a folder, searched recursively for audio files (`AUDIO_EXTENSIONS`);
- a manifest (`.csv`, `.tsv`, `.jsonl`) with a path column and optional duration, speaker and
  split columns; a folder holding ``manifest.{tsv,csv,jsonl}`` is read through that manifest;
- public Telugu corpus layouts, found anywhere in the first levels of a folder: OpenSLR SLR66
  (``line_index.tsv`` + wavs), IIT Madras IndicTTS (``txt.done.data`` + ``wav/``) and Mozilla
  Common Voice (``validated.tsv`` + ``clips/``).

Every file is scanned once (rate, channels, length, NaN/Inf, clipping, level); the results are
cached in a JSON file keyed by path, size and mtime so a large corpus is not re-read every run.
Unusable files are skipped and counted by reason; convertible ones (other rates, stereo, 8-bit)
are converted on the fly and counted too.

Training crops are a pure function of (seed, epoch, index): `EpochSampler` yields such keys in
an order that depends only on (seed, epoch, rank, world_size) and can start mid-epoch, so the
batches do not depend on the number of loader workers and a resumed run sees exactly the batches
it would have seen without the interruption.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .audio import AUDIO_EXTENSIONS, db_rms, resample, to_mono
from .config import DataConfig
from .errors import CodecError

MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl")
MANIFEST_NAMES = ("manifest.tsv", "manifest.csv", "manifest.jsonl")
PATH_KEYS = ("path", "audio_filepath", "audio_path", "audio", "filepath", "file", "wav")
DURATION_KEYS = ("duration", "duration_s", "seconds")
SPEAKER_KEYS = ("speaker", "speaker_id", "spk", "client_id")
SPLIT_KEYS = ("split", "subset")
VAL_SPLITS = frozenset({"val", "valid", "validation", "dev"})
EXCLUDED_SPLITS = frozenset({"test"})
CACHE_NAME = ".telugu_codec_scan.json"
CACHE_VERSION = 1
LAYOUT_DEPTH = 3  # how deep below the given folder corpus markers are looked for
N_EXAMPLES = 5  # paths kept per skip/convert reason
MIN_SECONDS = 0.05  # shorter files are skipped: too short to crop or to validate on
PEAK_LIMIT = 0.99  # loudness normalisation never pushes a sample beyond this
RESAMPLE_MARGIN_S = 0.01  # extra source audio read on each side of a crop before resampling
# a sample at or above this magnitude counts as clipped; 8-bit and companded formats top out lower
CLIP_LEVEL = {"PCM_U8": 0.99, "PCM_S8": 0.99, "ULAW": 0.98, "ALAW": 0.98}
DEFAULT_CLIP_LEVEL = 0.999
LOW_BIT_SUBTYPES = frozenset({"PCM_U8", "PCM_S8", "ULAW", "ALAW", "IMA_ADPCM", "MS_ADPCM"})
# SLR66 file ids look like tef_05421_00051003: <lang><gender>_<speaker>_<utterance>
SLR_SPEAKER = re.compile(r"^([a-z]{2,3}[fm])_(\d+)_")


# --------------------------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------------------------


@dataclass
class AudioItem:
    """One audio file of a corpus.

    Attributes:
        path: absolute path of the file.
        duration: seconds; None until scanned unless a manifest gave it.
        speaker: speaker id where the layout or manifest gives one, else None.
        split: the manifest's split label (``train``, ``val``, ``test``, ...), else None.
    """

    path: Path
    duration: float | None = None
    speaker: str | None = None
    split: str | None = None


@dataclass
class Corpus:
    """What `discover` found: the folder paths are relative to, the layout and the files."""

    root: Path
    layout: str  # file | folder | manifest | slr66 | indictts | commonvoice (joined with "+")
    items: list[AudioItem]


def list_audio_files(source: str | Path) -> list[AudioItem]:
    """All audio files of a folder, manifest or known corpus layout (see `discover`).

    Args:
        source: a folder, a manifest (.csv/.tsv/.jsonl), or a single audio file.

    Returns:
        Items in a stable order, one per distinct file; nothing is read or checked yet.

    Raises:
        CodecError: the path does not exist, holds no audio, or is a malformed manifest.
    """
    return discover(source).items


def discover(source: str | Path) -> Corpus:
    """Find the audio files of `source` and the layout they come in.

    A folder is checked, in order, for a top-level ``manifest.{tsv,csv,jsonl}``, then for corpus
    layouts (SLR66, IndicTTS, Common Voice) in its first `LAYOUT_DEPTH` levels, and otherwise
    searched recursively for files with an audio extension.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise CodecError(f"data path not found: {path}")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in MANIFEST_SUFFIXES:
            corpus = Corpus(path.parent.resolve(), "manifest", read_manifest(path))
        elif suffix in AUDIO_EXTENSIONS:
            corpus = Corpus(path.parent.resolve(), "file", [AudioItem(path.resolve())])
        else:
            raise CodecError(
                f"{path} is neither an audio file ({', '.join(AUDIO_EXTENSIONS)}) "
                f"nor a manifest ({', '.join(MANIFEST_SUFFIXES)})"
            )
    else:
        corpus = _discover_folder(path.resolve())
    if not corpus.items:
        raise CodecError(
            f"no audio files found in {path} (looked for {', '.join(AUDIO_EXTENSIONS)}, "
            "manifests and the SLR66 / IndicTTS / Common Voice layouts)"
        )
    return corpus


def _discover_folder(root: Path) -> Corpus:
    for name in MANIFEST_NAMES:
        if (root / name).is_file():
            return Corpus(root, "manifest", read_manifest(root / name))
    items: list[AudioItem] = []
    layouts: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        depth = len(here.relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        names = set(filenames)
        found = None
        if "clips" in dirnames and names & {"validated.tsv", "train.tsv"}:
            found, new = "commonvoice", _read_common_voice(here)
        elif "line_index.tsv" in names:
            found, new = "slr66", _read_slr66(here / "line_index.tsv")
        elif "wav" in dirnames and (
            "txt.done.data" in names or (here / "etc" / "txt.done.data").is_file()
        ):
            found, new = "indictts", _read_indictts(here, root)
        if found is not None:
            layouts.add(found)
            items.extend(new)
            dirnames[:] = []  # the layout owns this subtree
        elif depth >= LAYOUT_DEPTH:
            dirnames[:] = []
    if layouts:
        return Corpus(root, "+".join(sorted(layouts)), _dedupe(items))
    files = sorted(
        p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
    )
    files = [
        p for p in files if not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return Corpus(root, "folder", [AudioItem(p) for p in files])


def _dedupe(items: list[AudioItem]) -> list[AudioItem]:
    seen: set[Path] = set()
    out = []
    for it in items:
        if it.path not in seen:
            seen.add(it.path)
            out.append(it)
    return out


def _read_tsv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _read_common_voice(folder: Path) -> list[AudioItem]:
    """Mozilla Common Voice: ``validated.tsv`` (else train/dev/test.tsv) + ``clips/*.mp3``."""
    tables = ["validated.tsv"] if (folder / "validated.tsv").is_file() else []
    tables = tables or [t for t in ("train.tsv", "dev.tsv", "test.tsv") if (folder / t).is_file()]
    items = []
    for table in tables:
        for row in _read_tsv_rows(folder / table):
            if row.get("path"):
                speaker = row.get("client_id") or None
                items.append(AudioItem((folder / "clips" / row["path"]).resolve(), None, speaker))
    return _dedupe(items)


def _read_slr66(index: Path) -> list[AudioItem]:
    """OpenSLR SLR66: ``line_index.tsv`` lines ``<file id>\\t<text>`` next to ``<file id>.wav``."""
    folder = index.parent
    items = []
    for line in index.read_text(encoding="utf-8").splitlines():
        file_id = line.split("\t", 1)[0].strip()
        if not file_id:
            continue
        path = folder / f"{file_id}.wav"
        if not path.exists() and (folder / "wavs" / f"{file_id}.wav").exists():
            path = folder / "wavs" / f"{file_id}.wav"
        m = SLR_SPEAKER.match(file_id)
        items.append(AudioItem(path.resolve(), None, f"{m[1]}_{m[2]}" if m else None))
    return items


def _read_indictts(folder: Path, root: Path) -> list[AudioItem]:
    """IndicTTS: ``<speaker>/wav/*.wav`` with ``txt.done.data``; the speaker is the folder."""
    speaker = folder.relative_to(root).as_posix() if folder != root else folder.name
    wavs = sorted(p for p in (folder / "wav").rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    return [AudioItem(p.resolve(), None, speaker) for p in wavs]


def read_manifest(path: str | Path) -> list[AudioItem]:
    """Read a CSV/TSV (with a header row) or JSONL manifest.

    The path column may be called any of `PATH_KEYS`; optional columns are a duration in seconds
    (`DURATION_KEYS`), a speaker (`SPEAKER_KEYS`) and a split label (`SPLIT_KEYS`). Relative paths
    are resolved against the manifest's folder.

    Raises:
        CodecError: unreadable manifest, no path column, or a malformed JSON line.
    """
    path = Path(path)
    rows: list[dict] = []
    try:
        if path.suffix.lower() == ".jsonl":
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise CodecError(f"manifest {path} line {n} is not valid JSON: {e}") from e
        else:
            delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
            with path.open(encoding="utf-8", newline="") as f:
                rows = list(csv.DictReader(f, delimiter=delimiter))
    except (OSError, UnicodeDecodeError) as e:
        raise CodecError(f"cannot read manifest {path}: {e}") from e
    if not all(isinstance(r, dict) for r in rows):
        raise CodecError(f"manifest {path} must hold one JSON object per line")
    rows = [{str(k).strip().lower(): v for k, v in r.items() if k is not None} for r in rows]
    if not rows:
        return []
    keys = set().union(*rows)
    path_key = next((k for k in PATH_KEYS if k in keys), None)
    if path_key is None:
        raise CodecError(
            f"manifest {path} has no path column (name one of: {', '.join(PATH_KEYS)})"
        )
    dur_key = next((k for k in DURATION_KEYS if k in keys), None)
    spk_key = next((k for k in SPEAKER_KEYS if k in keys), None)
    split_key = next((k for k in SPLIT_KEYS if k in keys), None)
    items = []
    for r in rows:
        if not r.get(path_key):
            continue
        p = Path(str(r[path_key])).expanduser()
        p = p if p.is_absolute() else path.parent / p
        items.append(
            AudioItem(
                p.resolve(),
                _as_float(r.get(dur_key)) if dur_key else None,
                str(r[spk_key]) if spk_key and r.get(spk_key) not in (None, "") else None,
                str(r[split_key]).strip().lower() if split_key and r.get(split_key) else None,
            )
        )
    return _dedupe(items)


def _as_float(value: object) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


# --------------------------------------------------------------------------------------------
# scan (cached)
# --------------------------------------------------------------------------------------------


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
            subtype = f.subtype
            clip = CLIP_LEVEL.get(subtype, DEFAULT_CLIP_LEVEL)
            frames = clipped = 0
            peak = sumsq = 0.0
            for block in f.blocks(blocksize=1 << 16, dtype="float32", always_2d=True):
                if not np.isfinite(block).all():
                    return None, "nonfinite"
                mag = np.abs(block)
                frames += block.shape[0]
                peak = max(peak, float(mag.max()))
                clipped += int(np.count_nonzero(mag >= clip))
                sumsq += float(np.square(block, dtype=np.float64).sum())
            rate, channels = int(f.samplerate), int(f.channels)
    except Exception:  # libsndfile raises several types for bad files
        return None, "unreadable"
    if frames == 0:
        return None, "empty"
    mean_square = sumsq / (frames * channels)
    level = 10 * math.log10(mean_square) if mean_square > 0 else -math.inf
    return FileStats(
        rate, channels, frames, subtype, peak, clipped / (frames * channels), level
    ), None


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
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

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
) -> list[ScanEntry]:
    """Probe every item (see `probe_file`), reusing cached results for unchanged files.

    Args:
        items: files to check.
        root: the corpus folder; cache keys are relative to it.
        cache_file: JSON cache path, or None for no cache.
        log: receives progress lines for long scans.

    Returns:
        One `ScanEntry` per item, in the same order; `item.duration` is set for readable files.
    """
    cache = _ScanCache(cache_file, root, log)
    results: list[tuple[FileStats | None, str | None] | None] = [cache.get(it.path) for it in items]
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        if len(todo) > 200:
            log(f"scanning {len(todo)} audio files (cached in {cache_file}) ...")
        workers = min(8, os.cpu_count() or 1) if len(todo) > 16 else 1
        t0 = last = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers) as pool:  # libsndfile releases the GIL
            for n, (i, res) in enumerate(
                zip(todo, pool.map(lambda i: probe_file(items[i].path), todo)), 1
            ):
                results[i] = res
                cache.put(items[i].path, *res)
                if time.monotonic() - last > 30:
                    last = time.monotonic()
                    log(f"  scanned {n}/{len(todo)} files in {last - t0:.0f} s")
                    cache.save()
        cache.save()
    entries = []
    for it, res in zip(items, results):
        stats, error = res  # type: ignore[misc]
        if stats is not None:
            it.duration = stats.duration
        entries.append(ScanEntry(it, stats, error))
    return entries


# --------------------------------------------------------------------------------------------
# checks and split
# --------------------------------------------------------------------------------------------


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


def _hash01(key: str) -> float:
    """A stable pseudo-random number in [0, 1) from a string."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def _rel_key(path: Path, root: Path) -> str:
    """The split key of a file: its path relative to the corpus root, so moving a corpus keeps
    its split."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def hash_split(
    entries: list[ScanEntry], root: Path, val_fraction: float, speaker_disjoint: bool = False
) -> tuple[list[ScanEntry], list[ScanEntry]]:
    """Deterministic train/validation split by hashing each file's relative path.

    A file (or, with `speaker_disjoint`, a whole speaker) goes to validation when the hash of its
    key falls below `val_fraction`. Adding or removing files never moves the others. When the
    hash puts nothing (or everything) in validation but there are at least two units, the unit
    with the smallest (largest) hash is moved, so both sides are non-empty.

    Returns:
        (train, val), each in input order.
    """

    def unit(e: ScanEntry) -> str:
        key = _rel_key(e.item.path, root)
        if speaker_disjoint and e.item.speaker is not None:
            return "speaker:" + e.item.speaker
        return "file:" + key

    units = sorted({unit(e) for e in entries}, key=_hash01)
    val_units = {u for u in units if _hash01(u) < val_fraction}
    if val_fraction > 0 and len(units) >= 2:
        if not val_units:
            val_units = {units[0]}
        elif len(val_units) == len(units):
            val_units.discard(units[-1])
    train = [e for e in entries if unit(e) not in val_units]
    val = [e for e in entries if unit(e) in val_units]
    return train, val


# --------------------------------------------------------------------------------------------
# reading, normalising, cropping
# --------------------------------------------------------------------------------------------


def read_span(path: str | Path, start: int, length: int, sample_rate: int) -> np.ndarray:
    """Read `length` samples starting at sample `start`, both counted at `sample_rate`.

    Only the needed part of the file is decoded (plus a short margin for the resampler). The
    result is mixed to mono, resampled with soxr and zero-padded past the end of the file.

    Returns:
        (length,) float32.
    """
    with sf.SoundFile(str(path)) as f:
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
        path, n, seg = self.paths[index], int(self.lengths[index]), self.segment
        if n <= seg:
            x = self._normalize(read_span(path, 0, n, self.sample_rate))
            out = np.zeros(seg, dtype=np.float32)
            offset = int(rng.integers(0, seg - n + 1))
            out[offset : offset + n] = x
            return torch.from_numpy(out).unsqueeze(0)
        best, best_db = None, -math.inf
        for _ in range(1 + max(self.cfg.silence_retries, 0)):
            start = int(rng.integers(0, n - seg + 1))
            x = read_span(path, start, seg, self.sample_rate)
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
        n = int(self.lengths[index])
        length = min(n, self.max_len)
        x = read_span(self.paths[index], (n - length) // 2, length, self.sample_rate)
        return torch.from_numpy(self._normalize(x)).unsqueeze(0)


# --------------------------------------------------------------------------------------------
# order, loaders
# --------------------------------------------------------------------------------------------


class EpochSampler(Sampler):
    """Training order for one epoch on one rank, yielding `(seed, epoch, index)` keys.

    The epoch's order is a permutation that depends only on (seed, epoch). Like torch's
    DistributedSampler, rank r of `world_size` takes every world_size-th index from position r;
    only whole batches are kept (all ranks get the same number), and a data set smaller than one
    global batch is repeated to fill it. `start_batch` skips the first batches of this rank, so
    a resumed run continues with exactly the batches it would have seen.
    """

    def __init__(
        self,
        n_items: int,
        batch_size: int,
        seed: int,
        epoch: int = 0,
        start_batch: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if n_items <= 0:
            raise CodecError("the training set is empty")
        if batch_size <= 0:
            raise CodecError(f"data.batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.n_items, self.batch_size = n_items, batch_size
        self.seed, self.epoch, self.rank, self.world_size = seed, epoch, rank, world_size
        global_batch = batch_size * world_size
        self.num_batches = max(1, n_items // global_batch)  # per rank, per epoch
        if not 0 <= start_batch <= self.num_batches:
            raise CodecError(
                f"cannot start at batch {start_batch} of epoch {epoch}: an epoch of this data has "
                f"{self.num_batches} batches (did the training data change since the checkpoint?)"
            )
        self.start_batch = start_batch

    def indices(self) -> np.ndarray:
        """All of this rank's indices for the epoch, (num_batches * batch_size,) int64."""
        order = np.random.default_rng([2, self.seed, self.epoch]).permutation(self.n_items)
        need = self.num_batches * self.batch_size * self.world_size
        if need > len(order):
            order = np.tile(order, -(-need // len(order)))
        return order[:need][self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        for index in self.indices()[self.start_batch * self.batch_size :]:
            yield (self.seed, self.epoch, int(index))

    def __len__(self) -> int:
        return (self.num_batches - self.start_batch) * self.batch_size


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers decode and resample; many torch threads only contend


def make_train_loader(
    dataset: TrainDataset,
    cfg: DataConfig,
    seed: int,
    epoch: int = 0,
    start_batch: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """One epoch of training batches for this rank, starting at batch `start_batch`.

    Batches are (cfg.batch_size, 1, T) float32, identical for any `cfg.num_workers`.
    """
    sampler = EpochSampler(len(dataset), cfg.batch_size, seed, epoch, start_batch, rank, world_size)
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=cfg.num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        worker_init_fn=_worker_init if cfg.num_workers > 0 else None,
        # its own generator: starting an epoch must not draw from the global torch RNG, or a
        # resumed run (which starts one more iterator) would diverge from an uninterrupted one
        generator=torch.Generator().manual_seed(seed * 100003 + epoch),
    )


def infinite_batches(
    dataset: TrainDataset,
    cfg: DataConfig,
    seed: int,
    start_epoch: int = 0,
    start_batch: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Endless training batches: yields (epoch, batch index within the epoch, batch).

    To resume after a checkpoint taken after batch (e, i), pass start_epoch=e, start_batch=i+1
    (a start_batch equal to the epoch length moves on to the next epoch).

    Yields:
        (epoch, batch_index, batch) with batch (cfg.batch_size, 1, T) float32.
    """
    epoch, first = start_epoch, start_batch
    while True:
        loader = make_train_loader(dataset, cfg, seed, epoch, first, rank, world_size)
        for i, batch in enumerate(loader, start=first):
            yield epoch, i, batch
        epoch, first = epoch + 1, 0


def make_val_loader(dataset: ValDataset) -> DataLoader:
    """Validation items one at a time (they differ in length): batches (1, 1, T)."""
    return DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0)


# --------------------------------------------------------------------------------------------
# build
# --------------------------------------------------------------------------------------------


@dataclass
class DataReport:
    """What `build_datasets` found and did.

    Attributes:
        source: the training data argument.
        layout: how it was read (folder, manifest, slr66, indictts, commonvoice, file).
        split: how validation was chosen: ``hash``, ``speaker-hash``, ``manifest``,
            ``val_data`` or ``none``.
        n_found: files listed (training source plus validation source).
        n_usable: files that passed the checks.
        n_train: files in the training set.
        n_val: files in the validation set (at most cfg.val_max_files).
        n_held_out: files kept out of training for validation (>= n_val).
        hours_train: audio in the training set.
        hours_val: audio in the validation files (whole files, before centre cropping).
        speakers_train: distinct known speakers in training (0 when unknown).
        speakers_val: distinct known speakers in validation.
        skipped: reason -> number of files skipped.
        skipped_examples: reason -> the first few skipped paths.
        converted: conversion -> number of files converted on the fly.
        converted_examples: conversion -> the first few paths.
        cache_files: the scan caches used.
    """

    source: str
    layout: str
    split: str
    n_found: int
    n_usable: int
    n_train: int
    n_val: int
    n_held_out: int
    hours_train: float
    hours_val: float
    speakers_train: int
    speakers_val: int
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    converted: dict[str, int] = field(default_factory=dict)
    converted_examples: dict[str, list[str]] = field(default_factory=dict)
    cache_files: list[str] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        """A few human-readable lines for the training log."""
        lines = [
            f"data: {self.source} ({self.layout}): {self.n_found} files, {self.n_usable} usable; "
            f"train {self.n_train} files / {self.hours_train:.2f} h, "
            f"val {self.n_val} files / {self.hours_val:.2f} h (split: {self.split})"
        ]
        if self.speakers_train or self.speakers_val:
            lines.append(f"  speakers: {self.speakers_train} train, {self.speakers_val} val")
        for title, counts, examples in (
            ("skipped", self.skipped, self.skipped_examples),
            ("converted", self.converted, self.converted_examples),
        ):
            for reason, count in sorted(counts.items()):
                shown = ", ".join(examples.get(reason, [])[:3])
                lines.append(f"  {title} {count} ({reason}): {shown}")
        if self.converted.get("upsampled_low_rate"):
            lines.append(
                "  note: upsampled files have no content above their old Nyquist frequency; "
                "set data.min_sample_rate to skip them"
            )
        return "\n".join(lines)


def _load_source(
    source: str | Path,
    cfg: DataConfig,
    sample_rate: int,
    cache_dir: str | Path | None,
    log: Callable[[str], None],
) -> tuple[Corpus, CheckedFiles, Path]:
    corpus = discover(source)
    cache_file = scan_cache_file(corpus.root, cache_dir)
    entries = scan_files(corpus.items, corpus.root, cache_file, log)
    checked = check_files(entries, cfg, sample_rate)
    n, n_bad = len(entries), len(entries) - len(checked.usable)
    if not checked.usable or n_bad / n > cfg.max_bad_fraction:
        reasons = ", ".join(f"{len(v)} {k}" for k, v in sorted(checked.skipped.items()))
        first = next(iter(checked.skipped.values()))[0]
        raise CodecError(
            f"{n_bad} of {n} audio files in {source} are unusable ({reasons}; e.g. {first}); "
            f"fix or remove them, or raise data.max_bad_fraction (now {cfg.max_bad_fraction})"
        )
    return corpus, checked, cache_file


def _speakers(entries: list[ScanEntry]) -> set[str]:
    return {e.item.speaker for e in entries if e.item.speaker is not None}


def build_datasets(
    data: str | Path,
    cfg: DataConfig,
    sample_rate: int,
    val_data: str | Path | None = None,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> tuple[TrainDataset, ValDataset, DataReport]:
    """Discover, scan, check and split a corpus into training and validation datasets.

    Validation comes from `val_data` when given; else from the manifest's split column when
    every row has one (``val``/``valid``/``validation``/``dev`` -> validation, ``test`` ->
    neither); else from `hash_split` with ``cfg.val_fraction`` (by speaker when
    ``cfg.speaker_disjoint``). Validation uses at most ``cfg.val_max_files`` files, chosen by
    path hash.

    Args:
        data: training folder, manifest, corpus layout or audio file.
        cfg: data settings.
        sample_rate: the model's rate; everything is resampled to it.
        val_data: optional separate validation source.
        cache_dir: where scan caches go; default: a hidden file in each corpus folder.
        log: receives the summary lines.

    Returns:
        (train dataset, validation dataset, report).

    Raises:
        CodecError: missing or empty data, mostly unusable files, speaker_disjoint without
            speaker ids, or no training files left after the split.
    """
    corpus, checked, cache_file = _load_source(data, cfg, sample_rate, cache_dir, log)
    skipped = {k: list(v) for k, v in checked.skipped.items()}
    converted = {k: list(v) for k, v in checked.converted.items()}
    caches = [str(cache_file)]
    n_found = len(corpus.items)
    usable = checked.usable
    n_usable = len(usable)
    if cfg.speaker_disjoint and not _speakers(usable):
        raise CodecError(
            f"data.speaker_disjoint is set but {data} has no speaker ids; use a manifest with a "
            "speaker column or a corpus layout that names speakers (SLR66, Common Voice, IndicTTS)"
        )
    labels = {e.item.split for e in usable}
    val_root = corpus.root
    if val_data is not None:
        vcorpus, vchecked, vcache = _load_source(val_data, cfg, sample_rate, cache_dir, log)
        n_found += len(vcorpus.items)
        n_usable += len(vchecked.usable)
        caches.append(str(vcache))
        for src, dst in ((vchecked.skipped, skipped), (vchecked.converted, converted)):
            for k, v in src.items():
                dst.setdefault(k, []).extend(v)
        val, val_root = vchecked.usable, vcorpus.root
        val_paths = {e.item.path for e in val}
        train = [e for e in usable if e.item.path not in val_paths]
        if len(train) < len(usable):
            log(f"  {len(usable) - len(train)} validation files removed from the training set")
        method = "val_data"
    elif None not in labels and labels & VAL_SPLITS:
        train = [e for e in usable if e.item.split not in VAL_SPLITS | EXCLUDED_SPLITS]
        val = [e for e in usable if e.item.split in VAL_SPLITS]
        method = "manifest"
        if cfg.speaker_disjoint and _speakers(train) & _speakers(val):
            log("  the manifest's split shares speakers; using a speaker hash split instead")
            train, val = hash_split(usable, corpus.root, cfg.val_fraction, True)
            method = "speaker-hash"
    else:
        train, val = hash_split(usable, corpus.root, cfg.val_fraction, cfg.speaker_disjoint)
        method = "speaker-hash" if cfg.speaker_disjoint else "hash"
    if cfg.speaker_disjoint and method == "val_data":
        shared = _speakers(val)
        kept = [e for e in train if e.item.speaker not in shared]
        if len(kept) < len(train):
            log(f"  {len(train) - len(kept)} training files of validation speakers removed")
        train = kept
    if not train:
        raise CodecError(
            f"no training files left in {data} after setting validation files aside; "
            "add data, lower data.val_fraction or pass separate validation data"
        )
    if not val:
        method = "none" if method in ("hash", "speaker-hash") else method
        log("  warning: no validation files (data.val_fraction is 0 or there is one file)")
    held_out = len(val)
    val = sorted(val, key=lambda e: _hash01(_rel_key(e.item.path, val_root)))
    val = val[: max(cfg.val_max_files, 0)]
    train_set = TrainDataset(train, cfg, sample_rate)
    val_set = ValDataset(val, cfg, sample_rate)
    report = DataReport(
        source=str(data),
        layout=corpus.layout,
        split=method,
        n_found=n_found,
        n_usable=n_usable,
        n_train=len(train_set),
        n_val=len(val_set),
        n_held_out=held_out,
        hours_train=train_set.hours,
        hours_val=val_set.hours,
        speakers_train=len(_speakers(train)),
        speakers_val=len(_speakers(val)),
        skipped={k: len(v) for k, v in skipped.items()},
        skipped_examples={k: v[:N_EXAMPLES] for k, v in skipped.items()},
        converted={k: len(v) for k, v in converted.items()},
        converted_examples={k: v[:N_EXAMPLES] for k, v in converted.items()},
        cache_files=caches,
    )
    for line in report.summary().splitlines():
        log(line)
    return train_set, val_set, report
