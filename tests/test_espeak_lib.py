"""espeak-ng's phone segments through libespeak-ng (data/espeak_lib.py, synth_voices).

espeak-ng (and with it libespeak-ng) is a system package `make sysdeps` installs; the tests skip,
with the reason, only where it is missing.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf

from telugu_codec.data import espeak_lib
from telugu_codec.data import synth_voices as sv
from telugu_codec.errors import CodecError

needs_espeak = pytest.mark.skipif(sv.find_espeak() is None, reason="espeak-ng is not installed")
TEXT = "నమస్కారం అండి, మీరు ఎలా ఉన్నారు?"
JOBS = [(TEXT, "f2", 180, 40), (TEXT, "m3", 150, 75), (TEXT, "f2", 180, 40), ("ఒకటి", "m1", 175, 50)]


def _command_audio(tmp_path, text, variant, speed, pitch) -> tuple[np.ndarray, int]:
    out = tmp_path / "cli.wav"
    cmd = ["espeak-ng", "-v", f"te+{variant}", "-s", str(speed), "-p", str(pitch), "-w", str(out)]
    subprocess.run([*cmd, text], check=True, capture_output=True)
    wav, rate = sf.read(str(out), dtype="float32")
    return wav, rate


def test_segments_from_phoneme_starts():
    starts = [(0, "n"), (100, "a"), (250, "_"), (250, "m"), (400, "a:")]
    assert espeak_lib.segments(starts, 500, 100) == [
        (1.0, "n"), (2.5, "a"), (4.0, "m"), (5.0, "a:")
    ]  # fmt: skip
    # out of order and past the end: sorted, clipped to the audio
    assert espeak_lib.segments([(30, "b"), (10, "a"), (90, "c")], 50, 10) == [
        (3.0, "a"), (5.0, "b")
    ]  # fmt: skip


@needs_espeak
def test_segments_end_with_the_commands_audio_every_time(tmp_path):
    """Each sentence renders from the same library state (a fork per sentence): its segments
    end exactly where the command's audio ends, and the same job gives the same segments
    whatever ran before it in the worker (the library alone drifts by samples)."""
    found = espeak_lib.phone_segments([(t, f"te+{v}", s, p) for t, v, s, p in JOBS])
    assert found is not None and len(found) == len(JOBS)
    for (text, variant, speed, pitch), phones in zip(JOBS, found):
        wav, rate = _command_audio(tmp_path, text, variant, speed, pitch)
        assert phones[-1][0] * rate == pytest.approx(len(wav), abs=0.01)
        ends = [t for t, _ in phones]
        assert all(b > a for a, b in zip(ends, ends[1:]))
    assert found[0] == found[2] and found[0] != found[1]


@needs_espeak
def test_pauses_are_quiet_and_vowels_loud(tmp_path):
    s = sv.espeak_phones([sv.espeak_render(TEXT, "m1", 175, 50)], [(TEXT, "m1", 175, 50)])[0]
    x, rate = s.wav.astype(np.float64), s.sample_rate
    ends = [t for t, _ in s.phones]
    assert len(ends) >= 20

    def rms(a: float, b: float) -> float:
        seg = x[int(a * rate) : int(b * rate)]
        return float(np.sqrt(np.mean(seg**2) + 1e-12))

    spans = list(zip([0.0, *ends[:-1]], s.phones))
    vowels = [rms(a, b) for a, (b, p) in spans if p.rstrip(":") in "aeiou"]
    pauses = [rms(a, b) for a, (b, p) in spans if p.startswith("_")]
    assert vowels and pauses
    assert max(pauses) < 0.1 * np.median(vowels)  # the events sit where the sound is


@needs_espeak
def test_phones_leave_the_commands_audio_as_it_was(tmp_path):
    plain = sv.espeak_render(TEXT, "f2", 180, 40)
    assert plain.phones == []
    with_phones = sv.espeak_phones([plain], [(TEXT, "f2", 180, 40)])[0]
    ref, rate = _command_audio(tmp_path, TEXT, "f2", 180, 40)
    np.testing.assert_array_equal(with_phones.wav, ref)
    assert with_phones.phones and with_phones.phones[-1][0] == pytest.approx(len(ref) / rate)


@needs_espeak
def test_segments_that_do_not_fit_the_audio_are_dropped_not_kept_wrong():
    s = sv.espeak_render(TEXT, "f2", 180, 40)
    short = sv.Synthesised(s.wav[:-100], s.sample_rate)  # not what the library rendered
    assert sv.espeak_phones([short], [(TEXT, "f2", 180, 40)])[0].phones == []


@needs_espeak
def test_a_voice_the_library_lacks_is_one_line_error():
    with pytest.raises(RuntimeError, match="^espeak-ng has no voice 'xx'$"):
        espeak_lib.phone_segments([(TEXT, "xx", 175, 50)])
