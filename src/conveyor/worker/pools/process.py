"""The process pool: one spawned process per slot, for CPU work and hard time limits.

Time limits: the soft one is SIGALRM in the pool process (time_limits.arm_alarm); at the hard
one the slot kills the process and reports the attempt timed out. Recycling: after a job, a
slot replaces its process once it has run max_tasks_per_child jobs or its peak RSS
(spawn.peak_rss, reported by the process with each outcome) is over
max_memory_per_child; never in the middle of a job. The replacement is started as early as
is known: with the job that reaches max_tasks_per_child (it imports the app while that job
runs), else right after the job (a kill, memory), while the worker acknowledges and claims.

Start-up: each slot's thread starts its own process, so the children import the app side by
side (at most one per core at a time: more would only slow the first one down), and start()
returns as soon as one of them is ready. The worker claims from then on; a job given to a
slot whose process is still importing runs once it is ready, and submit() prefers the slots
that are. A broken app still fails the worker at start: start() raises if a process failed
to import it before any other was ready. The processes are started by a Launcher
(spawn.py); `conveyor worker` starts the first ones before it imports the app itself, and
the slots take those. Each process gets its settings (URL, lease) once taken.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import threading
import time
from dataclasses import asdict

from ...backends.base import ClaimedJob
from ...job import JobError, Progress
from ...outcomes import Outcome, outcome_from_dict
from ...policy import Cause
from ..executor import TaskLookup, ended
from .base import OutcomeCallback, ProgressCallback, StartCallback, crash_outcome, stopped_outcome
from .spawn import Launcher, Started, import_path, settings_message

log = logging.getLogger("conveyor.worker")

CANCEL_GRACE = 5.0  # seconds a process-pool task has to notice a cancel before it is killed
RETIRE_GRACE = 10.0  # seconds a recycled process has to exit by itself before it is killed


class _Slot:
    def __init__(self, pool: ProcessPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.inbox: queue.SimpleQueue[ClaimedJob | None] = queue.SimpleQueue()
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn: multiprocessing.connection.Connection | None = None
        self._owning = threading.Lock()  # who takes process and conn to kill them
        self.current: ClaimedJob | None = None
        self.lease_stopped = False
        self.cancel_by: float | None = None  # monotonic: kill the job if still running then
        self.ready = False  # the process has imported the app
        self.jobs_run = 0  # by this slot's current process
        # The next process, started with the job after which the current one is recycled.
        self.spare: Started | None = None
        self.rss: int | None = None  # its peak RSS after its latest job
        self.thread = threading.Thread(
            target=self.serve, name=f"conveyor-proc-slot-{index}", daemon=True
        )

    def start_first_process(self) -> None:
        """Start this slot's first process and wait for it to import the app (in the slot
        thread, beside the other slots'); tell the pool how it went."""
        with self.pool.launch_permits:  # one importing process per core at a time
            try:
                if self.pool.closing:
                    raise RuntimeError("the pool closed before its process started")
                self.start_process()
                if self.pool.closing:  # close may have looked before this process was set
                    raise RuntimeError("the pool closed while its process started")
                self.wait_ready()
            except Exception as exc:  # the next job starts another, and reports it if it fails
                if not self.pool.closing:
                    log.error("process pool slot %d could not start a process: %s",
                              self.index, exc)
                self.kill()
                self.pool.slot_started(exc)
                return
        self.pool.slot_started(None)

    def start_process(self) -> None:
        """Make the spare (if any), the process launched ahead for this slot (if any) or a
        new process this slot's next process."""
        self.process, self.conn = (self.spare or self.pool.launcher.take(self.index)
                                   or self.launch())
        self.spare = None
        self.ready, self.jobs_run, self.rss = False, 0, None

    def launch(self) -> Started:
        return self.pool.launcher.launch(self.index)

    def wait_ready(self) -> None:
        process, parent_end = self.process, self.conn
        assert process is not None and parent_end is not None
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
        with contextlib.suppress(OSError):  # (if it died since, its first job finds out)
            parent_end.send_bytes(self.pool.settings)  # its URL and lease, before any job
        self.ready = True

    def make_ready(self) -> None:
        """A live process that imported the app, started now if there is none."""
        if self.process is None or not self.process.is_alive():
            self.kill()
            self.start_process()
        if not self.ready:
            self.wait_ready()

    def recycle_due(self) -> str | None:
        """Why this slot's process should be replaced before its next job, if it should."""
        most, cap = self.pool.max_tasks_per_child, self.pool.max_memory_per_child
        if most is not None and self.jobs_run >= most:
            return f"it ran {self.jobs_run} jobs (max_tasks_per_child)"
        if cap is not None and self.rss is not None and self.rss > cap:
            return f"its peak RSS {self.rss} bytes is over max_memory_per_child ({cap})"
        return None

    def retire(self) -> None:
        """Let the (idle) process exit by itself, without waiting for it here."""
        with self._owning:  # (see kill)
            process, conn = self.process, self.conn
            self.process, self.conn = None, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send_bytes(b"null")
            conn.close()
        if process is not None:
            threading.Thread(target=_reap, args=(process,), daemon=True).start()

    def kill_spare(self) -> None:
        if self.spare is not None:
            process, conn = self.spare
            self.spare = None
            process.kill()
            process.join(5)
            conn.close()

    def kill(self) -> None:
        # The slot's thread (a process that failed to start) and the pool's close may kill
        # at once: one of them takes the process and closes its pipe, never both (a second
        # close of the same descriptor could close a file opened since under its number).
        with self._owning:
            process, conn = self.process, self.conn
            self.process, self.conn = None, None
        if process is not None and process.is_alive():
            process.kill()
            process.join(5)
        if conn is not None:
            conn.close()

    def serve(self) -> None:
        self.start_first_process()
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
                outcome = crash_outcome(job, self.pool.tasks, exc, time.time())
            self.current = None
            self.lease_stopped = False
            self.cancel_by = None
            self.pool.cancel_flags[self.index] = 0
            self.pool.deadlines[self.index] = 0.0
            self.replace_if_due()
            self.pool.on_outcome(job, outcome)

    def replace_if_due(self) -> None:
        """Start the next process now (after a kill, or to recycle) rather than when the
        next job comes: it imports the app while the outcome is acknowledged."""
        if self.pool.closing:
            return
        reason = self.recycle_due() if self.process is not None else "it was killed"
        if reason is None:
            return
        if self.process is not None:
            log.info("replacing pool process %s of slot %d: %s", self.process.pid,
                     self.index, reason)
            self.retire()
        try:
            self.start_process()
        except Exception:  # tried again when the next job comes, which then reports it
            log.exception("process pool slot %d could not start a process", self.index)
            self.kill()

    def run(self, job: ClaimedJob) -> Outcome:
        try:
            self.make_ready()
        except Exception:
            if self.lease_stopped:  # stop_job killed the process while it imported the app
                self.kill()
                return stopped_outcome(job, self.pool.tasks, time.time())
            raise
        assert self.conn is not None and self.process is not None
        self.jobs_run += 1
        most = self.pool.max_tasks_per_child
        if most is not None and self.jobs_run >= most and self.spare is None:
            self.spare = self.launch()  # imports the app while this last job runs
        # (a cancel asked for while the job waited for the process stands)
        asked = job.cancel_requested or self.cancel_by is not None
        self.pool.cancel_flags[self.index] = job.id if asked else 0
        started = time.time()
        task = self.pool.tasks.get(job.task)
        timeout = task.timeout_for(job) if task is not None else None
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
                    self.rss = message.get("rss")
                    return outcome_from_dict(message["outcome"])
            except (EOFError, OSError):
                if self.pool.closing_now:
                    raise _Abandoned from None
                deadline_passed = 0 < self.pool.deadlines[self.index] <= time.monotonic()
                if self.lease_stopped or deadline_passed:  # killed by us, or by itself
                    self.kill()
                    return stopped_outcome(job, self.pool.tasks, started)
                code = None
                if self.process is not None:
                    self.process.join(1)
                    code = self.process.exitcode
                self.kill()
                error = JobError(
                    "WorkerProcessDied",
                    f"the pool process running the job died (exit code {code})",
                )
                return ended(job, self.pool.tasks, Cause.PROCESS_DIED, error, started_at=started)
            if self.pool.closing_now:
                self.kill()
                raise _Abandoned
            if self.lease_stopped:
                self.kill()
                return stopped_outcome(job, self.pool.tasks, started)
            if self.cancel_by is not None and time.monotonic() >= self.cancel_by:
                self.kill()
                return ended(job, self.pool.tasks, Cause.CANCELLED, JobError(
                    "JobCancelled", f"cancelled; the task did not stop within {CANCEL_GRACE:g} s "
                    "of being asked, so its process was killed"), started_at=started)
            if deadline is not None and time.monotonic() >= deadline:
                self.kill()
                error = JobError(
                    "TimeoutError",
                    f"task exceeded its timeout of {timeout} s and its process was killed",
                )
                return ended(job, self.pool.tasks, Cause.TIMED_OUT, error, started_at=started)


