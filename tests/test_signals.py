"""A worker's SIGTERM is acted on even when it interrupts the main thread holding a lock.

Python runs a signal handler in the main thread wherever that thread is, also inside
threading.Event.wait with the event's lock held. A handler that set an event itself waited
there forever on its own thread's lock: a worker that ignored SIGTERM (seen in a test run: 17
minutes, until SIGKILL). Run in a process of its own: with the fault, it hangs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

SCRIPT = textwrap.dedent("""
    import signal, threading
    from conveyor.worker.signals import SignalRelay

    stopped = threading.Event()
    relay = SignalRelay(lambda signum: stopped.set())
    relay.install()
    # What Event.wait does while it holds the event's lock (a plain, non-reentrant Lock):
    # the signal lands here, and its handler runs in this same thread.
    with stopped._cond:
        signal.raise_signal(signal.SIGTERM)
        print("handler returned", flush=True)
    print("stopped" if stopped.wait(10) else "not stopped", flush=True)
    relay.restore()
    print("SIGTERM handler restored:", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
""")


def test_a_signal_landing_while_the_main_thread_holds_the_event_lock_is_acted_on() -> None:
    try:
        done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                              timeout=30)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the signal handler deadlocked; output so far: {exc.stdout!r}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "handler returned", "stopped", "SIGTERM handler restored: True"]


def test_signals_are_left_alone_outside_the_main_thread() -> None:
    import threading

    from conveyor.worker.signals import SignalRelay

    before = signal.getsignal(signal.SIGTERM)
    relay = SignalRelay(lambda signum: None)
    thread = threading.Thread(target=relay.install)
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGTERM) is before
    relay.restore()
