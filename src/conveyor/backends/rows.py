"""Decoding stored rows into records; shared by every SQL backend.

Readers never crash on a damaged row (edited by hand, or written by a bug; SQLite is dynamically
typed, so `UPDATE conveyor_jobs SET run_at = 'abc'` succeeds): what cannot be read is named in
the record's `corrupt`, and the rest of the row, and of the listing, stays readable.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from operator import itemgetter
from typing import Any, Protocol

from ..job import AttemptRecord, JobError, JobRecord, JobState, Progress
from ..limits import Rate
from ..records import (
    ClaimedJob,
    LastRun,
    ScheduleDefinition,
    ScheduleRecord,
    ScheduleState,
    TaskInfo,
    WorkerRecord,
)
from ..validation import MAX_TIMESTAMP, MIN_TIMESTAMP


class Row(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


def encode_error(error: JobError | None) -> str | None:
    if error is None:
        return None
    return json.dumps({"type": error.type, "message": error.message, "traceback": error.traceback})


def _preview(raw: Any, limit: int = 80) -> str:
    shown = repr(raw)  # escapes control characters and lone surrogates
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def decode_error(text: Any) -> JobError | None:
    """The error column; a damaged one reads as a `CorruptRow` error showing the raw text."""
    if not text:
        return None
    try:
        data = json.loads(text)
        error_type, message, traceback = (
            data.get("type", "Error"), data.get("message", ""), data.get("traceback"))
        if not (isinstance(error_type, str) and isinstance(message, str)
                and (traceback is None or isinstance(traceback, str))):
            raise ValueError("type, message and traceback are not text")
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        return JobError("CorruptRow", f"corrupt row: the stored error cannot be read ({exc}): "
                                      f"{_preview(text, 400)}")
    return JobError(error_type, message, traceback)


def encode_progress(progress: Progress) -> str:
    return json.dumps({"done": progress.done, "total": progress.total, "message": progress.message})


def decode_progress(text: Any) -> Progress | None:
    """The progress column; raises ValueError (or TypeError) when it is damaged."""
    if not text:
        return None
    data = json.loads(text)
    done, total, message = data["done"], data.get("total"), data.get("message")
    if not (_is_number(done) and (total is None or _is_number(total))
            and (message is None or isinstance(message, str))):
        raise ValueError("done and total are not numbers, or message is not text")
    return Progress(done, total, message)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def safe_float(value: Any, default: float) -> float:
    """A stored number as a float; `default` for anything else (text in a REAL column)."""
    if type(value) is float:
        return value
    if _is_number(value):
        try:
            return float(value)
        except OverflowError:
            return default
    return default


def safe_int(value: Any, default: int) -> int:
    """A stored integer; `default` for anything else."""
    if type(value) is int:
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return default


def _is_time(value: Any) -> bool:
    return type(value) is float and MIN_TIMESTAMP <= value <= MAX_TIMESTAMP


def optional_time(value: Any) -> float | None:
    """A stored time, or None when it is missing or not a time within the years 1..9999."""
    number = safe_float(value, math.nan)
    return number if MIN_TIMESTAMP <= number <= MAX_TIMESTAMP else None


class _Damaged(Exception):
    """The fast path met a value it does not expect; the careful path reads the row."""


def job_record(row: Row) -> JobRecord:
    try:
        return _job_record(row)
    except _Damaged:
        return _careful_job_record(row)


def _job_record(row: Row) -> JobRecord:
    """Every healthy row: a handful of type checks, then the record."""
    task, queue, priority = row["task"], row["queue"], row["priority"]
    attempts, max_attempts = row["attempts"], row["max_attempts"]
    run_at, enqueued_at = row["run_at"], row["enqueued_at"]
    started_at, finished_at = row["started_at"], row["finished_at"]
    lease_expires_at, progress, error = row["lease_expires_at"], row["progress"], row["error"]
    unique_key, lease_owner, worker = row["unique_key"], row["lease_owner"], row["worker"]
    schedule, slot = row["schedule"], row["schedule_slot"]
    if not (
        type(task) is str and type(queue) is str and type(priority) is int
        and type(attempts) is int and type(max_attempts) is int
        and _is_time(run_at) and _is_time(enqueued_at)
        and (started_at is None or _is_time(started_at))
        and (finished_at is None or _is_time(finished_at))
        and (lease_expires_at is None or _is_time(lease_expires_at))
        and (unique_key is None or type(unique_key) is str)
        and (lease_owner is None or type(lease_owner) is str)
        and (worker is None or type(worker) is str)
        and (schedule is None or type(schedule) is str)
        and (slot is None or _is_time(slot))
    ):
        raise _Damaged
    try:
        decoded_progress = decode_progress(progress)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        raise _Damaged from None
    decoded_error = decode_error(error)
    if decoded_error is not None and decoded_error.type == "CorruptRow":
        raise _Damaged
    return JobRecord(
        id=row["id"], task=task, queue=queue, state=JobState(row["state"]), priority=priority,
        args_json=row["args"], kwargs_json=row["kwargs"], unique_key=unique_key,
        attempts=attempts, max_attempts=max_attempts, run_at=run_at, enqueued_at=enqueued_at,
        started_at=started_at, finished_at=finished_at, lease_owner=lease_owner,
        lease_expires_at=lease_expires_at, cancel_requested=bool(row["cancel_requested"]),
        progress=decoded_progress, result_json=row["result"], error=decoded_error,
        worker=worker, schedule=schedule, schedule_slot=slot,
        workflow=_optional_id(row["workflow"]),
        pending_parents=safe_int(row["pending_parents"], 0),
    )


class _Reader:
    """Reads a damaged row's columns one by one, noting what cannot be read."""

    __slots__ = ("problems", "row")

    def __init__(self, row: Row) -> None:
        self.row = row
        self.problems: list[str] = []

    def note(self, column: str, raw: Any, why: str) -> None:
        self.problems.append(f"{column} {why}: {_preview(raw)}")

    def time(self, column: str) -> float:
        """A required time; NaN when damaged."""
        raw = self.row[column]
        value = safe_float(raw, math.nan)
        if not MIN_TIMESTAMP <= value <= MAX_TIMESTAMP:  # NaN fails this too
            self.note(column, raw, "is not a time within the years 1..9999")
            return math.nan
        return value

    def optional_time(self, column: str) -> float | None:
        """An optional time; None when damaged."""
        if self.row[column] is None:
            return None
        value = self.time(column)
        return None if math.isnan(value) else value

    def integer(self, column: str) -> int:
        raw = self.row[column]
        if type(raw) is int:
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        self.note(column, raw, "is not an integer")
        return 0

    def text(self, column: str) -> str:
        raw = self.row[column]
        if type(raw) is str:
            return raw
        self.note(column, raw, "is not text")
        if isinstance(raw, bytes):
            return raw.decode("utf-8", "backslashreplace")
        return "" if raw is None else str(raw)

    def optional_text(self, column: str) -> str | None:
        return None if self.row[column] is None else self.text(column)

    def progress(self) -> Progress | None:
        raw = self.row["progress"]
        try:
            return decode_progress(raw)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            self.note("progress", raw, "cannot be read")
            return None

    def error(self) -> JobError | None:
        error = decode_error(self.row["error"])
        if error is not None and error.type == "CorruptRow":
            self.problems.append(error.message)
        return error


