"""The storage contract: a Backend shaped like a job's life, and a read-only Inspector."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..job import AttemptRecord, JobRecord, JobState, Progress
from ..lease_watch import ObservedLease
from ..outcomes import Outcome


@dataclass(frozen=True, slots=True)
class NewJob:
    """A validated job ready to store; arguments already JSON-encoded."""

    task: str
    queue: str
    args_json: str
    kwargs_json: str
    priority: int = 0
    max_attempts: int = 3
    unique_key: str | None = None
    run_at: float | None = None  # absolute (epoch seconds); None: now
    delay: float | None = None  # seconds after the database's now (wins over run_at)
    backoff: float | None = None  # this job's own retry backoff; None: the task's
    timeout: float | None = None  # this job's own timeout (inf: none); None: the task's
    # Which of queue, priority, max_attempts the caller left to the task: for a task the
    # enqueuing process does not know, the app takes them from the registered task, if any.
    defaulted: frozenset[str] = frozenset()

    def due(self, now: float) -> float:
        """When the job may run, by the storing database's clock `now`."""
        if self.delay:
            return now + self.delay
        return now if self.run_at is None else self.run_at


@dataclass(frozen=True, slots=True)
class Location:
    """Where a backend keeps its data, without secrets: what a worker logs at start and
    `conveyor status` shows, so a process pointed at the wrong database is easy to spot."""

    dialect: str
    text: str  # one line for people: an absolute path, or postgresql://user@host:port/db ...
    details: Mapping[str, Any]  # JSON-ready: {"path"} or {"host", "port", "database", ...}

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A task as a worker registers it in the database: the defaults an enqueue by name
    takes in a process that does not know the task."""

    name: str
    queue: str
    priority: int
    max_attempts: int


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    record: JobRecord
    created: bool  # False: a job holding the same unique key was returned instead


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: int
    task: str
    queue: str
    priority: int
    args_json: str
    kwargs_json: str
    attempt: int
    max_attempts: int
    token: int
    run_at: float
    enqueued_at: float
    cancel_requested: bool
    backoff: float | None = None  # the job's own (task.options); None: the task's
    timeout: float | None = None  # the job's own (inf: no limit); None: the task's


@dataclass(frozen=True, slots=True)
class Lease:
    job_id: int
    token: int


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    name: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    pool: str


@dataclass(frozen=True, slots=True)
class HeartbeatReply:
    cancel_requested: frozenset[int] = frozenset()
    lost: frozenset[int] = frozenset()  # jobs whose lease this worker no longer holds
    stop_requested: bool = False


@dataclass(frozen=True, slots=True)
class ProgressUpdate:
    lease: Lease
    progress: Progress


@dataclass(frozen=True, slots=True)
class WorkerRecord(WorkerInfo):
    """A worker as the workers table shows it."""

    started_at: float
    heartbeat_at: float
    busy: int
    stop_requested: bool


@dataclass(frozen=True, slots=True)
class RescueReport:
    requeued: tuple[int, ...] = field(default_factory=tuple)
    failed: tuple[int, ...] = field(default_factory=tuple)
    cancelled: tuple[int, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class RetryReport:
    """What `retry` did: the jobs queued again, and those left as they were because another
    waiting or running job holds their unique key (job id -> that job)."""

    retried: tuple[int, ...] = ()
    held: Mapping[int, JobRecord] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    counts: dict[JobState, int]
    oldest_queued_at: float | None  # since when the longest-waiting runnable job could run
    finished_recently: int  # jobs that ended within the stats window


class Inspector(Protocol):
    """Read-only views for the app, the CLI and the dashboard."""

    def get(self, job_id: int) -> JobRecord | None: ...

    def list_jobs(
        self,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 100,
    ) -> list[JobRecord]: ...

    def count_by_state(self) -> dict[str, dict[JobState, int]]: ...

    def attempts(self, job_id: int) -> list[AttemptRecord]: ...

    def workers(self) -> list[WorkerRecord]: ...

    def queue_stats(self, window: float = 60.0) -> list[QueueStats]: ...

    def runnable_queues(self) -> list[str]:
        """Queues holding a job that could run now (queued, or scheduled and due)."""
        ...

    def by_unique_key(self, unique_key: str) -> JobRecord | None:
        """The waiting or running job holding the key, else the latest job that had it."""
        ...

    def registered_tasks(self, names: Sequence[str]) -> dict[str, TaskInfo]:
        """Those of `names` a worker registered (one indexed read)."""
        ...

    def schema_version(self) -> int: ...


class Backend(Protocol):
    """Every write about a job; every worker write names its lease token."""

    dialect: str  # the folder of its SQL files: "sqlite", "postgresql"

    @property
    def inspector(self) -> Inspector: ...

    @property
    def location(self) -> Location: ...

    def migrate(self) -> int: ...

    def schema_version(self) -> int: ...

    def enqueue_many(
        self, jobs: Sequence[NewJob], *, connection: Any = None
    ) -> list[EnqueueResult]:
        """Store jobs in one transaction; with `connection`, inside the caller's own open
        transaction on that connection (the jobs exist if and only if the caller commits)."""
        ...

    def claim(
        self, owner: str, queues: Sequence[str], limit: int, lease: float
    ) -> list[ClaimedJob]: ...

    def ack_and_claim(
        self,
        outcomes: Sequence[Outcome],
        owner: str,
        queues: Sequence[str],
        limit: int,
        lease: float,
        progress: Sequence[ProgressUpdate] = (),
    ) -> tuple[list[bool], list[ClaimedJob]]:
        """`save_progress`, `ack_many` then `claim`, in one transaction."""
        ...

    def next_due(self, queues: Sequence[str] | None = None) -> float | None:
        """When the next scheduled job (of `queues`, if given) is due, by this host's clock."""
        ...

    def heartbeat(
        self, worker: WorkerInfo, leases: Sequence[Lease], lease: float, busy: int
    ) -> HeartbeatReply: ...

    def cancels_requested(self, job_ids: Sequence[int]) -> set[int]:
        """Which of these running jobs someone asked to cancel (a read, no lock)."""
        ...

    def save_progress(self, updates: Sequence[ProgressUpdate]) -> None: ...

    def ack_many(self, outcomes: Sequence[Outcome], worker: str) -> list[bool]: ...

    def release(self, leases: Sequence[Lease], *, not_before: float = 0.0) -> int:
        """Hand jobs back without counting the attempt; claimable again from `not_before`."""
        ...

    def observe_leases(self) -> list[ObservedLease]:
        """Every running job's lease, read so that seeing it proves it was writable (inside a
        write transaction, or with the rows locked): the rescuer's evidence."""
        ...

    def rescue(self, leases: Sequence[ObservedLease]) -> RescueReport:
        """Take back jobs whose lease is still exactly as observed (same token, no renewal
        since); the lost attempt counts. Any other job is left alone."""
        ...

    def renewal_blocked(self) -> bool:
        """Whether this process's writes are waiting right now for a lock another session
        holds on the whole jobs table (SQLite: the file's write lock; PostgreSQL: a table
        lock): nobody else can take a job back meanwhile either."""
        ...

    def cancel(self, job_id: int) -> JobState | None: ...

    def prune(self, older_than: float) -> int: ...

    def retry(self, job_ids: Sequence[int]) -> RetryReport:
        """Queue failed or cancelled jobs again with fresh attempts. A job whose unique key
        another active job holds is skipped (and named in the report); the others still are."""
        ...

    def delete(self, job_ids: Sequence[int]) -> list[int]:
        """Delete jobs that are not running; returns those deleted."""
        ...

    def purge(self, queue: str, state: JobState | None, *, dry_run: bool = False) -> int: ...

    def request_worker_stop(self, name: str | None) -> int: ...

    def register_worker(self, worker: WorkerInfo, *, takeover_after: float = ...,
                        gone: WorkerRecord | None = None) -> WorkerRecord | None:
        """Register `worker` under its name, unless another worker holds the name and is not
        gone (its heartbeat younger than `takeover_after` seconds, and its row not exactly
        `gone`, one the caller knows has exited): then return that worker, unchanged."""
        ...

    def register_tasks(self, worker: str, tasks: Sequence[TaskInfo]) -> None:
        """Record the tasks a worker knows, with their defaults (the last registration wins)."""
        ...

    def deregister_worker(self, name: str) -> None: ...

    def forget_dead_workers(self, older_than: float) -> int: ...

    def take_leadership(self, duty: str, owner: str, ttl: float) -> bool:
        """Take or renew the leader lease of the singleton duty `duty` for `ttl` seconds;
        True when `owner` holds it now (it was free, expired, or already `owner`'s)."""
        ...

    def resign_leadership(self, duty: str, owner: str) -> None:
        """Free the leader lease of `duty` if `owner` holds it (another takes over at once)."""
        ...

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]: ...

    def close(self) -> None: ...
