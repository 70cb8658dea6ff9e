"""The outcome policy: how an attempt that did not succeed ends. One function, `decide`, for
every pool and for the rescue of a job whose worker died.

Pure: no database, no clock of its own (`now` is given), no randomness but the `rng` given.

    cause               ends
    RAISED              retry after backoff while attempts remain, else failed
    TIMED_OUT           the same
    LEASE_LOST          the same (the worker stopped the job: it could not keep its lease)
    PROCESS_DIED        the same (the pool process running the job died)
    RAISED_FINAL        failed at once: the task raised an exception its retry_on /
                        no_retry_on says not to retry (see `classify`)
    RETRY_ASKED         the task raised conveyor.Retry: retry after the delay it gave (none:
                        the backoff) while attempts remain, else failed saying it asked for
                        a retry with no attempts left; the attempt counts
    SNOOZED             the task raised conveyor.Snooze: runs again after the delay it gave,
                        the attempt not counted (whatever attempts remain)
    CANCELLED           cancelled
    UNRUNNABLE          failed at once: unknown task, bad payload, a result that cannot be
                        stored; running it again would end the same way
    CRASHED             failed at once: task code raised what is not an Exception (SystemExit,
                        KeyboardInterrupt...) or the pool broke while running it
    LOST                (rescue) cancelled if a cancel was requested, else failed if its
                        attempts are spent, else back to its place in the queue (its old
                        run_at, no backoff); the lost attempt counts

`facts.backoff` None means "never retry" (nor snooze) whatever the cause.

Only LOST looks at `facts.cancel_requested`: in a worker, a cancel requested while an attempt
ran is settled by the acknowledgement (a retry of a job whose cancel was requested ends
cancelled in the same statement), while a rescued job gets no acknowledgement after this.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from . import control
from .job import JobError
from .outcomes import Cancelled, Failed, Outcome, Retry, Snoozed
from .retry import backoff_delay, should_retry


class Cause(StrEnum):
    """Why an attempt ended without a result."""

    RAISED = "raised"
    RAISED_FINAL = "raised_final"
    RETRY_ASKED = "retry_asked"
    SNOOZED = "snoozed"
    TIMED_OUT = "timed_out"
    LEASE_LOST = "lease_lost"
    PROCESS_DIED = "process_died"
    CANCELLED = "cancelled"
    UNRUNNABLE = "unrunnable"
    CRASHED = "crashed"
    LOST = "lost"


# Causes after which the job is retried (after its backoff) while attempts remain.
RETRIED_AFTER_BACKOFF = frozenset({Cause.RAISED, Cause.TIMED_OUT, Cause.LEASE_LOST,
                                   Cause.PROCESS_DIED})
# Causes that fail the job at once: another attempt would end the same way, or must not run.
NEVER_RETRIED = frozenset({Cause.UNRUNNABLE, Cause.CRASHED, Cause.RAISED_FINAL})
# Causes the task asked for (conveyor.Retry, conveyor.Snooze), whatever retry_on says.
ASKED_BY_THE_TASK = frozenset({Cause.RETRY_ASKED, Cause.SNOOZED})


ExceptionTypes = tuple[type[BaseException], ...]


@dataclass(frozen=True, slots=True)
class Raised:
    """What an exception raised by a task means to the policy (see `classify`)."""

    cause: Cause
    delay: float | None = None  # RETRY_ASKED (None: the backoff) and SNOOZED
    why: str | None = None  # RAISED_FINAL: which rule stops the retries


def classify(exc: BaseException, retry_on: ExceptionTypes = (),
             no_retry_on: ExceptionTypes = ()) -> Raised:
    """How the policy treats `exc`, raised by a task declared with `retry_on` / `no_retry_on`
    (matched with isinstance, so subclasses match; no_retry_on wins). Done where the task
    ran (a pool process too), where the exception's classes are known."""
    if isinstance(exc, control.Snooze):
        return Raised(Cause.SNOOZED, exc.delay)
    if isinstance(exc, control.Retry):
        return Raised(Cause.RETRY_ASKED, exc.delay)
    if no_retry_on and isinstance(exc, no_retry_on):
        return Raised(Cause.RAISED_FINAL,
                      why=f"{type(exc).__name__} is in the task's no_retry_on")
    if retry_on and not isinstance(exc, retry_on):
        return Raised(Cause.RAISED_FINAL,
                      why=f"{type(exc).__name__} is not in the task's retry_on")
    return Raised(Cause.RAISED)


