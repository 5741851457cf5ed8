"""Encode and decode files or pipes block by block: memory does not grow with duration.

    encode_file(codec, "talk.flac", "talk.tcc", n_q=3)         # or "-" for stdin / stdout
    decode_file(codec, "talk.tcc", "talk.wav", pitch_shift=3)  # pitch models: 3 semitones up

Audio is read in blocks (audio_stream.AudioReader: libsndfile blocks, streaming soxr
resampling) and pushed through `codec.stream_encoder()`; packets are written as they complete
(bitstream.StreamWriter). Decoding reads packets as they arrive (bitstream.PacketReader) and
writes audio blocks. A `clip` model needs the whole-clip gain first: files are read twice,
stdin is spooled to a temporary file. `chunk_ms` sets the push size, e.g. 20 to run exactly
what a live 20 ms stream would; by default pushes are 10 s blocks. A model with a pitch channel
writes, and needs, each frame's pitch code in the packets (bitstream.py, version 3).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .audio_stream import STDIO, AudioReader, AudioWriter, clip_gain, spool_stdin
from .bitstream import (
    GAIN_STEP_DB,
    EncodedAudio,
    PacketReader,
    StreamHeader,
    StreamWriter,
    TruncatedWarning,
    _check_prefix,
    _read_exact,
    hash_matches,
)
from .errors import BitstreamError, CodecError

Notice = Callable[[str], None]
BLOCK_SECONDS = 10.0  # read / push size without --chunk-ms
WINDOW_SECONDS = 10.0  # frames per window of a non-causal model without --chunk-ms


@dataclass
class EncodeResult:
    """What `encode_file` did: duration, codebooks, nominal and true (file) bitrates."""

    seconds: float
    n_q: int
    nominal_bitrate: float
    bytes: int

    @property
    def bitrate(self) -> float:
        return self.bytes * 8 / self.seconds if self.seconds else 0.0


@dataclass
class DecodeResult:
    seconds: float
    sample_rate: int
    complete: bool


def _pieces(x: np.ndarray, size: int | None):
    if size is None:
        yield x
        return
    for i in range(0, len(x), size):
        yield x[i : i + size]


class _AtomicOut:
    """A binary output: stdout, or a temp file renamed into place on success."""

    def __init__(self, path: str | Path):
        self.path = None if str(path) == STDIO else Path(path)
        if self.path is None:
            self.f: BinaryIO = sys.stdout.buffer
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        self.tmp = Path(tmp)
        self.f = os.fdopen(fd, "wb")

    def commit(self) -> None:
        self.f.flush()
        if self.path is not None:
            os.fsync(self.f.fileno())
            self.f.close()
            os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self.path is not None:
            self.f.close()
            self.tmp.unlink(missing_ok=True)


def encode_file(
    codec,
    src: str | Path,
    dst: str | Path,
    n_q: int | None = None,
    chunk_ms: float | None = None,
    notice: Notice = lambda s: None,
    packet_frames: int | None = None,
) -> EncodeResult:
    """Encode an audio file (or stdin, "-") into a v3 `.tcc` file (or stdout, "-").

    Args:
        codec: a loaded `Codec` (weight norm removed for speed).
        n_q: codebooks (default all).
        chunk_ms: push the audio in chunks of this many milliseconds (the streaming path a live
            source takes); default 10 s blocks.
        notice: receives one-line notes (mixdown, resampling).
        packet_frames: frames per packet (default 1 s; with `chunk_ms`, one chunk's frames
            when writing to stdout, so each chunk's packet leaves at once).
    """
    n_q = codec.check_n_q(n_q)
    chunk = _chunk_samples(codec, chunk_ms)
    spooled = None
    try:
        if str(src) == STDIO and codec.normalization == "clip":
            spooled = spool_stdin()
            src = spooled
        gain = None
        if codec.normalization == "clip":  # the whole-clip gain needs a first pass
            first = AudioReader(src, codec.sample_rate, BLOCK_SECONDS)
            gain = clip_gain(first, codec.cfg.target_rms, codec.cfg.max_gain_db)
            first.close()
        # a live source (--chunk-ms) is read a chunk at a time, not 10 s at a time
        block = BLOCK_SECONDS if chunk is None else chunk / codec.sample_rate
        reader = AudioReader(src, codec.sample_rate, block)
        for note in reader.notices:
            notice(note)
        window = _window_frames(codec, chunk_ms)
        enc = codec.stream_encoder(n_q, gain=gain, window_frames=window)
        live = str(dst) == STDIO
        if packet_frames is None:
            packet_frames = 50
            if live and chunk_ms is not None:
                packet_frames = max(1, min(255, math.ceil(chunk / codec.hop_length)))
        out = _AtomicOut(dst)
        try:
            writer = StreamWriter(out.f, enc.header(), packet_frames, hold=not live)
            for block in reader.blocks():
                for piece in _pieces(block, chunk):
                    c = enc.push(piece)
                    writer.write(c.codes, c.gains, c.pitch)
                    if live:
                        out.f.flush()
            c = enc.flush()
            writer.write(c.codes, c.gains, c.pitch)
            size = writer.close(c.trim)
            out.commit()
        except BaseException:
            out.abort()
            raise
        finally:
            reader.close()
    finally:
        if spooled is not None:
            spooled.unlink(missing_ok=True)
    seconds = enc.samples_in / codec.sample_rate
    return EncodeResult(seconds, n_q, codec.bitrate(n_q), size)


def check_stream_header(codec, header: StreamHeader, source: str) -> None:
    """Raise CodecError unless `codec` can decode a stream with this header."""
    if header.sample_rate != codec.sample_rate or header.hop_length != codec.hop_length:
        raise BitstreamError(
            f"{source} is {header.sample_rate} Hz at {header.frame_rate:g} frames/s, the model "
            f"is {codec.sample_rate} Hz at {codec.frame_rate:g} frames/s"
        )
    if header.codebook_size != codec.codebook_size or header.n_q > codec.max_n_q:
        raise BitstreamError(
            f"{source} has {header.n_q} codebooks of K={header.codebook_size}, the model "
            f"{codec.max_n_q} of K={codec.codebook_size}"
        )
    if header.pitch != codec.has_pitch:
        if header.pitch:
            what = "carries a pitch channel, the model has none"
        else:
            what = "has no pitch channel, the model needs one"
        raise BitstreamError(f"{source} {what}; decode it with the checkpoint that encoded it")


def decode_file(
    codec,
    src: str | Path,
    dst: str | Path,
    chunk_ms: float | None = None,
    ignore_model_mismatch: bool = False,
    notice: Notice = lambda s: None,
    pitch_shift: float = 0.0,
) -> DecodeResult:
    """Decode a `.tcc` file (or stdin, "-") into audio (a file, or stdout "-" as WAV).

    Args:
        ignore_model_mismatch: decode even when the stream was encoded by another model (with
            a notice).
        chunk_ms: push the codes in groups of this many milliseconds (default: per packet).
        pitch_shift: semitones to move the voice's pitch by (models with a pitch channel;
            -24..24).

    A stream cut before its final packet decodes up to its last complete packet; the
    `TruncatedWarning` goes to `notice`.
    """
    from .model.codec import check_pitch_shift

    check_pitch_shift(pitch_shift, codec.has_pitch)  # before any input is read
    name = "stdin" if str(src) == STDIO else str(src)
    if str(src) == STDIO:
        f: BinaryIO = sys.stdin.buffer
    else:
        p = Path(src)
        if not p.exists():
            raise BitstreamError(f"bitstream file not found: {p}")
        if p.is_dir():
            raise BitstreamError(f"expected a .tcc file, got a directory: {p}")
        f = p.open("rb")
    try:
        prefix = _read_exact(f, 5)
        _check_prefix(prefix, name)
        if prefix[4] == 1:  # version 1: a JSON header, then all codes; small, read it whole
            from .bitstream_v1 import from_bytes_v1

            enc = from_bytes_v1(prefix + f.read(), name)
            _check_hash(codec, enc.model_hash, name, ignore_model_mismatch, notice)
            codec.check_encoded(enc)
            return _decode_v1(codec, enc, dst, chunk_ms)  # v1: no pitch model, no shift
        from .model.streaming import EncodedChunk

        reader = PacketReader(f, name, prefix)
        header = reader.header
        per_push = _chunk_frames(codec, chunk_ms)
        out = AudioWriter(dst, codec.sample_rate)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", TruncatedWarning)
                dec, first = None, 0
                for packet in reader:
                    if dec is None:  # the header is under the first packet's CRC: check now
                        _check_hash(codec, header.model_hash, name, ignore_model_mismatch, notice)
                        dec = _stream_decoder(codec, header, name, chunk_ms, pitch_shift)
                    n = packet.codes.shape[1]
                    step = per_push or max(n, 1)
                    for a in range(0, max(n, 1), step):
                        b = min(a + step, n)
                        gains = _gains_between(header, first, a, b, packet.gains)
                        last = packet.final and b == n
                        codes = packet.codes[:, a:b]
                        pitch = None if packet.pitch is None else packet.pitch[a:b]
                        chunk = EncodedChunk(codes, gains, first + a, last, packet.trim, pitch)
                        out.write(dec.push(chunk))
                    first += n
                out.write(dec.flush())
            for w in caught:
                notice(f"warning: {w.message}")
            out.close()
        except BaseException:
            out.abort()
            raise
        return DecodeResult(out.samples / codec.sample_rate, codec.sample_rate, reader.complete)
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def _stream_decoder(
    codec, header: StreamHeader, name: str, chunk_ms: float | None, pitch_shift: float = 0.0
):
    """A stream decoder for a checked header, or BitstreamError when the model does not fit."""
    check_stream_header(codec, header, name)
    try:
        return codec.stream_decoder(
            normalization=header.normalization,
            gain=10.0 ** (header.gain_code * GAIN_STEP_DB / 20.0),
            block_frames=header.block_frames or None,
            window_frames=_window_frames(codec, chunk_ms),
            pitch_shift=pitch_shift,
        )
    except CodecError as e:
        raise BitstreamError(f"{name}: {e}") from e


def _gains_between(header: StreamHeader, first: int, a: int, b: int, gains: np.ndarray):
    """The gains of a packet (starting at frame `first`) that belong to its frames [a, b)."""
    before = header.gains_in(first, a)
    return gains[before : before + header.gains_in(first + a, b - a)]


def _check_hash(codec, stream_hash: str, name: str, ignore: bool, notice: Notice) -> None:
    if hash_matches(stream_hash, codec.model_hash) or stream_hash == codec.model_hash:
        return
    msg = f"{name} was encoded by model {stream_hash} but the checkpoint is {codec.model_hash}"
    if not ignore:
        raise BitstreamError(msg + "; use the matching checkpoint or pass --ignore-model-mismatch")
    notice(msg + " (decoding anyway: --ignore-model-mismatch)")


def _decode_v1(codec, enc: EncodedAudio, dst, chunk_ms) -> DecodeResult:
    from .model.streaming import EncodedChunk

    dec = codec.stream_decoder(
        normalization="clip", gain=enc.gain, window_frames=_window_frames(codec, chunk_ms)
    )
    step = _chunk_frames(codec, chunk_ms) or 50
    trim = enc.frames * codec.hop_length - enc.length
    out = AudioWriter(dst, codec.sample_rate)
    try:
        for a in range(0, enc.frames, step):
            b = min(a + step, enc.frames)
            out.write(
                dec.push(
                    EncodedChunk(enc.codes[:, a:b], first_frame=a, final=b == enc.frames, trim=trim)
                )
            )
        out.write(dec.flush())
        out.close()
    except BaseException:
        out.abort()
        raise
    return DecodeResult(out.samples / codec.sample_rate, codec.sample_rate, True)


def _chunk_samples(codec, chunk_ms: float | None) -> int | None:
    if chunk_ms is None:
        return None
    if not 0 < chunk_ms <= 600_000:
        raise CodecError(f"--chunk-ms must be in (0, 600000], got {chunk_ms:g}")
    return max(1, round(chunk_ms * codec.sample_rate / 1000))


def _chunk_frames(codec, chunk_ms: float | None) -> int | None:
    n = _chunk_samples(codec, chunk_ms)
    return None if n is None else max(1, math.ceil(n / codec.hop_length))


def _window_frames(codec, chunk_ms: float | None) -> int:
    """Frames per window of a non-causal model: the chunk, or 10 s."""
    frames = _chunk_frames(codec, chunk_ms)
    return frames if frames is not None else max(1, round(WINDOW_SECONDS * codec.frame_rate))
