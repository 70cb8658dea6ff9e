"""The outcome policy (conveyor.policy.decide): properties over every cause and attempt."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from conveyor.job import JobError
from conveyor.outcomes import Cancelled, Failed, Retry
from conveyor.policy import (
    DEFAULT_ERRORS,
    NEVER_RETRIED,
    RETRIED_AFTER_BACKOFF,
    AttemptFacts,
    Cause,
    decide,
)
from conveyor.retry import JITTER, MAX_BACKOFF_SECONDS

NOW = 1_800_000_000.0

errors = st.none() | st.builds(JobError, st.text(min_size=1, max_size=20), st.text(max_size=40))


@st.composite
def attempt_facts(draw: st.DrawFn) -> AttemptFacts:
    max_attempts = draw(st.integers(1, 50))
    return AttemptFacts(
        job_id=draw(st.integers(1, 2**62)),
        token=draw(st.integers(0, 2**62)),
        attempt=draw(st.integers(1, max_attempts + 3)),  # a rescue may see more than max
        max_attempts=max_attempts,
        started_at=NOW - draw(st.floats(0, 1e6)),
        backoff=draw(st.none() | st.floats(0, 1e5)),
        cancel_requested=draw(st.booleans()),
        run_at=NOW - draw(st.floats(-1e6, 1e6)),
    )


def test_every_cause_is_placed_once() -> None:
    placed = RETRIED_AFTER_BACKOFF | NEVER_RETRIED | {Cause.CANCELLED, Cause.LOST}
    assert placed == set(Cause)
    assert not RETRIED_AFTER_BACKOFF & NEVER_RETRIED
    assert set(DEFAULT_ERRORS) == set(Cause) - {Cause.CANCELLED}


@given(attempt_facts(), st.sampled_from(Cause), errors, st.integers(0, 2**32))
def test_the_outcome_names_the_attempt_and_keeps_the_error(
        facts: AttemptFacts, cause: Cause, error: JobError | None, seed: int) -> None:
    outcome = decide(facts, cause, error, now=NOW, rng=random.Random(seed))
    assert (outcome.job_id, outcome.token, outcome.attempt) == (
        facts.job_id, facts.token, facts.attempt)
    assert (outcome.started_at, outcome.finished_at) == (facts.started_at, NOW)
    stored = getattr(outcome, "error", None)
    if error is not None:
        assert stored == error
    elif cause is not Cause.CANCELLED:
        assert stored == DEFAULT_ERRORS[cause]  # never an outcome without a reason
    # Pure: the same facts and the same randomness decide the same way.
    assert decide(facts, cause, error, now=NOW, rng=random.Random(seed)) == outcome


@given(attempt_facts(), st.sampled_from(sorted(RETRIED_AFTER_BACKOFF)), errors)
def test_retried_causes_back_off_while_attempts_remain(
        facts: AttemptFacts, cause: Cause, error: JobError | None) -> None:
    outcome = decide(facts, cause, error, now=NOW, rng=random.Random(1))
    if facts.backoff is None or facts.attempt >= facts.max_attempts:
        assert isinstance(outcome, Failed)
        return
    assert isinstance(outcome, Retry)
    nominal = min(MAX_BACKOFF_SECONDS, facts.backoff * 2.0 ** min(facts.attempt - 1, 62))
    delay = outcome.run_at - NOW
    assert delay >= 0
    assert delay <= min(MAX_BACKOFF_SECONDS, nominal * (1 + JITTER)) * (1 + 1e-9) + 1e-6
    assert delay >= nominal * (1 - JITTER) * (1 - 1e-9) - 1e-6


@given(attempt_facts(), st.sampled_from(sorted(NEVER_RETRIED)), errors)
def test_unrunnable_and_crashed_jobs_fail_at_once(
        facts: AttemptFacts, cause: Cause, error: JobError | None) -> None:
    assert isinstance(decide(facts, cause, error, now=NOW), Failed)


@given(attempt_facts(), errors)
def test_a_cancelled_attempt_ends_cancelled_whatever_its_attempts(
        facts: AttemptFacts, error: JobError | None) -> None:
    outcome = decide(facts, Cause.CANCELLED, error, now=NOW)
    assert isinstance(outcome, Cancelled) and outcome.error == error


@given(attempt_facts(), errors)
def test_rescue_of_a_lost_job_matches_the_rescue_statement(
        facts: AttemptFacts, error: JobError | None) -> None:
    """What rescue_one.sql does: cancel requested -> cancelled; attempts spent -> failed;
    else back to its old place in the queue, at once (no backoff); the attempt counts."""
    outcome = decide(facts, Cause.LOST, error, now=NOW)
    if facts.cancel_requested:
        assert isinstance(outcome, Cancelled)
    elif facts.attempt >= facts.max_attempts or facts.backoff is None:
        assert isinstance(outcome, Failed)
    else:
        assert isinstance(outcome, Retry)
        assert outcome.run_at == facts.run_at
    assert getattr(outcome, "error", None) == (error or DEFAULT_ERRORS[Cause.LOST])


@given(attempt_facts(), st.sampled_from(sorted(set(Cause) - {Cause.LOST})))
def test_only_rescue_looks_at_a_cancel_request(facts: AttemptFacts, cause: Cause) -> None:
    """In a worker the acknowledgement settles a cancel requested meanwhile (a retry of a job
    asked to cancel ends cancelled), so the in-worker causes decide without it."""
    from dataclasses import replace

    asked = decide(replace(facts, cancel_requested=True), cause, now=NOW, rng=random.Random(3))
    not_asked = decide(replace(facts, cancel_requested=False), cause, now=NOW,
                       rng=random.Random(3))
    assert asked == not_asked
