"""The `.tcc` container, version 3: a 16-byte binary header, then packets, each with a CRC.

Over 600 lines on purpose: the byte layout below, the writer and the reader (with every field's
validation) are one format, kept in one file so a change to the layout is made, and reviewed,
in one place; version 1 lives in `bitstream_v1.py`.

Layout (integers big-endian)::

    header, 16 bytes
      0   4  magic b"TCC\\x1a"
      4   1  version = 3 (2 still reads: the same layout, without the pitch channel)
      5   1  flags: bits 0-3 sample-rate index into SAMPLE_RATES, bits 4-5 normalisation
               (0 none, 1 clip, 2 block), bit 6 pitch channel present (zero in version 2),
               bit 7 zero
      6   1  n_q, codebooks per frame (>= 1)
      7   1  normalisation parameter: clip -> the gain code (int8, 0.5 dB steps); block -> frames
               per gain block (1..255); none -> 0
      8   2  hop_length, samples per frame (the frame rate is sample_rate / hop_length)
      10  2  codebook_size - 1 (K = 2..65536; each code takes bits = ceil(log2 K) bits)
      12  4  model hash: the first 4 bytes of the encoding checkpoint's hash

    packet, repeated until one has the "final" flag
      1   n_frames (0 only in a final packet)
      1   flags: bit 0 final; other bits zero
      2   final packets only: trim, samples of the last frame past the end of the signal
      G   block normalisation only: one gain code (int8, 0.5 dB steps) per gain block that
          starts in this packet's frames
      F   pitch channel only: one pitch code (uint8: 0 unvoiced, 1..255 log-F0, pitch.py) per
          frame, n_frames bytes
      P   codes, frame by frame (all n_q codes of a frame, then the next), bits bits each,
          MSB first, zero-padded to a whole byte: ceil(n_frames * n_q * bits / 8) bytes
      4   CRC-32 of every byte of the file before it except the earlier packets' CRCs
          (the header and all packets so far)

A writer emits packets as frames arrive (`StreamWriter`); a reader (`PacketReader`) yields
them as they arrive and checks each CRC, so a header edit, a changed packet, a dropped or
reordered packet is an error. A file cut mid-write decodes up to its last complete packet, with
a `TruncatedWarning`. The signal length is frames x hop - trim of the final packet: it cannot
claim more audio than it carries codes for. Every field is range-checked; all errors are a
one-line `BitstreamError`. Version-2 files (bit 6 zero: no pitch) read as they are; version-1
files (JSON header) still read (bitstream_v1.py).
"""

from __future__ import annotations

import io
import math
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import BitstreamError

MAGIC = b"TCC\x1a"
FORMAT_VERSION = 3
PITCH_FLAG = 0x40  # header flags bit 6: the packets carry a pitch byte per frame (v3 on)
PITCH_BITS = 8  # the pitch channel's width in the file: one byte per frame (pitch.py's code)
SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)
NORMALIZATIONS = ("none", "clip", "block")  # index = the 2-bit field
GAIN_STEP_DB = 0.5  # model/loudness.py: the same step
DEFAULT_PACKET_FRAMES = 50  # 1 s at 50 Hz: about 8 bytes of framing per second
MAX_PACKET_FRAMES = 255
HASH_BYTES = 4

_HEADER = struct.Struct(">4sBBBBHH4s")  # 16 bytes
_CRC = struct.Struct(">I")
_TRIM = struct.Struct(">H")


class TruncatedWarning(UserWarning):
    """A `.tcc` stream that ends before its final packet: decoded up to the last whole one."""


