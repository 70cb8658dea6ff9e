"""The outcome policy: how an attempt that did not succeed ends. One function, `decide`, for
every pool and for the rescue of a job whose worker died.

Pure: no database, no clock of its own (`now` is given), no randomness but the `rng` given.

    cause               ends
    RAISED              retry after backoff while attempts remain, else failed
    TIMED_OUT           the same
    LEASE_LOST          the same (the worker stopped the job: it could not keep its lease)
    PROCESS_DIED        the same (the pool process running the job died)
    CANCELLED           cancelled
    UNRUNNABLE          failed at once: unknown task, bad payload, a result that cannot be
                        stored; running it again would end the same way
    CRASHED             failed at once: task code raised what is not an Exception (SystemExit,
                        KeyboardInterrupt...) or the pool broke while running it
    LOST                (rescue) cancelled if a cancel was requested, else failed if its
                        attempts are spent, else back to its place in the queue (its old
                        run_at, no backoff); the lost attempt counts

`facts.backoff` None means "never retry" whatever the cause.

Only LOST looks at `facts.cancel_requested`: in a worker, a cancel requested while an attempt
ran is settled by the acknowledgement (a retry of a job whose cancel was requested ends
cancelled in the same statement), while a rescued job gets no acknowledgement after this.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from .job import JobError
from .outcomes import Cancelled, Failed, Outcome, Retry
from .retry import backoff_delay, should_retry


class Cause(StrEnum):
    """Why an attempt ended without a result."""

    RAISED = "raised"
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
NEVER_RETRIED = frozenset({Cause.UNRUNNABLE, Cause.CRASHED})


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
) -> Outcome:
    """The outcome of an attempt that ended for `cause` (see the module's table).

    `error` is what is stored with the outcome; None takes the cause's default (a cancel
    may carry none)."""
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
    if cause in NEVER_RETRIED or facts.backoff is None \
            or not should_retry(facts.attempt, facts.max_attempts):
        return Failed(*ids, failure)
    delay = backoff_delay(facts.attempt, facts.backoff, rng=rng)
    return Retry(*ids, failure, now + delay)
