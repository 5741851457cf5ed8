"""Crops in proportion to duration (``data.crops_per_file: duration``): `DurationSampler`.

With one crop per file and epoch (`loaders.EpochSampler`), a 30 s file is drawn as often as a
2 s one, so the long files of a corpus are under-sampled: per second of audio they give 15x
fewer crops. `DurationSampler` gives every file a share of each epoch's crops in proportion to
its duration, and sizes the epoch to about one pass over the audio (total duration / segment
length crops, never fewer than the number of files).

The allocation is systematic sampling over the files in a random order: file i gets
floor(e_i) or ceil(e_i) crops, e_i = its expected count, so the counts follow the durations
to within one crop in every epoch (not only on average). The k-th crop of a file in epoch e
is drawn with crop epoch ``e * CYCLE_BASE + k`` (as `mix.MixSampler` does for repeated
passes), so a file's crops within one epoch differ. Like `EpochSampler`, everything depends
only on (seed, epoch), the epoch's positions are dealt to the ranks (disjoint) and a resumed
run skips to its batch (`loaders.RankedSampler`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..errors import CodecError
from .loaders import RankedSampler

CYCLE_BASE = 1 << 20  # crop epoch of the k-th crop of a file in epoch e: e * CYCLE_BASE + k
MIN_WEIGHT_S = 1e-3  # a file of zero recorded duration still has a (tiny) chance


def item_seconds(dataset: object) -> np.ndarray:
    """Duration of every item of a training set in seconds, (N,) float64.

    `TrainDataset`: from the scan (`lengths` at the model rate); `SourceTrainDataset`: the
    items' durations (manifest or dataset metadata).

    Raises:
        CodecError: a duration is unknown (a manifest or dataset without durations, read with
            ``data.scan=never``): duration weighting has nothing to weigh by.
    """
    durations = getattr(dataset, "durations", None)
    if durations is not None:
        seconds = np.asarray(durations, dtype=np.float64)
    else:
        lengths = np.asarray(dataset.lengths, dtype=np.float64)  # type: ignore[attr-defined]
        seconds = lengths / float(dataset.sample_rate)  # type: ignore[attr-defined]
    if not np.all(np.isfinite(seconds)):
        raise CodecError(
            "data.crops_per_file=duration needs every file's duration; this data gives none for "
            "some items (a manifest or dataset without durations): scan it (data.scan=always) "
            "or use data.crops_per_file=one"
        )
    return seconds


def epoch_positions(seconds: np.ndarray, segment_seconds: float) -> int:
    """Crops in one epoch: about one pass over the audio, at least one per file."""
    seconds = np.asarray(seconds, dtype=np.float64)
    return max(len(seconds), int(round(float(seconds.sum()) / segment_seconds)))


def allocate(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` draws of file indices in proportion to `weights`, in a random order, (n,) int64.

    Systematic sampling over a random permutation of the files: each file gets floor or ceil
    of ``n * weights[i] / weights.sum()`` draws.
    """
    p = np.asarray(weights, dtype=np.float64)
    p = p / p.sum()
    order = rng.permutation(len(p))
    edges = np.cumsum(p[order])
    edges[-1] = 1.0  # rounding must not leave the last point beyond the end
    points = (rng.random() + np.arange(n)) / n
    files = order[np.searchsorted(edges, points, side="right")]
    return files[rng.permutation(n)].astype(np.int64)


def occurrences(files: np.ndarray) -> np.ndarray:
    """For each position, how many times its file appeared before it, (n,) int64: the crop
    number of that draw of the file within the epoch."""
    order = np.argsort(files, kind="stable")
    first = np.searchsorted(files[order], files[order], side="left")
    k = np.empty(len(files), dtype=np.int64)
    k[order] = np.arange(len(files)) - first
    return k


class DurationSampler(RankedSampler):
    """One epoch for one rank, files drawn in proportion to their duration, yielding
    `(seed, crop epoch, index)` keys (module docstring).

    Args:
        seconds: (N,) duration of each file (`item_seconds`).
        segment_seconds: training crop length (``data.segment_seconds``).
        batch_size, seed, epoch, start_batch, rank, world_size: as `RankedSampler`.
    """

    def __init__(
        self,
        seconds: np.ndarray,
        segment_seconds: float,
        batch_size: int,
        seed: int,
        epoch: int = 0,
        start_batch: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        seconds = np.asarray(seconds, dtype=np.float64)
        if len(seconds) == 0:
            raise CodecError("the training set is empty")
        self.weights = np.maximum(seconds, MIN_WEIGHT_S)
        self.n_files = len(seconds)
        positions = epoch_positions(seconds, segment_seconds)
        super().__init__(positions, batch_size, seed, epoch, start_batch, rank, world_size)

    def draw(self) -> tuple[np.ndarray, np.ndarray]:
        """The epoch's order over all ranks: (file index, crop epoch) of every position."""
        rng = np.random.default_rng([6, self.seed, self.epoch])  # 6: duration-weighted order
        files = allocate(self.weights, self.positions, rng)
        return files, self.epoch * CYCLE_BASE + occurrences(files)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        files, crop_epochs = self.draw()
        first = self.start_batch * self.batch_size
        mine = slice(self.rank, None, self.world_size)
        for e, i in zip(crop_epochs[mine][first:].tolist(), files[mine][first:].tolist()):
            yield (self.seed, e, i)
