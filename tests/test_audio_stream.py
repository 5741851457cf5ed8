"""Block reading with streaming resampling, and refusal of absurd sample rates."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from telugu_codec.audio import load_audio, resample
from telugu_codec.audio_stream import AudioReader, AudioWriter
from telugu_codec.errors import AudioError

from .conftest import speechlike


def test_blocks_equal_whole_file_resampling(tmp_path):
    x = speechlike(2.0, 22050)
    sf.write(tmp_path / "a.wav", np.stack([x, 0.5 * x], 1), 22050, subtype="FLOAT")
    reader = AudioReader(tmp_path / "a.wav", 16000, block_seconds=0.3)
    blocks = list(reader.blocks())
    assert len(blocks) > 5
    got = np.concatenate(blocks)
    ref = resample(0.75 * x, 22050, 16000)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-4
    assert reader.notices == ["mixed 2 channels down to mono", "resampled 22050 Hz -> 16000 Hz"]


def test_absurd_rate_is_refused_before_reading(tmp_path):
    sf.write(tmp_path / "slow.wav", np.zeros(2000, np.float32), 1, subtype="PCM_16")
    with pytest.raises(AudioError, match="1 Hz"):
        AudioReader(tmp_path / "slow.wav", 16000)
    with pytest.raises(AudioError, match="1 Hz"):
        load_audio(tmp_path / "slow.wav", 16000)


def test_writer_is_atomic(tmp_path):
    w = AudioWriter(tmp_path / "o.wav", 16000)
    w.write(np.full(100, 2.0, np.float32))
    assert not (tmp_path / "o.wav").exists()  # nothing at the final path until close
    w.close()
    y, sr = sf.read(tmp_path / "o.wav")
    assert sr == 16000 and y.shape == (100,) and y.max() == 1.0  # clipped like write_audio
    w = AudioWriter(tmp_path / "p.wav", 16000)
    w.write(np.zeros(10, np.float32))
    w.abort()
    assert not list(tmp_path.glob("*p.wav*"))
