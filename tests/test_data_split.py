"""data/split.py: manifest split column, hash and speaker-disjoint splits, separate val data."""

from __future__ import annotations

from pathlib import Path

import pytest

from telugu_codec.data import AudioItem, FileStats, ScanEntry, build_datasets, hash_split
from telugu_codec.data.split import speakers, split_entries
from telugu_codec.errors import CodecError

from .data_helpers import SR, make_folder, quiet, small_cfg


def test_manifest_split_column_decides_validation(tmp_path):
    files = make_folder(tmp_path / "audio", 6)
    splits = ["train", "train", "train", "dev", "val", "test"]
    lines = ["audio_filepath,split"] + [f"audio/{f.name},{s}" for f, s in zip(files, splits)]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    train, val, report = build_datasets(tmp_path / "m.csv", small_cfg(), SR, log=quiet)
    assert report.split == "manifest"
    assert [Path(p).name for p in train.paths] == ["f00.wav", "f01.wav", "f02.wav"]
    assert sorted(Path(p).name for p in val.paths) == ["f03.wav", "f04.wav"]  # test: neither


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


def test_default_hold_out_keeps_todays_split(tmp_path):
    """`data.val_hold_out: fraction` (the default) holds out every file hashed into
    val_fraction, validated or not: the training set of runs made before the option."""
    make_folder(tmp_path, 30, seconds=0.5)
    cfg = small_cfg(val_fraction=0.3, val_max_files=2)
    train, val, report = build_datasets(tmp_path, cfg, SR, log=quiet)
    entries = fake_entries_for(tmp_path)
    ref_train, ref_val = hash_split(entries, tmp_path, 0.3)
    assert sorted(train.paths) == sorted(str(e.item.path) for e in ref_train)
    assert len(val) == 2 and report.n_held_out == len(ref_val) > 2


def test_validated_hold_out_keeps_out_only_the_validated_files(tmp_path):
    make_folder(tmp_path, 30, seconds=0.5)
    cfg = small_cfg(val_fraction=0.3, val_max_files=2, val_hold_out="validated")
    train, val, report = build_datasets(tmp_path, cfg, SR, log=quiet)
    held_out = {str(p) for p in tmp_path.glob("*.wav")} - set(train.paths)
    assert held_out == set(val.paths) and len(val) == 2
    assert report.n_held_out == report.n_val == 2 and len(train) == 28
    # the validated files are those the default validates
    _, default_val, _ = build_datasets(
        tmp_path, small_cfg(val_fraction=0.3, val_max_files=2), SR, log=quiet
    )
    assert set(val.paths) == set(default_val.paths)


def test_validated_hold_out_by_speaker_trains_on_no_validated_speaker():
    entries = fake_entries(300, speakers=30)
    cfg = small_cfg(
        val_fraction=0.3, val_max_files=4, speaker_disjoint=True, val_hold_out="validated"
    )
    train, val, method = split_entries(entries, Path("/corpus"), cfg, log=quiet)
    assert method == "speaker-hash" and len(val) == 4
    assert not speakers(train) & speakers(val)
    _, default_val = hash_split(entries, Path("/corpus"), 0.3, True)
    assert len(train) > len(entries) - len(default_val)  # unvalidated speakers train again


def test_report_says_what_validation_costs_and_what_is_never_validated(tmp_path):
    make_folder(tmp_path, 30, seconds=2.0)
    lines = []
    cfg = small_cfg(val_fraction=0.3, val_max_files=2, val_max_seconds=1.5)
    _, _, report = build_datasets(tmp_path, cfg, SR, log=lines.append)
    text = "\n".join(lines)
    assert report.val_seconds == pytest.approx(3.0)  # 2 files x the centre 1.5 s
    assert "validation: 2 files, 3.0 s of audio per validation" in text
    unvalidated = report.n_held_out - 2
    assert f"note: {unvalidated} held-out files ({unvalidated * 2 / 3600:.2f} h)" in text
    lines.clear()
    build_datasets(
        tmp_path,
        small_cfg(val_fraction=0.3, val_max_files=2, val_hold_out="validated"),
        SR,
        log=lines.append,
    )
    assert not any("held-out files" in line for line in lines)


def fake_entries_for(root: Path) -> list[ScanEntry]:
    stats = FileStats(SR, 1, SR // 2, "PCM_16", 0.5, 0.0, -20.0)
    return [ScanEntry(AudioItem(p, 0.5), stats) for p in sorted(root.glob("*.wav"))]