def _reap(process: multiprocessing.process.BaseProcess) -> None:
    process.join(RETIRE_GRACE)
    if process.is_alive():  # stuck in its exit (an atexit hook): it ran its last job
        process.kill()
        process.join(5)


class _Abandoned(Exception):
    """The worker is stopping now; the job is handed back, not reported."""


class ProcessPool:
    """One spawned process per slot; a job past its timeout gets its process killed."""

    kind = "process"
    kills_jobs = True  # stop_job kills the job's process
    prefetches = False  # a submitted job goes to a free process at once

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
        *,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        launcher: Launcher | None = None,
    ) -> None:
        self.size = size
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_per_child = max_memory_per_child  # bytes of peak RSS
        self.on_start = on_start
        self.tasks = tasks
        self.app_path = app_path
        self.url = url
        self.lease = lease
        self.on_outcome = on_outcome
        self.on_progress = on_progress
        # Processes `conveyor worker` launched ahead, if they are this pool's.
        if launcher is None or launcher.app_path != import_path(app_path) \
                or launcher.size != size:
            if launcher is not None:
                launcher.close()
            launcher = Launcher(app_path, size)
        self.launcher = launcher
        self.cancel_flags = launcher.cancel_flags
        self.deadlines = launcher.deadlines
        self.settings = settings_message(url, lease)
        self.closing = False
        self.closing_now = False
        self._slots = [_Slot(self, index) for index in range(size)]
        self._lock = threading.Lock()
        # More processes importing at once than there are cores only delays the first one.
        self.launch_permits = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))
        self._first_starts = threading.Condition()
        self._ready_slots = 0
        self._start_errors: list[Exception] = []

    def start(self) -> None:
        """Start every slot's process side by side; return once one has imported the app
        (the others go on importing while the worker claims). Raises if one failed first:
        a broken app fails the worker at start."""
        for slot in self._slots:
            slot.thread.start()
        with self._first_starts:
            self._first_starts.wait_for(lambda: self._ready_slots > 0 or self._start_errors)
            if self._ready_slots > 0:
                return
        self.close(kill=True)
        raise self._start_errors[0]

    def slot_started(self, error: Exception | None) -> None:
        """A slot's first process imported the app (None), or why it did not."""
        with self._first_starts:
            if error is None:
                self._ready_slots += 1
            else:
                self._start_errors.append(error)
            self._first_starts.notify_all()

    def submit(self, job: ClaimedJob) -> None:
        with self._lock:
            free = [slot for slot in self._slots if slot.current is None and slot.inbox.empty()]
            if free:
                # A slot whose process is still importing the app would keep the job waiting.
                slot = next((slot for slot in free if slot.ready), free[0])
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

    def take_unstarted(self) -> list[ClaimedJob]:
        return []  # every submitted job has a process of its own

    def close(self, *, kill: bool) -> None:
        self.closing = True
        self.closing_now = kill
        self.launcher.close()  # processes launched ahead that no slot took
        for slot in self._slots:
            slot.inbox.put(None)
            slot.kill_spare()
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
