"""The checkpoint policy of a run: what is saved with what, what is kept, and rollback.

`checkpoints.py` is the on-disk format; this module decides how a run uses it:

- every checkpoint carries the trainer's bookkeeping plus the guard's and the balancer's state;
- a checkpoint taken after a healthy validation becomes the rollback target (`last_healthy`);
  the checkpoint at step 0 is the target of last resort;
- the healthy validation with the lowest ``train.best_metric`` is exported to
  ``checkpoints/best``;
- pruning keeps the last ``train.keep_last`` checkpoints plus the rollback target and the best;
- a rollback restores the rollback target without its RNG state (a replay would only repeat
  the collapse), keeps the time and audio counters, multiplies the learning-rate scale by
  ``guard.lr_factor`` and counts against ``guard.max_rollbacks``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import TrainConfig
from ..losses import LossBalancer
from .checkpoints import export_best, load_checkpoint, save_checkpoint
from .guard import CollapseGuard


class RunCheckpoints:
    """Saves, restores and rolls back a run's checkpoints by the policy above.

    The trainer's bookkeeping (`Trainer.state`: step, data position, best value, rollback
    target, counters) is passed to each call and updated in place.

    Args:
        run_dir: the run folder (checkpoints go to ``run_dir/checkpoints``).
        codec: the generator (not a DDP wrapper).
        disc: the discriminators, or None.
        optimizers: ``{"g": ..., "d": ...}`` (``d`` only with discriminators).
        guard: the collapse guard, whose state is saved and restored.
        balancer: the loss balancer, or None.
        cfg: ``train`` settings (keep_last, best_metric, guard).
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
    ):
        self.run_dir = Path(run_dir)
        self.codec, self.disc = codec, disc
        self.optimizers = optimizers
        self.guard, self.balancer = guard, balancer
        self.cfg = cfg

    def save(self, state: dict, healthy: bool | None = None) -> Path:
        """Checkpoint the current step; `healthy` (after a validation) marks the rollback target.

        Args:
            state: the trainer's bookkeeping; ``healthy`` and ``last_healthy`` are updated.
            healthy: the validation's verdict, or None for a checkpoint between validations.

        Returns:
            The checkpoint folder.
        """
        step = state["step"]
        if healthy is not None:
            state["healthy"] = healthy
            if healthy:
                state["last_healthy"] = f"step_{step:08d}"
        saved = dict(state)
        saved["guard"] = self.guard.state_dict()
        saved["balancer"] = self.balancer.state_dict() if self.balancer is not None else None
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

    def save_validated(self, state: dict, val: dict[str, float], healthy: bool) -> Path:
        """Checkpoint after a validation, and export it as the best when it is.

        The best is the healthy validation with the lowest ``val/{train.best_metric}``.
        """
        step = state["step"]
        metric = val.get(f"val/{self.cfg.best_metric}")
        best = state["best_value"]
        is_best = healthy and metric is not None and (best is None or metric < best)
        if is_best:
            state["best_value"], state["best_step"] = metric, step
        ckpt = self.save(state, healthy=healthy)
        if is_best:
            export_best(ckpt, self.run_dir)
        return ckpt

    def restore(self, path: Path, state: dict, restore_rng: bool) -> None:
        """Load models, optimizers, guard, balancer and bookkeeping (into `state`) from `path`."""
        loaded = load_checkpoint(path, self.codec, self.disc, self.optimizers, restore_rng)
        self.guard.load_state_dict(loaded.pop("guard"))
        balancer_state = loaded.pop("balancer")
        if self.balancer is not None and balancer_state is not None:
            self.balancer.load_state_dict(balancer_state)
        loaded.pop("optimizers", None)
        loaded.pop("rng", None)
        state.update(loaded)

    def rollback(self, state: dict) -> bool:
        """Return to the last healthy checkpoint with lower learning rates; False if impossible."""
        gc = self.cfg.guard
        target = state.get("last_healthy")
        if target is None or state["rollbacks"] >= gc.max_rollbacks:
            return False
        path = self.run_dir / "checkpoints" / target
        if not path.exists():
            return False
        rollbacks, scale = state["rollbacks"] + 1, state["lr_scale"] * gc.lr_factor
        seconds, audio = state["train_seconds"], state["audio_seconds"]
        self.restore(path, state, restore_rng=False)
        state.update(
            rollbacks=rollbacks, lr_scale=scale, train_seconds=seconds, audio_seconds=audio
        )
        self.guard.reset_trends()
        return True
