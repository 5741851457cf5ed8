"""`train_batches`: the trainer's one way to draw batches from any kind of training data.

Three kinds of training set come out of `build_datasets`, and this is the seam between them:

- map-style, one corpus (`TrainDataset`, or `SourceTrainDataset` for audio not probed at
  start-up): `EpochSampler` order, resumable at any batch (`loaders.infinite_batches`);
- map-style, several corpora (`mix.MixedDataset`): `mix.MixSampler` order, resumable at any
  batch;
- streamed tar shards, one or more corpora (`shards.ShardStream`): an endless stream per loader
  worker, resumable at used-up shards (see `shards`).

Every batch comes as a `Batch` that also says where the data stands (what a checkpoint must
keep to continue) and how many crops of each corpus were used and items passed over, counted
over all processes.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader

from ..config import DataConfig
from .loaders import _worker_init, infinite_batches, resolve_num_workers
from .mix import MixedDataset, mixed_loader
from .shards import ShardStream, resume_position
from .sources import SourceTrainDataset


@dataclass
class Batch:
    """One training batch and where the data stands after it.

    Attributes:
        audio: (B, 1, T) float32 crops.
        epoch: the epoch of the batch (streams: the oldest epoch any loader worker is in).
        index: the batch's index within its epoch (streams: batches since this start).
        stream: a stream's position after this batch, all processes (None for map-style).
        seen: crops of each corpus (by name) in this step, all processes together.
        skipped: items passed over to make this step's batches (reason -> count), all
            processes together.
    """

    audio: torch.Tensor
    epoch: int
    index: int
    stream: dict | None = None
    seen: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)


def source_names(train_set: object) -> list[str]:
    """The corpus names of a training set, in source order."""
    names = getattr(train_set, "names", None)
    return list(names) if names else [str(getattr(train_set, "name", "data"))]


def _all_ranks(obj: object, world_size: int) -> list:
    """`obj` of every process (a collective: every rank must call it), or [obj] alone."""
    import torch.distributed as dist

    if world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list = [None] * world_size
    dist.all_gather_object(out, obj)
    return out


def _sum(counters: list[dict]) -> dict[str, int]:
    total: Counter = Counter()
    for c in counters:
        total.update(c)
    return {k: int(v) for k, v in total.items() if v}


def train_batches(
    train_set: object,
    cfg: DataConfig,
    seed: int,
    start_epoch: int = 0,
    start_batch: int = 0,
    stream: dict | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[Batch]:
    """Endless training batches from any training set `build_datasets` returns.

    Args:
        train_set: `TrainDataset`, `SourceTrainDataset`, `MixedDataset` or `ShardStream`.
        cfg: data settings (batch size, workers).
        seed: the run's seed.
        start_epoch, start_batch: map-style position to continue from (after batch
            (e, i) of a checkpoint: e, i + 1).
        stream: a stream's `Batch.stream` from a checkpoint (None: start afresh).
        rank, world_size: this process under DDP. With several processes every rank must
            draw the same number of batches: the counts (and a stream's position) are
            gathered from all of them at each batch.

    Yields:
        `Batch` with audio (cfg.batch_size, 1, T).
    """
    if isinstance(train_set, ShardStream):
        yield from _stream_batches(train_set, cfg, seed, stream, rank, world_size)
    elif isinstance(train_set, MixedDataset):
        yield from _mixed_batches(train_set, cfg, seed, start_epoch, start_batch, rank, world_size)
    else:
        name = source_names(train_set)[0]
        gather = isinstance(train_set, SourceTrainDataset) and world_size > 1
        seen = {name: cfg.batch_size * world_size}
        it = infinite_batches(
            train_set,
            cfg,
            seed,
            start_epoch,
            start_batch,
            rank,
            world_size,  # type: ignore[arg-type]
        )
        for epoch, index, batch in it:
            skipped = {}
            if isinstance(batch, (list, tuple)):  # SourceTrainDataset: (crops, passed over)
                batch, passed = batch
                skipped = {"unreadable": int(passed.sum())}
            if gather:
                skipped = _sum(_all_ranks(skipped, world_size))
            yield Batch(batch, epoch, index, None, seen, {k: v for k, v in skipped.items() if v})


def _mixed_batches(
    ds: MixedDataset,
    cfg: DataConfig,
    seed: int,
    epoch: int,
    first: int,
    rank: int,
    world_size: int,
) -> Iterator[Batch]:
    while True:
        loader, sampler = mixed_loader(ds, cfg, seed, epoch, first, rank, world_size)
        for i, (audio, passed, _source) in enumerate(loader, start=first):
            counts = sampler.batch_counts(i)
            seen = {ds.names[j]: int(c) for j, c in enumerate(counts) if c}
            skipped = _sum(_all_ranks({"unreadable": int(passed.sum())}, world_size))
            yield Batch(audio, epoch, i, None, seen, skipped)
        epoch, first = epoch + 1, 0


def _stream_batches(
    ds: ShardStream,
    cfg: DataConfig,
    seed: int,
    saved: dict | None,
    rank: int,
    world_size: int,
) -> Iterator[Batch]:
    n_workers = resolve_num_workers(cfg.num_workers, world_size)
    position = copy.deepcopy(resume_position(saved, len(ds.sets), world_size, n_workers))
    ds.configure(rank, world_size, seed, position)
    loader = DataLoader(
        ds,
        batch_size=None,  # single samples: batches are made here, across worker boundaries
        num_workers=n_workers,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=_worker_init if n_workers > 0 else None,
    )
    workers = position["workers"]
    mine = slice(rank * workers, (rank + 1) * workers)
    buf: list[torch.Tensor] = []
    seen: Counter = Counter()
    skipped: Counter = Counter()
    index = 0
    for item in loader:
        buf.append(item["audio"])
        position["slots"][item["source"]][item["slot"]] = [int(item["epoch"]), int(item["done"])]
        seen[ds.names[item["source"]]] += 1
        skipped.update(item["skipped"])
        if len(buf) < cfg.batch_size:
            continue
        parts = _all_ranks(([s[mine] for s in position["slots"]], seen, skipped), world_size)
        if len(parts) > 1:
            for r, (slots, _, _) in enumerate(parts):
                for j, s in enumerate(slots):
                    position["slots"][j][r * workers : (r + 1) * workers] = s
        epoch = min(e for e, _ in position["slots"][0])
        yield Batch(
            torch.stack(buf),
            epoch,
            index,
            copy.deepcopy(position),
            _sum([p[1] for p in parts]),
            _sum([p[2] for p in parts]),
        )
        buf, index = [], index + 1
        seen.clear()
        skipped.clear()
