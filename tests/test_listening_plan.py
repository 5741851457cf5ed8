"""listening/plan.py: the anchor is a real 3.5 kHz low-pass, trials are complete and shuffled,
and a bad report folder is a one-line error."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from telugu_codec.cli import main
from telugu_codec.errors import AudioError, CodecError
from telugu_codec.listening.plan import (
    ANCHOR,
    ANCHOR_FILE,
    REFERENCE,
    load_items,
    make_anchor,
    plan_trials,
)

from .listening_helpers import SR, SYSTEMS, tiny_report


def _band_db(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Power of `y` over power of `x` in the band lo-hi Hz, in dB."""
    f = np.fft.rfftfreq(len(x), 1 / SR)
    band = (f >= lo) & (f < hi)
    w = np.hanning(len(x))  # no leakage from the ends, where the signals stop abruptly
    px, py = np.abs(np.fft.rfft(x * w))[band] ** 2, np.abs(np.fft.rfft(y * w))[band] ** 2
    return float(10 * np.log10(py.sum() / px.sum()))


def test_anchor_is_a_3k5_lowpass_without_delay():
    noise = np.random.default_rng(0).standard_normal(4 * SR).astype(np.float32)
    anchor = make_anchor(noise, SR)
    assert anchor.shape == noise.shape and anchor.dtype == np.float32
    assert abs(_band_db(noise, anchor, 100, 3000)) < 0.2  # the pass band is untouched
    assert _band_db(noise, anchor, 4000, 8000) < -50  # the stop band is gone
    assert -9 < _band_db(noise, anchor, 3450, 3550) < -3  # the edge is at 3.5 kHz
    # linear phase, delay removed: a 1 kHz tone comes out as it went in
    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    inner = slice(600, -600)  # away from the edges, where the filter sees zeros
    assert np.max(np.abs(make_anchor(tone, SR)[inner] - tone[inner])) < 1e-3


def test_anchor_needs_a_rate_above_7khz():
    with pytest.raises(AudioError, match="3500 Hz low-pass"):
        make_anchor(np.zeros(1000, np.float32), 6000)


def test_items_list_every_system_and_write_the_anchor(tmp_path):
    tiny_report(tmp_path)
    items = load_items(tmp_path)
    assert [i.name for i in items] == ["utt0", "utt1"]
    for item in items:
        assert sorted(item.systems) == sorted([ANCHOR] + [s[0] for s in SYSTEMS])
        anchor, rate = sf.read(item.systems[ANCHOR])
        ref, _ = sf.read(item.reference)
        assert item.systems[ANCHOR].name == ANCHOR_FILE and rate == SR
        assert len(anchor) == len(ref) and item.seconds == pytest.approx(len(ref) / SR)
        assert _band_db(ref, anchor, 4500, 8000) < -40
    # a second load does not mistake the anchor (or the spectrogram) for a system
    assert sorted(load_items(tmp_path)[0].systems) == sorted(items[0].systems)


def test_trials_hold_every_condition_once_in_a_random_order(tmp_path):
    tiny_report(tmp_path)
    items = load_items(tmp_path)
    plans = [plan_trials(items, seed) for seed in range(40)]
    for plan in plans:
        assert sorted(t.item for t in plan) == ["utt0", "utt1"]
        for t in plan:
            item = next(i for i in items if i.name == t.item)
            assert sorted(t.order) == sorted([REFERENCE, *item.systems])
            assert t.files[t.order.index(REFERENCE)] == item.reference  # the hidden reference
            for name, path in zip(t.order, t.files):
                assert name == REFERENCE or path == item.systems[name]
    assert plan_trials(items, 7) == plan_trials(items, 7)  # the seed tells the order again
    positions = {plan[0].order.index(REFERENCE) for plan in plans}
    assert len(positions) >= 4  # the hidden reference moves around
    assert len({plan[0].item for plan in plans}) == 2  # and so does the order of the trials


def _corrupt(tmp_path):
    tiny_report(tmp_path)
    (tmp_path / "audio" / "utt1" / "opus-6k.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return "opus-6k.wav"


def _other_rate(tmp_path):
    tiny_report(tmp_path)
    sf.write(tmp_path / "audio" / "utt0" / "codec-3k.wav", np.zeros(800, np.float32), 8000)
    return "8000 Hz"


def _only_reference(tmp_path):
    tiny_report(tmp_path, names=("a.wav",), seconds=(0.5,))
    for p in (tmp_path / "audio" / "a").glob("*.wav"):
        if p.name != "original.wav":
            p.unlink()
    return "nothing to rate"


def _no_audio(tmp_path):
    (tmp_path / "report.md").write_text("# a report without audio\n")
    return "no decoded audio"


def _empty_wav(tmp_path):
    tiny_report(tmp_path)
    (tmp_path / "audio" / "utt0" / "original.wav").write_bytes(b"")
    return "empty"


@pytest.mark.parametrize("make", [_corrupt, _other_rate, _only_reference, _no_audio, _empty_wav])
def test_a_bad_report_folder_is_a_one_line_error(tmp_path, capsys, make):
    expected = make(tmp_path)
    with pytest.raises(CodecError, match=expected):
        load_items(tmp_path)
    assert main(["listen", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err and "\n" not in err


def test_a_missing_report_folder_is_a_one_line_error(tmp_path, capsys):
    assert main(["listen", str(tmp_path / "nope")]) == 2
    assert "report folder not found" in capsys.readouterr().err
    assert main(["listen", str(tmp_path / "nope"), "--summary"]) == 2
    assert "report folder not found" in capsys.readouterr().err
