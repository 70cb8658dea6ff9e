"""Cancelling a running job reaches it within a second, on every backend, in every pool."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from helpers import kill_all, pid_alive, read_executions, spawn_worker, wait_until, worker_thread

from conveyor import JobState

# Long enough that a heartbeat (every lease/3) cannot be what carries the cancel.
LEASE = 30.0


def test_a_cancel_reaches_a_running_thread_within_a_second(db_url: str, exec_log: Path) -> None:
    from jobs_app import make_app

    app = make_app(db_url, lease_timeout=LEASE)
    try:
        job = app.tasks["t.cancellable"].enqueue()
        with worker_thread(app, concurrency=2):
            wait_until(lambda: read_executions(exec_log), message="the job to start")
            asked = time.time()
            assert job.cancel() is JobState.RUNNING
            wait_until(lambda: job.refresh().state is JobState.CANCELLED, timeout=10,
                       message="the job to end cancelled")
        (run,) = read_executions(exec_log)
        assert run.end is not None
        assert run.end - asked < 1.0, run.end - asked
    finally:
        app.close()


def test_a_cancel_cancels_a_running_coroutine_at_once(db_url: str, exec_log: Path) -> None:
    from jobs_app import make_app

    app = make_app(db_url, lease_timeout=LEASE)
    try:
        job = app.tasks["t.async_sleep"].enqueue(60.0)
        with worker_thread(app, concurrency=1):
            wait_until(lambda: read_executions(exec_log), message="the coroutine to start")
            asked = time.monotonic()
            job.cancel()
            wait_until(lambda: job.refresh().state is JobState.CANCELLED, timeout=10,
                       message="the job to end cancelled")
            assert time.monotonic() - asked < 2.0
        (run,) = read_executions(exec_log)
        assert run.end is None  # cancelled mid-sleep
    finally:
        app.close()


def test_a_process_pool_job_that_ignores_a_cancel_is_killed(db_url: str, tmp_path: Path) -> None:
    from jobs_app import make_app

    app = make_app(db_url, lease_timeout=LEASE)
    log, gate, err = tmp_path / "executions.log", tmp_path / "gate", tmp_path / "worker.err"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        job = app.tasks["t.gate"].enqueue(str(gate))  # never looks at cancel_requested
        procs.append(spawn_worker(db_url, err, "--pool", "process", "-c", "1", log=log,
                                  lease=LEASE))
        (run,) = wait_until(lambda: read_executions(log), timeout=30, message="the job to start")
        job.cancel()
        wait_until(lambda: job.refresh().state is JobState.CANCELLED, timeout=20,
                   message="the job to end cancelled")
        assert not pid_alive(run.pid)
        assert job.error is not None and "killed" in job.error.message
    finally:
        gate.touch()
        kill_all(procs)
        app.close()
    assert read_executions(log)[0].end is None
