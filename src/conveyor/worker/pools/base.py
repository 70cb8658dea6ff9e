"""What every pool is: the Pool protocol, the callbacks it reports through, and the
outcomes all pools give a job they stopped or that broke them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ...backends.base import ClaimedJob
from ...job import Progress
from ...outcomes import Outcome
from ...policy import LEASE_NOT_RENEWED, Cause
from ...serializer import DEFAULT_MAX_PAYLOAD
from ..executor import TaskLookup, ended, error_from_exception

StartCallback = Callable[[ClaimedJob], None]
OutcomeCallback = Callable[[ClaimedJob, Outcome], None]
ProgressCallback = Callable[[ClaimedJob, Progress], None]


@dataclass(frozen=True, slots=True)
class Recycling:
    """When a process pool's process is replaced: after this many jobs, or once its peak
    RSS is over this many bytes (None: never)."""

    max_tasks: int | None = None
    max_memory: int | None = None


class InProcessPool:
    """What the pools that run jobs in this process (threads, an event loop) keep alike: the
    tasks, the limits on a result, and the callbacks to the worker."""

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
        self._on_outcome = on_outcome
        self._on_progress = on_progress
        self._on_start = on_start
        self._max_result_bytes = max_result_bytes
        self._prepare()

    def _prepare(self) -> None:
        """The pool's own state, made after the common part."""

    prefetches = False  # every submitted job starts at once (see Pool.prefetches)

    def take_unstarted(self) -> list[ClaimedJob]:
        return []


class Pool(Protocol):
    """Where claimed jobs run. The worker (or its dispatcher) does the bookkeeping: a pool only
    runs jobs and reports their start, progress and outcome through its callbacks."""

    kind: str
    # True when stop_job ends a job for certain (the process pool kills its process); False
    # when stopping is cooperative (a thread cannot be killed; a coroutine that blocks the
    # loop or swallows CancelledError cannot be stopped either).
    kills_jobs: bool
    # True when submitted jobs may wait for a free slot (the thread pool's inbox), so the
    # worker may claim more jobs than slots; False when each submitted job starts at once.
    prefetches: bool

    def start(self) -> None: ...

    def submit(self, job: ClaimedJob) -> None: ...

    def take_unstarted(self) -> list[ClaimedJob]:
        """Take back the submitted jobs that have not started (none where prefetches is
        False): the caller hands them back."""
        ...

    def request_cancel(self, job_id: int) -> None:
        """Someone asked to cancel the job: tell it (and stop it where the pool can)."""
        ...

    def stop_job(self, job_id: int) -> None:
        """Stop a job whose lease may be taken over (kill, cancel, or at least ask)."""
        ...

    def set_deadline(self, job_id: int, deadline: float | None) -> None:
        """The monotonic time by which the job must have stopped, whatever its worker does."""
        ...

    def close(self, *, kill: bool) -> None:
        """Stop taking jobs; with kill, give up the running ones (they are handed back)."""
        ...


def crash_outcome(job: ClaimedJob, tasks: TaskLookup, exc: BaseException,
                  started: float) -> Outcome:
    """Task code raised what is not an Exception, or the pool broke running the job."""
    return ended(job, tasks, Cause.CRASHED, error_from_exception(exc), started_at=started)


def stopped_outcome(job: ClaimedJob, tasks: TaskLookup, started: float) -> Outcome:
    """A job stopped for want of a lease is retried, like any interrupted attempt."""
    return ended(job, tasks, Cause.LEASE_LOST, LEASE_NOT_RENEWED, started_at=started)
