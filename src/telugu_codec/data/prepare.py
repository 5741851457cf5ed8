"""`prepare`: a corpus -> tar or Parquet shards at the codec rate, with a JSON index.

The source is anything training reads as map-style data: a folder, a manifest, a corpus layout
(SLR66, IndicTTS, Common Voice) or a Parquet/Arrow dataset. Every item is decoded once, checked
by the rules of the start-up scan (`scan.check_files`: unreadable, NaN, silent, clipped, too
short, below ``data.min_sample_rate``; those are skipped and counted by reason), mixed to mono,
resampled with soxr to the codec rate and stored as 16-bit FLAC:

- ``--format tar``: WebDataset shards ``PREFIX-000000.tar`` with members ``KEY.flac`` and
  ``KEY.json`` (``source``: the path relative to the corpus, ``duration``, ``speaker``,
  ``split``); KEY is the relative path without its extension;
- ``--format parquet``: ``PREFIX-000000.parquet`` with a Hugging Face ``Audio`` column
  ``audio`` ({bytes, path = the relative path}) and ``key``, ``duration``, ``speaker``,
  ``split`` columns, in row groups of `ROW_GROUP_ROWS` rows for fast random access.

A shard is closed when it holds ``shard_files`` items or ``shard_bytes`` bytes, and written
under a temporary name, then renamed. ``index.json`` lists the files, hours, speakers, what was
skipped and each shard's count, hours and size; training reads it instead of the shards.
Because the relative path is kept, training on the shards holds out the same validation files
as training on the original folder.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from .. import __version__
from ..audio import resample, to_mono
from ..checkpoint import atomic_write_text
from ..config import DataConfig
from ..errors import CodecError
from .corpora import AudioItem, discover
from .parquet import RecordSource, _pa, is_record_dataset
from .report import N_EXAMPLES
from .scan import ScanEntry, check_files, stats_of
from .shards import INDEX_NAME

FORMATS = ("tar", "parquet")
ROW_GROUP_ROWS = 8  # Parquet rows per row group: a crop reads (and caches) a whole row group
CHUNK = 256  # items converted at a time (bounds the memory of results waiting to be written)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b)\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_shard_size(text: str) -> tuple[int | None, int | None]:
    """``"1000"`` -> (1000 files, None); ``"512MB"`` / ``"1GiB"`` -> (None, bytes).

    Raises:
        CodecError: anything else.
    """
    text = str(text).strip()
    if text.isdigit() and int(text) > 0:
        return int(text), None
    m = _SIZE.match(text)
    if m and float(m.group(1)) > 0:
        return None, int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    raise CodecError(f"--shard-size must be a file count (1000) or a size (512MB), got '{text}'")


@dataclass
class _Converted:
    """One item after decoding and conversion: FLAC bytes, or the reason it was skipped."""

    item: AudioItem
    rel: str
    flac: bytes = b""
    seconds: float = 0.0
    reason: str | None = None
    notes: list[str] = field(default_factory=list)


def _relative(item: AudioItem, root: Path) -> str:
    try:
        return item.path.relative_to(root).as_posix()
    except ValueError:
        return item.path.as_posix().lstrip("/")


def _convert(
    item: AudioItem,
    rel: str,
    open_item: Callable[[AudioItem], object],
    cfg: DataConfig,
    sample_rate: int,
) -> _Converted:
    out = _Converted(item, rel)
    if item.row is None and not item.path.is_file():
        out.reason = "missing"
        return out
    if item.row is None and item.path.stat().st_size == 0:
        out.reason = "empty"
        return out
    try:
        with sf.SoundFile(open_item(item)) as f:  # type: ignore[arg-type]
            data = f.read(dtype="float32", always_2d=True)
            rate, subtype = int(f.samplerate), f.subtype
    except Exception:  # libsndfile raises several types for bad files
        out.reason = "unreadable"
        return out
    stats, error = stats_of(data, rate, subtype)
    checked = check_files([ScanEntry(item, stats, error)], cfg, sample_rate)
    if not checked.usable:
        out.reason = next(iter(checked.skipped))
        return out
    out.notes = list(checked.converted)
    x = resample(to_mono(data), rate, sample_rate)
    x = np.clip(x, -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, x, sample_rate, format="FLAC", subtype="PCM_16")
    out.flac, out.seconds = buf.getvalue(), len(x) / sample_rate
    return out


class _ShardWriter:
    """Writes shards of one format in turn and keeps the index's per-shard lines."""

    def __init__(self, out: Path, fmt: str, prefix: str, sample_rate: int):
        self.out, self.fmt, self.prefix, self.sample_rate = out, fmt, prefix, sample_rate
        self.shards: list[dict] = []
        self.rows: list[tuple[str, _Converted]] = []
        self.bytes = 0
        self.tar: tarfile.TarFile | None = None
        self.tmp: Path | None = None

    @property
    def name(self) -> str:
        return f"{self.prefix}-{len(self.shards):06d}.{self.fmt}"

    def add(self, key: str, c: _Converted) -> None:
        if self.fmt == "tar" and self.tar is None:
            self.tmp = self.out / f".{self.name}.tmp"
            self.tar = tarfile.open(self.tmp, "w", format=tarfile.PAX_FORMAT)
        if self.tar is not None:
            meta = {
                "source": c.rel,
                "duration": round(c.seconds, 4),
                "speaker": c.item.speaker,
                "split": c.item.split,
                "sample_rate": self.sample_rate,
            }
            self._member(f"{key}.flac", c.flac)
            self._member(f"{key}.json", json.dumps(meta, ensure_ascii=False).encode("utf-8"))
        self.rows.append((key, c))
        self.bytes += len(c.flac)

    def _member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 0  # reproducible shards
        assert self.tar is not None
        self.tar.addfile(info, io.BytesIO(data))

    def close_shard(self) -> None:
        if not self.rows:
            return
        final = self.out / self.name
        if self.fmt == "tar":
            assert self.tar is not None and self.tmp is not None
            self.tar.close()
            self.tar = None
            os.replace(self.tmp, final)
        else:
            self._write_parquet(final)
        self.shards.append(
            {
                "name": final.name,
                "files": len(self.rows),
                "hours": round(sum(c.seconds for _, c in self.rows) / 3600, 6),
                "bytes": final.stat().st_size,
            }
        )
        self.rows, self.bytes = [], 0

    def _write_parquet(self, final: Path) -> None:
        pa, pq = _pa()
        audio_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        features = {
            "audio": {"sampling_rate": self.sample_rate, "_type": "Audio"},
            **{k: {"dtype": "string", "_type": "Value"} for k in ("key", "speaker", "split")},
            "duration": {"dtype": "float32", "_type": "Value"},
        }
        schema = pa.schema(
            [
                ("audio", audio_type),
                ("key", pa.string()),
                ("duration", pa.float32()),
                ("speaker", pa.string()),
                ("split", pa.string()),
            ],
            metadata={"huggingface": json.dumps({"info": {"features": features}})},
        )
        table = pa.table(
            {
                "audio": [{"bytes": c.flac, "path": c.rel} for _, c in self.rows],
                "key": [k for k, _ in self.rows],
                "duration": [c.seconds for _, c in self.rows],
                "speaker": [c.item.speaker for _, c in self.rows],
                "split": [c.item.split for _, c in self.rows],
            },
            schema=schema,
        )
        tmp = self.out / f".{final.name}.tmp"
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS, compression="none")
        os.replace(tmp, final)


