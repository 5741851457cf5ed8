"""Token shards on disk: Parquet or WebDataset tar, written atomically, read back exactly.

One row per utterance:

- ``codes``: uint16 (n_q, n_frames) (Parquet: a list of n_q lists of uint16);
- ``n_frames``: int32, ``ceil(samples / hop)`` of the audio at the codec rate;
- ``path``: the source key (a file path, ``file.parquet#row`` or ``shard.tar#key``);
- ``duration``: float32 seconds at the codec rate;
- ``speaker``: string or null;
- ``pitch``: uint8 (n_frames,), only for a model with a pitch channel (0 = unvoiced).

The shard's metadata (`ShardMeta`: codec hash, config, sample and frame rates, hop, n_q, K,
pitch) is the Parquet schema metadata key ``telugu_codec`` (JSON), or the tar's first member
``__tokens__.json``. A WebDataset sample is ``KEY.codes.npy`` + ``KEY.json`` (+
``KEY.pitch.npy``), KEY = ``SHARD_ROW`` numbers. Both writers are deterministic (no times, no
host names): the same rows give the same bytes, which is what makes `tokenize` resumable.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import CodecError, StorageError

META_KEY = b"telugu_codec"
WDS_META = "__tokens__.json"
FORMATS = ("parquet", "wds")
SUFFIX = {"parquet": ".parquet", "wds": ".tar"}
SHARD_FORMAT_VERSION = 1


@dataclass
class ShardMeta:
    """What every token shard says about the codec that wrote it."""

    codec_hash: str
    sample_rate: int
    frame_rate: float
    hop_length: int
    n_q: int
    codebook_size: int
    num_codes: int
    pitch: bool
    config: str = ""  # the codec's YAML config
    format_version: int = SHARD_FORMAT_VERSION
    n_frames_rule: str = "ceil(samples / hop_length)"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, source: str) -> ShardMeta:
        try:
            d = json.loads(text)
            return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        except (ValueError, TypeError) as e:
            raise CodecError(f"{source}: bad token shard metadata ({e})") from e


@dataclass
class TokenRow:
    """One utterance's tokens. codes: (n_q, F) uint16; pitch: (F,) uint8 or None."""

    codes: np.ndarray
    path: str
    duration: float
    speaker: str | None = None
    pitch: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.codes.shape[1])


def _pa():
    from ..data.parquet import _pa as load

    return load()


# ------------------------------------------------------------------------------ writing
def _parquet_bytes(rows: list[TokenRow], meta: ShardMeta) -> bytes:
    pa, pq = _pa()
    n_q = meta.n_q
    frames = np.array([r.n_frames for r in rows], dtype=np.int32)
    flat = np.concatenate([r.codes.astype(np.uint16).reshape(-1) for r in rows] or [[]])
    inner = np.concatenate([[0], np.cumsum(np.repeat(frames, n_q))]).astype(np.int32)
    outer = (np.arange(len(rows) + 1) * n_q).astype(np.int32)
    values = pa.array(flat.astype(np.uint16), type=pa.uint16())
    codes = pa.ListArray.from_arrays(pa.array(outer), pa.ListArray.from_arrays(inner, values))
    cols = {
        "codes": codes,
        "n_frames": pa.array(frames, type=pa.int32()),
        "path": pa.array([r.path for r in rows], type=pa.string()),
        "duration": pa.array([r.duration for r in rows], type=pa.float32()),
        "speaker": pa.array([r.speaker for r in rows], type=pa.string()),
    }
    if meta.pitch:
        p = np.concatenate([np.asarray(r.pitch, dtype=np.uint8) for r in rows] or [[]])
        offs = np.concatenate([[0], np.cumsum(frames)]).astype(np.int32)
        cols["pitch"] = pa.ListArray.from_arrays(offs, pa.array(p.astype(np.uint8)))
    table = pa.table(cols).replace_schema_metadata({META_KEY: meta.to_json().encode()})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, compression="zstd", row_group_size=1024)
    return buf.getvalue().to_pybytes()


def _npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(x), allow_pickle=False)
    return buf.getvalue()


