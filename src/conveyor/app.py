"""The Conveyor app: task registry, settings, and the enqueue / get / cancel entry points."""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import repeat
from operator import attrgetter
from types import TracebackType
from typing import Any, Literal, ParamSpec, Protocol, TypeVar, overload

from . import canvas, limits, links, runners, serializer, validation
from .backends import known_migrations, open_backend, resolve_url
from .backends.base import (
    Backend,
    Durability,
    Inspector,
    Location,
    NewJob,
    NewWorkflow,
    QueueSettings,
    RetryReport,
    TaskInfo,
    WorkflowRecord,
    WorkflowSummary,
)
from .errors import (
    ConfigurationError,
    ConveyorWarning,
    InvalidInput,
    JobNotFound,
    PayloadTooLarge,
)
from .job import Job, JobRecord, JobState
from .lease_watch import MIN_LEASE, SHORT_LEASE, STOP_AT
from .options import UNSET, check_prepared, plainly_prepared
from .periodic import DeclaredSchedules, stored_arguments
from .records import JobTies, ScheduleDefinition, SlotRun, StoredBatch, WorkflowJob, column
from .retention import PRUNE_BATCH, PRUNE_PAUSE_MAX, Keep, PruneAges, Retention, prune_ages
from .runners import Runner as Runner  # the seam with the runtime, importable here as before
from .runners import WorkerFactory as WorkerFactory
from .runners import register_worker_factory as register_worker_factory
from .schedule import CatchUp, Schedule
from .task import Task, TaskCall, TaskSettings, default_task_name
from .workflow import Workflow

P = ParamSpec("P")
R = TypeVar("R")

NO_TIES = JobTies()
_RECORD = attrgetter("record")
_TASK = attrgetter("task")


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    current: int
    latest: int
    pending: tuple[str, ...]

    @property
    def is_current(self) -> bool:
        return self.current == self.latest


QueueOrder = Literal["fifo", "lifo"]


@dataclass(frozen=True, slots=True)
class QueueOptions:
    """A queue's settings as declared in code (`Conveyor.queue`); workers store them."""

    order: QueueOrder = "fifo"
    concurrency: int | None = None  # at most this many of its jobs run at once, anywhere

    @property
    def lifo(self) -> bool:
        return self.order == "lifo"