def _items(src: str | Path, cfg: DataConfig) -> tuple[Path, list[AudioItem], Callable]:
    """(root, items, opener) of a map-style source."""
    path = Path(src).expanduser()
    if path.exists() and is_record_dataset(path):
        rec = RecordSource(path, cfg.audio_column)
        return rec.root, rec.items(), lambda it: rec.open(it.row)
    corpus = discover(path)
    return corpus.root, corpus.items, lambda it: str(it.path)


def _unique_keys(rels: list[str]) -> Iterator[str]:
    seen: set[str] = set()
    for rel in rels:
        folder, _, base = rel.rpartition("/")
        stem = base.split(".", 1)[0] if "#" not in base else base
        key = re.sub(r"[^\w/-]", "_", f"{folder}/{stem}" if folder else stem)
        unique, k = key, 2
        while unique in seen:
            unique, k = f"{key}_{k}", k + 1
        seen.add(unique)
        yield unique


def prepare(
    src: str | Path,
    out: str | Path,
    fmt: str = "tar",
    shard_size: str = "1000",
    sample_rate: int = 16000,
    cfg: DataConfig | None = None,
    prefix: str = "train",
    workers: int = 0,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Convert `src` into shards in `out` and write ``out/index.json`` (module docstring).

    Args:
        src: a folder, manifest, corpus layout or Parquet/Arrow dataset.
        out: the output folder (created).
        fmt: ``tar`` or ``parquet``.
        shard_size: items per shard (``"1000"``) or bytes per shard (``"512MB"``).
        sample_rate: the codec rate the audio is resampled to.
        cfg: the checks' thresholds (silence, clipping, minimum rate).
        prefix: shard names are ``PREFIX-000000.EXT``.
        workers: parallel conversions (0: one per CPU, at most 16).
        force: write into a folder that already holds an index.
        log: progress lines.

    Returns:
        The index (also written to ``out/index.json``).

    Raises:
        CodecError: bad arguments, an output folder that holds shards, or nothing usable.
    """
    if fmt not in FORMATS:
        raise CodecError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    cfg = cfg or DataConfig()
    max_files, max_bytes = parse_shard_size(shard_size)
    out = Path(out)
    if (out / INDEX_NAME).exists() and not force:
        raise CodecError(f"{out} already holds prepared shards; pass --force or pick another OUT")
    out.mkdir(parents=True, exist_ok=True)
    root, items, open_item = _items(src, cfg)
    if not items:
        raise CodecError(f"no audio found in {src}")
    rels = [_relative(it, root) for it in items]
    keys = list(_unique_keys(rels))
    workers = workers or min(16, os.cpu_count() or 1)
    writer = _ShardWriter(out, fmt, prefix, sample_rate)
    skipped: dict[str, list[str]] = {}
    converted: Counter = Counter()
    speakers: set[str] = set()
    n_done = 0
    log(f"preparing {len(items)} items from {src} as {fmt} shards at {sample_rate} Hz in {out}")
    last = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(items), CHUNK):
            idx = range(start, min(start + CHUNK, len(items)))
            results = pool.map(
                lambda i: _convert(items[i], rels[i], open_item, cfg, sample_rate), idx
            )
            for i, c in zip(idx, results):
                if c.reason is not None:
                    skipped.setdefault(c.reason, []).append(c.rel)
                    continue
                converted.update(c.notes)
                if c.item.speaker is not None:
                    speakers.add(c.item.speaker)
                writer.add(keys[i], c)
                n_done += 1
                full = (max_files and len(writer.rows) >= max_files) or (
                    max_bytes and writer.bytes >= max_bytes
                )
                if full:
                    writer.close_shard()
            if time.monotonic() - last > 30:
                last = time.monotonic()
                done = min(start + CHUNK, len(items))
                log(f"  {done}/{len(items)} items, {len(writer.shards)} shards written")
    writer.close_shard()
    if not writer.shards:
        reasons = ", ".join(f"{len(v)} {k}" for k, v in sorted(skipped.items()))
        raise CodecError(f"nothing usable in {src} ({reasons})")
    index = {
        "format": fmt,
        "sample_rate": sample_rate,
        "files": n_done,
        "hours": round(sum(s["hours"] for s in writer.shards), 6),
        "speakers": len(speakers),
        "skipped": {k: len(v) for k, v in sorted(skipped.items())},
        "skipped_examples": {k: v[:N_EXAMPLES] for k, v in sorted(skipped.items())},
        "converted": dict(sorted(converted.items())),
        "shards": writer.shards,
        "source": str(src),
        "created_by": f"telugu-codec {__version__}",
    }
    atomic_write_text(out / INDEX_NAME, json.dumps(index, indent=1, ensure_ascii=False))
    hours = index["hours"]
    log(
        f"wrote {len(writer.shards)} {fmt} shards with {n_done} files ({hours:.2f} h, "
        f"{len(speakers)} speakers); skipped {sum(index['skipped'].values())}"
        + (f" ({', '.join(f'{v} {k}' for k, v in index['skipped'].items())})" if skipped else "")
    )
    return index
