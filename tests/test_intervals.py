"""evaluation/intervals.py: the mean and 95 % Student-t interval over files."""

from __future__ import annotations

import math

import pytest

from telugu_codec.evaluation.intervals import mean_interval, t_critical_975


def test_mean_interval():
    iv = mean_interval([1.0, 2.0, 3.0, None])
    assert iv.n == 3 and iv.mean == pytest.approx(2.0)
    assert iv.half_width == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-3)
    one = mean_interval([5.0])
    assert one.mean == 5.0 and one.half_width is None
    assert mean_interval([None, None]).mean is None
    assert t_critical_975(30) == pytest.approx(2.042)
    assert t_critical_975(100) == pytest.approx(1.984, abs=0.003)
