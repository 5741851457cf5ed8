"""data/shards.py: WebDataset tar shards streamed, split over ranks and workers, resumable."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from torch.utils.data import DataLoader

from telugu_codec.config import load_config
from telugu_codec.data import ShardStream, build_datasets, train_batches
from telugu_codec.data.prepare import prepare
from telugu_codec.data.shards import expand_braces, open_shards, read_shard, resume_position
from telugu_codec.train.trainer import Trainer

from .data_helpers import SR, noise, quiet, small_cfg, write
from .test_data_parquet import train_two_steps
from .test_trainer import TRAIN_OVERRIDES

N_FILES = 24


def make_folder(root: Path, n: int = N_FILES) -> list[Path]:
    return sorted(write(root / f"s{i % 3}" / f"u{i:02d}.wav", noise(0.6, seed=i)) for i in range(n))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    """(folder, shards folder): 24 files in 6 shards of 4, written by `prepare`."""
    base = tmp_path_factory.mktemp("shards")
    make_folder(base / "folder")
    prepare(base / "folder", base / "tar", "tar", "4", SR, small_cfg(), log=quiet)
    return base / "folder", base / "tar"


def epoch_keys(stream: ShardStream, workers: int, rank: int = 0, world: int = 1) -> list[str]:
    """Keys of epoch 0 as this rank's loader workers hand them out."""
    stream.configure(rank, world, seed=3, position=resume_position(None, 1, world, workers))
    loader = DataLoader(stream, batch_size=None, num_workers=workers)
    keys, done_slots = [], set()
    slots = range(rank * max(workers, 1), (rank + 1) * max(workers, 1))
    for item in loader:
        if item["epoch"] == 0:
            keys.append(item["key"])
        else:
            done_slots.add(item["slot"])
        if done_slots == set(slots):
            break
    return keys


def test_brace_ranges_lists_and_padding():
    assert expand_braces("a-{000..002}.tar") == ["a-000.tar", "a-001.tar", "a-002.tar"]
    assert expand_braces("{x,y}/s-{8..10}.tar") == [
        "x/s-8.tar",
        "x/s-9.tar",
        "x/s-10.tar",
        "y/s-8.tar",
        "y/s-9.tar",
        "y/s-10.tar",
    ]


def test_every_training_member_once_per_epoch_with_the_folder_split_and_audio(corpus, tmp_path):
    folder, tar = corpus
    cfg = small_cfg(val_fraction=0.25, shuffle_buffer=5, num_workers=2)
    ref_train, ref_val, _ = build_datasets(folder, cfg, SR, cache_dir=tmp_path, log=quiet)
    spec = str(tar / "train-{000000..000005}.tar")
    train, val, report = build_datasets(spec, cfg, SR, log=quiet)
    assert isinstance(train, ShardStream) and report.n_found == N_FILES
    # the same files are held out as from the folder, and validation reads the same audio
    ref_keys = sorted(
        Path(p).relative_to(folder).with_suffix("").as_posix() for p in ref_train.paths
    )
    for workers in (0, 2):
        keys = epoch_keys(train, workers)
        assert sorted(keys) == ref_keys  # every training member exactly once
    assert len(val) == len(ref_val)
    # members hold the folder's audio (16-bit FLAC of 16-bit wav: exactly)
    for shard in open_shards(spec).shards[:2]:
        for m in read_shard(shard):
            x, rate = sf.read(io.BytesIO(m.audio), dtype="float32")
            y, _ = sf.read(str(folder / m.meta["source"]), dtype="float32")
            assert rate == SR and np.array_equal(x, y)
    train_two_steps(tmp_path / "run", spec)


