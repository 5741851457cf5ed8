"""data/mix.py and data/build.py: several corpora mixed by weight, and their report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from telugu_codec.config import DataSourceConfig, load_config
from telugu_codec.data import MixedDataset, MixSampler, build_datasets, data_specs, train_batches
from telugu_codec.data.mix import mixed_loader
from telugu_codec.errors import CodecError

from .data_helpers import SR, make_folder, quiet, small_cfg
from .test_data_parquet import train_two_steps


@pytest.fixture
def two_corpora(tmp_path):
    make_folder(tmp_path / "te", 12, seconds=1.0)
    make_folder(tmp_path / "hi", 5, seconds=1.0)
    return tmp_path / "te", tmp_path / "hi"


def test_mix_draws_by_weight_and_counts_every_rank(two_corpora):
    te, hi = two_corpora
    cfg = small_cfg(val_fraction=0.0, batch_size=2)
    train, _, report = build_datasets([f"{te}@0.7", f"{hi}@0.3"], cfg, SR, log=quiet)
    assert isinstance(train, MixedDataset) and train.names == ["te", "hi"]
    assert report.layout == "mix" and [round(p.weight, 2) for p in report.parts] == [0.7, 0.3]
    assert "te 70 %" in report.summary() and "hi 30 %" in report.summary()
    draws = np.concatenate(
        [MixSampler(train, 2, seed=1, epoch=e, world_size=2).sources for e in range(60)]
    )
    assert abs(np.mean(draws == 0) - 0.7) < 0.05  # the small corpus is drawn 30 %, not 5/17
    s = [MixSampler(train, 2, seed=1, epoch=3, rank=r, world_size=2) for r in range(2)]
    assert s[0].batch_counts(1).sum() == 4  # both ranks' crops in batch 1
    keys = [list(x) for x in s]
    assert len(keys[0]) == len(keys[1]) and not set(keys[0]) & set(keys[1])


def test_mix_batches_are_reproducible_resumable_and_worker_independent(two_corpora):
    te, hi = two_corpora
    cfg = small_cfg(val_fraction=0.0, batch_size=3)
    train, _, _ = build_datasets([f"{te}@1", f"{hi}@1"], cfg, SR, log=quiet)
    loader, _ = mixed_loader(train, cfg, seed=2, epoch=1)
    full = [b[0].clone() for b in loader]
    cfg1 = small_cfg(val_fraction=0.0, batch_size=3, num_workers=1)
    loader1, _ = mixed_loader(train, cfg1, seed=2, epoch=1)
    assert all(torch.equal(a, b[0]) for a, b in zip(full, loader1))
    tail, _ = mixed_loader(train, cfg, seed=2, epoch=1, start_batch=2)
    assert all(torch.equal(a, b[0]) for a, b in zip(full[2:], tail))
    # an oversampled corpus repeats files within an epoch, each time with another crop
    s = MixSampler(train, 3, seed=2, epoch=1)
    hi_keys = [(e, i) for e, i, src in zip(s.crop_epochs, s.indices, s.sources) if src == 1]
    assert len(hi_keys) > 5 and len(set(hi_keys)) == len(hi_keys)
    batches = train_batches(train, cfg, seed=2, start_epoch=1, start_batch=2)
    b = next(batches)
    assert (b.epoch, b.index) == (1, 2) and torch.equal(b.audio, full[2])
    assert sum(b.seen.values()) == 3


def test_data_sources_from_the_config_and_command_line(two_corpora, tmp_path):
    te, hi = two_corpora
    cfg = load_config(None, [f"data.sources=[{{path: {te}, weight: 3}}, {{path: {hi}, name: x}}]"])
    specs = data_specs(None, cfg.data)
    assert [(s.name, s.weight) for s in specs] == [("te", 3.0), ("x", 1.0)]
    assert data_specs([f"{te}@0.25"], cfg.data)[0] == DataSourceConfig(str(te), 0.25, "te")
    assert data_specs([str(te), str(te)], cfg.data)[1].name == "te-2"
    with pytest.raises(CodecError, match="positive"):
        data_specs([f"{te}@-1"], cfg.data)
    with pytest.raises(CodecError, match="no training data"):
        data_specs(None, small_cfg())
    # the trainer logs the hours of each corpus
    t = train_two_steps(tmp_path / "run", None, *_sources(te, hi))
    seen = t.state.data_seen
    assert set(seen) == {"te", "hi"} and sum(seen.values()) == 4
    logs = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    hours = [r for r in logs if "data_hours/te" in r]
    assert hours and hours[-1]["data_hours/te"] == pytest.approx(seen["te"] * 0.25 / 3600)


def _sources(te, hi) -> list[str]:
    return [f"data.sources=[{{path: {te}, weight: 0.7}}, {{path: {hi}, weight: 0.3}}]"]
