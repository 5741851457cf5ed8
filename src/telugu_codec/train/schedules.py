"""Learning-rate schedules as pure functions of the step."""

from __future__ import annotations

import math

from ..config import OptimConfig
from ..errors import ConfigError


def lr_factor(step: int, cfg: OptimConfig, max_steps: int, progress: float | None = None) -> float:
    """Multiplier on the base learning rate at `step` (0-based).

    - constant: 1 (after warm-up);
    - exponential: gamma ** step (DAC uses gamma = 0.999996 per step);
    - cosine: linear warm-up, then half a cosine from 1 to 0 at the end of the run: at
      `max_steps`, or earlier when `progress` (the share of another budget already used, e.g.
      of a time budget) is further along than the steps.
    Warm-up (linear from 1/warmup to 1) applies to every schedule.
    """
    warm = 1.0
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        warm = (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return warm
    if cfg.schedule == "exponential":
        return warm * cfg.gamma**step
    if cfg.schedule == "cosine":
        if step < cfg.warmup_steps:
            return warm
        span = max(1, max_steps - cfg.warmup_steps)
        done = (step - cfg.warmup_steps) / span
        if progress is not None:
            done = max(done, progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, done))))
    raise ConfigError(
        f"unknown learning-rate schedule '{cfg.schedule}' (constant, exponential, cosine)"
    )