class TaskDecorator(Protocol):
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class Conveyor:
    """One job system: a database URL plus the tasks this process knows.

    The database is opened on first use, so importing a module that creates an app
    touches no file. Usable as a context manager; `close()` releases the connections.

    `backend`: an already-open backend (`conveyor.backends.open_backend(url)`, or a wrapper
    around one) for the app to use instead of opening its own: the seam for tests and
    integrations. The app takes it over: `close()` closes it. `url` still names the database
    for what opens its own connection (a worker's child processes, a forked process, this app
    after `close()`), so give the URL the backend was opened on. Settings of how the app opens
    a database (`durability`) apply only to the backends it opens itself.

    `durability` (SQLite): "full" makes every commit survive a power cut (synchronous=FULL);
    "normal" (the default) survives a crash of the process.

    `keep_succeeded`, `keep_failed`, `keep_cancelled`: how long a finished job is kept after
    it ended (a timedelta or seconds; None keeps it forever); a worker's pruner deletes it
    afterwards (`app.retention`, `app.prune()`).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        backend: Backend | None = None,
        lease_timeout: float = 30.0,
        durability: Durability = "normal",
        max_payload_bytes: int = serializer.DEFAULT_MAX_PAYLOAD,
        keep_succeeded: Keep = timedelta(days=7),
        keep_failed: Keep = timedelta(days=30),
        keep_cancelled: Keep = timedelta(days=7),
    ) -> None:
        if (
            not isinstance(lease_timeout, int | float)
            or isinstance(lease_timeout, bool)
            or not math.isfinite(lease_timeout)
            or lease_timeout < MIN_LEASE
        ):
            raise ConfigurationError(
                f"lease_timeout must be a number of seconds >= {MIN_LEASE:g}, got "
                f"{lease_timeout!r}"
            )
        if lease_timeout < SHORT_LEASE:
            warnings.warn(
                f"lease_timeout {lease_timeout:g} s is short: a worker that cannot renew a lease "
                f"within {STOP_AT:.0%} of it (database stall, CPU starvation, a pause) stops the "
                f"job; {SHORT_LEASE:g} s or more rides out ordinary hiccups",
                ConveyorWarning,
                stacklevel=2,
            )
        if durability not in ("normal", "full"):
            raise ConfigurationError(f"durability must be 'normal' or 'full', got {durability!r}")
        if (
            not isinstance(max_payload_bytes, int)
            or isinstance(max_payload_bytes, bool)
            or max_payload_bytes < serializer.MIN_MAX_PAYLOAD
        ):
            raise ConfigurationError(
                f"max_payload_bytes must be an int >= {serializer.MIN_MAX_PAYLOAD} (1 KiB), got "
                f"{max_payload_bytes!r}; the default is {serializer.DEFAULT_MAX_PAYLOAD} (4 MiB)"
            )
        self.retention = Retention.checked(
            keep_succeeded=keep_succeeded, keep_failed=keep_failed,
            keep_cancelled=keep_cancelled)
        self.url = resolve_url(url)
        self.lease_timeout = float(lease_timeout)
        self.durability: Durability = durability
        # Bytes of encoded JSON: a job's arguments together at enqueue, a result in the worker.
        self.max_payload_bytes = max_payload_bytes
        self._tasks: dict[str, Task[Any, Any]] = {}
        self._schedules = DeclaredSchedules()
        self._queues: dict[str, QueueOptions] = {}
        self._backend: Backend | None = backend
        self._backend_pid = os.getpid() if backend is not None else 0
        self._injected = backend is not None  # the open backend was given, not opened here
        self._lock = threading.Lock()
        self.import_path: str | None = None  # "module:attr", set when loaded by the CLI

    def __repr__(self) -> str:
        return f"<Conveyor {self.url} tasks={len(self._tasks)}>"

    # -- storage ---------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The open backend; reopened in a forked child rather than sharing a connection."""
        with self._lock:
            if self._backend is None or self._backend_pid != os.getpid():
                self._backend = open_backend(self.url, durability=self.durability)
                self._backend_pid = os.getpid()
                self._injected = False
            return self._backend

    @property
    def inspector(self) -> Inspector:
        return self.backend.inspector

    @property
    def location(self) -> Location:
        """Where the jobs are: the SQLite file's absolute path (a relative URL resolves against
        the current directory when the database is opened), or PostgreSQL's host, port,
        database and schema (never the password)."""
        return self.backend.location

    def close(self) -> None:
        with self._lock:
            backend, self._backend = self._backend, None
            self._injected = False
        if backend is not None and self._backend_pid == os.getpid():
            backend.close()

    def __enter__(self) -> Conveyor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- tasks -----------------------------------------------------------------------

    @property
    def tasks(self) -> Mapping[str, Task[Any, Any]]:
        return dict(self._tasks)

    @overload
    def task(self, fn: Callable[P, R]) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str = UNSET,
        priority: int = UNSET,
        max_attempts: int = UNSET,
        backoff: float | timedelta = UNSET,
        timeout: float | timedelta | None = UNSET,
        soft_timeout: float | timedelta | None = UNSET,
        retry_on: type[Exception] | tuple[type[Exception], ...] = (),
        no_retry_on: type[Exception] | tuple[type[Exception], ...] = (),
        rate_limit: str | None = None,
        concurrency: int | None = None,
        limit_key: Callable[..., str] | None = None,
    ) -> TaskDecorator: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        queue: str = UNSET,
        priority: int = UNSET,
        max_attempts: int = UNSET,
        backoff: float | timedelta = UNSET,
        timeout: float | timedelta | None = UNSET,
        soft_timeout: float | timedelta | None = UNSET,
        retry_on: type[Exception] | tuple[type[Exception], ...] = (),
        no_retry_on: type[Exception] | tuple[type[Exception], ...] = (),
        rate_limit: str | None = None,
        concurrency: int | None = None,
        limit_key: Callable[..., str] | None = None,
    ) -> Any:
        """Register a function as a task: `@app.task` or `@app.task(queue="media", ...)`.

        The defaults of its jobs, each checked as in `task.options(...)`; those not given are
        conveyor's (`conveyor.options.JobOptions`): queue "default", priority 0, max_attempts
        3, backoff 1 s, no timeout. `soft_timeout` (below `timeout`) raises
        conveyor.SoftTimeLimitExceeded inside the task; see README "Retries and timeouts".
        `retry_on`: only these exceptions (and subclasses) are retried, others fail the job at
        once; `no_retry_on`: never retried (wins). These two are the task's only, not per
        job.

        Limits, kept in the database across every worker and host: `rate_limit` ("10/s",
        "100/m", "1000/h", "5/10s") caps how many jobs start; `concurrency` how many run at
        once. `limit_key` (a function of the job's arguments, called at enqueue with them by
        parameter name) gives each key its own budget: `limit_key=lambda tenant, **_:
        tenant`. A job over its limit stays queued, uses no attempt and holds back no other
        task's jobs."""

        def register(function: Callable[..., Any]) -> Task[Any, Any]:
            if not callable(function):
                raise InvalidInput(f"@app.task needs a function, got {function!r}")
            settings = TaskSettings.checked(
                name if name is not None else default_task_name(function),
                queue=queue, priority=priority, max_attempts=max_attempts, backoff=backoff,
                timeout=timeout, soft_timeout=soft_timeout, retry_on=retry_on,
                no_retry_on=no_retry_on, rate_limit=rate_limit, concurrency=concurrency,
                limit_key=limit_key,
            )
            existing = self._tasks.get(settings.name)
            if existing is not None and existing.fn is not function:
                raise ConfigurationError(
                    f"task name {settings.name!r} is already registered to {existing.fn!r}; "
                    "give one of them another name with @app.task(name=...)"
                )
            task: Task[Any, Any] = Task(self, function, settings)
            self._tasks[settings.name] = task
            return task

        if fn is not None:
            return register(fn)
        return register

    # -- schedules -------------------------------------------------------------------

    def periodic(
        self,
        fn: Any = None,
        /,
        *,
        cron: str | None = None,
        every: float | timedelta | None = None,
        tz: str = "UTC",
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        catch_up: CatchUp = "skip",
        max_lateness: float | timedelta | None = None,
        name: str | None = None,
        queue: str = UNSET,
        priority: int = UNSET,
        max_attempts: int = UNSET,
        backoff: float | timedelta = UNSET,
        timeout: float | timedelta | None = UNSET,
        soft_timeout: float | timedelta | None = UNSET,
    ) -> TaskDecorator:
        """Register a function as a task (options as `@app.task`) and a schedule of the same
        name: `@app.periodic(cron="0 2 * * *", tz="Europe/Berlin")` or
        `@app.periodic(every=timedelta(hours=6))`. See `schedule` for the rest."""
        if fn is not None:
            raise InvalidInput("@app.periodic needs its timing: write @app.periodic(cron="
                               "'0 2 * * *') or @app.periodic(every=60)")

        def register(function: Callable[P, R]) -> Task[P, R]:
            task = self.task(name=name, queue=queue, priority=priority,
                             max_attempts=max_attempts, backoff=backoff,
                             timeout=timeout, soft_timeout=soft_timeout)(function)
            self.schedule(task.name, task, cron=cron, every=every, tz=tz, args=args,
                          kwargs=kwargs, catch_up=catch_up, max_lateness=max_lateness)
            return task

        return register

    def schedule(
        self,
        name: str,
        task: Task[..., Any] | str,
        *,
        cron: str | None = None,
        every: float | timedelta | None = None,
        tz: str = "UTC",
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        catch_up: CatchUp = "skip",
        max_lateness: float | timedelta | None = None,
    ) -> Schedule:
        """Run `task` (a task, or a task's name) on a schedule: `cron` (5 fields or an @alias
        such as "@daily", in timezone `tz`) or `every` (seconds >= 1, or a timedelta), each
        run with `args` and `kwargs`. Every worker runs a scheduler (`conveyor worker
        --no-scheduler` turns it off), and each slot fires exactly once however many run.

        `catch_up` after an outage: "skip" (default: missed slots do not run; the next slot
        does), "once" (one run for all missed slots), "all" (each missed slot, the latest
        1000). `max_lateness` (seconds or timedelta): a slot later than this never runs."""
        if isinstance(task, Task):
            if self._tasks.get(task.name) is not task:
                raise InvalidInput(f"schedule {name!r}: task {task.name!r} belongs to another "
                                   "app; register it on this one")
            call: TaskCall[..., Any] = task.options()
            task = task.name
        else:
            call = self.options(task)
        return self._schedules.add(
            name, task, call.prepare, cron=cron, every=every, tz=tz,
            args=args, kwargs=kwargs, catch_up=catch_up, max_lateness=max_lateness)

    @property
    def schedules(self) -> Mapping[str, Schedule]:
        """The schedules declared in this app's code."""
        return self._schedules.as_mapping()

    def schedule_definitions(self) -> list[ScheduleDefinition]:
        """What a scheduler writes to the schedules table when it starts."""
        return self._schedules.definitions()

    def prepare_run(self, definition: ScheduleDefinition) -> NewJob:
        """The job of one run of a stored schedule, prepared as `enqueue` would (a task this
        process does not know takes its registered queue and defaults). The same for every
        slot of the schedule: a scheduler prepares it once per firing."""
        args, kwargs = stored_arguments(definition)
        [job], _ = self._by_name([self.options(definition.task).prepare(*args, **kwargs)])
        return job

    def run_schedule(self, name: str) -> Job:
        """Enqueue one run of a stored schedule now, outside its slots (`conveyor schedules
        run NAME`)."""
        found = self.inspector.schedules(_schedule_name(name))
        if not found:
            raise InvalidInput(f"no schedule named {name!r}; `conveyor schedules list` shows "
                               "them (a schedule is stored when a worker or scheduler of its "
                               "app starts)")
        if not found[0].active:
            raise InvalidInput(f"schedule {name!r} is inactive (no scheduler's code declares "
                               "it any more); enqueue its task directly instead")
        run = SlotRun(name, None, self.prepare_run(found[0].definition))
        [fired] = self.backend.fire([run])
        return Job(fired.job, self)

    def pause_schedule(self, name: str) -> None:
        """Stop a stored schedule from firing (on every scheduler) until resumed."""
        self._pause_schedule(name, True)

    def resume_schedule(self, name: str) -> None:
        """Fire a paused schedule again, from its next slot (missed slots are skipped)."""
        self._pause_schedule(name, False)

    def _pause_schedule(self, name: str, paused: bool) -> None:
        if not self.backend.pause_schedule(_schedule_name(name), paused):
            raise InvalidInput(f"no schedule named {name!r}; `conveyor schedules list` shows "
                               "them")

    # -- enqueue ---------------------------------------------------------------------

    def options(
        self,
        task: str,
        *,
        queue: str = UNSET,
        priority: int = UNSET,
        delay: float | timedelta | None = None,
        at: datetime | None = None,
        unique_key: str | None = None,
        max_attempts: int = UNSET,
        connection: Any = None,
        backoff: float | timedelta = UNSET,
        timeout: float | timedelta | None = UNSET,
        soft_timeout: float | timedelta | None = UNSET,
        limit_key: str | None = None,
        depends_on: Iterable[Job | int] | Job | int | None = None,
        on_parent_failure: str | None = None,
        on_success: canvas.Signature | None = None,
        on_failure: canvas.Signature | None = None,
        reuse_for: float | timedelta | None = None,
    ) -> TaskCall[..., Any]:
        """Per-job options for a task named by string (it need not be known here; when it
        is, its arguments are checked against its function's signature). The options are
        those of `Task.options`, checked the same way."""
        known = self._tasks.get(validation.task_name(task))
        if known is not None:
            return known.options(
                queue=queue, priority=priority, max_attempts=max_attempts, delay=delay, at=at,
                unique_key=unique_key, connection=connection, backoff=backoff,
                timeout=timeout, soft_timeout=soft_timeout, limit_key=limit_key,
                depends_on=depends_on, on_parent_failure=on_parent_failure,
                on_success=on_success, on_failure=on_failure, reuse_for=reuse_for)
        settings = TaskSettings(name=task)
        job_options = settings.defaults.override(
            queue=queue, priority=priority, max_attempts=max_attempts, delay=delay, at=at,
            unique_key=unique_key, backoff=backoff, timeout=timeout,
            soft_timeout=soft_timeout, limit_key=limit_key,
        )
        return TaskCall(
            self,
            settings,
            job_options,
            connection=connection,
            links=links.JobLinks.checked(
                depends_on=depends_on, on_parent_failure=on_parent_failure,
                on_success=on_success, on_failure=on_failure, reuse_for=reuse_for,
                unique_key=job_options.unique_key),
        )

    def signature(self, task: str, *args: Any, **kwargs: Any) -> canvas.Signature:
        """A signature of a task named by string (`task.s(...)` for a task imported here)."""
        return self.options(task).s(*args, **kwargs)

    # -- workflows -------------------------------------------------------------------

    def enqueue_workflow(self, workflow: canvas.Canvas, *, on_parent_failure: str = "cancel",
                         name: str | None = None) -> Workflow:
        """Store every job and edge of a chain, group or chord in one transaction (all or
        nothing) and return its handle. See `canvas` for what each shape means."""
        plan = canvas.plan(workflow)
        policy = links.policy(on_parent_failure)
        jobs = []
        calls: dict[tuple[str, int, int], TaskCall[..., Any]] = {}  # (a chord's members share one)
        for index, node in enumerate(plan.nodes):
            fed = 0 if node.feed is None else 1
            job = self._signature_job(node.signature, fed, f"workflow step {index}", calls)
            if node.parents and (job.ties or NO_TIES).on_parent_failure != policy:
                job = replace(job, ties=replace(job.ties or NO_TIES, on_parent_failure=policy))
            jobs.append(WorkflowJob(job, node.parents, canvas.encode_input(node.feed)))
        output = canvas.encode_input(plan.output)
        assert output is not None
        title = canvas.describe(workflow) if name is None else _workflow_name(name)
        record = self.backend.enqueue_workflow(NewWorkflow(title, tuple(jobs), output, policy))
        return Workflow(record, self)

    def _signature_job(self, signature: canvas.Signature, fed: int, what: str,
                       calls: dict[tuple[str, int, int], TaskCall[..., Any]] | None = None
                       ) -> NewJob:
        """The job a signature stands for, checked as its task's enqueue checks it, with
        `fed` leading arguments held by `null` (what the job is fed goes there). `calls`:
        the task calls made so far, by task and options (reused)."""
        if not isinstance(signature, canvas.Signature):
            raise InvalidInput(f"{what} must be a signature (task.s(...)), got "
                               f"{type(signature).__name__}")
        given, job_links = signature.options if signature.options is not None else (None, None)
        key = (signature.task, id(given), id(job_links))
        call = calls.get(key) if calls is not None else None
        if call is None:
            call = self._signature_call(signature, what)
            if calls is not None:
                calls[key] = call
        job = call.prepare(*((None,) * fed), *signature.args, **dict(signature.kwargs))
        if signature.task in self._tasks:
            return job  # (prepared by its own task: checked)
        self._admit(job, what)
        return self._by_name([job])[0][0]

    def _signature_call(self, signature: canvas.Signature, what: str) -> TaskCall[..., Any]:
        given, job_links = signature.options if signature.options is not None else (None, None)
        task = self._tasks.get(signature.task)
        if task is not None:
            return TaskCall(self, task.settings, given, check=task.check_arguments,
                            named=task.named_arguments, links=job_links)
        if signature.task not in self.inspector.registered_tasks([signature.task]):
            raise InvalidInput(
                f"{what}: no task named {signature.task!r} is known in this process or "
                "registered by a worker; check the name (a worker registers its app's "
                "tasks when it starts)")
        return TaskCall(self, TaskSettings(name=signature.task), given, links=job_links)

    def stored_callbacks(self, job_links: links.JobLinks) -> str | None:
        """A job's callbacks as stored with it: each the job its signature stands for, its
        leading arguments (the result, or the failed job's id and error) left to its end."""
        stored: dict[str, Any] = {}
        for option, signature, fed in (("on_success", job_links.on_success, 1),
                                       ("on_failure", job_links.on_failure, 2)):
            if signature is None:
                continue
            leading = 0 if signature.immutable else fed
            job = self._signature_job(signature, leading, option)
            args = json.loads(job.args_json)[leading:]
            stored[option] = {
                "task": job.task, "queue": job.queue, "args": serializer.dumps(args),
                "kwargs": job.kwargs_json, "priority": job.priority,
                "max_attempts": job.max_attempts, "backoff": job.backoff,
                "timeout": job.timeout, "soft_timeout": job.soft_timeout,
                "limit_key": job.limit_key, "immutable": signature.immutable}
        return json.dumps(stored) if stored else None

    def fetch_workflow(self, workflow_id: int) -> WorkflowRecord | None:
        return self.inspector.workflow(workflow_id)

    def get_workflow(self, workflow_id: int) -> Workflow:
        record = self.fetch_workflow(_job_id(workflow_id, "workflow"))
        if record is None:
            raise JobNotFound(f"no workflow with id {workflow_id}")
        return Workflow(record, self)

    def workflows(self, limit: int = 50) -> list[WorkflowSummary]:
        """The latest workflows, newest first, with their members counted by state."""
        return self.inspector.workflows(limit)

    def cancel_workflow(self, workflow_id: int) -> None:
        """Cancel a workflow's waiting and queued members; ask running ones to stop."""
        if not self.backend.cancel_workflow(_job_id(workflow_id, "workflow")):
            raise JobNotFound(f"no workflow with id {workflow_id}")

    def prepare(self, task: str, *args: Any, **kwargs: Any) -> NewJob:
        return self.options(task).prepare(*args, **kwargs)

    def enqueue(self, task: str, *args: Any, **kwargs: Any) -> Job:
        """Enqueue by task name, for callers that do not import the task's code."""
        return self.options(task).enqueue(*args, **kwargs)

    def enqueue_many(self, jobs: Iterable[NewJob], *, connection: Any = None) -> list[Job]:
        """Store many prepared jobs in one transaction: all of them, or none. With
        `connection`, in that connection's open transaction instead (see Task.options)."""
        batch: list[NewJob] = list(jobs)
        if not batch:
            return []
        if len(batch) == 1 or not self._plainly_admissible(batch):  # (one: cheaper so)
            for index, job in enumerate(batch):
                if not isinstance(job, NewJob):
                    raise InvalidInput(
                        f"enqueue_many item {index} is {type(job).__name__}; build items with "
                        "task.prepare(...) or task.options(...).prepare(...)"
                    )
                self._admit(job, f"enqueue_many item {index}")
        batch, unregistered = self._by_name(batch)
        results = self.backend.enqueue_many(batch, connection=connection)
        self._warn_unregistered(unregistered, batch)
        if isinstance(results, StoredBatch):  # each record made if and when it is read
            return list(map(Job.stored, repeat(results), range(len(results)), repeat(self)))
        return list(map(Job, map(_RECORD, results), repeat(self)))

    def enqueue_one(self, job: NewJob) -> tuple[Job, bool]:
        """Store one prepared job and say whether it is new: `(job, False)` when a waiting or
        running job already held the same unique key and was returned instead (for the CLI)."""
        if not isinstance(job, NewJob):
            raise InvalidInput(
                f"enqueue_one takes a prepared job, got {type(job).__name__}; build it with "
                "task.prepare(...) or app.options(...).prepare(...)"
            )
        self._admit(job, "the job")
        batch, unregistered = self._by_name([job])
        result = self.backend.enqueue_many(batch)[0]
        self._warn_unregistered(unregistered, batch)
        return Job(result.record, self), result.created

    def _by_name(self, batch: list[NewJob]) -> tuple[list[NewJob], list[str]]:
        """Jobs of tasks this process does not know take what the caller left unset (queue,
        priority, max_attempts) from the task as a worker registered it: one indexed read,
        nothing cached. Also returns the names no worker ever registered. A task known here
        keeps its own settings, whatever is registered."""
        tasks = self._tasks
        names = set(map(_TASK, batch)).difference(tasks)
        if not names:
            return batch, []
        registered = self.inspector.registered_tasks(sorted(names))
        if registered:
            batch = [_with_registered(job, registered[job.task])
                     if job.task in registered and job.task not in tasks and (
                         job.defaulted or registered[job.task].limited
                         or job.limit_key is not None)
                     else job for job in batch]
        return batch, sorted(names - registered.keys())

    def _warn_unregistered(self, names: list[str], batch: list[NewJob]) -> None:
        for name in names:
            queues = ", ".join(repr(q) for q in sorted({j.queue for j in batch if j.task == name}))
            warnings.warn(
                f"no worker has registered task {name!r} and this process does not know it, "
                f"so its job went to queue {queues} with default settings: check the name, or "
                "start a worker that knows the task first (a worker registers its app's tasks, "
                "with their queue, when it starts)",
                ConveyorWarning,
                stacklevel=_outside_conveyor(),
            )

    def _plainly_admissible(self, batch: list[NewJob]) -> bool:
        """Whether every job of `batch` passes `_admit`, judged over the batch as a whole (what
        prepare makes always does): each rule once per column, at C speed. False when some
        job may not: `_admit`, job by job, then names it and says why."""
        if set(map(type, batch)) != {NewJob}:
            return False
        return (serializer.plainly_storable(column(batch, "args_json"),
                                            column(batch, "kwargs_json"),
                                            self.max_payload_bytes)
                and plainly_prepared(batch))

    def _admit(self, job: NewJob, what: str) -> None:
        """What `prepare` checked, checked again cheaply for a NewJob built by hand: the
        payload fits the size limit and is text every database stores, the time is showable.
        Nothing is decoded: O(1) for ASCII arguments but for a scan for NUL at C speed, one
        UTF-8 encode otherwise."""
        if not isinstance(job.args_json, str) or not isinstance(job.kwargs_json, str):
            raise InvalidInput(
                f"cannot enqueue {job.task!r} ({what}): args_json and kwargs_json must be JSON "
                "text (str); build jobs with task.prepare(...)"
            )
        sizes = [serializer.stored_size(text) for text in (job.args_json, job.kwargs_json)]
        if None in sizes or "\x00" in job.args_json or "\x00" in job.kwargs_json:
            raise InvalidInput(
                f"cannot enqueue {job.task!r} ({what}): its encoded arguments hold a NUL "
                "character or a lone surrogate; build jobs with task.prepare(...)"
            )
        size = sum(size for size in sizes if size is not None)
        if size > self.max_payload_bytes:
            raise PayloadTooLarge(
                f"cannot enqueue {job.task!r} ({what}): its arguments are "
                f"{serializer.format_size(size)} of JSON, over the limit of "
                f"{serializer.format_size(self.max_payload_bytes)}; pass a path or an id instead "
                "of the data, or raise max_payload_bytes (Conveyor(..., max_payload_bytes=...))"
            )
        check_prepared(job, what)

    # -- jobs ------------------------------------------------------------------------

    def fetch_record(self, job_id: int) -> JobRecord | None:
        return self.inspector.get(job_id)

    def get_job(self, job_id: int) -> Job:
        record = self.fetch_record(_job_id(job_id))
        if record is None:
            raise JobNotFound(f"no job with id {job_id}")
        return Job(record, self)

    def get_job_by_key(self, unique_key: str) -> Job | None:
        """The job a unique key names: the waiting or running job holding it, else the latest
        job that had it (finished; kept until pruned), else None."""
        key = validation.unique_key(unique_key)
        if key is None:
            raise InvalidInput("get_job_by_key needs a unique key (a non-empty str), got None")
        record = self.inspector.by_unique_key(key)
        return None if record is None else Job(record, self)

    def cancel(self, job_id: int) -> JobState:
        """Cancel a waiting job at once; ask a running one to stop. Returns the state after."""
        state = self.backend.cancel(_job_id(job_id))
        if state is None:
            raise JobNotFound(f"no job with id {job_id}")
        return state

    def retry(self, job_ids: Iterable[int]) -> list[int]:
        """Run failed or cancelled jobs again, each with a fresh set of attempts.

        Returns the ids that were retried. The others were not failed or cancelled, or
        another waiting or running job holds their unique key (`retry_report` says which)."""
        return list(self.retry_report(job_ids).retried)

    def retry_report(self, job_ids: Iterable[int]) -> RetryReport:
        """Like `retry`, and says which job holds the unique key of each job that could not
        be retried because of it."""
        return self.backend.retry([_job_id(job_id) for job_id in job_ids])

    def delete(self, job_ids: Iterable[int]) -> list[int]:
        """Delete jobs that are not running; returns the ids deleted."""
        return self.backend.delete([_job_id(job_id) for job_id in job_ids])

    def purge(self, queue: str, state: JobState | str | None = None, *,
              dry_run: bool = False) -> int:
        """Delete a queue's jobs (of one state, if given) that are not running.

        With dry_run, only count them."""
        return self.backend.purge(validation.queue_name(queue), _state(state), dry_run=dry_run)

    # -- queues ----------------------------------------------------------------------

    def queue(self, name: str, *, order: QueueOrder = "fifo",
              concurrency: int | None = None) -> QueueOptions:
        """Declare a queue's settings: `order="lifo"` runs the newest job of equal priority
        first; `concurrency=N` runs at most N of its jobs at once across every worker and
        host. Workers of this app store them when they start. Declaring a queue again with
        other settings is refused."""
        name = validation.queue_name(name)
        if order not in ("fifo", "lifo"):
            raise ConfigurationError(
                f"queue {name!r}: order must be 'fifo' or 'lifo', got {order!r}")
        if concurrency is not None:
            concurrency = limits.concurrency_limit(concurrency, where=f"queue {name!r}: ")
        options = QueueOptions(order=order, concurrency=concurrency)
        with self._lock:
            known = self._queues.setdefault(name, options)
        if known != options:
            raise ConfigurationError(
                f"queue {name!r} is declared twice with different settings ({known} and "
                f"{options}); declare it once")
        return options

    @property
    def queues(self) -> Mapping[str, QueueOptions]:
        """The queues declared with `queue()`."""
        return dict(self._queues)

    def pause_queue(self, name: str) -> None:
        """Stop every worker, on every host, from claiming jobs of queue `name` (enqueues go
        on); running jobs finish."""
        self.backend.set_queue(validation.queue_name(name), paused=True)

    def resume_queue(self, name: str) -> None:
        """Let workers claim from queue `name` again (they wake at once)."""
        self.backend.set_queue(validation.queue_name(name), paused=False)

    def queue_settings(self) -> list[QueueSettings]:
        """The stored settings of every queue that has some (others run, FIFO)."""
        return self.inspector.queue_settings()

    def prune(self, ages: PruneAges | None = None, *,
              dry_run: bool = False, max_rows: int | None = None) -> dict[JobState, int]:
        """Delete finished jobs that ended longer ago than their state's age: `ages` (seconds
        or a timedelta per final state; a state not named is kept), else the app's keep_*
        settings. Never a waiting or running job, nor the newest job of a schedule.

        Deletes PRUNE_BATCH rows per transaction, so workers' claims never wait long behind
        it, until none is left (or `max_rows` went). Returns how many went per state; with
        dry_run, how many would go, deleting nothing."""
        chosen = self.retention.ages() if ages is None else prune_ages(ages)
        budget = math.inf if max_rows is None else max_rows
        counts: dict[JobState, int] = {}
        for state, age in chosen.items():
            if dry_run:
                counts[state] = self.backend.prune({state: age}, dry_run=True)
                continue
            counts[state] = 0
            while budget > 0:
                batch = int(min(PRUNE_BATCH, budget))
                began = time.monotonic()
                deleted = self.backend.prune({state: age}, limit=batch)
                counts[state] += deleted
                budget -= deleted
                if deleted < batch:
                    break
                # Leave the write lock free as long as we held it: SQLite's waiting writers
                # (workers' claims) poll for it and would rarely catch it between batches.
                time.sleep(min(time.monotonic() - began, PRUNE_PAUSE_MAX))
        return counts

    def stop_workers(self, name: str | None = None) -> int:
        """Ask one worker (by name) or all of them to stop gracefully, through the database.
        Returns how many were asked."""
        return self.backend.request_worker_stop(name)

    def health(self, worker: str | None = None) -> list[str]:
        """Problems that make this deployment unhealthy; an empty list means healthy."""
        problems: list[str] = []
        try:
            version = self.inspector.schema_version()
        except Exception as exc:
            return [f"database unreachable: {exc}"]
        latest = known_migrations(self.backend)[-1][0]
        if version != latest:
            problems.append(f"schema version {version}, expected {latest}")
        if worker is None:
            if not problems:  # the queries below need the current schema
                problems += self._unserved_queues()
        else:
            rows = [row for row in self.inspector.workers() if row.name == worker]
            if not rows:
                problems.append(f"no worker named {worker!r} is registered")
            else:
                age = time.time() - rows[0].heartbeat_at
                limit = max(self.lease_timeout, 1.0)
                if age > limit:
                    problems.append(
                        f"worker {worker!r} last heartbeat {age:.1f} s ago (limit {limit:.0f} s)"
                    )
        return problems

    def _unserved_queues(self) -> list[str]:
        """Queues with jobs that could run now but no live worker (heartbeat within the lease
        timeout, not asked to stop) to run them."""
        now = time.time()
        limit = max(self.lease_timeout, 1.0)
        served = {queue for row in self.inspector.workers()
                  if now - row.heartbeat_at <= limit and not row.stop_requested
                  for queue in row.queues}
        unserved = [queue for queue in self.inspector.runnable_queues() if queue not in served]
        if not unserved:
            return []
        one = len(unserved) == 1
        return [f"no live worker serves {'queue' if one else 'queues'} "
                f"{', '.join(repr(queue) for queue in unserved)}, which "
                f"{'has' if one else 'have'} jobs ready to run; start one with: "
                f"conveyor worker -q {','.join(unserved)}"]

    # -- schema ----------------------------------------------------------------------

    @contextmanager
    def _schema_backend(self) -> Iterator[Backend]:
        """A backend that leaves the schema as it is: the injected one, else one opened
        without auto-migration for the call (the app's own migrates SQLite as it opens)."""
        with self._lock:
            injected = self._backend if self._injected else None
        if injected is not None and self._backend_pid == os.getpid():
            yield injected
            return
        backend = open_backend(self.url, durability=self.durability, auto_migrate=False)
        try:
            yield backend
        finally:
            backend.close()

    def schema_status(self) -> SchemaStatus:
        """The database's schema version against the versions this conveyor knows."""
        with self._schema_backend() as backend:
            current = backend.schema_version()
            known = known_migrations(backend)
        return SchemaStatus(
            current=current,
            latest=known[-1][0],
            pending=tuple(name for version, name in known if version > current),
        )

    def migrate(self) -> SchemaStatus:
        """Apply the pending migrations (safe to run from several hosts at once)."""
        if not self._injected:
            self.close()
        with self._schema_backend() as backend:
            backend.migrate()
        return self.schema_status()

    # -- workers ---------------------------------------------------------------------

    def worker(
        self,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        pool: str = "thread",
        burst: bool = False,
        shutdown_timeout: float = 30.0,
        name: str | None = None,
        burst_horizon: float = 60.0,
        scheduler: bool = True,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | str | None = None,
        prefetch: int | str | None = "auto",
    ) -> Runner:
        """A worker for this app (a `conveyor.Worker`); `.run()` blocks until it stops. With
        `burst`, it stops once nothing is left to claim and no job of its queues is due within
        `burst_horizon` seconds (retries waiting on their backoff, short delays). With
        `scheduler` (the default) it also fires the app's schedules (see `schedule`). The
        process pool replaces a process after `max_tasks_per_child` jobs, or once its peak
        RSS is over `max_memory_per_child` (bytes, or "512MB", "1GiB"). `prefetch`: how many
        claimed jobs the thread pool may hold beyond its threads ("auto": enough for jobs to
        wait about 10 ms, none for long jobs; 0: none)."""
        factory = runners.worker_factory
        if factory is None:  # only when conveyor's package __init__ did not run
            raise ConfigurationError(
                "no worker runtime is registered; import conveyor (its __init__ registers "
                "conveyor.Worker) or call conveyor.app.register_worker_factory(...)"
            )
        return factory(
            self,
            queues=queues,
            concurrency=concurrency,
            pool=pool,
            burst=burst,
            shutdown_timeout=shutdown_timeout,
            name=name,
            burst_horizon=burst_horizon,
            scheduler=scheduler,
            max_tasks_per_child=max_tasks_per_child,
            max_memory_per_child=max_memory_per_child,
            prefetch=prefetch,
        )


