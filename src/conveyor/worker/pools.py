"""Execution pools: where a claimed job's code runs. Threads by default; processes for CPU work
and hard timeouts. Both only run jobs and report outcomes; the worker does the bookkeeping."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Protocol

from ..backends.base import ClaimedJob
from ..errors import ConfigurationError
from ..job import JobError, Progress
from ..outcomes import Cancelled, Outcome, Succeeded, outcome_from_dict, outcome_to_dict
from ..serializer import DEFAULT_MAX_PAYLOAD
from .executor import TaskLookup, error_from_exception, execute, failure
from .lease_guard import HardDeadline, has_fileno
from .loader import find_import_path

if TYPE_CHECKING:
    from ..app import Conveyor

log = logging.getLogger("conveyor.worker")

DEADLINE_POLL = 0.05
CANCEL_GRACE = 5.0  # seconds a process-pool task has to notice a cancel before it is killed
StartCallback = Callable[[ClaimedJob], None]
OutcomeCallback = Callable[[ClaimedJob, Outcome], None]
ProgressCallback = Callable[[ClaimedJob, Progress], None]


POOLS = ("thread", "process")


class Pool(Protocol):
    kind: str
    # Whether the pool can stop a job by force (kill its process): one that cannot gets a
    # HardDeadline where the worker owns its process, and an embedded worker keeps the
    # leases of jobs still running after it stopped.
    kills_jobs: bool

    def start(self) -> None: ...

    def submit(self, job: ClaimedJob) -> None: ...

    def request_cancel(self, job_id: int) -> None: ...

    def stop_job(self, job_id: int) -> None:
        """Stop a job whose lease may be taken over (kill, cancel, or at least ask)."""
        ...

    def set_deadline(self, job_id: int, deadline: float | None) -> None:
        """The monotonic time by which the job must have stopped, whatever its worker does."""
        ...

    def close(self, *, kill: bool) -> None: ...


def _crash_outcome(job: ClaimedJob, exc: BaseException, started: float) -> Outcome:
    return failure(job, error_from_exception(exc), started_at=started, backoff=None)


LEASE_NOT_RENEWED = JobError(
    "LeaseNotRenewed",
    "the worker could not renew its lease on the job in time (database unreachable, or the "
    "worker frozen or starved of CPU), so it stopped the job before another worker could "
    "take it over",
)


def _stopped_outcome(job: ClaimedJob, tasks: TaskLookup, started: float) -> Outcome:
    """A job stopped for want of a lease is retried, like any interrupted attempt."""
    task = tasks.get(job.task)
    backoff = task.backoff_for(job) if task is not None else None
    return failure(job, LEASE_NOT_RENEWED, started_at=started, backoff=backoff)


class ThreadPool:
    """Daemon threads, so a job stuck past the shutdown grace cannot keep the process alive."""

    kind = "thread"
    kills_jobs = False

    def __init__(
        self,
        size: int,
        tasks: TaskLookup,
        on_outcome: OutcomeCallback,
        on_progress: ProgressCallback,
        *,
        max_result_bytes: int = DEFAULT_MAX_PAYLOAD,
        on_start: StartCallback | None = None,
    ) -> None:
        self.size = size
        self._tasks = tasks
        self._on_start = on_start
        self._max_result_bytes = max_result_bytes
        self._on_outcome = on_outcome
        self._on_progress = on_progress
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
                outcome = _crash_outcome(job, exc, started)
            self._cancel.pop(job.id, None)
            self._cancel_async.pop(job.id, None)
            if job.id in self._stopped:
                self._stopped.discard(job.id)
                if not isinstance(outcome, Succeeded):  # it stopped because we asked it to
                    outcome = _stopped_outcome(job, self._tasks, started)
            self._on_outcome(job, outcome)

    def close(self, *, kill: bool) -> None:
        # Threads cannot be killed; stuck ones die with the process (they are daemons).
        for _ in self._threads:
            self._inbox.put(None)


# -- process pool ------------------------------------------------------------------------


def _keep_deadline(deadlines: Any, slot: int, lease: float) -> None:
    """Keep this process's hard deadline (lease_guard.HardDeadline, faulthandler's C thread)
    on the deadline the worker sets for this slot's job: if the worker freezes, dies or
    stops renewing, this process exits by itself before the job's lease can be taken over.
    0 means no job."""
    hard = HardDeadline(lease)
    while True:
        deadline = float(deadlines[slot])
        hard.arm(deadline if deadline > 0 else None)
        time.sleep(DEADLINE_POLL)


def _child_main(
    app_path: str,
    url: str,
    cancel_flags: Any,
    deadlines: Any,
    lease: float,
    slot: int,
    conn: multiprocessing.connection.Connection,
) -> None:
    """Entry point of a pool process (spawn-safe: everything arrives as plain values)."""
    # The worker decides when jobs stop: a terminal's Ctrl+C or a service manager's SIGTERM
    # sent to the whole process group must not kill the job mid-way.
    for name in ("SIGINT", "SIGTERM"):
        signum = getattr(signal, name, None)
        if signum is not None:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signum, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        # If the worker dies (even by kill -9), this process must not run on unsupervised.
        def watch_parent() -> None:
            parent.join()
            os._exit(70)

        threading.Thread(target=watch_parent, daemon=True).start()
    if has_fileno(sys.stderr):
        threading.Thread(target=_keep_deadline, args=(deadlines, slot, lease),
                         daemon=True).start()

    from .loader import load_app

    app = load_app(app_path)
    app.url = url  # tasks that enqueue follow-up jobs write where the worker reads
    tasks = app.tasks
    conn.send_bytes(b'{"ready":true}')
    while True:
        try:
            message = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if message is None:
            return
        job = ClaimedJob(**message)

        def report(progress: Progress) -> None:
            conn.send_bytes(json.dumps({"progress": asdict(progress)}).encode())

        started = time.time()
        try:
            outcome = execute(
                job,
                tasks,
                is_cancel_requested=functools.partial(_flag_names, cancel_flags, slot, job.id),
                report_progress=report,
                max_result_bytes=app.max_payload_bytes,  # the child loaded the app itself
            )
        except BaseException as exc:
            outcome = _crash_outcome(job, exc, started)
        conn.send_bytes(json.dumps({"outcome": outcome_to_dict(outcome)}).encode())


def _flag_names(cancel_flags: Any, slot: int, job_id: int) -> bool:
    return bool(cancel_flags[slot] == job_id)


class _Slot:
    def __init__(self, pool: ProcessPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.inbox: queue.SimpleQueue[ClaimedJob | None] = queue.SimpleQueue()
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn: multiprocessing.connection.Connection | None = None
        self.current: ClaimedJob | None = None
        self.lease_stopped = False
        self.cancel_by: float | None = None  # monotonic: kill the job if still running then
        self.thread = threading.Thread(
            target=self.serve, name=f"conveyor-proc-slot-{index}", daemon=True
        )

    def spawn(self) -> None:
        parent_end, child_end = self.pool.context.Pipe()
        process = self.pool.context.Process(
            target=_child_main,
            args=(self.pool.app_path, self.pool.url, self.pool.cancel_flags,
                  self.pool.deadlines, self.pool.lease, self.index, child_end),
            name=f"conveyor-pool-{self.index}",
            daemon=True,
        )
        process.start()
        child_end.close()
        self.process, self.conn = process, parent_end
        # Wait until the child imported the app, so a broken app fails the worker at start.
        if not parent_end.poll(120):
            raise RuntimeError("pool process did not start within 120 s")
        try:
            parent_end.recv_bytes()
        except EOFError:
            process.join(5)
            raise RuntimeError(
                f"pool process exited with code {process.exitcode} while importing "
                f"{self.pool.app_path!r}"
            ) from None

    def kill(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        if self.conn is not None:
            self.conn.close()
        self.process, self.conn = None, None

    def serve(self) -> None:
        while True:
            job = self.inbox.get()
            if job is None:
                return
            self.current = job
            if self.pool.on_start is not None:
                self.pool.on_start(job)
            try:
                outcome = self.run(job)
            except _Abandoned:
                self.current = None
                return
            except Exception as exc:  # the pool itself broke; report the job, not crash silently
                log.exception("process pool slot %d failed running job %s", self.index, job.id)
                outcome = _crash_outcome(job, exc, time.time())
            self.current = None
            self.lease_stopped = False
            self.cancel_by = None
            self.pool.cancel_flags[self.index] = 0
            self.pool.deadlines[self.index] = 0.0
            self.pool.on_outcome(job, outcome)

    def run(self, job: ClaimedJob) -> Outcome:
        if self.process is None or not self.process.is_alive():
            self.spawn()
        assert self.conn is not None and self.process is not None
        self.pool.cancel_flags[self.index] = job.id if job.cancel_requested else 0
        started = time.time()
        task = self.pool.tasks.get(job.task)
        timeout = task.timeout_for(job) if task is not None else None
        backoff = task.backoff_for(job) if task is not None else None
        deadline = None if timeout is None else time.monotonic() + timeout
        self.conn.send_bytes(json.dumps(asdict(job)).encode())
        while True:
            wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            if self.cancel_by is not None:
                wait = max(0.0, min(wait, self.cancel_by - time.monotonic()))
            try:
                ready = self.conn.poll(wait)
                if ready:
                    message = json.loads(self.conn.recv_bytes())
                    if "progress" in message:
                        self.pool.on_progress(job, Progress(**message["progress"]))
                        continue
                    return outcome_from_dict(message["outcome"])
            except (EOFError, OSError):
                if self.pool.closing_now:
                    raise _Abandoned from None
                deadline_passed = 0 < self.pool.deadlines[self.index] <= time.monotonic()
                if self.lease_stopped or deadline_passed:  # killed by us, or by itself
                    self.kill()
                    return _stopped_outcome(job, self.pool.tasks, started)
                code = None
                if self.process is not None:
                    self.process.join(1)
                    code = self.process.exitcode
                self.kill()
                error = JobError(
                    "WorkerProcessDied",
                    f"the pool process running the job died (exit code {code})",
                )
                return failure(job, error, started_at=started, backoff=backoff)
            if self.pool.closing_now:
                self.kill()
                raise _Abandoned
            if self.lease_stopped:
                self.kill()
                return _stopped_outcome(job, self.pool.tasks, started)
            if self.cancel_by is not None and time.monotonic() >= self.cancel_by:
                self.kill()
                return Cancelled(job.id, job.token, job.attempt, started, time.time(), JobError(
                    "JobCancelled", f"cancelled; the task did not stop within {CANCEL_GRACE:g} s "
                    "of being asked, so its process was killed"))
            if deadline is not None and time.monotonic() >= deadline:
                self.kill()
                error = JobError(
                    "TimeoutError",
                    f"task exceeded its timeout of {timeout} s and its process was killed",
                )
                return failure(job, error, started_at=started, backoff=backoff)


class _Abandoned(Exception):
    """The worker is stopping now; the job is handed back, not reported."""


class ProcessPool:
    """One spawned process per slot; a job past its timeout gets its process killed."""

    kind = "process"
    kills_jobs = True

    def __init__(
        self,
        size: int,
        tasks: TaskLookup,
        app_path: str,
        url: str,
        on_outcome: OutcomeCallback,
        on_progress: ProgressCallback,
        lease: float,
        on_start: StartCallback | None = None,
    ) -> None:
        self.size = size
        self.on_start = on_start
        self.tasks = tasks
        self.app_path = app_path
        self.url = url
        self.lease = lease
        self.on_outcome = on_outcome
        self.on_progress = on_progress
        self.context = multiprocessing.get_context("spawn")
        # Per slot, the id of the job asked to cancel: a flag naming the job cannot leak into
        # the next job that slot runs.
        self.cancel_flags: Any = self.context.Array("q", size, lock=False)
        # Per slot, the monotonic time by which its job must have stopped (0: none); the
        # child enforces it itself (_keep_deadline). A double is written whole on the
        # platforms Python runs on.
        self.deadlines: Any = self.context.Array("d", size, lock=False)
        self.closing_now = False
        self._slots = [_Slot(self, index) for index in range(size)]
        self._next = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        for slot in self._slots:
            slot.spawn()
        for slot in self._slots:
            slot.thread.start()

    def submit(self, job: ClaimedJob) -> None:
        with self._lock:
            for slot in self._slots:
                if slot.current is None and slot.inbox.empty():
                    slot.current = job
                    slot.inbox.put(job)
                    return
        raise RuntimeError("no free process slot; the worker claimed more jobs than slots")

    def request_cancel(self, job_id: int) -> None:
        # The task sees cancel_requested at once; a task that does not look is killed after
        # CANCEL_GRACE and the job ends cancelled all the same.
        for slot in self._slots:
            current = slot.current
            if current is not None and current.id == job_id:
                self.cancel_flags[slot.index] = job_id
                if slot.cancel_by is None:
                    slot.cancel_by = time.monotonic() + CANCEL_GRACE

    def stop_job(self, job_id: int) -> None:
        for slot in self._slots:
            current = slot.current
            if current is not None and current.id == job_id:
                slot.lease_stopped = True
                process = slot.process
                if process is not None and process.is_alive():
                    process.kill()  # the slot thread notices and reports the job stopped

    def set_deadline(self, job_id: int, deadline: float | None) -> None:
        for slot in self._slots:
            current = slot.current
            if current is not None and current.id == job_id:
                self.deadlines[slot.index] = deadline or 0.0

    def close(self, *, kill: bool) -> None:
        self.closing_now = kill
        for slot in self._slots:
            slot.inbox.put(None)
            if kill:
                slot.kill()
            elif slot.conn is not None:
                with contextlib.suppress(OSError):
                    slot.conn.send_bytes(b"null")
        for slot in self._slots:
            if slot.process is not None:
                slot.process.join(5)
                if slot.process.is_alive():
                    slot.process.kill()


def default_concurrency(kind: str) -> int:
    """A claim takes as many jobs as there are free slots, so more threads mean fewer
    transactions per job (16: about 1.5x the jobs/s of 8); idle threads cost nothing.
    Processes: one per core."""
    return 16 if kind == "thread" else max(1, os.cpu_count() or 1)


def make_pool(kind: str, *, app: Conveyor, concurrency: int, lease: float,
              on_outcome: OutcomeCallback, on_progress: ProgressCallback,
              on_start: StartCallback) -> Pool:
    """The pool `kind` (one of POOLS) of `concurrency` slots running `app`'s tasks."""
    if kind == "process":
        app_path = find_import_path(app)
        if app_path is None:
            raise ConfigurationError(
                "the process pool needs to import your app in each process; run the worker "
                "with --app module:attr, or define the app at module level in an "
                "importable module"
            )
        return ProcessPool(concurrency, app.tasks, app_path, app.url, on_outcome, on_progress,
                           lease, on_start=on_start)
    return ThreadPool(concurrency, app.tasks, on_outcome, on_progress,
                      max_result_bytes=app.max_payload_bytes, on_start=on_start)
