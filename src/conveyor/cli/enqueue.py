"""`conveyor enqueue`: store a job by task name, optionally wait for its result."""

from __future__ import annotations

import difflib
import json
import math
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from .. import links
from .. import options as job_options
from ..app import Conveyor
from ..errors import ConveyorWarning, InvalidInput
from ..job import Job, JobState
from ..validation import PRIORITY_RANGE
from ..views import job_view
from .durations import format_duration
from .group import cli
from .options import connection_options, json_option, open_app
from .output import Output
from .params import (
    ARGS_ARRAY,
    AWARE_DATETIME,
    DURATION,
    FOREVER,
    JOB_ID,
    KWARGS_OBJECT,
    WAIT_TIME,
)
from .tables import progress_text

EXIT_FAILED = 1
EXIT_TIMEOUT = 124  # like timeout(1)
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])

# The job options `conveyor enqueue` offers, by their name in conveyor.options: flags, type,
# metavar, help. Each value goes through that option's one check as it is parsed, so a bad one
# is a usage error naming the flag, with the message Python gives for it. (backoff and timeout
# are not offered here yet.)
_DEFAULT = job_options.DEFAULTS
_LOW, _HIGH = PRIORITY_RANGE
JOB_FLAGS: dict[str, tuple[tuple[str, ...], Any, str, str]] = {
    "queue": (("-q", "--queue"), str, "QUEUE",
              f"[default: the task's queue, or {_DEFAULT.queue!r}]"),
    "priority": (("--priority",), int, "N",
                 f"{_LOW}..{_HIGH}; smaller runs first [default: the task's, or "
                 f"{_DEFAULT.priority}]."),
    "delay": (("--delay",), DURATION, "DURATION", "Run later: 30, 30s, 10m, 2h, 1d, 1h30m."),
    "at": (("--at",), AWARE_DATETIME, "ISO",
           "Run at this time, ISO 8601 with a timezone (2030-01-31T09:00:00+00:00 or ...Z); a "
           "time without one is refused as ambiguous."),
    "unique_key": (("--unique-key",), str, "KEY",
                   "While a job with this key waits or runs, enqueueing again returns it."),
    "max_attempts": (("--max-attempts",), int, "N",
                     f"[default: the task's, or {_DEFAULT.max_attempts}]"),
    "limit_key": (("--limit-key",), str, "KEY",
                  "The key of the task's rate and concurrency limits (each key has its own "
                  "budget) [default: what the task's limit_key function gives]."),
}


def _checked_by(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            try:
                job_options.check(name, value)
            except InvalidInput as exc:
                raise click.BadParameter(str(exc), ctx, param) from None
        return value

    return callback


# Checked in the command instead, where the message can name the task: a key's problem is
# the task's (callbacks run before TASK is read).
_CHECKED_WITH_TASK = ("limit_key",)


def job_option_flags(fn: F) -> F:
    """The flags of JOB_FLAGS, in order, each checked by its option's check."""
    for name, (flags, kind, metavar, text) in reversed(JOB_FLAGS.items()):
        fn = click.option(*flags, name, type=kind, metavar=metavar, help=text,
                          callback=None if name in _CHECKED_WITH_TASK else _checked_by(name)
                          )(fn)
    return fn


@cli.command("enqueue", short_help="Enqueue a job by task name; --wait for its result.")
@click.argument("task")
@click.argument("args", metavar="[ARGS_JSON]", required=False, type=ARGS_ARRAY)
@click.option("--kwargs", type=KWARGS_OBJECT, metavar="JSON",
              help="Keyword arguments as a JSON object, e.g. '{\"size\": 128}'.")
@job_option_flags
@click.option("--depends-on", "depends_on", type=JOB_ID, multiple=True, metavar="ID",
              help="Wait for this job to end first (repeat for several); the job is "
                   "'waiting' until all of them ended.")
@click.option("--on-parent-failure", type=click.Choice(links.POLICIES),
              help="When a job it depends on fails or is cancelled: cancel this one "
                   "(default), or run it anyway.")
@click.option("--reuse-for", type=DURATION, metavar="DURATION",
              help="With --unique-key: a job with the key that succeeded this recently is "
                   "returned, result and all, instead of running again.")
@click.option("--wait", type=WAIT_TIME, is_flag=False, flag_value=FOREVER, default=None,
              metavar="[SECONDS]",
              help="Wait for the job to end (at most SECONDS) and print its result; exit 1 if "
                   "it failed or was cancelled, 124 if the wait timed out. Put it last, or "
                   "write --wait=SECONDS.")
@connection_options
@json_option
def enqueue_command(task: str, args: list[Any] | None, kwargs: dict[str, Any] | None,
                    queue: str | None, priority: int | None, delay: float | None,
                    at: datetime | None, unique_key: str | None, max_attempts: int | None,
                    limit_key: str | None, depends_on: tuple[int, ...],
                    on_parent_failure: str | None, reuse_for: float | None,
                    wait: float | None, app_path: str | None, url: str | None,
                    as_json: bool) -> None:
    """Enqueue a job of TASK with positional arguments ARGS_JSON (a JSON array).

    Works by task name without importing task code: the task's queue, priority and attempts
    are then those a worker registered for it when it started (a warning on stderr says when
    no worker ever did: the job goes to queue 'default'). With -A/--app the app's own task
    settings apply, and an unknown task name is refused.

    \b
    conveyor enqueue reports.daily '["2026-11-22"]' --delay 10m
    conveyor enqueue media.thumbnail '["cat.jpg"]' --kwargs '{"size": 64}' --wait 60
    conveyor enqueue pipeline.b '["sub-01"]' --depends-on 41 --depends-on 42
    """
    if delay is not None and at is not None:
        raise click.UsageError("give --delay or --at, not both")
    if limit_key is not None:
        try:
            job_options.check("limit_key", limit_key)
        except InvalidInput as exc:
            raise click.BadParameter(f"task {task!r}: {exc}",
                                     param_hint="'--limit-key'") from None
    out = Output(as_json)
    with open_app(app_path, url, create=True) as app:
        if app_path and task not in app.tasks:
            raise click.UsageError(_unknown_task(app, task))
        flags: dict[str, Any] = {"queue": queue, "priority": priority, "delay": delay,
                                 "at": at, "unique_key": unique_key,
                                 "max_attempts": max_attempts, "limit_key": limit_key,
                                 "depends_on": depends_on or None,
                                 "on_parent_failure": on_parent_failure,
                                 "reuse_for": reuse_for}
        given = {name: value for name, value in flags.items() if value is not None}
        prepared = app.options(task, **given).prepare(*(args or []), **(kwargs or {}))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConveyorWarning)
            job, created = app.enqueue_one(prepared)
        if wait is None:
            if as_json:
                out.data({"created": created, "job": job_view(job.record)})
            else:
                out.line(_enqueued_message(job, created))
            _report(out, caught)
            return
        if not as_json:
            out.note(_enqueued_message(job, created))
        _report(out, caught)
        code = _wait(out, job, wait, created)
        if code:
            click.get_current_context().exit(code)


