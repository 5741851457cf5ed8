"""The synthetic two-voice corpus (telugu_codec.data.synth_*, scripts/make_demo_corpus.py).

Rendering tests use a few sentences and skip, with the reason, where espeak-ng or Festival's
Telugu NSK voice is missing.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from telugu_codec.data import synth_corpus as sc
from telugu_codec.data import synth_render as sr
from telugu_codec.data import synth_voices as sv
from telugu_codec.errors import CodecError

ROOT = Path(__file__).resolve().parent.parent
N = 20  # sentences in the two-voice test corpus: sentences 9 and 19 are validation

needs_espeak = pytest.mark.skipif(sv.find_espeak() is None, reason="espeak-ng is not installed")
_festival = sv.festival_missing()
needs_festival = pytest.mark.skipif(_festival is not None, reason=str(_festival))
# Telugu letters and signs, digits, ZWNJ, spaces and sentence punctuation
TELUGU_LINE = re.compile(r"^[\u0C00-\u0C7F0-9\u200c ,.?!]+$")


def _rows(out: Path) -> list[sr.Utterance]:
    return sc.read_synth_manifest(out / "manifest.tsv")


@pytest.fixture(scope="module")
def two_voice(tmp_path_factory) -> Path:
    if sv.find_espeak() is None or _festival is not None:
        pytest.skip(_festival or "espeak-ng is not installed")
    out = tmp_path_factory.mktemp("te2") / "corpus"
    return sc.ensure_corpus(out, seed=0, voices=sc.VOICES, limit=N, log=lambda _: None)


def test_sentence_lists_hold_a_thousand_distinct_telugu_sentences():
    demo = sc.read_sentences(sc.DEMO_SENTENCES)
    every = sc.read_sentences(*sc.SENTENCE_FILES)  # raises on a duplicate
    assert len(demo) == 308 and every[:308] == demo  # demo-te's split rests on this order
    assert len(every) >= 1000
    for s in every[308:]:
        assert TELUGU_LINE.match(s), s
        assert 4 <= len(s.split()) <= 20, s


def test_a_duplicate_sentence_is_refused(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("# comment\nఒకటి రెండు\nమూడు నాలుగు\n", encoding="utf-8")
    b.write_text("మూడు నాలుగు\n", encoding="utf-8")
    assert sc.read_sentences(a) == ["ఒకటి రెండు", "మూడు నాలుగు"]
    with pytest.raises(CodecError, match="duplicate"):
        sc.read_sentences(a, b)


def test_the_plan_splits_by_sentence_and_keeps_the_demo_draws():
    jobs = sr.plan_jobs([f"s{i}" for i in range(30)], seed=0, voices=sr.VOICES)
    assert [j.voice for j in jobs[:2]] == ["espeak", "festival"]
    assert {(j.index, j.split) for j in jobs} == {
        (i, "val" if i % 10 == 9 else "train") for i in range(30)
    }
    # espeak's draws do not depend on which voices are rendered (data/demo-te rebuilds unchanged)
    alone = sr.plan_jobs([f"s{i}" for i in range(30)], seed=0, voices=("espeak",))
    assert alone == [j for j in jobs if j.voice == "espeak"]


def test_the_plan_draws_the_voices_of_the_bundled_demo_corpus():
    rows = sc.read_synth_manifest(ROOT / "data" / "demo-te" / "manifest.tsv")
    jobs = sr.plan_jobs(sc.read_sentences(sc.DEMO_SENTENCES), seed=0, voices=sr.VOICES)
    espeak = [j for j in jobs if j.voice == "espeak"]
    assert [(j.path, j.text) for j in espeak] == [(u.path, u.text) for u in rows]


def test_shift_phones_follows_the_trim_and_stays_in_the_file():
    phones = [(0.28, "pau"), (0.35, "n"), (0.35, "a"), (0.50, "m"), (0.9, "pau")]
    assert sr.shift_phones(phones, 0.1, 0.6) == [
        (0.18, "pau"),
        (0.25, "n"),
        (0.4, "m"),
        (0.6, "pau"),
    ]
    assert sr.shift_phones(phones, 0.3, 0.6) == [(0.05, "n"), (0.2, "m"), (0.6, "pau")]


@needs_espeak
@needs_festival
def test_both_voices_in_every_split_and_no_sentence_in_two(two_voice):
    rows = _rows(two_voice)
    assert len(rows) == 2 * N
    for split in ("train", "val"):
        assert {u.voice for u in rows if u.split == split} == {"espeak", "festival"}
    train = {u.text for u in rows if u.split == "train"}
    val = {u.text for u in rows if u.split == "val"}
    assert len(val) == 2 and not train & val
    for voice in sc.VOICES:
        assert len({u.text for u in rows if u.voice == voice}) == N
    assert {u.speaker for u in rows if u.voice == "festival"} == {"nsk"}
    for u in rows:
        info = sf.info(str(two_voice / u.path))
        assert (info.samplerate, info.channels) == (16000, 1)
        assert abs(info.frames / info.samplerate - u.duration) < 1e-3


@needs_espeak
@needs_festival
def test_phones_of_both_voices_increase_within_the_file(two_voice):
    """Festival's `utt.save.segs` and espeak-ng's phoneme events (data/espeak_lib.py), shifted
    by the trim: increasing, inside the file, covering it."""
    for u in _rows(two_voice):
        ends = [t for t, _ in u.phones]
        duration = sf.info(str(two_voice / u.path)).duration
        assert len(ends) >= 5 and all(b > a for a, b in zip(ends, ends[1:]))
        assert 0 < ends[0] and ends[-1] <= duration
        assert duration - ends[-1] < 0.2  # the segmentation covers the whole file
        assert all(p and p.isascii() for _, p in u.phones)


@needs_espeak
@needs_festival
def test_the_same_seed_gives_the_same_bytes(two_voice, tmp_path):
    again = sc.ensure_corpus(tmp_path / "again", seed=0, voices=sc.VOICES, limit=12, log=print)
    first, second = _rows(two_voice), _rows(again)
    assert second == first[: 2 * 12]  # a shorter run renders the same first sentences
    for u in second:
        assert (again / u.path).read_bytes() == (two_voice / u.path).read_bytes()
    other = sc.ensure_corpus(tmp_path / "seed1", seed=1, voices=sc.VOICES, limit=2, log=print)
    a, _ = sf.read(str(other / _rows(other)[1].path))
    b, _ = sf.read(str(two_voice / first[1].path))
    assert len(a) != len(b) or not np.array_equal(a, b)


@needs_festival
def test_festival_speed_and_pitch_follow_the_settings():
    import torch

    from telugu_codec.pitch import TrackerSettings, track

    text = "ఈ రోజు వాతావరణం చాలా బాగుంది, సాయంత్రం పార్కుకు వెళ్దాం."
    low, high = sv.festival_render(
        [sv.FestivalLine(text, 0.85, 0.85), sv.FestivalLine(text, 1.15, 1.2)]
    )

    def median_f0(s: sv.Synthesised) -> float:
        t = track(torch.from_numpy(s.wav)[None], TrackerSettings(sample_rate=s.sample_rate))
        return float(t.f0[t.voiced].median())

    speech = [s.phones[-2][0] - s.phones[0][0] for s in (low, high)]  # without the edge pauses
    assert speech[1] / speech[0] == pytest.approx(1.15 / 0.85, rel=0.05)
    assert median_f0(high) / median_f0(low) == pytest.approx(1.2 / 0.85, rel=0.08)


@needs_espeak
def test_ensure_corpus_reuses_a_finished_corpus_and_redoes_an_unfinished_one(tmp_path):
    out, lines = tmp_path / "c", []
    sc.ensure_corpus(out, voices=("espeak",), limit=3, log=lines.append)
    assert any("rendering 3 sentences" in ln for ln in lines)
    stamp = (out / "manifest.tsv").stat().st_mtime_ns
    lines.clear()
    sc.ensure_corpus(out, voices=("espeak",), limit=3, log=lines.append)
    assert lines == [] and (out / "manifest.tsv").stat().st_mtime_ns == stamp
    (out / sc.MARKER).unlink()  # as if the first build had been killed before its end
    sc.ensure_corpus(out, voices=("espeak",), limit=3, log=lines.append)
    assert any("rendering 3 sentences" in ln for ln in lines) and (out / sc.MARKER).is_file()
    lines.clear()
    sc.ensure_corpus(out, voices=("espeak",), limit=4, log=lines.append)  # other settings
    assert len(_rows(out)) == 4


@needs_espeak
def test_without_festival_a_one_line_notice_and_espeak_only(tmp_path, monkeypatch):
    monkeypatch.setattr(sv, "find_festival", lambda: None)
    lines: list[str] = []
    out = sc.ensure_corpus(tmp_path / "c", limit=2, log=lines.append)
    notices = [ln for ln in lines if "not installed" in ln]
    assert len(notices) == 1 and notices[0].startswith("festival is not installed")
    assert "\n" not in notices[0]
    assert {u.voice for u in _rows(out)} == {"espeak"}
    with pytest.raises(CodecError, match="festival is not installed"):
        sc.ensure_corpus(tmp_path / "d", voices=("festival",), limit=2, log=lines.append)


def _script():
    spec = importlib.util.spec_from_file_location(
        "make_demo_corpus", ROOT / "scripts" / "make_demo_corpus.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_espeak
def test_the_script_falls_back_to_espeak_without_festival(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sv, "find_festival", lambda: None)
    _script().main(["--two-voice", "--limit", "2", "--out", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert out.count("festival is not installed") == 1 and "Traceback" not in out
    assert {u.voice for u in _rows(tmp_path / "c")} == {"espeak"}


def test_the_script_says_in_one_line_that_espeak_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(sv, "find_espeak", lambda: None)
    with pytest.raises(SystemExit) as e:
        _script().main(["--two-voice", "--limit", "2", "--out", str(tmp_path / "c")])
    assert str(e.value).startswith("error: espeak-ng is not installed")
    assert "\n" not in str(e.value)
