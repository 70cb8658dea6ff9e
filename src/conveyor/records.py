"""The records that cross the storage boundary: jobs to store, jobs claimed, leases, workers,
reports. Plain data, so the executor, the app and the views use them without the storage layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, overload

from .job import JobRecord, JobState, Progress
from .limits import Rate
from .schedule import CatchUp, Schedule


@dataclass(frozen=True, slots=True)
class JobTies:
    """What ties a new job to others: the jobs it waits for, what their failure does to it,
    its callbacks, the result it may reuse. A job with ties is stored one by one."""

    depends_on: tuple[int, ...] = ()  # stored jobs it waits for: it runs once all ended
    on_parent_failure: str = "cancel"  # or "run": what a failed or cancelled parent does
    # Jobs to enqueue when it ends: {"on_success": callback, "on_failure": callback}, JSON.
    callbacks: str | None = None
    # Seconds: a job with its unique key that succeeded this recently is returned instead.
    reuse_for: float | None = None


# No slots: see with_arguments.
@dataclass(frozen=True)
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
    soft_timeout: float | None = None  # its own soft limit (inf: none); None: the task's
    # Which of queue, priority, max_attempts the caller left to the task: for a task the
    # enqueuing process does not know, the app takes them from the registered task, if any.
    defaulted: frozenset[str] = frozenset()
    # The key of the task's rate and concurrency limits ('' unkeyed); None: no limit applies.
    limit_key: str | None = None
    # What ties it to other jobs (None for most jobs: they are stored in batches).
    ties: JobTies | None = None

    def due(self, now: float) -> float:
        """When the job may run, by the storing database's clock `now`."""
        if self.delay:
            return now + self.delay
        return now if self.run_at is None else self.run_at

    def with_arguments(self, args_json: str, kwargs_json: str, limit_key: str | None
                       ) -> NewJob:
        """This job with other arguments (and limit key), as `replace` makes it, unchecked
        (enqueue checks every job). Five times as fast: a frozen dataclass's constructor sets
        each of these 15 fields through object.__setattr__, about 1 us per job; this copies
        the fields' dict at once, as unpickling does. `prepare` makes every job this way,
        from a job its TaskCall built once."""
        job = object.__new__(type(self))
        fields = job.__dict__
        fields.update(self.__dict__)
        fields["args_json"] = args_json
        fields["kwargs_json"] = kwargs_json
        fields["limit_key"] = limit_key
        return job


def column(records: Sequence[Any], name: str) -> list[Any]:
    """Field `name` of each of `records` (a batch's jobs), read at C speed and without a
    tuple per record: a batch that allocates few objects seldom wakes the garbage collector,
    whose runs cost a batch of jobs as much as a fifth of its time."""
    return list(map(attrgetter(name), records))


def varies(values: Sequence[Any]) -> bool:
    """Whether a batch's column `values` holds more than one value. A column that does not
    is sent to the database once, not once per row. 1, 1.0 and True are equal but sent as
    different types, so one value means one type too."""
    first = values[0]
    if values.count(first) != len(values):
        return True
    return not (first is None or type(first) is str) and len(set(map(type, values))) > 1


@dataclass(frozen=True, slots=True)
class WorkflowJob:
    """One job of a workflow to store: the jobs of the workflow it waits for (by index, each
    smaller than its own), and where its first argument comes from: a JSON feed of indexes
    (an index, or a nested array of them; None: nothing is fed)."""

    job: NewJob
    parents: tuple[int, ...] = ()
    feed: str | None = None


@dataclass(frozen=True, slots=True)
class NewWorkflow:
    name: str
    jobs: tuple[WorkflowJob, ...]
    output: str  # the feed of its result (of indexes)
    on_parent_failure: str = "cancel"


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    id: int
    name: str
    created_at: float
    output: str  # the feed of its result, of job ids
    on_parent_failure: str
    jobs: tuple[JobRecord, ...]  # in the order of its plan (a reused step: the job reused)


@dataclass(frozen=True, slots=True)
class WorkflowSummary:
    id: int
    name: str
    created_at: float
    counts: dict[JobState, int]  # its members by state


@dataclass(frozen=True, slots=True)
class JobLink:
    """A job's parent or child, as `jobs show` lists it."""

    id: int
    task: str
    state: JobState


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
    rate: Rate | None = None  # at most this many starts, per limit key
    concurrency: int | None = None  # at most this many running, per limit key
    keyed: bool = False  # the task computes a limit key from each job's arguments

    @property
    def limited(self) -> bool:
        return self.rate is not None or self.concurrency is not None


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    record: JobRecord
    created: bool  # False: a job holding the same unique key was returned instead


