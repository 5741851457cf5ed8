from __future__ import annotations

import io
import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from telugu_codec.bitstream import (
    FORMAT_VERSION,
    MAGIC,
    EncodedAudio,
    PacketReader,
    StreamWriter,
    TruncatedWarning,
    from_bytes,
    header_dict,
    header_for,
    pack_codes,
    payload_size,
    read_tcc,
    to_bytes,
    unpack_codes,
    write_tcc,
)
from telugu_codec.bitstream_v1 import to_bytes_v1
from telugu_codec.errors import BitstreamError

DATA = Path(__file__).parent / "data"
GAIN = 10 ** (9 * 0.5 / 20)  # on the 0.5 dB grid of v2 gain codes


def make_enc(
    seconds: float = 2.0,
    n_q: int = 12,
    k: int = 1024,
    seed: int = 0,
    normalization: str = "clip",
    block_frames: int = 25,
    trim: int = 0,
) -> EncodedAudio:
    frames = int(seconds * 50)
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, k, (n_q, frames))
    block = normalization == "block"
    return EncodedAudio(
        codes,
        16000,
        frames * 320 - trim,
        50.0,
        k,
        GAIN if normalization == "clip" else 1.0,
        "0123456789abcdef",
        normalization=normalization,
        block_frames=block_frames if block else 0,
        block_gains=rng.integers(-40, 80, -(-frames // block_frames)) if block else None,
    )


def same(a: EncodedAudio, b: EncodedAudio) -> bool:
    fields = ("sample_rate", "length", "frame_rate", "codebook_size", "normalization")
    ok = np.array_equal(a.codes, b.codes) and all(getattr(a, f) == getattr(b, f) for f in fields)
    ok = ok and (b.model_hash.startswith(a.model_hash) or a.model_hash.startswith(b.model_hash))
    if a.normalization == "block":
        ok = ok and np.array_equal(a.block_gains, b.block_gains)
    return ok and abs(a.gain - b.gain) < 1e-9


@pytest.mark.parametrize("bits", [1, 3, 7, 10, 11, 16])
def test_pack_unpack_roundtrip(bits):
    codes = np.random.default_rng(bits).integers(0, 2**bits, (5, 37))
    assert np.array_equal(unpack_codes(pack_codes(codes, bits), 5, 37, bits), codes)


def test_packing_is_dense():
    codes = np.ones((3, 8), dtype=np.int64)
    assert len(pack_codes(codes, 10)) == 30  # 24 codes x 10 bits = 240 bits


def test_file_roundtrip(tmp_path):
    enc = make_enc(trim=123)
    size = write_tcc(tmp_path / "a.tcc", enc)
    back = read_tcc(tmp_path / "a.tcc")
    assert same(enc, back) and back.complete
    assert back.model_hash == "01234567"  # v2 carries the first 4 bytes of the hash
    assert size == (tmp_path / "a.tcc").stat().st_size


@pytest.mark.parametrize("normalization", ["clip", "block", "none"])
@pytest.mark.parametrize("n_q", range(1, 13))
def test_roundtrip_at_every_n_q(n_q, normalization):
    enc = make_enc(1.34, n_q=n_q, seed=n_q, normalization=normalization, trim=n_q * 7)
    assert same(enc, from_bytes(to_bytes(enc)))


@pytest.mark.parametrize("k", [2, 3, 1000, 1024, 4096, 65536])
def test_roundtrip_any_codebook_size(k):
    enc = make_enc(0.5, n_q=2, k=k, normalization="block", block_frames=3)
    assert same(enc, from_bytes(to_bytes(enc, packet_frames=7)))


def test_header_is_16_bytes_with_the_documented_fields():
    enc = make_enc(normalization="block", block_frames=25)
    data = to_bytes(enc)
    magic, version, flags, n_q, param, hop, k1, h = struct.unpack(">4sBBBBHH4s", data[:16])
    assert (magic, version, n_q, param, hop, k1) == (MAGIC, 3, 12, 25, 320, 1023)
    assert flags == 3 | 2 << 4  # 16 kHz is SAMPLE_RATES[3]; block normalisation is 2; no pitch
    assert h == bytes.fromhex("01234567")
    assert data[16] == 50 and data[17] == 0  # the first packet: 50 frames, not final


@pytest.mark.parametrize("normalization", ["clip", "block", "none"])
def test_overhead_is_under_10_percent_for_3s_at_1500bps(normalization):
    enc = make_enc(3.0, n_q=3, normalization=normalization)  # 3 x 10 bits x 50 Hz = 1.5 kbps
    data = to_bytes(enc)
    payload = 1500 * 3 / 8
    assert (len(data) - payload) / payload <= 0.10
    info = header_dict(from_bytes(data), len(data))
    assert info["bitrate"] == pytest.approx(len(data) * 8 / 3.0)
    assert info["nominal_bitrate"] == 1500


@pytest.mark.parametrize("n_q,kbps", [(3, 1.5), (6, 3.0), (12, 6.0)])
def test_size_is_nominal_bitrate_plus_small_framing(n_q, kbps):
    for seconds in (2.0, 10.0, 60.0):
        size = len(to_bytes(make_enc(seconds, n_q)))
        payload = kbps * 1000 * seconds / 8
        # 16-byte header, then per second of packets: 2 framing + 4 CRC + rounding to a byte
        assert 0 < size - payload <= 16 + 2 + seconds * 7


def test_writer_streams_packets_as_frames_arrive():
    enc = make_enc(2.0, n_q=3, normalization="block", block_frames=4, trim=5)
    out = io.BytesIO()
    w = StreamWriter(out, header_for(enc), packet_frames=10, hold=False)
    sizes, f = [], 0
    for k in (1, 3, 0, 9, 20, 2, 65):
        blocks = range(-(-f // 4), -(-(f + k) // 4))
        w.write(enc.codes[:, f : f + k], enc.block_gains[list(blocks)])
        sizes.append(len(out.getvalue()))
        f += k
    assert sizes[3] > 16  # 13 frames in: the first packet is out
    w.close(trim=5)
    back = from_bytes(out.getvalue())
    assert same(enc, back)


def test_reader_yields_packets_from_a_pipe_with_short_reads():
    data = to_bytes(make_enc(1.0, n_q=2, normalization="block", block_frames=5), 16)

    class Trickle(io.RawIOBase):
        def __init__(self, b):
            self.b, self.i = b, 0

        def read(self, n=-1):
            n = min(n, 3)
            out = self.b[self.i : self.i + n]
            self.i += len(out)
            return out

    packets = list(PacketReader(Trickle(data)))
    assert [p.codes.shape[1] for p in packets] == [16, 16, 16, 2]
    assert packets[-1].final and not packets[0].final


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


@pytest.mark.parametrize("cut", [0, 3, 10, 16, 17, 30])
def test_cut_before_the_first_packet_ends_is_an_error(cut):
    data = to_bytes(make_enc())
    with pytest.raises(BitstreamError, match="truncated|cut|ends"):
        from_bytes(data[:cut])


def test_cut_file_decodes_to_its_last_complete_packet_with_a_warning():
    enc = make_enc(3.0, n_q=3, normalization="block", block_frames=10)
    data = to_bytes(enc, packet_frames=50)  # packets of 50, 50, 50 frames
    first = 16 + 2 + 5 + payload_size(3, 50, 10) + 4
    for cut in (first, first + 1, len(data) - 1):
        with pytest.warns(TruncatedWarning, match="decoded"):
            back = from_bytes(data[:cut])
        n = back.frames
        assert n in (50, 100) and not back.complete
        assert np.array_equal(back.codes, enc.codes[:, :n])
        assert np.array_equal(back.block_gains, enc.block_gains[: n // 10])
        assert back.length == n * 320


def test_every_truncation_is_an_error_or_an_exact_prefix():
    enc = make_enc(0.6, n_q=2, k=64, normalization="block", block_frames=4, trim=17)
    data = to_bytes(enc, packet_frames=8)
    for cut in range(len(data)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                back = from_bytes(data[:cut])
            except BitstreamError:
                continue
        assert any(issubclass(w.category, TruncatedWarning) for w in caught)
        assert np.array_equal(back.codes, enc.codes[:, : back.frames])
    assert same(enc, from_bytes(data))


def test_header_and_payload_are_covered_by_the_crc():
    data = to_bytes(make_enc(1.0, n_q=3, normalization="block"))
    for i in list(range(5, 16)) + [20, 40, len(data) - 5]:
        for bit in (0, 3, 7):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            with pytest.raises(BitstreamError):
                from_bytes(bytes(bad))


def test_dropped_or_swapped_packets_are_errors():
    enc = make_enc(1.0, n_q=1, k=256, normalization="none")
    data = to_bytes(enc, packet_frames=10)  # 16 + packets of 2 + 10 + 4 = 16 bytes, final 18
    p = [data[16 + 16 * i : 16 + 16 * (i + 1)] for i in range(4)]
    with pytest.raises(BitstreamError, match="checksum"):
        from_bytes(data[:16] + p[0] + p[2] + p[1] + data[16 + 48 :])
    with pytest.raises(BitstreamError, match="checksum"):
        from_bytes(data[:16] + p[0] + data[16 + 32 :])


def test_trailing_bytes_are_an_error():
    with pytest.raises(BitstreamError, match="after its final"):
        from_bytes(to_bytes(make_enc()) + b"\x00")


def test_writer_refuses_what_v2_cannot_carry():
    with pytest.raises(BitstreamError, match="sample rate"):
        to_bytes(EncodedAudio(np.zeros((1, 3), int), 12345, 900, 12345 / 300, 1024))
    with pytest.raises(BitstreamError, match="length"):
        to_bytes(make_enc(1.0, trim=320))
    with pytest.raises(BitstreamError, match="codes"):
        enc = make_enc(1.0, k=64)
        enc.codes[0, 0] = 64
        to_bytes(enc)
    with pytest.raises(BitstreamError, match="gain"):
        enc = make_enc(1.0, normalization="block", block_frames=7)
        enc.block_gains = enc.block_gains[:-1]
        to_bytes(enc)


# ------------------------------------------------------------------------------------ v1
def test_v1_file_written_by_the_old_writer_still_decodes():
    enc = from_bytes((DATA / "v1_tiny.tcc").read_bytes())  # written by the version-1 code
    codes = (np.arange(21).reshape(7, 3).T * 37) % 64
    assert np.array_equal(enc.codes, codes)
    assert (enc.length, enc.gain, enc.model_hash) == (2140, 1.7, "0123456789abcdef")
    assert enc.normalization == "clip" and enc.codebook_size == 64


def test_v1_roundtrip_with_the_kept_writer():
    enc = make_enc(trim=100)
    enc.gain = 1.7
    assert same(enc, from_bytes(to_bytes_v1(enc)))


def _v1_with(**fields) -> bytes:
    data = to_bytes_v1(make_enc(1.0, n_q=2))
    (hlen,) = struct.unpack_from(">H", data, 5)
    header = json.loads(data[7 : 7 + hlen]) | fields
    h = json.dumps(header).encode()
    return data[:5] + struct.pack(">H", len(h)) + h + data[7 + hlen :]


@pytest.mark.parametrize(
    "fields",
    [
        {"gain": float("nan")},
        {"gain": 0.0},
        {"gain": -1.0},
        {"gain": 1e300},
        {"gain": "1.0"},
        {"length": -100},
        {"length": 10**12},
        {"length": 1.5},
        {"length": True},
        {"sample_rate": 1},
        {"sample_rate": 16000.5},
        {"frame_rate": float("inf")},
        {"frame_rate": 49.0},
        {"n_q": 0},
        {"frames": 10**9},
        {"bits": 11},
        {"codebook_size": 1},
        {"model_hash": None},
        {"crc32": -1},
    ],
)
def test_v1_header_fields_are_validated(fields):
    with pytest.raises(BitstreamError):
        from_bytes(_v1_with(**fields))


def test_v1_corrupt_json_header():
    data = bytearray(to_bytes_v1(make_enc()))
    (hlen,) = struct.unpack_from(">H", data, 5)
    data[7 : 7 + hlen] = b"{" * hlen
    with pytest.raises(BitstreamError, match="corrupt header"):
        from_bytes(bytes(data))
    with pytest.raises(BitstreamError, match="corrupt header"):
        from_bytes(bytes(data[:5]) + struct.pack(">H", 3) + b"[1]")
