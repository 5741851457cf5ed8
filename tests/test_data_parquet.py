"""data/parquet.py: Parquet files and Arrow (save_to_disk) folders read row by row."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
import torch

from telugu_codec.config import load_config
from telugu_codec.data import SourceTrainDataset, build_datasets, train_batches
from telugu_codec.data.parquet import RecordSource
from telugu_codec.errors import CodecError
from telugu_codec.train.trainer import Trainer

from .data_helpers import (
    SR,
    audio_rows,
    noise,
    quiet,
    small_cfg,
    write,
    write_arrow_dataset,
    write_parquet,
)
from .test_trainer import TRAIN_OVERRIDES

pytest.importorskip("pyarrow")

LENGTHS = (0.3, 1.2, 2.0, 0.8, 1.5, 2.5, 1.0, 0.6)  # some shorter than a segment


def make_corpus(root: Path) -> list[Path]:
    """Eight files in two speaker folders, in the order a folder scan lists them."""
    files = [
        write(root / f"spk{i % 2}" / f"u{i}.wav", noise(s, seed=i)) for i, s in enumerate(LENGTHS)
    ]
    return sorted(files)


def assert_same_crops(folder_set, other_set) -> None:
    assert isinstance(other_set, SourceTrainDataset)
    assert len(folder_set) == len(other_set)
    for i in range(len(folder_set)):
        for epoch, seed in ((0, 0), (3, 7)):
            assert torch.equal(folder_set.crop(i, epoch, seed), other_set.crop(i, epoch, seed)), i


def assert_same_val(a, b) -> None:
    assert len(a) == len(b) > 0
    for i in range(len(a)):
        assert torch.equal(a[i], b[i])


def train_two_steps(run_dir: Path, data, *extra: str) -> Trainer:
    cfg = load_config(None, TRAIN_OVERRIDES + ["loss.adv=0", "loss.fm=0", *extra])
    t = Trainer(cfg, run_dir, data, progress=False, tensorboard=False, log=quiet)
    result = t.train(2)
    assert result.step == 2 and (run_dir / "checkpoints/step_00000002/codec.safetensors").exists()
    return t


@pytest.mark.parametrize("embed", [True, False], ids=["bytes", "path"])
def test_parquet_gives_the_same_crops_as_the_folder_and_trains(tmp_path, embed):
    root = tmp_path / "corpus"
    files = make_corpus(root)
    cfg = small_cfg(val_fraction=0.25)
    ref_train, ref_val, _ = build_datasets(root, cfg, SR, log=quiet)
    # with bytes: the parquet file lives elsewhere; paths are relative to the parquet file
    where = tmp_path / "pq" if embed else root
    speakers = [f.parent.name for f in files]
    write_parquet(
        where / "data" / "train-00000-of-00001.parquet",
        {"audio": audio_rows(files, root, embed), "speaker_id": speakers},
        row_group_size=3,
    )
    if not embed:  # a path variant needs the files next to the parquet file's folder
        for f in files:
            target = where / "data" / f.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.read_bytes())
    src = where / "data" / "train-00000-of-00001.parquet"
    train, val, report = build_datasets(src if not embed else where, cfg, SR, log=quiet)
    assert report.layout == "parquet" and not report.probed
    assert report.speakers_train == 2  # the speaker column was read
    assert_same_crops(ref_train, train)
    assert_same_val(ref_val, val)
    t = train_two_steps(tmp_path / "run", src if not embed else where)
    assert t.state.data_seen == {t.data_report.name: 4}


def test_arrow_save_to_disk_folders_dataset_and_datasetdict(tmp_path):
    root = tmp_path / "corpus"
    files = make_corpus(root)
    cfg = small_cfg(val_fraction=0.25)
    ref_train, ref_val, _ = build_datasets(root, cfg, SR, log=quiet)
    durations = [sf.info(str(f)).duration for f in files]
    ds = write_arrow_dataset(
        tmp_path / "hf", {"audio": audio_rows(files, root), "duration": durations}
    )
    train, val, report = build_datasets(ds, cfg, SR, log=quiet)
    assert report.layout == "arrow"
    assert report.hours_train == pytest.approx(ref_train.hours)  # from the duration column
    assert_same_crops(ref_train, train)
    assert_same_val(ref_val, val)
    # a DatasetDict: its "validation" split is the validation set, "test" is left out
    dd = tmp_path / "hfdict"
    write_arrow_dataset(dd / "train", {"audio": audio_rows(files[:5], root)})
    write_arrow_dataset(dd / "validation", {"audio": audio_rows(files[5:7], root)}, "validation")
    write_arrow_dataset(dd / "test", {"audio": audio_rows(files[7:], root)}, "test")
    (dd / "dataset_dict.json").write_text('{"splits": ["train", "validation", "test"]}')
    train, val, report = build_datasets(dd, cfg, SR, log=quiet)
    assert report.split == "manifest" and (len(train), len(val)) == (5, 2)
    train_two_steps(tmp_path / "run", dd)


def test_audio_column_by_type_by_name_and_a_clear_error(tmp_path):
    root = tmp_path / "corpus"
    files = make_corpus(root)[:3]
    f = write_parquet(
        tmp_path / "a.parquet",
        {"speech": audio_rows(files, root), "other": audio_rows(files, root)},
    )
    src = RecordSource(f)
    assert src.columns[0] == ("speech", "struct")  # the first {bytes, path} column
    assert RecordSource(f, audio_column="other").columns[0] == ("other", "struct")
    with pytest.raises(CodecError, match="no audio column 'nope'"):
        RecordSource(f, audio_column="nope")
    g = write_parquet(tmp_path / "b.parquet", {"text": ["a", "b", "c"]})
    with pytest.raises(CodecError, match="data.audio_column"):
        build_datasets(g, small_cfg(), SR, log=quiet)


def test_unreadable_rows_are_passed_over_and_counted(tmp_path):
    root = tmp_path / "corpus"
    files = make_corpus(root)
    rows = audio_rows(files, root)
    rows[2] = {"bytes": b"not audio at all", "path": rows[2]["path"]}
    f = write_parquet(tmp_path / "d.parquet", {"audio": rows})
    cfg = small_cfg(val_fraction=0.0, batch_size=8)
    train, _, _ = build_datasets(f, cfg, SR, log=quiet)
    bad = 2  # rows are in folder order and nothing is held out
    x, skipped = train.checked_crop(bad, 0, 0)
    assert skipped == 1 and torch.equal(x, train.crop(bad + 1, 0, 0))
    batch = next(train_batches(train, cfg, seed=0))
    assert batch.skipped == {"unreadable": 1} and batch.audio.shape == (8, 1, 8000)
