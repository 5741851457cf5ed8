"""evaluation/evaluate.py: every artifact, measured bitrates, skipped inputs, failing systems."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from telugu_codec.cli import main
from telugu_codec.config import load_config
from telugu_codec.errors import CodecError
from telugu_codec.evaluation import baselines as B
from telugu_codec.evaluation.evaluate import evaluate
from telugu_codec.model.codec import build_codec
from tests.conftest import TINY_OVERRIDES, speechlike
from tests.listening_helpers import parse_report_html
from tests.test_baselines import _needs_opus
from tests.test_metrics import real_speech_files

SR = 16000


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    build_codec(load_config(None, TINY_OVERRIDES)).save(path)
    return path


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory, tiny_checkpoint):
    """A tiny random codec at 0.3 and 1.2 kbps plus Opus on two ~3 s files and a corrupt one."""
    _needs_opus()
    data = tmp_path_factory.mktemp("data")
    for i, src in enumerate(real_speech_files(data, n=2, seconds=3.0)):
        shutil.copy(src, data / f"{i}_{src.name}")
    (data / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    out = tmp_path_factory.mktemp("report")
    notices: list[str] = []
    report = evaluate(
        tiny_checkpoint,
        data,
        out,
        bitrates=[0.3, 1.2],
        baselines="opus",
        progress=False,
        notice=notices.append,
    )
    return report, out, notices


def test_evaluate_writes_every_artifact(eval_run):
    report, out, _ = eval_run
    for name in ("report.json", "report.md", "per_file.csv", "spectrograms.png", "curves.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "report.html").is_file()
    audio = sorted(p.name for p in (out / "audio").rglob("*.wav"))
    assert "original.wav" in audio and "codec-1.2k.wav" in audio and "opus-12k.wav" in audio
    data = json.loads((out / "report.json").read_text())
    assert data["files_evaluated"] == 2
    assert {s["system"] for s in data["summaries"]} == {
        "codec-0.3k",
        "codec-1.2k",
        "opus-6k",
        "opus-9k",
        "opus-12k",
    }


def test_report_html_has_a_player_per_file_and_system(eval_run):
    report, out, _ = eval_run
    parsed = parse_report_html((out / "report.html").read_text(encoding="utf-8"))
    systems = [s.system for s in report.summaries]
    assert len(parsed.players) == 2  # the two example files (--examples 2)
    for file, players in parsed.players.items():
        assert list(players) == ["original", *systems]
        for src in players.values():
            assert (out / unquote(src)).is_file(), src
        # this file's own values beside its players, e.g. the codec's measured kbps
        row = next(r for r in report.per_file if r.file == file and r.system == "codec-1.2k")
        assert parsed.cells[(file, "codec-1.2k")][2] == f"{row.kbps:.2f}"
    figures = [x for x in parsed.links if x.endswith(".png")]
    assert "curves.png" in figures and len(figures) == 3  # curves + a spectrogram per file
    assert all((out / unquote(x)).is_file() for x in figures)


def test_evaluate_table_has_every_column_and_finite_values(eval_run):
    report, out, _ = eval_run
    md = (out / "report.md").read_text()
    for label in ("kbps", "SNR", "SI-SDR", "amplitude", "LSD", "mel", "MR-STFT", "PESQ", "STOI"):
        assert label in md
    table = [ln for ln in md.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert len(table) == 5 and not any("n/a" in ln for ln in table)
    with (out / "per_file.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 5
    for row in rows:
        for key in report.metric_keys + ["kbps", "file_kbps"]:
            assert row[key] != "" and math.isfinite(float(row[key])), (row["system"], key)


def test_codec_bitrate_is_measured_from_the_bitstream(eval_run):
    report, _, _ = eval_run
    for system, nominal in (("codec-0.3k", 0.3), ("codec-1.2k", 1.2)):
        s = report.summary(system)
        # payload (packed codes): within 5 % (the last frame is padded to a whole frame)
        assert abs(s.kbps.mean - nominal) / nominal < 0.05
        # the whole .tcc file adds its 16-byte header, 2 bytes of framing and a 4-byte CRC per
        # packet (1 s) and a 2-byte trim: 16 + 2 + 6 * 3 = 36 bytes over 3 s
        for r in (r for r in report.per_file if r.system == system):
            header_bytes = (r.file_kbps - r.kbps) * 1000 * r.seconds / 8
            assert 16 < header_bytes <= 18 + 7 * math.ceil(r.seconds)
    opus12 = report.summary("opus-12k")
    assert abs(opus12.kbps.mean - 12) / 12 < 0.15


def test_corrupt_input_is_skipped_with_a_notice(eval_run):
    report, out, notices = eval_run
    assert [Path(s.path).name for s in report.skipped_files] == ["corrupt.wav"]
    assert any("skipped corrupt.wav" in n for n in notices)
    assert "Skipped files (1)" in (out / "report.md").read_text()


def test_evaluate_refuses_to_overwrite_without_force(eval_run, tiny_checkpoint):
    report, out, _ = eval_run
    with pytest.raises(CodecError, match="--force"):
        evaluate(tiny_checkpoint, report.data, out, baselines="none", progress=False)


def test_evaluate_user_errors_are_one_line_cli_errors(tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "a.wav").write_bytes(b"")
    cases = [
        ["--data", str(tmp_path / "missing")],
        ["--data", str(tmp_path), "--bitrates", "100"],
        ["--data", str(tmp_path), "--metrics", "bogus"],
        ["--data", str(tmp_path), "--baselines", "mp3"],
    ]
    for extra in cases:
        argv = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "r")]
        assert main(argv + extra + ["--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err
    argv = ["evaluate", "--checkpoint", str(tmp_path / "nope"), "--data", str(tmp_path)]
    assert main(argv + ["--out", str(tmp_path / "r")]) == 2


def test_evaluate_cli_without_baselines(tmp_path, tiny_checkpoint, capsys):
    from telugu_codec.audio import write_audio

    write_audio(tmp_path / "data" / "x.wav", speechlike(1.0, SR), SR)
    out = tmp_path / "r"
    argv = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(tmp_path / "data")]
    argv += ["--out", str(out), "--baselines", "none", "--metrics", "snr,mel_distance"]
    assert main(argv + ["--no-progress"]) == 0
    stdout = capsys.readouterr().out
    assert "| codec |" in stdout and "wrote" in stdout
    header = (out / "per_file.csv").read_text().splitlines()[0]
    assert header.endswith("seconds,snr,mel_distance")


def test_missing_baseline_tool_is_reported_as_skipped(tmp_path, tiny_checkpoint, monkeypatch):
    from telugu_codec.audio import write_audio

    monkeypatch.setattr(B.shutil, "which", lambda name: None)
    B.opus_unavailable.cache_clear()
    B.codec2_unavailable.cache_clear()
    write_audio(tmp_path / "data" / "x.wav", speechlike(1.0, SR), SR)
    notices: list[str] = []
    try:
        report = evaluate(
            tiny_checkpoint,
            tmp_path / "data",
            tmp_path / "r",
            bitrates=[0.3],
            metrics="snr",
            progress=False,
            notice=notices.append,
        )
    finally:
        B.opus_unavailable.cache_clear()
        B.codec2_unavailable.cache_clear()
    assert [s.system for s in report.summaries] == ["codec-0.3k"]
    assert set(report.skipped_systems) == {
        "opus-6k",
        "opus-9k",
        "opus-12k",
        "codec2-3200",
        "codec2-1600",
        "codec2-700C",
    }
    assert any("skipping the opus baseline" in n for n in notices)
    assert "Systems not run" in (tmp_path / "r" / "report.md").read_text()


def test_a_failing_system_is_recorded_and_the_rest_still_runs(
    tmp_path, tiny_checkpoint, monkeypatch
):
    from telugu_codec.audio import write_audio

    def broken(*args, **kwargs):
        raise CodecError("ffmpeg failed: simulated")

    monkeypatch.setattr(B, "opus_unavailable", lambda: None)
    monkeypatch.setattr(B, "opus", broken)
    write_audio(tmp_path / "data" / "x.wav", speechlike(1.0, SR), SR)
    notices: list[str] = []
    report = evaluate(
        tiny_checkpoint,
        tmp_path / "data",
        tmp_path / "r",
        bitrates=[0.3],
        baselines="opus",
        metrics="snr",
        progress=False,
        notice=notices.append,
    )
    assert [s.system for s in report.summaries] == ["codec-0.3k"]
    assert len(report.failed_runs) == 3 and "simulated" in report.failed_runs[0].reason
    assert sum("failed on x.wav" in n for n in notices) == 3
    assert "Failed runs (3)" in (tmp_path / "r" / "report.md").read_text()


def test_lower_bitrates_reuse_the_code_prefix_exactly(tiny_checkpoint):
    from telugu_codec.bitstream import from_bytes, to_bytes
    from telugu_codec.evaluation.systems import codec_systems
    from telugu_codec.model.codec import Codec

    codec = Codec.load(tiny_checkpoint).remove_weight_norm()
    x = speechlike(1.0, SR, seed=5)
    full = codec.encode(x, SR, n_q=4)
    for n_q in (1, 2, 3):
        np.testing.assert_array_equal(codec.encode(x, SR, n_q=n_q).codes, full.codes[:n_q])
    low, high = codec_systems(codec, [0.3, 1.2])
    direct = codec.decode(from_bytes(to_bytes(codec.encode(x, SR, n_q=1)))).numpy()
    high.run(x, SR)  # encodes at n_q = 4 and caches
    np.testing.assert_array_equal(low.run(x, SR).audio, direct)


def test_pitch_model_rows_carry_and_count_the_pitch_channel():
    from telugu_codec.evaluation.systems import codec_systems
    from tests.test_source_filter import sf_codec

    codec = sf_codec()
    x = speechlike(1.0, SR, seed=5)
    (row,) = codec_systems(codec, [1.0])  # 2 codebooks of 6 bits at 50 Hz + 8 bits of pitch
    out = row.run(x, SR)
    np.testing.assert_allclose(out.audio, codec.decode(codec.encode(x, SR, n_q=2)), atol=1e-6)
    assert row.nominal_kbps == 1.0 and out.bitrate_bps == pytest.approx(1000)
