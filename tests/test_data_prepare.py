"""data/prepare.py and `telugu-codec prepare`: a corpus -> shards -> the same training audio."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from telugu_codec.audio import load_audio
from telugu_codec.cli import main
from telugu_codec.data import SourceTrainDataset, build_datasets
from telugu_codec.data.prepare import parse_shard_size, prepare
from telugu_codec.data.shards import read_shard
from telugu_codec.errors import CodecError

from .data_helpers import SR, noise, quiet, small_cfg, tone, write

GOOD = {  # relative path -> (seconds, rate, channels)
    "a/x0.wav": (1.0, 16000, 1),
    "a/x1.wav": (0.7, 16000, 1),
    "b/y0.wav": (1.2, 24000, 2),
    "b/y1.flac": (0.9, 44100, 1),
    "c/z0.wav": (0.8, 8000, 1),
    "c/z1.wav": (1.1, 16000, 1),
}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """Six usable files at several rates and three bad ones, listed with speakers."""
    root = tmp_path_factory.mktemp("prep")
    rows = ["path\tspeaker"]
    for i, (rel, (sec, rate, ch)) in enumerate(GOOD.items()):
        x = noise(sec, rate, seed=i)
        write(root / rel, np.stack([x, 0.5 * x], 1) if ch == 2 else x, rate)
        rows.append(f"{rel}\tspk{rel[0]}")
    (root / "bad").mkdir()
    (root / "bad/corrupt.wav").write_bytes(b"RIFF" + b"\0" * 100)
    write(root / "bad/silent.wav", np.zeros(SR, np.float32))
    (root / "bad/empty.wav").write_bytes(b"")
    rows += ["bad/corrupt.wav\tspkb", "bad/silent.wav\tspkb", "bad/empty.wav\tspkb"]
    (root / "manifest.tsv").write_text("\n".join(rows) + "\n")
    return root / "manifest.tsv"


def test_shard_sizes_by_count_or_bytes():
    assert parse_shard_size("1000") == (1000, None)
    assert parse_shard_size("512MB") == (None, 512_000_000)
    assert parse_shard_size("1GiB") == (None, 2**30)
    with pytest.raises(CodecError, match="shard-size"):
        parse_shard_size("lots")


def test_tar_round_trip_same_audio_and_index_counts(manifest, tmp_path):
    index = prepare(manifest, tmp_path / "tar", "tar", "4", SR, small_cfg(), log=quiet)
    assert index["files"] == 6 and index["speakers"] == 3
    assert index["skipped"] == {"empty": 1, "silent": 1, "unreadable": 1}
    assert [s["files"] for s in index["shards"]] == [4, 2]
    assert index["hours"] == pytest.approx(sum(s for s, _, _ in GOOD.values()) / 3600, abs=1e-5)
    assert json.loads((tmp_path / "tar/index.json").read_text()) == index
    members = [m for s in index["shards"] for m in read_shard(tmp_path / "tar" / s["name"])]
    assert sorted(m.meta["source"] for m in members) == sorted(GOOD)
    for m in members:
        x, rate = sf.read(io.BytesIO(m.audio), dtype="float32")
        ref = load_audio(manifest.parent / m.meta["source"], SR).wav
        assert rate == SR and x.shape == ref.shape
        assert np.abs(x - ref).max() < 1e-4  # 16-bit FLAC of the same soxr output
        assert m.speaker == f"spk{m.meta['source'][0]}"
    # training reads the shards: its report takes the counts from the index, not the shards
    _, _, report = build_datasets(tmp_path / "tar", small_cfg(val_fraction=0.0), SR, log=quiet)
    assert report.n_found == 6 and report.hours_train == pytest.approx(index["hours"])


def test_parquet_round_trip_trains_on_the_same_audio(manifest, tmp_path):
    index = prepare(manifest, tmp_path / "pq", "parquet", "60KB", SR, small_cfg(), log=quiet)
    assert sum(s["files"] for s in index["shards"]) == 6 and len(index["shards"]) >= 2
    cfg = small_cfg(val_fraction=0.2)
    ref, _, _ = build_datasets(manifest, cfg, SR, log=quiet)
    train, _, report = build_datasets(tmp_path / "pq", cfg, SR, log=quiet)
    assert isinstance(train, SourceTrainDataset) and len(train) == len(ref)
    assert report.speakers_train == ref_speakers(ref)
    for i, path in enumerate(ref.paths):
        n = train._length(i)
        x = train._read(i, 0, n)
        y = load_audio(path, SR).wav
        assert x.shape == y.shape and np.abs(x - y).max() < 1e-4
        if sf.info(path).samplerate == SR:  # nothing resampled: the very same crops
            assert torch.equal(ref.crop(i, 2, 5), train.crop(i, 2, 5))


def ref_speakers(ds) -> int:
    return len({s for s in ds.speakers if s})


def test_prepare_command_and_its_errors(manifest, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["prepare", str(manifest), str(out), "--format", "tar", "--shard-size", "3"]
    assert main(args) == 0
    assert len(json.loads((out / "index.json").read_text())["shards"]) == 2
    assert main(args) == 2  # an existing index is not overwritten
    assert "already holds prepared shards" in capsys.readouterr().err
    assert main([*args, "--force", "--sample-rate", "8000"]) == 0
    assert json.loads((out / "index.json").read_text())["sample_rate"] == 8000
    assert main(["prepare", str(tmp_path / "nothing"), str(tmp_path / "o2")]) == 2


def test_prepared_tone_keeps_its_pitch_after_resampling(tmp_path):
    write(tmp_path / "src/t.wav", tone(1.0, 440.0, sr=48000), 48000)
    prepare(tmp_path / "src", tmp_path / "out", "tar", "10", SR, small_cfg(), log=quiet)
    (m,) = list(read_shard(tmp_path / "out/train-000000.tar"))
    x, rate = sf.read(io.BytesIO(m.audio))
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    assert rate == SR and abs(np.argmax(spec) * SR / len(x) - 440) < 3
