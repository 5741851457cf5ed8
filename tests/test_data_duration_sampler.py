"""data/duration_sampler.py: crops in proportion to duration (``data.crops_per_file``)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from telugu_codec.data import build_datasets, make_train_loader
from telugu_codec.data.duration_sampler import DurationSampler, allocate, item_seconds
from telugu_codec.data.mix import mixed_loader
from telugu_codec.errors import CodecError

from .data_helpers import SR, noise, quiet, small_cfg, write

SECONDS = np.array([0.5, 1.0, 2.0, 3.5, 7.0, 12.0, 30.0, 0.2, 4.4, 1.6])


def counts(keys: list[tuple[int, int, int]], n: int) -> np.ndarray:
    return np.bincount([k[2] for k in keys], minlength=n)


def test_crops_per_file_follow_duration_in_every_epoch():
    """Each file's crops in one epoch are its share of the duration to within one crop, and
    over many epochs the counts fit the durations (chi-square); one crop per file would not."""
    total = np.zeros(len(SECONDS))
    for epoch in range(40):
        s = DurationSampler(SECONDS, 1.0, batch_size=2, seed=7, epoch=epoch)
        c = counts(list(s), len(SECONDS))
        expected = SECONDS / SECONDS.sum() * s.positions
        assert np.all(np.abs(c - expected) < 1.0), (c, expected)
        total += c
    expected = SECONDS / SECONDS.sum() * total.sum()
    chi2 = float(((total - expected) ** 2 / expected).sum())
    assert chi2 < 21.7  # chi-square, 9 degrees of freedom, p = 0.01
    # a 30 s file gives 150x the crops of a 0.2 s one (one crop each would give 1x)
    assert total[6] > 50 * total[7]


def test_an_epoch_is_about_one_pass_over_the_audio():
    s = DurationSampler(SECONDS, 0.5, batch_size=4, seed=0)
    assert s.positions == (int(round(SECONDS.sum() / 0.5)) // 4) * 4
    # never fewer crops than files
    assert DurationSampler(np.full(9, 0.1), 1.0, batch_size=1, seed=0).positions == 9


def test_a_files_crops_in_one_epoch_are_different_crops():
    keys = list(DurationSampler(SECONDS, 1.0, batch_size=1, seed=3, epoch=2))
    assert len(set(keys)) == len(keys)  # (seed, crop epoch, file) never repeats
    long_file = [k for k in keys if k[2] == 6]
    assert len(long_file) >= 20 and len({k[1] for k in long_file}) == len(long_file)


def test_ranks_are_disjoint_and_together_make_the_epoch():
    ws, bs = 3, 2
    parts = [
        list(DurationSampler(SECONDS, 0.5, bs, 4, 1, rank=r, world_size=ws)) for r in range(ws)
    ]
    assert len({len(p) for p in parts}) == 1 and len(parts[0]) % bs == 0
    sets = [set(p) for p in parts]
    assert all(not sets[a] & sets[b] for a in range(ws) for b in range(a + 1, ws))
    # the ranks deal the same epoch (that of the whole world's batches) among them
    whole = DurationSampler(SECONDS, 0.5, bs * ws, seed=4, epoch=1)
    assert set().union(*sets) == set(whole)


def test_order_is_deterministic_per_seed_and_epoch_and_resumable():
    a = list(DurationSampler(SECONDS, 1.0, 2, seed=1, epoch=5))
    assert a == list(DurationSampler(SECONDS, 1.0, 2, seed=1, epoch=5))
    assert a != list(DurationSampler(SECONDS, 1.0, 2, seed=1, epoch=6))
    assert a != list(DurationSampler(SECONDS, 1.0, 2, seed=2, epoch=5))
    tail = list(DurationSampler(SECONDS, 1.0, 2, seed=1, epoch=5, start_batch=3))
    assert tail == a[3 * 2 :]
    with pytest.raises(CodecError, match="cannot start at batch"):
        DurationSampler(SECONDS, 1.0, 2, seed=1, start_batch=10_000)


def test_allocate_gives_floor_or_ceil_of_each_share():
    rng = np.random.default_rng(0)
    w = np.array([1.0, 1.0, 1.0])
    c = np.bincount(allocate(w, 10, rng), minlength=3)
    assert sorted(c.tolist()) == [3, 3, 4]


def test_loader_draws_long_files_more_often(tmp_path):
    """Through build_datasets and the training loader: a 6 s file among 1 s files."""
    write(tmp_path / "long.wav", noise(6.0, seed=0))
    for i in range(3):
        write(tmp_path / f"short{i}.wav", noise(1.0, seed=i + 1))
    cfg = small_cfg(val_fraction=0.0, batch_size=1, crops_per_file="duration")
    train, _, _ = build_datasets(tmp_path, cfg, SR, log=quiet)
    assert sorted(item_seconds(train).tolist()) == pytest.approx([1.0, 1.0, 1.0, 6.0])
    loader = make_train_loader(train, cfg, seed=0, epoch=0)
    keys = list(loader.sampler)
    per_file = Counter(train.paths[k[2]].rsplit("/", 1)[-1] for k in keys)
    assert len(keys) == 18  # 9 s of audio in 0.5 s crops
    assert per_file["long.wav"] == 12 and all(per_file[f"short{i}.wav"] == 2 for i in range(3))
    crops = [b for b in loader]
    assert len(crops) == 18 and crops[0].shape == (1, 1, SR // 2)
    long_index = train.paths.index(str(tmp_path / "long.wav"))
    long_crops = [c for c, k in zip(crops, keys) if k[2] == long_index]
    assert not torch.equal(long_crops[0], long_crops[1])  # different crops of the same file
    # the default draws one crop per file
    one = make_train_loader(train, small_cfg(val_fraction=0.0, batch_size=1), seed=0)
    assert Counter(k[2] for k in one.sampler) == Counter(range(4))


def test_duration_weighting_needs_durations():
    class NoDurations:
        durations = np.array([1.0, np.nan])

    with pytest.raises(CodecError, match="crops_per_file"):
        item_seconds(NoDurations())


def test_a_mix_hands_out_each_corpus_files_in_proportion_to_duration(tmp_path):
    write(tmp_path / "a" / "long.wav", noise(4.0, seed=0))
    for i in range(2):
        write(tmp_path / "a" / f"short{i}.wav", noise(1.0, seed=i + 1))
    for i in range(3):
        write(tmp_path / "b" / f"f{i}.wav", noise(1.0, seed=i + 5))
    cfg = small_cfg(val_fraction=0.0, batch_size=1, crops_per_file="duration")
    train, _, _ = build_datasets([tmp_path / "a", tmp_path / "b"], cfg, SR, log=quiet)
    long_index = [str(p) for p in train.parts[0].paths].index(str(tmp_path / "a" / "long.wav"))
    for epoch in range(3):
        loader, sampler = mixed_loader(train, cfg, seed=1, epoch=epoch)
        keys = list(sampler)
        assert len(keys) == 18  # 9 s of audio in 0.5 s crops
        in_a = [k for k in keys if train.locate(k[2])[0] == 0]
        n_long = sum(train.locate(k[2])[1] == long_index for k in in_a)
        assert abs(n_long - len(in_a) * 4 / 6) < 1.0  # 4 s of the corpus's 6 s
        assert len(set(keys)) == len(keys)  # repeated files give different crops
    # one crop per file and pass: the long file only as often as a short one
    one, _ = mixed_loader(train, small_cfg(val_fraction=0.0, batch_size=1), seed=1)
    assert len(one.sampler) == 6
