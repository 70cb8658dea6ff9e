"""What a worker says about each job: a line when it starts and a line when it ends, logged in
the worker process where the outcome arrives (from a pool thread or a pool process alike).

The logger is `conveyor.jobs`, so the per-job lines can be silenced or routed on their own.
Each record carries structured fields (`job_id`, `task`, `queue`, `attempt`, `max_attempts`,
`state`, `duration`, `error_type`, `error_message`, `retry_in`) for `--log-format json`.

Levels: start, success, cancel, a snooze and a failed attempt that will be retried at INFO (the
retried attempt's traceback at DEBUG); a job that failed for good at WARNING, with its traceback.
Both check the logger's level first, so a worker logging at WARNING formats nothing for a job
that does not fail for good (the worker checks before calling `started`, in the pool thread
that starts the job, off the claim loop's path)."""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from ..backends.base import ClaimedJob
from ..job import JobError
from ..outcomes import Cancelled, Failed, Outcome, Retry, Snoozed, Succeeded

log = logging.getLogger("conveyor.jobs")

MAX_LOGGED_MESSAGE = 2000  # characters of an error message in a log line


def _fields(job: ClaimedJob) -> dict[str, Any]:
    return {"job_id": job.id, "task": job.task, "queue": job.queue, "attempt": job.attempt,
            "max_attempts": job.max_attempts}


def started(job: ClaimedJob) -> None:
    log.info("job %d started: %s on %s, attempt %d of %d", job.id, job.task, job.queue,
             job.attempt, job.max_attempts, extra=_fields(job))


def ended(job: ClaimedJob, outcome: Outcome) -> None:
    """Log how an attempt ended; only what the logger's level lets through is formatted."""
    final = isinstance(outcome, Failed)
    if not log.isEnabledFor(logging.WARNING if final else logging.INFO):
        return
    duration = max(0.0, outcome.finished_at - outcome.started_at)
    fields = _fields(job)
    fields["duration"] = round(duration, 6)
    error: JobError | None = getattr(outcome, "error", None)
    if error is not None:
        fields["error_type"] = error.type
        fields["error_message"] = error.message[:MAX_LOGGED_MESSAGE]
    if final:
        fields["state"] = "failed"
        _emit(logging.WARNING, "job %d failed: %s, attempt %d of %d, %.3f s: %s",
              (job.id, job.task, job.attempt, job.max_attempts, duration, _error(error)),
              fields, error.traceback if error is not None else None)
        return
    if isinstance(outcome, Retry):
        retry_in = max(0.0, outcome.run_at - outcome.finished_at)
        fields["state"] = "scheduled"
        fields["retry_in"] = round(retry_in, 3)
        log.info("job %d attempt %d of %d failed: %s, %.3f s: %s; retrying in %.1f s", job.id,
                 job.attempt, job.max_attempts, job.task, duration, _error(error), retry_in,
                 extra=fields)
        if error is not None and error.traceback and log.isEnabledFor(logging.DEBUG):
            _emit(logging.DEBUG, "job %d attempt %d traceback", (job.id, job.attempt), fields,
                  error.traceback)
    elif isinstance(outcome, Snoozed):  # not a failure: no error fields
        fields["state"] = "scheduled"
        fields["retry_in"] = round(outcome.delay, 3)
        log.info("job %d snoozed for %g s: %s, attempt %d of %d not counted, %.3f s (%s)",
                 job.id, outcome.delay, job.task, job.attempt, job.max_attempts, duration,
                 outcome.note.message, extra=fields)
    elif isinstance(outcome, Succeeded):
        fields["state"] = "succeeded"
        log.info("job %d succeeded: %s, attempt %d of %d, %.3f s", job.id, job.task,
                 job.attempt, job.max_attempts, duration, extra=fields)
    elif isinstance(outcome, Cancelled):
        fields["state"] = "cancelled"
        log.info("job %d cancelled: %s, attempt %d of %d, %.3f s", job.id, job.task,
                 job.attempt, job.max_attempts, duration, extra=fields)


def _error(error: JobError | None) -> str:
    if error is None:
        return "no error recorded"
    return str(JobError(error.type, error.message[:MAX_LOGGED_MESSAGE]))


def _emit(level: int, message: str, args: tuple[Any, ...], fields: dict[str, Any],
          traceback: str | None) -> None:
    """Log with the job's stored traceback where a formatter puts an exception's (exc_text:
    appended by the standard formatter, a `traceback` field in JSON)."""
    if not log.isEnabledFor(level):
        return
    record = log.makeRecord(log.name, level, __file__, 0, message, args, None, extra=fields)
    if traceback:
        record.exc_text = traceback.rstrip()
    log.handle(record)


class JobLogWriter:
    """Writes the per-job lines from one thread of its own. Pool threads only hand over what
    happened: sixteen threads each taking the handler's lock for every line convoyed on it and
    on the GIL, and halved a worker's throughput (bench/RESULTS.md)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[ClaimedJob, Outcome | None] | None] = (
            queue.SimpleQueue())
        self._thread = threading.Thread(target=self._run, name="conveyor-joblog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def started(self, job: ClaimedJob) -> None:
        if log.isEnabledFor(logging.INFO):
            self._queue.put((job, None))

    def ended(self, job: ClaimedJob, outcome: Outcome) -> None:
        if log.isEnabledFor(logging.WARNING if isinstance(outcome, Failed) else logging.INFO):
            self._queue.put((job, outcome))

    def stop(self) -> None:
        """Write what is left, then stop."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            job, outcome = item
            try:
                if outcome is None:
                    started(job)
                else:
                    ended(job, outcome)
            except Exception:  # a log line must never stop the worker
                logging.getLogger("conveyor.worker").exception("writing a job log line failed")
