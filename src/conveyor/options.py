"""Job options, declared once.

Each option of a job (queue, priority, max_attempts, backoff, timeout, delay, at, unique_key)
is declared here and nowhere else: its field and default in `JobOptions`, its check in
`CHECKS`. Every way in goes through them: `@app.task(...)` for a task's defaults,
`task.options(...)` and `app.options(name, ...)` for one job, the flags of `conveyor enqueue`.
So a wrong value is refused with the same message wherever it comes from, and a new option is
added here first (tests/test_job_options.py checks that each way in offers every option).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Final

from . import limits, validation
from .backends.base import NewJob
from .errors import InvalidInput
from .records import column


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


# An option the caller did not give: the task's setting applies (else conveyor's default).
UNSET: Any = _Unset()

# The options a worker registers with a task, so a process that enqueues the task by name
# without knowing it takes them for whatever it does not give itself.
REGISTERED: Final = frozenset({"queue", "priority", "max_attempts"})


@dataclass(frozen=True, slots=True)
class JobOptions:
    """A job's options, with conveyor's defaults. A task's settings hold one (its defaults,
    from `@app.task(...)`); one job's are the task's with what its caller gave (`override`)."""

    queue: str = "default"
    priority: int = 0  # -1000..1000; smaller runs first
    max_attempts: int = 3
    backoff: float = 1.0  # seconds before the first retry; then doubling, with jitter
    timeout: float | None = None  # seconds one attempt may run; None: no limit
    # Seconds after which SoftTimeLimitExceeded is raised inside the task; below timeout.
    # A task's setting only: a job row has no column for its own (see TaskCall).
    soft_timeout: float | None = None
    delay: float | None = None  # seconds from enqueue to the first run
    at: float | None = None  # the time of the first run, as a timestamp (given: aware datetime)
    unique_key: str | None = None  # while a job holding it waits or runs, enqueue returns that
    # The key of the task's rate and concurrency limits for this job (each key its own
    # budget); else the task's limit_key function decides, or all jobs share one budget.
    limit_key: str | None = None
    given: frozenset[str] = frozenset()  # the options given for this job, not the task's

    @classmethod
    def checked(cls, **values: Any) -> JobOptions:
        """conveyor's defaults with `values` (those not UNSET), each through its check."""
        return cls(**checked_values(values))

    def override(self, **values: Any) -> JobOptions:
        """These options with `values` (those not UNSET) given for one job, each checked."""
        given = checked_values(values)
        if not given:
            return self
        merged: list[Any] = [given[name] if name in given else getattr(self, name)
                             for name in NAMES]
        merged.append(self.given.union(given))
        options = JobOptions(*merged)  # as dataclasses.replace(), in half the time
        soft = given.get("soft_timeout")
        if soft is not None and options.timeout is not None and soft >= options.timeout:
            raise InvalidInput(
                f"soft_timeout ({soft:g} s) must be below the job's timeout "
                f"({options.timeout:g} s): the soft limit warns the task before the hard "
                "limit stops it")
        return options

    @property
    def job_backoff(self) -> float | None:
        """The backoff stored with the job: its own when given, else None (the worker then
        takes the task's)."""
        return self.backoff if "backoff" in self.given else None

    @property
    def job_timeout(self) -> float | None:
        """The timeout stored with the job: its own when given (math.inf for no limit), else
        None (the worker then takes the task's)."""
        if "timeout" not in self.given:
            return None
        return math.inf if self.timeout is None else self.timeout

    @property
    def job_soft_timeout(self) -> float | None:
        """The soft limit stored with the job: its own when given (math.inf for none), else
        None (the worker then takes the task's)."""
        if "soft_timeout" not in self.given:
            return None
        return math.inf if self.soft_timeout is None else self.soft_timeout

    @property
    def defaulted(self) -> frozenset[str]:
        """The registered options left to the task, which a task registered by a worker fills
        in when the enqueuing process does not know the task."""
        return _defaulted(self.given)


# conveyor's defaults: what a task has that `@app.task` gave nothing for.
DEFAULTS: Final = JobOptions()


@functools.cache
def _defaulted(given: frozenset[str]) -> frozenset[str]:
    return REGISTERED - given  # one shared set per combination


