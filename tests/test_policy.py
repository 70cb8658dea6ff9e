"""The outcome policy (conveyor.policy.decide): properties over every cause and attempt."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from conveyor import control
from conveyor.job import JobError
from conveyor.outcomes import Cancelled, Failed, Retry, Snoozed
from conveyor.policy import (
    ASKED_BY_THE_TASK,
    DEFAULT_ERRORS,
    NEVER_RETRIED,
    RETRIED_AFTER_BACKOFF,
    AttemptFacts,
    Cause,
    classify,
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
    placed = (RETRIED_AFTER_BACKOFF | NEVER_RETRIED | ASKED_BY_THE_TASK
              | {Cause.CANCELLED, Cause.LOST})
    assert placed == set(Cause)
    assert not RETRIED_AFTER_BACKOFF & NEVER_RETRIED
    assert not (RETRIED_AFTER_BACKOFF | NEVER_RETRIED) & ASKED_BY_THE_TASK
    assert set(DEFAULT_ERRORS) == set(Cause) - {Cause.CANCELLED}


@given(attempt_facts(), st.sampled_from(Cause), errors, st.integers(0, 2**32))
def test_the_outcome_names_the_attempt_and_keeps_the_error(
        facts: AttemptFacts, cause: Cause, error: JobError | None, seed: int) -> None:
    outcome = decide(facts, cause, error, now=NOW, rng=random.Random(seed))
    assert (outcome.job_id, outcome.token, outcome.attempt) == (
        facts.job_id, facts.token, facts.attempt)
    assert (outcome.started_at, outcome.finished_at) == (facts.started_at, NOW)
    stored = outcome.note if isinstance(outcome, Snoozed) else getattr(outcome, "error", None)
    if (cause is Cause.RETRY_ASKED and isinstance(outcome, Failed)
            and facts.backoff is not None):
        # Kept, and said to have asked for a retry with no attempts left.
        kept = error or DEFAULT_ERRORS[cause]
        assert stored is not None and (stored.type, stored.traceback) == (
            kept.type, kept.traceback)
        assert stored.message.startswith("the task asked for a retry with no attempts left")
        assert stored.message.endswith(kept.message)
    elif error is not None:
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


delays = st.none() | st.floats(0, control.MAX_CONTROL_DELAY)


@given(attempt_facts(), errors, delays, st.integers(0, 2**32))
def test_an_asked_retry_waits_the_delay_asked_and_counts_the_attempt(
        facts: AttemptFacts, error: JobError | None, delay: float | None, seed: int) -> None:
    outcome = decide(facts, Cause.RETRY_ASKED, error, now=NOW, rng=random.Random(seed),
                     delay=delay)
    if facts.backoff is None or facts.attempt >= facts.max_attempts:
        assert isinstance(outcome, Failed)  # like any failure: no attempts left, no retry
        return
    assert isinstance(outcome, Retry)
    if delay is not None:
        assert outcome.run_at == NOW + delay  # exactly as asked, no jitter
    else:  # no delay: the task's backoff, as for an exception
        raised = decide(facts, Cause.RAISED, error, now=NOW, rng=random.Random(seed))
        assert isinstance(raised, Retry) and outcome.run_at == raised.run_at


@given(attempt_facts(), errors, st.floats(0, control.MAX_CONTROL_DELAY))
def test_a_snooze_never_fails_whatever_attempts_are_spent(
        facts: AttemptFacts, error: JobError | None, delay: float) -> None:
    outcome = decide(facts, Cause.SNOOZED, error, now=NOW, delay=delay)
    if facts.backoff is None:  # no task to run it (never happens for a raised Snooze)
        assert isinstance(outcome, Failed)
        return
    assert isinstance(outcome, Snoozed)
    assert outcome.delay == delay and outcome.attempt == facts.attempt


@given(attempt_facts(), errors)
def test_an_exception_the_task_does_not_retry_fails_at_once(
        facts: AttemptFacts, error: JobError | None) -> None:
    assert isinstance(decide(facts, Cause.RAISED_FINAL, error, now=NOW), Failed)


class Flaky(ConnectionError):
    pass


EXCEPTIONS = [ValueError("v"), UnicodeError("u"), OSError("o"), ConnectionError("c"),
              Flaky("f"), FileNotFoundError("m"), KeyError("k"), RuntimeError("r")]
CLASSES = [Exception, ValueError, OSError, ConnectionError, Flaky, FileNotFoundError, KeyError]


@given(st.sampled_from(EXCEPTIONS), st.lists(st.sampled_from(CLASSES), max_size=3),
       st.lists(st.sampled_from(CLASSES), max_size=3))
def test_retry_on_and_no_retry_on_match_subclasses_and_no_retry_on_wins(
        exc: Exception, retry_on: list[type[Exception]],
        no_retry_on: list[type[Exception]]) -> None:
    raised = classify(exc, tuple(retry_on), tuple(no_retry_on))
    refused = any(isinstance(exc, cls) for cls in no_retry_on)
    allowed = not retry_on or any(isinstance(exc, cls) for cls in retry_on)
    if refused or not allowed:
        assert raised.cause is Cause.RAISED_FINAL
        assert raised.why is not None and type(exc).__name__ in raised.why
        assert ("no_retry_on" if refused else "not in the task's retry_on") in raised.why
    else:
        assert raised.cause is Cause.RAISED and raised.why is None


@given(st.lists(st.sampled_from(CLASSES), max_size=3),
       st.lists(st.sampled_from(CLASSES), max_size=3), delays)
def test_retry_and_snooze_raised_win_over_retry_on(
        retry_on: list[type[Exception]], no_retry_on: list[type[Exception]],
        delay: float | None) -> None:
    rules = (tuple(retry_on), tuple(no_retry_on))
    asked = classify(control.Retry(delay), *rules)
    assert (asked.cause, asked.delay) == (Cause.RETRY_ASKED, delay)
    snoozed = classify(control.Snooze(delay or 0.0), *rules)
    assert (snoozed.cause, snoozed.delay) == (Cause.SNOOZED, delay or 0.0)


def test_retry_and_snooze_refuse_a_delay_that_is_not_a_sane_number_of_seconds() -> None:
    from datetime import timedelta

    import pytest

    from conveyor.errors import InvalidInput

    assert control.Retry(timedelta(minutes=2)).delay == 120.0
    assert control.Snooze(timedelta(seconds=1.5)).delay == 1.5
    assert control.Retry().delay is None
    for bad in (-1, float("nan"), float("inf"), 11 * 365 * 86400.0, "60", True,
                timedelta(days=-1)):
        with pytest.raises(InvalidInput, match=r"Snooze\(delay=.*finite number of seconds"):
            control.Snooze(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match=r"Retry\(delay=.*from 0 to"):
            control.Retry(bad)  # type: ignore[arg-type]
