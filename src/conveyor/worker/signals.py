"""SIGTERM and SIGINT for a worker running in the main thread, acted on off it.

Python runs a signal handler in the main thread between two bytecodes, wherever that thread
is: also inside threading.Event.wait or Event.set, with the event's lock held. A handler that
sets an event there waits forever for a lock its own thread holds, and the worker ignores
every later SIGTERM. This handler only puts the signal on a SimpleQueue, whose put is
documented safe in signal handlers (reentrant); a thread takes it and acts.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("conveyor.worker")

SIGNALS = ("SIGTERM", "SIGINT")
_DONE = 0  # no signal has this number: the relay's thread ends on it
RELAY_JOIN = 2.0  # seconds restore() waits for a signal being acted on


class SignalRelay:
    """Handlers for SIGTERM and SIGINT that call `on_signal(signum)` in a thread of its own,
    installed only from the main thread (the only one Python lets set them)."""

    def __init__(self, on_signal: Callable[[int], None]) -> None:
        self._on_signal = on_signal
        self._received: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._previous: dict[int, Any] = {}
        self._thread: threading.Thread | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._thread = threading.Thread(target=self._relay, name="conveyor-signals",
                                        daemon=True)
        self._thread.start()
        for name in SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except (ValueError, OSError):  # not supported on this platform
                continue

    def restore(self) -> None:
        """Put the previous handlers back; a signal already received is still acted on."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        if self._thread is not None:
            self._received.put(_DONE)
            self._thread.join(timeout=RELAY_JOIN)
            self._thread = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._received.put(signum)

    def _relay(self) -> None:
        while (signum := self._received.get()) != _DONE:
            try:
                self._on_signal(signum)
            except Exception:  # a signal must never end the relay: the next one would be lost
                log.exception("handling signal %s failed", signum)
