"""The asyncio pool: one event loop in one thread runs many `async def` jobs at once.

Each job is an asyncio task of its own, so the current job (a ContextVar) is per task and
current_job() and progress work in every coroutine. A plain `def` task runs in a daemon
thread of its own (with the job's context), exactly as on the thread pool, and the loop
awaits it: a daemon thread rather than the loop's default executor, whose threads are joined
at interpreter exit, so that a stuck plain job cannot keep the process alive.

Stopping: a cancel request, a lost lease or a timeout cancels the job's coroutine (a plain
`def` job is only asked, through cancel_requested). A coroutine that blocks the loop or
swallows CancelledError cannot be stopped: the pool does not kill jobs (`kills_jobs` False),
and a worker that owns its process exits at the hard deadline instead, as with threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...backends.base import ClaimedJob
from ...job import JobError
from ...outcomes import Outcome, Succeeded
from ...policy import Cause
from ..executor import ended, execute_async
from ..time_limits import arm_thread
from .base import (
    InProcessPool,
    crash_outcome,
    stopped_outcome,
)

LOOP_START_TIMEOUT = 30.0


@dataclass(eq=False)
class _Running:
    job: ClaimedJob
    is_coroutine: bool  # an `async def` task: its coroutine can be cancelled
    cancel: threading.Event = field(default_factory=threading.Event)
    task: asyncio.Task[None] | None = None  # set in the loop's thread
    stopped: bool = False  # stop_job: its lease may be taken over
    timed_out: float | None = None  # the timeout that cancelled it
    abandoned: bool = False  # close(kill=True): handed back, no outcome


class AsyncioPool(InProcessPool):
    """Up to `size` jobs at once on one event loop in one daemon thread."""

    kind = "asyncio"
    kills_jobs = False  # a coroutine that blocks the loop or ignores cancellation runs on

    def _prepare(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="conveyor-asyncio",
                                        daemon=True)
        self._lock = threading.Lock()
        self._jobs: dict[int, _Running] = {}  # under _lock
        self._closing = False  # read and written in the loop's thread only

    # -- the worker's side (any thread) ---------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(LOOP_START_TIMEOUT):
            raise RuntimeError(f"the asyncio pool's event loop did not start within "
                               f"{LOOP_START_TIMEOUT:g} s")

    def submit(self, job: ClaimedJob) -> None:
        task = self._tasks.get(job.task)
        running = _Running(job, is_coroutine=task is not None and task.is_async)
        if job.cancel_requested:
            running.cancel.set()
        with self._lock:
            self._jobs[job.id] = running
        self._call(self._begin, running)

    def request_cancel(self, job_id: int) -> None:
        # The task sees cancel_requested at once; a coroutine is cancelled as well.
        with self._lock:
            running = self._jobs.get(job_id)
        if running is None or running.cancel.is_set():
            return
        running.cancel.set()
        if running.is_coroutine:
            self._call(self._cancel, running)

    def stop_job(self, job_id: int) -> None:
        with self._lock:
            running = self._jobs.get(job_id)
        if running is None:
            return
        running.stopped = True
        running.cancel.set()  # a plain `def` job can only be asked
        if running.is_coroutine:
            self._call(self._cancel, running)

    def set_deadline(self, job_id: int, deadline: float | None) -> None:
        pass  # the worker arms its own HardDeadline where it owns the process

    def close(self, *, kill: bool) -> None:
        if self._loop is not None:  # else never started: nothing runs
            self._call(self._close, kill)

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            raise RuntimeError("the asyncio pool is not started")
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing left to do
            loop.call_soon_threadsafe(callback, *args)

    # -- the loop's thread ----------------------------------------------------------------

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def _begin(self, running: _Running) -> None:
        assert self._loop is not None
        # create_task copies this thread's context: each job sets its own current job.
        running.task = self._loop.create_task(self._run(running),
                                              name=f"conveyor-job-{running.job.id}")

    def _cancel(self, running: _Running) -> None:
        if running.task is not None and not running.task.done():
            running.task.cancel()

    def _time_out(self, running: _Running, timeout: float) -> None:
        if running.task is not None and not running.task.done():
            running.timed_out = timeout
            running.task.cancel()

    def _close(self, kill: bool) -> None:
        self._closing = True
        if kill:
            with self._lock:
                left = list(self._jobs.values())
            for running in left:
                running.abandoned = True
                self._cancel(running)
        self._stop_when_idle()

    def _stop_when_idle(self) -> None:
        with self._lock:
            idle = not self._jobs
        if self._closing and idle and self._loop is not None:
            self._loop.stop()

    async def _run(self, running: _Running) -> None:
        job = running.job
        if self._on_start is not None:
            self._on_start(job)
        started = time.time()
        timer: asyncio.TimerHandle | None = None
        task = self._tasks.get(job.task)
        timeout = task.timeout_for(job) if task is not None else None
        if running.is_coroutine and timeout is not None:
            assert self._loop is not None
            timer = self._loop.call_later(timeout, self._time_out, running, timeout)
        outcome: Outcome
        try:
            outcome = await execute_async(
                job,
                self._tasks,
                is_cancel_requested=running.cancel.is_set,
                report_progress=functools.partial(self._on_progress, job),
                run_in_thread=_in_thread,
                max_result_bytes=self._max_result_bytes,
                arm_soft=arm_thread,
            )
        except asyncio.CancelledError as exc:  # cancelled, but not at a cancel request
            if running.timed_out is not None and not running.abandoned:
                error = JobError("TimeoutError", f"task exceeded its timeout of "
                                 f"{running.timed_out} s and was cancelled")
                outcome = ended(job, self._tasks, Cause.TIMED_OUT, error, started_at=started)
            else:
                outcome = crash_outcome(job, self._tasks, exc, started)
        except BaseException as exc:  # SystemExit and friends raised by task code
            outcome = crash_outcome(job, self._tasks, exc, started)
        finally:
            if timer is not None:
                timer.cancel()
        if running.stopped and not isinstance(outcome, Succeeded):
            outcome = stopped_outcome(job, self._tasks, started)  # stopped as we asked
        with self._lock:
            self._jobs.pop(job.id, None)
        if not running.abandoned:
            self._on_outcome(job, outcome)
        self._stop_when_idle()


async def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run a plain `def` task in a daemon thread of its own, with the caller's context (the
    current job), and wait for it without blocking the loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(ok: bool, value: Any) -> None:
        if future.done():  # the waiting job was cancelled (handed back) meanwhile
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def target() -> None:
        try:
            result = context.run(fn)
        except BaseException as exc:
            reply: tuple[bool, Any] = (False, exc)
        else:
            reply = (True, result)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, *reply)

    threading.Thread(target=target, name="conveyor-asyncio-sync", daemon=True).start()
    return await future
