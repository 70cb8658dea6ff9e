"""Runs each duty in a thread of its own, every `interval` seconds, supervised.

A failing run is retried; once its FailureBudget is spent (a bug, not an outage: the database
being unavailable never spends it) the duty dies and the worker is told, so it hands its jobs
back and stops loudly instead of running half-alive.

A singleton duty runs only on the worker holding its leader lease (`Backend.take_leadership`),
taken or renewed before each run for LEADER_TTL_INTERVALS of its interval (at least a worker
lease); the others skip their runs. When the holder dies its lease expires and another worker
takes over at its next run; a worker that stops resigns, so another takes over at once. A
leader is an optimisation: a run longer than the lease may overlap another worker's, so what
must happen once is kept once by the database (constraints), never by the leader alone.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence

from ...backends.base import Backend
from ..loops import FailureBudget
from .base import Duty

log = logging.getLogger("conveyor.worker")

LEADER_TTL_INTERVALS = 3.0


class Leadership:
    """This worker's leader lease on one singleton duty."""

    def __init__(self, backend: Backend, duty: str, owner: str, ttl: float) -> None:
        self.backend = backend
        self.duty = duty
        self.owner = owner
        self.ttl = ttl
        self.held = False

    def take(self) -> bool:
        """Take or renew the lease; whether this worker leads the duty now."""
        held = self.backend.take_leadership(self.duty, self.owner, self.ttl)
        if held and not self.held:
            log.info("worker %s leads duty %r now", self.owner, self.duty)
        elif self.held and not held:
            log.warning("worker %s no longer leads duty %r (its lease expired and another "
                        "worker took it)", self.owner, self.duty)
        self.held = held
        return held

    def resign(self) -> None:
        if self.held:
            self.held = False
            with contextlib.suppress(Exception):  # it expires by itself anyway
                self.backend.resign_leadership(self.duty, self.owner)


class DutyLoop:
    """One duty's thread."""

    def __init__(self, duty: Duty, on_death: Callable[[str, BaseException], None],
                 leadership: Leadership | None = None) -> None:
        self.duty = duty
        self.name = duty.name
        self.leadership = leadership
        self._on_death = on_death
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"conveyor-{duty.name}",
                                        daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        if self.leadership is not None and not self._thread.is_alive():
            self.leadership.resign()

    def run_once(self) -> None:
        if self.leadership is not None and not self.leadership.take():
            return  # another worker leads this duty
        self.duty.run_once()

    def _run(self) -> None:
        budget = FailureBudget()
        interval = self.duty.interval
        wait = interval
        while not self._stop.wait(wait):
            try:
                self.run_once()
                budget.succeeded()
                wait = interval
            except Exception as exc:
                spent = budget.failed(exc)
                budget.log_failure(self.name, exc)
                if spent:
                    self.error = exc
                    self._on_death(self.name, exc)
                    return
                wait = min(interval, budget.pause())


class Supervisor:
    """Starts and stops a worker's duties; `on_death(name, exc)` when one gives up."""

    def __init__(self, duties: Sequence[Duty], backend: Backend, owner: str,
                 on_death: Callable[[str, BaseException], None], *, min_ttl: float) -> None:
        self.loops = [
            DutyLoop(duty, on_death, Leadership(
                backend, duty.name, owner, max(duty.interval * LEADER_TTL_INTERVALS, min_ttl))
                if duty.singleton else None)
            for duty in duties
        ]

    def start(self) -> None:
        for loop in self.loops:
            loop.start()

    def stop(self) -> None:
        for loop in self.loops:
            loop.stop()
