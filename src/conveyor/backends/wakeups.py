"""Fan-out of "new work may be there" to a backend's subscribers, with the thread that
notices it (SQLite's data_version poll, PostgreSQL's LISTEN) started on first subscription."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Wakeups:
    def __init__(self, watch: Callable[[], None], name: str) -> None:
        self._watch = watch
        self._name = name
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (from another thread) when new work may have arrived."""
        with self._lock:
            self._callbacks.append(callback)
            if self.thread is None:
                self.thread = threading.Thread(target=self._watch, name=self._name,
                                               daemon=True)
                self.thread.start()

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    def notify(self) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    def join(self, timeout: float) -> None:
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=timeout)
