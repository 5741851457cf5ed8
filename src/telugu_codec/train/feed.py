"""The training data as the step loop sees it: `DataFeed`.

It draws the micro-batches from `data.train_batches` at the run's data position (kept in the
`TrainState`, so a resume and a rollback continue with the same batches), counts the crops
seen per corpus and the items passed over, and keeps the list of training files that went bad
during the run (stopping it when more than ``data.max_bad_fraction`` of them have).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..config import Config
from ..data import Batch, train_batches
from .distill import Distiller
from .distributed import DistInfo
from .state import TrainState
from .telemetry import Telemetry

DATA_ERRORS_FILE = "data_errors.jsonl"  # training files that went bad during the run


class DataFeed:
    """Batches for the step loop, and the run's account of its data.

    Args:
        train_ds, val_ds: the datasets (`data.build_datasets`).
        cfg: the run's config (``data``, ``train.seed``, ``train.grad_accum``).
        state: the run's bookkeeping: the data position and counters are kept there.
        dist: the process group (each rank draws its share).
        device: where the micro-batches go.
        telemetry: where data events and lines go.
    """

    def __init__(
        self,
        train_ds: Dataset,
        val_ds: Dataset,
        cfg: Config,
        state: TrainState,
        dist: DistInfo,
        device: torch.device,
        telemetry: Telemetry,
        distill: Distiller | None = None,
    ):
        self.train_ds, self.val_ds = train_ds, val_ds
        self.distill = distill  # keeps each batch's teacher targets for the step's loss
        self.cfg, self.state, self.dist, self.device = cfg, state, dist, device
        self.telemetry = telemetry
        self.bad_files: dict[str, str] = {}  # training files that went bad: path -> error
        self._it: Iterator[torch.Tensor] | None = None

    def batches(self) -> Iterator[torch.Tensor]:
        """Batches (B, 1, T) from the state's data position on (CPU); the position and the
        counters in the state follow each batch drawn."""
        it = train_batches(
            self.train_ds,
            self.cfg.data,
            seed=self.cfg.train.seed,
            start_epoch=self.state.epoch,
            start_batch=self.state.batch_in_epoch,
            stream=self.state.data_stream,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )
        if self.distill is not None:
            self.distill.reset()
        for batch in it:
            self.state.epoch, self.state.batch_in_epoch = batch.epoch, batch.index + 1
            self._count(batch)
            yield batch.audio if self.distill is None else self.distill.take(batch.audio)

    def restart(self) -> None:
        """Draw from the state's data position again (the loop begins; after a rollback)."""
        self._it = self.batches()

    def next_step(self) -> list[torch.Tensor]:
        """The next step's ``train.grad_accum`` micro-batches, on the device."""
        if self._it is None:
            self.restart()
        return [
            next(self._it).to(self.device, non_blocking=True)
            for _ in range(self.cfg.train.grad_accum)
        ]

    def _count(self, batch: Batch) -> None:
        """Crops per corpus and items passed over (all processes), kept in the state."""
        self.state.data_stream = batch.stream
        for total, counts in (
            (self.state.data_seen, batch.seen),
            (self.state.data_skipped, batch.skipped),
        ):
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
        if batch.skipped:
            self.telemetry.log(f"data: passed over {batch.skipped} (unreadable or corrupt)")

    def attach_error_log(self, run_dir: Path) -> None:
        """Datasets that track bad files record them in RUN/data_errors.jsonl (streams and
        mixes count ``skipped`` instead)."""
        for ds in (self.train_ds, self.val_ds):
            if getattr(ds, "failures", None) is not None:
                ds.failures.log_file = Path(run_dir) / DATA_ERRORS_FILE

    def failed(self, announce: bool = True) -> bool:
        """Log each training or validation file that went bad (once); True when more than
        ``data.max_bad_fraction`` of them have. (Streams and mixes of corpora pass over bad
        items themselves and count them in ``data_skipped``.)"""
        failures = next(
            (d.failures for d in (self.train_ds, self.val_ds) if getattr(d, "failures", None)),
            None,
        )
        if failures is None:
            return False
        for rec in failures.new_records():
            path = str(rec.get("path"))
            if path in self.bad_files:
                continue
            self.bad_files[path] = str(rec.get("error"))
            if not announce:
                continue
            self.telemetry.event("data", f"skipping {path}: {rec.get('error')}")
            self.telemetry.log(
                f"data: skipping {path} ({rec.get('error')}); {len(self.bad_files)} file(s) "
                "unreadable so far"
            )
        try:
            total = len(self.train_ds) + len(self.val_ds)
        except TypeError:  # a stream has no length
            total = len(self.val_ds) + len(self.bad_files)
        limit = self.cfg.data.max_bad_fraction * total
        if len(self.bad_files) <= limit:
            return False
        path, error = next(iter(self.bad_files.items()))
        self.telemetry.event(
            "stop",
            f"{len(self.bad_files)} of {total} data files became unreadable during training "
            f"(more than data.max_bad_fraction = {self.cfg.data.max_bad_fraction}; e.g. "
            f"{path}: {error}); fix the data (list in {DATA_ERRORS_FILE}), then --resume",
        )
        return True
