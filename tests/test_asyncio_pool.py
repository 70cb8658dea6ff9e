"""The asyncio pool: many `async def` jobs at once on one event loop, with cancellation,
progress, current_job(), retries, timeouts, kill -9 and SIGTERM drains, on every backend.

What ran is read from the log the tasks write themselves (jobs_app._log)."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from helpers import (
    Execution,
    freeze_outside_write,
    kill_all,
    read_executions,
    spawn_worker,
    wait_until,
    worker_thread,
)

from conveyor import Conveyor, JobCancelled, JobFailed, JobState, Progress, Worker
from conveyor.errors import ConfigurationError
from conveyor.worker.pools import POOLS, default_concurrency, make_pool

LEASE = 2.0

posix_signals = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _stderr(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _exit_code(proc: subprocess.Popen[bytes], err: Path, timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"worker {proc.pid} still running {timeout} s after the signal:\n"
                             f"{_stderr(err)}") from None


def _states(app: Conveyor) -> dict[JobState, int]:
    totals: dict[JobState, int] = defaultdict(int)
    for per_queue in app.inspector.count_by_state().values():
        for state, count in per_queue.items():
            totals[state] += count
    return dict(totals)


def test_the_pool_interface(app: Conveyor) -> None:
    assert POOLS == ("thread", "process", "asyncio")
    assert default_concurrency("thread") == 16
    assert default_concurrency("asyncio") == 100
    assert default_concurrency("process") == max(1, os.cpu_count() or 1)
    with pytest.raises(ConfigurationError, match="pool must be one of thread, process, asyncio"):
        default_concurrency("fibre")
    import jobs_app  # the process pool needs an app its processes can import

    kills = {kind: make_pool(kind, app=jobs_app.app, concurrency=1, lease=5.0,
                             on_outcome=lambda job, outcome: None,
                             on_progress=lambda job, progress: None,
                             on_start=lambda job: None).kills_jobs for kind in POOLS}
    assert kills == {"thread": False, "process": True, "asyncio": False}
    assert Worker(app, pool="asyncio").concurrency == 100


def test_many_jobs_are_in_flight_at_once(app: Conveyor, db_url: str, tmp_path: Path) -> None:
    """200 jobs each awaiting one gate: all 200 started in one process before any ended."""
    log, gate, err = tmp_path / "executions.log", tmp_path / "gate", tmp_path / "worker.err"
    task = app.tasks["t.async_gate"]
    jobs = app.enqueue_many(task.prepare(str(gate)) for _ in range(200))
    proc = spawn_worker(db_url, err, "--pool", "asyncio", "-c", "200", log=log, lease=LEASE)
    try:
        runs = wait_until(lambda: (r := read_executions(log)) and len(r) == 200 and r,
                          timeout=60, message="200 jobs to start")
        assert all(run.end is None for run in runs), "a job ended before the gate opened"
        assert {run.pid for run in runs} == {proc.pid}
        assert {run.job_id for run in runs} == {job.id for job in jobs}
        gate.touch()
        wait_until(lambda: _states(app) == {JobState.SUCCEEDED: 200}, timeout=60,
                   message="every job to succeed")
        proc.send_signal(signal.SIGTERM)
        assert _exit_code(proc, err, 30) == 0, _stderr(err)
    finally:
        gate.touch()
        kill_all([proc])
    runs = read_executions(log)
    assert len(runs) == 200 and all(run.end is not None for run in runs)  # each ran once
    assert max(run.start for run in runs) < min(run.end or 0 for run in runs)


def test_current_job_and_progress_are_per_task(app: Conveyor, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    jobs = [app.tasks["t.async_whoami"].enqueue(str(gate)) for _ in range(20)]
    with worker_thread(app, pool="asyncio", concurrency=50):
        def each_reported() -> bool:
            return all(job.refresh().progress == Progress(1, 2, f"job {job.id}") for job in jobs)

        wait_until(each_reported, message="each job's progress to be stored")
        assert all(job.refresh().state is JobState.RUNNING for job in jobs)
        gate.touch()
        for job in jobs:
            assert job.result(timeout=20) == {"id": job.id, "same": True, "attempt": 1}


def test_plain_def_tasks_run_in_threads_with_their_context(app: Conveyor, tmp_path: Path,
                                                           exec_log: Path) -> None:
    gate = tmp_path / "gate"
    progress = app.tasks["t.progress_gate"].enqueue(3, str(gate))
    flaky = app.tasks["t.flaky"].enqueue(2)  # reads current_job().attempt
    record = app.tasks["t.record"].enqueue("plain", sleep=0.05)
    coroutine = app.tasks["t.async_add"].enqueue(20, 22)
    with worker_thread(app, pool="asyncio", concurrency=8):
        wait_until(lambda: progress.refresh().progress == Progress(3, 3, "step 3"),
                   message="the progress of a plain job to be stored")
        assert coroutine.result(timeout=20) == 42  # the loop is free while plain jobs block
        assert record.result(timeout=20) == os.getpid()
        assert flaky.result(timeout=20) == 2
        gate.touch()
        assert progress.result(timeout=20) == 3


def test_a_cancel_cancels_the_coroutine_at_once(app: Conveyor, exec_log: Path) -> None:
    job = app.tasks["t.async_sleep"].enqueue(60.0)
    plain = app.tasks["t.cancellable"].enqueue()  # a plain def job is asked
    with worker_thread(app, pool="asyncio", concurrency=4):
        wait_until(lambda: len(read_executions(exec_log)) == 2, message="both jobs to start")
        asked = time.monotonic()
        job.cancel()
        plain.cancel()
        wait_until(lambda: job.refresh().state is plain.refresh().state is JobState.CANCELLED,
                   timeout=10, message="both jobs to end cancelled")
        assert time.monotonic() - asked < 3.0
        with pytest.raises(JobCancelled):
            job.result(timeout=1)
    ends = {run.job_id: run.end for run in read_executions(exec_log)}
    assert ends[job.id] is None  # cancelled mid-await
    assert ends[plain.id] is not None  # saw cancel_requested and stopped
    assert job.refresh().attempts == 1


def test_an_exception_is_retried_then_fails(app: Conveyor, exec_log: Path) -> None:
    job = app.tasks["t.async_fail"].enqueue("no luck")  # max_attempts=3, backoff 0.05 s
    with worker_thread(app, pool="asyncio"):
        wait_until(lambda: job.refresh().state is JobState.FAILED, timeout=20,
                   message="the job to fail")
    assert job.attempts == 3
    assert [a.outcome for a in app.inspector.attempts(job.id)] == ["retry", "retry", "failed"]
    assert job.error is not None and (job.error.type, job.error.message) == (
        "ValueError", "no luck")
    assert len(read_executions(exec_log)) == 3


def test_a_timeout_cancels_the_coroutine(app: Conveyor, exec_log: Path) -> None:
    job = app.tasks["t.async_slow_timeout"].enqueue(30.0)  # timeout 0.3 s, one attempt
    with worker_thread(app, pool="asyncio"), \
            pytest.raises(JobFailed, match="TimeoutError") as failed:
        job.result(timeout=10)
    assert "was cancelled" in failed.value.message
    (run,) = read_executions(exec_log)
    assert run.end is None
    (attempt,) = app.inspector.attempts(job.id)
    assert attempt.finished_at - run.start < 5  # stopped at its timeout, not after 30 s


def test_a_lost_lease_stops_its_jobs_and_retries_them(
        db_url: str, exec_log: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Another party takes the jobs over behind the worker's back (a fresh lease token): the
    coroutine is cancelled at once, the plain def job is asked to stop, and both attempts end
    as a retry for LeaseNotRenewed (refused by the database: the lease is no longer theirs)."""
    from databases import execute
    from jobs_app import make_app

    app = make_app(db_url, lease_timeout=5.0)
    try:
        coroutine = app.tasks["t.async_sleep"].enqueue(60.0)
        plain = app.tasks["t.until_cancelled"].enqueue()
        with caplog.at_level(logging.INFO, logger="conveyor.jobs"), \
                worker_thread(app, pool="asyncio", concurrency=4) as worker:
            wait_until(lambda: len(read_executions(exec_log)) == 2, message="both jobs to start")
            for job in (coroutine, plain):
                assert execute(db_url, "UPDATE conveyor_jobs SET lease_token = -1 WHERE id = ?",
                               (job.id,)) == 1
            wait_until(lambda: worker.processed == 2, timeout=10,
                       message="both jobs to be stopped")

            def retried() -> set[int]:
                return {getattr(r, "job_id", 0) for r in caplog.records
                        if getattr(r, "error_type", None) == "LeaseNotRenewed"
                        and getattr(r, "state", None) == "scheduled"}

            wait_until(lambda: retried() == {coroutine.id, plain.id},
                       message="both attempts to end as a retry for LeaseNotRenewed")
        assert {run.job_id: run.end for run in read_executions(exec_log)}[coroutine.id] is None
        for job in (coroutine, plain):
            assert job.refresh().state is JobState.RUNNING  # the stale outcome was refused
    finally:
        app.close()


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="no SIGSTOP/SIGCONT")
def test_a_coroutine_that_blocks_its_loop_cannot_outlive_its_lease(
        app: Conveyor, db_url: str, tmp_path: Path) -> None:
    """A `conveyor worker --pool asyncio` frozen past its lease while its job's coroutine
    blocks the loop (nothing can cancel it): B takes the job over, and A exits as soon as it
    wakes (the hard deadline) instead of running the job beside B."""
    log, gates = tmp_path / "executions.log", tmp_path / "gates"
    gates.mkdir()
    err_a, err_b = tmp_path / "a.err", tmp_path / "b.err"
    job = app.tasks["t.async_blocking_gate_pid"].enqueue(str(gates), timeout=30.0)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        worker_a = spawn_worker(db_url, err_a, "--pool", "asyncio", "-c", "4", "--name", "A",
                                log=log, lease=LEASE)
        procs.append(worker_a)
        (run_a,) = wait_until(lambda: read_executions(log), timeout=30, message="A starts it")
        freeze_outside_write(worker_a, db_url)
        frozen_at = time.monotonic()
        worker_b = spawn_worker(db_url, err_b, "-c", "1", "--name", "B", log=log, lease=LEASE)
        procs.append(worker_b)
        wait_until(lambda: any(r.pid == worker_b.pid for r in read_executions(log)),
                   timeout=30, message="B starts the job")
        b_started = next(r.start for r in read_executions(log) if r.pid == worker_b.pid)
        assert time.monotonic() - frozen_at >= LEASE  # B waited out a whole lease
        os.kill(worker_a.pid, signal.SIGCONT)
        assert _exit_code(worker_a, err_a, 10) != 0, _stderr(err_a)
        (gates / str(run_a.pid)).touch()  # A's run could go on now, if anything were left
        (gates / str(worker_b.pid)).touch()
        wait_until(lambda: app.get_job(job.id).state is JobState.SUCCEEDED, timeout=20,
                   message="B's run to succeed")
        assert app.get_job(job.id).record.result == worker_b.pid
    finally:
        for proc in procs:
            (gates / str(proc.pid)).touch()
        kill_all(procs)
    runs = read_executions(log)
    assert sorted((r.pid == worker_b.pid, r.end is not None) for r in runs) == [
        (False, False), (True, True)], runs  # A's run never finished; B's did
    assert all(r.start < b_started for r in runs if r.pid != worker_b.pid)


