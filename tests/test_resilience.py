"""What happens when parts fail: a database that refuses writes, signals to a process group,
arguments that refer to themselves, cancel requests that meet a handback."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from helpers import read_executions, wait_until, worker_env, worker_thread

from conveyor import Conveyor, InvalidInput, JobState
from conveyor.backends.base import ClaimedJob, Lease, NewJob
from conveyor.backends.sqlite import SQLiteBackend
from conveyor.outcomes import Outcome, Succeeded
from conveyor.worker import WorkerStopped
from conveyor.worker import loops as loops_module
from conveyor.worker.ledger import AckLedger


def test_self_referencing_arguments_are_refused(app: Conveyor) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(InvalidInput, match="nested more than 100 levels deep"):
        app.tasks["t.echo"].enqueue(loop)
    deep: list[Any] = []
    for _ in range(500):
        deep = [deep]
    with pytest.raises(InvalidInput, match="nested more than"):
        app.tasks["t.echo"].enqueue(deep)


def test_release_of_a_job_asked_to_cancel_ends_it_cancelled(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "r.db")
    try:
        backend.enqueue_many([NewJob("t", "default", "[]", "{}"), NewJob("t", "default", "[]",
                                                                         "{}")])
        first, second = backend.claim("w", ["default"], 2, lease=30)
        assert backend.cancel(first.id) is JobState.RUNNING
        later = time.time() + 60
        assert backend.release([Lease(first.id, first.token), Lease(second.id, second.token)],
                               not_before=later) == 2
        one, two = backend.inspector.get(first.id), backend.inspector.get(second.id)
        assert one is not None and one.state is JobState.CANCELLED
        assert two is not None and two.state is JobState.SCHEDULED
        assert two.run_at == pytest.approx(later) and two.attempts == 0
    finally:
        backend.close()


class FlakyBackend(SQLiteBackend):
    """A real SQLite backend whose ack writes fail the first `failures` times."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures

    def _fail(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("disk I/O error (injected)")

    def ack_many(self, outcomes: Sequence[Outcome], worker: str) -> list[bool]:
        self._fail()
        return super().ack_many(outcomes, worker)

    def ack_and_claim(self, outcomes: Sequence[Outcome], *args: Any,
                      **kwargs: Any) -> tuple[list[bool], list[ClaimedJob]]:
        if outcomes:
            self._fail()
        return super().ack_and_claim(outcomes, *args, **kwargs)


def test_ledger_retries_a_failing_write(tmp_path: Path) -> None:
    backend = FlakyBackend(tmp_path / "f.db", failures=2)
    try:
        backend.enqueue_many([NewJob("t", "default", "[]", "{}")])
        (job,) = backend.claim("w", ["default"], 1, lease=30)
        deaths: list[BaseException] = []
        ledger = AckLedger(backend, "w", lambda: None, deaths.append)
        ledger.hold(Lease(job.id, job.token))
        now = time.time()
        ledger.put(Succeeded(job.id, job.token, 1, now, now, "1"))
        ledger.stop()
        ledger.run()
        assert deaths == []
        assert ledger.held() == []
        record = backend.inspector.get(job.id)
        assert record is not None and record.state is JobState.SUCCEEDED
    finally:
        backend.close()


def test_worker_whose_acks_keep_failing_stops_and_hands_jobs_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobs_app import make_app

    monkeypatch.setattr(loops_module, "OUTAGE_TOLERANCE", 0.0)
    app = make_app(f"sqlite:///{tmp_path / 'w.db'}")
    flaky = FlakyBackend(tmp_path / "w.db", failures=10**6)
    app._backend, app._backend_pid = flaky, os.getpid()  # type: ignore[attr-defined]
    try:
        job = app.tasks["t.add"].enqueue(1, 2)
        worker = app.worker(concurrency=1)
        with pytest.raises(WorkerStopped, match="injected"):
            worker.run()
        record = app.inspector.get(job.id)
        # Not stuck `running` under a heartbeated lease: handed back for another worker.
        assert record is not None and record.state is JobState.QUEUED
        assert record.attempts == 0 and record.lease_owner is None
    finally:
        app.close()


def test_ctrl_c_to_the_process_group_lets_process_pool_jobs_finish(
    app: Conveyor, db_url: str, tmp_path: Path, exec_log: Path
) -> None:
    gate = tmp_path / "gate"
    job = app.tasks["t.gate"].enqueue(str(gate))
    err = tmp_path / "worker.err"
    with open(err, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "worker", "-A", "jobs_app:app", "--url", db_url,
             "--pool", "process", "-c", "1", "--shutdown-timeout", "30"],
            env=worker_env(db_url, exec_log), stdout=stderr, stderr=stderr,
            start_new_session=True,
        )
    try:
        wait_until(lambda: read_executions(exec_log), timeout=30, message="job start")
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl+C does
        wait_until(lambda: b"finishing running jobs" in err.read_bytes(), timeout=10,
                   message="worker to start draining")
        gate.touch()
        assert proc.wait(timeout=30) == 0, err.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert job.refresh().state is JobState.SUCCEEDED, job.error


def test_lost_lease_sets_the_running_tasks_cancel_flag(db_url: str, exec_log: Path) -> None:
    from jobs_app import make_app

    app = make_app(db_url, lease_timeout=0.5)
    try:
        job = app.tasks["t.until_cancelled"].enqueue()
        with worker_thread(app, concurrency=1) as worker:
            wait_until(lambda: read_executions(exec_log), message="job start")
            # Another party takes the job over behind the worker's back: a fresh lease token.
            with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
                conn.execute("UPDATE conveyor_jobs SET lease_token = 1 WHERE id = ?", (job.id,))
            wait_until(lambda: worker.processed == 1, timeout=10, message="task to stop")
        assert job.refresh().state is JobState.RUNNING  # the stale outcome was refused
    finally:
        app.close()
