"""data/loaders.py: the epoch order per rank, resumable loaders, worker independence."""

from __future__ import annotations

import pytest
import torch

from telugu_codec.data import EpochSampler, build_datasets, infinite_batches, make_train_loader
from telugu_codec.errors import CodecError

from .data_helpers import SR, make_folder, quiet, small_cfg


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