@posix_signals
def test_kill_9_mid_job_loses_nothing_and_runs_nothing_twice_at_once(
        app: Conveyor, db_url: str, tmp_path: Path) -> None:
    log, gate = tmp_path / "executions.log", tmp_path / "gate"
    errs = {name: tmp_path / f"{name}.err" for name in ("victim", "rescuer")}
    jobs = app.enqueue_many(app.tasks["t.async_gate"].prepare(str(gate)) for _ in range(50))
    ids = {job.id for job in jobs}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        victim = spawn_worker(db_url, errs["victim"], "--pool", "asyncio", "-c", "100",
                              "--name", "victim", log=log, lease=LEASE)
        procs.append(victim)
        wait_until(lambda: {r.job_id for r in read_executions(log) if r.pid == victim.pid}
                   == ids, timeout=60, message="the victim to start every job")
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        t_kill = time.time()  # reaped: nothing the victim wrote is later than this
        rescuer = spawn_worker(db_url, errs["rescuer"], "--pool", "asyncio", "-c", "100",
                               "--name", "rescuer", log=log, lease=LEASE)
        procs.append(rescuer)
        wait_until(lambda: {r.job_id for r in read_executions(log) if r.pid == rescuer.pid}
                   == ids, timeout=60, message="the rescuer to start every job again")
        gate.touch()
        wait_until(lambda: _states(app) == {JobState.SUCCEEDED: 50}, timeout=60,
                   message="every job to succeed")
        rescuer.send_signal(signal.SIGTERM)
        assert _exit_code(rescuer, errs["rescuer"], 30) == 0, _stderr(errs["rescuer"])
    finally:
        gate.touch()
        kill_all(procs)

    by_job: dict[int, list[Execution]] = defaultdict(list)
    for run in read_executions(log):
        by_job[run.job_id].append(run)
    assert set(by_job) == ids
    for job_id, runs in by_job.items():
        runs.sort(key=lambda run: run.start)
        assert [(run.pid, run.end is not None) for run in runs] == [
            (victim.pid, False), (rescuer.pid, True)], runs
        for earlier, later in itertools.pairwise(runs):
            assert (earlier.end or t_kill) <= later.start, f"job {job_id}: runs overlap: {runs}"
        job = app.get_job(job_id)
        assert job.attempts == 2 and job.record.result == rescuer.pid
        lost = [a for a in app.inspector.attempts(job_id) if a.outcome == "lost"]
        assert [(a.worker, a.attempt) for a in lost] == [("victim", 1)]