@dataclass
class EncodedAudio:
    """Codes plus what is needed to turn them back into audio.

    Attributes:
        codes: (n_q, frames) int array.
        sample_rate: model sample rate.
        length: number of samples of the original (resampled) signal.
        frame_rate: frames per second (sample_rate / hop_length).
        codebook_size: K.
        gain: the `clip` normalisation gain (1.0 for the other kinds), undone after decoding.
        model_hash: hash of the checkpoint that produced the codes (v2 / v3 files carry its
            first 8 hex digits; `hash_matches` compares either form).
        normalization: "clip", "block" or "none" (model/loudness.py).
        block_frames: frames per gain block (`block` only).
        block_gains: (ceil(frames / block_frames),) int gain codes, 0.5 dB steps (`block`).
        complete: False for a cut stream decoded up to its last complete packet.
        pitch: (frames,) int pitch codes 0..255 (0 unvoiced, pitch.py) of a model with a
            pitch channel; None without one.
    """

    codes: np.ndarray
    sample_rate: int
    length: int
    frame_rate: float
    codebook_size: int
    gain: float = 1.0
    model_hash: str = ""
    normalization: str = "clip"
    block_frames: int = 0
    block_gains: np.ndarray | None = None
    complete: bool = True
    pitch: np.ndarray | None = None

    @property
    def n_q(self) -> int:
        return int(self.codes.shape[0])

    @property
    def frames(self) -> int:
        return int(self.codes.shape[1])

    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate / self.frame_rate))

    @property
    def bits_per_code(self) -> int:
        return bits_per_code(self.codebook_size)

    @property
    def nominal_bitrate(self) -> float:
        """frame_rate * (n_q * log2(K) + 8 with a pitch channel) in bits/s."""
        side = PITCH_BITS if self.pitch is not None else 0
        return self.frame_rate * (self.n_q * self.bits_per_code + side)


def code_from_gain(gain: float) -> int:
    """Linear gain -> the nearest gain code, 0.5 dB steps, clamped to -128..127."""
    if not math.isfinite(gain) or gain <= 0:
        raise ValueError(f"gain must be positive and finite, got {gain}")
    code = round(20.0 * math.log10(gain) / GAIN_STEP_DB)
    return max(-128, min(127, code))


def bits_per_code(codebook_size: int) -> int:
    return max(1, math.ceil(math.log2(codebook_size)))


def hash_matches(stream_hash: str, model_hash: str) -> bool:
    """True when a bitstream's (possibly shortened) model hash is a prefix of `model_hash`."""
    return len(stream_hash) >= 2 * HASH_BYTES and model_hash.startswith(stream_hash)


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """(n_q, F) non-negative ints -> bytes, frame-major, `bits` bits each, MSB first."""
    flat = np.ascontiguousarray(codes.T).reshape(-1).astype(np.int64)
    if flat.size and (int(flat.max()) >= (1 << bits) or int(flat.min()) < 0):
        raise BitstreamError(f"codes must be in [0, {1 << bits}) to fit in {bits} bits")
    shifts = np.arange(bits - 1, -1, -1, dtype=np.int64)
    bit_array = ((flat[:, None] >> shifts[None, :]) & 1).astype(np.uint8)
    return np.packbits(bit_array.reshape(-1)).tobytes()


def unpack_codes(payload: bytes, n_q: int, frames: int, bits: int) -> np.ndarray:
    """Inverse of `pack_codes` -> (n_q, F) int64."""
    n = n_q * frames
    bit_array = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))[: n * bits]
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.int64)
    flat = bit_array.reshape(n, bits).astype(np.int64) @ weights
    return flat.reshape(frames, n_q).T.copy()


def payload_size(n_q: int, frames: int, bits: int) -> int:
    return math.ceil(n_q * frames * bits / 8)


