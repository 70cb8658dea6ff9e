"""Everyday options: a job's own backoff and timeout (stored with it, used by the worker),
arguments checked against the task's signature at enqueue, the names a Celery user types
(`task.delay`, `job.ready()`, `job.successful()`, `job.failed()`) and `app.get_job_by_key`."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from databases import query
from helpers import kill_all, spawn_worker, wait_until, worker_thread
from jobs_app import make_app

from conveyor import Conveyor, InvalidInput, JobFailed, JobState, NewJob


def run_all(app: Conveyor) -> None:
    app.worker(burst=True, concurrency=2, queues=["default"]).run()


# -- a job's own backoff and timeout ---------------------------------------------------------


def test_a_job_s_own_backoff_and_timeout_travel_with_it(app: Conveyor, db_url: str) -> None:
    fail = app.tasks["t.fail"]  # max_attempts=3, backoff=0.2
    slow = app.tasks["t.slow_timeout"]  # timeout=0.3, max_attempts=1
    record = app.tasks["t.record"]  # no timeout
    hasty = fail.options(backoff=0).enqueue("hasty")
    plain = fail.enqueue("plain")
    unlimited = slow.options(timeout=None).enqueue(0.6)
    longer = slow.options(timeout=timedelta(seconds=30)).enqueue(0.6)
    limited = record.options(timeout=0.2, max_attempts=1).enqueue("late", sleep=0.6)
    assert query(db_url, "SELECT id, backoff, timeout FROM conveyor_jobs ORDER BY id") == [
        (hasty.id, 0.0, None), (plain.id, None, None), (unlimited.id, None, math.inf),
        (longer.id, None, 30.0), (limited.id, None, 0.2)]
    with worker_thread(app), Conveyor(db_url) as caller:
        # From a process that does not know the task: the options still reach the worker.
        patient = caller.options("t.fail", backoff=600).enqueue("patient")
        assert unlimited.result(timeout=20) == "done"  # the task's 0.3 s would discard it
        assert longer.result(timeout=20) == "done"
        with pytest.raises(JobFailed, match=r"TimeoutError: .*over its timeout of 0.2 s"):
            limited.result(timeout=20)
        with pytest.raises(JobFailed, match="ValueError: hasty"):
            hasty.result(timeout=20)  # three attempts, no wait between them
        assert hasty.attempts == 3
        wait_until(lambda: patient.refresh().attempts == 1 and patient.state is
                   JobState.SCHEDULED, message="the first attempt of the patient job")
        [attempt] = app.inspector.attempts(patient.id)
        assert patient.record.run_at - attempt.finished_at >= 600 * 0.8  # its own backoff
        with pytest.raises(JobFailed, match="ValueError: plain"):
            plain.result(timeout=20)  # the task's own 0.2 s backoff


def test_a_job_s_own_timeout_kills_its_pool_process(db_url: str, tmp_path: Path) -> None:
    worker = spawn_worker(db_url, tmp_path / "worker.err", "--pool", "process", "-c", "2")
    try:
        with make_app(db_url) as app:
            killed = app.tasks["t.record"].options(timeout=0.5, max_attempts=1).enqueue(
                "stuck", sleep=60)
            unlimited = app.tasks["t.slow_timeout"].options(timeout=None).enqueue(0.8)
            with pytest.raises(JobFailed, match=r"exceeded its timeout of 0\.5 s and its process "
                                                r"was killed"):
                killed.result(timeout=60)
            assert unlimited.result(timeout=60) == "done"  # the task's 0.3 s would kill it
    finally:
        kill_all([worker])


@pytest.mark.parametrize(("options", "message"), [
    ({"backoff": -1}, "backoff must be a number of seconds >= 0"),
    ({"backoff": "soon"}, "backoff must be a number of seconds >= 0"),
    ({"backoff": math.nan}, "backoff must be a number of seconds >= 0"),
    ({"timeout": 0}, "timeout must be > 0 seconds, or None for no limit"),
    ({"timeout": -5}, "timeout must be a number of seconds >= 0"),
    ({"timeout": math.inf}, "timeout must be a number of seconds >= 0"),
])
def test_bad_backoff_and_timeout_are_refused(app: Conveyor, options: dict[str, Any],
                                             message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        app.tasks["t.add"].options(**options)
    with pytest.raises(InvalidInput, match=message):
        app.options("t.add", **options)
    hand_built = NewJob("t.add", "default", "[1, 2]", "{}", timeout=-1.0)
    with pytest.raises(InvalidInput, match=r"timeout=-1\.0 is not a number of seconds > 0"):
        app.enqueue_many([hand_built])
    assert app.inspector.list_jobs() == []
