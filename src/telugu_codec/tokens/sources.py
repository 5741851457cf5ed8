"""What `tokenize` reads: every item of the data arguments `train --data` accepts, in order.

`list_items` turns the arguments into `TokenItem`s (a source key, a speaker where known and a
way to open the audio) in a fixed order: argument by argument, each in the data layer's own
order (`corpora.discover` for folders, manifests and corpus layouts; `parquet.RecordSource`
for Parquet/Arrow datasets; tar members in their shard order). Nothing is decoded here; tar
members are opened by offset (plain ``.tar`` only: a compressed shard has no random access).
`read_wave` decodes one item the way `Codec.encode` would see it: mono mixdown, then soxr to
the codec rate, refusing empty and non-finite audio.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from ..audio import resample, to_mono
from ..audio_stream import check_input_rate
from ..config import DataConfig
from ..data.corpora import discover
from ..data.parquet import RecordSource, is_record_dataset
from ..data.shards import AUDIO_EXTS, _split_name, is_shard_spec, list_shards
from ..errors import AudioError, CodecError


@dataclass
class TokenItem:
    """One utterance to tokenize.

    Attributes:
        key: the source key written to the ``path`` column (a file path, ``file.parquet#row``
            or ``shard.tar#key``).
        speaker: where the layout, manifest or metadata gives one.
        open: returns what `soundfile.SoundFile` opens (a path or a fresh file object).
    """

    key: str
    speaker: str | None
    open: Callable[[], str | BinaryIO]


def _read_range(path: str, offset: int, size: int) -> BinaryIO:
    with open(path, "rb") as f:
        f.seek(offset)
        return io.BytesIO(f.read(size))


def _tar_items(shard: Path) -> list[TokenItem]:
    """The samples of one plain tar shard, by header only (data read by offset later)."""
    try:
        with tarfile.open(shard, "r:") as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            groups: dict[str, dict[str, tarfile.TarInfo]] = {}
            for m in members:
                key, ext = _split_name(m.name)
                groups.setdefault(key, {})[ext] = m
            items = []
            for key, parts in groups.items():
                ext = next((e for e in AUDIO_EXTS if e in parts), None)
                if ext is None:
                    continue  # a key without audio is not an utterance (prepare never writes one)
                speaker = None
                if "json" in parts:
                    try:
                        meta = json.loads(tar.extractfile(parts["json"]).read())  # type: ignore[union-attr]
                        s = meta.get("speaker") if isinstance(meta, dict) else None
                        speaker = None if s in (None, "") else str(s)
                    except ValueError:
                        pass
                m = parts[ext]
                opener = partial(_read_range, str(shard), m.offset_data, m.size)
                items.append(TokenItem(f"{shard.name}#{key}", speaker, opener))
    except tarfile.ReadError as e:
        raise CodecError(
            f"cannot read {shard} as a plain tar ({e}); tokenize reads uncompressed .tar "
            "shards: decompress it first"
        ) from e
    except OSError as e:
        raise CodecError(f"cannot read {shard}: {e}") from e
    return items


def list_items(data: Sequence[str | Path], cfg: DataConfig | None = None) -> list[TokenItem]:
    """Every item of `data` (folders, manifests, corpus layouts, audio files, Parquet/Arrow
    datasets, tar shards), in a fixed order.

    Raises:
        CodecError: a missing path, a source with no audio, a compressed tar shard.
    """
    cfg = cfg or DataConfig()
    if not data:
        raise CodecError("no data given: pass one or more folders, manifests or datasets")
    items: list[TokenItem] = []
    for spec in data:
        text = str(spec)
        if is_shard_spec(text):
            for shard in list_shards(text):
                items += _tar_items(shard)
            continue
        path = Path(text).expanduser()
        if path.exists() and is_record_dataset(path):
            rec = RecordSource(path, cfg.audio_column)
            for it in rec.items():
                row = int(it.row)  # type: ignore[arg-type]
                items.append(TokenItem(rec.label(row), it.speaker, partial(rec.open, row)))
            continue
        for it in discover(path).items:
            items.append(TokenItem(str(it.path), it.speaker, partial(str, it.path)))
    if not items:
        raise CodecError(f"no audio found in {', '.join(map(str, data))}")
    return items


def read_wave(item: TokenItem, sample_rate: int) -> np.ndarray:
    """(T,) float32 mono at `sample_rate`: what `Codec.encode(audio, rate)` encodes.

    Raises:
        AudioError: unreadable, empty or non-finite audio, or an absurd sample rate.
    """
    try:
        with sf.SoundFile(item.open()) as f:
            data = f.read(dtype="float32", always_2d=True)
            rate = int(f.samplerate)
    except AudioError:
        raise
    except Exception as e:  # libsndfile, a missing file, a row without audio
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioError(f"unreadable ({msg})") from e
    if data.shape[0] == 0:
        raise AudioError("no samples")
    if not np.isfinite(data).all():
        raise AudioError("NaN or infinite samples")
    check_input_rate(rate, item.key)
    x = resample(to_mono(data), rate, sample_rate)
    return np.ascontiguousarray(x, dtype=np.float32)


def header_samples(item: TokenItem, sample_rate: int) -> int | None:
    """Length at `sample_rate` from the header (for bucketing), None when it cannot be read
    (the item is then read, and its problem reported, with its batch)."""
    try:
        with sf.SoundFile(item.open()) as f:
            return int(f.frames) * sample_rate // max(int(f.samplerate), 1)
    except Exception:  # reported by read_wave
        return None
