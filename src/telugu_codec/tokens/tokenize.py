"""`tokenize`: a corpus -> shards of codec tokens, resumable, split over ranks, one index.

How a run goes:

1. `sources.list_items` lists every item of the data arguments in a fixed order; item i goes
   to shard ``i // shard_items`` (``tokens-000000.parquet``, ...), and shard j to rank
   ``j % world_size``, so ranks write disjoint shards and the split never depends on timing.
2. ``plan.json`` records the codec hash, n_q, format, shard size, data and a digest of the item
   keys. A run into a folder whose plan differs is refused: tokens of another codec (or other
   settings) are never appended to.
3. Each shard's items are read (`sources.read_wave`), sorted by length and cut into batches of
   at most ``batch_seconds`` of padded audio (bucketing), encoded by `encode_batch`, and
   written back in item order to a temporary file renamed into place (`shards.write_shard`).
   Unreadable, empty or non-finite items are skipped and listed with the reason.
4. After every shard, the rank's progress file (``.progress/rank-00000.json``) is rewritten
   atomically. A rerun skips the shards that are listed there and exist, so a run killed at
   any moment resumes at its first unfinished shard, and its shards have the same bytes as an
   uninterrupted run (the writers are deterministic).
5. When every shard of the plan is done (the last rank to finish sees it; or
   ``tokenize --merge``), ``index.json`` (shards, rows, frames, hours), ``skipped.json`` and
   ``vocab.json`` (`vocab.vocab_for`) are written.

`encode_batch` is the one place the model is called: one padded batch through the
padding-aware `Codec.encode_batch`, whose codes are bit-identical to `Codec.encode` of each
file alone, with ``n_frames = ceil(samples / hop_length)`` (the encoder pads the input to a
whole frame).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import atomic_write_text, make_output_dir
from ..config import DataConfig, to_yaml
from ..errors import CodecError
from .shards import FORMATS, SUFFIX, ShardMeta, TokenRow, read_meta, write_shard
from .sources import TokenItem, header_samples, list_items, read_wave
from .vocab import vocab_for

PLAN_NAME = "plan.json"
INDEX_NAME = "index.json"
SKIPPED_NAME = "skipped.json"
VOCAB_NAME = "vocab.json"
PROGRESS_DIR = ".progress"
MAX_CODEBOOK = 1 << 16  # codes are stored as uint16
LOG_EVERY_S = 10.0


@dataclass
class ItemCodes:
    """One item's tokens: codes (n_q, F) uint16; pitch (F,) uint8 or None."""

    codes: np.ndarray
    pitch: np.ndarray | None = None


def encode_batch(codec, waves: list[np.ndarray], n_q: int) -> list[ItemCodes]:
    """Encode a batch of utterances: the only model call of `tokenize`.

    Args:
        codec: a loaded `Codec`.
        waves: (T_i,) float32 mono at ``codec.sample_rate``, any lengths.
        n_q: codebooks.

    Returns:
        One `ItemCodes` per wave with ``ceil(T_i / hop_length)`` frames.

    One padded batch through `Codec.encode_batch` (padding-aware: each item's gain from its
    own samples, only its own frames): bit-identical to `Codec.encode` of each file alone
    (tests/test_invariance.py; tests/test_tokens_tokenize.py compares with `encode`).
    """
    if not waves:
        return []
    lengths = [int(np.asarray(w).shape[-1]) for w in waves]
    if min(lengths) < 1:
        raise CodecError("cannot encode empty audio")
    audio = torch.zeros(len(waves), 1, max(lengths))
    for i, w in enumerate(waves):
        audio[i, 0, : lengths[i]] = torch.from_numpy(np.asarray(w, dtype=np.float32))
    with torch.inference_mode():
        enc = codec.encode_batch(audio, lengths, n_q)
    out = []
    for i in range(len(waves)):
        f = int(enc.n_frames[i])
        pitch = None if enc.pitch is None else enc.pitch[i, :f].numpy().astype(np.uint8)
        out.append(ItemCodes(enc.item(i).numpy().astype(np.uint16), pitch))
    return out


def buckets(lengths: dict[int, int], max_samples: int) -> list[list[int]]:
    """Item indices sorted by length (ties by index), cut into batches whose padded size
    (items x longest) stays within `max_samples`; an item longer than that is alone."""
    order = sorted(lengths, key=lambda i: (lengths[i], i))
    out: list[list[int]] = []
    for i in order:
        if out and (len(out[-1]) + 1) * lengths[i] <= max_samples:
            out[-1].append(i)
        else:
            out.append([i])
    return out


