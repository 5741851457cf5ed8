"""Several map-style corpora mixed by sampling weight (e.g. 70 % Telugu, 30 % other speech).

`MixedDataset` puts the corpora in one index space; `MixSampler` draws an epoch of it: the
epoch has as many crops as there are files in all corpora together, each position's corpus is
drawn with the weights, and each corpus hands out its files in a fresh permutation, starting
another one when a small corpus runs out (its files then appear more than once per epoch,
each pass with other crops). Like `EpochSampler`, everything depends only on (seed, epoch, rank,
world size), so batches are the same for any worker count and a resumed run continues with
exactly the batches it would have seen. Tar shards are mixed inside `shards.ShardStream`.

With ``data.crops_per_file: duration`` an epoch is about one pass over all corpora's audio, and
each corpus hands out its files in proportion to their durations
(`duration_sampler.allocate`) instead of in permutations.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..config import DataConfig
from ..errors import CodecError
from .datasets import TrainDataset
from .duration_sampler import allocate, epoch_positions, item_seconds, occurrences
from .loaders import RankedSampler, sampled_loader
from .sources import SourceTrainDataset

CYCLE_BASE = 1 << 20  # crop epoch of pass c over a corpus in mix epoch e: e * CYCLE_BASE + c


def normalized_weights(weights: list[float], n: int) -> np.ndarray:
    """Weights as probabilities. Raises CodecError unless there are n positive weights."""
    w = np.asarray(weights, dtype=np.float64)
    if len(w) != n or not np.all(np.isfinite(w)) or not np.all(w > 0):
        raise CodecError(f"data source weights must be {n} positive numbers, got {list(weights)}")
    return w / w.sum()


class MixedDataset(Dataset):
    """Map-style corpora in one index space; items ``(crop, skipped, source)``.

    Args:
        parts: one training dataset per corpus (same data settings and rate).
        weights: relative sampling weights, one per corpus.
        names: labels for the report and logs.
    """

    def __init__(self, parts: list[TrainDataset], weights: list[float], names: list[str]):
        self.parts, self.names = parts, names
        self.weights = normalized_weights(weights, len(parts))
        self.sizes = np.array([len(p) for p in parts], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.segment = parts[0].segment
        self.sample_rate = parts[0].sample_rate

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def hours(self) -> float:
        return float(sum(p.hours for p in self.parts))

    def locate(self, index: int) -> tuple[int, int]:
        """(corpus, index within it) of a global index."""
        j = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return j, index - int(self.offsets[j])

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[torch.Tensor, int, int]:
        seed, epoch, index = (int(k) for k in key)
        j, i = self.locate(index)
        part = self.parts[j]
        if isinstance(part, SourceTrainDataset):
            x, skipped = part.checked_crop(i, epoch, seed)
        else:
            x, skipped = part.crop(i, epoch, seed), 0
        return x, skipped, j


class MixSampler(RankedSampler):
    """One mix epoch for one rank: `(seed, crop epoch, global index)` keys (module docstring);
    ranks, whole batches and `start_batch` as in `RankedSampler`."""

    def __init__(
        self,
        dataset: MixedDataset,
        batch_size: int,
        seed: int,
        epoch: int = 0,
        start_batch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        by_duration: bool = False,
    ):
        n = len(dataset)
        self.seconds = [item_seconds(p) for p in dataset.parts] if by_duration else None
        if self.seconds is not None:
            n = epoch_positions(np.concatenate(self.seconds), dataset.segment / dataset.sample_rate)
        super().__init__(n, batch_size, seed, epoch, start_batch, rank, world_size, "mix")
        self.ds = dataset
        self.sources, self.indices, self.crop_epochs = self._draw()

    def _draw(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The epoch's global order: corpus, global index and crop epoch of every position."""
        need = self.positions
        rng = np.random.default_rng([4, self.seed, self.epoch])
        sources = rng.choice(len(self.ds.parts), size=need, p=self.ds.weights)
        indices = np.zeros(need, dtype=np.int64)
        cycles = np.zeros(need, dtype=np.int64)
        for j, n in enumerate(self.ds.sizes):
            where = np.flatnonzero(sources == j)
            if self.seconds is not None:  # files in proportion to duration
                rng_j = np.random.default_rng([7, self.seed, self.epoch, j])
                local = allocate(self.seconds[j], len(where), rng_j) if len(where) else where
                indices[where] = self.ds.offsets[j] + local
                cycles[where] = occurrences(local)
                continue
            k = np.arange(len(where))
            cycle, within = k // n, k % n
            local = np.empty(len(where), dtype=np.int64)
            for c in np.unique(cycle):
                perm = np.random.default_rng([5, self.seed, self.epoch, j, int(c)]).permutation(n)
                sel = cycle == c
                local[sel] = perm[within[sel]]
            indices[where] = self.ds.offsets[j] + local
            cycles[where] = cycle
        return sources, indices, self.epoch * CYCLE_BASE + cycles

    def batch_counts(self, batch: int) -> np.ndarray:
        """Crops per corpus in batch `batch` over all ranks, (n_corpora,) int64."""
        gb = self.batch_size * self.world_size
        part = self.sources[batch * gb : (batch + 1) * gb]
        return np.bincount(part, minlength=len(self.ds.parts))

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        first = self.start_batch * self.batch_size
        epochs = self.crop_epochs[self.rank :: self.world_size][first:]
        indices = self.indices[self.rank :: self.world_size][first:]
        for e, i in zip(epochs.tolist(), indices.tolist()):
            yield (self.seed, e, i)


def mixed_loader(
    dataset: MixedDataset,
    cfg: DataConfig,
    seed: int,
    epoch: int = 0,
    start_batch: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[DataLoader, MixSampler]:
    """One mix epoch of batches ``[audio (B, 1, T), skipped (B,), source (B,)]`` for this rank."""
    by_duration = cfg.crops_per_file == "duration"
    sampler = MixSampler(
        dataset, cfg.batch_size, seed, epoch, start_batch, rank, world_size, by_duration
    )
    return sampled_loader(dataset, sampler, cfg), sampler


class InterleavedDataset(Dataset):
    """Validation items of several corpora taken in turn (a0, b0, a1, b1, ...), so the first
    ``data.val_max_files`` items cover every corpus."""

    def __init__(self, parts: list[Dataset]):
        self.order = []
        longest = max((len(p) for p in parts), default=0)  # type: ignore[arg-type]
        for i in range(longest):
            self.order += [(j, i) for j, p in enumerate(parts) if i < len(p)]  # type: ignore[arg-type]
        self.parts = parts

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int) -> torch.Tensor:
        j, i = self.order[index]
        return self.parts[j][i]

    @property
    def hours(self) -> float:
        return float(sum(getattr(p, "hours", 0.0) for p in self.parts))
