"""The storage contract, split by capability: what each part of conveyor needs of a database.

The worker's dispatcher needs `JobStore`; its duties need `WorkerRegistry` and `Maintenance`;
the app and the CLI need `Administration`, `Schema` and the read-only `Inspector`. A `Backend`
is all of them over one database. Coming capabilities (schedules, limits, workflows) are
protocols of their own beside these. Every worker write names its lease token (fencing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from ..job import AttemptRecord, JobRecord, JobState
from ..lease_watch import ObservedLease
from ..outcomes import Outcome
from ..records import (
    ClaimedJob,
    ClaimPlan,
    EnqueueResult,
    FiredSlot,
    HeartbeatReply,
    JobLink,
    Lease,
    Location,
    NewJob,
    NewWorkflow,
    ProgressUpdate,
    QueueSettings,
    QueueStats,
    RescueReport,
    RetryReport,
    ScheduleDefinition,
    ScheduleRecord,
    ScheduleState,
    SlotRun,
    TaskInfo,
    WorkerInfo,
    WorkerRecord,
    WorkflowRecord,
    WorkflowSummary,
)
from ..waits import JobLimits, KeyUse
from .wakeups import Subscription

# SQLite's commit: "normal" (WAL, synchronous=NORMAL: safe against a crash of any process)
# or "full" (an fsync per commit: also against power loss). PostgreSQL's commit is durable.
Durability = Literal["normal", "full"]

__all__ = [
    "Administration", "Backend", "ClaimPlan", "ClaimedJob", "Durability", "EnqueueResult",
    "HeartbeatReply", "Inspector", "JobLink", "JobStore", "Leadership", "Lease", "Location",
    "Maintenance", "NewJob", "NewWorkflow", "ProgressUpdate", "QueueControl", "QueueSettings",
    "QueueStats", "RescueReport", "RetryReport", "Schedules", "Schema", "TaskInfo", "WorkerInfo",
    "WorkerRecord", "WorkerRegistry", "WorkflowRecord", "WorkflowSummary",
]


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

    def schedules(self, name: str | None = None) -> list[ScheduleRecord]:
        """Every schedule (or the one named), inactive ones included, with its last run."""
        ...

    def queue_stats(self, window: float = 60.0) -> list[QueueStats]: ...

    def queue_settings(self) -> list[QueueSettings]:
        """Every stored queue setting (a queue without one is running, FIFO)."""
        ...

    def task_queues(self) -> list[str]:
        """The default queues of the tasks workers registered."""
        ...

    def runnable_queues(self) -> list[str]:
        """Queues holding a job that could run now (queued, or scheduled and due)."""
        ...

    def by_unique_key(self, unique_key: str) -> JobRecord | None:
        """The waiting or running job holding the key, else the latest job that had it."""
        ...

    def registered_tasks(self, names: Sequence[str]) -> dict[str, TaskInfo]:
        """Those of `names` a worker registered (one indexed read)."""
        ...

    def limited_jobs_waiting(self) -> bool:
        """Whether any queued job carries a limit key (one index seek)."""
        ...

    def limited_tasks(self) -> list[TaskInfo]:
        """The tasks registered with a rate or concurrency limit."""
        ...

    def job_limits(self, job_id: int) -> JobLimits | None:
        """What may hold a job back: its limits and their use, its queue's pause and
        concurrency limit, by the database's clock; None for no such job."""
        ...

    def limit_keys(self) -> tuple[float | None, list[KeyUse]]:
        """Every limit key with queued or running jobs, and the database's clock (None when
        there is no key)."""
        ...

    def workflow(self, workflow_id: int) -> WorkflowRecord | None:
        """A workflow with its member jobs (in id order); None for no such workflow."""
        ...

    def workflow_edges(self, workflow_id: int) -> list[tuple[int, int]]: ...

    def workflows(self, limit: int = 50) -> list[WorkflowSummary]: ...

    def job_links(self, job_id: int) -> tuple[list[JobLink], list[JobLink]]:
        """A job's parents and children (callbacks included)."""
        ...

    def schema_version(self) -> int: ...