# ------------------------------------------------------------------------------ the plan
def _plan(items: list[TokenItem], data: Sequence[str], codec, n_q: int, fmt: str,
          shard_items: int, checkpoint: str) -> dict:  # fmt: skip
    keys = hashlib.sha256("\n".join(it.key for it in items).encode()).hexdigest()
    return {
        "codec_hash": codec.model_hash,
        "n_q": n_q,
        "format": fmt,
        "shard_items": shard_items,
        "items": len(items),
        "shards": math.ceil(len(items) / shard_items),
        "items_sha256": keys,
        "data": [str(d) for d in data],
        "checkpoint": checkpoint,  # where the codec came from (for tokens-stats; not compared)
    }


def _check_plan(out: Path, plan: dict) -> None:
    """Write ``plan.json``, or refuse a folder holding another codec's or run's tokens."""
    file = out / PLAN_NAME
    old = None
    if file.is_file():
        try:
            old = json.loads(file.read_text(encoding="utf-8"))
        except ValueError as e:
            raise CodecError(f"{file} is damaged ({e}); pick another --out") from e
    else:
        found = sorted(p for p in out.glob("tokens-*") if p.suffix in (".parquet", ".tar"))
        if found:
            old = {"codec_hash": read_meta(found[0]).codec_hash}
    if old is None:
        atomic_write_text(file, json.dumps(plan, indent=1))
        return
    if old.get("codec_hash") != plan["codec_hash"]:
        raise CodecError(
            f"{out} holds tokens of codec {old.get('codec_hash')}, not of this codec "
            f"({plan['codec_hash']}); tokens of two codecs never share a folder: pick another --out"
        )
    for key in ("n_q", "format", "shard_items", "items", "items_sha256"):
        if old.get(key) != plan[key]:
            raise CodecError(
                f"{out} was started with other settings ({key}: {old.get(key)} there, "
                f"{plan[key]} now); rerun with the same data and options or pick another --out"
            )


def shard_name(j: int, fmt: str) -> str:
    return f"tokens-{j:06d}{SUFFIX[fmt]}"


def _progress_file(out: Path, rank: int) -> Path:
    return out / PROGRESS_DIR / f"rank-{rank:05d}.json"


