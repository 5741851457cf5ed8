"""Fuzzing v3 `.tcc` streams: every damaged file is a one-line BitstreamError or decodes exactly.

Half the streams carry a pitch channel (one byte per frame, bitstream.py).

Allowed outcomes for a damaged stream: a `BitstreamError` with a one-line message; the exact
original (a change the format does not read, e.g. none); or, for a stream that ends early, an
exact prefix of the original's packets with a `TruncatedWarning`. Anything else (another
exception, a different decode, more codes than the file has bits) fails. About 4,000 cases;
benchmarks/bench_bitstream_fuzz.py runs 10,000+ and the CLI.
"""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telugu_codec.bitstream import (
    EncodedAudio,
    TruncatedWarning,
    from_bytes,
    to_bytes,
)
from telugu_codec.errors import BitstreamError

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def streams(draw) -> tuple[EncodedAudio, bytes]:
    n_q = draw(st.integers(1, 8))
    k = draw(st.sampled_from([2, 3, 17, 64, 1000, 1024, 65536]))
    frames = draw(st.integers(1, 90))
    hop = draw(st.sampled_from([1, 80, 320, 640]))
    norm = draw(st.sampled_from(["none", "clip", "block"]))
    block = draw(st.integers(1, 30)) if norm == "block" else 0
    seed = draw(st.integers(0, 2**16))
    pitch = draw(st.booleans())
    rng = np.random.default_rng(seed)
    enc = EncodedAudio(
        codes=rng.integers(0, k, (n_q, frames)),
        sample_rate=16000,
        length=frames * hop - draw(st.integers(0, hop - 1)),
        frame_rate=16000 / hop,
        codebook_size=k,
        gain=10 ** (draw(st.integers(-128, 127)) / 40) if norm == "clip" else 1.0,
        model_hash=f"{seed:016x}",
        normalization=norm,
        block_frames=block,
        block_gains=rng.integers(-128, 128, -(-frames // block)) if block else None,
        pitch=rng.integers(0, 256, frames) if pitch else None,
    )
    return enc, to_bytes(enc, packet_frames=draw(st.integers(1, 40)))


def outcome(data: bytes, enc: EncodedAudio) -> str:
    """Decode damaged `data`; return "error", "exact" or "prefix", or fail."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            back = from_bytes(data)
        except BitstreamError as e:
            assert "\n" not in str(e) and str(e)
            return "error"
    # never more codes than the file has bits: no allocation beyond the input's size
    assert back.n_q * back.frames * back.bits_per_code <= 8 * len(data)
    assert (back.pitch is None) == (enc.pitch is None)  # the flag is under the CRC
    assert back.length <= back.frames * back.hop_length
    assert np.isfinite(back.gain) and back.gain > 0
    if back.complete:
        assert np.array_equal(back.codes, enc.codes)
        assert (back.length, back.codebook_size, back.n_q) == (
            enc.length,
            enc.codebook_size,
            enc.n_q,
        )
        assert back.normalization == enc.normalization and enc.model_hash.startswith(
            back.model_hash
        )
        assert abs(back.gain - enc.gain) <= 1e-9 * enc.gain
        if enc.normalization == "block":
            assert np.array_equal(back.block_gains, enc.block_gains)
        if enc.pitch is not None:
            assert np.array_equal(back.pitch, enc.pitch)
        return "exact"
    assert any(issubclass(w.category, TruncatedWarning) for w in caught)
    assert np.array_equal(back.codes, enc.codes[:, : back.frames])
    if enc.normalization == "block":
        assert np.array_equal(back.block_gains, enc.block_gains[: len(back.block_gains)])
    if enc.pitch is not None:
        assert np.array_equal(back.pitch, enc.pitch[: back.frames])
    return "prefix"


@settings(FUZZ, max_examples=1500)
@given(
    streams(),
    st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), min_size=1, max_size=6
    ),
)
def test_bit_flips_anywhere(stream, flips):
    enc, data = stream
    bad = bytearray(data)
    for where, bit in flips:
        bad[int(where * len(bad))] ^= 1 << bit
    result = outcome(bytes(bad), enc)
    if bytes(bad) != data:
        assert result in ("error", "prefix")


@settings(FUZZ, max_examples=600)
@given(streams(), st.floats(0, 1, exclude_max=True))
def test_truncation_anywhere(stream, where):
    enc, data = stream
    assert outcome(data[: int(where * len(data))], enc) in ("error", "prefix")


HEADER_FIELDS = {  # offset, size
    "version": (4, 1),
    "flags": (5, 1),
    "n_q": (6, 1),
    "param": (7, 1),
    "hop": (8, 2),
    "codebook": (10, 2),
    "hash": (12, 4),
}


@settings(FUZZ, max_examples=900)
@given(
    streams(),
    st.sampled_from(sorted(HEADER_FIELDS)),
    st.one_of(
        st.sampled_from([0, 1, 2, 3, 0x7F, 0x80, 0xFE, 0xFF, 0xFFFF, 0xFFFFFFFF]),
        st.integers(0, 2**32 - 1),
    ),
)
def test_header_fields_at_edge_values(stream, name, value):
    enc, data = stream
    offset, size = HEADER_FIELDS[name]
    bad = bytearray(data)
    bad[offset : offset + size] = (value % (1 << (8 * size))).to_bytes(size, "big")
    result = outcome(bytes(bad), enc)
    assert result == "error" or bytes(bad) == data


@settings(FUZZ, max_examples=600)
@given(
    streams(),
    st.sampled_from(["n_frames", "flags", "trim", "gain"]),
    st.one_of(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, 0xFFFF]), st.integers(0, 0xFFFF)),
)
def test_packet_fields_at_edge_values(stream, name, value):
    enc, data = stream
    bad = bytearray(data)
    first = 16  # the first packet's fields
    if name == "n_frames":
        bad[first] = value & 0xFF
    elif name == "flags":
        bad[first + 1] = value & 0xFF
    elif name == "trim":  # the final packet's trim sits 2 bytes into it: find it by parsing
        last = _final_packet_offset(data, enc)
        bad[last + 2 : last + 4] = (value & 0xFFFF).to_bytes(2, "big")
    else:
        bad[first + 2] = value & 0xFF  # a gain byte in block mode, a code byte otherwise
    result = outcome(bytes(bad), enc)
    assert result == "error" or bytes(bad) == data


def _final_packet_offset(data: bytes, enc: EncodedAudio) -> int:
    import io

    from telugu_codec.bitstream import PacketReader, StreamHeader, payload_size

    header = StreamHeader.unpack(data[:16])
    pos, frames = 16, 0
    for packet in PacketReader(io.BytesIO(data)):
        if packet.final:
            return pos
        n = packet.codes.shape[1]
        pitch = n if header.pitch else 0
        pos += 2 + header.gains_in(frames, n) + pitch + payload_size(header.n_q, n, header.bits) + 4
        frames += n
    raise AssertionError("no final packet")


@settings(FUZZ, max_examples=400)
@given(st.sampled_from([2, 3]), st.binary(min_size=0, max_size=300))
def test_random_bytes_after_a_valid_prefix(version, tail):
    data = b"TCC\x1a" + bytes([version]) + tail
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedWarning)
        try:
            back = from_bytes(data)
        except BitstreamError as e:
            assert "\n" not in str(e)
            return
    pitch_bits = 8 * back.frames if back.pitch is not None else 0
    assert back.n_q * back.frames * back.bits_per_code + pitch_bits <= 8 * len(data)
