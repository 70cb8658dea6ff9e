"""Records as plain JSON-ready data, shared by the CLI's `--json`, the dashboard and the metrics.

Times are ISO 8601 in UTC. The app layer: reads through the backend's Inspector, no rendering."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .backends.base import Inspector, QueueStats, WorkerRecord
from .errors import ConveyorError, CorruptJob
from .job import AttemptRecord, JobError, JobRecord, JobState, Progress
from .records import JobLink, ScheduleRecord
from .validation import MAX_TIMESTAMP, MIN_TIMESTAMP
from .waits import (
    LimitUse,
    Reason,
    job_reasons,
    parents_reason,
    queue_use,
    summary,
    task_use,
    waiting,
)

STATE_ORDER = tuple(JobState)
STATS_WINDOW = 60.0  # seconds of history behind "throughput"


def iso(timestamp: float | None) -> str | None:
    """ISO 8601 in UTC; None for no time, or one that cannot be shown (a damaged row)."""
    if timestamp is None or not MIN_TIMESTAMP <= timestamp <= MAX_TIMESTAMP:  # NaN included
        return None
    try:
        return datetime.fromtimestamp(timestamp, UTC).isoformat()
    except (OverflowError, ValueError, OSError):  # e.g. before 1970 on Windows
        return None


def decoded(read: Callable[[], Any], problems: list[str]) -> Any:
    """`read()` (a record's args, kwargs or result), or None with the problem noted when the
    stored text is damaged."""
    try:
        return read()
    except CorruptJob as exc:
        problems.append(str(exc))
        return None


def error_view(error: JobError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"type": error.type, "message": error.message, "traceback": error.traceback}


def progress_view(progress: Progress | None) -> dict[str, Any] | None:
    if progress is None:
        return None
    return {"done": progress.done, "total": progress.total, "message": progress.message}


def job_view(record: JobRecord) -> dict[str, Any]:
    """A job as JSON. A damaged row still shows: what could not be read is null, and
    `corrupt` lists why (empty for a healthy row)."""
    problems = list(record.corrupt)
    args = decoded(lambda: record.args, problems)
    kwargs = decoded(lambda: record.kwargs, problems)
    result = decoded(lambda: record.result, problems)
    return {
        "id": record.id,
        "task": record.task,
        "queue": record.queue,
        "state": record.state.value,
        "priority": record.priority,
        "args": args,
        "kwargs": kwargs,
        "unique_key": record.unique_key,
        "attempts": record.attempts,
        "max_attempts": record.max_attempts,
        "enqueued_at": iso(record.enqueued_at),
        "run_at": iso(record.run_at),
        "started_at": iso(record.started_at),
        "finished_at": iso(record.finished_at),
        "lease_owner": record.lease_owner,
        "lease_expires_at": iso(record.lease_expires_at),
        "cancel_requested": record.cancel_requested,
        "progress": progress_view(record.progress),
        "result": result,
        "error": error_view(record.error),
        "schedule": record.schedule,
        "schedule_slot": iso(record.schedule_slot),
        "workflow": record.workflow,
        "pending_parents": record.pending_parents,
        "corrupt": problems,
    }


def attempt_view(attempt: AttemptRecord) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "outcome": attempt.outcome,
        "worker": attempt.worker,
        "started_at": iso(attempt.started_at),
        "finished_at": iso(attempt.finished_at),
        "error": error_view(attempt.error),
    }


def job_attempts(record: JobRecord, attempts: list[AttemptRecord]) -> list[AttemptRecord]:
    """Every attempt: the stored ones (those that did not succeed) plus, for a succeeded or
    running job, its current attempt from the job row."""
    found = list(attempts)
    known = {attempt.attempt for attempt in found}
    if (record.attempts and record.attempts not in known
            and record.state is JobState.SUCCEEDED and record.finished_at is not None):
        found.append(AttemptRecord(record.id, record.attempts, record.worker, record.started_at,
                                       record.finished_at, "succeeded", None))
    return sorted(found, key=lambda attempt: attempt.attempt)


def worker_health(worker: WorkerRecord, now: float, stale_after: float) -> str:
    if now - worker.heartbeat_at > stale_after:
        return "stale"
    if worker.stop_requested:
        return "stopping"
    return "alive"


def worker_view(worker: WorkerRecord, now: float, stale_after: float) -> dict[str, Any]:
    return {
        "name": worker.name,
        "host": worker.host,
        "pid": worker.pid,
        "queues": list(worker.queues),
        "pool": worker.pool,
        "busy": worker.busy,
        "concurrency": worker.concurrency,
        "started_at": iso(worker.started_at),
        "heartbeat_at": iso(worker.heartbeat_at),
        "heartbeat_age": round(max(0.0, now - worker.heartbeat_at), 3),
        "stop_requested": worker.stop_requested,
        "status": worker_health(worker, now, stale_after),
    }


def queue_view(stats: QueueStats, now: float) -> dict[str, Any]:
    oldest = stats.oldest_queued_at
    return {
        "queue": stats.queue,
        "counts": {state.value: stats.counts.get(state, 0) for state in STATE_ORDER},
        "oldest_queued_at": iso(oldest),
        "oldest_queued_age": None if oldest is None else round(max(0.0, now - oldest), 3),
        "finished_last_minute": stats.finished_recently,
    }


# What `conveyor queues list` counts: the jobs a queue holds that have not ended.
QUEUE_COUNTED = (JobState.QUEUED, JobState.SCHEDULED, JobState.WAITING, JobState.RUNNING)


def queues_overview(inspector: Inspector, also: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Every known queue (with a stored setting, holding jobs, the queue of a task a worker
    registered, or named in `also`: the app's tasks and declared queues): paused, order,
    concurrency limit, and its waiting and running jobs."""
    settings = {s.name: s for s in inspector.queue_settings()}
    counts = inspector.count_by_state()
    names = sorted(set(settings) | set(counts) | set(inspector.task_queues()) | set(also))
    return [{
        "queue": name,
        "paused": bool(settings[name].paused) if name in settings else False,
        "order": "lifo" if name in settings and settings[name].lifo else "fifo",
        # At most this many of its jobs run at once (None: no limit).
        "concurrency": settings[name].concurrency if name in settings else None,
        "counts": {state.value: counts.get(name, {}).get(state, 0) for state in QUEUE_COUNTED},
    } for name in names]


def paused_queues(inspector: Inspector) -> frozenset[str]:
    return frozenset(s.name for s in inspector.queue_settings() if s.paused)


def job_waits(inspector: Inspector, record: JobRecord) -> list[Reason]:
    """Why a job that has not started is not running (empty: nothing holds it back). A job
    waiting for its parents says which have not ended; it and a scheduled job are held
    otherwise only by a paused queue: limits apply once it is queued."""
    if record.state not in (JobState.QUEUED, JobState.SCHEDULED, JobState.WAITING):
        return []
    reasons: list[Reason] = []
    if record.state is JobState.WAITING:
        parents, _ = inspector.job_links(record.id)
        pending = [parent.id for parent in parents if not parent.state.is_terminal]
        reasons.append(parents_reason(pending, len(parents)))
    facts = inspector.job_limits(record.id)
    if facts is None:  # deleted since it was read
        return reasons
    limits = job_reasons(facts)
    if record.state is not JobState.QUEUED:
        limits = [reason for reason in limits if reason.kind == "queue_paused"]
    return reasons + limits


def link_view(link: JobLink) -> dict[str, Any]:
    """A job's parent or child."""
    return {"id": link.id, "task": link.task, "state": link.state.value}


def reason_view(reason: Reason) -> dict[str, Any]:
    return {"reason": reason.kind, "message": reason.message, "running": reason.running,
            "limit": reason.limit, "next_start_at": iso(reason.next_at)}


def limit_uses(inspector: Inspector) -> tuple[float, list[LimitUse]]:
    """Every limit (the registered tasks' limits, then queues' concurrency limits) with its
    use now, and the database's clock they were read by."""
    tasks = inspector.limited_tasks()
    now, keys = inspector.limit_keys()
    if now is None:  # no key has jobs: nothing is throttled, any clock will do
        now = time.time()
    uses = [task_use(task.name, task.rate, task.concurrency, task.keyed, keys, now)
            for task in tasks]
    capped = [s for s in inspector.queue_settings() if s.concurrency is not None]
    if capped:
        counts = inspector.count_by_state()
        for setting in capped:
            assert setting.concurrency is not None
            states = counts.get(setting.name, {})
            uses.append(queue_use(setting.name, setting.concurrency,
                                  states.get(JobState.RUNNING, 0),
                                  states.get(JobState.QUEUED, 0)))
    return now, uses


def limit_view(use: LimitUse, now: float) -> dict[str, Any]:
    rate = use.rate
    return {
        "limit": use.kind,
        "name": use.name,
        "rate": None if rate is None else str(rate),
        "burst": None if rate is None else rate.burst,
        "concurrency": use.concurrency,
        "keyed": use.keyed,
        "keys": use.keys,
        "running": use.running,
        "queued": use.queued,
        "keys_throttled": None if rate is None else use.throttled,
        "keys_at_concurrency": None if use.concurrency is None else use.at_concurrency,
        "next_start_at": iso(use.next_at),
        "next_start_in": None if use.next_at is None else round(max(0.0, use.next_at - now), 3),
        "held": use.held,
        "summary": summary(use, now),
    }


@dataclass(frozen=True)
class Snapshot:
    """What `conveyor status` shows: queues and workers at one moment."""

    at: float
    queues: list[QueueStats]
    workers: list[WorkerRecord]
    stale_after: float
    paused: frozenset[str] = frozenset()  # queues no worker claims from
    # The limits with queued jobs, those holding jobs back first; `limits_at`: the
    # database's clock they were read by.
    limits: list[LimitUse] = field(default_factory=list)
    limits_at: float = 0.0

    @classmethod
    def take(cls, inspector: Inspector, stale_after: float) -> Snapshot:
        limits_at, uses = limit_uses(inspector)
        return cls(time.time(), sorted(inspector.queue_stats(STATS_WINDOW),
                                       key=lambda q: q.queue),
                   list(inspector.workers()), stale_after, paused_queues(inspector),
                   waiting(uses), limits_at)

    def view(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "queues": [{**queue_view(queue, self.at), "paused": queue.queue in self.paused}
                       for queue in self.queues],
            "workers": [worker_view(w, self.at, self.stale_after) for w in self.workers],
            "limits": [limit_view(use, self.limits_at) for use in self.limits],
        }


def schedule_view(record: ScheduleRecord, now: float, upcoming: int = 3) -> dict[str, Any]:
    """A schedule as JSON: timing in words, its next runs (none while paused or inactive),
    its latest run."""
    definition = record.definition
    problems: list[str] = []
    args = decoded(lambda: json.loads(definition.args_json), problems)
    kwargs = decoded(lambda: json.loads(definition.kwargs_json), problems)
    try:
        timing = definition.timing()
    except ConveyorError as exc:
        problems.append(str(exc))
        timing = None
    next_runs: list[str | None] = []
    if timing is not None and record.active and not record.paused:
        after = max(now, record.after)
        for slot in timing.slots_after(after):
            next_runs.append(iso(slot))
            if len(next_runs) == upcoming:
                break
    last = record.last_run
    return {
        "name": definition.name,
        "task": definition.task,
        "expression": definition.cron if definition.cron is not None else None,
        "every": definition.every,
        "spec": timing.spec if timing is not None else definition.cron,
        "description": timing.describe() if timing is not None else None,
        "timezone": definition.tz,
        "args": args,
        "kwargs": kwargs,
        "catch_up": definition.catch_up,
        "max_lateness": definition.max_lateness,
        "active": record.active,
        "paused": record.paused,
        "next_runs": next_runs,
        "last_run": None if last is None else {
            "job_id": last.job_id, "state": last.state.value, "slot": iso(last.slot),
            "enqueued_at": iso(last.enqueued_at), "finished_at": iso(last.finished_at)},
        "synced_by": record.synced_by,
        "synced_at": iso(record.synced_at),
        "corrupt": problems,
    }
