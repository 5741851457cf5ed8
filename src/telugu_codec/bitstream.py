"""The `.tcc` container: magic, version, JSON header, bit-packed codes, CRC.

Layout (all integers big-endian)::

    b"TCC\\x1a"            4 bytes  magic
    version              1 byte   FORMAT_VERSION
    header_length        2 bytes  length of the JSON header in bytes
    header               JSON     sample_rate, length, n_q, codebook_size, frame_rate, gain,
                                  model_hash, bits, frames, crc32 (of the payload)
    payload              bytes    codes frame by frame (all n_q codes of frame 0, then frame 1,
                                  ...), each code in `bits = ceil(log2 K)` bits, MSB first,
                                  zero-padded to a whole byte at the end.

Frame-major order means a reader can decode a prefix of the file frame by frame (streaming).
No pickle anywhere: the header is JSON and the payload is raw bits.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import BitstreamError

MAGIC = b"TCC\x1a"
FORMAT_VERSION = 1
_PREFIX = struct.Struct(">4sBH")


@dataclass
class EncodedAudio:
    """Codes plus what is needed to turn them back into audio.

    Attributes:
        codes: (n_q, frames) int array (one item; batches hold a list of these).
        sample_rate: model sample rate.
        length: number of samples of the original (resampled) signal.
        frame_rate: frames per second.
        codebook_size: K.
        gain: loudness-normalisation gain applied before encoding (undone after decoding).
        model_hash: hash of the checkpoint that produced the codes.
    """

    codes: np.ndarray
    sample_rate: int
    length: int
    frame_rate: float
    codebook_size: int
    gain: float
    model_hash: str

    @property
    def n_q(self) -> int:
        return int(self.codes.shape[0])

    @property
    def frames(self) -> int:
        return int(self.codes.shape[1])

    @property
    def bits_per_code(self) -> int:
        return bits_per_code(self.codebook_size)

    @property
    def nominal_bitrate(self) -> float:
        """frame_rate * n_q * log2(K) in bits/s."""
        return self.frame_rate * self.n_q * self.bits_per_code


def bits_per_code(codebook_size: int) -> int:
    return max(1, math.ceil(math.log2(codebook_size)))


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """(n_q, F) non-negative ints -> bytes, frame-major, `bits` bits each, MSB first."""
    flat = np.ascontiguousarray(codes.T).reshape(-1).astype(np.uint32)
    if flat.size and int(flat.max()) >= (1 << bits):
        raise BitstreamError(f"code {int(flat.max())} does not fit in {bits} bits")
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint32)
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


def to_bytes(enc: EncodedAudio) -> bytes:
    """Serialise one item."""
    codes = np.asarray(enc.codes)
    if codes.ndim != 2:
        raise BitstreamError(f"codes must be (n_q, frames), got shape {codes.shape}")
    bits = bits_per_code(enc.codebook_size)
    payload = pack_codes(codes, bits)
    header = {
        "sample_rate": int(enc.sample_rate),
        "length": int(enc.length),
        "n_q": int(codes.shape[0]),
        "frames": int(codes.shape[1]),
        "codebook_size": int(enc.codebook_size),
        "bits": bits,
        "frame_rate": float(enc.frame_rate),
        "gain": float(enc.gain),
        "model_hash": str(enc.model_hash),
        "crc32": zlib.crc32(payload),
    }
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    return _PREFIX.pack(MAGIC, FORMAT_VERSION, len(hbytes)) + hbytes + payload


def from_bytes(data: bytes, source: str = "bitstream") -> EncodedAudio:
    """Parse a `.tcc` byte string, raising BitstreamError with a clear reason."""
    if len(data) < _PREFIX.size:
        raise BitstreamError(f"{source} is truncated: {len(data)} bytes is shorter than a header")
    magic, version, hlen = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError(f"{source} is not a .tcc file (magic bytes {magic!r})")
    if version > FORMAT_VERSION:
        raise BitstreamError(
            f"{source} uses .tcc format version {version}, newer than this telugu-codec "
            f"supports ({FORMAT_VERSION}); upgrade telugu-codec"
        )
    if version < 1:
        raise BitstreamError(f"{source} has invalid format version {version}")
    start = _PREFIX.size
    if len(data) < start + hlen:
        raise BitstreamError(f"{source} is truncated inside its header")
    try:
        header = json.loads(data[start : start + hlen].decode())
        n_q, frames, bits = int(header["n_q"]), int(header["frames"]), int(header["bits"])
        fields = {
            k: header[k]
            for k in ("sample_rate", "length", "frame_rate", "codebook_size", "gain", "model_hash")
        }
        crc = int(header["crc32"])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise BitstreamError(f"{source} has a corrupt header ({type(e).__name__})") from e
    if bits != bits_per_code(int(fields["codebook_size"])) or n_q < 1 or frames < 0:
        raise BitstreamError(f"{source} has an inconsistent header")
    payload = data[start + hlen :]
    expected = payload_size(n_q, frames, bits)
    if len(payload) < expected:
        raise BitstreamError(
            f"{source} is truncated: payload has {len(payload)} of {expected} bytes"
        )
    if len(payload) > expected:
        raise BitstreamError(f"{source} has {len(payload) - expected} unexpected trailing bytes")
    if zlib.crc32(payload) != crc:
        raise BitstreamError(f"{source} is corrupt: payload checksum does not match")
    codes = unpack_codes(payload, n_q, frames, bits)
    return EncodedAudio(codes=codes, **fields)


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
    return from_bytes(path.read_bytes(), source=str(path))


def header_dict(enc: EncodedAudio) -> dict:
    """Metadata for display (no codes)."""
    d = asdict(enc)
    d.pop("codes")
    d.update(n_q=enc.n_q, frames=enc.frames, nominal_bitrate=enc.nominal_bitrate)
    return d