def _wds_bytes(rows: list[TokenRow], meta: ShardMeta, shard: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0  # reproducible bytes
            tar.addfile(info, io.BytesIO(data))

        add(WDS_META, meta.to_json().encode())
        for i, r in enumerate(rows):
            key = f"{shard:06d}_{i:06d}"
            add(f"{key}.codes.npy", _npy(r.codes.astype(np.uint16)))
            if meta.pitch:
                add(f"{key}.pitch.npy", _npy(np.asarray(r.pitch, dtype=np.uint8)))
            info = {"path": r.path, "duration": r.duration, "speaker": r.speaker}
            info["n_frames"] = r.n_frames
            add(f"{key}.json", json.dumps(info, ensure_ascii=False, sort_keys=True).encode())
    return buf.getvalue()


def write_shard(path: Path, rows: list[TokenRow], meta: ShardMeta, shard: int = 0) -> int:
    """Write `rows` to `path` (format from its suffix) via a temporary file and `os.replace`,
    so a kill leaves either no shard or a whole one. Returns the size in bytes."""
    for r in rows:
        if r.codes.ndim != 2 or r.codes.shape[0] != meta.n_q:
            raise ValueError(f"codes of {r.path} are {r.codes.shape}, want ({meta.n_q}, F)")
        if meta.pitch and (r.pitch is None or len(r.pitch) != r.n_frames):
            raise ValueError(f"pitch of {r.path} does not match its frames")
    data = _wds_bytes(rows, meta, shard) if path.suffix == ".tar" else _parquet_bytes(rows, meta)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise StorageError.writing(path, e) from e
    return len(data)


# ------------------------------------------------------------------------------ reading
def read_meta(path: str | Path) -> ShardMeta:
    """The `ShardMeta` of a Parquet or tar token shard. Raises CodecError."""
    path = Path(path)
    try:
        if path.suffix == ".tar":
            with tarfile.open(path, "r:") as tar:
                first = tar.next()
                if first is None or first.name != WDS_META:
                    raise CodecError(f"{path} is not a token shard (no {WDS_META})")
                return ShardMeta.from_json(tar.extractfile(first).read(), str(path))
        _, pq = _pa()
        meta = pq.read_schema(path).metadata or {}
    except (OSError, tarfile.TarError, ValueError) as e:
        raise CodecError(f"cannot read token shard {path}: {str(e).splitlines()[0]}") from e
    if META_KEY not in meta:
        raise CodecError(f"{path} is not a token shard (no telugu_codec metadata)")
    return ShardMeta.from_json(meta[META_KEY], str(path))


def read_shard(path: str | Path) -> tuple[ShardMeta, list[TokenRow]]:
    """Every row of a token shard, codes as uint16 (n_q, F) arrays. Raises CodecError."""
    path = Path(path)
    meta = read_meta(path)
    try:
        rows = _read_wds(path, meta) if path.suffix == ".tar" else _read_parquet(path, meta)
    except (OSError, tarfile.TarError, ValueError, KeyError) as e:
        raise CodecError(f"cannot read token shard {path}: {str(e).splitlines()[0]}") from e
    return meta, rows


def _read_parquet(path: Path, meta: ShardMeta) -> list[TokenRow]:
    _, pq = _pa()
    t = pq.read_table(path)
    frames = t.column("n_frames").to_numpy()
    codes = t.column("codes").combine_chunks().flatten().flatten().to_numpy(zero_copy_only=False)
    pitch = None
    if meta.pitch:
        pitch = t.column("pitch").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    paths, durs = t.column("path").to_pylist(), t.column("duration").to_pylist()
    speakers = t.column("speaker").to_pylist()
    rows, at, pat = [], 0, 0
    for i, f in enumerate(frames):
        n = int(f) * meta.n_q
        c = codes[at : at + n].reshape(meta.n_q, int(f)).astype(np.uint16)
        p = pitch[pat : pat + int(f)].astype(np.uint8) if pitch is not None else None
        rows.append(TokenRow(c, paths[i], float(durs[i]), speakers[i], p))
        at, pat = at + n, pat + int(f)
    return rows


def _read_wds(path: Path, meta: ShardMeta) -> list[TokenRow]:
    parts: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path, "r:") as tar:
        for m in tar:
            if m.isfile() and m.name != WDS_META:
                key, _, ext = m.name.partition(".")
                parts.setdefault(key, {})[ext] = tar.extractfile(m).read()
    rows = []
    for key in sorted(parts):
        p = parts[key]
        info = json.loads(p["json"])
        codes = np.load(io.BytesIO(p["codes.npy"]), allow_pickle=False)
        pitch = np.load(io.BytesIO(p["pitch.npy"]), allow_pickle=False) if meta.pitch else None
        rows.append(TokenRow(codes, info["path"], float(info["duration"]), info["speaker"], pitch))
    return rows


def read_row(path: str | Path, row: int) -> tuple[ShardMeta, TokenRow]:
    """Row `row` of a token shard. Raises CodecError when there is no such row."""
    meta, rows = read_shard(path)
    if not 0 <= row < len(rows):
        raise CodecError(f"{path} has {len(rows)} rows; row {row} does not exist")
    return meta, rows[row]
