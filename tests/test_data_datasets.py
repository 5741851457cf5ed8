"""data/datasets.py: training crops and validation items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from telugu_codec.audio import db_rms
from telugu_codec.data import build_datasets

from .data_helpers import SR, make_folder, noise, quiet, small_cfg, write


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


def test_files_gone_bad_after_the_scan_are_substituted_and_recorded(tmp_path):
    """Deleted, truncated or NaN-filled after the scan: no exception, another file's crop in
    its place (the same one every time), the path recorded; healthy crops do not change."""
    make_folder(tmp_path / "d", 6, seconds=2.0)
    train, _, _ = build_datasets(tmp_path / "d", small_cfg(val_fraction=0.0), SR, log=quiet)
    before = [train[(0, 1, i)] for i in range(len(train))]
    names = [Path(p).name for p in train.paths]
    deleted, cut, nan = (train.paths[names.index(n)] for n in ("f00.wav", "f01.wav", "f02.wav"))
    Path(deleted).unlink()
    data = Path(cut).read_bytes()
    Path(cut).write_bytes(data[: len(data) // 2])
    write(Path(nan), np.full(2 * SR, np.nan, dtype=np.float32), subtype="FLOAT")
    train.failures.log_file = tmp_path / "errors.jsonl"
    after = [train[(0, 1, i)] for i in range(len(train))]
    bad = {deleted, cut, nan}
    for i, p in enumerate(train.paths):
        if p in bad:
            assert any(torch.equal(after[i], b) for b in before)  # some healthy file's crop
            assert torch.equal(after[i], train[(0, 1, i)])  # deterministic
        else:
            assert torch.equal(after[i], before[i])
    assert set(train.failures.paths) == bad
    records = train.failures.new_records()
    assert {r["path"] for r in records} == bad and train.failures.new_records() == []
    assert "changed since the scan" in train.failures.paths[cut]


def test_teacher_crops_are_the_training_crops_with_their_frames_targets(tmp_path):
    """Distillation items (data/teacher_crops.py) carry exactly the crop `TrainDataset` draws,
    substitutes included, and a target per codec frame taken at that crop's own file times."""
    from telugu_codec.data.teacher_crops import TeacherCrops
    from telugu_codec.data.teachers import Teacher

    make_folder(tmp_path / "d", 4, seconds=2.0)
    write(tmp_path / "d" / "short.wav", noise(0.3, seed=9))
    train, _, _ = build_datasets(tmp_path / "d", small_cfg(val_fraction=0.0), SR, log=quiet)
    seen: list[tuple[str, np.ndarray]] = []

    class Clock(Teacher):  # target = the file time of the frame centre, in ms
        def __init__(self):
            self.kind = "features"

        def targets(self, path, times):
            seen.append((path, times))
            return (1000 * times)[:, None].astype(np.float32), times >= 0

    hop = 400
    crops = TeacherCrops.from_dataset(train, Clock(), hop)
    Path(train.paths[1]).unlink()  # gone bad after the scan: substituted in both
    for i in range(len(train)):
        item, plain = crops[(3, 2, i)], train[(3, 2, i)]
        assert torch.equal(item["audio"], plain)
        frames = -(-plain.shape[-1] // hop)
        assert item["target"].shape == (frames, 1) and item["valid"].shape == (frames,)
        path, times = seen[-1]
        assert path != train.paths[1]
        if Path(path).name == "short.wav":  # zero-padded: frames past the audio have none
            assert not item["valid"].all() and item["valid"].any()
        else:  # consecutive frame centres, hop apart, inside the file
            np.testing.assert_allclose(np.diff(times), hop / SR, atol=1e-9)
            assert item["valid"].all() and 0 <= times[0] < 2.0
