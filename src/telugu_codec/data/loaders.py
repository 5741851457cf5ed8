"""The training order and the loaders: `EpochSampler`, `make_train_loader`, `infinite_batches`.

`EpochSampler` yields `(seed, epoch, index)` keys in an order that depends only on (seed, epoch,
rank, world_size) and can start mid-epoch, so a resumed run (and any worker count) sees exactly
the batches it would have seen without the interruption.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..config import DataConfig
from ..errors import CodecError
from .datasets import TrainDataset, ValDataset


class RankedSampler(Sampler):
    """What the training orders share: one epoch on one rank, whole batches only, resumable.

    Rank r of `world_size` takes every world_size-th position from r; an epoch holds
    `num_batches` batches per rank (at least one: a data set smaller than one global batch is
    repeated to fill it); `start_batch` skips this rank's first batches, so a resumed run
    continues with exactly the batches it would have seen. Subclasses draw the order.
    """

    def __init__(
        self,
        n_items: int,
        batch_size: int,
        seed: int,
        epoch: int = 0,
        start_batch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        what: str = "data",
    ):
        if n_items <= 0:
            raise CodecError("the training set is empty")
        if batch_size <= 0:
            raise CodecError(f"data.batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.n_items, self.batch_size = n_items, batch_size
        self.seed, self.epoch, self.rank, self.world_size = seed, epoch, rank, world_size
        self.num_batches = max(1, n_items // (batch_size * world_size))  # per rank, per epoch
        if not 0 <= start_batch <= self.num_batches:
            raise CodecError(
                f"cannot start at batch {start_batch} of epoch {epoch}: an epoch of this {what} "
                f"has {self.num_batches} batches (did the training data change since the "
                "checkpoint?)"
            )
        self.start_batch = start_batch

    @property
    def positions(self) -> int:
        """Positions of the epoch over all ranks."""
        return self.num_batches * self.batch_size * self.world_size

    def __len__(self) -> int:
        return (self.num_batches - self.start_batch) * self.batch_size


class EpochSampler(RankedSampler):
    """Training order for one epoch on one rank, yielding `(seed, epoch, index)` keys.

    The epoch's order is a permutation that depends only on (seed, epoch), dealt to the ranks
    as torch's DistributedSampler does (`RankedSampler`).
    """

    def indices(self) -> np.ndarray:
        """All of this rank's indices for the epoch, (num_batches * batch_size,) int64."""
        order = np.random.default_rng([2, self.seed, self.epoch]).permutation(self.n_items)
        need = self.positions
        if need > len(order):
            order = np.tile(order, -(-need // len(order)))
        return order[:need][self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        for index in self.indices()[self.start_batch * self.batch_size :]:
            yield (self.seed, self.epoch, int(index))


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers decode and resample; many torch threads only contend


def resolve_num_workers(requested: int, world_size: int = 1) -> int:
    """`data.num_workers`, with -1 (auto) resolved: 0 on a CPU (training needs every core),
    else up to 8 loader processes per GPU process, leaving a core per process free."""
    if requested >= 0:
        return requested
    if not torch.cuda.is_available():
        return 0
    cores = os.cpu_count() or 1
    return max(0, min(8, cores // max(1, world_size) - 1))


def make_train_loader(
    dataset: TrainDataset,
    cfg: DataConfig,
    seed: int,
    epoch: int = 0,
    start_batch: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """One epoch of training batches for this rank, starting at batch `start_batch`.

    The order is `EpochSampler`'s (one crop per file), or with ``data.crops_per_file:
    duration`` `duration_sampler.DurationSampler`'s (crops in proportion to duration).
    Batches are (cfg.batch_size, 1, T) float32, identical for any `cfg.num_workers`.
    """
    sampler: RankedSampler
    if cfg.crops_per_file == "duration":
        from .duration_sampler import DurationSampler, item_seconds  # it builds on this module

        seconds = item_seconds(dataset)
        sampler = DurationSampler(
            seconds, cfg.segment_seconds, cfg.batch_size, seed, epoch, start_batch, rank, world_size
        )
    else:
        sampler = EpochSampler(
            len(dataset), cfg.batch_size, seed, epoch, start_batch, rank, world_size
        )
    return sampled_loader(dataset, sampler, cfg)


def sampled_loader(dataset: Dataset, sampler: RankedSampler, cfg: DataConfig) -> DataLoader:
    """The training DataLoader over `sampler`'s order: whole batches, `data.num_workers`
    (resolved) loader processes, pinned memory on a GPU machine."""
    workers = resolve_num_workers(cfg.num_workers, sampler.world_size)
    return DataLoader(
        dataset,
        batch_size=sampler.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        worker_init_fn=_worker_init if workers > 0 else None,
        # its own generator: starting an epoch must not draw from the global torch RNG, or a
        # resumed run (which starts one more iterator) would diverge from an uninterrupted one
        generator=torch.Generator().manual_seed(sampler.seed * 100003 + sampler.epoch),
    )


def infinite_batches(
    dataset: TrainDataset,
    cfg: DataConfig,
    seed: int,
    start_epoch: int = 0,
    start_batch: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Endless training batches: yields (epoch, batch index within the epoch, batch).

    To resume after a checkpoint taken after batch (e, i), pass start_epoch=e, start_batch=i+1
    (a start_batch equal to the epoch length moves on to the next epoch).

    Yields:
        (epoch, batch_index, batch) with batch (cfg.batch_size, 1, T) float32.
    """
    epoch, first = start_epoch, start_batch
    while True:
        loader = make_train_loader(dataset, cfg, seed, epoch, first, rank, world_size)
        for i, batch in enumerate(loader, start=first):
            yield epoch, i, batch
        epoch, first = epoch + 1, 0


def make_val_loader(dataset: ValDataset) -> DataLoader:
    """Validation items one at a time (they differ in length): batches (1, 1, T)."""
    return DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0)
