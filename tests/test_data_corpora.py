"""data/corpora.py: folders, manifests and the SLR66 / IndicTTS / Common Voice layouts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from telugu_codec.data import build_datasets, corpora, list_audio_files, read_manifest
from telugu_codec.errors import CodecError

from .data_helpers import HAS_MP3, SR, noise, peak_freq, quiet, small_cfg, tone, write


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
    assert corpora.discover(tmp_path).layout == "slr66"
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
    corpus = corpora.discover(tmp_path)
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
    corpus = corpora.discover(tmp_path)
    assert corpus.layout == "commonvoice"
    assert [(it.speaker, it.path.name) for it in corpus.items] == rows


def test_missing_path_and_empty_folder_are_clear_errors(tmp_path):
    with pytest.raises(CodecError, match="not found"):
        list_audio_files(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(CodecError, match="no audio files"):
        build_datasets(tmp_path / "empty", small_cfg(), SR, log=quiet)