class JobStore(Protocol):
    """A job's way through the queue: stored, claimed under a lease, acknowledged."""

    def enqueue_many(
        self, jobs: Sequence[NewJob], *, connection: Any = None
    ) -> Sequence[EnqueueResult]:
        """Store jobs in one transaction; with `connection`, inside the caller's own open
        transaction on that connection (the jobs exist if and only if the caller commits)."""
        ...

    def enqueue_workflow(self, workflow: NewWorkflow) -> WorkflowRecord:
        """Every job and edge of a workflow in one transaction: all of it, or nothing."""
        ...

    def ack_and_claim(
        self,
        outcomes: Sequence[Outcome],
        owner: str,
        queues: Sequence[str],
        limit: int,
        lease: float,
        progress: Sequence[ProgressUpdate] = (),
        plan: ClaimPlan | None = None,
    ) -> tuple[list[bool], list[ClaimedJob]]:
        """Save progress, write outcomes (which were accepted: the lease still held), then
        claim up to `limit` jobs of `queues`, in one transaction. Paused queues are skipped;
        `plan` names LIFO queues and weights (None: by priority, then first in first out)."""
        ...

    @property
    def round_size(self) -> int:
        """How many jobs a worker's auto prefetch holds beyond its threads at most, which
        bounds its rounds: what this database serves best (bench/RESULTS.md)."""
        ...

    def ack_many(self, outcomes: Sequence[Outcome], worker: str) -> list[bool]:
        """`ack_and_claim` claiming nothing."""
        ...

    def save_progress(self, updates: Sequence[ProgressUpdate]) -> None:
        """`ack_and_claim` with progress only."""
        ...

    def release(self, leases: Sequence[Lease], *, not_before: float = 0.0) -> int:
        """Hand jobs back without counting the attempt; claimable again from `not_before`
        (this host's clock)."""
        ...

    def next_due(self, queues: Sequence[str] | None = None) -> float | None:
        """When the next scheduled job (of `queues`, if given) is due, by this host's clock."""
        ...

    def cancels_requested(self, job_ids: Sequence[int]) -> set[int]:
        """Which of these running jobs someone asked to cancel (a read, no lock)."""
        ...

    def subscribe(self, callback: Callable[[], None]) -> Subscription:
        """Call `callback` (from another thread) whenever new work may have arrived, until
        the subscription is cancelled."""
        ...


class WorkerRegistry(Protocol):
    """Workers as the database knows them: registration, heartbeats (which renew leases)."""

    def register_worker(self, worker: WorkerInfo, *, takeover_after: float = ...,
                        gone: WorkerRecord | None = None) -> WorkerRecord | None:
        """Register `worker` under its name, unless another worker holds the name and is not
        gone (its heartbeat younger than `takeover_after` seconds, and its row not exactly
        `gone`, one the caller knows has exited): then return that worker, unchanged."""
        ...

    def register_tasks(self, worker: str, tasks: Sequence[TaskInfo]) -> None:
        """Record the tasks a worker knows, with their defaults (the last registration wins)."""
        ...

    def heartbeat(
        self, worker: WorkerInfo, leases: Sequence[Lease], lease: float, busy: int
    ) -> HeartbeatReply:
        """Renew the worker's row and the leases it holds; say which were lost, which jobs
        someone asked to cancel, and whether the worker was asked to stop."""
        ...

    def renewal_blocked(self) -> bool:
        """Whether this process's writes are waiting right now for a lock another session
        holds on the whole jobs table (SQLite: the file's write lock; PostgreSQL: a table
        lock): nobody else can take a job back meanwhile either."""
        ...

    def deregister_worker(self, name: str) -> None: ...


class Maintenance(Protocol):
    """Keeping the queue healthy: taking back jobs of dead workers, forgetting old rows."""

    def observe_leases(self) -> list[ObservedLease]:
        """Every running job's lease, read so that seeing it proves it was writable (inside a
        write transaction, or with the rows locked): the rescuer's evidence."""
        ...

    def rescue(self, leases: Sequence[ObservedLease]) -> RescueReport:
        """Take back jobs whose lease is still exactly as observed (same token, no renewal
        since); the lost attempt counts. Any other job is left alone."""
        ...

    def forget_dead_workers(self, older_than: float) -> int: ...

    def prune(self, ages: Mapping[JobState, float], *, limit: int = 500,
              dry_run: bool = False) -> int:
        """Delete, in one transaction, at most `limit` finished jobs that ended longer ago than
        their state's age in `ages` (seconds; a state not named is kept), oldest first;
        returns how many. Never a waiting or running job (InvalidInput), nor the newest job
        of a schedule (its last run). With dry_run, count every job that would go."""
        ...

    def prune_schedule_slots(self, older_than: float, *, limit: int = 500) -> int:
        """Delete, in one transaction, at most `limit` schedule slot rows older than
        `older_than` seconds, never the newest of a schedule (where its scheduler is)."""
        ...

    def prune_rate_state(self, *, limit: int = 500) -> int:
        """Delete, in one transaction, at most `limit` rate-limit rows of keys whose state is
        spent (their next start is already allowed, as for a key never used)."""
        ...

    def shrink_log(self) -> bool:
        """After a large delete, give back the space of the database's write-ahead log, never
        waiting for a lock (SQLite: checkpoint and truncate a WAL grown large; PostgreSQL:
        nothing, the server keeps its own). False when it could not right now."""
        ...


