"""Token statistics of a tokenize folder: rates, per-codebook usage and entropies, invariance.

- tokens/s: tokens per second of audio (n_q per frame, one more with a pitch channel);
- bits/s: the nominal rate ``frame_rate * n_q * log2(K)`` and the entropy bound
  ``frame_rate * sum_k H_k`` (what an ideal entropy coder of independent codes would need);
- per codebook: usage (share of the K codes seen), entropy H in bits, perplexity ``2 ** H``
  and the bigram (conditional) entropy ``H(c_t | c_{t-1}) = H(c_{t-1}, c_t) - H(c_{t-1})``
  within utterances, which says how much an LM can gain from the previous frame;
- invariance: a sample of the source files encoded one at a time and as one batch
  (`tokenize.encode_batch`), and the share whose codes are identical (also to the stored
  codes); 1.0 is the guarantee of issue 24.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .shards import ShardMeta, TokenRow, read_shard


@dataclass
class StreamStats:
    """One stream's statistics (entropies in bits)."""

    name: str
    size: int
    usage: float
    entropy: float
    perplexity: float
    bigram_entropy: float


@dataclass
class TokenStats:
    """`token_stats`'s result; `invariance` is None when it was not measured."""

    rows: int
    frames: int
    seconds: float
    n_q: int
    codebook_size: int
    frame_rate: float
    tokens_per_s: float
    bits_per_s: float
    entropy_bits_per_s: float
    streams: list[StreamStats] = field(default_factory=list)
    invariance: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [
            f"{self.rows} rows, {self.seconds / 3600:.3f} h, {self.frames} frames "
            f"({self.frame_rate:g} frames/s, n_q {self.n_q}, K {self.codebook_size})",
            f"tokens/s {self.tokens_per_s:.1f}; bits/s {self.bits_per_s:.0f} nominal, "
            f"{self.entropy_bits_per_s:.0f} at the entropy bound",
            "stream  usage  entropy  perplexity  bigram-entropy (bits)",
        ]
        for s in self.streams:
            out.append(
                f"{s.name:>6}  {s.usage:5.3f}  {s.entropy:7.3f}  {s.perplexity:10.1f}  "
                f"{s.bigram_entropy:14.3f}"
            )
        if self.invariance is not None:
            inv = self.invariance
            out.append(
                f"invariance: {inv['identical']}/{inv['files']} files identical single vs "
                f"batched ({inv['rate']:.3f}); {inv['stored_identical']}/{inv['files']} equal "
                "the stored codes"
            )
        return out


def _entropy(counts: np.ndarray) -> float:
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts[counts > 0] / total
    return max(float(-(p * np.log2(p)).sum()), 0.0)


def stream_stats(name: str, seqs: Sequence[np.ndarray], size: int) -> StreamStats:
    """Statistics of one stream over utterances `seqs` ((F_i,) codes in 0..size-1)."""
    counts = np.zeros(size, dtype=np.int64)
    pairs = np.zeros(size * size, dtype=np.int64)
    prev = np.zeros(size, dtype=np.int64)
    for s in seqs:
        s = np.asarray(s, dtype=np.int64)
        counts += np.bincount(s, minlength=size)
        if s.size > 1:
            pairs += np.bincount(s[:-1] * size + s[1:], minlength=size * size)
            prev += np.bincount(s[:-1], minlength=size)
    h = _entropy(counts)
    return StreamStats(
        name,
        size,
        float((counts > 0).sum() / size),
        h,
        float(2**h),
        max(_entropy(pairs) - _entropy(prev), 0.0),
    )


def token_stats(meta: ShardMeta, rows: list[TokenRow]) -> TokenStats:
    """Statistics of `rows` (all written by the codec `meta` describes)."""
    seconds = float(sum(r.duration for r in rows))
    frames = int(sum(r.n_frames for r in rows))
    streams = [
        stream_stats(f"q{k}", [r.codes[k] for r in rows], meta.codebook_size)
        for k in range(meta.n_q)
    ]
    per_frame = meta.n_q + int(meta.pitch)
    bits = meta.frame_rate * meta.n_q * math.log2(meta.codebook_size)
    if meta.pitch:
        streams.append(stream_stats("pitch", [r.pitch for r in rows], 256))
        bits += meta.frame_rate * 8
    return TokenStats(
        rows=len(rows),
        frames=frames,
        seconds=seconds,
        n_q=meta.n_q,
        codebook_size=meta.codebook_size,
        frame_rate=meta.frame_rate,
        tokens_per_s=frames * per_frame / seconds if seconds else 0.0,
        bits_per_s=bits,
        entropy_bits_per_s=meta.frame_rate * sum(s.entropy for s in streams),
        streams=streams,
    )


def read_folder(files: Sequence[Path], max_rows: int | None = None):
    """(meta, rows) of token shards, at most `max_rows` rows; the shards must agree."""
    from ..errors import CodecError

    meta, rows = None, []
    for f in files:
        m, r = read_shard(f)
        if meta is not None and (m.codec_hash, m.n_q) != (meta.codec_hash, meta.n_q):
            raise CodecError(f"{f} was written by another codec or n_q than {files[0]}")
        meta = meta or m
        rows += r
        if max_rows is not None and len(rows) >= max_rows:
            return meta, rows[:max_rows]
    return meta, rows


def invariance(codec, items: list, stored: dict[str, np.ndarray], n_q: int) -> dict:
    """Encode `items` (`sources.TokenItem`) one at a time and as one batch; count identical
    codes (and codes equal to `stored`, by key)."""
    from .sources import read_wave
    from .tokenize import encode_batch

    waves = [read_wave(it, codec.sample_rate) for it in items]
    batched = encode_batch(codec, waves, n_q)
    same = same_stored = 0
    for it, w, b in zip(items, waves, batched):
        single = np.asarray(codec.encode(w, codec.sample_rate, n_q).codes).astype(np.uint16)
        same += int(np.array_equal(single, b.codes))
        same_stored += int(np.array_equal(single, stored.get(it.key)))
    n = len(items)
    return {
        "files": n,
        "identical": same,
        "rate": same / n if n else math.nan,
        "stored_identical": same_stored,
    }
