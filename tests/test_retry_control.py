"""Retry control from inside a task: `raise conveyor.Retry(...)`, `raise conveyor.Snooze(...)`,
and `@app.task(retry_on=..., no_retry_on=...)`, on both backends and in every pool.

Executions are counted from the log the tasks write (jobs_app._log), not from the queue."""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import pytest
from helpers import claim, read_executions, spawn_worker, wait_until, worker_thread

import conveyor
from conveyor import Conveyor, InvalidInput, JobFailed, JobState
from conveyor.backends import Backend
from conveyor.backends.base import ClaimedJob, NewJob
from conveyor.job import JobError
from conveyor.outcomes import Snoozed

SLACK = 0.03  # seconds the log's clock and the database's may disagree on one host


def runs_of(log: Path, job_id: int) -> list[tuple[int, float, float]]:
    """(attempt, start, end) of each finished run of the job, in order."""
    runs = sorted((r for r in read_executions(log) if r.job_id == job_id),
                  key=lambda r: r.start)
    return [(r.attempt, r.start, r.end if r.end is not None else float("inf")) for r in runs]


def gaps(runs: list[tuple[int, float, float]]) -> list[float]:
    return [later[1] - earlier[2] for earlier, later in itertools.pairwise(runs)]


def ended(job: conveyor.Job) -> bool:
    return job.refresh().state.is_terminal


def test_retry_with_a_delay_waits_it_counts_the_attempt_and_fails_when_none_are_left(
        app: Conveyor, exec_log: Path) -> None:
    job = app.tasks["t.ask_retry"].enqueue(0.4)  # max_attempts 3, backoff 0.01 s
    with worker_thread(app, concurrency=1):
        (first,) = wait_until(lambda: app.inspector.attempts(job.id), message="attempt 1")
        record = job.refresh().record
        if record.attempts == 1:  # not yet claimed again: placed by the delay asked
            assert record.state is JobState.SCHEDULED
            assert record.run_at - first.finished_at == pytest.approx(0.4, abs=0.1)
        wait_until(lambda: ended(job), message="the job to end")
    runs = runs_of(exec_log, job.id)
    assert [attempt for attempt, _, _ in runs] == [1, 2, 3]  # each retry counted
    assert all(gap >= 0.4 - SLACK for gap in gaps(runs))  # the delay, not the backoff
    assert (job.state, job.attempts) == (JobState.FAILED, 3)
    assert [a.outcome for a in app.inspector.attempts(job.id)] == ["retry", "retry", "failed"]
    assert job.error is not None and job.error.type == "conveyor.control.Retry"
    assert job.error.message == ("the task asked for a retry with no attempts left (attempt 3 "
                                 "of 3): retry in 0.4 s: not ready at attempt 3")


def test_retry_without_a_delay_waits_the_backoff(app: Conveyor, exec_log: Path) -> None:
    job = app.tasks["t.ask_retry"].options(backoff=0.5).enqueue(None, succeed_on=2)
    with worker_thread(app, concurrency=1):
        assert job.result(timeout=20) == 2
    runs = runs_of(exec_log, job.id)
    assert [attempt for attempt, _, _ in runs] == [1, 2]
    assert gaps(runs)[0] >= 0.5 * 0.8 - SLACK  # backoff 0.5 s, jitter at most 20 %
    (retried,) = app.inspector.attempts(job.id)
    assert retried.outcome == "retry" and retried.error is not None
    assert (retried.error.type, retried.error.message) == (
        "conveyor.control.Retry", "retry after the task's backoff: not ready at attempt 1")


