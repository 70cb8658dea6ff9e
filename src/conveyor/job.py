"""Jobs as data: states, stored records and the user's handle on one job."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from .errors import CorruptJob, JobCancelled, JobFailed, JobNotFound


class JobState(StrEnum):
    WAITING = "waiting"  # for its parents to end (a workflow's or depends_on's)
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


ACTIVE_STATES = frozenset({JobState.WAITING, JobState.SCHEDULED, JobState.QUEUED,
                           JobState.RUNNING})
TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


@dataclass(frozen=True, slots=True)
class Progress:
    done: float
    total: float | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class JobError:
    """What a failed attempt raised, as text: the exception itself stays in the worker."""

    type: str
    message: str
    traceback: str | None = None

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    job_id: int
    attempt: int
    worker: str | None
    started_at: float | None
    finished_at: float
    outcome: str
    error: JobError | None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One row of the jobs table. Arguments and result stay JSON text until read.

    A damaged row (edited by hand, or written by a bug) still makes a record: `corrupt` says
    what could not be read (a time that is not a number reads as NaN, a bad error column as a
    `CorruptRow` error), and reading `args`, `kwargs` or `result` raises CorruptJob when its
    text is not valid JSON of the right shape."""

    id: int
    task: str
    queue: str
    state: JobState
    priority: int
    args_json: str
    kwargs_json: str
    unique_key: str | None
    attempts: int
    max_attempts: int
    run_at: float
    enqueued_at: float
    started_at: float | None = None
    finished_at: float | None = None
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    cancel_requested: bool = False
    progress: Progress | None = None
    result_json: str | None = None
    error: JobError | None = None
    worker: str | None = None  # the worker that claimed the latest attempt
    schedule: str | None = None  # the schedule this job runs for, if any
    schedule_slot: float | None = None  # its slot (None for a run made by hand)
    workflow: int | None = None  # the workflow it is a member of, if any
    pending_parents: int = 0  # parents that have not ended yet (while waiting)
    corrupt: tuple[str, ...] = ()  # what in the stored row could not be read, if anything

    @property
    def args(self) -> list[Any]:
        value: list[Any] = self._decode("args", self.args_json, list)
        return value

    @property
    def kwargs(self) -> dict[str, Any]:
        value: dict[str, Any] = self._decode("kwargs", self.kwargs_json, dict)
        return value

    @property
    def result(self) -> Any:
        return None if self.result_json is None else self._decode("result", self.result_json)

    def _decode(self, column: str, text: Any, shape: type | None = None) -> Any:
        try:
            value = json.loads(text)
        except (ValueError, TypeError, RecursionError) as exc:
            raise CorruptJob(
                f"job {self.id}: the stored {column} is not valid JSON ({exc}): "
                f"{_preview(text)}"
            ) from None
        if shape is not None and not isinstance(value, shape):
            wanted = "an array" if shape is list else "an object"
            raise CorruptJob(
                f"job {self.id}: the stored {column} is not {wanted}: {_preview(text)}"
            )
        return value


def _preview(raw: Any, limit: int = 80) -> str:
    """A short, printable look at a stored value, for messages about a damaged row."""
    shown = repr(raw)  # escapes control characters and lone surrogates
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def same_job(known: JobRecord, current: JobRecord) -> bool:
    """Whether `current` (read by id) is still the job `known` was a record of.

    A job enqueued in a caller's transaction that was then rolled back leaves no trace, so on
    SQLite the next job enqueued can get its id; a handle on the first must not come to speak
    for the second. What never changes in a job's life tells them apart: its task and the
    microsecond it was enqueued at. A damaged row (a time that is no number) is given the
    benefit of the doubt: it shows as damaged, not as another job."""
    if known.id != current.id or known.task != current.task:
        return False
    times = (known.enqueued_at, current.enqueued_at)
    damaged = not all(isinstance(t, float | int) and math.isfinite(t) for t in times)
    return damaged or times[0] == times[1]