@posix_signals
def test_sigterm_finishes_short_jobs_and_hands_back_long_ones(
        app: Conveyor, db_url: str, tmp_path: Path) -> None:
    log, gate, err = tmp_path / "executions.log", tmp_path / "gate", tmp_path / "worker.err"
    short = app.enqueue_many(app.tasks["t.async_sleep"].prepare(1.0) for _ in range(5))
    long = app.enqueue_many(app.tasks["t.async_gate"].prepare(str(gate)) for _ in range(3))
    proc = spawn_worker(db_url, err, "--pool", "asyncio", "-c", "8", "--shutdown-timeout", "4",
                        log=log, lease=LEASE)
    try:
        wait_until(lambda: len(read_executions(log)) == 8, timeout=30,
                   message="all eight jobs to start")
        proc.send_signal(signal.SIGTERM)
        t_term = time.time()
        assert _exit_code(proc, err, 30) == 0, _stderr(err)
        assert time.time() - t_term < 15
    finally:
        gate.touch()
        kill_all([proc])
    assert "handed back 3 unfinished job" in _stderr(err)
    runs = {run.job_id: run for run in read_executions(log)}
    for job in short:
        record = app.get_job(job.id).record
        assert (record.state, record.attempts) == (JobState.SUCCEEDED, 1)
        end = runs[job.id].end
        assert end is not None and end > t_term  # drained, not cut short
    for job in long:
        record = app.get_job(job.id).record
        assert record.state in (JobState.QUEUED, JobState.SCHEDULED), record
        assert record.attempts == 0 and record.lease_owner is None, record  # not counted
        assert app.inspector.attempts(job.id) == []
        assert runs[job.id].end is None
