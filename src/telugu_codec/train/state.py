"""A training run's bookkeeping: `TrainState`, saved in every checkpoint's state.json.

What the trainer needs to continue a run exactly, besides the weights, the optimizers and the
RNG (which `checkpoints.py` saves itself): the step, the data position, the learning-rate
scale, the rollback target and counters, the best validation so far, the time and audio
spent. Everything is plain JSON; the keys are those of the string-keyed dict the trainer kept
before, so checkpoints written before this dataclass load unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..errors import CheckpointError


@dataclass
class TrainState:
    """The bookkeeping of a run (all JSON-able; every field is saved with a checkpoint).

    Attributes:
        step: optimizer steps taken.
        epoch, batch_in_epoch: the data position (`data.train_batches`).
        lr_scale: the learning-rate multiplier that rollbacks lower.
        rollbacks: rollbacks done (checkpoints are ordered by (rollbacks, step)).
        best_value, best_step: the healthy validation with the lowest ``train.best_metric``.
        last_healthy: the rollback target, a checkpoint folder name (``step_00000100``).
        audio_seconds, train_seconds: audio seen and wall-clock training time.
        nonfinite_total: updates skipped for a non-finite loss or gradient.
        healthy: the last validation's verdict.
        horizon: the step the run ends at (the learning-rate schedule's length).
        pending: ``"rollback"`` while a guard rollback is decided but not done.
        data_stream: tar shards: every loader worker's position (`data.train_batches`).
        data_seen: crops used, per corpus.
        data_skipped: unreadable items passed over, by reason.
        metrics_bytes: metrics.jsonl's size when the checkpoint was saved (a resume cuts it
            back to that); None before the first checkpoint.
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    lr_scale: float = 1.0
    rollbacks: int = 0
    best_value: float | None = None
    best_step: int | None = None
    last_healthy: str | None = None
    audio_seconds: float = 0.0
    train_seconds: float = 0.0
    nonfinite_total: int = 0
    healthy: bool = True
    horizon: int | None = None
    pending: str | None = None
    data_stream: dict | None = None
    data_seen: dict[str, int] = field(default_factory=dict)
    data_skipped: dict[str, int] = field(default_factory=dict)
    metrics_bytes: int | None = None

    def to_dict(self) -> dict:
        """A JSON-able copy (the dicts are copied too)."""
        return asdict(self)

    def load(self, saved: dict) -> None:
        """Take a checkpoint's bookkeeping (its state.json without the guard, balancer,
        optimizer, RNG and scaler parts) in place. Keys it lacks keep their values (older
        checkpoints have no ``pending`` or ``data_seen``).

        Raises:
            CheckpointError: a key this version does not know (a checkpoint of a newer
                telugu-codec, or not a training checkpoint).
        """
        known = {f.name for f in fields(self)}
        unknown = sorted(set(saved) - known)
        if unknown:
            raise CheckpointError(
                f"the checkpoint's state.json has entries this version does not know "
                f"({', '.join(unknown)}): it was written by a newer telugu-codec; upgrade, or "
                "resume from a checkpoint of this version"
            )
        for k, v in saved.items():
            setattr(self, k, dict(v) if isinstance(v, dict) else v)

    @classmethod
    def from_dict(cls, saved: dict) -> TrainState:
        """A state from `to_dict`'s output (or a checkpoint's bookkeeping, see `load`)."""
        state = cls()
        state.load(saved)
        return state

    def data_hours(self, segment_seconds: float) -> dict[str, float]:
        """Hours of audio seen per corpus (each crop is `segment_seconds` long)."""
        return {k: v * segment_seconds / 3600 for k, v in self.data_seen.items()}