# ------------------------------------------------------------------------------------ header
@dataclass(frozen=True)
class StreamHeader:
    """The fixed fields of a v3 stream.

    Attributes:
        sample_rate: one of SAMPLE_RATES.
        hop_length: samples per frame, 1..65535.
        codebook_size: K, 2..65536.
        n_q: codebooks per frame, 1..255.
        normalization: "none", "clip" or "block".
        model_hash: at least 8 hex digits (the first 8 are stored).
        gain_code: `clip` gain code, -128..127 (0.5 dB steps).
        block_frames: `block` frames per gain block, 1..255.
        pitch: the packets carry a pitch channel (one byte per frame).
    """

    sample_rate: int
    hop_length: int
    codebook_size: int
    n_q: int
    normalization: str
    model_hash: str
    gain_code: int = 0
    block_frames: int = 0
    pitch: bool = False

    @property
    def bits(self) -> int:
        return bits_per_code(self.codebook_size)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def gains_in(self, start: int, n_frames: int) -> int:
        """Gain blocks starting within frames [start, start + n_frames) (block mode)."""
        if self.normalization != "block":
            return 0
        b = self.block_frames
        return -(-(start + n_frames) // b) - -(-start // b)

    def pack(self) -> bytes:
        self.validate()
        flags = SAMPLE_RATES.index(self.sample_rate) | NORMALIZATIONS.index(self.normalization) << 4
        flags |= PITCH_FLAG if self.pitch else 0
        param = {"none": 0, "clip": self.gain_code & 0xFF, "block": self.block_frames}
        return _HEADER.pack(
            MAGIC,
            FORMAT_VERSION,
            flags,
            self.n_q,
            param[self.normalization],
            self.hop_length,
            self.codebook_size - 1,
            bytes.fromhex(self.model_hash[: 2 * HASH_BYTES]),
        )

    def validate(self, source: str = "stream") -> None:
        """Raise BitstreamError unless every field is in range."""

        def bad(what: str) -> BitstreamError:
            return BitstreamError(f"{source} has an invalid header: {what}")

        if self.sample_rate not in SAMPLE_RATES:
            raise bad(f"sample rate {self.sample_rate} Hz is not one of {SAMPLE_RATES}")
        if not 1 <= self.hop_length <= 0xFFFF:
            raise bad(f"hop length {self.hop_length} outside 1..65535")
        if not 2 <= self.codebook_size <= 0x10000:
            raise bad(f"codebook size {self.codebook_size} outside 2..65536")
        if not 1 <= self.n_q <= 255:
            raise bad(f"n_q {self.n_q} outside 1..255")
        if self.normalization not in NORMALIZATIONS:
            raise bad(f"normalisation '{self.normalization}'")
        if not -128 <= self.gain_code <= 127:
            raise bad(f"gain code {self.gain_code} outside -128..127")
        if self.normalization == "block" and not 1 <= self.block_frames <= 255:
            raise bad(f"gain block of {self.block_frames} frames outside 1..255")
        try:
            bytes.fromhex(self.model_hash[: 2 * HASH_BYTES])
            ok = len(self.model_hash) >= 2 * HASH_BYTES
        except ValueError:
            ok = False
        if not ok:
            raise bad(f"model hash '{self.model_hash}' is not at least 8 hex digits")

    @classmethod
    def unpack(cls, data: bytes, source: str = "stream") -> StreamHeader:
        """Parse and validate the 16 header bytes (magic and version already checked)."""
        _, version, flags, n_q, param, hop, k1, h = _HEADER.unpack(data)
        if flags & (0x80 if version >= 3 else 0xC0):  # bit 6, the pitch flag, is new in v3
            raise BitstreamError(f"{source} has an invalid header: reserved flag bits set")
        rate_index, norm_index = flags & 0x0F, (flags >> 4) & 0x03
        if rate_index >= len(SAMPLE_RATES):
            raise BitstreamError(f"{source} has an invalid header: sample-rate index {rate_index}")
        if norm_index >= len(NORMALIZATIONS):
            raise BitstreamError(f"{source} has an invalid header: normalisation {norm_index}")
        norm = NORMALIZATIONS[norm_index]
        if norm == "none" and param != 0:
            raise BitstreamError(f"{source} has an invalid header: parameter {param} without gain")
        header = cls(
            sample_rate=SAMPLE_RATES[rate_index],
            hop_length=hop,
            codebook_size=k1 + 1,
            n_q=n_q,
            normalization=norm,
            model_hash=h.hex(),
            gain_code=(param - 256 if param > 127 else param) if norm == "clip" else 0,
            block_frames=param if norm == "block" else 0,
            pitch=bool(flags & PITCH_FLAG),
        )
        header.validate(source)
        return header


# ------------------------------------------------------------------------------------ packets
@dataclass
class Packet:
    """One packet of a v2 / v3 stream.

    Attributes:
        codes: (n_q, n_frames) int64.
        gains: (G,) int64 gain codes of the gain blocks starting in these frames.
        final: the last packet of the stream.
        trim: (final only) samples of the last frame past the signal's end.
        pitch: (n_frames,) int64 pitch codes 0..255 when the stream has a pitch channel.
    """

    codes: np.ndarray
    gains: np.ndarray
    final: bool = False
    trim: int = 0
    pitch: np.ndarray | None = None


class StreamWriter:
    """Write a v3 stream packet by packet as frames arrive.

    Args:
        out: a binary file object (a file, `sys.stdout.buffer`, `io.BytesIO`).
        header: the stream's fixed fields.
        packet_frames: frames per packet (1..255): fewer means lower transport latency and a
            smaller loss when a stream is cut, more means less framing overhead.
        hold: keep a full packet until a later frame (or `close`) arrives, so that the final
            packet always carries frames (saves an empty 8-byte final packet; a live stream
            that wants each packet out at once passes False).
    """

    def __init__(
        self,
        out: BinaryIO,
        header: StreamHeader,
        packet_frames: int = DEFAULT_PACKET_FRAMES,
        hold: bool = True,
    ):
        if not 1 <= packet_frames <= MAX_PACKET_FRAMES:
            raise BitstreamError(f"packet_frames must be 1..{MAX_PACKET_FRAMES}")
        self.out = out
        self.header = header
        self.packet_frames = packet_frames
        self.hold = hold
        data = header.pack()
        self._crc = zlib.crc32(data)
        self.out.write(data)
        self.bytes_written = len(data)
        self.frames_written = 0
        self.closed = False
        self._codes: list[np.ndarray] = []
        self._gains: list[int] = []
        self._pitch: list[np.ndarray] = []
        self._buffered = 0

    def write(
        self, codes: np.ndarray, gains: np.ndarray | None = None, pitch: np.ndarray | None = None
    ) -> None:
        """Queue frames; full packets are written at once.

        Args:
            codes: (n_q, n) ints in [0, K).
            gains: the gain codes of the gain blocks that start in these frames (block mode).
            pitch: (n,) pitch codes 0..255 of these frames: required when the header has a
                pitch channel, refused when it has none.
        """
        if self.closed:
            raise BitstreamError("stream already closed")
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[0] != self.header.n_q:
            raise BitstreamError(
                f"codes must be ({self.header.n_q}, frames), got shape {codes.shape}"
            )
        if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= self.header.codebook_size):
            raise BitstreamError(f"codes must be in [0, {self.header.codebook_size})")
        gains = np.zeros(0, np.int64) if gains is None else np.asarray(gains).reshape(-1)
        start = self.frames_written + self._buffered
        expected = self.header.gains_in(start, codes.shape[1])
        if gains.size != expected:
            raise BitstreamError(
                f"frames {start}..{start + codes.shape[1]} start {expected} gain blocks, "
                f"got {gains.size} gains"
            )
        if gains.size and (int(gains.min()) < -128 or int(gains.max()) > 127):
            raise BitstreamError("gain codes must be in -128..127")
        pitch = check_pitch(pitch, codes.shape[1], self.header.pitch)
        self._codes.append(codes.astype(np.int64))
        self._gains.extend(int(g) for g in gains)
        if pitch is not None:
            self._pitch.append(pitch)
        self._buffered += codes.shape[1]
        while self._buffered > self.packet_frames or (
            self._buffered == self.packet_frames and not self.hold
        ):
            self._emit(self.packet_frames, final=False, trim=0)

    def close(self, trim: int = 0) -> int:
        """Write the remaining frames as the final packet; returns the stream's size in bytes.

        Args:
            trim: samples of the last frame past the signal's end (0..hop - 1).
        """
        if not 0 <= trim < self.header.hop_length:
            raise BitstreamError(f"trim {trim} outside 0..{self.header.hop_length - 1}")
        if self.frames_written + self._buffered == 0:
            raise BitstreamError("cannot close a stream without frames")
        while self._buffered > self.packet_frames:
            self._emit(self.packet_frames, final=False, trim=0)
        self._emit(self._buffered, final=True, trim=trim)
        self.closed = True
        return self.bytes_written

    def _emit(self, n: int, final: bool, trim: int) -> None:
        allc = np.concatenate(self._codes, axis=1) if self._codes else np.zeros((1, 0))
        codes, rest = allc[:, :n], allc[:, n:]
        self._codes = [rest] if rest.shape[1] else []
        g = self.header.gains_in(self.frames_written, n)
        gains, self._gains = self._gains[:g], self._gains[g:]
        parts = [bytes((n, 1 if final else 0))]
        if final:
            parts.append(_TRIM.pack(trim))
        parts.append(np.asarray(gains, dtype=np.int8).tobytes())
        if self.header.pitch:
            allp = np.concatenate(self._pitch) if self._pitch else np.zeros(0, np.int64)
            self._pitch = [allp[n:]] if allp.size > n else []
            parts.append(allp[:n].astype(np.uint8).tobytes())
        parts.append(pack_codes(codes, self.header.bits))
        body = b"".join(parts)
        self._crc = zlib.crc32(body, self._crc)
        data = body + _CRC.pack(self._crc)
        self.out.write(data)
        self.bytes_written += len(data)
        self.frames_written += n
        self._buffered -= n


