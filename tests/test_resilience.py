"""What happens when parts fail: a database that refuses writes, signals to a process group,
arguments that refer to themselves, cancel requests that meet a handback."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from databases import execute
from helpers import (
    burst_dispatcher,
    claim,
    read_executions,
    wait_until,
    worker_env,
    worker_thread,
)

from conveyor import Conveyor, DatabaseUnavailable, InvalidInput, JobState
from conveyor.backends import Backend, open_backend
from conveyor.backends.base import ClaimedJob, ClaimPlan, Lease, NewJob, ProgressUpdate
from conveyor.job import Progress
from conveyor.outcomes import Outcome
from conveyor.worker import WorkerStopped
from conveyor.worker import loops as loops_module


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


def test_release_of_a_job_asked_to_cancel_ends_it_cancelled(backend: Backend) -> None:
    backend.enqueue_many([NewJob("t", "default", "[]", "{}"), NewJob("t", "default", "[]",
                                                                     "{}")])
    first, second = claim(backend, "w", ["default"], 2, lease=30)
    assert backend.cancel(first.id) is JobState.RUNNING
    later = time.time() + 60
    assert backend.release([Lease(first.id, first.token), Lease(second.id, second.token)],
                           not_before=later) == 2
    one, two = backend.inspector.get(first.id), backend.inspector.get(second.id)
    assert one is not None and one.state is JobState.CANCELLED
    assert two is not None and two.state is JobState.SCHEDULED
    assert two.run_at == pytest.approx(later, abs=1.0) and two.attempts == 0


class FlakyBackend:
    """A real backend whose ack writes fail the first `failures` times; everything else is
    the backend's own."""

    def __init__(self, inner: Backend, failures: int) -> None:
        self._inner = inner
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _fail(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("disk I/O error (injected)")

    def ack_many(self, outcomes: Sequence[Outcome], worker: str) -> list[bool]:
        self._fail()
        return self._inner.ack_many(outcomes, worker)

    def ack_and_claim(self, outcomes: Sequence[Outcome], *args: Any,
                      **kwargs: Any) -> tuple[list[bool], list[ClaimedJob]]:
        if outcomes:
            self._fail()
        return self._inner.ack_and_claim(outcomes, *args, **kwargs)


def test_the_dispatcher_retries_a_failing_write(backend: Backend) -> None:
    flaky = FlakyBackend(backend, failures=2)
    (job,) = flaky.enqueue_many([NewJob("t", "default", "[]", "{}")])
    deaths: list[BaseException] = []
    dispatcher = burst_dispatcher(flaky, 1, deaths)
    dispatcher.run()
    assert deaths == []
    assert dispatcher.held() == [] and dispatcher.pending() == 0
    assert flaky.failures == 0
    assert dispatcher.processed == dispatcher.written == 1
    record = backend.inspector.get(job.record.id)
    assert record is not None and record.state is JobState.SUCCEEDED


class LostReplyBackend(FlakyBackend):
    """A real backend whose first round with outcomes to write commits, then fails as a
    connection lost before the server's reply: its outcomes are written and the jobs it
    claimed leased, and the worker knows neither."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner, failures=0)
        self.lost: list[ClaimedJob] | None = None

    def ack_and_claim(self, outcomes: Sequence[Outcome], *args: Any,
                      **kwargs: Any) -> tuple[list[bool], list[ClaimedJob]]:
        result = self._inner.ack_and_claim(outcomes, *args, **kwargs)
        if self.lost is None and outcomes:
            self.lost = result[1]
            raise DatabaseUnavailable("the connection was lost before the reply (injected)")
        return result


def test_outcomes_a_round_whose_reply_was_lost_wrote_are_not_called_a_takeover(
        backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    lost_reply = LostReplyBackend(backend)
    jobs = lost_reply.enqueue_many([NewJob("t", "default", "[]", "{}") for _ in range(2)])
    deaths: list[BaseException] = []
    dispatcher = burst_dispatcher(lost_reply, 2, deaths)
    with caplog.at_level(logging.WARNING, logger="conveyor.worker"):
        dispatcher.run()  # burst: returns once nothing is left to claim or run
    assert deaths == [] and lost_reply.lost == []
    for job in jobs:  # written by the round whose reply was lost
        record = backend.inspector.get(job.record.id)
        assert record is not None and record.state is JobState.SUCCEEDED
    # Written again, refused: said so, not as a takeover by another worker.
    assert caplog.text.count("not written again") == 2
    assert "another worker took the job)" not in caplog.text


def test_worker_whose_acks_keep_failing_stops_and_hands_jobs_back(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobs_app import make_app

    monkeypatch.setattr(loops_module, "OUTAGE_TOLERANCE", 0.0)
    flaky = FlakyBackend(open_backend(db_url), failures=10**6)
    app = make_app(db_url, backend=flaky)
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

    app = make_app(db_url, lease_timeout=1.0)
    try:
        job = app.tasks["t.until_cancelled"].enqueue()
        with worker_thread(app, concurrency=1) as worker:
            wait_until(lambda: read_executions(exec_log), message="job start")
            # Another party takes the job over behind the worker's back: a fresh lease token.
            # (Tokens are positive; PostgreSQL's sequence hands out 1 first.)
            assert execute(db_url, "UPDATE conveyor_jobs SET lease_token = -1 WHERE id = ?",
                           (job.id,)) == 1
            wait_until(lambda: worker.processed == 1, timeout=10, message="task to stop")
        assert job.refresh().state is JobState.RUNNING  # the stale outcome was refused
    finally:
        app.close()


class StalledClaimReply:
    """A real backend whose first claim that returns jobs is held back after the database
    committed it, until the test lets it through: a reply stuck in the network, or a worker
    frozen between its claim and starting the jobs."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner
        self.holding = threading.Event()
        self.let_through = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def ack_and_claim(self, *args: Any, **kwargs: Any) -> tuple[list[bool], list[ClaimedJob]]:
        accepted, claimed = self._inner.ack_and_claim(*args, **kwargs)
        if claimed and not self.holding.is_set():
            self.holding.set()
            self.let_through.wait(30)
        return accepted, claimed


def test_a_claim_that_arrives_after_its_lease_expired_is_not_run(
    db_url: str, exec_log: Path, tmp_path: Path
) -> None:
    from jobs_app import make_app

    gate = tmp_path / "gate"
    app = make_app(db_url, lease_timeout=1.0)
    stalled = StalledClaimReply(open_backend(db_url))
    stalled_app = make_app(db_url, lease_timeout=1.0, backend=stalled)
    try:
        job = app.tasks["t.gate"].enqueue(str(gate))
        with worker_thread(stalled_app, concurrency=1, name="stalled"):
            wait_until(stalled.holding.is_set, message="the claim to be committed and held")
            with worker_thread(app, concurrency=1, name="healthy"):
                wait_until(lambda: job.refresh().record.lease_owner == "healthy"
                           and read_executions(exec_log), message="the job taken over")
                stalled.let_through.set()  # the stale claim arrives, its lease long gone
                gate.touch()
                assert job.result(timeout=10) is not None
        # Both workers have stopped, so every run that was started has ended.
        runs = read_executions(exec_log)
        assert len(runs) == 1, f"a stale claim was run: {runs}"
        assert job.refresh().attempts == 2
    finally:
        stalled.let_through.set()
        gate.touch()
        stalled_app.close()
        app.close()


class OvertakenProgress:
    """A real backend whose first progress write waits until an outcome has been written
    (or 2 s): a progress write overtaken by an ack, as with two writers (the old ack ledger
    and the claim loop). With one writer (the dispatcher) the ack waits its turn."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner
        self.writing_progress = threading.Event()
        self.ack_started = threading.Event()
        self.ack_returned = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _writing_progress(self) -> None:
        if not self.writing_progress.is_set():
            self.writing_progress.set()
            # Give an ack the chance to overtake this write; one that (rightly) waits for
            # the write to finish never starts, and the write goes ahead after 1 s.
            if self.ack_started.wait(1.0):
                self.ack_returned.wait(2)

    def save_progress(self, updates: Sequence[Any]) -> None:
        self._writing_progress()
        self._inner.save_progress(updates)

    def _acking(self, outcomes: Sequence[Outcome], call: Any) -> Any:
        if outcomes:
            self.ack_started.set()
        result = call()
        if outcomes:
            self.ack_returned.set()
        return result

    def ack_many(self, outcomes: Sequence[Outcome], worker: str) -> list[bool]:
        return self._acking(outcomes,  # type: ignore[no-any-return]
                            lambda: self._inner.ack_many(outcomes, worker))

    def ack_and_claim(self, outcomes: Sequence[Outcome], owner: str, queues: Sequence[str],
                      limit: int, lease: float, progress: Sequence[ProgressUpdate] = (),
                      plan: ClaimPlan | None = None) -> tuple[list[bool], list[ClaimedJob]]:
        if progress and not outcomes:  # progress written on its own (with a claim)
            self._writing_progress()
        return self._acking(outcomes,  # type: ignore[no-any-return]
                            lambda: self._inner.ack_and_claim(outcomes, owner, queues, limit,
                                                              lease, progress, plan))


def test_the_last_progress_of_a_finished_job_is_kept(db_url: str, tmp_path: Path) -> None:
    from jobs_app import make_app

    gate = tmp_path / "gate"
    overtaken = OvertakenProgress(open_backend(db_url))
    app = make_app(db_url, backend=overtaken)
    try:
        job = app.tasks["t.progress_gate"].enqueue(1, str(gate))  # one report: one write
        with worker_thread(app, concurrency=1):
            wait_until(overtaken.writing_progress.is_set, message="the progress write")
            gate.touch()  # the job ends while its progress is being written
            assert job.result(timeout=10) == 1
        assert job.refresh().progress == Progress(1, 1, "step 1")
    finally:
        gate.touch()
        app.close()
