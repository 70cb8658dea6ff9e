"""Side duties of a worker (heartbeat, rescue) as small supervised loops."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("conveyor.worker")

MAX_CONSECUTIVE_FAILURES = 5


class SideLoop:
    """Runs `step` every `interval` seconds in a thread.

    A failing step is retried; after MAX_CONSECUTIVE_FAILURES in a row the loop dies and
    calls `on_death`, so the worker stops loudly instead of running half-alive.
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
        failures = 0
        while not self._stop.wait(self.interval):
            try:
                self._step()
                failures = 0
            except Exception as exc:
                failures += 1
                log.warning("%s failed (%d in a row): %s", self.name, failures, exc)
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    self.error = exc
                    self._on_death(self, exc)
                    return