@dataclass(frozen=True, slots=True)
class AttemptFacts:
    """What the policy needs to know about the attempt that ended."""

    job_id: int
    token: int
    attempt: int  # 1-based number of the attempt that ended (for rescue: the job's attempts)
    max_attempts: int
    started_at: float
    # Base seconds of exponential backoff; None: never retry. A rescuer passes 0.0 (a lost
    # job goes back to its place at once) unless the job must not run again.
    backoff: float | None
    cancel_requested: bool = False
    run_at: float = 0.0  # the job's place in its queue; a rescued job keeps it


LEASE_NOT_RENEWED = JobError(
    "LeaseNotRenewed",
    "the worker could not renew its lease on the job in time (database unreachable, or the "
    "worker frozen or starved of CPU), so it stopped the job before another worker could "
    "take it over",
)


def lost_by(owner: str) -> JobError:
    """What a rescued attempt records, naming the worker that lost it."""
    return JobError(
        "LeaseExpired",
        f"worker {owner} stopped renewing its lease on the job for a whole lease period while "
        "the database could be written; it was probably killed, frozen or cut off from the "
        "database",
    )


DEFAULT_ERRORS: dict[Cause, JobError] = {
    Cause.RAISED: JobError("Exception", "the task raised"),
    Cause.RAISED_FINAL: JobError("Exception", "the task raised what it does not retry"),
    Cause.RETRY_ASKED: JobError("conveyor.Retry", "the task asked for a retry"),
    Cause.SNOOZED: JobError("conveyor.Snooze", "the task snoozed"),
    Cause.TIMED_OUT: JobError("TimeoutError", "the task ran past its timeout"),
    Cause.LEASE_LOST: LEASE_NOT_RENEWED,
    Cause.PROCESS_DIED: JobError("WorkerProcessDied", "the pool process running the job died"),
    Cause.UNRUNNABLE: JobError("Unrunnable", "the job cannot run here"),
    Cause.CRASHED: JobError("Crashed", "the task or its pool broke while running the job"),
    Cause.LOST: lost_by("running the job"),
}


def decide(
    facts: AttemptFacts,
    cause: Cause,
    error: JobError | None = None,
    *,
    now: float,
    rng: random.Random | None = None,
    delay: float | None = None,
) -> Outcome:
    """The outcome of an attempt that ended for `cause` (see the module's table).

    `error` is what is stored with the outcome; None takes the cause's default (a cancel
    may carry none). `delay`: the seconds a task asked for (RETRY_ASKED: None takes the
    backoff; SNOOZED: None is 0)."""
    ids = (facts.job_id, facts.token, facts.attempt, facts.started_at, now)
    if cause is Cause.CANCELLED:
        return Cancelled(*ids, error)
    failure = error if error is not None else DEFAULT_ERRORS[cause]
    if cause is Cause.LOST:
        if facts.cancel_requested:
            return Cancelled(*ids, failure)
        if facts.backoff is None or not should_retry(facts.attempt, facts.max_attempts):
            return Failed(*ids, failure)
        return Retry(*ids, failure, facts.run_at)
    if facts.backoff is None or cause in NEVER_RETRIED:
        return Failed(*ids, failure)
    if cause is Cause.SNOOZED:  # not a failure: the attempt is given back
        return Snoozed(*ids, failure, delay or 0.0)
    if not should_retry(facts.attempt, facts.max_attempts):
        if cause is Cause.RETRY_ASKED:
            failure = JobError(failure.type, "the task asked for a retry with no attempts left "
                               f"(attempt {facts.attempt} of {facts.max_attempts}): "
                               f"{failure.message}", failure.traceback)
        return Failed(*ids, failure)
    if cause is Cause.RETRY_ASKED and delay is not None:
        return Retry(*ids, failure, now + delay)
    return Retry(*ids, failure, now + backoff_delay(facts.attempt, facts.backoff, rng=rng))
