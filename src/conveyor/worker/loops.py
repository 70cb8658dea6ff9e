"""Side duties of a worker (heartbeat, rescue) as small supervised loops."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("conveyor.worker")

MIN_FAILURES = 5
# A database restart or a short network cut must not stop workers: a duty gives up only
# after failing this long without a single success.
OUTAGE_TOLERANCE = 20.0


class FailureBudget:
    """Counts consecutive failures; spent after MIN_FAILURES that span OUTAGE_TOLERANCE."""

    def __init__(self) -> None:
        self.failures = 0
        self._since = 0.0

    def succeeded(self) -> None:
        self.failures = 0

    def failed(self) -> bool:
        """Record a failure; True when it is time to give up."""
        now = time.monotonic()
        if self.failures == 0:
            self._since = now
        self.failures += 1
        return self.failures >= MIN_FAILURES and now - self._since >= OUTAGE_TOLERANCE

    def pause(self) -> float:
        """How long to wait before the next try: 50 ms doubling to 2 s."""
        return float(min(0.05 * 2 ** max(self.failures - 1, 0), 2.0))


class SideLoop:
    """Runs `step` every `interval` seconds in a thread.

    A failing step is retried; once its FailureBudget is spent the loop dies and calls
    `on_death`, so the worker stops loudly instead of running half-alive.
    """

    def __init__(
        self,
        name: str,
        interval: float,
        step: Callable[[], None],
        on_death: Callable[[SideLoop, BaseException], None],
    ) -> None:
        self.name = name
        self.interval = interval
        self._step = step
        self._on_death = on_death
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"conveyor-{name}", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        budget = FailureBudget()
        wait = self.interval
        while not self._stop.wait(wait):
            try:
                self._step()
                budget.succeeded()
                wait = self.interval
            except Exception as exc:
                spent = budget.failed()
                log.warning("%s failed (%d in a row): %s", self.name, budget.failures, exc)
                if spent:
                    self.error = exc
                    self._on_death(self, exc)
                    return
                wait = min(self.interval, budget.pause())
