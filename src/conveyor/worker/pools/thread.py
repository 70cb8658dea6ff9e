"""The thread pool (the default): one daemon thread per slot.

Claimed jobs wait in one inbox; a thread that finishes a job takes the next one from it, with
no round trip through the claim loop. A job still in the inbox has not started: the worker may
take it back (`take_unstarted`) and hand it back without counting an attempt.

Per job, the pool keeps only what a job needs when it happens: a cancel request is a set
membership (`_cancel_requested`), not an Event per job; each thread reuses its own `_Slot`.

Time limits: the soft one raises SoftTimeLimitExceeded in the job's thread (time_limits). At
the hard one the attempt has failed, timed out, whatever the thread does next: the pool
raises TimeLimitExceeded in the thread (an `async def` job: cancels its coroutine) to stop it,
and reports the outcome when the thread has stopped. Until then the job keeps its slot and its
lease: a thread cannot be killed, and freeing either would let the retry run alongside the
attempt still running (never twice at the same time), and let stuck threads pile up.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable

from ...backends.base import ClaimedJob
from ...errors import TimeLimitExceeded
from ...job import JobError
from ...outcomes import Outcome, Succeeded
from ...policy import Cause
from ..executor import ended, execute
from ..time_limits import arm_thread, raise_in_thread
from .base import (
    InProcessPool,
    crash_outcome,
    stopped_outcome,
)


class _Slot:
    """One thread's job in progress; reused from job to job (`serial` tells them apart)."""

    __slots__ = ("done", "ident", "job", "lock", "serial", "started", "timed_out")

    def __init__(self, ident: int) -> None:
        self.ident = ident  # the thread
        self.lock = threading.Lock()
        self.job: ClaimedJob | None = None
        self.serial = 0  # which of the thread's jobs: a late timer must not touch the next
        self.done = False  # under lock: no exception may be raised in the thread any more
        self.timed_out: float | None = None  # under lock: the hard limit it ran past
        self.started = 0.0  # time.time() when it started

    def begin(self, job: ClaimedJob) -> None:
        with self.lock:
            self.job = job
            self.serial += 1
            self.done = False
            self.timed_out = None