def _report(out: Output, caught: list[warnings.WarningMessage]) -> None:
    """conveyor's warnings (a task no worker registered) as a line on stderr; others as
    Python shows them."""
    for warning in caught:
        if issubclass(warning.category, ConveyorWarning):
            out.note(f"warning: {warning.message}")
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)


def _unknown_task(app: Conveyor, task: str) -> str:
    known = sorted(app.tasks)
    close = difflib.get_close_matches(task, known, n=3)
    hint = f" (did you mean {', '.join(repr(name) for name in close)}?)" if close else ""
    return (f"the app {app.import_path or ''} has no task {task!r}{hint}; its tasks: "
            f"{', '.join(known) or 'none'}. To enqueue a task this app does not define, "
            "leave out -A/--app (or pass --app '').")


def _enqueued_message(job: Job, created: bool) -> str:
    if not created:
        if job.state is JobState.SUCCEEDED:  # (--reuse-for)
            return (f"job {job.id} succeeded with unique key {job.record.unique_key!r} "
                    "recently; its result is reused, nothing new was enqueued")
        return (f"job {job.id} already holds unique key {job.record.unique_key!r} "
                f"({job.state}); nothing new was enqueued")
    where = f"job {job.id}: {job.task} on queue {job.queue}"
    if job.state is JobState.WAITING:
        return f"enqueued {where}, waiting for {job.record.pending_parents} job(s) to end"
    if job.state is JobState.SCHEDULED:
        return (f"enqueued {where}, scheduled to run in "
                f"{format_duration(job.record.run_at - time.time())}")
    return f"enqueued {where}"


def _wait(out: Output, job: Job, timeout: float, created: bool) -> int:
    """Wait for `job` to end, showing its state and progress; print the outcome.
    Returns the exit code."""
    try:
        ended = _wait_until_terminal(out, job, timeout)
    except KeyboardInterrupt:
        out.note(f"stopped waiting; job {job.id} is still {job.state} and stays enqueued")
        return EXIT_INTERRUPTED
    record = job.record
    if out.as_json:
        out.data({"created": created, "timed_out": not ended, "job": job_view(record)})
    if not ended:
        out.note(f"job {job.id} is still {job.state} after {format_duration(timeout)}; it "
                 f"stays enqueued (see: conveyor jobs show {job.id})")
        return EXIT_TIMEOUT
    if record.state is JobState.SUCCEEDED:
        if not out.as_json:
            out.line(json.dumps(record.result, indent=2, ensure_ascii=False))
        return 0
    if record.state is JobState.CANCELLED:
        out.note(f"job {job.id} was cancelled")
        return EXIT_FAILED
    error = record.error
    out.note(f"job {job.id} failed after {record.attempts} attempt(s): "
             f"{error if error is not None else 'no error was recorded'}")
    if error is not None and error.traceback and not out.as_json:
        out.note(error.traceback.rstrip())
    return EXIT_FAILED


def _wait_until_terminal(out: Output, job: Job, timeout: float) -> bool:
    """Poll `job` until it ends (True) or `timeout` seconds pass (False)."""
    deadline = math.inf if math.isinf(timeout) else time.monotonic() + timeout
    pause = 0.02
    with out.activity(f"job {job.id} {job.state}") as status:
        while not job.refresh().state.is_terminal:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if status is not None:
                status.update(f"job {job.id} {job.state} {progress_text(job.progress)}".rstrip())
            time.sleep(min(pause, remaining))
            pause = min(pause * 1.5, 0.25)
    return True
