"""Training crops that carry their teacher targets (distillation, issue 25).

`TeacherCrops` is a `TrainDataset` whose items are dicts: the crop exactly as `TrainDataset`
draws it (same (seed, epoch, index) -> crop, the same substitutes for unreadable files), plus
the teacher's targets at the centres of the crop's codec frames:

    {"audio": (1, T) float32, "target": (F,) int64 or (F, C) float32, "valid": (F,) bool}

with F = ceil(T / hop), the number of latent frames the codec makes of the crop.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..audio import db_rms
from .datasets import READ_ERRORS, TrainDataset
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

    def __getitem__(self, key: int | tuple[int, int, int]) -> dict[str, torch.Tensor]:
        if isinstance(key, (tuple, list)):
            seed, epoch, index = (int(k) for k in key)
        else:
            seed, epoch, index = 0, 0, int(key)
        for i in [index, *self._substitutes(index, seed, epoch)]:
            if self.paths[i] in self.failures.paths:
                continue
            try:
                audio, start = self.crop_at(i, epoch, seed)
            except READ_ERRORS as e:
                self.failures.record(self.paths[i], e)
                continue
            return self._item(audio, i, start)
        return self._item(torch.zeros(1, self.segment), None, 0)

    def _item(self, audio: torch.Tensor, index: int | None, start: int) -> dict[str, torch.Tensor]:
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

    def crop_at(self, index: int, epoch: int = 0, seed: int = 0) -> tuple[torch.Tensor, int]:
        """`TrainDataset.crop` (the same draws, the same crop) and the file sample the crop's
        first sample is (negative: the file placed at an offset in a zero-padded crop)."""
        rng = np.random.default_rng([1, seed, epoch, index])  # as TrainDataset.crop
        n, seg = self._length(index), self.segment
        if n <= seg:
            x = self._normalize(self._read(index, 0, n))
            out = np.zeros(seg, dtype=np.float32)
            offset = int(rng.integers(0, seg - n + 1))
            out[offset : offset + n] = x
            return torch.from_numpy(out).unsqueeze(0), -offset
        best, best_db, best_start = None, -math.inf, 0
        for _ in range(1 + max(self.cfg.silence_retries, 0)):
            start = int(rng.integers(0, n - seg + 1))
            x = self._read(index, start, seg)
            level = db_rms(x)
            if best is None or level > best_db:
                best, best_db, best_start = x, level, start
            if level >= self.cfg.silence_db:
                break
        assert best is not None
        return torch.from_numpy(self._normalize(best)).unsqueeze(0), best_start