def poll_until(done: Callable[[], bool], timeout: float | None,
               still: Callable[[], str]) -> None:
    """Call `done` until it says so, 2 ms apart at first, then up to 100 ms; after `timeout`
    seconds (None: never) raise TimeoutError with the message `still()` gives."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = 0.002
    while not done():
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(still())
            pause = min(pause, remaining)
        time.sleep(pause)
        pause = min(pause * 1.5, 0.1)


class JobSource(Protocol):
    """What a Job handle needs from the app that made it."""

    def fetch_record(self, job_id: int) -> JobRecord | None: ...

    def cancel(self, job_id: int) -> JobState: ...


class StoredRecords(Protocol):
    """Records of a batch insert, made when asked for (records.StoredBatch)."""

    ids: list[int]

    def record(self, index: int) -> JobRecord: ...


class Job:
    """A handle on one stored job. Attributes show the state as of the last `refresh()`."""

    __slots__ = ("_batch", "_index", "_made", "_source")

    def __init__(self, record: JobRecord, source: JobSource) -> None:
        self._made: JobRecord | None = record
        self._batch: StoredRecords | None = None
        self._index = 0
        self._source = source

    @classmethod
    def stored(cls, batch: StoredRecords, index: int, source: JobSource) -> Job:
        """Job `index` of a batch insert: its record is made when first read (enqueue_many
        of many jobs whose handles are seldom read past their id)."""
        job = cls.__new__(cls)
        job._made, job._batch, job._index, job._source = None, batch, index, source
        return job

    @property
    def _record(self) -> JobRecord:
        made = self._made
        if made is None:  # (the batch stays: a thread reading this at once still finds it)
            assert self._batch is not None
            made = self._made = self._batch.record(self._index)
        return made

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.task} {self.state}>"

    @property
    def record(self) -> JobRecord:
        return self._record

    @property
    def id(self) -> int:
        if self._made is None and self._batch is not None:
            return self._batch.ids[self._index]
        return self._record.id

    @property
    def task(self) -> str:
        return self._record.task

    @property
    def queue(self) -> str:
        return self._record.queue

    @property
    def state(self) -> JobState:
        return self._record.state

    @property
    def priority(self) -> int:
        return self._record.priority

    @property
    def attempts(self) -> int:
        return self._record.attempts

    @property
    def max_attempts(self) -> int:
        return self._record.max_attempts

    @property
    def progress(self) -> Progress | None:
        return self._record.progress

    @property
    def error(self) -> JobError | None:
        return self._record.error

    @property
    def args(self) -> list[Any]:
        return self._record.args

    @property
    def schedule(self) -> str | None:
        """The schedule this job runs for (None for an ordinary job)."""
        return self._record.schedule

    @property
    def schedule_slot(self) -> datetime | None:
        """The slot it runs for, in UTC (None for an ordinary job or a run made by hand)."""
        slot = self._record.schedule_slot
        return None if slot is None else datetime.fromtimestamp(slot, UTC)

    @property
    def kwargs(self) -> dict[str, Any]:
        return self._record.kwargs

    def refresh(self) -> Job:
        """Read the job's current state. Raises JobNotFound when the job is gone, including
        when its id now names another job (see `same_job`)."""
        record = self._source.fetch_record(self.id)
        if record is None:
            raise JobNotFound(f"job {self.id} no longer exists (it was deleted or pruned)")
        if not same_job(self._record, record):
            raise JobNotFound(
                f"job {self.id} no longer exists: the transaction that enqueued it was rolled "
                f"back, and id {self.id} now names another job ({record.task}, enqueued later)"
            )
        self._made, self._batch = record, None
        return self

    def ready(self) -> bool:
        """Refresh, and say whether the job has ended (succeeded, failed or cancelled)."""
        return self.refresh().state.is_terminal

    def successful(self) -> bool:
        """Refresh, and say whether the job succeeded."""
        return self.refresh().state is JobState.SUCCEEDED

    def failed(self) -> bool:
        """Refresh, and say whether the job failed (a cancelled job did not fail)."""
        return self.refresh().state is JobState.FAILED

    def cancel(self) -> JobState:
        """Cancel now if waiting; ask a running job to stop. Returns the state after the call."""
        self.refresh()  # never cancel another job that took over this one's id
        self._source.cancel(self.id)
        return self.refresh().state

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job to end and return its result.

        Raises JobFailed, JobCancelled, or TimeoutError when `timeout` seconds pass first.
        """
        poll_until(lambda: self.refresh().state.is_terminal, timeout,
                   lambda: f"job {self.id} is still {self.state} after {timeout} s")
        if self.state is JobState.SUCCEEDED:
            return self._record.result
        if self.state is JobState.CANCELLED:
            raise JobCancelled(f"job {self.id} was cancelled", job_id=self.id)
        error = self._record.error or JobError("UnknownError", "no error was recorded")
        raise JobFailed(self.id, error.type, error.message, error.traceback)
