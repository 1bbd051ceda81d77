"""fleetcore.signals.stop_on_signals: the one graceful-stop helper of simulate, its shards and the uploader."""
from __future__ import annotations

import os
import signal
import threading

import pytest

from fleetcore.signals import STOP_SIGNALS, stop_on_signals


@pytest.mark.parametrize("sig", STOP_SIGNALS)
def test_a_stop_signal_sets_the_event_and_the_old_handler_returns(sig):
    before = signal.getsignal(sig)
    given = threading.Event()
    with stop_on_signals(given) as stop:
        assert stop is given and not stop.is_set()
        os.kill(os.getpid(), sig)
        assert stop.wait(5)
    assert signal.getsignal(sig) is before


def test_off_the_main_thread_it_installs_nothing():
    seen = []

    def worker():
        with stop_on_signals() as stop:
            seen.append((stop.is_set(), signal.getsignal(signal.SIGTERM)))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [(False, before)]
