"""Run one job and return its outcome (the policy decides how a failed attempt ends).
Never touches the database."""

from __future__ import annotations

import functools
import json
import random
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..backends.base import ClaimedJob
from ..context import JobContext, activate, deactivate
from ..errors import JobCancelled, PayloadTooLarge, SoftTimeLimitExceeded
from ..job import JobError, Progress
from ..outcomes import Outcome, Succeeded
from ..policy import AttemptFacts, Cause, classify, decide
from ..serializer import DEFAULT_MAX_PAYLOAD, KIB, clip_text, encode_result, storable_text
from ..task import Task
from .time_limits import Arm, call_with_limit, soft_limited

TaskLookup = Mapping[str, Task[Any, Any]]

MAX_ERROR_TYPE = 1 * KIB
MAX_ERROR_MESSAGE = 64 * KIB  # bytes; a longer message is cut, saying so
MAX_TRACEBACK = 64 * KIB  # bytes; the start and the end are kept


def error_from_exception(exc: BaseException) -> JobError:
    """What `exc` says, as text any database stores: never raising (a __str__ that fails),
    lone surrogates and NUL escaped, each part cut to a bounded size."""
    cls = type(exc)
    try:
        name = cls.__qualname__
        if cls.__module__ != "builtins":
            name = f"{cls.__module__}.{name}"
    except Exception:  # a class with a strange __qualname__ or __module__
        name = "Exception"
    try:
        message = str(exc)
    except Exception as inner:
        message = f"<str() of the exception raised {type(inner).__name__}>"
    try:
        text = "".join(traceback.format_exception(cls, exc, exc.__traceback__))
    except Exception as inner:
        text = f"<the traceback could not be formatted: {type(inner).__name__}>"
    return JobError(
        clip_text(storable_text(name), MAX_ERROR_TYPE),
        clip_text(storable_text(message), MAX_ERROR_MESSAGE),
        clip_text(storable_text(text), MAX_TRACEBACK, keep_end=True),
    )


def facts_of(job: ClaimedJob, task: Task[Any, Any] | None, started_at: float) -> AttemptFacts:
    """What the outcome policy needs to know about an attempt of `job` (run by `task`)."""
    return AttemptFacts(
        job_id=job.id,
        token=job.token,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        started_at=started_at,
        backoff=task.backoff_for(job) if task is not None else None,
        cancel_requested=job.cancel_requested,
        run_at=job.run_at,
    )


def ended(
    job: ClaimedJob,
    tasks: TaskLookup,
    cause: Cause,
    error: JobError | None = None,
    *,
    started_at: float,
    rng: random.Random | None = None,
) -> Outcome:
    """How an attempt of `job` that ended for `cause` ends, now (policy.decide)."""
    facts = facts_of(job, tasks.get(job.task), started_at)
    return decide(facts, cause, error, now=time.time(), rng=rng)


@dataclass(slots=True)  # (not frozen: made per job, see outcomes.py)
class Attempt:
    """A job ready to run: its task found, its arguments decoded, its context made."""

    job: ClaimedJob
    task: Task[Any, Any]
    args: list[Any]
    kwargs: dict[str, Any]
    context: JobContext
    started_at: float
    is_cancel_requested: Callable[[], bool]

    def ends(self, cause: Cause, error: JobError | None = None,
             rng: random.Random | None = None, delay: float | None = None) -> Outcome:
        # (The policy's facts are gathered only here: a success needs none of them.)
        facts = facts_of(self.job, self.task, self.started_at)
        return decide(facts, cause, error, now=time.time(), rng=rng, delay=delay)


def _decode_arguments(args_json: str, kwargs_json: str) -> tuple[Any, Any]:
    # (Most jobs take no arguments of one kind or the other: no decoder call for those.)
    args = [] if args_json == "[]" else json.loads(args_json)
    kwargs = {} if kwargs_json == "{}" else json.loads(kwargs_json)
    return args, kwargs


