"""Tasks: plain functions registered with an app, enqueued as jobs."""

from __future__ import annotations

import functools
import inspect
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from . import limits, options, serializer, validation
from .backends.base import ClaimedJob, NewJob, TaskInfo
from .canvas import Signature
from .errors import InvalidInput
from .job import Job
from .limits import Rate
from .links import JobLinks
from .options import JobOptions
from .records import JobTies

P = ParamSpec("P")
R = TypeVar("R")


class Enqueuer(Protocol):
    @property
    def max_payload_bytes(self) -> int: ...

    def enqueue_many(self, jobs: Sequence[NewJob], *, connection: Any = None) -> list[Job]: ...

    def stored_callbacks(self, links: JobLinks) -> str | None:
        """A job's callbacks as they are stored with it (JSON), each checked."""
        ...


@dataclass(frozen=True, slots=True)
class TaskLimits:
    """A task's rate and concurrency limits, enforced by the database across every worker.
    Each limit key has its own budget: `key` computes a job's key from its arguments at
    enqueue (None: every job shares the key '' unless given one with options(limit_key=))."""

    rate: Rate | None = None
    concurrency: int | None = None
    key: Callable[..., Any] | None = None

    @classmethod
    def checked(cls, task: str, rate_limit: Any, concurrency: Any,
                limit_key: Any) -> TaskLimits | None:
        """The limits `@app.task(...)` was given, each checked; None when there are none."""
        rate = None if rate_limit is None else limits.parse_rate(rate_limit, task=task)
        if concurrency is not None:
            concurrency = limits.concurrency_limit(concurrency, where=f"task {task!r}: ")
        if limit_key is not None:
            if isinstance(limit_key, str) or not callable(limit_key):
                raise InvalidInput(
                    f"task {task!r}: limit_key must be a function of the job's arguments "
                    f"(e.g. lambda tenant, **_: tenant), got {limit_key!r}; to give one job "
                    "its key, use task.options(limit_key=...)")
            if rate is None and concurrency is None:
                raise InvalidInput(f"task {task!r}: limit_key keys the task's limits, and it "
                                   "has none: give rate_limit= or concurrency= as well")
        if rate is None and concurrency is None:
            return None
        return cls(rate, concurrency, limit_key)

    def key_of(self, task: str, arguments: dict[str, Any]) -> str:
        """The limit key of a job whose arguments, by parameter name, are `arguments`, or
        InvalidInput naming the task."""
        if self.key is None:
            return ""
        try:
            value = self.key(**arguments)
        except Exception as exc:
            raise InvalidInput(f"cannot enqueue {task!r}: its limit_key function raised "
                               f"{type(exc).__name__}: {exc}") from exc
        return limits.limit_key(value, task=task)


@dataclass(frozen=True, slots=True)
class TaskSettings:
    """A task's name and defaults; options given at enqueue override them for one job."""

    name: str
    defaults: JobOptions = options.DEFAULTS
    # Which exceptions are retried (policy.classify): task-level only, as classes cannot be
    # stored with a job. Empty retry_on: every Exception.
    retry_on: tuple[type[Exception], ...] = ()
    no_retry_on: tuple[type[Exception], ...] = ()
    limits: TaskLimits | None = None

    @classmethod
    def checked(cls, name: Any, *, retry_on: Any = (), no_retry_on: Any = (),
                rate_limit: Any = None, concurrency: Any = None, limit_key: Any = None,
                **defaults: Any) -> TaskSettings:
        """Settings from what `@app.task(...)` was given (UNSET: conveyor's default)."""
        extra = sorted(set(defaults) - set(options.TASK_NAMES))
        if extra:
            raise InvalidInput(f"a task holds no default for {', '.join(extra)}; give it per "
                               "job with task.options(...)")
        checked_name = validation.task_name(name)
        try:
            job_options = JobOptions.checked(**defaults)
        except InvalidInput as exc:
            if "soft_timeout" not in str(exc):  # one message for an option from every way in
                raise
            raise InvalidInput(f"task {checked_name!r}: {exc}") from None
        return cls(checked_name, job_options,
                   _exception_classes(checked_name, "retry_on", retry_on),
                   _exception_classes(checked_name, "no_retry_on", no_retry_on),
                   TaskLimits.checked(checked_name, rate_limit, concurrency, limit_key))

    @property
    def queue(self) -> str:
        return self.defaults.queue

    @property
    def priority(self) -> int:
        return self.defaults.priority

    @property
    def max_attempts(self) -> int:
        return self.defaults.max_attempts

    @property
    def backoff(self) -> float:
        return self.defaults.backoff

    @property
    def timeout(self) -> float | None:
        return self.defaults.timeout

    @property
    def soft_timeout(self) -> float | None:
        return self.defaults.soft_timeout


