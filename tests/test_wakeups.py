"""A worker whose slots are all taken tells its backend's watch so: SQLite's data_version poll
then slows down while every subscriber is busy (a busy worker claims by itself as its jobs
end). Wake-ups still reach a busy subscriber, and the watch hears at once when one has room
again."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest
from helpers import InstantPool, wait_until

from conveyor.backends import Backend
from conveyor.backends.base import ClaimedJob, NewJob
from conveyor.backends.wakeups import Subscription, Wakeups
from conveyor.worker.dispatcher import Dispatcher


def _never_watch() -> None:
    """The watch thread's body: these tests drive Wakeups by hand."""


def test_the_watch_may_rest_only_while_every_subscriber_is_busy() -> None:
    wakeups = Wakeups(_never_watch, "test-watch")
    first, second = wakeups.subscribe(lambda: None), wakeups.subscribe(lambda: None)
    assert wakeups.wanted()
    first.busy(True)
    assert wakeups.wanted()  # the second could still take work
    second.busy(True)
    assert not wakeups.wanted()
    second.cancel()  # a busy subscriber that leaves takes its busy mark with it
    assert not wakeups.wanted()
    first.busy(False)
    assert wakeups.wanted()
    second.busy(True)  # cancelled: no effect
    assert wakeups.wanted()


def test_busy_subscribers_still_hear_of_new_work() -> None:
    wakeups = Wakeups(_never_watch, "test-watch")
    heard = threading.Event()
    wakeups.subscribe(heard.set).busy(True)
    wakeups.notify()
    assert heard.is_set()


def test_a_resting_watch_wakes_as_soon_as_a_subscriber_has_room() -> None:
    wakeups = Wakeups(_never_watch, "test-watch")
    subscription = wakeups.subscribe(lambda: None)
    subscription.busy(True)
    rested = threading.Event()

    def rest() -> None:
        wakeups.rest(120)
        rested.set()

    resting = threading.Thread(target=rest)
    started = time.monotonic()
    resting.start()
    assert not rested.wait(0.2)  # resting while the subscriber is busy
    subscription.busy(False)
    assert rested.wait(30)
    assert time.monotonic() - started < 60  # cut short, not its 120 s
    resting.join(10)
    # Nobody busy: rest does not wait at all.
    before = time.monotonic()
    wakeups.rest(120)
    assert time.monotonic() - before < 60


def test_a_new_subscriber_ends_a_rest() -> None:
    wakeups = Wakeups(_never_watch, "test-watch")
    wakeups.subscribe(lambda: None).busy(True)
    rested = threading.Event()

    def rest() -> None:
        wakeups.rest(120)
        rested.set()

    resting = threading.Thread(target=rest)
    resting.start()
    assert not rested.wait(0.2)
    wakeups.subscribe(lambda: None)  # not busy: the watch must poll fast for it at once
    assert rested.wait(30)
    resting.join(10)


class HoldingPool(InstantPool):
    """A pool that holds its jobs until `release()`, then ends them all with a success."""

    kind = "holding"

    def __init__(self) -> None:
        super().__init__()
        self.held: list[ClaimedJob] = []
        self._lock = threading.Lock()

    def submit(self, job: ClaimedJob) -> None:
        with self._lock:
            self.held.append(job)

    def release(self) -> None:
        with self._lock:
            jobs, self.held = self.held, []
        for job in jobs:
            super().submit(job)


@contextlib.contextmanager
def running_dispatcher(backend: Backend, watched: Wakeups, jobs: int,
                       monkeypatch: pytest.MonkeyPatch, *, burst: bool = False,
                       delayed: float | None = None) -> Iterator[HoldingPool]:
    """A dispatcher of 2 slots claiming from `jobs` queued jobs (and one more due `delayed`
    seconds from now) into a HoldingPool, its wake-ups from `watched` (which stands in for
    the backend's own), stopped on exit."""
    monkeypatch.setattr(backend, "subscribe", watched.subscribe)
    backend.enqueue_many([NewJob(task="t", queue="default", args_json="[]",
                                 kwargs_json="{}") for _ in range(jobs)])
    if delayed is not None:
        backend.enqueue_many([NewJob(task="t", queue="default", args_json="[]",
                                     kwargs_json="{}", delay=delayed)])
    stopping = threading.Event()
    deaths: list[BaseException] = []
    dispatcher = Dispatcher(backend, "w", ["default"], 2, 30.0, stopping=stopping,
                            on_death=lambda name, exc: deaths.append(exc), burst=burst)
    pool = HoldingPool()
    pool.dispatcher = dispatcher
    dispatcher.use(pool)
    dispatcher.listen()
    loop = threading.Thread(target=dispatcher.run)
    loop.start()
    try:
        yield pool
    finally:
        stopping.set()
        dispatcher.wake()
        loop.join(30)
        dispatcher.unlisten()
    assert not loop.is_alive()
    assert not deaths


def test_a_dispatcher_is_busy_while_its_slots_are_all_taken(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    watched = Wakeups(_never_watch, "test-watch")
    with running_dispatcher(backend, watched, 2, monkeypatch) as pool:
        wait_until(lambda: len(pool.held) == 2, message="both jobs to be claimed")
        wait_until(lambda: not watched.wanted(), message="the dispatcher to say it is busy")
        pool.release()
        wait_until(watched.wanted, message="the dispatcher to say it has room again")
    assert not watched.wanted()  # unlisten: no subscriber left


def test_a_dispatcher_that_keeps_claiming_full_rounds_stays_busy(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between its rounds a busy dispatcher is awake and claims without being told: saying
    it has room there would make the watch poll, and wake it, once a round for nothing. It
    says so only when it goes to wait for new work (the queue emptied)."""
    watched = Wakeups(_never_watch, "test-watch")
    marks: list[bool] = []
    set_busy = watched.set_busy

    def recording(subscription: Subscription, busy: bool) -> None:
        marks.append(busy)
        set_busy(subscription, busy)

    monkeypatch.setattr(watched, "set_busy", recording)
    with running_dispatcher(backend, watched, 6, monkeypatch) as pool:
        for round_number in range(3):  # three full rounds of 2
            wait_until(lambda: len(pool.held) == 2 and not watched.wanted(),
                       message=f"round {round_number + 1} to be claimed, the worker busy")
            pool.release()
        wait_until(watched.wanted, message="the dispatcher to wait for new work")
    assert marks == [True, False]  # busy through the three rounds; room once none is left


def test_a_burst_dispatcher_waiting_for_a_job_due_soon_has_room(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst worker whose jobs are done waits for one due soon: it waits for work, so the
    watch must not rest slowly meanwhile (a job enqueued then would start up to a slow poll
    late)."""
    watched = Wakeups(_never_watch, "test-watch")
    with running_dispatcher(backend, watched, 2, monkeypatch, burst=True,
                            delayed=30.0) as pool:
        wait_until(lambda: len(pool.held) == 2 and not watched.wanted(),
                   message="both jobs to be claimed, the worker busy")
        pool.release()
        wait_until(watched.wanted, message="the dispatcher to wait for the job due soon")
