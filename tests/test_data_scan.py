"""data/scan.py: conversions, bad files skipped by reason, the scan cache."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from telugu_codec.data import build_datasets, scan
from telugu_codec.errors import CodecError

from .data_helpers import SR, make_folder, noise, peak_freq, quiet, small_cfg, tone, write


def test_8khz_stereo_and_8bit_inputs_are_converted(tmp_path):
    write(tmp_path / "narrow.wav", tone(2.0, 1000, sr=8000), sr=8000)
    stereo = np.stack([tone(2.0, 600, sr=44100), np.zeros(88200, np.float32)], axis=1)
    write(tmp_path / "stereo.flac", stereo, sr=44100)
    write(tmp_path / "u8.wav", tone(2.0, 800), subtype="PCM_U8")
    cfg = small_cfg(val_fraction=0.0, val_max_seconds=1.0)
    train, _, report = build_datasets(tmp_path, cfg, SR, log=quiet)
    assert report.skipped == {}
    assert report.converted["resampled"] == 2
    assert report.converted["upsampled_low_rate"] == 1
    assert report.converted["mixed_to_mono"] == 1
    assert report.converted["low_bit_depth"] == 1
    expected = {"narrow.wav": 1000, "stereo.flac": 600, "u8.wav": 800}
    for i, path in enumerate(train.paths):
        x = train.crop(i)
        assert x.shape == (1, 8000) and x.dtype == torch.float32
        # the tone keeps its frequency: the file was resampled, not reinterpreted
        assert abs(peak_freq(x[0].numpy(), SR) - expected[Path(path).name]) < 5


def test_min_sample_rate_skips_narrowband_files(tmp_path):
    make_folder(tmp_path, 3)
    write(tmp_path / "narrow.wav", tone(1.0, 1000, sr=8000), sr=8000)
    cfg = small_cfg(min_sample_rate=16000)
    _, _, report = build_datasets(tmp_path, cfg, SR, log=quiet)
    assert report.skipped == {"low_rate": 1} and report.n_usable == 3


def make_bad_files(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    bad = {
        "unreadable": root / "text.wav",
        "empty": root / "empty.wav",
        "nonfinite": root / "nan.wav",
        "silent": root / "zeros.flac",
        "clipped": root / "clipped.wav",
        "too_short": root / "tiny.flac",
    }
    bad["unreadable"].write_text("this is not audio at all " * 20)
    bad["empty"].write_bytes(b"")
    x = noise(0.5)
    x[100] = np.nan
    write(bad["nonfinite"], x, subtype="FLOAT")
    write(bad["silent"], np.zeros(SR, np.float32))
    write(bad["clipped"], np.sign(tone(1.0, 200)).astype(np.float32))
    write(bad["too_short"], noise(0.01))
    return bad


def test_bad_files_are_skipped_and_counted_by_reason(tmp_path):
    make_folder(tmp_path / "good", 6)
    bad = make_bad_files(tmp_path / "bad")
    lines: list[str] = []
    train, val, report = build_datasets(tmp_path, small_cfg(), SR, log=lines.append)
    assert report.skipped == {reason: 1 for reason in bad}
    for reason, path in bad.items():
        assert report.skipped_examples[reason] == [str(path.resolve())]
    assert report.n_found == 12 and report.n_usable == 6
    assert report.n_train + report.n_held_out == 6
    used = set(train.paths) | set(val.paths)
    assert not used & {str(p.resolve()) for p in bad.values()}
    assert any("skipped 1 (clipped)" in line for line in lines)


def test_mostly_bad_data_stops_with_a_clear_error(tmp_path):
    make_folder(tmp_path / "good", 2)
    make_bad_files(tmp_path / "bad")
    with pytest.raises(CodecError, match=r"6 of 8 audio files .* unusable"):
        build_datasets(tmp_path, small_cfg(), SR, log=quiet)
    # the same data passes when the user accepts more bad files
    _, _, report = build_datasets(tmp_path, small_cfg(max_bad_fraction=0.8), SR, log=quiet)
    assert report.n_usable == 2


def test_scan_is_cached_and_redone_only_for_changed_files(tmp_path, monkeypatch):
    files = make_folder(tmp_path / "d", 4)
    cache = tmp_path / "cache"
    build_datasets(tmp_path / "d", small_cfg(), SR, cache_dir=cache, log=quiet)
    calls: list[Path] = []
    real = scan.probe_file
    monkeypatch.setattr(scan, "probe_file", lambda p: calls.append(p) or real(p))
    build_datasets(tmp_path / "d", small_cfg(), SR, cache_dir=cache, log=quiet)
    assert calls == []
    write(files[1], noise(3.0, seed=99))  # new size and mtime
    _, _, report = build_datasets(tmp_path / "d", small_cfg(), SR, cache_dir=cache, log=quiet)
    assert calls == [files[1].resolve()]
    assert math.isclose(report.hours_train + report.hours_val, (3 * 2.0 + 3.0) / 3600)
    # a damaged cache is ignored and rebuilt
    for cache_file in cache.glob("*.json"):
        cache_file.write_text("{not json")
    calls.clear()
    build_datasets(tmp_path / "d", small_cfg(), SR, cache_dir=cache, log=quiet)
    assert len(calls) == 4