def test_snooze_runs_again_without_counting_the_attempt(
        app: Conveyor, exec_log: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="conveyor.jobs")
    # max_attempts=1: three snoozes and a run still fit.
    job = app.tasks["t.snooze"].enqueue(str(tmp_path / "runs"), 3, 0.2)
    with worker_thread(app, concurrency=1):
        assert job.result(timeout=20) == 1  # the attempt number it saw, last time too
    runs = runs_of(exec_log, job.id)
    assert [attempt for attempt, _, _ in runs] == [1, 1, 1, 1]  # four runs, one attempt
    assert all(gap >= 0.2 - SLACK for gap in gaps(runs))
    assert (job.state, job.attempts, job.max_attempts) == (JobState.SUCCEEDED, 1, 1)
    # One row per attempt number: the latest snooze of attempt 1 (it ended with a success).
    (snoozed,) = app.inspector.attempts(job.id)
    assert (snoozed.attempt, snoozed.outcome, snoozed.error) == (1, "snoozed", JobError(
        "conveyor.control.Snooze", "snoozed for 0.2 s: waiting for the resource"))
    jobs_lines = [r for r in caplog.records if r.name == "conveyor.jobs"]
    snoozes = [r.getMessage() for r in jobs_lines if "snoozed" in r.getMessage()]
    assert len(snoozes) == 3
    assert all(line.startswith(f"job {job.id} snoozed for 0.2 s") for line in snoozes)
    assert not [r for r in jobs_lines if r.levelno >= logging.WARNING]  # not a failure
    assert not [r for r in jobs_lines if "failed" in r.getMessage()]


def test_retry_on_and_no_retry_on_choose_what_retries(app: Conveyor, exec_log: Path) -> None:
    # t.picky: retry_on=(OSError,), no_retry_on=(FileNotFoundError,), max_attempts 3.
    picky = app.tasks["t.picky"]
    jobs = {kind: picky.enqueue(kind) for kind in ("os", "connection", "missing", "value")}
    with worker_thread(app, concurrency=4):
        wait_until(lambda: all(ended(job) for job in jobs.values()), message="all to end")
    runs = {kind: len(runs_of(exec_log, job.id)) for kind, job in jobs.items()}
    # OSError and its subclass retry; FileNotFoundError (an OSError too) never: no_retry_on
    # wins; ValueError is not in retry_on.
    assert runs == {"os": 3, "connection": 3, "missing": 1, "value": 1}
    for job in jobs.values():
        assert job.state is JobState.FAILED
    missing, value = jobs["missing"].error, jobs["value"].error
    assert missing is not None and missing.type == "FileNotFoundError"
    assert missing.message == ("missing trouble (not retried: FileNotFoundError is in the "
                               "task's no_retry_on)")
    assert value is not None and value.message == (
        "value trouble (not retried: ValueError is not in the task's retry_on)")
    assert [a.outcome for a in app.inspector.attempts(jobs["missing"].id)] == ["failed"]


def test_retry_on_declarations_are_checked_when_the_task_is_declared(sqlite_url: str) -> None:
    app = Conveyor(sqlite_url)

    def fn() -> None:
        pass

    with pytest.raises(InvalidInput, match=r"task 'bad\.one': retry_on must be an exception "
                                           r"class or a tuple of them .*got 'IOError'"):
        app.task(name="bad.one", retry_on="IOError")(fn)  # type: ignore[call-overload]
    with pytest.raises(InvalidInput, match=r"task 'bad\.two': no_retry_on .*got 3, <class 'int'>"):
        app.task(name="bad.two", no_retry_on=(ValueError, 3, int))(fn)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"subclasses of Exception.*KeyboardInterrupt"):
        app.task(name="bad.three", retry_on=KeyboardInterrupt)(fn)  # type: ignore[arg-type]
    assert set(app.tasks) == set()
    one = app.task(name="ok.one", retry_on=OSError, no_retry_on=(FileNotFoundError,))(fn)
    assert (one.settings.retry_on, one.settings.no_retry_on) == ((OSError,), (FileNotFoundError,))
    app.close()


