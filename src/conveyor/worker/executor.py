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
from ..errors import JobCancelled
from ..job import JobError, Progress
from ..outcomes import Cancelled, Failed, Outcome, Retry, Succeeded
from ..retry import backoff_delay, should_retry
from ..serializer import encode_result
from ..task import Task

TaskLookup = Mapping[str, Task[Any, Any]]


def error_from_exception(exc: BaseException) -> JobError:
    cls = type(exc)
    name = cls.__qualname__
    if cls.__module__ != "builtins":
        name = f"{cls.__module__}.{name}"
    text = "".join(traceback.format_exception(cls, exc, exc.__traceback__))
    return JobError(name, str(exc), text)


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
    on_async_start: Callable[[Callable[[], None]], None] | None = None,
) -> Outcome:
    """Run `job` with the task registered under its name and return how it ended.

    For an `async def` task, `on_async_start` receives a thread-safe function that cancels
    the running coroutine (how a worker stops a job whose lease it can no longer renew)."""
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
    except ValueError as exc:
        error = JobError("BadPayload", f"stored arguments of job {job.id} cannot be decoded: {exc}")
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
    except Exception as exc:
        error = error_from_exception(exc)
        if context.cancel_seen:
            return Cancelled(job.id, job.token, job.attempt, started, time.time(), error)
        return failure(job, error, started_at=started, backoff=task.settings.backoff, rng=rng)
    finally:
        deactivate(token)

    finished = time.time()
    if context.cancel_seen:
        return Cancelled(job.id, job.token, job.attempt, started, finished)
    timeout = task.settings.timeout
    if timeout is not None and finished - started > timeout:
        error = JobError(
            "TimeoutError",
            f"task ran {finished - started:.3f} s, over its timeout of {timeout} s; "
            "its result was discarded",
        )
        return failure(job, error, started_at=started, backoff=task.settings.backoff, rng=rng)
    try:
        result_json = encode_result(result)
    except TypeError as exc:
        # Retrying would return the same unstorable value: fail now, with the reason.
        error = JobError("UnserialisableResult", f"task {job.task!r} returned a value conveyor "
                         f"cannot store: {exc}")
        return failure(job, error, started_at=started, backoff=None)
    return Succeeded(job.id, job.token, job.attempt, started, finished, result_json)
