"""Run one job and decide its outcome. Never touches the database."""

from __future__ import annotations

import asyncio
import json
import random
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from ..backends.base import ClaimedJob
from ..context import JobContext, activate, deactivate
from ..errors import JobCancelled, PayloadTooLarge
from ..job import JobError, Progress
from ..outcomes import Cancelled, Failed, Outcome, Retry, Succeeded
from ..retry import backoff_delay, should_retry
from ..serializer import DEFAULT_MAX_PAYLOAD, KIB, clip_text, encode_result, storable_text
from ..task import Task

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


def failure(
    job: ClaimedJob,
    error: JobError,
    *,
    started_at: float,
    backoff: float | None,
    rng: random.Random | None = None,
) -> Outcome:
    """Retry if attempts remain and the task may be retried (backoff is not None), else fail."""
    now = time.time()
    if backoff is not None and should_retry(job.attempt, job.max_attempts):
        delay = backoff_delay(job.attempt, backoff, rng=rng)
        return Retry(job.id, job.token, job.attempt, started_at, now, error, now + delay)
    return Failed(job.id, job.token, job.attempt, started_at, now, error)


async def _cancellable(
    coroutine: Any, on_start: Callable[[Callable[[], None]], None] | None
) -> Any:
    if on_start is not None:
        loop = asyncio.get_running_loop()
        current = asyncio.current_task()
        assert current is not None

        def cancel() -> None:
            loop.call_soon_threadsafe(current.cancel)

        on_start(cancel)
    return await coroutine


def execute(
    job: ClaimedJob,
    tasks: TaskLookup,
    *,
    is_cancel_requested: Callable[[], bool],
    report_progress: Callable[[Progress], None],
    rng: random.Random | None = None,
    max_result_bytes: int = DEFAULT_MAX_PAYLOAD,
    on_async_start: Callable[[Callable[[], None]], None] | None = None,
) -> Outcome:
    """Run `job` with the task registered under its name and return how it ended.

    A result that cannot be stored (see serializer) or is over `max_result_bytes` fails the
    job at once: running it again would return the same value. For an `async def` task,
    `on_async_start` receives a thread-safe function that cancels the running coroutine (how
    a worker stops a job whose lease it can no longer renew)."""
    started = time.time()
    task = tasks.get(job.task)
    if task is None:
        error = JobError(
            "UnknownTask",
            f"unknown task {job.task!r}: this worker's app registers no task of that name "
            "(is the worker running the right --app, and the same code version?)",
        )
        return failure(job, error, started_at=started, backoff=None)
    try:
        args = json.loads(job.args_json)
        kwargs = json.loads(job.kwargs_json)
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ValueError("args must be a JSON array and kwargs a JSON object")
    except (ValueError, TypeError, RecursionError) as exc:  # a damaged row: text, not JSON
        error = JobError("BadPayload", f"stored arguments of job {job.id} cannot be decoded: "
                                       f"{type(exc).__name__}: {exc}")
        return failure(job, error, started_at=started, backoff=None)

    context = JobContext(
        id=job.id,
        task=job.task,
        queue=job.queue,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        is_cancel_requested=is_cancel_requested,
        report_progress=report_progress,
    )
    token = activate(context)
    try:
        if task.is_async:
            result = asyncio.run(_cancellable(task.fn(*args, **kwargs), on_async_start))
        else:
            result = task.fn(*args, **kwargs)
    except JobCancelled as exc:
        return Cancelled(job.id, job.token, job.attempt, started, time.time(),
                         error_from_exception(exc))
    except asyncio.CancelledError as exc:
        if not is_cancel_requested():
            raise
        # The worker cancelled the coroutine because someone asked to cancel the job.
        return Cancelled(job.id, job.token, job.attempt, started, time.time(),
                         error_from_exception(exc))
    except Exception as exc:
        error = error_from_exception(exc)
        if context.cancel_seen:
            return Cancelled(job.id, job.token, job.attempt, started, time.time(), error)
        return failure(job, error, started_at=started, backoff=task.backoff_for(job), rng=rng)
    finally:
        deactivate(token)

    finished = time.time()
    if context.cancel_seen:
        return Cancelled(job.id, job.token, job.attempt, started, finished)
    timeout = task.timeout_for(job)
    if timeout is not None and finished - started > timeout:
        error = JobError(
            "TimeoutError",
            f"task ran {finished - started:.3f} s, over its timeout of {timeout} s; "
            "its result was discarded",
        )
        return failure(job, error, started_at=started, backoff=task.backoff_for(job), rng=rng)
    try:
        result_json = encode_result(result, max_result_bytes)
    except TypeError as exc:
        # Retrying would return the same unstorable value: fail now, with the reason.
        error = JobError("UnserialisableResult", f"task {job.task!r} returned a value conveyor "
                         f"cannot store: {exc}")
        return failure(job, error, started_at=started, backoff=None)
    except PayloadTooLarge as exc:
        error = JobError("ResultTooLarge", f"task {job.task!r} returned too much: {exc}")
        return failure(job, error, started_at=started, backoff=None)
    except Exception as exc:  # a container subclass that misbehaves while being encoded
        raised = error_from_exception(exc)
        error = JobError("UnserialisableResult", f"task {job.task!r} returned a value conveyor "
                         f"cannot encode: {raised}", raised.traceback)
        return failure(job, error, started_at=started, backoff=None)
    return Succeeded(job.id, job.token, job.attempt, started, finished, result_json)
