"""The checkpoint policy of a run: what is saved with what, what is kept, and rollback.

`checkpoints.py` is the on-disk format; this module decides how a run uses it:

- every checkpoint carries the trainer's bookkeeping plus the guard's and the balancer's state
  (and fp16's loss scales);
- a checkpoint taken after a healthy validation becomes the rollback target (`last_healthy`);
  the checkpoint at step 0 is the target of last resort;
- the healthy validation with the lowest ``train.best_metric`` is exported to
  ``checkpoints/best``;
- pruning keeps the last ``train.keep_last`` checkpoints plus the rollback target and the best;
- a rollback restores the rollback target without its RNG state (a replay would only repeat
  the collapse), keeps the time and audio counters, multiplies the learning-rate scale by
  ``guard.lr_factor`` and counts against ``guard.max_rollbacks``;
- a rollback is decided before it is done: the checkpoint of the rejected step is saved with
  ``pending: "rollback"`` first, so a run killed at any moment after the decision resumes into
  the same rollback (same counter, same learning rates, same RNG); after it, the new
  checkpoints outrank the rejected ones because they carry one more rollback
  (`checkpoints.latest_checkpoint`);
- a resume takes the newest intact checkpoint: corrupt newer ones are set aside with a warning
  (`restore_latest`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ..config import TrainConfig
from ..errors import CheckpointError, TrainingError
from ..losses import LossBalancer
from .checkpoints import (
    export_best,
    load_checkpoint,
    ordered_checkpoints,
    save_checkpoint,
    set_aside,
)
from .guard import CollapseGuard
from .state import TrainState

PENDING_ROLLBACK = "rollback"  # TrainState.pending: the guard's decision, saved before it is done


class RunCheckpoints:
    """Saves, restores and rolls back a run's checkpoints by the policy above.

    The trainer's bookkeeping (`TrainState`: step, data position, best value, rollback
    target, counters) is passed to each call and updated in place.

    Args:
        run_dir: the run folder (checkpoints go to ``run_dir/checkpoints``).
        codec: the generator (not a DDP wrapper).
        disc: the discriminators, or None.
        optimizers: ``{"g": ..., "d": ...}`` (``d`` only with discriminators).
        guard: the collapse guard, whose state is saved and restored.
        balancer: the loss balancer, or None.
        cfg: ``train`` settings (keep_last, best_metric, guard).
        scalers: fp16's loss scalers by optimizer name (None entries: no scaler).
    """

    def __init__(
        self,
        run_dir: Path,
        codec: torch.nn.Module,
        disc: torch.nn.Module | None,
        optimizers: dict[str, torch.optim.Optimizer],
        guard: CollapseGuard,
        balancer: LossBalancer | None,
        cfg: TrainConfig,
        metrics_file: Path | None = None,
        scalers: dict[str, torch.amp.GradScaler | None] | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.codec, self.disc = codec, disc
        self.optimizers = optimizers
        self.guard, self.balancer = guard, balancer
        self.cfg = cfg
        self.metrics_file = metrics_file  # its size is saved: a resume cuts it back to that
        self.scalers = {k: v for k, v in (scalers or {}).items() if v is not None}

    def save(self, state: TrainState, healthy: bool | None = None) -> Path:
        """Checkpoint the current step; `healthy` (after a validation) marks the rollback target.

        Args:
            state: the trainer's bookkeeping; ``healthy`` and ``last_healthy`` are updated.
            healthy: the validation's verdict, or None for a checkpoint between validations.

        Returns:
            The checkpoint folder.
        """
        step = state.step
        if healthy is not None:
            state.healthy = healthy
            if healthy:
                state.last_healthy = f"step_{step:08d}"
        saved = state.to_dict()
        saved["guard"] = self.guard.state_dict()
        saved["balancer"] = self.balancer.state_dict() if self.balancer is not None else None
        if self.scalers:  # plain floats and ints
            saved["grad_scalers"] = {k: s.state_dict() for k, s in self.scalers.items()}
        if self.metrics_file is not None:
            exists = self.metrics_file.exists()
            saved["metrics_bytes"] = self.metrics_file.stat().st_size if exists else 0
        protect = {saved["last_healthy"]} if saved["last_healthy"] else set()
        if saved.get("best_step") is not None:
            protect.add(f"step_{saved['best_step']:08d}")
        return save_checkpoint(
            self.run_dir,
            step,
            self.codec,
            self.disc,
            self.optimizers,
            saved,
            self.cfg.keep_last,
            protect,
        )

    def save_validated(self, state: TrainState, val: dict[str, float], healthy: bool) -> Path:
        """Checkpoint after a validation, and export it as the best when it is.

        The best is the healthy validation with the lowest ``val/{train.best_metric}``.
        """
        step = state.step
        metric = val.get(f"val/{self.cfg.best_metric}")
        best = state.best_value
        is_best = healthy and metric is not None and (best is None or metric < best)
        if is_best:
            state.best_value, state.best_step = metric, step
        ckpt = self.save(state, healthy=healthy)
        if is_best:
            export_best(ckpt, self.run_dir)
        return ckpt

    def restore(self, path: Path, state: TrainState, restore_rng: bool) -> None:
        """Load models, optimizers, guard, balancer and bookkeeping (into `state`) from `path`."""
        loaded = load_checkpoint(path, self.codec, self.disc, self.optimizers, restore_rng)
        self.guard.load_state_dict(loaded.pop("guard"))
        balancer_state = loaded.pop("balancer")
        if self.balancer is not None and balancer_state is not None:
            self.balancer.load_state_dict(balancer_state)
        for k, scaler_state in (loaded.pop("grad_scalers", None) or {}).items():
            if k in self.scalers:
                self.scalers[k].load_state_dict(scaler_state)
        loaded.pop("optimizers", None)
        loaded.pop("rng", None)
        state.load(loaded)

    def restore_latest(self, state: TrainState, warn: Callable[[str], None]) -> Path:
        """Restore the newest intact checkpoint (with its RNG state) for a resume.

        A newer checkpoint that fails to load is reported through `warn` and, once an older
        one has loaded, renamed to ``corrupt_step_...`` so that it never shadows the run again.

        Returns:
            The checkpoint restored.

        Raises:
            TrainingError: no checkpoint at all, or none that loads.
        """
        ckpts, unreadable = ordered_checkpoints(self.run_dir)
        failed = [(p, f"cannot read {p.name}/state.json") for p in unreadable]
        for path in reversed(ckpts):
            try:
                self.restore(path, state, restore_rng=True)
            except CheckpointError as e:
                failed.append((path, str(e)))
                continue
            for bad, why in failed:
                moved = set_aside(bad)
                warn(
                    f"warning: checkpoint {bad.name} is corrupt ({why}); resuming from "
                    f"{path.name} instead (the corrupt one is kept as {moved.name})"
                )
            return path
        if failed:
            raise TrainingError(
                f"no checkpoint in {self.run_dir / 'checkpoints'} can be loaded; the newest: "
                f"{failed[0][1]}"
            )
        raise TrainingError(f"no checkpoint to resume from in {self.run_dir / 'checkpoints'}")

    def can_rollback(self, state: TrainState) -> bool:
        """Whether a rollback is possible: a target that exists, and rollbacks left."""
        target = state.last_healthy
        if target is None or state.rollbacks >= self.cfg.guard.max_rollbacks:
            return False
        return (self.run_dir / "checkpoints" / target).exists()

    def rollback(self, state: TrainState) -> bool:
        """Return to the last healthy checkpoint with lower learning rates; False if impossible.

        The caller saves the decision first (a checkpoint with ``pending: "rollback"``).
        """
        gc = self.cfg.guard
        if not self.can_rollback(state):
            return False
        path = self.run_dir / "checkpoints" / state.last_healthy
        rollbacks, scale = state.rollbacks + 1, state.lr_scale * gc.lr_factor
        seconds, audio = state.train_seconds, state.audio_seconds
        self.restore(path, state, restore_rng=False)
        state.rollbacks, state.lr_scale, state.pending = rollbacks, scale, None
        state.train_seconds, state.audio_seconds = seconds, audio
        self.guard.reset_trends()
        return True