def _optional(rule: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else rule(value)


# Each option's one check: the value as conveyor keeps it, or InvalidInput naming the option and
# saying what is allowed.
CHECKS: Final[Mapping[str, Callable[[Any], Any]]] = MappingProxyType({
    "queue": validation.queue_name,
    "priority": validation.priority,
    "max_attempts": validation.max_attempts,
    "backoff": functools.partial(validation.non_negative_seconds, "backoff"),
    "timeout": functools.partial(validation.positive_seconds_or_none, "timeout"),
    "soft_timeout": functools.partial(validation.positive_seconds_or_none, "soft_timeout"),
    "delay": _optional(validation.delay_seconds),
    "at": _optional(functools.partial(validation.aware_datetime, "at")),
    "unique_key": validation.unique_key,
    "limit_key": limits.limit_key,
})

NAMES: Final = tuple(field.name for field in fields(JobOptions) if field.name != "given")
# The options a task holds defaults for (`@app.task(...)`); the others are one job's own.
TASK_NAMES: Final = ("queue", "priority", "max_attempts", "backoff", "timeout", "soft_timeout")
assert set(CHECKS) == set(NAMES) and set(TASK_NAMES) <= set(NAMES)
# Settings of a task alone, never of one job: exception classes cannot be stored with a job
# (checked in task.TaskSettings).
TASK_ONLY_NAMES: Final = ("retry_on", "no_retry_on", "rate_limit", "concurrency", "limit_key")
_NONE_IS_UNSET: Final = frozenset({"delay", "at", "unique_key", "limit_key"})
_LOW, _HIGH = validation.PRIORITY_RANGE


def check(name: str, value: Any) -> Any:
    """`value` of the option `name` as conveyor keeps it, or InvalidInput saying why not."""
    try:
        rule = CHECKS[name]
    except KeyError:
        raise InvalidInput(
            f"unknown job option {name!r}; the options are {', '.join(NAMES)}"
        ) from None
    return rule(value)


def checked_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The options of `values` that are given, each checked, and checked together. UNSET is
    not given; nor is None for an option whose default is None anyway (delay, at, unique_key;
    `timeout=None` is given: no limit for this job)."""
    given: dict[str, Any] = {}
    for name, value in values.items():
        if value is UNSET or (value is None and name in _NONE_IS_UNSET):
            continue
        rule = CHECKS.get(name)
        given[name] = check(name, value) if rule is None else rule(value)
    if "delay" in given and "at" in given:
        raise InvalidInput("give either delay or at, not both")
    soft, hard = given.get("soft_timeout"), given.get("timeout")
    if soft is not None and hard is not None and soft >= hard:
        raise InvalidInput(f"soft_timeout ({soft:g} s) must be below timeout ({hard:g} s): the "
                           "soft limit warns the task before the hard limit stops it")
    return given


def check_prepared(job: NewJob, what: str) -> None:
    """The options of a job built by hand (a NewJob, not from `prepare`), in the form it
    stores them, by the same rules; `what` says which job of a batch."""
    try:
        if type(job.task) is str and type(job.queue) is str:
            _names(job.task, job.queue)
        else:
            validation.task_name(job.task)
            validation.queue_name(job.queue)
        priority, attempts = job.priority, job.max_attempts  # ints in range: no call
        if type(priority) is not int or not _LOW <= priority <= _HIGH:
            validation.priority(priority)
        if type(attempts) is not int or not 1 <= attempts <= validation.MAX_ATTEMPTS_LIMIT:
            validation.max_attempts(attempts)
        if job.unique_key is not None:
            validation.unique_key(job.unique_key)
        if job.limit_key:  # ('' is a limited task's one shared key)
            limits.limit_key(job.limit_key)
        elif job.limit_key is not None and job.limit_key != "":
            raise InvalidInput(f"limit_key must be a str, got {job.limit_key!r}")
    except InvalidInput as exc:
        raise InvalidInput(f"cannot enqueue {job.task!r} ({what}): {exc}") from None
    if job.delay is not None:
        validation.delay_seconds(job.delay)
    if job.backoff is not None:
        validation.non_negative_seconds("backoff", job.backoff)
    if job.timeout is not None and not (
        isinstance(job.timeout, int | float) and not isinstance(job.timeout, bool)
        and job.timeout > 0  # inf: no limit
    ):
        raise InvalidInput(
            f"cannot enqueue {job.task!r} ({what}): timeout={job.timeout!r} is not a number "
            "of seconds > 0 (math.inf: no limit; None: the task's)"
        )
    if job.soft_timeout is not None and not (
        isinstance(job.soft_timeout, int | float) and not isinstance(job.soft_timeout, bool)
        and job.soft_timeout > 0  # inf: none
    ):
        raise InvalidInput(
            f"cannot enqueue {job.task!r} ({what}): soft_timeout={job.soft_timeout!r} is not a "
            "number of seconds > 0 (math.inf: none; None: the task's)"
        )
    if job.run_at is not None and not (
        isinstance(job.run_at, int | float)
        and validation.MIN_TIMESTAMP <= job.run_at <= validation.MAX_TIMESTAMP
    ):
        raise InvalidInput(
            f"cannot enqueue {job.task!r} ({what}): run_at={job.run_at!r} is not a time "
            "within the years 1..9999"
        )


_NUMBER_OR_NONE = frozenset({int, float, type(None)})
_TEXT_OR_NONE = frozenset({str, type(None)})


def plainly_prepared(jobs: Sequence[NewJob]) -> bool:
    """Whether every job of `jobs` passes check_prepared, judged over the batch's columns: each
    distinct value checked once, types and ranges at C speed. False means some job may not
    (a unique key, a value of another type than prepare makes): check_prepared, job by job,
    then says which and why. Never True for a batch that check_prepared refuses."""
    def of(name: str) -> list[Any]:
        return column(jobs, name)

    task, queue, limit_key = of("task"), of("queue"), of("limit_key")
    return (
        _types(task) == _types(queue) == {str}
        and _all_pass(set(zip(task, queue, strict=True)), lambda pair: _names(*pair))
        and _int_within(of("priority"), _LOW, _HIGH)
        and _int_within(of("max_attempts"), 1, validation.MAX_ATTEMPTS_LIMIT)
        and of("unique_key").count(None) == len(jobs)
        and _types(limit_key) <= _TEXT_OR_NONE
        and _all_pass(set(limit_key) - {None, ""}, limits.limit_key)
        and _numbers_pass(of("delay"), validation.delay_seconds)
        and _numbers_pass(of("backoff"),
                          functools.partial(validation.non_negative_seconds, "backoff"))
        and _numbers_pass(of("timeout"), _positive)
        and _numbers_pass(of("soft_timeout"), _positive)
        and _numbers_pass(of("run_at"), _showable_time)
    )


def _types(column: Sequence[Any]) -> set[type]:
    return set(map(type, column))


def _all_pass(values: Iterable[Any], rule: Callable[[Any], Any]) -> bool:
    try:
        for value in values:
            rule(value)
    except InvalidInput:
        return False
    return True


def _int_within(column: Sequence[Any], low: int, high: int) -> bool:
    return _types(column) == {int} and low <= min(column) and max(column) <= high


def _numbers_pass(column: Sequence[Any], rule: Callable[[Any], Any]) -> bool:
    """Each distinct number of `column` passes `rule`; None passes. Numbers only (no bool), so
    values that are equal (1 and 1.0) are alike to the rule."""
    if column.count(None) == len(column):
        return True
    return _types(column) <= _NUMBER_OR_NONE and _all_pass(set(column) - {None}, rule)


def _positive(seconds: float) -> None:
    if not seconds > 0:  # (NaN too)
        raise InvalidInput("not > 0")


def _showable_time(timestamp: float) -> None:
    if not validation.MIN_TIMESTAMP <= timestamp <= validation.MAX_TIMESTAMP:
        raise InvalidInput("not within the years 1..9999")


@functools.lru_cache(maxsize=1024)
def _names(task: str, queue: str) -> None:
    """A task and queue name checked once, for the few pairs a process enqueues (a refused
    pair raises, and is not remembered)."""
    validation.task_name(task)
    validation.queue_name(queue)
