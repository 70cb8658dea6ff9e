"""The thread pool (the default): one daemon thread per slot.

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
from dataclasses import dataclass, field

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


@dataclass(eq=False)
class _Running:
    job: ClaimedJob
    ident: int  # the thread running it
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False  # under lock: no exception may be raised in the thread any more
    timed_out: float | None = None  # under lock: the hard limit it ran past
    started: float = 0.0  # time.time() when it started


class ThreadPool(InProcessPool):
    """Daemon threads, so a job stuck past the shutdown grace cannot keep the process alive."""

    kind = "thread"
    kills_jobs = False  # threads cannot be killed: stopping one is asking it

    def _prepare(self) -> None:
        self._inbox: queue.SimpleQueue[ClaimedJob | None] = queue.SimpleQueue()
        self._cancel: dict[int, threading.Event] = {}
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
        flag = threading.Event()
        if job.cancel_requested:
            flag.set()
        self._cancel[job.id] = flag
        self._inbox.put(job)

    def request_cancel(self, job_id: int) -> None:
        # A thread is asked (cancel_requested turns true); a coroutine is cancelled at once.
        flag = self._cancel.get(job_id)
        if flag is None or flag.is_set():
            return
        flag.set()
        cancel = self._cancel_async.get(job_id)
        if cancel is not None:
            cancel()

    def stop_job(self, job_id: int) -> None:
        if job_id not in self._cancel:
            return
        self._stopped.add(job_id)
        self.request_cancel(job_id)

    def set_deadline(self, job_id: int, deadline: float | None) -> None:
        pass  # the worker arms its own HardDeadline where it owns the process

    def _serve(self) -> None:
        while True:
            job = self._inbox.get()
            if job is None:
                return
            running = _Running(job, threading.get_ident())
            try:
                self._run(running)
            except TimeLimitExceeded:
                # Delivered in conveyor's code just after the task's own had returned (only
                # one is ever raised per job): settle the job all the same.
                self._finish(running)
                self._report(running, None)

    def _run(self, running: _Running) -> None:
        job = running.job
        flag = self._cancel.get(job.id) or threading.Event()
        if self._on_start is not None:
            self._on_start(job)
        running.started = time.time()
        task = self._tasks.get(job.task)
        timeout = task.timeout_for(job) if task is not None else None
        timer = None
        if timeout is not None:
            timer = threading.Timer(timeout, self._time_out, (running, timeout))
            timer.daemon = True
            timer.start()
        outcome: Outcome | None
        try:
            outcome = execute(
                job,
                self._tasks,
                is_cancel_requested=flag.is_set,
                report_progress=functools.partial(self._on_progress, job),
                on_async_start=functools.partial(self._cancel_async.__setitem__, job.id),
                max_result_bytes=self._max_result_bytes,
                arm_soft=arm_thread,
            )
        except TimeLimitExceeded:
            outcome = None  # the hard limit's: _report says timed out
        except BaseException as exc:  # SystemExit and friends raised by task code
            outcome = crash_outcome(job, self._tasks, exc, running.started)
        self._finish(running)
        if timer is not None:
            timer.cancel()
        self._report(running, outcome)

    def _report(self, running: _Running, outcome: Outcome | None) -> None:
        """Report the job's outcome (None: it ran past its hard limit), once."""
        job, started = running.job, running.started
        self._cancel.pop(job.id, None)
        self._cancel_async.pop(job.id, None)
        if running.timed_out is not None or outcome is None:
            outcome = ended(job, self._tasks, Cause.TIMED_OUT, JobError(
                "TimeoutError", f"task exceeded its timeout of {running.timed_out} s "
                "(time limit exceeded) and was stopped"), started_at=started)
        if job.id in self._stopped:
            self._stopped.discard(job.id)
            if not isinstance(outcome, Succeeded):  # it stopped because we asked it to
                outcome = stopped_outcome(job, self._tasks, started)
        self._on_outcome(job, outcome)

    def _finish(self, running: _Running) -> None:
        """No limit may raise in this thread from now on; drop one fired but not delivered."""
        while True:
            try:
                with running.lock:
                    running.done = True
                    if running.timed_out is not None:
                        raise_in_thread(running.ident, None)
                return
            except TimeLimitExceeded:
                continue  # delivered just now: done is set, so none can follow

    def _time_out(self, running: _Running, timeout: float) -> None:
        """The hard limit (a timer thread): the attempt has failed; try to stop the job."""
        with running.lock:
            if running.done:
                return
            running.timed_out = timeout
            cancel = self._cancel_async.get(running.job.id)
            if cancel is not None:  # a coroutine in its own event loop: cancel it there
                cancel()
            else:
                raise_in_thread(running.ident, TimeLimitExceeded)

    def close(self, *, kill: bool) -> None:
        # Threads cannot be killed; stuck ones die with the process (they are daemons).
        for _ in self._threads:
            self._inbox.put(None)
