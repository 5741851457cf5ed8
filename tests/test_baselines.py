"""evaluation/baselines.py: Opus and Codec2 with measured bitrates, Ogg parsing, missing tools."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from telugu_codec.errors import CodecError
from telugu_codec.evaluation import baselines as B
from tests.conftest import speechlike
from tests.test_metrics import real_speech_files

SR = 16000


def _needs_opus() -> None:
    reason = B.opus_unavailable()
    if reason:
        pytest.skip(reason)


def _needs_codec2() -> None:
    reason = B.codec2_unavailable()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    from telugu_codec.audio import load_audio

    path = real_speech_files(tmp_path_factory.mktemp("speech"), n=1, seconds=4.0)[0]
    return load_audio(path, SR).wav


# ------------------------------------------------------------------ Ogg parsing
def _ogg_page(segments: list[int], body: bytes, seq: int) -> bytes:
    header = b"OggS" + bytes([0, 0]) + struct.pack("<qIII", 0, 1, seq, 0)
    return header + bytes([len(segments)]) + bytes(segments) + body


def test_ogg_packet_sizes_follow_the_lacing_rules():
    # packet of 300 bytes = 255 + 45; a packet of exactly 255 bytes needs a 0 terminator;
    # a packet continued across pages (255 at the end of page 1, 10 on page 2)
    page1 = _ogg_page([255, 45, 255, 0, 255], b"a" * 300 + b"b" * 255 + b"c" * 255, 0)
    page2 = _ogg_page([10, 7], b"c" * 10 + b"d" * 7, 1)
    assert B.ogg_packet_sizes(page1 + page2) == [300, 255, 265, 7]
    with pytest.raises(CodecError):
        B.ogg_packet_sizes(page1[:-5])
    with pytest.raises(CodecError):
        B.ogg_packet_sizes(b"RIFF" + page1)


# ------------------------------------------------------------------ Opus
def test_opus_12k_real_bitrate_is_near_nominal_and_counts_only_packets(speech):
    _needs_opus()
    out = B.opus(speech, SR, 12)
    assert out.audio.shape == speech.shape and out.audio.dtype == np.float32
    assert abs(out.bitrate_bps - 12000) / 12000 < 0.15  # VBR: measured 11.2-11.9k on Telugu
    seconds = len(speech) / SR
    assert out.bitrate_bps == pytest.approx(out.payload_bytes * 8 / seconds)
    assert out.file_bytes > out.payload_bytes  # Ogg pages + OpusHead/OpusTags not counted
    # the decoded signal is aligned with the input (ffmpeg applies the pre-skip)
    err = np.mean((out.audio - speech) ** 2) / np.mean(speech**2)
    assert 10 * np.log10(1 / err) > 5.0


def test_opus_6k_is_about_6k_and_low_requests_are_clamped(speech):
    _needs_opus()
    six = B.opus(speech, SR, 6).bitrate_bps
    assert 5000 < six < 7500
    # libopus 1.3.1 does not go below ~5 kbps at 16 kHz: we report what it spent, not 2k
    two = B.opus(speech, SR, 2).bitrate_bps
    assert two > 4000


def test_opus_keeps_the_rate_and_length_of_other_inputs(speech):
    _needs_opus()
    from telugu_codec.audio import resample

    x = resample(speech, SR, 22050)
    out = B.opus(x, 22050, 12)
    assert out.audio.shape == x.shape


# ------------------------------------------------------------------ Codec2
def test_codec2_bitrates_are_measured_from_the_file(speech):
    _needs_codec2()
    seconds = len(speech) / SR
    c3200 = B.codec2(speech, SR, "3200")
    assert c3200.audio.shape == speech.shape
    assert c3200.bitrate_bps == pytest.approx(3200, rel=0.03)  # last partial frame dropped
    assert c3200.payload_bytes % 8 == 0  # 64-bit frames
    c700 = B.codec2(speech, SR, "700C")
    # 28-bit frames are stored in 4 bytes: the file really carries 0.8 kbps
    assert c700.bitrate_bps == pytest.approx(800, rel=0.03)
    assert c700.bitrate_bps == pytest.approx(c700.payload_bytes * 8 / seconds)


def test_estimate_delay_finds_a_known_shift():
    x = speechlike(seconds=2.0, sample_rate=SR, seed=3)
    delayed = np.concatenate([np.zeros(320, np.float32), x[:-320]])
    assert abs(B.estimate_delay(delayed, x, SR) - 320) <= 16
    assert B.estimate_delay(x, x, SR) == 0


def test_codec2_delay_compensation_makes_stoi_usable(speech):
    _needs_codec2()
    from telugu_codec.metrics import stoi

    out = B.codec2(speech, SR, "3200")
    assert stoi(out.audio, speech, SR) > 0.75  # about 0.65 without the shift


def test_missing_tools_make_rows_unavailable_not_errors(monkeypatch):
    monkeypatch.setattr(B.shutil, "which", lambda name: None)
    B.opus_unavailable.cache_clear()
    B.codec2_unavailable.cache_clear()
    try:
        rows = B.baseline_systems("opus,codec2")
        assert [r.name for r in rows] == [
            "opus-6k",
            "opus-9k",
            "opus-12k",
            "codec2-3200",
            "codec2-1600",
            "codec2-700C",
        ]
        assert all("not found" in r.unavailable_reason() for r in rows)
        with pytest.raises(CodecError, match="not found"):
            B.codec2(np.zeros(SR, np.float32), SR)
    finally:
        B.opus_unavailable.cache_clear()
        B.codec2_unavailable.cache_clear()
    with pytest.raises(CodecError, match="unknown baseline"):
        B.baseline_systems("mp3")