class Leadership(Protocol):
    """Leader leases for singleton worker duties: one worker at a time runs such a duty. An
    optimisation only; what must happen once is guarded by constraints, never by a leader."""

    def take_leadership(self, duty: str, owner: str, ttl: float) -> bool:
        """Take or renew the leader lease of the singleton duty `duty` for `ttl` seconds;
        True when `owner` holds it now (it was free, expired, or already `owner`'s)."""
        ...

    def resign_leadership(self, duty: str, owner: str) -> None:
        """Free the leader lease of `duty` if `owner` holds it (another takes over at once)."""
        ...


class Schedules(Protocol):
    """Periodic jobs: schedules written from code, and slots fired once each under
    UNIQUE(schedule, slot), whatever the number of schedulers."""

    def sync_schedules(self, worker: str, definitions: Sequence[ScheduleDefinition]
                       ) -> list[str]:
        """Write the code's schedules (new timing: from its next slot); mark every other
        active schedule inactive. Returns the names made inactive."""
        ...

    def schedule_states(self) -> tuple[float, list[ScheduleState]]:
        """The database's time (slots are due by it) and every active schedule."""
        ...

    def fire(self, runs: Sequence[SlotRun]) -> list[FiredSlot]:
        """Take each run's slot and enqueue its job, in one transaction; a slot already
        taken is left out. A run without a slot (by hand) is always enqueued."""
        ...

    def pause_schedule(self, name: str, paused: bool) -> bool:
        """Pause or resume (a resumed schedule skips the slots it missed); False when no
        schedule has that name."""
        ...


class Administration(Protocol):
    """What an operator does to jobs and workers (the CLI, the dashboard, the app's API)."""

    def cancel(self, job_id: int) -> JobState | None: ...

    def cancel_workflow(self, workflow_id: int) -> bool:
        """Cancel a workflow's members that have not started and ask running ones to stop;
        False when there is no such workflow."""
        ...

    def retry(self, job_ids: Sequence[int]) -> RetryReport:
        """Queue failed or cancelled jobs again with fresh attempts. A job whose unique key
        another active job holds is skipped (and named in the report); the others still are."""
        ...

    def delete(self, job_ids: Sequence[int]) -> list[int]:
        """Delete jobs that are not running; returns those deleted."""
        ...

    def purge(self, queue: str, state: JobState | None, *, dry_run: bool = False) -> int: ...

    def request_worker_stop(self, name: str | None) -> int: ...


class QueueControl(Protocol):
    """Queue settings every worker honours: paused (claimed from by no one), LIFO."""

    def set_queue(self, name: str, *, paused: bool | None = None, lifo: bool | None = None,
                  concurrency: int | None = None) -> None:
        """Store the settings given (None keeps the stored one; concurrency 0: no limit);
        a resume wakes workers."""
        ...


class Schema(Protocol):
    """The tables' version, and bringing them up to date."""

    dialect: str  # the folder of its SQL files: "sqlite", "postgresql"

    def schema_version(self) -> int: ...

    def migrate(self) -> int: ...


class Backend(JobStore, WorkerRegistry, Maintenance, Leadership, Schedules, Administration,
              QueueControl, Schema, Protocol):
    """Every capability over one database, as `Conveyor(url)` opens it (or as given to
    `Conveyor(url, backend=...)`)."""

    @property
    def inspector(self) -> Inspector: ...

    @property
    def location(self) -> Location: ...

    def close(self) -> None: ...