def _careful_job_record(row: Row) -> JobRecord:
    read = _Reader(row)
    record = JobRecord(
        id=row["id"],
        task=read.text("task"),
        queue=read.text("queue"),
        state=JobState(row["state"]),
        priority=read.integer("priority"),
        args_json=row["args"],
        kwargs_json=row["kwargs"],
        unique_key=read.optional_text("unique_key"),
        attempts=read.integer("attempts"),
        max_attempts=read.integer("max_attempts"),
        run_at=read.time("run_at"),
        enqueued_at=read.time("enqueued_at"),
        started_at=read.optional_time("started_at"),
        finished_at=read.optional_time("finished_at"),
        lease_owner=read.optional_text("lease_owner"),
        lease_expires_at=read.optional_time("lease_expires_at"),
        cancel_requested=bool(row["cancel_requested"]),
        progress=read.progress(),
        result_json=row["result"],
        error=read.error(),
        worker=read.optional_text("worker"),
        schedule=read.optional_text("schedule"),
        schedule_slot=read.optional_time("schedule_slot"),
        workflow=_optional_id(row["workflow"]),
        pending_parents=safe_int(row["pending_parents"], 0),
    )
    return replace(record, corrupt=tuple(read.problems))


def _optional_id(value: Any) -> int | None:
    return value if type(value) is int else None


