"""Data pipeline: discovery, bad-file handling, split, deterministic crops and loaders."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from telugu_codec import data as data_mod
from telugu_codec.audio import db_rms
from telugu_codec.config import DataConfig
from telugu_codec.data import (
    AudioItem,
    EpochSampler,
    FileStats,
    ScanEntry,
    build_datasets,
    hash_split,
    infinite_batches,
    list_audio_files,
    make_train_loader,
    read_manifest,
)
from telugu_codec.errors import CodecError

SR = 16000
ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo-te"
HAS_MP3 = "MP3" in sf.available_formats()


def quiet(_: str) -> None:
    pass


def noise(seconds: float, sr: int = SR, seed: int = 0, level_db: float = -20.0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(int(seconds * sr))
    return (x * 10 ** (level_db / 20)).astype(np.float32)


def tone(seconds: float, freq: float, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path: Path, x: np.ndarray, sr: int = SR, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype=subtype)
    return path


def make_folder(root: Path, n: int, seconds: float = 2.0) -> list[Path]:
    return [write(root / f"f{i:02d}.wav", noise(seconds, seed=i)) for i in range(n)]


def small_cfg(**kw) -> DataConfig:
    base = dict(batch_size=4, val_fraction=0.2, segment_seconds=0.5)
    base.update(kw)
    return DataConfig(**base)


def peak_freq(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


# --------------------------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------------------------


def test_folder_is_searched_recursively_for_audio_only(tmp_path):
    write(tmp_path / "a.wav", noise(0.2))
    write(tmp_path / "sub" / "b.flac", noise(0.2))
    write(tmp_path / "sub" / "deeper" / "c.ogg", noise(0.2))
    write(tmp_path / ".hidden" / "d.wav", noise(0.2))
    (tmp_path / "notes.txt").write_text("not audio")
    items = list_audio_files(tmp_path)
    names = [it.path.name for it in items]
    assert names == ["a.wav", "b.flac", "c.ogg"]
    assert all(it.path.is_absolute() and it.speaker is None for it in items)


@pytest.mark.skipif(not HAS_MP3, reason="libsndfile without MP3")
def test_mp3_files_are_found_and_decoded(tmp_path):
    write(tmp_path / "a.mp3", tone(1.0, 440, sr=22050), sr=22050)
    write(tmp_path / "b.wav", tone(1.0, 440))
    train, val, report = build_datasets(tmp_path, small_cfg(val_fraction=0.5), SR, log=quiet)
    assert report.n_usable == 2 and report.converted["resampled"] == 1
    item = (train if train.paths[0].endswith(".mp3") else val)[0]
    assert abs(peak_freq(item[0].numpy(), SR) - 440) < 5


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_manifest_formats_resolve_relative_paths(tmp_path, fmt):
    write(tmp_path / "audio" / "x.wav", noise(0.5))
    write(tmp_path / "audio" / "y.wav", noise(0.5))
    rows = [
        {"path": "audio/x.wav", "duration": "0.5", "speaker": "s1"},
        {"path": str(tmp_path / "audio" / "y.wav"), "duration": "", "speaker": "s2"},
    ]
    manifest = tmp_path / "lists" / f"m.{fmt}"
    manifest.parent.mkdir()
    for r in rows:  # relative paths are relative to the manifest's folder
        if not Path(r["path"]).is_absolute():
            r["path"] = "../" + r["path"]
    if fmt == "jsonl":
        manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    else:
        with manifest.open("w", newline="") as f:
            delimiter = "\t" if fmt == "tsv" else ","
            w = csv.DictWriter(f, ["path", "duration", "speaker"], delimiter=delimiter)
            w.writeheader()
            w.writerows(rows)
    items = list_audio_files(manifest)
    assert [it.path for it in items] == [
        (tmp_path / "audio" / "x.wav").resolve(),
        (tmp_path / "audio" / "y.wav").resolve(),
    ]
    assert [it.duration for it in items] == [0.5, None]
    assert [it.speaker for it in items] == ["s1", "s2"]


def test_manifest_split_column_decides_validation(tmp_path):
    files = make_folder(tmp_path / "audio", 6)
    splits = ["train", "train", "train", "dev", "val", "test"]
    lines = ["audio_filepath,split"] + [f"audio/{f.name},{s}" for f, s in zip(files, splits)]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    train, val, report = build_datasets(tmp_path / "m.csv", small_cfg(), SR, log=quiet)
    assert report.split == "manifest"
    assert [Path(p).name for p in train.paths] == ["f00.wav", "f01.wav", "f02.wav"]
    assert sorted(Path(p).name for p in val.paths) == ["f03.wav", "f04.wav"]  # test: neither


def test_manifest_without_path_column_is_a_clear_error(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("name,duration\nx.wav,1.0\n")
    with pytest.raises(CodecError, match="no path column"):
        read_manifest(m)


def test_slr66_layout_gives_speakers_from_file_ids(tmp_path):
    ids = {
        "te_in_female": ["tef_01234_00000001", "tef_01234_00000002", "tef_05678_00000003"],
        "te_in_male": ["tem_02345_00000004"],
    }
    for folder, names in ids.items():
        lines = []
        for n in names:
            write(tmp_path / folder / f"{n}.wav", noise(0.3, sr=48000), sr=48000)
            lines.append(f"{n}\tఒక వాక్యం")
        (tmp_path / folder / "line_index.tsv").write_text("\n".join(lines) + "\n")
    items = list_audio_files(tmp_path)
    assert data_mod.discover(tmp_path).layout == "slr66"
    assert len(items) == 4
    assert sorted({it.speaker for it in items}) == ["tef_01234", "tef_05678", "tem_02345"]


def test_indictts_layout_uses_the_speaker_folder(tmp_path):
    for gender, etc in (("male", False), ("female", True)):
        spk = tmp_path / "Telugu" / gender
        for i in range(2):
            write(spk / "wav" / f"train_telugu{gender}_{i:05d}.wav", noise(0.3, seed=i))
        text = spk / ("etc/txt.done.data" if etc else "txt.done.data")
        text.parent.mkdir(parents=True, exist_ok=True)
        text.write_text('( train_telugumale_00000 " ఒక వాక్యం " )\n')
    corpus = data_mod.discover(tmp_path)
    assert corpus.layout == "indictts"
    assert sorted(it.speaker for it in corpus.items) == ["Telugu/female"] * 2 + ["Telugu/male"] * 2


@pytest.mark.skipif(not HAS_MP3, reason="libsndfile without MP3")
def test_common_voice_layout_reads_validated_tsv(tmp_path):
    cv = tmp_path / "cv-corpus" / "te"
    rows = [("spkA", "common_voice_te_1.mp3"), ("spkB", "common_voice_te_2.mp3")]
    for _, name in rows:
        write(cv / "clips" / name, tone(1.0, 300, sr=48000), sr=48000)
    write(cv / "clips" / "common_voice_te_3.mp3", tone(1.0, 300, sr=48000), sr=48000)  # invalid
    lines = ["client_id\tpath\tsentence\tup_votes"] + [f'{c}\t{p}\t"వాక్యం\t2' for c, p in rows]
    (cv / "validated.tsv").write_text("\n".join(lines) + "\n")
    corpus = data_mod.discover(tmp_path)
    assert corpus.layout == "commonvoice"
    assert [(it.speaker, it.path.name) for it in corpus.items] == rows


def test_missing_path_and_empty_folder_are_clear_errors(tmp_path):
    with pytest.raises(CodecError, match="not found"):
        list_audio_files(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(CodecError, match="no audio files"):
        build_datasets(tmp_path / "empty", small_cfg(), SR, log=quiet)


# --------------------------------------------------------------------------------------------
# conversions and bad files
# --------------------------------------------------------------------------------------------


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
    real = data_mod.probe_file
    monkeypatch.setattr(data_mod, "probe_file", lambda p: calls.append(p) or real(p))
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


# --------------------------------------------------------------------------------------------
# split
# --------------------------------------------------------------------------------------------


def fake_entries(n: int, speakers: int | None = None) -> list[ScanEntry]:
    stats = FileStats(SR, 1, SR, "PCM_16", 0.5, 0.0, -20.0)
    return [
        ScanEntry(
            AudioItem(
                Path(f"/corpus/s{i % (speakers or 1)}/u{i}.wav"),
                1.0,
                None if speakers is None else f"spk{i % speakers}",
            ),
            stats,
        )
        for i in range(n)
    ]


def test_hash_split_is_stable_disjoint_and_unaffected_by_new_files():
    entries = fake_entries(2000)
    train, val = hash_split(entries, Path("/corpus"), 0.1)
    again_train, again_val = hash_split(list(reversed(entries)), Path("/corpus"), 0.1)
    paths = lambda es: {e.item.path for e in es}  # noqa: E731
    assert paths(val) == paths(again_val) and paths(train) == paths(again_train)
    assert not paths(train) & paths(val)
    assert len(train) + len(val) == 2000
    assert 150 < len(val) < 250  # about 10 %
    more_train, more_val = hash_split(entries + fake_entries(2500)[2000:], Path("/corpus"), 0.1)
    assert paths(val) <= paths(more_val) and paths(train) <= paths(more_train)


def test_hash_split_never_leaves_a_side_empty():
    train, val = hash_split(fake_entries(3), Path("/corpus"), 0.01)
    assert len(val) == 1 and len(train) == 2
    train, val = hash_split(fake_entries(3), Path("/corpus"), 0.999)
    assert len(train) >= 1 and len(val) >= 1


def test_speaker_disjoint_split_shares_no_speaker():
    train, val = hash_split(fake_entries(600, speakers=30), Path("/corpus"), 0.2, True)
    spk_train = {e.item.speaker for e in train}
    spk_val = {e.item.speaker for e in val}
    assert spk_val and not spk_train & spk_val
    # a plain file split of the same data does mix speakers
    train, val = hash_split(fake_entries(600, speakers=30), Path("/corpus"), 0.2, False)
    assert {e.item.speaker for e in train} & {e.item.speaker for e in val}


def test_speaker_disjoint_without_speaker_ids_is_an_error(tmp_path):
    make_folder(tmp_path, 4)
    with pytest.raises(CodecError, match="no speaker ids"):
        build_datasets(tmp_path, small_cfg(speaker_disjoint=True), SR, log=quiet)


def test_separate_val_data_is_removed_from_training(tmp_path):
    files = make_folder(tmp_path / "all", 6)
    train, val, report = build_datasets(
        tmp_path / "all", small_cfg(), SR, val_data=files[0], log=quiet
    )
    assert report.split == "val_data"
    assert val.paths == [str(files[0].resolve())]
    assert str(files[0].resolve()) not in train.paths and len(train) == 5


# --------------------------------------------------------------------------------------------
# crops and loaders
# --------------------------------------------------------------------------------------------


def test_crops_are_deterministic_per_seed_epoch_index_and_normalised(tmp_path):
    make_folder(tmp_path, 4, seconds=3.0)
    cfg = small_cfg(val_fraction=0.0, segment_seconds=0.5)
    train, _, _ = build_datasets(tmp_path, cfg, SR, log=quiet)
    a = train[(7, 3, 1)]
    assert a.shape == (1, 8000) and a.dtype == torch.float32
    assert torch.equal(a, train[(7, 3, 1)])
    assert not torch.equal(a, train[(7, 4, 1)])  # another epoch, another crop
    assert not torch.equal(a, train[(8, 3, 1)])  # another seed, another crop
    assert abs(db_rms(a[0].numpy()) - cfg.normalize_db) < 0.1


def test_short_files_are_zero_padded(tmp_path):
    write(tmp_path / "short.wav", np.abs(noise(0.3)) + 0.05)  # no zero samples in the audio
    write(tmp_path / "long.wav", noise(2.0))
    train, _, _ = build_datasets(
        tmp_path, small_cfg(val_fraction=0.0, segment_seconds=1.0), SR, log=quiet
    )
    i = [Path(p).name for p in train.paths].index("short.wav")
    for epoch in range(3):
        x = train.crop(i, epoch)[0].numpy()
        nz = np.flatnonzero(x)
        assert x.shape == (SR,) and len(nz) == int(0.3 * SR)
        assert nz[-1] - nz[0] + 1 == len(nz)  # one contiguous stretch of audio


def test_near_silent_crops_are_redrawn(tmp_path):
    # 10 s of near-silence (-80 dBFS) with 3 s of loud audio in the middle
    x = noise(10.0, level_db=-80.0)
    x[int(3.5 * SR) : int(6.5 * SR)] = noise(3.0, seed=1, level_db=-12.0)
    write(tmp_path / "mostly_quiet.wav", x, subtype="FLOAT")
    write(tmp_path / "other.wav", noise(2.0))
    levels = {}
    for retries in (0, 20):
        cfg = small_cfg(val_fraction=0.0, segment_seconds=1.0, silence_retries=retries)
        train, _, _ = build_datasets(tmp_path, cfg, SR, log=quiet)
        i = [Path(p).name for p in train.paths].index("mostly_quiet.wav")
        # a silent crop stays far below the target even after the capped normalisation gain
        levels[retries] = [db_rms(train.crop(i, epoch)[0].numpy()) for epoch in range(12)]
    assert min(levels[0]) < -40  # without re-draws some crops are near-silent
    assert min(levels[20]) > -40


def test_val_items_are_centre_crops_or_whole_files(tmp_path):
    make_folder(tmp_path / "train", 2)
    long = noise(8.0, seed=3)
    write(tmp_path / "val" / "long.wav", long, subtype="FLOAT")
    write(tmp_path / "val" / "short.wav", noise(1.5, seed=4), subtype="FLOAT")
    cfg = small_cfg(val_max_seconds=2.0)
    _, val, _ = build_datasets(tmp_path / "train", cfg, SR, val_data=tmp_path / "val", log=quiet)
    items = {Path(p).name: val[i] for i, p in enumerate(val.paths)}
    assert items["short.wav"].shape == (1, int(1.5 * SR))
    got = items["long.wav"][0].numpy()
    centre = long[3 * SR : 5 * SR]
    assert got.shape == centre.shape
    np.testing.assert_allclose(got / np.std(got), centre / np.std(centre), atol=1e-4)
    assert torch.equal(val[0], val[0])


def batches(loader) -> list[torch.Tensor]:
    return [b.clone() for b in loader]


def test_batches_do_not_depend_on_worker_count(tmp_path):
    make_folder(tmp_path, 8, seconds=1.5)
    cfg0 = small_cfg(val_fraction=0.0, num_workers=0)
    train, _, _ = build_datasets(tmp_path, cfg0, SR, log=quiet)
    cfg1 = small_cfg(val_fraction=0.0, num_workers=1)
    b0 = batches(make_train_loader(train, cfg0, seed=5, epoch=2))
    b1 = batches(make_train_loader(train, cfg1, seed=5, epoch=2))
    assert len(b0) == 2 and b0[0].shape == (4, 1, 8000)
    assert all(torch.equal(x, y) for x, y in zip(b0, b1))


def test_resume_from_start_batch_continues_with_the_same_batches(tmp_path):
    make_folder(tmp_path, 13, seconds=1.0)
    cfg = small_cfg(val_fraction=0.0, batch_size=3)
    train, _, _ = build_datasets(tmp_path, cfg, SR, log=quiet)
    full = batches(make_train_loader(train, cfg, seed=1, epoch=4))
    assert len(full) == 4  # 13 files, batch 3, drop_last
    tail = batches(make_train_loader(train, cfg, seed=1, epoch=4, start_batch=2))
    assert len(tail) == 2 and all(torch.equal(a, b) for a, b in zip(full[2:], tail))
    # the endless iterator: a run resumed after (epoch 0, batch 2) matches the straight run
    straight = infinite_batches(train, cfg, seed=1)
    ref = [next(straight) for _ in range(7)]
    resumed = infinite_batches(train, cfg, seed=1, start_epoch=0, start_batch=3)
    for (e, i, b), (e2, i2, b2) in zip(ref[3:], [next(resumed) for _ in range(4)]):
        assert (e, i) == (e2, i2) and torch.equal(b, b2)
    assert [(e, i) for e, i, _ in ref] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2)]
    with pytest.raises(CodecError, match="cannot start at batch 5"):
        make_train_loader(train, cfg, seed=1, start_batch=5)


def test_ranks_get_disjoint_equal_shares_of_each_epoch():
    n, bs, ws = 50, 4, 3
    parts = [EpochSampler(n, bs, seed=2, epoch=1, rank=r, world_size=ws) for r in range(ws)]
    keys = [list(p) for p in parts]
    assert {len(k) for k in keys} == {(n // (bs * ws)) * bs}
    idx = [{k[2] for k in ks} for ks in keys]
    assert all(not idx[a] & idx[b] for a in range(ws) for b in range(a + 1, ws))
    assert all(k[:2] == (2, 1) for ks in keys for k in ks)
    # the order changes between epochs but not between calls
    assert list(EpochSampler(n, bs, 2, 1)) == list(EpochSampler(n, bs, 2, 1))
    assert list(EpochSampler(n, bs, 2, 1)) != list(EpochSampler(n, bs, 2, 2))


def test_a_tiny_data_set_still_fills_one_batch():
    keys = list(EpochSampler(3, 8, seed=0))
    assert len(keys) == 8 and {k[2] for k in keys} == {0, 1, 2}


# --------------------------------------------------------------------------------------------
# bundled corpus
# --------------------------------------------------------------------------------------------


def test_bundled_demo_corpus_is_consistent(tmp_path):
    with (DEMO / "manifest.tsv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) >= 250
    for r in rows:
        info = sf.info(str(DEMO / r["path"]))
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        assert abs(info.duration - float(r["duration"])) < 0.01
        assert r["path"].startswith(r["split"] + "/")
    minutes = sum(float(r["duration"]) for r in rows) / 60
    assert 10 <= minutes <= 20
    size_mb = sum((DEMO / r["path"]).stat().st_size for r in rows) / 1e6
    assert size_mb < 20
    train = {r["text"] for r in rows if r["split"] == "train"}
    val = {r["text"] for r in rows if r["split"] == "val"}
    assert val and not train & val
    assert 0.07 < len(val) / len(rows) < 0.13
    assert len({r["speaker"] for r in rows}) >= 8
    assert "SYNTHETIC" in (DEMO / "README.md").read_text(encoding="utf-8")
    tr, va, report = build_datasets(DEMO, DataConfig(), SR, cache_dir=tmp_path, log=quiet)
    assert report.split == "manifest" and report.skipped == {}
    assert report.n_train == len(train) and report.n_held_out == len(val)