def test_snooze_ack_gives_the_attempt_back_by_the_database_clock(backend: Backend) -> None:
    backend.enqueue_many([NewJob("t", "default", "[]", "{}", max_attempts=1)
                          for _ in range(3)])
    later, soon, asked = claim(backend, "w1", ["default"], 3, lease=30)
    assert backend.cancel(asked.id) is JobState.RUNNING
    t = time.time()
    note = JobError("conveyor.control.Snooze", "snoozed")

    def snooze(job: ClaimedJob, delay: float) -> Snoozed:
        return Snoozed(job.id, job.token, job.attempt, t, t, note, delay)

    stale = Snoozed(later.id, later.token + 1, 1, t, t, note, 5.0)
    assert backend.ack_many([stale], "w1") == [False]  # fenced by the lease token
    assert backend.ack_many([snooze(later, 30.0), snooze(soon, 0.0), snooze(asked, 30.0)],
                            "w1") == [True, True, True]
    records = {job.id: backend.inspector.get(job.id) for job in (later, soon, asked)}
    first, second, cancelled = (records[job.id] for job in (later, soon, asked))
    assert first is not None and second is not None and cancelled is not None
    assert (first.state, first.attempts, first.lease_owner) == (JobState.SCHEDULED, 0, None)
    assert first.run_at - t == pytest.approx(30.0, abs=2.0)
    assert (second.state, second.attempts) == (JobState.QUEUED, 0)
    assert (cancelled.state, cancelled.attempts) == (JobState.CANCELLED, 1)  # cancel wins
    assert [a.outcome for a in backend.inspector.attempts(later.id)] == ["snoozed"]
    # Given back: the job can be claimed again though it had max_attempts=1.
    (again,) = claim(backend, "w2", ["default"], 1, lease=30)
    assert (again.id, again.attempt) == (soon.id, 1)


@pytest.mark.backends("postgresql")  # one backend: a process start is slow
def test_retry_control_in_a_process_pool_worker(app: Conveyor, db_url: str, exec_log: Path,
                                                tmp_path: Path) -> None:
    """Exceptions raised in a pool process: classified there (subclasses included)."""
    snooze = app.tasks["t.snooze"].enqueue(str(tmp_path / "runs"), 2, 0.1)
    asked = app.tasks["t.ask_retry"].enqueue(0.1, succeed_on=2)
    missing = app.tasks["t.picky"].enqueue("missing")
    connection = app.tasks["t.picky"].enqueue("connection")
    err = tmp_path / "worker.err"
    proc = spawn_worker(db_url, err, "--pool", "process", "-c", "2", log=exec_log)
    try:
        assert snooze.result(timeout=60) == 1
        assert asked.result(timeout=60) == 2
        with pytest.raises(JobFailed, match="no_retry_on"):
            missing.result(timeout=60)
        with pytest.raises(JobFailed, match="ConnectionError"):
            connection.result(timeout=60)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0, err.read_text()
    assert [a for a, _, _ in runs_of(exec_log, snooze.id)] == [1, 1, 1]
    assert snooze.refresh().attempts == 1
    assert [a for a, _, _ in runs_of(exec_log, asked.id)] == [1, 2]
    assert len(runs_of(exec_log, missing.id)) == 1
    assert len(runs_of(exec_log, connection.id)) == 3


def test_retry_control_in_the_asyncio_pool(app: Conveyor, exec_log: Path,
                                           tmp_path: Path) -> None:
    # t.async_steer: snoozes twice, then Retry(0.05, exc=ConnectionError), then raises
    # KeyError, which is in its no_retry_on (max_attempts 3: it would have been retried).
    job = app.tasks["t.async_steer"].enqueue(str(tmp_path / "runs"), 2)
    with worker_thread(app, pool="asyncio"):
        wait_until(lambda: ended(job), message="the job to end")
    assert [a for a, _, _ in runs_of(exec_log, job.id)] == [1, 1, 1, 2]
    assert (job.state, job.attempts) == (JobState.FAILED, 2)
    assert job.error is not None and job.error.message == (
        "'never retried' (not retried: KeyError is in the task's no_retry_on)")
    retried, failed = app.inspector.attempts(job.id)
    assert (retried.attempt, retried.outcome, failed.outcome) == (1, "retry", "failed")
    assert retried.error is not None
    assert retried.error.message == "retry in 0.05 s: ConnectionError: flaky"
    assert retried.error.traceback is not None
    assert "ConnectionError: flaky" in retried.error.traceback