def _read_exact(src: BinaryIO, n: int) -> bytes:
    """Up to `n` bytes (fewer only at the end of the stream), however the source chunks them."""
    parts, got = [], 0
    while got < n:
        b = src.read(n - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


class PacketReader:
    """Read a v2 / v3 stream packet by packet from a binary file object (a file, a pipe).

    `header` is parsed on construction. Iterating yields `Packet`s whose CRC checked; a stream
    that ends before its final packet stops with a `TruncatedWarning` (`complete` stays False).

    Args:
        src: binary file object positioned at the start of the stream.
        source: the name used in messages.
        prefix: bytes already read from `src` (at most the header's 5-byte magic + version).
    """

    def __init__(self, src: BinaryIO, source: str = "stream", prefix: bytes = b""):
        self.src, self.source = src, source
        data = prefix + _read_exact(src, _HEADER.size - len(prefix))
        _check_prefix(data, source)
        if len(data) < _HEADER.size:
            raise BitstreamError(f"{source} is truncated inside its header")
        self.header = StreamHeader.unpack(data, source)
        self._crc = zlib.crc32(data)
        self.frames = 0
        self.packets = 0
        self.bytes_read = len(data)
        self.complete = False
        self.trim = 0

    def __iter__(self) -> Iterator[Packet]:
        h, src = self.header, self.source
        while True:
            head = _read_exact(self.src, 2)
            if len(head) < 2:
                self._cut(f"{src} ends without its final packet (cut while being written?)")
                return
            n, flags = head
            if flags & 0xFE:
                raise BitstreamError(f"{src} is corrupt: packet {self.packets} has bad flags")
            final = bool(flags & 1)
            if n == 0 and not final:
                raise BitstreamError(f"{src} is corrupt: packet {self.packets} has no frames")
            g = h.gains_in(self.frames, n)
            p = n if h.pitch else 0
            size = (_TRIM.size if final else 0) + g + p + payload_size(h.n_q, n, h.bits)
            body = _read_exact(self.src, size + _CRC.size)
            if len(body) < size + _CRC.size:
                self._cut(f"{src} is cut inside packet {self.packets}")
                return
            crc = zlib.crc32(body[:size], zlib.crc32(head, self._crc))
            if _CRC.unpack_from(body, size)[0] != crc:
                raise BitstreamError(
                    f"{src} is corrupt: checksum of packet {self.packets} does not match"
                )
            self._crc = crc
            self.bytes_read += 2 + len(body)
            pos, trim = 0, 0
            if final:
                (trim,) = _TRIM.unpack_from(body)
                pos = _TRIM.size
                if trim >= h.hop_length or trim >= (self.frames + n) * h.hop_length:
                    raise BitstreamError(f"{src} is corrupt: trim {trim} is not under one frame")
            gains = np.frombuffer(body, np.int8, g, pos).astype(np.int64)
            pitch = np.frombuffer(body, np.uint8, p, pos + g).astype(np.int64) if h.pitch else None
            payload = body[pos + g + p : size]
            codes = unpack_codes(payload, h.n_q, n, h.bits)
            if codes.size and int(codes.max()) >= h.codebook_size:
                raise BitstreamError(f"{src} is corrupt: a code is not below K={h.codebook_size}")
            used = h.n_q * n * h.bits
            if used % 8 and payload[-1] & ((1 << (8 - used % 8)) - 1):
                raise BitstreamError(f"{src} is corrupt: non-zero padding bits")
            self.frames += n
            self.packets += 1
            yield Packet(codes, gains, final, trim, pitch)
            if final:
                if _read_exact(self.src, 1):
                    raise BitstreamError(f"{src} has bytes after its final packet")
                if self.frames == 0:
                    raise BitstreamError(f"{src} holds no frames")
                self.complete, self.trim = True, trim
                return

    def _cut(self, message: str) -> None:
        if self.frames == 0:
            raise BitstreamError(f"{message}; no complete packet to decode")
        warnings.warn(
            f"{message}: decoded {self.frames} frames from {self.packets} complete packets",
            TruncatedWarning,
            stacklevel=3,
        )


def _check_prefix(data: bytes, source: str) -> None:
    """Check magic and version of the first bytes of a stream."""
    if len(data) < 5:
        raise BitstreamError(f"{source} is truncated: {len(data)} bytes is shorter than a header")
    if data[:4] != MAGIC:
        raise BitstreamError(f"{source} is not a .tcc file (magic bytes {data[:4]!r})")
    if data[4] > FORMAT_VERSION:
        raise BitstreamError(
            f"{source} uses .tcc format version {data[4]}, newer than this telugu-codec "
            f"supports ({FORMAT_VERSION}); upgrade telugu-codec"
        )
    if data[4] < 1:
        raise BitstreamError(f"{source} has invalid format version {data[4]}")


# ------------------------------------------------------------------------------------ whole files
def check_pitch(pitch: np.ndarray | None, frames: int, expected: bool) -> np.ndarray | None:
    """`pitch` as (frames,) int64 codes 0..255, or None; BitstreamError unless it is given
    exactly when `expected` (the header's pitch flag) and fits one byte per frame."""
    if pitch is None:
        if expected:
            raise BitstreamError("the stream has a pitch channel: give each frame's pitch code")
        return None
    if not expected:
        raise BitstreamError("the stream has no pitch channel (header flag unset): give no pitch")
    pitch = np.asarray(pitch)
    integer = pitch.size == 0 or np.issubdtype(pitch.dtype, np.integer)
    if pitch.shape != (frames,) or not integer:
        raise BitstreamError(
            f"pitch must be ({frames},) integer codes, one per frame, got {pitch.dtype} "
            f"shape {pitch.shape}"
        )
    if pitch.size and (int(pitch.min()) < 0 or int(pitch.max()) > 255):
        raise BitstreamError("pitch codes must be in 0..255 (one byte per frame)")
    return pitch.astype(np.int64)


def header_for(enc: EncodedAudio) -> StreamHeader:
    """The v3 header describing `enc` (raises BitstreamError for what v3 cannot carry)."""
    if enc.normalization not in NORMALIZATIONS:
        raise BitstreamError(f"unknown normalisation '{enc.normalization}'")
    hop = enc.sample_rate / enc.frame_rate
    if abs(hop - round(hop)) > 1e-6:
        raise BitstreamError(f"frame rate {enc.frame_rate} is not sample_rate / an integer hop")
    gain_code = 0
    if enc.normalization == "clip":
        try:
            gain_code = code_from_gain(float(enc.gain))
        except ValueError as e:
            raise BitstreamError(str(e)) from e
    return StreamHeader(
        sample_rate=int(enc.sample_rate),
        hop_length=int(round(hop)),
        codebook_size=int(enc.codebook_size),
        n_q=enc.n_q,
        normalization=enc.normalization,
        model_hash=str(enc.model_hash),
        gain_code=gain_code,
        block_frames=int(enc.block_frames) if enc.normalization == "block" else 0,
        pitch=enc.pitch is not None,
    )


def to_bytes(enc: EncodedAudio, packet_frames: int = DEFAULT_PACKET_FRAMES) -> bytes:
    """Serialise one item as a v3 stream (with its pitch channel when `enc.pitch` is set)."""
    codes = np.asarray(enc.codes)
    if codes.ndim != 2 or codes.shape[1] == 0:
        raise BitstreamError(f"codes must be (n_q, frames >= 1), got shape {codes.shape}")
    header = header_for(enc)
    trim = codes.shape[1] * header.hop_length - int(enc.length)
    if not 0 <= trim < header.hop_length:
        raise BitstreamError(f"length {enc.length} does not fit {codes.shape[1]} frames")
    buf = io.BytesIO()
    writer = StreamWriter(buf, header, packet_frames)
    gains = enc.block_gains if enc.normalization == "block" else None
    writer.write(codes, gains, enc.pitch)
    writer.close(trim)
    return buf.getvalue()


def decode_stream(reader: PacketReader) -> EncodedAudio:
    """Read all packets of a stream into one EncodedAudio."""
    codes, gains, pitch = [], [], []
    for packet in reader:
        codes.append(packet.codes)
        gains.append(packet.gains)
        if packet.pitch is not None:
            pitch.append(packet.pitch)
    h = reader.header
    length = reader.frames * h.hop_length - reader.trim
    return EncodedAudio(
        codes=np.concatenate(codes, axis=1),
        sample_rate=h.sample_rate,
        length=length,
        frame_rate=h.frame_rate,
        codebook_size=h.codebook_size,
        gain=10.0 ** (h.gain_code * GAIN_STEP_DB / 20.0) if h.normalization == "clip" else 1.0,
        model_hash=h.model_hash,
        normalization=h.normalization,
        block_frames=h.block_frames,
        block_gains=np.concatenate(gains) if h.normalization == "block" else None,
        complete=reader.complete,
        pitch=np.concatenate(pitch) if h.pitch else None,
    )


def from_bytes(data: bytes, source: str = "bitstream") -> EncodedAudio:
    """Parse a `.tcc` byte string (v1, v2 or v3), raising BitstreamError with a clear reason."""
    _check_prefix(data[:5], source)
    if data[4] == 1:
        from .bitstream_v1 import from_bytes_v1

        return from_bytes_v1(data, source)
    return decode_stream(PacketReader(io.BytesIO(data), source))


def write_tcc(path: str | Path, enc: EncodedAudio) -> int:
    """Write atomically; returns the file size in bytes."""
    from .checkpoint import atomic_write_bytes  # local import keeps this module standalone

    data = to_bytes(enc)
    atomic_write_bytes(Path(path), data)
    return len(data)


def read_tcc(path: str | Path) -> EncodedAudio:
    path = Path(path)
    if not path.exists():
        raise BitstreamError(f"bitstream file not found: {path}")
    if path.is_dir():
        raise BitstreamError(f"expected a .tcc file, got a directory: {path}")
    return from_bytes(path.read_bytes(), source=str(path))


def header_dict(enc: EncodedAudio, file_bytes: int | None = None) -> dict:
    """Metadata for display (no codes); with `file_bytes`, the true bitrate and overhead."""
    seconds = enc.length / enc.sample_rate
    d = {
        "sample_rate": enc.sample_rate,
        "length": enc.length,
        "seconds": round(seconds, 6),
        "frame_rate": enc.frame_rate,
        "n_q": enc.n_q,
        "frames": enc.frames,
        "codebook_size": enc.codebook_size,
        "bits_per_code": enc.bits_per_code,
        "normalization": enc.normalization,
        "model_hash": enc.model_hash,
        "complete": enc.complete,
        "pitch": enc.pitch is not None,
        "nominal_bitrate": enc.nominal_bitrate,
    }
    if enc.normalization == "clip":
        d["gain"] = enc.gain
    if enc.normalization == "block":
        d["block_frames"] = enc.block_frames
    if file_bytes is not None:
        payload = payload_size(enc.n_q, enc.frames, enc.bits_per_code)
        payload += enc.frames if enc.pitch is not None else 0  # the pitch bytes
        d["file_bytes"] = file_bytes
        d["payload_bytes"] = payload
        d["overhead_bytes"] = file_bytes - payload
        d["bitrate"] = file_bytes * 8 / seconds  # everything in the file, per second of audio
    return d
