"""The pitch channel of `.tcc` version 3: one byte per frame after the gains, under the CRC."""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
import pytest

from telugu_codec.bitstream import (
    EncodedAudio,
    PacketReader,
    StreamWriter,
    TruncatedWarning,
    from_bytes,
    header_dict,
    header_for,
    payload_size,
    read_tcc,
    to_bytes,
    write_tcc,
)
from telugu_codec.errors import BitstreamError

from .test_bitstream import make_enc, same

# Written by the version-2 writer (commit 629ef05): 7 frames of 2 codebooks (K=64), block
# normalisation with 3-frame gain blocks, packets of 4 frames, trim 45, no pitch channel.
V2_TINY = bytes.fromhex(
    "5443431a022302030140003f89abcdef0400f900162fdce56cd0265508e50301002d0cb4a9c487e08a9ce00b"
)
V2_CODES = [[5, 63, 57, 51, 45, 39, 33], [34, 28, 22, 16, 10, 4, 62]]


def pitched(seconds: float = 2.0, n_q: int = 3, seed: int = 0, **kw) -> EncodedAudio:
    """`make_enc` with a pitch channel using every byte value (0 = unvoiced, 255 = top)."""
    enc = make_enc(seconds, n_q=n_q, seed=seed, **kw)
    pitch = np.random.default_rng(seed + 1).integers(0, 256, enc.frames)
    pitch[:2] = (0, 255)
    enc.pitch = pitch
    return enc


def same_pitch(a: EncodedAudio, b: EncodedAudio) -> bool:
    return same(a, b) and b.pitch is not None and np.array_equal(a.pitch, b.pitch)


@pytest.mark.parametrize("normalization", ["clip", "block", "none"])
@pytest.mark.parametrize("packet_frames", [1, 3, 7, 50, 255])
def test_pitch_round_trips_bit_exactly(normalization, packet_frames):
    enc = pitched(1.34, normalization=normalization, block_frames=4, trim=77)
    back = from_bytes(to_bytes(enc, packet_frames))
    assert same_pitch(enc, back) and back.pitch.dtype == np.int64 and back.complete


def test_pitch_round_trips_through_a_file(tmp_path):
    enc = pitched(trim=5)
    size = write_tcc(tmp_path / "p.tcc", enc)
    assert same_pitch(enc, read_tcc(tmp_path / "p.tcc"))
    assert size == len(to_bytes(make_enc(trim=5, n_q=3))) + enc.frames  # one byte a frame


def test_pitch_sits_after_the_gains_and_before_the_codes():
    enc = pitched(0.2, n_q=2, normalization="block", block_frames=4)  # 10 frames, 3 gain blocks
    data = to_bytes(enc)
    assert data[5] & 0x40  # header flag bit 6: pitch channel present
    n, flags, trim = data[16], data[17], struct.unpack_from(">H", data, 18)[0]
    assert (n, flags, trim) == (10, 1, 0)  # one final packet
    assert list(np.frombuffer(data, np.int8, 3, 20)) == list(enc.block_gains)
    assert list(data[23:33]) == list(enc.pitch)
    assert len(data) == 33 + payload_size(2, 10, 10) + 4