class StoredBatch(Sequence[EnqueueResult]):
    """What one batch insert stored, as EnqueueResults made when asked for: a job's record
    costs about 2 us to make (a frozen dataclass of 26 fields), as much as its insert, and
    most callers of enqueue_many read no more than the jobs' ids (`ids`)."""

    __slots__ = ("_columns", "_now", "_workflow", "ids")

    def __init__(self, ids: list[int], columns: tuple[list[Any], ...], now: float,
                 workflow: int | None) -> None:
        self.ids = ids
        # task, queue, state, priority, args_json, kwargs_json, max_attempts, run_at
        self._columns = columns
        self._now = now
        self._workflow = workflow

    def record(self, index: int) -> JobRecord:
        task, queue, state, priority, args, kwargs, attempts, due = (
            column[index] for column in self._columns)
        return JobRecord(self.ids[index], task, queue, state, priority, args, kwargs, None, 0,
                         attempts, due, self._now, workflow=self._workflow)

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> EnqueueResult: ...

    @overload
    def __getitem__(self, index: slice) -> list[EnqueueResult]: ...

    def __getitem__(self, index: int | slice) -> EnqueueResult | list[EnqueueResult]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        return EnqueueResult(self.record(range(len(self))[index]), True)


# (Never changed once made; not frozen because a frozen dataclass's __init__ costs about ten
# times a plain one's, paid for every job claimed: see outcomes.py.)
@dataclass(slots=True)
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
    soft_timeout: float | None = None  # the job's own (inf: none); None: the task's
    limited: bool = False  # claimed under a rate or concurrency limit (its own or its queue's)
    followers: bool = False  # it has children or callbacks, which its end releases


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


@dataclass(frozen=True, slots=True)
class ScheduleDefinition:
    """A schedule as the schedules table holds it: its timing and its run's arguments, as
    JSON. Written by every scheduler from its code when it starts."""

    name: str
    task: str
    cron: str | None
    every: float | None
    tz: str
    args_json: str
    kwargs_json: str
    catch_up: CatchUp
    max_lateness: float | None

    def timing(self) -> Schedule:
        """The pure schedule, to compute slots with (arguments left out)."""
        return Schedule(self.name, self.task, cron=self.cron, every=self.every, tz=self.tz,
                        catch_up=self.catch_up, max_lateness=self.max_lateness)


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """An active schedule as a scheduler reads it before firing: slots after `after` may
    still fire (its latest slot taken, or when it started, changed timing or was resumed)."""

    definition: ScheduleDefinition
    paused: bool
    after: float


@dataclass(frozen=True, slots=True)
class SlotRun:
    """One job to enqueue for a schedule: for `slot` (taken under UNIQUE(schedule, slot), so
    it fires once whoever asks), or, with slot None, a run made by hand outside the slots."""

    schedule: str
    slot: float | None
    job: NewJob


@dataclass(frozen=True, slots=True)
class FiredSlot:
    schedule: str
    slot: float | None
    job: JobRecord


@dataclass(frozen=True, slots=True)
class LastRun:
    """The newest job made for a schedule."""

    job_id: int
    state: JobState
    slot: float | None  # None: a run made by hand
    enqueued_at: float
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A schedule as `conveyor schedules list` shows it, with its latest run."""

    definition: ScheduleDefinition
    active: bool  # False: gone from the code; it never fires
    paused: bool
    after: float
    synced_by: str
    synced_at: float
    last_run: LastRun | None


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """A queue's stored settings (conveyor_queues); a queue without a row is running, FIFO."""

    name: str
    paused: bool
    lifo: bool
    updated_at: float
    concurrency: int | None = None  # at most this many of its jobs running, on every worker


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    """How a worker claims beyond plain priority-then-FIFO: its LIFO queues and, for weighted
    queues, each queue's weight and its share so far (`starts`, weighted fair queuing)."""

    lifo: frozenset[str] = frozenset()
    weights: Mapping[str, int] = field(default_factory=dict)
    starts: Mapping[str, float] = field(default_factory=dict)
    # Limits: whether any task has limits (its jobs are claimed apart, limits applied), and
    # this worker's queues with a concurrency limit (claimed apart too).
    limited: bool = False
    capped: frozenset[str] = frozenset()