_CLAIMED_COLUMNS = ("id", "task", "queue", "priority", "args", "kwargs", "attempts",
                    "max_attempts", "lease_token", "run_at", "enqueued_at", "cancel_requested",
                    "backoff", "timeout", "soft_timeout", "followers")


def claimed_jobs(rows: Sequence[Row], *, limited: bool = False) -> list[ClaimedJob]:
    """Claimed rows as the worker gets them. Numbers are coerced, so a damaged row (text in a
    REAL column) cannot break the claim loop's sorting; the executor then fails such a job with
    a readable reason (bad arguments) or runs it. `limited`: claimed under limits."""
    if not rows:
        return []
    first: Any = rows[0]
    pick: Callable[[Any], tuple[Any, ...]]
    if isinstance(first, Mapping):
        pick = itemgetter(*_CLAIMED_COLUMNS)
    else:  # sqlite3.Row: reading by name scans its columns; by position does not
        names = [str(name).lower() for name in first.keys()]  # noqa: SIM118 (not a dict)
        if tuple(names) == _CLAIMED_COLUMNS:  # (the claims' own order: each row as it is)
            as_sequences: Sequence[Any] = rows
            return [_claimed(*row, limited=limited) for row in as_sequences]
        pick = itemgetter(*[names.index(name) for name in _CLAIMED_COLUMNS])
    return [_claimed(*pick(row), limited=limited) for row in rows]


def _claimed(job_id: int, task: str, queue: str, priority: Any, args: str, kwargs: str,
             attempts: Any, max_attempts: Any, token: int, run_at: Any, enqueued_at: Any,
             cancel_requested: Any, backoff: Any, timeout: Any, soft_timeout: Any,
             followers: Any, *, limited: bool) -> ClaimedJob:
    # (Per job claimed: the checks a sound row passes are inline, the rest in safe_*.)
    return ClaimedJob(
        job_id, task, queue, priority if type(priority) is int else safe_int(priority, 0),
        args, kwargs, attempts if type(attempts) is int else safe_int(attempts, 1),
        max_attempts if type(max_attempts) is int else safe_int(max_attempts, 1), token,
        run_at if type(run_at) is float else safe_float(run_at, 0.0),
        enqueued_at if type(enqueued_at) is float else safe_float(enqueued_at, 0.0),
        bool(cancel_requested),
        None if backoff is None else _own_seconds(backoff, zero_ok=True),
        None if timeout is None else _own_seconds(timeout, infinite_ok=True),
        None if soft_timeout is None else _own_seconds(soft_timeout, infinite_ok=True),
        limited, bool(followers),
    )


def _own_seconds(value: Any, *, zero_ok: bool = False, infinite_ok: bool = False
                 ) -> float | None:
    """A job's own backoff or timeout; None (the task's) when it has none, or a damaged one."""
    if value is None:
        return None
    number = safe_float(value, math.nan)
    if not (number > 0 or (zero_ok and number == 0)) or (math.isinf(number) and not infinite_ok):
        return None  # NaN fails the first test
    return number