def prepare(
    job: ClaimedJob,
    tasks: TaskLookup,
    *,
    is_cancel_requested: Callable[[], bool],
    report_progress: Callable[[Progress], None],
) -> Attempt | Outcome:
    """The attempt to run, or the outcome of a job that cannot run here (failed at once)."""
    started = time.time()
    task = tasks.get(job.task)
    if task is None:
        error = JobError(
            "UnknownTask",
            f"unknown task {job.task!r}: this worker's app registers no task of that name "
            "(is the worker running the right --app, and the same code version?)",
        )
        return ended(job, tasks, Cause.UNRUNNABLE, error, started_at=started)
    try:
        args, kwargs = _decode_arguments(job.args_json, job.kwargs_json)
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ValueError("args must be a JSON array and kwargs a JSON object")
    except (ValueError, TypeError, RecursionError) as exc:  # a damaged row: text, not JSON
        error = JobError("BadPayload", f"stored arguments of job {job.id} cannot be decoded: "
                                       f"{type(exc).__name__}: {exc}")
        return ended(job, tasks, Cause.UNRUNNABLE, error, started_at=started)
    context = JobContext(
        id=job.id,
        task=job.task,
        queue=job.queue,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        is_cancel_requested=is_cancel_requested,
        report_progress=report_progress,
    )
    return Attempt(job, task, args, kwargs, context, started, is_cancel_requested)


def is_cancelled_error(exc: BaseException) -> bool:
    """Whether `exc` is asyncio's CancelledError. Only code that runs an event loop raises
    one, and that code imported asyncio: a process that runs plain `def` jobs (a process
    pool's) never imports it (about 25 ms of its start-up)."""
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(exc, asyncio.CancelledError)


def outcome_of_exception(
    attempt: Attempt, exc: BaseException, *, rng: random.Random | None = None
) -> Outcome | None:
    """How an attempt that raised `exc` ends; None for a CancelledError nobody asked for
    (the caller re-raises it: its pool knows why it cancelled the coroutine)."""
    if isinstance(exc, JobCancelled):
        return attempt.ends(Cause.CANCELLED, error_from_exception(exc))
    if is_cancelled_error(exc):
        if not attempt.is_cancel_requested():
            return None
        # The worker cancelled the coroutine because someone asked to cancel the job.
        return attempt.ends(Cause.CANCELLED, error_from_exception(exc))
    error = error_from_exception(exc)
    if attempt.context.cancel_seen:
        return attempt.ends(Cause.CANCELLED, error)
    if isinstance(exc, SoftTimeLimitExceeded):
        # Left uncaught: the attempt ran out of time, retried as a timeout whatever the
        # task's retry_on says (as the hard limit is).
        return attempt.ends(Cause.TIMED_OUT, error, rng)
    # Classified here, where the task ran (a pool process too): its exception classes are
    # known here only, and subclasses must match retry_on / no_retry_on.
    settings = attempt.task.settings
    raised = classify(exc, settings.retry_on, settings.no_retry_on)
    if raised.cause is Cause.SNOOZED:  # not a failure: no traceback to keep
        error = JobError(error.type, error.message)
    elif raised.why is not None:
        error = JobError(error.type, f"{error.message} (not retried: {raised.why})",
                         error.traceback)
    return attempt.ends(raised.cause, error, rng, delay=raised.delay)


def outcome_of_result(
    attempt: Attempt, result: Any, *, max_result_bytes: int, rng: random.Random | None = None
) -> Outcome:
    """How an attempt that returned `result` ends: succeeded, unless it was cancelled, ran
    past its timeout or returned what cannot be stored."""
    job, started = attempt.job, attempt.started_at
    finished = time.time()
    if attempt.context.cancel_seen:
        return attempt.ends(Cause.CANCELLED)
    timeout = attempt.task.timeout_for(job)
    if timeout is not None and finished - started > timeout:
        error = JobError(
            "TimeoutError",
            f"task ran {finished - started:.3f} s, over its timeout of {timeout} s; "
            "its result was discarded",
        )
        return attempt.ends(Cause.TIMED_OUT, error, rng)
    try:
        result_json = encode_result(result, max_result_bytes)
    except TypeError as exc:
        # Retrying would return the same unstorable value: fail now, with the reason.
        error = JobError("UnserialisableResult", f"task {job.task!r} returned a value conveyor "
                         f"cannot store: {exc}")
        return attempt.ends(Cause.UNRUNNABLE, error)
    except PayloadTooLarge as exc:
        error = JobError("ResultTooLarge", f"task {job.task!r} returned too much: {exc}")
        return attempt.ends(Cause.UNRUNNABLE, error)
    except Exception as exc:  # a container subclass that misbehaves while being encoded
        raised = error_from_exception(exc)
        error = JobError("UnserialisableResult", f"task {job.task!r} returned a value conveyor "
                         f"cannot encode: {raised}", raised.traceback)
        return attempt.ends(Cause.UNRUNNABLE, error)
    return Succeeded(job.id, job.token, job.attempt, started, finished, result_json)


