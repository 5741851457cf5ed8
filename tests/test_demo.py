"""The main job end to end (`demo`) and the recipe study (`compare`), at tiny budgets."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import soundfile as sf

from telugu_codec.compare import run_study
from telugu_codec.config import load_config
from telugu_codec.demo import DEFAULT_DATA, DEMO_PRESET, run_demo, verdict

from .conftest import speechlike

FAST = [
    "data.val_max_files=2",
    "data.val_max_seconds=1.0",
    "train.val_every=2",
    "train.ckpt_every=2",
    "train.log_every=1",
]


@pytest.mark.slow
def test_demo_produces_every_artefact_and_reuses_its_run(tmp_path):
    messages = []
    out = tmp_path / "demo"
    res = run_demo(  # a step budget, no time cap: the result does not depend on the machine
        out=out,
        data=DEFAULT_DATA,
        max_steps=3,
        max_eval_files=2,
        overrides=FAST,
        progress=False,
        init_from="te-small",  # the second path: fine-tune the shipped model
        log=messages.append,
    )
    assert (res.checkpoint / "codec.safetensors").exists()
    report = res.report_dir
    for name in ("report.md", "report.json", "per_file.csv", "curves.png", "spectrograms.png"):
        assert (report / name).exists(), name
    html = (report / "report.html").read_text(encoding="utf-8")  # to listen to, from disk
    assert "opus-6k.wav" in html and "codec2-3200.wav" in html and "original.wav" in html
    assert any(m.startswith("listening report: ") and "report.html" in m for m in messages)
    table = (report / "report.md").read_text()
    assert "opus" in table.lower() and "codec2" in table.lower()
    assert res.training_report.exists()
    assert list(res.training_report.parent.glob("*.png"))
    for name in ("sample.tcc", "sample_original.wav", "sample_decoded.wav", "sample.json"):
        assert (out / name).exists(), name
    sample = json.loads((out / "sample.json").read_text())
    original, _ = sf.read(out / "sample_original.wav")
    decoded, _ = sf.read(out / "sample_decoded.wav")
    assert len(original) == len(decoded)
    assert sample["tcc_bytes"] == (out / "sample.tcc").stat().st_size
    text = "\n".join(messages)
    assert "PESQ" in text and str(out) in text
    # it begins with the shipped te-small, scored next to Opus and Codec2 before any training
    first = next(i for i, m in enumerate(messages) if "training `" in m)
    preview = [m for m in messages[:first] if "te-small" in m or "opus-6k" in m]
    assert any("the pretrained te-small, before any training: demo-te" in m for m in preview)
    assert any(m.startswith("te-small on demo-te: verdict: ") for m in preview)
    assert (out / "pretrained" / "report-demo-te" / "report.md").exists()
    # then fine-tunes it
    assert any(m.startswith("initialised ") and "te-small" in m for m in messages)
    assert f"training `{load_config(DEMO_PRESET).name}` for 3 steps" in text  # the demo's preset
    assert "max_steps at step 3" in text
    # the comparison table (our rows, Opus, Codec2) and the one-line verdict
    # the demo's model carries the 0.4 kbps pitch channel: its "1.5 kbps" row is 1.4 kbps
    assert any("codec-1.4k" in m for m in messages) and any("opus-6k" in m for m in messages)
    assert any("codec2-3200" in m for m in messages)
    verdict = (out / "verdict.txt").read_text()
    assert verdict.startswith("demo-te: verdict: target ") and verdict.splitlines()[0] in text
    # the amplitude ratio at every validation, against its 0.9-1.1 target
    assert any(m.startswith("amplitude ratio at the ") and "0.9-1.1" in m for m in messages)
    # and what limits the codec, measured (PESQ-WB of the magnitude / phase hybrids)
    assert any(m.startswith("demo-te: what limits it: its ") for m in messages)
    assert "what limits it" in verdict
    status = json.loads((out / "demo.json").read_text())
    assert status["steps"] == 3 and status["step_budget"] == 3

    # a second run finds the first instead of retraining from scratch
    again = []
    run_demo(
        out=out,
        data=DEFAULT_DATA,
        max_steps=3,
        max_eval_files=2,
        overrides=FAST,
        progress=False,
        pretrained=False,
        log=again.append,
    )
    assert any("reusing" in m and "--fresh" in m for m in again)


def test_minutes_cap_says_it_cut_the_run_short(tmp_path):
    messages = []
    run_demo(
        out=tmp_path / "demo",
        data=DEFAULT_DATA,
        minutes=0.0001,  # under a second of training: the cap ends the run at once
        max_steps=50,
        max_eval_files=1,
        overrides=FAST,
        progress=False,
        pretrained=False,
        log=messages.append,
    )
    assert any("--minutes stopped training at step" in m and "of 50" in m for m in messages)


def _report(rows, extra=None):
    from telugu_codec.evaluation.intervals import Interval
    from telugu_codec.evaluation.results import SystemSummary

    def iv(v):
        return Interval(v, None, None, 1)

    return SimpleNamespace(
        summaries=[
            SystemSummary(
                name,
                fam,
                "",
                kbps,
                iv(kbps),
                iv(kbps),
                {"pesq_wb": iv(p), "stoi": iv(s), **{k: iv(v) for k, v in (extra or {}).items()}},
            )
            for name, fam, kbps, p, s in rows
        ]
    )


def test_verdict_names_what_is_missing():
    base = [("opus-6k", "opus", 6.0, 1.74, 0.88), ("codec2-3200", "codec2", 3.2, 1.73, 0.87)]
    met = verdict(_report([("codec-3k", "codec", 3.0, 2.2, 0.9), *base]))
    assert met.startswith("verdict: target met. codec-3k: PESQ-WB 2.20")
    low = verdict(_report([("codec-3k", "codec", 3.0, 1.35, 0.84), *base]))
    assert low.startswith("verdict: target not met.") and "PESQ-WB below 2.0" in low
    assert "opus-6k (1.74 / 0.88)" in low
    # 6 kbps rows do not count towards the <= 3 kbps target
    high = verdict(_report([("codec-6k", "codec", 6.0, 3.0, 0.95), *base]))
    assert "no codec row" in high
    # the real speaker's target: no PESQ floor, above Codec2 3200 alone (Opus beside it)
    real = _report([("codec-3k", "codec", 3.0, 1.8, 0.88), *base])
    assert verdict(real, None, ("codec2-3200",)).startswith("verdict: target met.")
    assert "below" not in verdict(real, None, ("codec2-3200",))
    worse = _report([("codec-3k", "codec", 3.0, 1.8, 0.85), *base])  # STOI below Codec2's
    assert "not above codec2-3200" in verdict(worse, None, ("codec2-3200",))


def test_bottleneck_names_the_lower_hybrid():
    from telugu_codec.demo import bottleneck

    rows = [("codec-3k", "codec", 3.0, 1.3, 0.83)]
    assert bottleneck(_report(rows)) is None  # not measured: nothing said
    mag = bottleneck(_report(rows, {"pesq_split_magnitude": 1.66, "pesq_split_phase": 2.16}))
    assert mag.startswith("what limits it: its STFT magnitudes (PESQ-WB 1.66")
    phase = bottleneck(_report(rows, {"pesq_split_magnitude": 2.5, "pesq_split_phase": 1.9}))
    assert phase.startswith("what limits it: its phase")


@pytest.mark.slow
def test_compare_two_recipes_writes_table_and_plot(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        sf.write(data / f"u{i}.wav", speechlike(1.0, seed=i), 16000)
    out = tmp_path / "study"
    results = run_study(
        ["l1-vq", "dac"],
        data,
        out,
        minutes=30.0,  # a cap far away: the step budget decides (not the load)
        size="tiny",
        val_every=2,
        max_steps=4,
        overrides=FAST[:2] + ["data.batch_size=2", "data.segment_seconds=0.25"],
        log=lambda _m: None,
    )
    assert [r.preset for r in results] == ["l1-vq", "dac"]
    md = (out / "compare.md").read_text()
    assert "| l1-vq |" in md and "| dac |" in md
    assert (out / "compare.png").stat().st_size > 10_000
    for r in results:
        assert r.steps == 4
        assert len(r.curve) >= 2 and "val/amplitude_ratio" in r.curve[-1]
        assert "val/pesq" in r.curve[-1]
    # same initialisation: both runs start from identical codec weights
    from safetensors.torch import load_file

    a = load_file(str(out / "l1-vq/checkpoints/step_00000000/codec.safetensors"))
    b = load_file(str(out / "dac/checkpoints/step_00000000/codec.safetensors"))
    assert all((a[k] == b[k]).all() for k in a)


def test_a_recipe_can_carry_its_own_changes():
    """`tiny+loss.loudness=0`: the tiny recipe without its loudness term, beside `tiny` (the
    study separates the loudness term from the learning rate this way)."""
    from telugu_codec.compare import parse_recipe, study_config
    from telugu_codec.errors import CodecError

    assert parse_recipe("tiny") == ("tiny", [])
    assert parse_recipe("tiny+loss.loudness=0+train.g_optim.lr=1e-4") == (
        "tiny",
        ["loss.loudness=0", "train.g_optim.lr=1e-4"],
    )
    plain = study_config("tiny", "tiny", [])
    changed = study_config("tiny+loss.loudness=0", "tiny", [])
    assert plain.loss.loudness > 0 and changed.loss.loudness == 0
    assert changed.name == "tiny+loss.loudness=0"
    assert changed.train.g_optim.lr == plain.train.g_optim.lr
    with pytest.raises(CodecError, match="key=value"):
        parse_recipe("tiny+loudness")


def test_a_study_of_architectures_keeps_each_model():
    """`--size tiny` gives every recipe tiny's model (a decoder preset would silently train a
    SEANet decoder): the study says so; `--size own` keeps each preset's own model."""
    from telugu_codec.compare import OWN_SIZE, replaced_model, study_config

    swapped = study_config("tiny-sf", "tiny", [])
    assert swapped.model.decoder.kind == "seanet" and not swapped.model.pitch.enabled
    assert replaced_model("tiny-sf", "tiny") and not replaced_model("tiny", "tiny")
    own = study_config("tiny-sf+model.pitch.zero=true", OWN_SIZE, [])
    assert own.model.decoder.kind == "source_filter" and own.model.pitch.zero
    assert own.train.val_pesq and not replaced_model("tiny-sf", OWN_SIZE)


