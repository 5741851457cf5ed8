"""train/signals.py: the first Ctrl-C asks for a stop, the second interrupts, the handler goes."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from telugu_codec.train.signals import StopRequest


def test_first_sigint_requests_a_stop_and_the_second_interrupts():
    before = signal.getsignal(signal.SIGINT)
    stop = StopRequest()
    with stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_outside_the_main_thread_it_does_nothing():
    seen = []

    def run():
        with StopRequest() as stop:
            seen.append(stop.requested)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert seen == [False]


def test_sigterm_requests_a_stop_like_sigint_and_says_so():
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.terminated and stop.signal == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and not stop.terminated
