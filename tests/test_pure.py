"""The pure layers: retry policy, serializer, outcome values and the executor, no database."""

from __future__ import annotations

import random
from typing import Any

import pytest

from conveyor import Conveyor, JobCancelled, current_job
from conveyor.backends.base import ClaimedJob
from conveyor.errors import NoCurrentJob
from conveyor.job import JobError, Progress
from conveyor.outcomes import (
    Cancelled,
    Failed,
    Retry,
    Succeeded,
    outcome_from_dict,
    outcome_to_dict,
)
from conveyor.retry import backoff_delay
from conveyor.worker.executor import execute


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    for attempt, nominal in [(1, 2.0), (2, 4.0), (3, 8.0), (6, 64.0)]:
        delays = [backoff_delay(attempt, 2.0, rng=rng) for _ in range(200)]
        assert min(delays) >= nominal * 0.8
        assert max(delays) <= nominal * 1.2
        assert max(delays) - min(delays) > nominal * 0.1  # jitter spreads retries out
    assert backoff_delay(100, 1.0, cap=60) <= 60
    with pytest.raises(ValueError):
        backoff_delay(0, 1.0)


def test_outcomes_round_trip_through_plain_dicts() -> None:
    error = JobError("ValueError", "bad", "Traceback...")
    for outcome in [Succeeded(1, 2, 1, 0.5, 1.5, '{"a":1}'),
                    Retry(1, 2, 1, 0.5, 1.5, error, 9.0),
                    Failed(1, 2, 3, 0.5, 1.5, error),
                    Cancelled(1, 2, 1, 0.5, 1.5), Cancelled(1, 2, 1, 0.5, 1.5, error)]:
        assert outcome_from_dict(outcome_to_dict(outcome)) == outcome


def claimed(task: str, args: str = "[]", kwargs: str = "{}", attempt: int = 1,
            max_attempts: int = 3) -> ClaimedJob:
    return ClaimedJob(id=7, task=task, queue="default", priority=0, args_json=args,
                      kwargs_json=kwargs, attempt=attempt, max_attempts=max_attempts, token=99,
                      run_at=0.0, enqueued_at=0.0, cancel_requested=False)


@pytest.fixture
def tasks() -> Any:
    app = Conveyor("sqlite:///never-opened.db")

    @app.task(name="ok")
    def ok(a: int, b: int = 0) -> int:
        assert current_job().id == 7
        return a + b

    @app.task(name="boom", backoff=10.0)
    def boom() -> None:
        raise KeyError("missing")

    @app.task(name="stop")
    def stop() -> None:
        raise JobCancelled()

    @app.task(name="watch")
    def watch() -> str:
        current_job().progress(1, 2, "half")
        return "saw cancel" if current_job().cancel_requested else "no cancel"

    return app.tasks


def run(job: ClaimedJob, tasks: Any, cancel: bool = False) -> tuple[Any, list[Progress]]:
    reported: list[Progress] = []
    outcome = execute(job, tasks, is_cancel_requested=lambda: cancel,
                      report_progress=reported.append)
    return outcome, reported


def test_success_carries_the_json_result_and_token(tasks: Any) -> None:
    outcome, _ = run(claimed("ok", "[2]", '{"b": 3}'), tasks)
    assert isinstance(outcome, Succeeded)
    assert (outcome.result_json, outcome.token, outcome.job_id) == ("5", 99, 7)


def test_failure_with_attempts_left_retries_after_backoff(tasks: Any) -> None:
    outcome, _ = run(claimed("boom", attempt=1), tasks)
    assert isinstance(outcome, Retry)
    assert outcome.error.type == "KeyError"
    assert 8.0 <= outcome.run_at - outcome.finished_at <= 12.0
    final, _ = run(claimed("boom", attempt=3), tasks)
    assert isinstance(final, Failed)


def test_unknown_task_and_bad_payload_fail_without_retry(tasks: Any) -> None:
    unknown, _ = run(claimed("nope"), tasks)
    assert isinstance(unknown, Failed) and "unknown task 'nope'" in unknown.error.message
    bad, _ = run(claimed("ok", args="{not json"), tasks)
    assert isinstance(bad, Failed) and bad.error.type == "BadPayload"
    wrong_shape, _ = run(claimed("ok", args='{"a": 1}'), tasks)
    assert isinstance(wrong_shape, Failed) and wrong_shape.error.type == "BadPayload"


def test_cancellation_outcomes(tasks: Any) -> None:
    raised, _ = run(claimed("stop"), tasks)
    assert isinstance(raised, Cancelled)
    seen, progress = run(claimed("watch"), tasks, cancel=True)
    assert isinstance(seen, Cancelled)
    assert progress == [Progress(1, 2, "half")]
    unseen, _ = run(claimed("watch"), tasks, cancel=False)
    assert isinstance(unseen, Succeeded)


def test_current_job_outside_a_job() -> None:
    with pytest.raises(NoCurrentJob, match="outside a running job"):
        current_job()


def test_progress_refuses_bad_values(tasks: Any) -> None:
    from conveyor.context import JobContext

    context = JobContext(id=1, task="t", queue="q", attempt=1, max_attempts=1,
                         is_cancel_requested=lambda: False, report_progress=lambda p: None)
    bad_calls: list[tuple[Any, ...]] = [(-1,), ("3",), (float("nan"),), (1, -5), (True,)]
    for bad in bad_calls:
        with pytest.raises(ValueError, match="progress"):
            context.progress(*bad)
    with pytest.raises(ValueError, match="message"):
        context.progress(1, 2, 3)  # type: ignore[arg-type]


def test_claimed_rows_read_the_same_in_any_column_order() -> None:
    """A claim's rows in its own column order are read as they are; any other order (a
    limited claim also returns limit_key) by name. Both give the same jobs, damaged numbers
    coerced alike."""
    import sqlite3

    from conveyor.backends.rows import claimed_jobs

    columns = ("id", "task", "queue", "priority", "args", "kwargs", "attempts",
               "max_attempts", "lease_token", "run_at", "enqueued_at", "cancel_requested",
               "backoff", "timeout", "soft_timeout", "followers")
    values = [(1, "t", "default", 0, "[]", "{}", 1, 3, 42, 1.5, 1.0, 0, None, None, 2.0, 1),
              (2, "t", "q", "high", "[1]", "{}", "x", 3, 43, "soon", 1.0, 1, 0.5, "inf", None,
               0)]
    db = sqlite3.connect(":memory:")
    db.row_factory = sqlite3.Row
    db.execute(f"CREATE TABLE jobs ({', '.join(columns)}, limit_key)")
    db.executemany(f"INSERT INTO jobs ({', '.join(columns)}) VALUES "
                   f"({', '.join('?' * len(columns))})", values)
    own_order = claimed_jobs(db.execute(f"SELECT {', '.join(columns)} FROM jobs").fetchall())
    other = claimed_jobs(db.execute(
        f"SELECT limit_key, {', '.join(reversed(columns))} FROM jobs").fetchall())
    assert own_order == other
    assert [(job.id, job.priority, job.attempt, job.run_at, job.soft_timeout, job.followers)
            for job in own_order] == [(1, 0, 1, 1.5, 2.0, True), (2, 0, 1, 0.0, None, False)]