def write_tar(path: Path, members: dict[str, bytes], truncate: int = 0) -> Path:
    """A tar of `members`, its last `truncate` bytes cut off."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    path.write_bytes(data[:-truncate] if truncate else data)
    return path


def wav_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, noise(0.6, seed=seed), SR, format="WAV")
    return buf.getvalue()


def test_corrupt_members_and_shards_are_skipped_and_counted_not_fatal(tmp_path):
    good = {f"a{i}.wav": wav_bytes(i) for i in range(3)}
    write_tar(tmp_path / "s-0.tar", {**good, "bad.flac": b"garbage" * 100, "meta.json": b"{}"})
    # cut inside the last member: the three before it are still read
    write_tar(tmp_path / "s-1.tar", {f"b{i}.wav": wav_bytes(10 + i) for i in range(4)}, 10000)
    cfg = small_cfg(val_fraction=0.0, batch_size=2)
    train, _, _ = build_datasets(str(tmp_path / "s-{0..1}.tar"), cfg, SR, log=quiet)
    assert sorted(epoch_keys(train, 0)) == ["a0", "a1", "a2", "b0", "b1", "b2"]
    skipped: Counter = Counter()
    keys = []
    for batch, _ in zip(train_batches(train, cfg, seed=0), range(6)):
        skipped.update(batch.skipped)
        keys.append(batch.epoch)
    assert skipped["unreadable"] >= 1 and skipped["no_audio"] >= 1
    assert skipped["corrupt_shard"] >= 1
    assert max(keys) >= 1  # epochs went on


def test_resume_continues_after_used_up_shards(corpus):
    _, tar = corpus
    cfg = small_cfg(val_fraction=0.0, batch_size=2, shuffle_buffer=2, num_workers=2)
    train, _, _ = build_datasets(str(tar), cfg, SR, log=quiet)
    first = train_batches(train, cfg, seed=3)
    seen = []
    for _ in range(8):
        b = next(first)
    position = b.stream
    assert position["workers"] == 2 and len(position["slots"][0]) == 2
    used = sum(d for _, d in position["slots"][0])
    assert used >= 1  # some shards were used up
    # what the resumed run reads in epoch 0: the shards after the used-up ones, each once
    train.configure(0, 1, 3, position)
    later = set()
    for item in DataLoader(train, batch_size=None, num_workers=2):
        if item["epoch"] == 0:
            seen.append(item["key"])
        else:
            later.add(item["slot"])
        if later == {0, 1}:
            break
    assert len(seen) == N_FILES - 4 * used and len(set(seen)) == len(seen)
    # another worker count cannot reuse the slots: the recorded epoch starts again
    again = resume_position(position, 1, world=1, workers=1)
    assert again["slots"] == [[[0, 0]]]


def test_stream_mix_follows_the_weights(corpus, tmp_path):
    _, tar = corpus
    other = tmp_path / "other"
    make_folder(other / "src", 8)
    prepare(other / "src", other / "tar", "tar", "2", SR, small_cfg(), log=quiet)
    cfg = small_cfg(val_fraction=0.0, batch_size=10)
    train, _, report = build_datasets([f"{tar}@0.8", f"{other / 'tar'}@0.2"], cfg, SR, log=quiet)
    seen: Counter = Counter()
    for batch, _ in zip(train_batches(train, cfg, seed=0), range(20)):
        seen.update(batch.seen)
    assert report.layout == "mix" and [p.name for p in report.parts] == ["tar", "tar-2"]
    assert 0.7 < seen["tar"] / 200 < 0.9


DDP_SCRIPT = """
import json, os, sys
import torch.distributed as dist
from torch.utils.data import DataLoader
from telugu_codec.data import build_datasets, train_batches
from telugu_codec.data.shards import resume_position
from telugu_codec.config import DataConfig

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
cfg = DataConfig(batch_size=2, segment_seconds=0.25, val_fraction=0.0, num_workers=2,
                 shuffle_buffer=4)
train, _, _ = build_datasets(sys.argv[1], cfg, 16000, log=lambda m: None)
train.configure(rank, world, 5, resume_position(None, 1, world, 2))
keys, later = [], set()
for item in DataLoader(train, batch_size=None, num_workers=2):
    if item["epoch"] == 0:
        keys.append(item["key"])
    else:
        later.add(item["slot"])
    if later == {2 * rank, 2 * rank + 1}:
        break
it = train_batches(train, cfg, seed=5, rank=rank, world_size=world)
for _ in range(3):
    b = next(it)
out = {"keys": keys, "slots": b.stream["slots"], "seen": b.seen}
with open(os.path.join(sys.argv[2], f"rank{rank}.json"), "w") as f:
    json.dump(out, f)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_two_gloo_processes_with_two_workers_see_each_sample_once_per_epoch(corpus, tmp_path):
    _, tar = corpus
    script = tmp_path / "ddp_shards.py"
    script.write_text(DDP_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run(
        [*cmd, str(script), str(tar / "train-{000000..000005}.tar"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    keys = ranks[0]["keys"] + ranks[1]["keys"]
    assert len(keys) == N_FILES and len(set(keys)) == N_FILES  # all, each exactly once
    assert set(ranks[0]["keys"]).isdisjoint(ranks[1]["keys"])
    # the position after a batch covers every slot of both ranks, the same on both
    assert ranks[0]["slots"] == ranks[1]["slots"] and len(ranks[0]["slots"][0]) == 4
    assert ranks[0]["seen"] == {"tar": 4}  # 2 per rank, counted over both


def test_a_resumed_training_run_continues_the_stream_where_its_checkpoint_was(corpus, tmp_path):
    _, tar = corpus
    extra = (
        "train.ckpt_every=1",
        "data.num_workers=0",
        "data.shuffle_buffer=1",
        "data.batch_size=3",
    )
    t = train_two_steps(tmp_path / "run", str(tar), *extra)
    saved = t.state.data_stream
    assert saved["workers"] == 1 and saved["slots"][0][0][1] >= 1  # a shard used up
    state = json.loads((tmp_path / "run/checkpoints/step_00000002/state.json").read_text())
    assert state["data_stream"] == saved
    cfg = load_config(None, TRAIN_OVERRIDES + ["loss.adv=0", "loss.fm=0", *extra])
    resumed = Trainer(
        cfg, tmp_path / "run", str(tar), resume=True, progress=False, tensorboard=False, log=quiet
    )
    assert resumed.state.data_stream == saved
    resumed.train(3)
    after = resumed.state.data_stream["slots"][0][0]
    assert after >= saved["slots"][0][0]  # went on from there, not from the start
