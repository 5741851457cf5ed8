"""What the run does about what the guard and the outside world say: `Supervisor`.

The collapse guard (`guard.py`) only judges; this module turns its events, a run of
non-finite steps, Ctrl-C / SIGTERM, the time budget and unreadable data into one decision per
step (continue, stop, roll back), makes every rank take the same one (rank 0's guard decisions
are broadcast, a stop any rank asks for wins), and carries out the rollback by the policy of
`rollback.py`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..config import TrainConfig
from ..errors import TrainingError
from .distributed import DistInfo, all_reduce_max, broadcast_int, replicas_agree
from .gan_step import StepResult
from .guard import CollapseGuard, GuardEvent
from .rollback import PENDING_ROLLBACK, RunCheckpoints
from .signals import StopRequest
from .state import TrainState
from .telemetry import Telemetry

# decisions broadcast from rank 0 each step
CONTINUE, SAVE_AND_STOP, ROLLBACK, GUARD_STOP = 0, 1, 2, 3
# stops any rank can ask for (the largest wins, `should_stop`): SIGTERM, unreadable data
TERMINATE, DATA_STOP = 4, 5


class Supervisor:
    """Decisions of a run, the same on every rank.

    Args:
        cfg: ``train`` settings (guard action, ``max_nonfinite``, rollback limits).
        state: the run's bookkeeping (the step, the rollback target and counters).
        dist: the process group; device: where collectives run.
        guard: the collapse guard.
        checkpoints: the run's checkpoint policy (rollback).
        telemetry: where events and lines go.
        stop: Ctrl-C / SIGTERM as received by this process.
        time_budget_s: stop (with a checkpoint) after this much training time, or None.
        data_failed: True when too many data files went bad (rank 0 asks it each step).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        state: TrainState,
        dist: DistInfo,
        device: torch.device,
        guard: CollapseGuard,
        checkpoints: RunCheckpoints,
        telemetry: Telemetry,
        stop: StopRequest,
        time_budget_s: float | None,
        data_failed: Callable[[], bool],
    ):
        self.cfg, self.state, self.dist, self.device = cfg, state, dist, device
        self.guard, self.checkpoints, self.telemetry = guard, checkpoints, telemetry
        self.stop, self.time_budget_s = stop, time_budget_s
        self.data_failed = data_failed
        self.nonfinite_streak = 0

    def should_stop(self, reason: str) -> tuple[bool, str]:
        """Ctrl-C, SIGTERM, the time budget or too many unreadable files.

        A signal may reach any rank (the largest request wins); the time budget and the data
        are judged by rank 0. Every rank stops at the same step.
        """
        decision = CONTINUE
        if self.stop.requested:
            decision = TERMINATE if self.stop.terminated else SAVE_AND_STOP
            reason = "terminated" if self.stop.terminated else "interrupted"
        if self.time_budget_s is not None and self.state.train_seconds >= self.time_budget_s:
            if self.dist.is_main and decision == CONTINUE:
                decision, reason = SAVE_AND_STOP, "time_budget"
        if self.dist.is_main and self.data_failed():
            decision, reason = DATA_STOP, "data"
        decision = all_reduce_max(decision, self.dist, self.device)
        if decision != CONTINUE:
            names = {TERMINATE: "terminated", DATA_STOP: "data"}
            return True, reason if self.dist.is_main else names.get(decision, "stopped")
        return False, reason

    def observe_step(self, result: StepResult) -> int:
        """The step's outcome (already counted) as a decision: a non-finite update is
        counted (an fp16 overflow is not: the loss scaler skips those by design while it
        lowers its scale), and the guard sees D's loss and the non-finite streak."""
        tc, step = self.cfg, self.state.step
        if result.finite:
            self.nonfinite_streak = 0
        elif not result.overflow:
            self.nonfinite_streak += 1
            self.state.nonfinite_total += 1
            self.telemetry.event(
                "nonfinite",
                f"non-finite loss or gradient; update skipped ({self.nonfinite_streak} in a row)",
            )
        events = self.guard.observe_d_loss_low(step, result.d_loss_low)
        if self.nonfinite_streak >= tc.max_nonfinite:
            events.append(self.guard.nonfinite(step, self.nonfinite_streak))
            if tc.guard.action == "warn":  # NaNs cannot be trained through
                events[-1].message += "; stopping"
        decision = self.act(events) if self.dist.is_main else CONTINUE
        if self.nonfinite_streak >= tc.max_nonfinite and decision == CONTINUE:
            decision = GUARD_STOP
        return decision

    def act(self, events: list[GuardEvent]) -> int:
        """Turn guard events into a decision according to the configured action."""
        if not events:
            return CONTINUE
        for e in events:
            self.telemetry.event("warning", f"{e.kind}: {e.message}")
        action = self.cfg.guard.action
        if action == "stop":
            return GUARD_STOP
        if action == "rollback":
            return ROLLBACK
        return CONTINUE

    def agree(self, decision: int) -> int:
        """Rank 0's decision on every rank."""
        return broadcast_int(decision, self.dist, self.device)

    def rollback(self) -> bool:
        """Roll back to the last healthy checkpoint (every rank); False if that is impossible.

        The decision is saved first (rank 0: a checkpoint with ``pending: rollback``, unless
        the validation's checkpoint carries it), so a kill from here on resumes into the
        rollback.
        """
        state = self.state
        if self.dist.enabled:  # only rank 0 saves, so only it knows the target and the count
            target = state.last_healthy
            step = broadcast_int(int(target[5:]) if target else -1, self.dist, self.device)
            state.last_healthy = f"step_{step:08d}" if step >= 0 else None
            state.rollbacks = broadcast_int(state.rollbacks, self.dist, self.device)
        if not self.checkpoints.can_rollback(state):
            return False
        if self.dist.is_main and state.pending != PENDING_ROLLBACK:
            state.pending = PENDING_ROLLBACK
            self.checkpoints.save(state)
        if not self.checkpoints.rollback(state):
            return False
        self.nonfinite_streak = 0
        self.telemetry.event(
            "rollback",
            f"rolled back to {state.last_healthy} with learning rates x{state.lr_scale:.3g}",
        )
        self.telemetry.log(f"guard: rolled back to {state.last_healthy}")
        self.telemetry.rewound()
        return True

    def guard_stop(self) -> str:
        """The stop reason when the guard (or a non-finite streak) ends the run."""
        reason = "nonfinite" if self.nonfinite_streak >= self.cfg.max_nonfinite else "guard"
        if self.dist.is_main:
            self.telemetry.event("stop", f"stopped by the collapse guard ({reason})")
        return reason

    def check_replicas(self, codec: torch.nn.Module) -> None:
        """Under DDP: every process must hold rank 0's weights and codebooks (all ranks call)."""
        if not replicas_agree(codec, self.dist, self.device):
            raise TrainingError(
                f"step {self.state.step}: the processes' models differ (a buffer update that "
                "is not reduced across processes); stopping before the runs drift apart"
            )
        self.telemetry.event("replicas", f"{self.dist.world_size} processes hold identical models")
