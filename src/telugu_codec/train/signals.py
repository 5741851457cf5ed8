"""Ctrl-C and preemption during training: SIGINT or SIGTERM asks for a clean stop.

The trainer checks `StopRequest.requested` between steps; when any rank has it set, every
rank stops at the same step and the run is checkpointed, so a stopped run resumes exactly.
A cloud machine being preempted gets SIGTERM and, a grace period later, SIGKILL: on SIGTERM
the trainer only saves a checkpoint (no validation), to be done within one step plus one
checkpoint write. A second signal raises `KeyboardInterrupt` at once (the last complete
checkpoint still holds).
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """SIGINT and SIGTERM handlers installed for the duration of a ``with`` block.

    Outside the main thread (where Python cannot install signal handlers) the block does
    nothing and `requested` stays False. Once set, `requested` stays set; `signal` says which
    signal set it first (``SIGINT`` or ``SIGTERM``).
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    @property
    def terminated(self) -> bool:
        """True when the stop was asked by SIGTERM (preemption): save and leave, quickly."""
        return self.signal == "SIGTERM"

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.signal = signal.Signals(signum).name

    def __enter__(self) -> StopRequest:
        self._previous = {}
        for sig in SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread
                break
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