def _exception_classes(task: str, option: str, value: Any) -> tuple[type[Exception], ...]:
    """`value` (an exception class or a tuple of them, as isinstance takes) as a tuple."""
    classes = value if isinstance(value, tuple | list) else (value,)
    wrong = [c for c in classes if not (isinstance(c, type) and issubclass(c, Exception))]
    if wrong:
        raise InvalidInput(
            f"task {task!r}: {option} must be an exception class or a tuple of them "
            f"(subclasses of Exception), got {', '.join(map(repr, wrong))}"
        )
    return tuple(classes)


def default_task_name(fn: Callable[..., Any]) -> str:
    """`module.qualname`; a script run as __main__ is named after its file, so a worker that
    imports it by module name agrees on the name."""
    module = getattr(fn, "__module__", None) or "unknown"
    if module == "__main__":
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        if main_file:
            module = Path(main_file).stem
    return f"{module}.{getattr(fn, '__qualname__', getattr(fn, '__name__', 'task'))}"


# Refuses arguments a task's function cannot take (raises InvalidInput).
ArgumentCheck = Callable[[tuple[Any, ...], dict[str, Any]], None]
# A job's arguments by the name of the task's parameter each binds to (defaults included).
NamedArguments = Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]


def _by_position(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Named arguments without a signature to bind to: keywords only (positional ones are
    refused by a key function that needs them, with the function's own TypeError)."""
    if args:
        raise TypeError(f"{len(args)} positional argument(s) with no signature to name them")
    return dict(kwargs)

# Argument shapes (positional count, keyword names) whose fit a task remembers.
MAX_SHAPES = 256
_UNCHECKED: Any = object()

# Marks an option the caller did not give, so the task default applies.
UNSET: Any = options.UNSET
_UNSET = UNSET


class TaskCall(Generic[P, R]):
    """A task (or a task name) with per-job options bound; `.enqueue()` stores one job."""

    __slots__ = ("_check", "_connection", "_enqueuer", "_limits", "_links", "_name",
                 "_named", "_options", "_template")

    def __init__(
        self,
        enqueuer: Enqueuer,
        settings: TaskSettings,
        job_options: JobOptions | None = None,
        *,
        connection: Any = None,
        check: ArgumentCheck | None = None,
        named: NamedArguments | None = None,
        links: JobLinks | None = None,
    ) -> None:
        self._enqueuer = enqueuer
        self._links = links
        self._check = check
        self._named = named if named is not None else _by_position
        self._connection = connection
        self._name = settings.name
        # The task's defaults, with what was given for this job (checked in JobOptions).
        self._options = opts = settings.defaults if job_options is None else job_options
        # What every job prepared from here stores, worked out once: prepare (per job) copies
        # it with the job's arguments.
        self._template = NewJob(
            self._name, opts.queue, "[]", "{}", opts.priority, opts.max_attempts,
            opts.unique_key, opts.at, opts.delay or None,
            # Stored with the job only when given: the worker falls back to the task's own.
            opts.job_backoff, opts.job_timeout, opts.job_soft_timeout, opts.defaulted,
        )
        # Jobs of a limited task (or given a key) store their limit key; others skip this.
        self._limits = settings.limits if settings.limits is not None else (
            TaskLimits() if opts.limit_key is not None else None)

    @property
    def job_options(self) -> JobOptions:
        return self._options

    def prepare(self, *args: P.args, **kwargs: P.kwargs) -> NewJob:
        """A validated job for `Conveyor.enqueue_many`, not yet stored."""
        if self._check is not None:
            self._check(args, kwargs)
        args_json, kwargs_json = serializer.encode_arguments(
            self._name, args, kwargs, self._enqueuer.max_payload_bytes
        )
        key = None
        if self._limits is not None:
            key = self._options.limit_key
            if key is None:
                key = self._limits.key_of(self._name, self._named(args, kwargs))
        job = self._template.with_arguments(args_json, kwargs_json, key)
        links = self._links
        if links is None:
            return job
        return replace(job, ties=JobTies(links.depends_on, links.on_parent_failure,
                                         self._enqueuer.stored_callbacks(links),
                                         links.reuse_for))

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A signature of this job, for a workflow (chain, group, chord) or a callback: it
        gets the result of the step before it as its first argument."""
        return self._signature(args, kwargs, immutable=False)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """An immutable signature: it waits for the step before it but ignores its result."""
        return self._signature(args, kwargs, immutable=True)

    def _signature(self, args: tuple[Any, ...], kwargs: dict[str, Any], *,
                   immutable: bool) -> Signature:
        if self._links is not None and (
                self._links.depends_on or self._links.on_success or self._links.on_failure):
            raise InvalidInput(
                f"{self._name!r}: a workflow step waits for the steps before it and takes its "
                "policy from the workflow; depends_on, on_success and on_failure are for "
                "jobs enqueued on their own")
        return Signature(self._name, args, dict(kwargs), immutable,
                         (self._options, self._links), self._enqueuer)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Store one job; when this returns, the job is committed (or, with `connection`,
        written in that connection's open transaction, to exist if the caller commits)."""
        return self._enqueuer.enqueue_many(
            [self.prepare(*args, **kwargs)], connection=self._connection
        )[0]

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """`enqueue`, by the name a Celery user types."""
        return self.enqueue(*args, **kwargs)


class Task(Generic[P, R]):
    """A registered function. Call it to run inline; `.enqueue()` to run it on a worker."""

    def __init__(self, enqueuer: Enqueuer, fn: Callable[P, R], settings: TaskSettings) -> None:
        self._enqueuer = enqueuer
        self.fn = fn
        self.settings = settings
        self.is_async = inspect.iscoroutinefunction(fn)
        self.__name__ = getattr(fn, "__name__", settings.name)
        self.__qualname__ = getattr(fn, "__qualname__", settings.name)
        self.__module__ = getattr(fn, "__module__", __name__)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        self._misfits: dict[object, str | None] = {}  # argument shape -> why it does not bind
        self._defaults: TaskCall[P, R] = TaskCall(enqueuer, settings,
                                                  check=self.check_arguments,
                                                  named=self.named_arguments)

    @property
    def name(self) -> str:
        return self.settings.name

    def backoff_for(self, job: ClaimedJob) -> float:
        """The retry backoff of one job: its own (task.options(backoff=...)), else the task's."""
        return self.settings.backoff if job.backoff is None else job.backoff

    def timeout_for(self, job: ClaimedJob) -> float | None:
        """The timeout of one job: its own (None when it has no limit), else the task's."""
        if job.timeout is None:
            return self.settings.timeout
        return None if math.isinf(job.timeout) else job.timeout

    def soft_timeout_for(self, job: ClaimedJob) -> float | None:
        """The soft limit of one job: its own (task.options(soft_timeout=...); none when
        infinite), else the task's; only when below the job's timeout (its own or the
        task's): a job given a shorter timeout than the task's soft limit has none."""
        soft = self.settings.soft_timeout if job.soft_timeout is None else job.soft_timeout
        if soft is None or math.isinf(soft):
            return None
        hard = self.timeout_for(job)
        return soft if hard is None or soft < hard else None

    @property
    def info(self) -> TaskInfo:
        """What a worker registers about this task, for enqueues by name elsewhere."""
        settings, limited = self.settings, self.settings.limits
        if limited is None:
            return TaskInfo(settings.name, settings.queue, settings.priority,
                            settings.max_attempts)
        return TaskInfo(settings.name, settings.queue, settings.priority, settings.max_attempts,
                        limited.rate, limited.concurrency, limited.key is not None)

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.settings.queue}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def options(
        self,
        *,
        queue: str = _UNSET,
        priority: int = _UNSET,
        delay: float | timedelta | None = None,
        at: datetime | None = None,
        unique_key: str | None = None,
        max_attempts: int = _UNSET,
        connection: Any = None,
        backoff: float | timedelta = _UNSET,
        timeout: float | timedelta | None = _UNSET,
        soft_timeout: float | timedelta | None = _UNSET,
        limit_key: str | None = None,
        depends_on: Iterable[Job | int] | Job | int | None = None,
        on_parent_failure: str | None = None,
        on_success: Signature | None = None,
        on_failure: Signature | None = None,
        reuse_for: float | timedelta | None = None,
    ) -> TaskCall[P, R]:
        """Per-job options. `connection`: enqueue through your own open database connection
        and transaction (a sqlite3 connection to the same file, or a psycopg connection),
        so the job exists if and only if you commit. `backoff` and `timeout` are stored with
        the job and override the task's for it (`timeout=None`: no limit for this job), and
        so is `soft_timeout` (below the job's timeout; None: no soft limit for this job).
        `limit_key`: this job's key of the task's rate and concurrency limits.

        `depends_on`: jobs (handles or ids) it waits for; it runs once all of them ended.
        `on_parent_failure`: "cancel" (default: a failed or cancelled parent cancels it) or
        "run". `on_success` / `on_failure`: signatures enqueued when it succeeds (fed its
        result) or fails (fed its id and its error, {"type", "message"}). `reuse_for`: with
        `unique_key`, a job with that key that succeeded this recently is returned, result
        and all, instead of running again."""
        if limit_key is not None and self.settings.limits is None:
            raise InvalidInput(f"task {self.name!r} has no rate_limit or concurrency for "
                               "limit_key to key; declare them in @app.task(...)")
        job_options = self.settings.defaults.override(
            queue=queue, priority=priority, max_attempts=max_attempts, delay=delay, at=at,
            unique_key=unique_key, backoff=backoff, timeout=timeout,
            soft_timeout=soft_timeout, limit_key=limit_key,
        )
        return TaskCall(
            self._enqueuer,
            self.settings,
            job_options,
            connection=connection,
            check=self.check_arguments,
            named=self.named_arguments,
            links=JobLinks.checked(depends_on=depends_on, on_parent_failure=on_parent_failure,
                                   on_success=on_success, on_failure=on_failure,
                                   reuse_for=reuse_for, unique_key=job_options.unique_key),
        )

    def s(self, *args: P.args, **kwargs: P.kwargs) -> Signature:
        """A signature of a job of this task (`TaskCall.s`), for workflows and callbacks."""
        return self._defaults.s(*args, **kwargs)

    def si(self, *args: P.args, **kwargs: P.kwargs) -> Signature:
        """An immutable signature: it ignores the result of the step before it."""
        return self._defaults.si(*args, **kwargs)

    def prepare(self, *args: P.args, **kwargs: P.kwargs) -> NewJob:
        return self._defaults.prepare(*args, **kwargs)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        return self._defaults.enqueue(*args, **kwargs)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """`enqueue`, by the name a Celery user types."""
        return self._defaults.enqueue(*args, **kwargs)

    @functools.cached_property
    def _signature(self) -> inspect.Signature | None:
        try:
            return inspect.signature(self.fn)
        except (TypeError, ValueError):  # some callables (builtins) have none to read
            return None

    def check_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Refuse, at enqueue, arguments the function cannot take (a wrong count, an unknown
        keyword) instead of failing the job in a worker max_attempts times.

        Whether arguments bind depends only on how many are positional and which keywords
        are given, never on their values: the answer is kept per shape (a dict lookup instead
        of a bind, for the few shapes a task is called with)."""
        shape = (len(args), tuple(kwargs)) if kwargs else len(args)
        problem = self._misfits.get(shape, _UNCHECKED)
        if problem is _UNCHECKED:
            problem = self._bind_problem(args, kwargs)
            if len(self._misfits) < MAX_SHAPES:  # **kwargs tasks: keyword sets without end
                self._misfits[shape] = problem
        if problem is not None:
            raise InvalidInput(f"cannot enqueue {self.name!r}: {problem}")

    def named_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """A job's arguments by parameter name, defaults included: what a `limit_key`
        function is called with, so `lambda tenant, **_: tenant` works however the job was
        enqueued."""
        signature = self._signature
        if signature is None:
            return _by_position(args, kwargs)
        bound = signature.bind(*args, **kwargs)  # (check_arguments refused a misfit first)
        bound.apply_defaults()
        named = dict(bound.arguments)
        for parameter in signature.parameters.values():
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:  # def f(**kwargs): by name
                named.update(named.pop(parameter.name, {}))
        return named

    def _bind_problem(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        signature = self._signature
        if signature is None:
            return None
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            shown = signature.replace(return_annotation=inspect.Signature.empty)
            return f"{exc}; the task takes {self.__name__}{shown}"
        return None
