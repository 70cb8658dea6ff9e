"""Fan-out of "new work may be there" to a backend's subscribers, with the thread that
notices it (SQLite's data_version poll, PostgreSQL's LISTEN) started on first subscription."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Subscription:
    """One subscriber's wake-ups. `busy(True)`: it could not take work now (every slot
    taken), so a polling watch may slow down while every subscriber is busy; a busy worker
    claims by itself as its jobs end. `cancel()` ends the wake-ups."""

    def __init__(self, wakeups: Wakeups, callback: Callable[[], None]) -> None:
        self._wakeups = wakeups
        self.callback = callback
        self._busy = False  # as last told (a subscriber may say it on every loop)

    def busy(self, busy: bool) -> None:
        if busy is not self._busy:
            self._busy = busy
            self._wakeups.set_busy(self, busy)

    def cancel(self) -> None:
        self._wakeups.remove(self)


class Wakeups:
    def __init__(self, watch: Callable[[], None], name: str) -> None:
        self._watch = watch
        self._name = name
        self._subscriptions: list[Subscription] = []
        self._busy: set[Subscription] = set()
        self._demand = threading.Event()  # a subscriber stopped being busy
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def subscribe(self, callback: Callable[[], None]) -> Subscription:
        """Call `callback` (from another thread) when new work may have arrived."""
        subscription = Subscription(self, callback)
        with self._lock:
            self._subscriptions.append(subscription)
            if self.thread is None:
                self.thread = threading.Thread(target=self._watch, name=self._name,
                                               daemon=True)
                self.thread.start()
        self._demand.set()  # a new subscriber is not busy: a resting watch polls fast again
        return subscription

    def remove(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
            self._busy.discard(subscription)

    def set_busy(self, subscription: Subscription, busy: bool) -> None:
        with self._lock:
            if subscription not in self._subscriptions:
                return
            if busy:
                self._busy.add(subscription)
            else:
                self._busy.discard(subscription)
        if not busy:
            self._demand.set()

    def wanted(self) -> bool:
        """Whether some subscriber could take work now. (Read without the lock: a stale
        answer costs one slower poll, and `rest` is cut short when it changes.)"""
        return len(self._busy) < len(self._subscriptions)

    def rest(self, timeout: float) -> None:
        """Wait `timeout`, or until some subscriber is not busy (one that was, or a new
        one)."""
        self._demand.clear()
        if not self.wanted():
            self._demand.wait(timeout)

    def notify(self) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.callback()

    def join(self, timeout: float) -> None:
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=timeout)
