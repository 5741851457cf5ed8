"""Distillation into codebook 1 during training (`loss.distill` > 0; issue 25).

The trainer holds one `Distiller` (None when distillation is off) and calls it in three places:

- `wrap(train_set)` once: training crops become `TeacherCrops` items (audio + targets);
- `take(batch)` for every batch it draws: keeps the targets, returns the audio, so the rest of
  the step sees the (B, 1, T) tensor it always did;
- `loss(out)` in every micro-batch's generator backward, in the order the batches were taken:
  the teacher loss of the codec's `first` (codebook 1's straight-through output) through
  `codec.distill_head`, cosine for features (Mimi) or cross-entropy for phones.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import torch

from ..config import Config
from ..data.datasets import TrainDataset
from ..data.teacher_crops import TeacherCrops
from ..data.teachers import Teacher, load_teacher
from ..errors import ConfigError
from ..losses.distill import cosine_distill_loss, phone_distill_loss
from ..model.codec import Codec, CodecOutput


class Distiller:
    """Teacher targets for the training crops and the distillation loss.

    Args:
        config: the run's config (`loss.distill`, `loss.teacher`).
        codec: the codec being trained (its hop, frame rate and `distill_head`).
        log: where one-line messages go.
    """

    def __init__(self, config: Config, codec: Codec, log: Callable[[str], None] = print):
        if codec.distill_head is None:
            raise ConfigError("distillation needs loss.distill > 0 when the codec is built")
        self.cfg = config.loss.teacher
        self.codec = codec
        self.log = log
        self.teacher: Teacher | None = None
        self._pending: deque[tuple[torch.Tensor, torch.Tensor]] = deque()

    def wrap(self, train_set: object) -> TeacherCrops:
        """`train_set` (a folder or manifest corpus) as crops with teacher targets.

        Raises:
            ConfigError: a training set of another kind (mixes, Parquet, tar shards).
            CodecError: the teacher is unusable (see `data.teachers.load_teacher`).
        """
        if type(train_set) is not TrainDataset:
            raise ConfigError(
                "loss.distill works with one folder or manifest corpus (not mixes, Parquet or "
                "tar shards) in this version"
            )
        sr = train_set.sample_rate
        durations = [float(n) / sr for n in train_set.lengths]
        self.teacher = load_teacher(self.cfg, train_set.paths, durations, self.log)
        used = len(train_set.paths) - len(self.teacher.skipped)
        self.log(
            f"distillation: {self.cfg.kind} teacher for {used} of {len(train_set.paths)} "
            f"training files"
            + (f" ({len(self.teacher.phones)} phones)" if self.teacher.kind == "phones" else "")
            + (f", {self.teacher.frame_rate:g} frames/s" if self.teacher.frame_rate else "")
            + f" -> {self.codec.frame_rate:g} frames/s"
        )
        return TeacherCrops.from_dataset(train_set, self.teacher, self.codec.hop_length)

    def take(self, batch: dict | torch.Tensor) -> torch.Tensor:
        """A batch of `TeacherCrops` items -> its (B, 1, T) audio; the targets wait for `loss`."""
        if not isinstance(batch, dict):
            raise TypeError("distillation batches come from TeacherCrops (see wrap)")
        self._pending.append((batch["target"], batch["valid"]))
        return batch["audio"]

    def reset(self) -> None:
        """Forget targets of batches drawn but not trained on (a new batch iterator)."""
        self._pending.clear()

    def loss(self, out: CodecOutput) -> torch.Tensor:
        """The teacher loss of the oldest batch taken and not yet scored; unweighted scalar."""
        if out.first is None:
            raise ConfigError("loss.distill needs a quantizer that returns codebook 1's output")
        target, valid = self._pending.popleft()
        device = out.first.device
        pred = self.codec.distill_head(out.first.float())  # (B, C, F)
        f = min(pred.shape[-1], target.shape[1])
        pred, target, valid = pred[..., :f], target[:, :f].to(device), valid[:, :f].to(device)
        if self.cfg.kind == "phones":
            return phone_distill_loss(pred, target)
        return cosine_distill_loss(pred, target, valid)


def build_distiller(
    config: Config, codec: Codec, log: Callable[[str], None] = print
) -> Distiller | None:
    """A `Distiller` when `config.loss.distill` > 0, else None."""
    return Distiller(config, codec, log) if config.loss.distill > 0 else None