def worker_record(row: Row) -> WorkerRecord:
    try:
        queues = json.loads(row["queues"])
        if not isinstance(queues, list):
            raise ValueError("not a list")
    except (ValueError, TypeError, RecursionError):
        queues = [f"<corrupt: {_preview(row['queues'], 40)}>"]
    return WorkerRecord(
        name=str(row["name"]),
        host=str(row["host"]),
        pid=safe_int(row["pid"], 0),
        queues=tuple(str(queue) for queue in queues),
        concurrency=safe_int(row["concurrency"], 0),
        pool=str(row["pool"]),
        started_at=safe_float(row["started_at"], 0.0),
        heartbeat_at=safe_float(row["heartbeat_at"], 0.0),
        busy=safe_int(row["busy"], 0),
        stop_requested=bool(row["stop_requested"]),
    )


def attempt_record(row: Row) -> AttemptRecord:
    error = None
    if row["error_type"] is not None:
        error = JobError(str(row["error_type"]), str(row["error_message"] or ""),
                         None if row["traceback"] is None else str(row["traceback"]))
    started = row["started_at"]
    return AttemptRecord(
        job_id=row["job_id"],
        attempt=safe_int(row["attempt"], 0),
        worker=row["worker"],
        started_at=None if started is None else safe_float(started, math.nan),
        finished_at=safe_float(row["finished_at"], math.nan),
        outcome=str(row["outcome"]),
        error=error,
    )


def schedule_definition(row: Row) -> ScheduleDefinition:
    every = row["every"]
    lateness = row["max_lateness"]
    return ScheduleDefinition(
        name=str(row["name"]), task=str(row["task"]), cron=row["cron"],
        every=None if every is None else safe_float(every, math.nan), tz=str(row["tz"]),
        args_json=str(row["args"]), kwargs_json=str(row["kwargs"]),
        catch_up=row["catch_up"],
        max_lateness=None if lateness is None else safe_float(lateness, math.nan))


def schedule_state(row: Row) -> ScheduleState:
    since = safe_float(row["since"], 0.0)
    last = row["last_slot"]
    return ScheduleState(schedule_definition(row), bool(row["paused"]),
                         since if last is None else max(since, safe_float(last, since)))


def schedule_record(row: Row) -> ScheduleRecord:
    last_run = None
    if row["job_id"] is not None:
        last_run = LastRun(int(row["job_id"]), JobState(row["job_state"]),
                           optional_time(row["job_slot"]),
                           safe_float(row["job_enqueued_at"], math.nan),
                           optional_time(row["job_finished_at"]))
    return ScheduleRecord(
        definition=schedule_definition(row), active=bool(row["active"]),
        paused=bool(row["paused"]), after=safe_float(row["since"], 0.0),
        synced_by=str(row["synced_by"]), synced_at=safe_float(row["synced_at"], 0.0),
        last_run=last_run)


def stored_rate(row: Row) -> Rate | None:
    """A task's rate limit as registered; None for none, or for a damaged row (a claim must
    not fail on one: the next worker to start registers the task again)."""
    count = safe_int(row["rate_count"], 0)
    per = safe_float(row["rate_per"], 0.0)
    if count < 1 or not 0.0 < per < math.inf:
        return None
    burst = safe_int(row["rate_burst"], 1)
    return Rate(count, per, burst if 1 <= burst <= count else 1)


def stored_concurrency(value: Any) -> int | None:
    """A concurrency limit as stored; None for none, or for a damaged value."""
    limit = safe_int(value, 0)
    return limit if limit >= 1 else None


def task_info(row: Row) -> TaskInfo:
    """A registered task, with its limits."""
    return TaskInfo(str(row["name"]), str(row["queue"]), safe_int(row["priority"], 0),
                    safe_int(row["max_attempts"], 1), stored_rate(row),
                    stored_concurrency(row["concurrency"]), bool(row["keyed"]))
