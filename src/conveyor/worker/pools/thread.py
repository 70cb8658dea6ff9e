"""The thread pool (the default): one daemon thread per slot."""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable

from ...backends.base import ClaimedJob
from ...outcomes import Succeeded
from ..executor import execute
from .base import (
    InProcessPool,
    crash_outcome,
    stopped_outcome,
)


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
            flag = self._cancel.get(job.id) or threading.Event()
            if self._on_start is not None:
                self._on_start(job)
            started = time.time()
            try:
                outcome = execute(
                    job,
                    self._tasks,
                    is_cancel_requested=flag.is_set,
                    report_progress=functools.partial(self._on_progress, job),
                    on_async_start=functools.partial(self._cancel_async.__setitem__, job.id),
                    max_result_bytes=self._max_result_bytes,
                )
            except BaseException as exc:  # SystemExit and friends raised by task code
                outcome = crash_outcome(job, self._tasks, exc, started)
            self._cancel.pop(job.id, None)
            self._cancel_async.pop(job.id, None)
            if job.id in self._stopped:
                self._stopped.discard(job.id)
                if not isinstance(outcome, Succeeded):  # it stopped because we asked it to
                    outcome = stopped_outcome(job, self._tasks, started)
            self._on_outcome(job, outcome)

    def close(self, *, kill: bool) -> None:
        # Threads cannot be killed; stuck ones die with the process (they are daemons).
        for _ in self._threads:
            self._inbox.put(None)