@pytest.mark.parametrize("packet_frames", [1, 4, 10, 255])
@pytest.mark.parametrize("hold", [True, False])
def test_streamed_packets_carry_their_frames_pitch(packet_frames, hold):
    enc = pitched(1.5, normalization="block", block_frames=3, trim=9)
    out = io.BytesIO()
    w = StreamWriter(out, header_for(enc), packet_frames=packet_frames, hold=hold)
    f = 0
    for k in (1, 0, 5, 12, 2, 30, 25):  # 75 frames in uneven pushes
        blocks = list(range(-(-f // 3), -(-(f + k) // 3)))
        w.write(enc.codes[:, f : f + k], enc.block_gains[blocks], enc.pitch[f : f + k])
        f += k
    w.close(trim=9)
    packets = list(PacketReader(io.BytesIO(out.getvalue())))
    assert all(p.pitch.shape == (p.codes.shape[1],) for p in packets)
    assert np.array_equal(np.concatenate([p.pitch for p in packets]), enc.pitch)
    assert same_pitch(enc, from_bytes(out.getvalue()))


def test_every_truncation_of_a_pitch_stream_is_an_error_or_an_exact_prefix():
    enc = pitched(0.5, n_q=2, k=64, normalization="block", block_frames=4, trim=17)
    data = to_bytes(enc, packet_frames=6)
    prefixes = 0
    for cut in range(len(data)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                back = from_bytes(data[:cut])
            except BitstreamError:
                continue
        assert any(issubclass(w.category, TruncatedWarning) for w in caught)
        assert np.array_equal(back.pitch, enc.pitch[: back.frames])
        assert np.array_equal(back.codes, enc.codes[:, : back.frames])
        prefixes += 1
    assert prefixes > 0


def test_a_flipped_pitch_byte_is_a_checksum_error():
    enc = pitched(0.2, n_q=2, normalization="none")  # 10 frames: pitch bytes 20..29
    data = to_bytes(enc)
    assert list(data[20:30]) == list(enc.pitch)
    for i in (20, 25, 29):
        for bit in (0, 7):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            with pytest.raises(BitstreamError, match="checksum"):
                from_bytes(bytes(bad))


def test_version_2_file_still_reads():
    enc = from_bytes(V2_TINY)
    assert enc.pitch is None and enc.complete
    assert np.array_equal(enc.codes, V2_CODES)
    assert (enc.length, enc.codebook_size, enc.model_hash) == (7 * 320 - 45, 64, "89abcdef")
    assert enc.normalization == "block" and list(enc.block_gains) == [-7, 0, 12]
    assert header_dict(enc)["pitch"] is False


def test_pitch_flag_is_bit_6_of_version_3_only_and_bit_7_is_refused():
    bad = bytearray(V2_TINY)
    bad[5] |= 0x40  # a v2 header claiming a pitch channel
    with pytest.raises(BitstreamError, match="reserved flag bits"):
        from_bytes(bytes(bad))
    data = to_bytes(pitched(0.2))
    assert data[4] == 3 and data[5] & 0x40 and from_bytes(data).pitch is not None
    for version, flags in ((3, data[5] | 0x80), (2, data[5] & ~0x40 | 0x80)):
        bad = bytearray(data)
        bad[4], bad[5] = version, flags
        with pytest.raises(BitstreamError, match="reserved flag bits"):
            from_bytes(bytes(bad))


def test_a_pitch_channel_is_refused_when_header_and_data_disagree():
    enc = pitched(0.5)  # 25 frames
    with_pitch, without = header_for(enc), header_for(make_enc(0.5, n_q=3))
    assert with_pitch.pitch and not without.pitch
    with pytest.raises(BitstreamError, match="pitch channel"):
        StreamWriter(io.BytesIO(), with_pitch).write(enc.codes)  # flag set, no pitch given
    with pytest.raises(BitstreamError, match="no pitch channel"):
        StreamWriter(io.BytesIO(), without).write(enc.codes, pitch=enc.pitch)
    for bad in (enc.pitch[:-1], np.append(enc.pitch, 1), enc.pitch[None], enc.pitch + 0.5):
        with pytest.raises(BitstreamError, match=r"pitch must be \(25,\)"):
            StreamWriter(io.BytesIO(), with_pitch).write(enc.codes, pitch=bad)
    for value in (-1, 256):
        p = enc.pitch.copy()
        p[3] = value
        with pytest.raises(BitstreamError, match=r"0\.\.255"):
            StreamWriter(io.BytesIO(), with_pitch).write(enc.codes, pitch=p)
    enc.pitch = enc.pitch[:-3]
    with pytest.raises(BitstreamError, match="pitch must be"):
        to_bytes(enc)


def test_bitrate_counts_8_bits_a_frame_for_pitch():
    enc = pitched(3.0, n_q=3)  # 3 x 10 bits x 50 Hz = 1500 bit/s, + 8 x 50 Hz
    assert enc.nominal_bitrate == 1900
    data = to_bytes(enc)
    info = header_dict(from_bytes(data), len(data))
    assert info["pitch"] is True and info["nominal_bitrate"] == 1900
    assert info["payload_bytes"] == payload_size(3, 150, 10) + 150
    assert 0 < info["overhead_bytes"] <= 16 + 3 * 7
    assert header_dict(make_enc(3.0, n_q=3))["nominal_bitrate"] == 1500
