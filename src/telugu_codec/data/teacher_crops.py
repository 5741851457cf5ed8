"""Training crops that carry their teacher targets (distillation, issue 25).

`TeacherCrops` is a `TrainDataset` whose items are dicts: the crop exactly as `TrainDataset`
draws it (same (seed, epoch, index) -> crop, the same substitutes for unreadable files), plus
the teacher's targets at the centres of the crop's codec frames:

    {"audio": (1, T) float32, "target": (F,) int64 or (F, C) float32, "valid": (F,) bool}

with F = ceil(T / hop), the number of latent frames the codec makes of the crop.
"""

from __future__ import annotations

import numpy as np
import torch

from .datasets import TrainDataset
from .teachers import IGNORE, Teacher, frame_centres


class TeacherCrops(TrainDataset):
    """`TrainDataset` items with teacher targets; made by `from_dataset`."""

    teacher: Teacher
    hop: int

    @classmethod
    def from_dataset(cls, ds: TrainDataset, teacher: Teacher, hop: int) -> TeacherCrops:
        """The same crops as `ds` (its state shared, not copied), with `teacher`'s targets."""
        out = cls.__new__(cls)
        out.__dict__.update(ds.__dict__)
        out.teacher, out.hop = teacher, hop
        return out

    def make_item(  # type: ignore[override]
        self, audio: torch.Tensor, index: int | None, start: int
    ) -> dict[str, torch.Tensor]:
        """The crop as `TrainDataset` draws it, plus the teacher's targets at its frames."""
        n = -(-audio.shape[-1] // self.hop)
        times = frame_centres(start, n, self.hop, self.sample_rate)
        if index is None:
            path = ""
        else:
            path = self.paths[index]
            # frames past the end of a short file's audio (zero padding) have no target
            times = np.where(times * self.sample_rate < self._length(index), times, -1.0)
        target, valid = self.teacher.targets(path, times)
        if self.teacher.kind == "phones":
            target = np.where(valid, target, IGNORE)
        return {
            "audio": audio,
            "target": torch.from_numpy(np.ascontiguousarray(target)),
            "valid": torch.from_numpy(np.ascontiguousarray(valid)),
        }
