"""Running jobs: order, delays, retries, results, cancellation, progress, unknown tasks."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import read_executions, spawn_worker, wait_until, worker_thread

from conveyor import Conveyor, ConveyorWarning, JobCancelled, JobFailed, JobState, Progress


def test_priority_then_enqueue_order(app: Conveyor, exec_log: Path) -> None:
    record = app.tasks["t.record"]
    plan = [("low-1", 5), ("high-1", -3), ("mid-1", 0), ("high-2", -3), ("low-2", 5),
            ("mid-2", 0), ("mid-3", 0)]
    jobs = {tag: record.options(priority=priority).enqueue(tag) for tag, priority in plan}
    with worker_thread(app, concurrency=1):
        for job in jobs.values():
            job.result(timeout=10)
    order = [run.job_id for run in sorted(read_executions(exec_log), key=lambda r: r.start)]
    expected = ["high-1", "high-2", "mid-1", "mid-2", "mid-3", "low-1", "low-2"]
    assert order == [jobs[tag].id for tag in expected]


def test_delayed_job_waits_for_its_time(app: Conveyor, exec_log: Path) -> None:
    with worker_thread(app, concurrency=2):
        job = app.tasks["t.record"].options(delay=0.4).enqueue("later")
        now_job = app.tasks["t.record"].enqueue("now")
        assert job.state is JobState.SCHEDULED
        now_job.result(timeout=10)
        assert job.refresh().state is JobState.SCHEDULED
        job.result(timeout=10)
    (run,) = [r for r in read_executions(exec_log) if r.job_id == job.id]
    assert run.start >= job.record.run_at
    assert job.record.run_at - job.record.enqueued_at == pytest.approx(0.4, abs=0.05)


def test_retries_with_exponential_backoff_then_failure(app: Conveyor, exec_log: Path) -> None:
    job = app.tasks["t.fail"].enqueue("disk full")  # max_attempts=3, backoff=0.2
    with worker_thread(app, concurrency=1):
        wait_until(lambda: job.refresh().state is JobState.FAILED, timeout=15,
                   message="job to fail")
    assert job.attempts == 3
    starts = sorted(r.start for r in read_executions(exec_log) if r.job_id == job.id)
    assert len(starts) == 3
    first_wait, second_wait = starts[1] - starts[0], starts[2] - starts[1]
    assert first_wait >= 0.2 * 0.8  # backoff * 2**0, minus jitter
    assert second_wait >= 0.4 * 0.8  # backoff * 2**1, minus jitter
    attempts = app.inspector.attempts(job.id)
    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert [a.outcome for a in attempts] == ["retry", "retry", "failed"]
    for attempt in attempts:
        assert attempt.error is not None
        assert attempt.error.type == "ValueError"
        assert attempt.error.message == "disk full"
        assert attempt.error.traceback and "raise ValueError(message)" in attempt.error.traceback
    with pytest.raises(JobFailed) as failed:
        job.result(timeout=1)
    assert failed.value.error_type == "ValueError"
    assert failed.value.message == "disk full"
    assert failed.value.traceback and "Traceback" in failed.value.traceback
    assert str(job.error) == "ValueError: disk full"


def test_retried_job_shows_scheduled_while_backing_off(app: Conveyor) -> None:
    job = app.tasks["t.fail"].options(max_attempts=2).enqueue()
    with worker_thread(app, concurrency=1):
        wait_until(lambda: job.refresh().attempts == 1 and job.state is JobState.SCHEDULED,
                   timeout=10, interval=0.002, message="backoff state")
        assert job.error is not None and job.error.type == "ValueError"
        wait_until(lambda: job.refresh().state is JobState.FAILED, timeout=10)


def test_flaky_job_succeeds_on_a_later_attempt(app: Conveyor) -> None:
    job = app.tasks["t.flaky"].enqueue(3)
    with worker_thread(app):
        assert job.result(timeout=10) == 3
    assert job.refresh().attempts == 3
    assert [a.outcome for a in app.inspector.attempts(job.id)] == ["retry", "retry"]


def test_results_round_trip_as_json(app: Conveyor) -> None:
    job = app.tasks["t.echo"].enqueue(1, "two", [3.5, None], (4, 5), flag=True,
                                      nested={"a": [1, {"b": "c"}]})
    with worker_thread(app):
        result = job.result(timeout=10)
    assert result == {"args": [1, "two", [3.5, None], [4, 5]],
                      "kwargs": {"flag": True, "nested": {"a": [1, {"b": "c"}]}}}


def test_result_timeout(app: Conveyor) -> None:
    job = app.tasks["t.add"].enqueue(1, 1)
    with pytest.raises(TimeoutError, match="still queued"):
        job.result(timeout=0.05)


def test_unserialisable_result_fails_without_retry(app: Conveyor) -> None:
    job = app.tasks["t.bad_result"].enqueue()
    with worker_thread(app), pytest.raises(JobFailed, match="UnserialisableResult"):
        job.result(timeout=10)
    assert job.refresh().attempts == 1


def test_unknown_task_fails_and_the_worker_carries_on(app: Conveyor) -> None:
    with pytest.warns(ConveyorWarning, match="no worker has registered task 'nobody.knows.me'"):
        unknown = app.enqueue("nobody.knows.me", 1)
    after = app.tasks["t.add"].enqueue(2, 2)
    with worker_thread(app, queues=["default"]):
        assert after.result(timeout=10) == 4
        with pytest.raises(JobFailed) as failed:
            unknown.result(timeout=10)
    assert failed.value.error_type == "UnknownTask"
    assert "unknown task 'nobody.knows.me'" in failed.value.message
    assert unknown.refresh().attempts == 1  # not retried: it cannot succeed here


def test_cancel_queued_and_scheduled_jobs(app: Conveyor, exec_log: Path) -> None:
    queued = app.tasks["t.record"].enqueue("q")
    scheduled = app.tasks["t.record"].options(delay=0.2).enqueue("s")
    assert queued.cancel() is JobState.CANCELLED
    assert app.cancel(scheduled.id) is JobState.CANCELLED
    marker = app.tasks["t.record"].options(delay=0.3).enqueue("marker")
    with worker_thread(app):
        marker.result(timeout=10)
    assert queued.refresh().state is JobState.CANCELLED
    assert scheduled.refresh().state is JobState.CANCELLED
    assert {r.job_id for r in read_executions(exec_log)} == {marker.id}
    with pytest.raises(JobCancelled):
        queued.result(timeout=1)


def test_cancel_running_job_cooperatively(app: Conveyor, exec_log: Path) -> None:
    job = app.tasks["t.until_cancelled"].enqueue()
    with worker_thread(app):
        wait_until(lambda: read_executions(exec_log), message="job start")
        assert job.cancel() is JobState.RUNNING
        assert job.record.cancel_requested
        with pytest.raises(JobCancelled):
            job.result(timeout=10)
    assert job.refresh().state is JobState.CANCELLED
    assert job.attempts == 1


def test_cancel_finished_job_changes_nothing(app: Conveyor) -> None:
    job = app.tasks["t.add"].enqueue(1, 1)
    with worker_thread(app):
        job.result(timeout=10)
    assert job.cancel() is JobState.SUCCEEDED


def test_progress_is_stored(app: Conveyor, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    job = app.tasks["t.progress_gate"].enqueue(5, str(gate))
    with worker_thread(app):
        # Stored while the job runs (the last value of a finished job: test_resilience).
        wait_until(lambda: job.refresh().progress == Progress(5, 5, "step 5"),
                   message="the progress to be stored")
        assert job.state is JobState.RUNNING
        gate.touch()
        assert job.result(timeout=10) == 5


def test_async_task(app: Conveyor) -> None:
    job = app.tasks["t.async_add"].enqueue(20, 22)
    with worker_thread(app):
        assert job.result(timeout=10) == 42


def test_thread_pool_timeout_fails_the_attempt(app: Conveyor) -> None:
    job = app.tasks["t.slow_timeout"].enqueue(0.5)  # timeout 0.3 s, one attempt
    with worker_thread(app), pytest.raises(JobFailed, match="TimeoutError"):
        job.result(timeout=10)


def test_heartbeat_keeps_a_long_job_from_being_taken_over(db_url: str, exec_log: Path) -> None:
    from jobs_app import make_app

    app = make_app(db_url, lease_timeout=1.0)
    try:
        job = app.tasks["t.record"].enqueue("long", sleep=2.5)
        with worker_thread(app, concurrency=1), worker_thread(app, concurrency=1):
            job.result(timeout=15)
        runs = [r for r in read_executions(exec_log) if r.job_id == job.id]
        assert len(runs) == 1, runs
        assert job.refresh().attempts == 1
    finally:
        app.close()


def test_burst_worker_exits_when_queue_is_empty(app: Conveyor) -> None:
    jobs = [app.tasks["t.add"].enqueue(n, 1) for n in range(30)]
    worker = app.worker(burst=True, concurrency=4)
    started = time.monotonic()
    worker.run()
    assert time.monotonic() - started < 10
    assert all(job.refresh().state is JobState.SUCCEEDED for job in jobs)
    assert worker.processed == 30
    assert app.inspector.workers() == []  # deregistered


def test_burst_worker_finishes_retries_and_jobs_due_soon(app: Conveyor) -> None:
    flaky = app.tasks["t.flaky"].enqueue(3)  # fails twice (backoff 0.05 s), then succeeds
    failing = app.tasks["t.fail"].enqueue("no")  # fails 3 times, backoff 0.2 s
    soon = app.tasks["t.add"].options(delay=0.5).enqueue(1, 1)
    later = app.tasks["t.add"].options(delay=3600).enqueue(2, 2)  # past the 60 s horizon
    elsewhere = app.tasks["t.add"].options(queue="other", delay=30).enqueue(3, 3)
    worker = app.worker(burst=True, concurrency=2, queues=["default"])
    started = time.monotonic()
    worker.run()
    assert time.monotonic() - started < 20  # not held by the later job, nor the other queue's
    assert (flaky.refresh().state, flaky.attempts) == (JobState.SUCCEEDED, 3)
    assert (failing.refresh().state, failing.attempts) == (JobState.FAILED, 3)
    assert soon.refresh().state is JobState.SUCCEEDED
    assert later.refresh().state is JobState.SCHEDULED
    assert elsewhere.refresh().state is JobState.SCHEDULED


def test_burst_horizon_sets_how_long_a_burst_worker_waits(app: Conveyor) -> None:
    soon = app.tasks["t.add"].options(delay=0.3).enqueue(1, 1)
    later = app.tasks["t.add"].options(delay=30).enqueue(2, 2)
    app.worker(burst=True, burst_horizon=5).run()
    assert soon.refresh().state is JobState.SUCCEEDED
    assert later.refresh().state is JobState.SCHEDULED
    retried = app.tasks["t.fail"].enqueue("later")
    app.worker(burst=True, burst_horizon=0).run()  # exits with nothing runnable right now
    assert (retried.refresh().state, retried.attempts) == (JobState.SCHEDULED, 1)


def test_worker_registers_with_heartbeat(app: Conveyor) -> None:
    with worker_thread(app, concurrency=3, queues=["default", "media"]) as worker:
        (row,) = app.inspector.workers()
        assert row.name == worker.name
        assert row.queues == ("default", "media")
        assert row.concurrency == 3
        first = row.heartbeat_at
        wait_until(lambda: app.inspector.workers()[0].heartbeat_at > first, timeout=10,
                   message="a worker heartbeat")


def test_worker_only_takes_its_queues(app: Conveyor) -> None:
    other = app.tasks["t.add"].options(queue="other").enqueue(1, 1)
    mine = app.tasks["t.add"].enqueue(1, 2)
    with worker_thread(app, queues=["default"]):
        mine.result(timeout=10)
    assert other.refresh().state is JobState.QUEUED


def test_process_pool_runs_jobs_and_kills_timeouts(app: Conveyor, db_url: str,
                                                   tmp_path: Path) -> None:
    adds = [app.tasks["t.add"].enqueue(n, n) for n in range(10)]
    gate = tmp_path / "gate"
    progress = app.tasks["t.progress_gate"].enqueue(3, str(gate))
    slow = app.tasks["t.slow_timeout"].enqueue(30)  # killed at its 0.3 s timeout
    err = tmp_path / "worker.err"
    proc = spawn_worker(db_url, err, "--pool", "process", "-c", "2")
    try:
        assert [job.result(timeout=60) for job in adds] == [2 * n for n in range(10)]
        # Reported by the pool process, stored by the worker while the job runs.
        wait_until(lambda: progress.refresh().progress == Progress(3, 3, "step 3"),
                   timeout=30, message="the progress to be stored")
        gate.touch()
        assert progress.result(timeout=30) == 3
        with pytest.raises(JobFailed, match="TimeoutError") as failed:
            slow.result(timeout=30)
        assert "process was killed" in failed.value.message
        # The pool replaced the killed process and carries on.
        assert app.tasks["t.add"].enqueue(5, 5).result(timeout=30) == 10
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0, err.read_text()
