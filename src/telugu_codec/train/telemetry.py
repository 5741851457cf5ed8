"""What a training run tells people while it runs: the log lines, metrics.jsonl and
TensorBoard, the progress bar, the speed, the time-to-finish estimate and the cost.

The step's numbers stay on the device (`gan_step.StepResult`) until a log step, every
``train.log_every`` steps: then they come to the host in one transfer. Between log steps the
trainer makes no host transfer for telemetry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config
from .distributed import DistInfo
from .gan_step import StepResult
from .logging import MetricsLog, TensorBoard
from .state import TrainState


@dataclass
class Clock:
    """Wall-clock bookkeeping of the loop: the last step's end and the throughput window."""

    last: float
    window_start: float
    window_steps: int = 0


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


class Telemetry:
    """The run's reporting, rank 0 only (the other ranks' calls write nothing).

    Args:
        run_dir: the run folder (metrics.jsonl, tb/).
        cfg: the run's config (``train.log_every``, the batch and segment sizes).
        dist: the process group (only rank 0 writes).
        state: the run's bookkeeping (read: step, time, audio; never written here).
        log_fn: where one-line messages go.
        progress: show a progress bar (rank 0).
        cost_per_hour, currency: the machine's price, for the cost lines (None: no cost).
        time_budget_s: the run's wall-clock budget (the ETA follows it), or None.
        adversarial_from: the step the discriminators join (the estimate is redone then).
    """

    def __init__(
        self,
        run_dir: Path,
        cfg: Config,
        dist: DistInfo,
        state: TrainState,
        log_fn: Callable[[str], None] = print,
        progress: bool = True,
        cost_per_hour: float | None = None,
        currency: str = "INR",
        time_budget_s: float | None = None,
        adversarial_from: int = 0,
    ):
        self.cfg, self.dist, self.state = cfg, dist, state
        self.log_fn = log_fn
        self.progress = progress and dist.is_main
        self.cost_per_hour, self.currency = cost_per_hour, currency
        self.time_budget_s = time_budget_s
        self.adversarial_from = adversarial_from
        self.metrics = MetricsLog(run_dir, enabled=dist.is_main)
        self.run_dir = Path(run_dir)
        self.tb = TensorBoard(self.run_dir / "tb", enabled=False)  # `open_tensorboard`
        self.events: list[dict] = []
        self.bar = None  # the progress bar while training
        self.clock = Clock(time.time(), time.time())
        self._estimated_at: int | None = None  # step of the last time-to-finish estimate

    def open_tensorboard(self, enabled: bool) -> None:
        """TensorBoard events in RUN/tb (rank 0, when tensorboard is installed); called once
        the run folder's lock is held."""
        self.tb = TensorBoard(self.run_dir / "tb", enabled=enabled and self.dist.is_main)

    # ------------------------------------------------------------------ lines and events
    def log(self, msg: str) -> None:
        """One line for people (rank 0), above the progress bar while there is one."""
        if self.dist.is_main:
            if self.bar is not None:
                self.bar.write(msg)
            else:
                self.log_fn(msg)

    def event(self, event: str, message: str) -> None:
        """An event record in metrics.jsonl (and `events`, reported at the end)."""
        rec = self.metrics.write("event", self.state.step, event=event, message=message)
        self.events.append(rec)

    def cost(self, seconds: float) -> float | None:
        return None if self.cost_per_hour is None else self.cost_per_hour * seconds / 3600

    def global_batch(self) -> tuple[int, float]:
        """(items per optimizer step over all ranks, seconds per item)."""
        gb = self.cfg.data.batch_size * self.cfg.train.grad_accum * self.dist.world_size
        return gb, self.cfg.data.segment_seconds

    def data_hours(self) -> dict[str, float]:
        return self.state.data_hours(self.cfg.data.segment_seconds)

    # ------------------------------------------------------------------ the loop's clock
    def start(self, max_steps: int) -> None:
        """The loop begins: the clock starts, the progress bar opens."""
        if self.progress:
            from tqdm import tqdm

            self.bar = tqdm(
                total=max_steps, initial=self.state.step, unit="step", dynamic_ncols=True
            )
        self.clock = Clock(time.time(), time.time())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None

    def tick(self, counted: bool) -> float:
        """A step ended; returns the seconds since the previous one (`counted`: it advanced
        the step, and counts towards the speed)."""
        now = time.time()
        seconds, self.clock.last = now - self.clock.last, now
        if counted:
            self.clock.window_steps += 1
        return seconds

    def rewound(self) -> None:
        """The step went back (a rollback): the bar follows."""
        if self.bar is not None:
            self.bar.n = self.state.step

    # ------------------------------------------------------------------ per step
    def log_step(
        self, result: StepResult, max_steps: int, extra: Callable[[], dict[str, float]]
    ) -> None:
        """After a taken step: every ``train.log_every`` steps the step's numbers (one host
        transfer) and `extra()` (learning rates, codebook statistics) go to metrics.jsonl,
        TensorBoard and the progress bar."""
        step, bar = self.state.step, self.bar
        if step % self.cfg.train.log_every == 0 and self.dist.is_main:
            logs = {**result.scalars(), **extra()}
            gb, seg = self.global_batch()
            elapsed = max(1e-9, time.time() - self.clock.window_start)
            sps = self.clock.window_steps / elapsed
            logs["steps_per_s"] = sps
            logs["audio_seconds_per_s"] = sps * gb * seg
            logs["audio_hours"] = self.state.audio_seconds / 3600
            logs.update({f"data_hours/{k}": v for k, v in self.data_hours().items()})
            logs["wall_seconds"] = self.state.train_seconds
            cost = self.cost(self.state.train_seconds)
            if cost is not None:
                logs["cost"] = cost
                logs["cost_projected"] = cost / max(1, step) * max_steps
            self.metrics.write("train", step, **logs)
            self._estimate(max_steps, sps)
            self.tb.scalars(logs, step)
            self.clock.window_start, self.clock.window_steps = time.time(), 0
            if bar is not None:
                bar.total = self.expected_steps(max_steps, sps)  # the ETA follows the budget
                post = {
                    k.split("/")[-1]: f"{v:.3g}" for k, v in logs.items() if k.startswith("loss/")
                }
                post["it/s"] = f"{sps:.2f}"
                if cost is not None:
                    post["cost"] = f"{cost:.1f} {self.currency}"
                bar.set_postfix(post, refresh=False)
        if bar is not None:
            bar.update(1)

    def expected_steps(self, max_steps: int, steps_per_s: float | None) -> int:
        """The step the run will end at: `max_steps`, or earlier when the time budget ends it
        first (estimated from the measured speed)."""
        if self.time_budget_s is None or not steps_per_s:
            return max_steps
        left = max(0.0, self.time_budget_s - self.state.train_seconds)
        return min(max_steps, self.state.step + int(round(left * steps_per_s)))

    def _estimate(self, max_steps: int, steps_per_s: float) -> None:
        """Once the speed is measured (20 steps in), and again 20 steps into the adversarial
        phase (whose steps cost more), log when the run will end."""
        step, start = self.state.step, self._estimated_at
        d_start = self.adversarial_from
        due = (start is None and step >= 20) or (start is not None and start < d_start + 20 <= step)
        if not due or steps_per_s <= 0:
            return
        self._estimated_at = step
        end = self.expected_steps(max_steps, steps_per_s)
        minutes = (end - step) / steps_per_s / 60
        why = "the time budget" if end < max_steps else f"--max-steps {max_steps}"
        note = ""
        if step < d_start < end:
            note = f"; the discriminators join at step {d_start} and cost more per step"
        self.log(
            f"speed: {1 / steps_per_s:.2f} s/step; training ends at step {end} ({why}) in about "
            f"{minutes:.1f} min{note}"
        )
