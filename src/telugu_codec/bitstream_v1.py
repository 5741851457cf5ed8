"""Reading (and, for tests, writing) version-1 `.tcc` files: magic, version, JSON header, codes.

Layout (integers big-endian)::

    b"TCC\\x1a"            4 bytes  magic
    version = 1          1 byte
    header_length        2 bytes  length of the JSON header in bytes
    header               JSON     sample_rate, length, n_q, codebook_size, frame_rate, gain,
                                  model_hash, bits, frames, crc32 (of the payload only)
    payload              bytes    codes frame by frame, `bits` bits each, MSB first

The v1 CRC does not cover the header, so an edited header that stays in range still decodes;
what the reader does guarantee is that every field has the right type and a sane range (no
NaN or zero gain, no length beyond the codes, no absurd rate), so a bad file is a one-line
`BitstreamError`, never a traceback, a NaN WAV or hours of output. New files are version 3.
"""

from __future__ import annotations

import json
import math
import struct
import zlib

import numpy as np

from .bitstream import EncodedAudio, bits_per_code, pack_codes, payload_size, unpack_codes
from .errors import BitstreamError

VERSION = 1
MAX_GAIN_DB = 80.0  # a v1 gain outside +-80 dB is refused
_PREFIX = struct.Struct(">4sBH")
_MAGIC = b"TCC\x1a"


def to_bytes_v1(enc: EncodedAudio) -> bytes:
    """The version-1 writer, kept to test that old files still decode."""
    codes = np.asarray(enc.codes)
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
    return _PREFIX.pack(_MAGIC, VERSION, len(hbytes)) + hbytes + payload


def _int(header: dict, key: str, lo: int, hi: int, source: str) -> int:
    v = header.get(key)
    if type(v) is not int or not lo <= v <= hi:
        raise BitstreamError(f"{source} has a corrupt header: {key}={v!r} is not in {lo}..{hi}")
    return v


def _float(header: dict, key: str, lo: float, hi: float, source: str) -> float:
    v = header.get(key)
    if type(v) not in (int, float) or not (math.isfinite(v) and lo <= v <= hi):
        raise BitstreamError(f"{source} has a corrupt header: {key}={v!r} is not in {lo}..{hi}")
    return float(v)


def from_bytes_v1(data: bytes, source: str = "bitstream") -> EncodedAudio:
    """Parse a version-1 file, validating every header field."""
    if len(data) < _PREFIX.size:
        raise BitstreamError(f"{source} is truncated: {len(data)} bytes is shorter than a header")
    _, _, hlen = _PREFIX.unpack_from(data)
    start = _PREFIX.size
    if len(data) < start + hlen:
        raise BitstreamError(f"{source} is truncated inside its header")
    try:
        header = json.loads(data[start : start + hlen].decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise BitstreamError(f"{source} has a corrupt header ({type(e).__name__})") from e
    if not isinstance(header, dict):
        raise BitstreamError(f"{source} has a corrupt header (not a JSON object)")
    sample_rate = _int(header, "sample_rate", 1000, 768000, source)
    n_q = _int(header, "n_q", 1, 1024, source)
    frames = _int(header, "frames", 1, 1 << 31, source)
    k = _int(header, "codebook_size", 2, 1 << 24, source)
    bits = _int(header, "bits", 1, 24, source)
    crc = _int(header, "crc32", 0, 0xFFFFFFFF, source)
    frame_rate = _float(header, "frame_rate", 1e-3, float(sample_rate), source)
    gain = _float(header, "gain", 10 ** (-MAX_GAIN_DB / 20), 10 ** (MAX_GAIN_DB / 20), source)
    model_hash = header.get("model_hash")
    if not isinstance(model_hash, str) or not 1 <= len(model_hash) <= 128:
        raise BitstreamError(f"{source} has a corrupt header: model_hash={model_hash!r}")
    if bits != bits_per_code(k):
        raise BitstreamError(f"{source} has an inconsistent header: {bits} bits for K={k}")
    hop = sample_rate / frame_rate
    if abs(hop - round(hop)) > 1e-6:
        raise BitstreamError(f"{source} has an inconsistent header: frame rate {frame_rate}")
    hop = int(round(hop))
    length = _int(header, "length", (frames - 1) * hop + 1, frames * hop, source)
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
    if int(codes.max()) >= k:
        raise BitstreamError(f"{source} is corrupt: a code is not below K={k}")
    return EncodedAudio(
        codes=codes,
        sample_rate=sample_rate,
        length=length,
        frame_rate=frame_rate,
        codebook_size=k,
        gain=gain,
        model_hash=model_hash,
        normalization="clip",
    )
