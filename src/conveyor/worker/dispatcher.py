"""The dispatcher: the claim loop, the one record of a worker's jobs, the one writer of their
outcomes and progress.

Each round is one transaction (`backend.ack_and_claim`): the progress and outcomes that
arrived since the last round, then a claim. A pool thread hands an outcome over and wakes the
loop only when a claim is worth a round (`_low`), so an idle worker writes it at once and a
busy one carries many in the transaction of its next claim (an outcome waits at most
OUTCOME_LINGER). Progress alone is written at most every PROGRESS_INTERVAL. Being the only
writer keeps a job's last progress ahead of its outcome without a lock shared with anyone.

Prefetch: where the pool lets claimed jobs wait for a slot (the thread pool), a worker holds
up to `concurrency + prefetch` jobs, and claims again once half the prefetch is free, so short
jobs are claimed in big rounds and a thread that finishes one takes the next from the pool's
inbox. `prefetch=None` (auto) sizes it from the jobs' observed durations, so that a prefetched
job waits about PREFETCH_WAIT for a thread, and holds back long jobs: a task is short once its
jobs have taken less than PREFETCH_WAIT * concurrency on average here. Only jobs of short tasks
are held beyond the free threads: any other job a claim brings beyond them is handed back at
once (it keeps its place in its queue, its attempt not counted), and while one runs, the worker
claims no more than it has threads. So a worker never hoards long jobs while another idles,
whatever ran before. A fixed `prefetch=N` holds N more whatever the tasks.
A prefetched job holds its lease like a running one (the heartbeat renews it); on a stop it is
handed back before it starts, its attempt not counted (`take_back_unstarted`); after a kill -9
it is rescued like a running one, its attempt counted (the database cannot tell them apart:
telling it when each job starts would cost a write per job).

The record: the jobs running in the pool (`_running`, job id -> the claimed job, whose token
is its lease) and the outcomes not yet written (`_outcomes`, then `_writing` while a round
writes them). This worker holds the lease of each until its outcome is written; the heartbeat
renews `held()`. A job whose lease was lost is marked in `_lost` and no longer vouched for.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from ..backends.base import Backend, ClaimedJob, ClaimPlan, Lease, ProgressUpdate
from ..backends.unavailable import is_unavailable
from ..backends.wakeups import Subscription
from ..fairshare import FairShare
from ..job import JobError, Progress
from ..outcomes import Failed, Outcome
from ..serializer import clip_text, storable_text
from .joblog import JobLogWriter
from .lease_guard import HardDeadline, LeaseGuard
from .loops import FailureBudget
from .pools import Pool

log = logging.getLogger("conveyor.worker")

IDLE_RECHECK = 1.0  # seconds between claims when nothing wakes an idle worker
# A burst worker waits for its queues' jobs due within this many seconds (retries waiting
# on their backoff, short delays) before it exits.
BURST_HORIZON = 60.0
# A claim whose reply took this share of the lease is not run (see _round).
STALE_CLAIM_FRACTION = 0.5
PROGRESS_INTERVAL = 0.05  # progress alone is written at most this often
ISOLATED_TRIES = 3  # a lone outcome refused this many times in a row is unstorable
FLUSH_TIMEOUT = 30.0  # seconds a stopping worker goes on trying to write what is left
# Seconds between reads of the queues' settings, for which of them are LIFO (a pause needs no
# read: it is a condition of the claim statement).
SETTINGS_REFRESH = 5.0
# How long a finished job's outcome may wait for the next round while the worker is busy.
OUTCOME_LINGER = 0.02
# Auto prefetch: about this long a prefetched job waits for a thread; the jobs held, at most
# the backend's round_size.
PREFETCH_WAIT = 0.01
DURATION_WEIGHT = 0.1  # of each ended job in the moving mean of job durations


def unstorable(outcome: Outcome, exc: BaseException) -> Failed:
    """The outcome to store instead of one the database refused."""
    reason = clip_text(storable_text(f"{type(exc).__name__}: {exc}"), 4096)
    return Failed(outcome.job_id, outcome.token, outcome.attempt, outcome.started_at,
                  outcome.finished_at, JobError(
                      "OutcomeNotStorable",
                      f"the database refused this job's {outcome.kind} outcome: {reason}"))


class Dispatcher:
    """Claims jobs into the pool and writes what becomes of them (see the module's doc).

    `run()` is the claim loop, until `stopping` is set; `finish_running()` then writes
    outcomes, claiming nothing, while running jobs end; `flush()` writes what is left.
    All three run in one thread at a time (the worker's, or its keeper's), so there is one
    writer. The pool's threads only call `on_outcome` and `on_progress`.
    """

    def __init__(
        self,
        backend: Backend,
        name: str,
        queues: Sequence[str],
        concurrency: int,
        lease: float,
        *,
        stopping: threading.Event,
        on_death: Callable[[str, BaseException], None],
        guard: LeaseGuard | None = None,
        joblog: JobLogWriter | None = None,
        burst: bool = False,
        burst_horizon: float = BURST_HORIZON,
        weights: Mapping[str, int] | None = None,
        prefetch: int | None = None,
    ) -> None:
        self.backend = backend
        self.name = name
        self.queues = tuple(queues)
        self.concurrency = concurrency
        self.lease = lease
        self.burst = burst
        self.burst_horizon = burst_horizon
        self.guard = guard if guard is not None else LeaseGuard(lease, lambda: False)
        self.joblog = joblog if joblog is not None else JobLogWriter()
        self.prefetch = prefetch  # None: auto (see the module's doc)
        self.pool: Pool | None = None  # set by use(); the dispatcher submits to it
        self.hard: HardDeadline | None = None  # armed as jobs start and end, if set
        self._stopping = stopping
        self._on_death = on_death
        self._wake = threading.Event()
        self._wakeups: Subscription | None = None  # set by listen()
        self._written_unsure: set[int] = set()  # outcomes a round that failed may have written
        self._lock = threading.Lock()
        self._running: dict[int, ClaimedJob] = {}
        self._outcomes: list[Outcome] = []
        self._writing: list[Outcome] = []  # taken by the round in progress, leases still held
        self._progress: dict[int, ProgressUpdate] = {}
        self._lost: dict[int, int] = {}  # job id -> token of a lease no longer vouched for
        self._last_progress_write = 0.0
        self._budget = FailureBudget()
        self._last_error: BaseException = RuntimeError("no failure yet")
        self._dead = False  # on_death was called
        self._fair = FairShare(weights) if weights else None
        self._lifo: frozenset[str] = frozenset()  # of this worker's queues, as last read
        self._capped: frozenset[str] = frozenset()  # its queues with a concurrency limit
        self._limited = False  # some task has limits (as last read)
        self._settings_read = -math.inf
        self._prefetches = False  # the pool lets claimed jobs wait (set by use())
        self._round_size = 0  # the backend's, set by use()
        self._mean_duration: float | None = None  # moving mean of ended jobs, seconds
        self._task_mean: dict[str, float] = {}  # the same, per task
        self._long: set[int] = set()  # held jobs of tasks not (yet) known to be short
        self._held_back = False  # a claim handed such jobs back: no prefetch until one runs
        self._capacity = concurrency  # jobs held at most: concurrency + prefetch
        self._low = concurrency - 1  # held jobs at or below which a claim is worth a round
        self._outcomes_since = 0.0  # monotonic: when the oldest unwritten outcome arrived
        self.processed = 0
        self.written = 0
        self.rejected = 0

    def use(self, pool: Pool) -> None:
        self.pool = pool
        self._prefetches = pool.prefetches
        self._round_size = self.backend.round_size
        self._size_prefetch()

    def wake(self) -> None:
        """Look for work now (thread-safe; the backend's notifications call this)."""
        self._wake.set()

    def listen(self) -> None:
        """Be woken by the backend when new work may have arrived, until `unlisten`."""
        self._wakeups = self.backend.subscribe(self.wake)

    def unlisten(self) -> None:
        if self._wakeups is not None:
            self._wakeups.cancel()
            self._wakeups = None

    # -- called from pool threads -------------------------------------------------------

    def on_outcome(self, job: ClaimedJob, outcome: Outcome) -> None:
        # Before the outcome can be written: the next round may write it and claim the same
        # job's next attempt at once, which the guard must then track afresh.
        self.guard.finished(job.id)
        duration = outcome.finished_at - outcome.started_at
        with self._lock:
            running = self._running
            kept = running.pop(job.id, None) is not None
            first = False
            if kept:  # else handed back while it ran: its outcome is not ours to write
                if not self._outcomes:
                    self._outcomes_since = time.monotonic()
                    first = True  # the loop must know, to write it within OUTCOME_LINGER
                self._outcomes.append(outcome)
                self.processed += 1
                mean = self._mean_duration
                self._mean_duration = (duration if mean is None
                                       else mean + (duration - mean) * DURATION_WEIGHT)
                mean = self._task_mean.get(job.task)
                self._task_mean[job.task] = (duration if mean is None
                                             else mean + (duration - mean) * DURATION_WEIGHT)
                if self._long:
                    self._long.discard(job.id)
            left = len(running)
        if kept:
            self.joblog.ended(job, outcome)
        if self.hard is not None and not left:
            # (A job's end never brings the earliest deadline closer: the lease-guard duty
            # moves a later one; only a worker with nothing left is disarmed here.)
            self.hard.arm(None)
        if (left <= self._low or first) and not self._wake.is_set():
            self._wake.set()

    def on_progress(self, job: ClaimedJob, progress: Progress) -> None:
        with self._lock:
            first = not self._progress
            self._progress[job.id] = ProgressUpdate(Lease(job.id, job.token), progress)
        if first:
            self._wake.set()

    # -- the record, for the duties and the worker --------------------------------------

    def held(self) -> list[Lease]:
        """The leases this worker holds: running jobs, and finished ones not yet written."""
        with self._lock:
            lost = self._lost
            leases = [Lease(job.id, job.token) for job in self._running.values()
                      if lost.get(job.id) != job.token]
            leases += [Lease(o.job_id, o.token) for o in (*self._writing, *self._outcomes)
                       if lost.get(o.job_id) != o.token]
        return leases

    def running(self) -> int:
        """How many jobs run in the pool."""
        return len(self._running)

    def running_ids(self) -> list[int]:
        with self._lock:
            return list(self._running)

    def running_jobs(self) -> list[ClaimedJob]:
        with self._lock:
            return list(self._running.values())

    def pending(self) -> int:
        """Outcomes not yet written."""
        with self._lock:
            return len(self._outcomes) + len(self._writing)

    def lose(self, job_id: int, token: int) -> bool:
        """The lease `token` of the job is lost (another worker may run it now): stop
        vouching for it. True when the attempt under that token still runs here (the caller
        stops it); False when it ended, or this worker already runs (or is about to start)
        the job's next attempt, which must not be stopped."""
        with self._lock:
            current = self._running.get(job_id)
            if current is not None and current.token != token:
                return False
            self._lost[job_id] = token
            update = self._progress.get(job_id)
            if update is not None and update.lease.token == token:
                del self._progress[job_id]
        return current is not None

    def abandon_running(self) -> list[ClaimedJob]:
        """Take the running jobs out of the record (their outcomes, should they still come,
        are dropped) for the caller to hand back."""
        with self._lock:
            jobs = list(self._running.values())
            self._running.clear()
            for job in jobs:
                self._progress.pop(job.id, None)
                self._lost.pop(job.id, None)
            self._long.clear()
        for job in jobs:
            self.guard.finished(job.id)
        return jobs

    def take_back_unstarted(self) -> list[ClaimedJob]:
        """Take the jobs waiting in the pool, not started, out of the pool and the record
        (for the caller to hand back)."""
        pool = self.pool
        jobs = pool.take_unstarted() if pool is not None else []
        if jobs:
            with self._lock:
                for job in jobs:
                    self._running.pop(job.id, None)
                    self._progress.pop(job.id, None)
                    self._long.discard(job.id)
            for job in jobs:
                self.guard.finished(job.id)
        return jobs

    def hand_back(self, jobs: Sequence[ClaimedJob], *, not_before: float = 0.0) -> int:
        """Release abandoned jobs (fenced by their lease tokens)."""
        return self.backend.release([Lease(job.id, job.token) for job in jobs],
                                    not_before=not_before)

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        """Claim and write until `stopping` is set, or (burst) nothing is left to do."""
        pool = self.pool
        assert pool is not None, "use(pool) first"
        while not self._stopping.is_set():
            self._wake.clear()
            self._size_prefetch()
            held = len(self._running)
            threads_free = self.concurrency - held
            free = self._claim_size(held)
            if free == 0 and not self._write_due():
                # Busy, and a claim not yet worth a round: outcomes wait for the next one.
                self._mark_busy(True)
                self._wake.wait(self._linger_wait())
                continue
            claimed, asked_at = self._round(free)
            if claimed is None:  # the round failed
                if self._budget_spent("claiming"):
                    return
                self._stopping.wait(self._budget.pause())
                continue
            if claimed:
                if time.monotonic() - asked_at >= self.lease * STALE_CLAIM_FRACTION:
                    self._hand_back_stale(claimed, asked_at)
                    continue
                if self._prefetches and self.prefetch is None:
                    claimed = self._hold_back_long(claimed, max(0, threads_free))
                self._start(pool, claimed, asked_at)
                # A LIFO queue gives one priority per round, and a limited claim reads a few
                # keys per round, perhaps fewer than were free: claim again at once rather
                # than wait while jobs remain.
                if len(claimed) == free or self._lifo or any(job.limited for job in claimed):
                    continue
            if self.burst and not claimed and not self._running and not self._outcomes:
                # Every outcome written, retries included: wait only for what is due soon.
                due = self._due_within_horizon()
                if due is None:
                    return
                # (never 0: a due job another worker is promoting must not make this spin)
                self._mark_busy(False)
                self._wake.wait(min(IDLE_RECHECK, max(0.005, due - time.time())))
                continue
            timeout = IDLE_RECHECK
            if free > 0 and not claimed:
                try:
                    due = self.backend.next_due()
                except Exception as exc:
                    if not is_unavailable(exc):
                        raise
                    due = None  # the next claim meets the outage, and retries it
                if due is not None:
                    timeout = min(timeout, max(0.0, due - time.time()))
            if self._progress or self._outcomes:
                timeout = min(timeout, self._linger_wait())
            self._mark_busy(free == 0)
            self._wake.wait(timeout)

    def finish_running(self, until: float, stop_now: threading.Event) -> None:
        """Claim nothing more; write outcomes as running jobs end, until none runs, the
        monotonic time `until` passes, or `stop_now` is set."""
        while not stop_now.is_set():
            self._wake.clear()
            claimed, _ = self._round(0)
            if claimed is None:
                self._budget_spent("writing outcomes")  # spent: on_death sets stop_now
            with self._lock:
                if not self._running:
                    break
            remaining = until - time.monotonic()
            if remaining <= 0:
                break
            wait = min(remaining, 0.1)
            if claimed is None:
                wait = min(remaining, self._budget.pause())
            elif self._progress:
                wait = min(wait, self._progress_wait())
            self._wake.wait(wait)

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Write what is left (the worker is stopping), retrying a failing database until
        the failure budget is spent or `timeout` passes; what is not written stays held."""
        self._budget = FailureBudget()
        deadline = time.monotonic() + timeout
        while self._outcomes or self._progress:
            claimed, _ = self._round(0, progress_now=True)
            if claimed is not None:
                continue
            spent = self._budget.failed(self._last_error)
            self._budget.log_failure(f"writing {self.pending()} outcome(s)", self._last_error)
            if spent or time.monotonic() >= deadline:
                return
            time.sleep(min(self._budget.pause(), max(0.0, deadline - time.monotonic())))

    # -- one round ----------------------------------------------------------------------

    def _round(self, free: int, *, progress_now: bool = False
               ) -> tuple[list[ClaimedJob] | None, float]:
        """One transaction: pending progress and outcomes, and a claim of up to `free` jobs.
        Returns (claimed, when the claim was asked); claimed is None when the round failed
        (what it carried is pending again, `_last_error` says why)."""
        outcomes: Sequence[Outcome] = ()
        with self._lock:
            if self._outcomes:
                outcomes = self._writing = self._outcomes
                self._outcomes = []
            progress: Sequence[ProgressUpdate] = ()
            if self._progress and (outcomes or progress_now or self._progress_wait() == 0.0):
                progress = list(self._progress.values())
                self._progress.clear()
        asked_at = time.monotonic()
        if free <= 0 and not outcomes and not progress:
            return [], asked_at
        plan = self._plan() if free > 0 else None
        try:
            accepted, claimed = self.backend.ack_and_claim(
                outcomes, self.name, self.queues, free, self.lease, progress, plan)
        except Exception as exc:
            self._last_error = exc
            if is_unavailable(exc):  # (a server may have committed, its reply then lost)
                self._written_unsure.update(outcome.job_id for outcome in outcomes)
            elif outcomes or progress:
                # Maybe one unwritable value: each job's outcome on its own.
                outcomes, progress = self._write_isolated(outcomes, progress)
            self._put_back(outcomes, progress)
            return None, asked_at
        self._budget.succeeded()
        if self._fair is not None and free > 0:
            counts: dict[str, int] = {}
            for job in claimed:
                counts[job.queue] = counts.get(job.queue, 0) + 1
            self._fair.claimed(counts, free)
        if progress:
            self._last_progress_write = time.monotonic()
        if outcomes:
            self._settle(outcomes, accepted)
            with self._lock:
                self._writing = []
        return claimed, asked_at

    def _plan(self) -> ClaimPlan | None:
        """How to claim: None (priority, then FIFO: the plain claim) unless some of this
        worker's queues are LIFO or capped, or some task has limits (read every
        SETTINGS_REFRESH), or queues are weighted."""
        if time.monotonic() - self._settings_read >= SETTINGS_REFRESH:
            self._settings_read = time.monotonic()
            try:
                settings = self.backend.inspector.queue_settings()
                # Jobs with a limit key are claimed under limits even when no task has them
                # any more (a retry, or an old enqueuer, after the limits were removed).
                limited = (bool(self.backend.inspector.limited_tasks())
                           or self.backend.inspector.limited_jobs_waiting())
            except Exception as exc:  # keep what was read last; the claim meets any outage
                if not is_unavailable(exc):
                    log.warning("could not read the queues' settings and limits (they are "
                                "applied as last read): %s", exc)
            else:
                mine = set(self.queues)
                self._lifo = frozenset(s.name for s in settings if s.lifo) & mine
                self._capped = frozenset(s.name for s in settings if s.concurrency) & mine
                self._limited = limited
        if self._fair is None and not (self._lifo or self._capped or self._limited):
            return None
        if self._fair is None:
            return ClaimPlan(lifo=self._lifo, limited=self._limited, capped=self._capped)
        return ClaimPlan(lifo=self._lifo, weights=self._fair.weights,
                         starts=self._fair.starts(), limited=self._limited,
                         capped=self._capped)

    def _budget_spent(self, what: str) -> bool:
        """Count the last round's failure; True (after calling on_death) once the budget
        is spent."""
        exc = self._last_error
        spent = self._budget.failed(exc)
        self._budget.log_failure(what, exc)
        if spent and not self._dead:
            self._dead = True
            self._on_death("claim" if what == "claiming" else "ack", exc)
        return spent

    def _size_prefetch(self) -> None:
        """How many jobs to hold beyond the slots, and when to claim again."""
        prefetch = self.prefetch
        if not self._prefetches:
            prefetch = 0
        elif prefetch is None:
            mean = self._mean_duration
            prefetch = 0 if mean is None or self._long or self._held_back else min(
                self._round_size, int(self.concurrency * PREFETCH_WAIT / max(mean, 1e-6)))
        self._capacity = self.concurrency + prefetch
        self._low = self._capacity - max(1, (prefetch + 1) // 2)

    def _is_short(self, task: str) -> bool:
        mean = self._task_mean.get(task)
        return mean is not None and mean < self.concurrency * PREFETCH_WAIT

    def _hold_back_long(self, claimed: list[ClaimedJob], threads_free: int
                        ) -> list[ClaimedJob]:
        """Of the jobs claimed beyond the free threads, keep those of short tasks and hand
        the others back at once (see the module's doc)."""
        if len(claimed) <= threads_free:  # each has a thread
            self._held_back = False
            return claimed
        keep = claimed[:threads_free]
        back: list[ClaimedJob] = []
        for job in claimed[threads_free:]:
            (keep if self._is_short(job.task) else back).append(job)
        if back:
            # They keep their place: claim no more than the free threads until a thread is
            # free to take one, or this worker would claim and hand them back again at once.
            self._held_back = True
            try:
                self.backend.release([Lease(job.id, job.token) for job in back])
            except Exception as exc:  # they wait for their leases to lapse, then run
                log.warning("could not hand back %d job(s) claimed beyond the free threads "
                            "(%s): they run once their lease expires", len(back), exc)
        elif threads_free > 0:
            self._held_back = False
        return keep

    def _mark_busy(self, busy: bool) -> None:
        """Tell the backend's watch, as the loop goes to wait, whether it waits for new work
        (not busy) or for its own jobs to end (busy): the watch polls slower while no
        subscriber waits for new work. Awake, the loop claims without being told: a busy
        worker stays busy from round to round, rather than making the watch poll, and wake
        it, once a round."""
        if self._wakeups is not None:
            self._wakeups.busy(busy)

    def _claim_size(self, held: int) -> int:
        """How many jobs to claim now, `held` being held: 0 while every slot is busy and too
        few are free."""
        if held > self._low and held >= self.concurrency:
            return 0
        return max(0, self._capacity - held)

    def _write_due(self) -> bool:
        if self._outcomes and time.monotonic() - self._outcomes_since >= OUTCOME_LINGER:
            return True
        return bool(self._progress) and self._progress_wait() == 0.0

    def _linger_wait(self) -> float:
        wait = IDLE_RECHECK
        if self._outcomes:
            wait = max(0.0, self._outcomes_since + OUTCOME_LINGER - time.monotonic())
        if self._progress:
            wait = min(wait, self._progress_wait())
        return wait

    def _progress_wait(self) -> float:
        return max(0.0, self._last_progress_write + PROGRESS_INTERVAL - time.monotonic())

    def _start(self, pool: Pool, claimed: list[ClaimedJob], asked_at: float) -> None:
        self.guard.claimed((job.id for job in claimed), asked_at)
        watch_long = self._prefetches and self.prefetch is None
        short: dict[str, bool] = {}  # per task, for this round
        with self._lock:
            for job in claimed:
                self._running[job.id] = job
                if watch_long:
                    is_short = short.get(job.task)
                    if is_short is None:
                        is_short = short[job.task] = self._is_short(job.task)
                    if not is_short:
                        self._long.add(job.id)
        for job in claimed:
            pool.submit(job)
            if pool.kills_jobs:  # its processes stop themselves
                pool.set_deadline(job.id, self.guard.deadline(job.id))
        if self.hard is not None:
            self.hard.arm(self.guard.earliest_deadline())

    def _hand_back_stale(self, claimed: list[ClaimedJob], asked_at: float) -> None:
        """The reply took so long (a stalled network, a frozen process) that the leases may
        already have expired and the jobs been taken over: running them now could run them
        twice at once. Hand them back (fenced)."""
        log.warning("claim of %d job(s) arrived %.1f s late; handing them back",
                    len(claimed), time.monotonic() - asked_at)
        with contextlib.suppress(Exception):
            self.backend.release([Lease(job.id, job.token) for job in claimed])

    def _put_back(self, outcomes: Sequence[Outcome], progress: Sequence[ProgressUpdate]
                  ) -> None:
        with self._lock:
            self._outcomes[:0] = outcomes
            self._writing = []
            for update in progress:
                self._progress.setdefault(update.lease.job_id, update)

    def _settle(self, outcomes: Sequence[Outcome], accepted: list[bool]) -> None:
        """`outcomes` were written; `accepted[i]` is False where refused (lease lost)."""
        if self._lost:  # rare: a lease lost while its job ran
            with self._lock:
                for outcome in outcomes:
                    if self._lost.get(outcome.job_id) == outcome.token:
                        del self._lost[outcome.job_id]
        written = 0
        unsure = self._written_unsure
        for outcome, ok in zip(outcomes, accepted, strict=True):
            if ok:
                written += 1
            elif outcome.job_id in unsure:
                self.rejected += 1
                log.warning(
                    "job %s: outcome %r not written again: the job no longer runs under this "
                    "worker's lease (most likely the round whose reply was lost wrote it; "
                    "else its lease expired and another worker took it)", outcome.job_id,
                    outcome.kind)
            else:
                self.rejected += 1
                log.warning(
                    "job %s: outcome %r rejected: this worker no longer holds its lease "
                    "(it expired and another worker took the job)", outcome.job_id,
                    outcome.kind)
        if unsure:
            unsure.difference_update(outcome.job_id for outcome in outcomes)
        self.written += written

    def _write_isolated(
        self, outcomes: Sequence[Outcome], progress: Sequence[ProgressUpdate]
    ) -> tuple[Sequence[Outcome], Sequence[ProgressUpdate]]:
        """Write each progress update and outcome on its own, so one value the database
        refuses fails its own job and no other. An outcome that fails alone, again and again,
        is replaced by a plain failure that says why; if even that is refused, the database
        refuses everything (not this job's fault) and the rest is returned for the caller to
        retry, as when the database becomes unavailable on the way."""
        for index, update in enumerate(progress):
            try:
                self.backend.save_progress([update])
            except Exception as exc:
                if is_unavailable(exc):
                    return outcomes, progress[index:]
                log.error("job %s: progress dropped, the database refused it: %s",
                          update.lease.job_id, exc)
        for index, outcome in enumerate(outcomes):
            try:
                accepted = self._ack_alone(outcome)
            except Exception as exc:
                if is_unavailable(exc):
                    return outcomes[index:], []
                log.error("job %s: the database refuses its %s outcome: %s", outcome.job_id,
                          outcome.kind, exc)
                replacement = unstorable(outcome, exc)
                try:
                    accepted = self.backend.ack_many([replacement], self.name)
                except Exception:
                    return outcomes[index:], []
                outcome = replacement
            self._settle([outcome], accepted)
        return [], []

    def _ack_alone(self, outcome: Outcome) -> list[bool]:
        """Ack one outcome, trying ISOLATED_TRIES times: a refusal that is the value's own
        comes back every time, a passing fault does not."""
        for attempt in range(ISOLATED_TRIES):
            try:
                return self.backend.ack_many([outcome], self.name)
            except Exception as exc:
                if is_unavailable(exc) or attempt == ISOLATED_TRIES - 1:
                    raise
                time.sleep(0.05 * 2 ** attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _due_within_horizon(self) -> float | None:
        """When the next job of this worker's queues is due, if within the burst horizon."""
        try:
            due = self.backend.next_due(self.queues)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            return time.time() + IDLE_RECHECK  # cannot tell now: look again (the claim retries)
        if due is None or due - time.time() > self.burst_horizon:
            return None
        return due

