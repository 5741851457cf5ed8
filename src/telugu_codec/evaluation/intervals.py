"""Mean and 95 % Student-t interval over files: how the evaluation summarises a metric."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Interval:
    """Mean and 95 % t-interval over files; low / high are None with fewer than two values."""

    mean: float | None
    low: float | None
    high: float | None
    n: int

    @property
    def half_width(self) -> float | None:
        if self.low is None or self.high is None or self.mean is None:
            return None
        return self.high - self.mean


# two-sided 95 % Student-t critical values t_{0.975, df} for df = 1..30
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_critical_975(df: int) -> float:
    """t_{0.975, df}: exact table to df 30, then the normal value plus a 1/df correction."""
    if df < 1:
        raise ValueError("df must be >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    return 1.95996 + 2.4 / df  # within 0.002 of the true quantile for df > 30


def mean_interval(values: Sequence[float | None]) -> Interval:
    """Mean and 95 % t-interval of the non-None values (None entries are unavailable).

    Args:
        values: one value per file.

    Returns:
        The interval over the n available values (mean None when n = 0).
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return Interval(None, None, None, 0)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, None, None, 1)
    half = t_critical_975(n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)