def _done(out: Path) -> dict[str, dict]:
    """Shard name -> its entry, for every shard some rank finished and that exists (a shard
    with no rows has no file)."""
    done: dict[str, dict] = {}
    for f in sorted((out / PROGRESS_DIR).glob("rank-*.json")):
        try:
            entries = json.loads(f.read_text(encoding="utf-8"))["shards"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # rewritten atomically: only a hand-edited file is unreadable
        for e in entries:
            if e.get("rows") == 0 or (out / e["name"]).is_file():
                done[e["name"]] = e
    return done


# ------------------------------------------------------------------------------ progress
@dataclass
class _Progress:
    log: Callable[[str], None]
    total_shards: int
    seconds: float = 0.0
    shards: int = 0
    start: float = field(default_factory=time.monotonic)
    last: float = 0.0

    def add(self, seconds: float, shard_done: bool = False, force: bool = False) -> None:
        self.seconds += seconds
        self.shards += int(shard_done)
        now = time.monotonic()
        if force or now - self.last >= LOG_EVERY_S:
            self.last = now
            self.log(self.line())

    @property
    def hours_per_hour(self) -> float:
        wall = time.monotonic() - self.start
        return self.seconds / wall if wall > 0 else 0.0

    def line(self) -> str:
        return (
            f"tokenize: {self.seconds / 3600:.3f} h of audio, {self.shards}/{self.total_shards} "
            f"shards, {self.hours_per_hour:.0f} h/h ({self.hours_per_hour:.0f}x real time)"
        )


# ------------------------------------------------------------------------------ one shard
def tokenize_shard(
    codec, items: list[TokenItem], n_q: int, batch_seconds: float, progress: _Progress
) -> tuple[list[TokenRow], list[dict]]:
    """(rows in item order, skipped [{path, reason}]) for one shard's items."""
    sr = codec.sample_rate
    lengths = {i: header_samples(it, sr) or 0 for i, it in enumerate(items)}
    max_samples = max(1, int(batch_seconds * sr))
    got: dict[int, TokenRow] = {}
    reasons: dict[int, str] = {}
    for batch in buckets(lengths, max_samples):
        waves, ok = [], []
        for i in batch:
            try:
                waves.append(read_wave(items[i], sr))
                ok.append(i)
            except CodecError as e:
                reasons[i] = str(e)
        for i, w, c in zip(ok, waves, encode_batch(codec, waves, n_q)):
            if c.codes.shape[1] != -(-len(w) // codec.hop_length):
                raise RuntimeError(
                    f"{items[i].key}: {c.codes.shape[1]} frames for {len(w)} samples"
                )
            it = items[i]
            got[i] = TokenRow(c.codes, it.key, len(w) / sr, it.speaker, c.pitch)
        progress.add(sum(len(w) for w in waves) / sr)
    rows = [got[i] for i in range(len(items)) if i in got]
    skipped = [{"path": items[i].key, "reason": reasons[i]} for i in sorted(reasons)]
    return rows, skipped


# ------------------------------------------------------------------------------ the run
@dataclass
class TokenizeResult:
    """What one `tokenize` call did (this rank)."""

    shards_written: int
    shards_resumed: int
    rows: int
    skipped: int
    hours: float
    hours_per_hour: float
    index: dict | None  # the merged index when every shard of the plan is done


def shard_meta(codec, n_q: int) -> ShardMeta:
    return ShardMeta(
        codec_hash=codec.model_hash,
        sample_rate=codec.sample_rate,
        frame_rate=codec.frame_rate,
        hop_length=codec.hop_length,
        n_q=n_q,
        codebook_size=codec.codebook_size,
        num_codes=codec.num_codes,
        pitch=codec.has_pitch,
        config=to_yaml(codec.config),
    )


def tokenize(
    codec,
    data: Sequence[str | Path],
    out: str | Path,
    n_q: int | None = None,
    fmt: str = "parquet",
    batch_seconds: float = 60.0,
    shard_items: int = 1000,
    rank: int = 0,
    world_size: int = 1,
    cfg: DataConfig | None = None,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
    checkpoint: str = "",
) -> TokenizeResult:
    """Tokenize `data` into shards in `out` (module docstring).

    Args:
        codec: a loaded `Codec` (weight norm removed for speed; the hash is kept).
        data: data arguments, as for ``train --data``.
        n_q: codebooks (default all).
        fmt: ``parquet`` or ``wds`` (WebDataset tar).
        batch_seconds: padded audio per batch (items x longest item).
        shard_items: items per shard.
        rank, world_size: this process's part (shard j belongs to rank j % world_size).
        cfg: data settings (``audio_column`` for Parquet/Arrow).
        log: progress lines.
        stop_after: stop after writing this many shards (tests: a kill between shards).
        checkpoint: where `codec` came from, recorded in the plan (for ``tokens-stats``).

    Raises:
        CodecError: bad options, no data, a folder holding another codec's tokens.
    """
    if fmt not in FORMATS:
        raise CodecError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if not (batch_seconds > 0 and math.isfinite(batch_seconds)):
        raise CodecError(f"--batch-seconds must be a positive number, got {batch_seconds}")
    if shard_items < 1:
        raise CodecError(f"--shard-items must be at least 1, got {shard_items}")
    if not 0 <= rank < world_size:
        raise CodecError(f"rank {rank} is not in 0..{world_size - 1} (world size {world_size})")
    if codec.codebook_size > MAX_CODEBOOK:
        raise CodecError(f"codes are stored as uint16; K={codec.codebook_size} does not fit")
    n_q = codec.check_n_q(n_q)
    out = make_output_dir(out)
    items = list_items(data, cfg)
    plan = _plan(items, data, codec, n_q, fmt, shard_items, checkpoint)
    _check_plan(out, plan)
    meta = shard_meta(codec, n_q)
    mine = [j for j in range(plan["shards"]) if j % world_size == rank]
    done = _done(out)
    progress_file = _progress_file(out, rank)
    entries = [done[n] for n in sorted(done) if int(n[7:13]) % world_size == rank]
    progress = _Progress(log, len(mine))
    n_done = sum(shard_name(j, fmt) in done for j in mine)
    log(
        f"tokenizing {len(items)} items into {plan['shards']} {fmt} shards in {out} "
        f"(rank {rank} of {world_size}: {len(mine)} shards, {n_done} already done), "
        f"codec {codec.model_hash}, n_q {n_q}"
    )
    written = resumed = rows_n = skipped_n = 0
    for j in mine:
        name = shard_name(j, fmt)
        if name in done:
            resumed += 1
            continue
        if stop_after is not None and written >= stop_after:
            break
        part = items[j * shard_items : (j + 1) * shard_items]
        rows, skipped = tokenize_shard(codec, part, n_q, batch_seconds, progress)
        # a shard whose every item was skipped has no file (its progress entry says 0 rows): a
        # reader that globs the shards must never meet an empty or zero-row file
        # (`datasets.load_dataset` fails on both)
        size = write_shard(out / name, rows, meta, j) if rows else 0
        entry = {
            "name": name,
            "rows": len(rows),
            "frames": int(sum(r.n_frames for r in rows)),
            "hours": round(sum(r.duration for r in rows) / 3600, 6),
            "bytes": size,
            "items": len(part),
            "skipped": skipped,
        }
        entries = [e for e in entries if e["name"] != name] + [entry]
        entries.sort(key=lambda e: e["name"])
        progress_file.parent.mkdir(exist_ok=True)
        atomic_write_text(progress_file, json.dumps({"shards": entries}, indent=1))
        written, rows_n, skipped_n = written + 1, rows_n + len(rows), skipped_n + len(skipped)
        for s in skipped:
            log(f"  skipped {s['path']}: {s['reason']}")
        progress.add(0.0, shard_done=True, force=True)
    index = merge(out, log=log)
    if index is None and stop_after is None:
        log(f"rank {rank} done; the index is written when every rank is (or `tokenize --merge`)")
    return TokenizeResult(
        written, resumed, rows_n, skipped_n, progress.seconds / 3600, progress.hours_per_hour, index
    )


def merge(out: str | Path, log: Callable[[str], None] = print) -> dict | None:
    """Write ``index.json``, ``skipped.json`` and ``vocab.json`` once every shard of the plan
    is done; returns the index, or None (and writes nothing) while shards are missing.

    Raises:
        CodecError: `out` holds no tokenize plan.
    """
    out = Path(out)
    try:
        plan = json.loads((out / PLAN_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CodecError(f"{out} holds no tokenize run ({PLAN_NAME} missing or damaged)") from e
    done = _done(out)
    names = [shard_name(j, plan["format"]) for j in range(plan["shards"])]
    missing = [n for n in names if n not in done]
    if missing:
        log(f"{len(missing)} of {len(names)} shards are not done yet (e.g. {missing[0]})")
        return None
    entries = [done[n] for n in names]
    full = [e for e in entries if e["rows"]]
    meta = read_meta(out / full[0]["name"]) if full else None
    skipped = [s for e in entries for s in e["skipped"]]
    index = {
        "format": plan["format"],
        "codec_hash": plan["codec_hash"],
        "n_q": plan["n_q"],
        "frame_rate": meta.frame_rate if meta else None,
        "codebook_size": meta.codebook_size if meta else None,
        "pitch": meta.pitch if meta else None,
        "n_frames_rule": "ceil(samples / hop_length)",
        "items": plan["items"],
        "rows": sum(e["rows"] for e in entries),
        "skipped": len(skipped),
        "frames": sum(e["frames"] for e in entries),
        "hours": round(sum(e["hours"] for e in entries), 6),
        "shards": [{k: e[k] for k in ("name", "rows", "frames", "hours", "bytes")} for e in full],
    }
    if index["rows"] + index["skipped"] != plan["items"]:
        raise RuntimeError(f"{index['rows']} rows + {len(skipped)} skipped != {plan['items']}")
    atomic_write_text(out / SKIPPED_NAME, json.dumps(skipped, indent=1, ensure_ascii=False))
    if meta is not None:
        pitch = 255 if meta.pitch else None
        vocab = vocab_for(meta.n_q, meta.codebook_size, pitch, 0, meta.codec_hash, meta.frame_rate)
        atomic_write_text(out / VOCAB_NAME, vocab.to_json())
    atomic_write_text(out / INDEX_NAME, json.dumps(index, indent=1, ensure_ascii=False))
    log(
        f"{out / INDEX_NAME}: {index['rows']} rows in {len(full)} shards, "
        f"{index['hours']:.3f} h, {index['frames']} frames; skipped {index['skipped']}"
        + (f" (listed in {out / SKIPPED_NAME})" if skipped else "")
    )
    return index


def token_files(folder: str | Path) -> list[Path]:
    """The non-empty token shards of a tokenize folder (or one shard file), in order."""
    path = Path(folder)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CodecError(f"no such token folder or shard: {path}")
    files = sorted(
        p for p in path.glob("tokens-*") if p.suffix in (".parquet", ".tar") and p.stat().st_size
    )
    if not files:
        raise CodecError(f"no token shards in {path}; run `telugu-codec tokenize` first")
    return files


def env_rank() -> tuple[int, int]:
    """(rank, world size) from torchrun's RANK / WORLD_SIZE (0, 1 without them)."""
    try:
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    except ValueError as e:
        raise CodecError(f"RANK / WORLD_SIZE must be integers: {e}") from e