async def _cancellable(
    coroutine: Any, on_start: Callable[[Callable[[], None]], None] | None, soft: float | None
) -> Any:
    import asyncio

    if on_start is not None:
        loop = asyncio.get_running_loop()
        current = asyncio.current_task()
        assert current is not None

        def cancel() -> None:
            loop.call_soon_threadsafe(current.cancel)

        on_start(cancel)
    return await soft_limited(coroutine, soft)


def execute(
    job: ClaimedJob,
    tasks: TaskLookup,
    *,
    is_cancel_requested: Callable[[], bool],
    report_progress: Callable[[Progress], None],
    rng: random.Random | None = None,
    max_result_bytes: int = DEFAULT_MAX_PAYLOAD,
    on_async_start: Callable[[Callable[[], None]], None] | None = None,
    arm_soft: Arm | None = None,
) -> Outcome:
    """Run `job` with the task registered under its name and return how it ended.

    A result that cannot be stored (see serializer) or is over `max_result_bytes` fails the
    job at once: running it again would return the same value. For an `async def` task,
    `on_async_start` receives a thread-safe function that cancels the running coroutine (how
    a worker stops a job whose lease it can no longer renew). `arm_soft` raises
    SoftTimeLimitExceeded in a plain `def` task at its soft limit (the pool knows how: see
    time_limits); an `async def` task gets it through its event loop."""
    attempt = prepare(job, tasks, is_cancel_requested=is_cancel_requested,
                      report_progress=report_progress)
    if isinstance(attempt, Outcome):
        return attempt
    fn = attempt.task.fn
    soft = attempt.task.soft_timeout_for(job)
    token = activate(attempt.context)
    try:
        if attempt.task.is_async:
            import asyncio

            result = asyncio.run(_cancellable(fn(*attempt.args, **attempt.kwargs),
                                              on_async_start, soft))
        else:
            result = call_with_limit(arm_soft, soft, fn, *attempt.args, **attempt.kwargs)
    except BaseException as exc:
        if not isinstance(exc, Exception) and not is_cancelled_error(exc):
            raise
        outcome = outcome_of_exception(attempt, exc, rng=rng)
        if outcome is None:
            raise
        return outcome
    finally:
        deactivate(token)
    return outcome_of_result(attempt, result, max_result_bytes=max_result_bytes, rng=rng)


async def execute_async(
    job: ClaimedJob,
    tasks: TaskLookup,
    *,
    is_cancel_requested: Callable[[], bool],
    report_progress: Callable[[Progress], None],
    run_in_thread: Callable[[Callable[[], Any]], Awaitable[Any]],
    rng: random.Random | None = None,
    max_result_bytes: int = DEFAULT_MAX_PAYLOAD,
    arm_soft: Arm | None = None,
) -> Outcome:
    """`execute` inside a running event loop, as a task of its own: an `async def` task is
    awaited here; a plain `def` task runs through `run_in_thread` (with this task's context,
    so current_job() works there; `arm_soft` arms its soft limit in that thread). The current
    job is set in this asyncio task's own context.
    A CancelledError nobody asked for (see outcome_of_exception) propagates."""
    import asyncio

    attempt = prepare(job, tasks, is_cancel_requested=is_cancel_requested,
                      report_progress=report_progress)
    if isinstance(attempt, Outcome):
        return attempt
    fn = attempt.task.fn
    soft = attempt.task.soft_timeout_for(job)
    token = activate(attempt.context)
    try:
        if attempt.task.is_async:
            result = await soft_limited(fn(*attempt.args, **attempt.kwargs), soft)
        else:
            result = await run_in_thread(functools.partial(
                call_with_limit, arm_soft, soft, fn, *attempt.args, **attempt.kwargs))
    except (Exception, asyncio.CancelledError) as exc:
        outcome = outcome_of_exception(attempt, exc, rng=rng)
        if outcome is None:
            raise
        return outcome
    finally:
        deactivate(token)
    return outcome_of_result(attempt, result, max_result_bytes=max_result_bytes, rng=rng)
