from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from telugu_codec.bitstream import (
    FORMAT_VERSION,
    MAGIC,
    EncodedAudio,
    from_bytes,
    pack_codes,
    read_tcc,
    to_bytes,
    unpack_codes,
    write_tcc,
)
from telugu_codec.errors import BitstreamError


def make_enc(seconds: float = 2.0, n_q: int = 12, k: int = 1024, seed: int = 0) -> EncodedAudio:
    frames = int(seconds * 50)
    codes = np.random.default_rng(seed).integers(0, k, (n_q, frames))
    return EncodedAudio(codes, 16000, int(seconds * 16000), 50.0, k, 1.7, "0123456789abcdef")


@pytest.mark.parametrize("bits", [1, 3, 7, 10, 11, 16])
def test_pack_unpack_roundtrip(bits):
    codes = np.random.default_rng(bits).integers(0, 2**bits, (5, 37))
    assert np.array_equal(unpack_codes(pack_codes(codes, bits), 5, 37, bits), codes)


def test_packing_is_dense():
    codes = np.ones((3, 8), dtype=np.int64)
    assert len(pack_codes(codes, 10)) == 30  # 24 codes x 10 bits = 240 bits


def test_file_roundtrip(tmp_path):
    enc = make_enc()
    size = write_tcc(tmp_path / "a.tcc", enc)
    back = read_tcc(tmp_path / "a.tcc")
    assert np.array_equal(back.codes, enc.codes)
    assert (back.length, back.gain, back.model_hash) == (enc.length, enc.gain, enc.model_hash)
    assert size == (tmp_path / "a.tcc").stat().st_size


@pytest.mark.parametrize("n_q,kbps", [(3, 1.5), (6, 3.0), (12, 6.0)])
def test_size_matches_nominal_bitrate_plus_fixed_header(n_q, kbps):
    for seconds in (2.0, 10.0, 60.0):
        size = len(to_bytes(make_enc(seconds, n_q)))
        payload = kbps * 1000 * seconds / 8
        assert 0 < size - payload < 300  # only a small header on top of the nominal rate


def test_wrong_magic():
    data = bytearray(to_bytes(make_enc()))
    data[:4] = b"RIFF"
    with pytest.raises(BitstreamError, match="not a .tcc"):
        from_bytes(bytes(data))


def test_newer_version():
    data = bytearray(to_bytes(make_enc()))
    data[4] = FORMAT_VERSION + 1
    with pytest.raises(BitstreamError, match="newer"):
        from_bytes(bytes(data))


@pytest.mark.parametrize("cut", [3, 10, 60, -1])
def test_truncated(cut):
    data = to_bytes(make_enc())
    with pytest.raises(BitstreamError, match="truncated"):
        from_bytes(data[:cut])


def test_corrupt_payload_and_header():
    data = bytearray(to_bytes(make_enc()))
    data[-5] ^= 0xFF
    with pytest.raises(BitstreamError, match="corrupt"):
        from_bytes(bytes(data))
    data = bytearray(to_bytes(make_enc()))
    _, _, hlen = struct.unpack_from(">4sBH", data)
    data[7 : 7 + hlen] = b"{" * hlen
    with pytest.raises(BitstreamError, match="corrupt header"):
        from_bytes(bytes(data))


def test_header_is_json_with_the_documented_fields():
    data = to_bytes(make_enc())
    assert data[:4] == MAGIC
    (hlen,) = struct.unpack_from(">H", data, 5)
    header = json.loads(data[7 : 7 + hlen])
    for key in (
        "sample_rate",
        "length",
        "n_q",
        "codebook_size",
        "frame_rate",
        "gain",
        "model_hash",
    ):
        assert key in header