@pytest.mark.slow
def test_demo_on_the_two_voice_corpus_scores_both_voices(tmp_path, monkeypatch):
    """Without --data the demo makes the two-voice corpus and scores the espeak and the
    Festival voice's held-out sentences separately, each with its own verdict."""
    import shutil

    from telugu_codec import demo
    from telugu_codec.data import synth_corpus

    if shutil.which("festival") is None or shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng and festival (make sysdeps)")
    made, full = [], synth_corpus.ensure_corpus

    def small(out, log=print, **kw):
        made.append(out)
        return full(out, limit=20, log=log, **kw)

    monkeypatch.setattr(demo, "TWO_VOICE_DATA", tmp_path / "corpus")
    monkeypatch.setattr(synth_corpus, "ensure_corpus", small)
    messages = []
    out = tmp_path / "demo"
    run_demo(
        out=out, max_steps=2, max_eval_files=2, overrides=FAST, progress=False,
        pretrained=False, log=messages.append,
    )  # fmt: skip
    assert made == [tmp_path / "corpus"]
    text = "\n".join(messages)
    assert f"on {tmp_path / 'corpus' / 'train'}" in text
    assert "held-out sentences, espeak (2 files" in text
    assert "held-out sentences, festival (2 files" in text
    lines = (out / "verdict.txt").read_text().splitlines()
    assert any(x.startswith("espeak: verdict: target ") for x in lines)
    real = [x for x in lines if x.startswith("festival: verdict: ")]
    assert real and "PESQ-WB below" not in real[0]  # no PESQ floor for the real speaker
    assert (out / "report-festival" / "report.md").exists()
    festival = (out / "heldout-festival.tsv").read_text().splitlines()[1:]
    assert festival and all("_nsk." in row for row in festival)