class ThreadPool(InProcessPool):
    """Daemon threads, so a job stuck past the shutdown grace cannot keep the process alive."""

    kind = "thread"
    kills_jobs = False  # threads cannot be killed: stopping one is asking it
    prefetches = True  # a claimed job may wait in the inbox for a thread

    def _prepare(self) -> None:
        self._inbox: queue.SimpleQueue[ClaimedJob | None] = queue.SimpleQueue()
        self._present: set[int] = set()  # submitted, outcome not yet reported
        self._cancel_requested: set[int] = set()
        self._cancel_async: dict[int, Callable[[], None]] = {}
        self._stopped: set[int] = set()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self.size):
            thread = threading.Thread(
                target=self._serve, name=f"conveyor-slot-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def submit(self, job: ClaimedJob) -> None:
        self._present.add(job.id)
        # (Exactly as claimed: an entry a late stop_job or cancel left for an earlier attempt
        # of this job must not touch this one.)
        self._stopped.discard(job.id)
        if job.cancel_requested:
            self._cancel_requested.add(job.id)
        else:
            self._cancel_requested.discard(job.id)
        self._inbox.put(job)

    def take_unstarted(self) -> list[ClaimedJob]:
        """The submitted jobs no thread has taken yet, taken out of the inbox (the caller
        hands them back: they never started, so no attempt of theirs ran)."""
        taken: list[ClaimedJob] = []
        sentinels = 0
        while True:
            try:
                job = self._inbox.get_nowait()
            except queue.Empty:
                break
            if job is None:
                sentinels += 1
                continue
            taken.append(job)
            self._forget(job.id)
        for _ in range(sentinels):
            self._inbox.put(None)
        return taken

    def request_cancel(self, job_id: int) -> None:
        # A thread is asked (cancel_requested turns true); a coroutine is cancelled at once.
        if job_id not in self._present or job_id in self._cancel_requested:
            return
        self._cancel_requested.add(job_id)
        cancel = self._cancel_async.get(job_id)
        if cancel is not None:
            cancel()

    def stop_job(self, job_id: int) -> None:
        if job_id not in self._present:
            return
        self._stopped.add(job_id)
        self.request_cancel(job_id)

    def set_deadline(self, job_id: int, deadline: float | None) -> None:
        pass  # the worker arms its own HardDeadline where it owns the process

    def _serve(self) -> None:
        slot = _Slot(threading.get_ident())
        inbox = self._inbox
        while True:
            job = inbox.get()
            if job is None:
                return
            if job.id in self._stopped:
                # Its lease was lost before it started: another worker may run it now.
                self._forget(job.id)
                self._on_outcome(job, stopped_outcome(job, self._tasks, time.time()))
                continue
            if job.id in self._cancel_requested:
                # Cancelled while it waited in the inbox (prefetched): it never starts, as a
                # job cancelled while queued never does.
                self._forget(job.id)
                self._on_outcome(job, ended(job, self._tasks, Cause.CANCELLED,
                                            started_at=time.time()))
                continue
            slot.begin(job)
            try:
                self._run(job, slot)
            except TimeLimitExceeded:
                # Delivered in conveyor's code just after the task's own had returned (only
                # one is ever raised per job): settle the job all the same.
                self._finish(slot)
                self._report(job, slot, None)

    def _is_cancel_requested(self, job_id: int) -> bool:
        return job_id in self._cancel_requested

    def _run(self, job: ClaimedJob, slot: _Slot) -> None:
        if self._on_start is not None:
            self._on_start(job)
        slot.started = time.time()
        task = self._tasks.get(job.task)
        timeout = task.timeout_for(job) if task is not None else None
        timer = None
        if timeout is not None:
            timer = threading.Timer(timeout, self._time_out, (slot, slot.serial, timeout))
            timer.daemon = True
            timer.start()
        outcome: Outcome | None
        try:
            outcome = execute(
                job,
                self._tasks,
                is_cancel_requested=functools.partial(self._is_cancel_requested, job.id),
                report_progress=functools.partial(self._on_progress, job),
                # (Only a coroutine can be cancelled from outside: no hook for a plain def.)
                on_async_start=(functools.partial(self._cancel_async.__setitem__, job.id)
                                if task is not None and task.is_async else None),
                max_result_bytes=self._max_result_bytes,
                arm_soft=arm_thread,
            )
        except TimeLimitExceeded:
            outcome = None  # the hard limit's: _report says timed out
        except BaseException as exc:  # SystemExit and friends raised by task code
            outcome = crash_outcome(job, self._tasks, exc, slot.started)
        self._finish(slot)
        if timer is not None:
            timer.cancel()
        self._report(job, slot, outcome)

    def _forget(self, job_id: int) -> None:
        self._present.discard(job_id)
        self._cancel_requested.discard(job_id)
        self._cancel_async.pop(job_id, None)
        self._stopped.discard(job_id)

    def _report(self, job: ClaimedJob, slot: _Slot, outcome: Outcome | None) -> None:
        """Report the job's outcome (None: it ran past its hard limit), once."""
        started = slot.started
        stopped = job.id in self._stopped
        self._forget(job.id)
        if slot.timed_out is not None or outcome is None:
            outcome = ended(job, self._tasks, Cause.TIMED_OUT, JobError(
                "TimeoutError", f"task exceeded its timeout of {slot.timed_out} s "
                "(time limit exceeded) and was stopped"), started_at=started)
        if stopped and not isinstance(outcome, Succeeded):  # it stopped because we asked
            outcome = stopped_outcome(job, self._tasks, started)
        slot.job = None
        self._on_outcome(job, outcome)

    def _finish(self, slot: _Slot) -> None:
        """No limit may raise in this thread from now on; drop one fired but not delivered."""
        while True:
            try:
                with slot.lock:
                    slot.done = True
                    if slot.timed_out is not None:
                        raise_in_thread(slot.ident, None)
                return
            except TimeLimitExceeded:
                continue  # delivered just now: done is set, so none can follow

    def _time_out(self, slot: _Slot, serial: int, timeout: float) -> None:
        """The hard limit (a timer thread): the attempt has failed; try to stop the job."""
        with slot.lock:
            if slot.done or slot.serial != serial or slot.job is None:
                return
            slot.timed_out = timeout
            cancel = self._cancel_async.get(slot.job.id)
            if cancel is not None:  # a coroutine in its own event loop: cancel it there
                cancel()
            else:
                raise_in_thread(slot.ident, TimeLimitExceeded)

    def close(self, *, kill: bool) -> None:
        # Threads cannot be killed; stuck ones die with the process (they are daemons).
        for _ in self._threads:
            self._inbox.put(None)
