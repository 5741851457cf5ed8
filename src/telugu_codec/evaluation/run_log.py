"""A training run's metrics.jsonl, parsed: records by kind, and series of one key."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CodecError


@dataclass
class RunLog:
    """A parsed metrics.jsonl.

    Attributes:
        train / val / events: the records of each kind, in file order.
        bad_lines: lines that were not JSON objects (a line cut by a kill, say).
    """

    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    events: list[dict[str, Any]]
    bad_lines: int


def _is_step(value: Any) -> bool:
    """A record's step must be a finite number (a hand-edited or foreign line may not be)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_metrics_log(path: str | Path) -> RunLog:
    """Parse a trainer's metrics.jsonl; unparseable lines are counted, not fatal.

    Raises:
        CodecError: if the file is missing or has no records.
    """
    path = Path(path)
    if not path.is_file():
        raise CodecError(f"{path} not found; is this a training run folder?")
    train, val, events, bad = [], [], [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if not isinstance(rec, dict) or not _is_step(rec.get("step")):
            bad += 1
            continue
        {"train": train, "val": val, "event": events}.get(rec.get("kind"), train).append(rec)
    if not (train or val or events):
        unread = f" ({bad} lines are not metric records with a numeric step)" if bad else ""
        raise CodecError(f"{path} holds no metric records{unread}")
    return RunLog(train, val, events, bad)


def series(records: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of `key` where present; "nan"/"inf" strings become NaN."""
    steps, values = [], []
    for r in records:
        if key not in r:
            continue
        v = r[key]
        try:
            v = float(v)
        except (TypeError, ValueError):
            continue
        steps.append(float(r["step"]))
        values.append(v if math.isfinite(v) else np.nan)
    return np.asarray(steps), np.asarray(values)


def record_keys(records: list[dict[str, Any]], prefix: str) -> list[str]:
    """The keys starting with `prefix` in `records`, in order of first appearance."""
    keys: list[str] = []
    for r in records:
        for k in r:
            if k.startswith(prefix) and k not in keys:
                keys.append(k)
    return keys


def codebook_keys(records: list[dict[str, Any]], what: str) -> list[str]:
    """``val/{what}/q0``, ``val/{what}/q1``, ... present in `records`, by codebook index."""
    keys = record_keys(records, f"val/{what}/q")
    return sorted(keys, key=lambda k: int(k.rsplit("q", 1)[1]) if k[-1].isdigit() else 0)