def _with_registered(job: NewJob, info: TaskInfo) -> NewJob:
    unset = job.defaulted
    key = job.limit_key
    if not info.limited and key is not None:
        # Stored, the key would put the job among limited jobs that no limit governs.
        raise InvalidInput(
            f"cannot enqueue {job.task!r}: limit_key {key!r} keys a task's rate and "
            "concurrency limits, and the task (as a worker registered it) has none; leave "
            "limit_key out, or declare rate_limit= or concurrency= in @app.task(...)")
    if info.limited and key is None:
        if info.keyed:
            raise InvalidInput(
                f"cannot enqueue {job.task!r}: its limits are keyed by a function of its "
                "arguments that this process does not have; give the job's key with "
                "options(limit_key=...) (conveyor enqueue --limit-key), or enqueue from a "
                "process that imports the task")
        key = ""  # the task's one budget
    return replace(
        job,
        queue=info.queue if "queue" in unset else job.queue,
        priority=info.priority if "priority" in unset else job.priority,
        max_attempts=info.max_attempts if "max_attempts" in unset else job.max_attempts,
        defaulted=frozenset(),
        limit_key=key,
    )


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _outside_conveyor() -> int:
    """The stacklevel of the first caller outside conveyor: where a warning points."""
    level, frame = 2, sys._getframe(2)  # the caller of the function that calls this
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def _state(value: JobState | str | None) -> JobState | None:
    if value is None:
        return None
    try:
        return JobState(value)
    except ValueError:
        allowed = ", ".join(state.value for state in JobState)
        raise InvalidInput(f"unknown state {value!r}; use one of {allowed}") from None


def _workflow_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200 or not (
            value.isprintable()):
        raise InvalidInput(f"a workflow's name is printable text of 1 to 200 characters, got "
                           f"{value!r:.60}")
    return value


def _schedule_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"a schedule name is a non-empty str, got {value!r}")
    return value


def _job_id(value: Any, what: str = "job") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInput(f"a {what} id is a positive int, got {value!r}")
    return value
