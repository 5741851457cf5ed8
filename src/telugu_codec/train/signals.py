"""Ctrl-C during training: the first SIGINT asks for a clean stop, the second interrupts.

The trainer checks `StopRequest.requested` between steps; when it is set, every rank stops at
the same step and the run is validated and checkpointed, so an interrupted run resumes exactly.
A second Ctrl-C raises `KeyboardInterrupt` at once (the last complete checkpoint still holds).
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any


class StopRequest:
    """A SIGINT handler installed for the duration of a ``with`` block.

    Outside the main thread (where Python cannot install signal handlers) the block does
    nothing and `requested` stays False. Once set, `requested` stays set.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopRequest:
        self._previous = None
        try:
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        except ValueError:  # not the main thread
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
