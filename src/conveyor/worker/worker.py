"""The Worker: owns lifecycle only. Register, start loops, claim and dispatch, drain, deregister."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

from .. import __version__, validation
from ..backends.base import Backend, ClaimedJob, Lease, WorkerInfo
from ..backends.unavailable import is_unavailable
from ..errors import ConfigurationError, ConveyorError
from ..job import Progress
from ..lease_watch import STOP_AT, LeaseWatch
from ..outcomes import Outcome
from . import joblog, names
from .lease_guard import HardDeadline, LeaseGuard
from .ledger import CLAIM_LOOP_LINGER, AckLedger
from .loops import FailureBudget, SideLoop
from .pools import POOLS, Pool, default_concurrency, make_pool

if TYPE_CHECKING:
    from ..app import Conveyor

log = logging.getLogger("conveyor.worker")

IDLE_RECHECK = 1.0  # seconds between claims when nothing wakes an idle worker
# How often a worker running jobs looks for cancel requests: one indexed read of its own
# running jobs, so a cancel reaches the task well within a second on every backend.
CANCEL_CHECK = 0.25
# A burst worker waits for its queues' jobs due within this many seconds (retries waiting
# on their backoff, short delays) before it exits.
BURST_HORIZON = 60.0
THREAD_HANDBACK_DELAY = 2.0
# A claim whose reply took this share of the lease is not run (see _claim_loop).
STALE_CLAIM_FRACTION = 0.5


class WorkerStopped(ConveyorError):
    """The worker stopped because one of its duties failed."""


class Worker:
    """Claims jobs from the database and runs them until stopped.

    Runs in the calling thread. SIGTERM/SIGINT (main thread only): stop claiming, let
    running jobs finish within `shutdown_timeout`, hand the rest back; a second signal
    hands everything back at once.

    `owns_process=True` (what `conveyor worker` passes) says the process exists only to run
    this worker: jobs in threads that outlive the grace period are handed back because the
    process is about to exit, and a thread whose lease could not be renewed in time makes the
    process exit (threads cannot be stopped otherwise). An embedded worker (the default)
    never exits its host process: it keeps renewing the leases of jobs whose threads still
    run after `run()` returned, and writes their outcomes when they end.
    """

    def __init__(
        self,
        app: Conveyor,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        pool: str = "thread",
        burst: bool = False,
        shutdown_timeout: float = 30.0,
        name: str | None = None,
        owns_process: bool = False,
        burst_horizon: float = BURST_HORIZON,
    ) -> None:
        if pool not in POOLS:
            raise ConfigurationError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        if concurrency is None:
            concurrency = default_concurrency(pool)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not (
            1 <= concurrency <= 1000
        ):
            raise ConfigurationError(
                f"concurrency must be an int from 1 to 1000, got {concurrency!r}"
            )
        self.shutdown_timeout = validation.non_negative_seconds(
            "shutdown_timeout", shutdown_timeout
        )
        self.burst_horizon = validation.non_negative_seconds("burst_horizon", burst_horizon)
        if queues is None:
            wanted = {"default"} | {task.settings.queue for task in app.tasks.values()}
            queues = sorted(wanted)
        if isinstance(queues, str):
            queues = [part for part in queues.split(",") if part.strip()]
        queue_list = [validation.queue_name(queue.strip()) for queue in queues]
        if not queue_list:
            raise ConfigurationError("a worker needs at least one queue")
        self.app = app
        self.queues = tuple(dict.fromkeys(queue_list))
        self.concurrency = concurrency
        self.pool_kind = pool
        self.burst = burst
        host = socket.gethostname()
        self.name = name or f"{host}.{os.getpid()}.{secrets.token_hex(3)}"
        self.info = WorkerInfo(
            name=self.name,
            host=host,
            pid=os.getpid(),
            queues=self.queues,
            concurrency=concurrency,
            pool=pool,
        )
        self.lease = app.lease_timeout
        self.owns_process = owns_process
        self.processed = 0
        self.abandoned_threads = 0  # jobs handed back while their thread still ran
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._stop_now = threading.Event()
        self._running: dict[int, ClaimedJob] = {}
        self._running_lock = threading.Lock()
        self._abandoning = False
        self._fatal: BaseException | None = None
        self._registered = False  # never deregister a name another worker holds
        self._started = threading.Event()
        self._stopped = threading.Event()  # set once every job is done and the worker is out
        self._guard = LeaseGuard(self.lease, lambda: self._backend.renewal_blocked())
        self._watch = LeaseWatch(self.lease)
        self._hard: HardDeadline | None = None
        self._joblog = joblog.JobLogWriter()

    def __repr__(self) -> str:
        return f"<Worker {self.name} queues={','.join(self.queues)} c={self.concurrency}>"

    # -- control -----------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Stop claiming and drain (thread-safe). `now=True` hands running jobs back at once."""
        self._stopping.set()
        if now:
            self._stop_now.set()
        self._wake.set()

    @property
    def started(self) -> threading.Event:
        """Set once the worker is registered and claiming."""
        return self._started

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping.is_set():
            log.warning("second signal: handing running jobs back now")
            self.stop(now=True)
        else:
            log.info(
                "signal %s: finishing running jobs (up to %.0f s), then stopping",
                signal.Signals(signum).name,
                self.shutdown_timeout,
            )
            self.stop()

    def _install_signals(self) -> dict[int, object]:
        previous: dict[int, object] = {}
        if threading.current_thread() is not threading.main_thread():
            return previous
        for name in ("SIGTERM", "SIGINT"):
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            try:
                previous[signum] = signal.signal(signum, self._on_signal)
            except (ValueError, OSError):  # not supported on this platform
                continue
        return previous

    # -- callbacks from pool threads ---------------------------------------------------

    def _on_outcome(self, job: ClaimedJob, outcome: Outcome) -> None:
        # Into the ledger before the slot frees: a drain that sees no running job must not
        # stop the ledger ahead of this outcome.
        with self._running_lock:
            # Before the outcome can be acked: the claim loop may ack it and claim the same
            # job's next attempt at once, which the guard must then track afresh.
            self._guard.finished(job.id)
            kept = not self._abandoning
            if kept:
                self._ledger.put(outcome)
                self.processed += 1
            self._running.pop(job.id, None)
        if kept:
            self._joblog.ended(job, outcome)
        self._arm_hard_deadline()
        self._wake.set()

    def _on_start(self, job: ClaimedJob) -> None:
        # In the pool's thread as the job starts, off the claim loop's path.
        self._joblog.started(job)

    def _on_progress(self, job: ClaimedJob, progress: Progress) -> None:
        self._ledger.put_progress(Lease(job.id, job.token), progress)

    def _on_loop_death(self, loop: SideLoop, exc: BaseException) -> None:
        self._on_duty_death(loop.name, exc)

    def _on_duty_death(self, duty: str, exc: BaseException) -> None:
        # Without heartbeats or acks, running on would only let leases lapse under running
        # jobs: hand everything back now instead.
        log.error("worker duty %r failed: %s; handing jobs back and stopping", duty, exc)
        self._fatal = exc
        self.stop(now=True)

    # -- side duties -------------------------------------------------------------------

    def _heartbeat(self) -> None:
        leases = self._ledger.held()
        began = time.monotonic()
        reply = self._backend.heartbeat(self.info, leases, self.lease, len(self._running))
        self._guard.renewed((held.job_id for held in leases if held.job_id not in reply.lost),
                            began)
        for job_id in reply.cancel_requested:
            self._pool.request_cancel(job_id)
        sent = {held.job_id: held.token for held in leases}
        for job_id in reply.lost:
            with self._running_lock:
                current = self._running.get(job_id)
            if current is not None and current.token != sent[job_id]:
                continue  # that attempt ended here; this worker already runs the next one
            # Another worker may run it now: stop ours, and stop vouching for it.
            log.error("job %s: lease lost (another worker may run it now); stopping it", job_id)
            self._pool.stop_job(job_id)
            self._ledger.forget(job_id, sent[job_id])
        if reply.stop_requested and not self._stopping.is_set():
            log.info("stop requested through the database")
            self.stop()

    def _watch_cancels(self) -> None:
        """Pass cancel requests on to running jobs within CANCEL_CHECK, not a heartbeat."""
        with self._running_lock:
            running = list(self._running)
        if running:
            for job_id in self._backend.cancels_requested(running):
                self._pool.request_cancel(job_id)

    def _guard_leases(self) -> None:
        """Stop jobs whose lease this worker could not renew in time (lease_guard.py)."""
        for job_id in self._guard.overdue():
            if not self._pool.kills_jobs and not self.owns_process:
                log.error("job %s: lease not renewed for %.1f s; asked it to stop, but a thread "
                          "or coroutine cannot be killed: if it runs on past its lease it may "
                          "run twice",
                          job_id, self.lease * STOP_AT)
            else:
                log.error("job %s: lease not renewed for %.1f s; stopping it", job_id,
                          self.lease * STOP_AT)
            self._pool.stop_job(job_id)
        with self._running_lock:
            running = list(self._running)
        for job_id in running:
            self._pool.set_deadline(job_id, self._guard.deadline(job_id))
        self._arm_hard_deadline()

    def _arm_hard_deadline(self) -> None:
        if self._hard is not None:
            self._hard.arm(self._guard.earliest_deadline())

    def _rescue(self) -> None:
        """Watch running jobs' leases; take back those not renewed for a whole lease while
        this worker could write (lease_watch.py)."""
        began = time.monotonic()
        observed = self._backend.observe_leases()
        dead = self._watch.observe(observed, began, time.monotonic())
        if dead:
            report = self._backend.rescue(dead)
            self._watch.forget(dead)
            for label, ids in (("requeued", report.requeued), ("failed", report.failed),
                               ("cancelled", report.cancelled)):
                if ids:
                    log.warning("rescued jobs whose worker stopped renewing their lease (%s): %s",
                                label, list(ids))
        self._backend.forget_dead_workers(max(self.lease * 4, 60.0))

    # -- lifecycle ---------------------------------------------------------------------

    def _make_pool(self) -> Pool:
        return make_pool(self.pool_kind, app=self.app, concurrency=self.concurrency,
                         lease=self.lease, on_outcome=self._on_outcome,
                         on_progress=self._on_progress, on_start=self._on_start)

    def run(self) -> None:
        """Work until stopped (or, with burst, until nothing is left to claim)."""
        self._backend: Backend = self.app.backend
        log.info("worker %s: database %s", self.name, self._backend.location)
        self._ledger = AckLedger(
            self._backend,
            self.name,
            self._wake.set,
            lambda exc: self._on_duty_death("ack", exc),
            linger=CLAIM_LOOP_LINGER,
        )
        self._joblog.start()
        self._pool = self._make_pool()
        previous_handlers = self._install_signals()
        ledger_thread = threading.Thread(target=self._ledger.run, name="conveyor-ledger",
                                         daemon=True)
        heartbeat_every = max(0.05, self.lease / 3)
        loops = [
            SideLoop("heartbeat", heartbeat_every, self._heartbeat, self._on_loop_death),
            SideLoop("lease-guard", min(max(self.lease / 20, 0.02), 0.5), self._guard_leases,
                     self._on_loop_death),
            SideLoop("rescuer", min(max(self.lease / 4, 0.1), 15.0), self._rescue,
                     self._on_loop_death),
            SideLoop("cancels", CANCEL_CHECK, self._watch_cancels, self._on_loop_death),
        ]
        if self.owns_process and not self._pool.kills_jobs:
            self._hard = HardDeadline(self.lease)
            if not self._hard.available:
                log.warning("no stderr to report through: a thread whose lease cannot be "
                            "renewed will not make this worker exit")
        unsubscribe = None
        kept: list[ClaimedJob] = []
        try:
            # Tasks first, so that once this worker shows, an enqueue by name elsewhere finds
            # each of its tasks' queue (and defaults).
            self._backend.register_tasks(self.name, [t.info for t in self.app.tasks.values()])
            names.register(self._backend, self.info, self.lease)
            self._registered = True
            self._pool.start()
            ledger_thread.start()
            for loop in loops:
                loop.start()
            unsubscribe = self._backend.subscribe(self._wake.set)
            self._rescue()
            log.info("worker %s started: queues=%s pool=%s concurrency=%d lease=%gs conveyor=%s",
                     self.name, ",".join(self.queues), self.pool_kind, self.concurrency,
                     self.lease, __version__, extra={
                         "worker": self.name, "queues": list(self.queues),
                         "pool": self.pool_kind, "concurrency": self.concurrency,
                         "lease": self.lease, "version": __version__})
            self._started.set()
            try:
                self._claim_loop()
            finally:
                kept = self._drain()
        finally:
            if unsubscribe is not None:
                unsubscribe()
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)  # type: ignore[arg-type]
            if kept:
                # Threads that cannot be stopped still run these jobs: keep their leases
                # and write their outcomes when they end, behind the caller's back.
                threading.Thread(target=self._keep_then_finish, args=(loops, ledger_thread),
                                 name="conveyor-keeper", daemon=True).start()
            else:
                self._finish(loops, ledger_thread)
        log.info("worker %s stopped after %d jobs", self.name, self.processed)
        if self._fatal is not None:
            raise WorkerStopped(f"worker stopped because a duty failed: {self._fatal}") \
                from self._fatal

    @property
    def stopped(self) -> threading.Event:
        """Set once the worker is out of the database: every job it ran has its outcome
        written or was handed back (later than `run()` returning, while kept jobs run on)."""
        return self._stopped

    def _keep_then_finish(self, loops: list[SideLoop], ledger_thread: threading.Thread) -> None:
        while True:
            with self._running_lock:
                if not self._running:
                    break
            self._wake.wait(0.1)
            self._wake.clear()
        self._finish(loops, ledger_thread)

    def _finish(self, loops: list[SideLoop], ledger_thread: threading.Thread) -> None:
        """Stop the duties and the ledger, hand back what could not be written, deregister."""
        try:
            for loop in loops:
                loop.stop()
            if self._hard is not None:
                self._hard.disarm()
            self._ledger.stop()
            if ledger_thread.is_alive():
                ledger_thread.join(timeout=30)
            unwritten = self._ledger.held()
            if unwritten:  # outcomes the ledger could not store: run those jobs again
                self._backend.release(unwritten)
                log.warning("handed back %d job(s) whose outcome could not be written",
                            len(unwritten))
            if self._registered:
                self._backend.deregister_worker(self.name)
        finally:
            self._joblog.stop()
            self._stopped.set()

    def _claim_loop(self) -> None:
        budget = FailureBudget()
        while not self._stopping.is_set():
            self._wake.clear()
            with self._running_lock:
                free = self.concurrency - len(self._running)
            claimed: list[ClaimedJob] = []
            # One writer at a time: a progress write of the ledger thread must not land
            # after the outcome of the same job (it would find the job no longer running).
            with self._ledger.writing:
                outcomes, progress = self._ledger.take()
                if free > 0 or outcomes:
                    asked_at = time.monotonic()
                    try:
                        accepted, claimed = self._backend.ack_and_claim(
                            outcomes, self.name, self.queues, free, self.lease, progress
                        )
                        budget.succeeded()
                    except Exception as exc:
                        if not is_unavailable(exc) and (outcomes or progress):
                            # Maybe one unwritable value: each job's outcome on its own.
                            outcomes, progress = self._ledger.write_isolated(outcomes,
                                                                             progress)
                        self._ledger.put_back(outcomes, progress)
                        spent = budget.failed(exc)
                        budget.log_failure("claiming", exc)
                        if spent:
                            self._on_duty_death("claim", exc)
                            return
                        self._stopping.wait(budget.pause())
                        continue
                    self._ledger.settle(outcomes, accepted)
            if claimed and time.monotonic() - asked_at >= self.lease * STALE_CLAIM_FRACTION:
                # The reply took so long (a stalled network, a frozen process) that the
                # leases may already have expired and the jobs been taken over: running
                # them now could run them twice at once. Hand them back (fenced).
                log.warning("claim of %d job(s) arrived %.1f s late; handing them back",
                            len(claimed), time.monotonic() - asked_at)
                with contextlib.suppress(Exception):
                    self._backend.release([Lease(job.id, job.token) for job in claimed])
                claimed = []
                continue
            if free > 0 or outcomes:
                if claimed:
                    self._guard.claimed((job.id for job in claimed), asked_at)
                for job in claimed:
                    self._ledger.hold(Lease(job.id, job.token))
                    with self._running_lock:
                        self._running[job.id] = job
                    self._pool.submit(job)
                    if self._pool.kills_jobs:  # its processes stop themselves
                        self._pool.set_deadline(job.id, self._guard.deadline(job.id))
                if claimed:
                    self._arm_hard_deadline()
                if len(claimed) == free:
                    continue
            with self._running_lock:
                idle = not self._running
            if (self.burst and not claimed and idle and self._ledger.pending() == 0
                    and not self._ledger.held()):  # every outcome written, retries included
                due = self._due_within_horizon()
                if due is None:
                    return
                # (never 0: a due job another worker is promoting must not make this spin)
                self._wake.wait(min(IDLE_RECHECK, max(0.005, due - time.time())))
                continue
            timeout = IDLE_RECHECK
            if free > 0 and not claimed:
                try:
                    due = self._backend.next_due()
                except Exception as exc:
                    if not is_unavailable(exc):
                        raise
                    due = None  # the next claim meets the outage, and retries it
                if due is not None:
                    timeout = min(timeout, max(0.0, due - time.time()))
            self._wake.wait(timeout)

    def _due_within_horizon(self) -> float | None:
        """When the next job of this worker's queues is due, if within the burst horizon."""
        try:
            due = self._backend.next_due(self.queues)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            return time.time() + IDLE_RECHECK  # cannot tell now: look again (the claim retries)
        if due is None or due - time.time() > self.burst_horizon:
            return None
        return due

    def _drain(self) -> list[ClaimedJob]:
        """Let running jobs finish within the grace period; hand the rest back untouched.
        Returns the jobs kept instead: an embedded worker's threads that still run them."""
        self._ledger.write_now()
        deadline = time.monotonic() + self.shutdown_timeout
        while not self._stop_now.is_set():
            with self._running_lock:
                if not self._running:
                    break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wake.wait(min(remaining, 0.1))
            self._wake.clear()
        with self._running_lock:
            unfinished = list(self._running.values())
            keep = bool(unfinished) and not self._pool.kills_jobs and not self.owns_process
            self._abandoning = not keep
        if keep:
            # Handing the jobs back would let another worker run them beside threads that
            # cannot be stopped in a process that goes on: keep them instead.
            self._pool.close(kill=False)
            log.warning("%d job(s) still running in threads that cannot be stopped: their "
                        "leases are kept and their outcomes written when they end: %s",
                        len(unfinished), [job.id for job in unfinished])
            return unfinished
        for job in unfinished:
            self._pool.request_cancel(job.id)  # a cooperative task stops at once
        self._pool.close(kill=bool(unfinished))
        if unfinished:
            leases = [Lease(job.id, job.token) for job in unfinished]
            not_before = 0.0
            if not self._pool.kills_jobs:
                # A thread (or a coroutine) cannot be killed: the job stays unclaimable for a
                # moment, time for this process (which exits after run() returns) to take the
                # thread along.
                not_before = time.time() + THREAD_HANDBACK_DELAY
                self.abandoned_threads = len(unfinished)
            released = self._backend.release(leases, not_before=not_before)
            for job in unfinished:
                self._ledger.forget(job.id)
                self._guard.finished(job.id)
            log.warning("handed back %d unfinished job(s): %s", released,
                        [job.id for job in unfinished])
        return []
