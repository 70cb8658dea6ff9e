"""Fault injection with real worker processes: kill -9, SIGSTOP past the lease, SIGTERM drains.

Every test checks what really ran (the executions log written by the tasks themselves) as well
as what the database says. Workers run with a 1 s lease so expiry and rescue happen quickly.
"""

from __future__ import annotations

import contextlib
import itertools
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
    pid_alive,
    read_executions,
    spawn_worker,
    wait_until,
)

from conveyor import Conveyor, JobState
from conveyor.job import JobRecord

LEASE = 1.0

# Sending SIGTERM on Windows is TerminateProcess: there is no graceful signal to test there.
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

needs_sigkill = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="no SIGKILL")
needs_sigstop = pytest.mark.skipif(
    not (hasattr(signal, "SIGSTOP") and hasattr(signal, "SIGCONT")), reason="no SIGSTOP/SIGCONT"
)


def _states(app: Conveyor) -> dict[JobState, int]:
    totals: dict[JobState, int] = defaultdict(int)
    for per_queue in app.inspector.count_by_state().values():
        for state, count in per_queue.items():
            totals[state] += count
    return totals


def _open_runs(log: Path, pid: int) -> list[Execution]:
    return [e for e in read_executions(log) if e.pid == pid and e.end is None]


def _stderr(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _exit_code(proc: subprocess.Popen[bytes], err: Path, timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"worker {proc.pid} still running {timeout} s after the signal:\n{_stderr(err)}"
        ) from None


def _assert_handed_back(record: JobRecord) -> None:
    """A job handed back at shutdown waits to run again, its attempt not counted, no lease."""
    # `queued`; a hand-back may also hold the job back briefly (`scheduled`, run_at a moment
    # ahead) so the exiting process's abandoned thread is gone before anyone claims it again.
    assert record.state in (JobState.QUEUED, JobState.SCHEDULED), record
    if record.state is JobState.SCHEDULED:
        assert record.run_at < time.time() + 30, record
    assert record.attempts == 0, record
    assert record.lease_owner is None, record
    assert record.lease_expires_at is None, record
    assert record.started_at is None, record


@needs_sigkill
def test_kill_9_mid_job_loses_nothing(app: Conveyor, db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "executions.log"
    record = app.tasks["t.record"]
    # The two long jobs have the lowest ids, so the victim (started first, -c 4) claims both in
    # its first claim and is guaranteed to be mid-job when killed.
    long_jobs = app.enqueue_many(record.prepare(tag=f"long{n}", sleep=2.5) for n in range(2))
    short_jobs = app.enqueue_many(record.prepare(tag=f"s{n}", sleep=0.02) for n in range(300))
    all_ids = {job.id for job in long_jobs + short_jobs}
    long_ids = {job.id for job in long_jobs}

    procs: list[subprocess.Popen[bytes]] = []
    errs = {name: tmp_path / f"{name}.err" for name in ("victim", "w1", "w2")}
    try:
        victim = spawn_worker(
            db_url, errs["victim"], "-c", "4", "--name", "victim", log=log, lease=LEASE
        )
        procs.append(victim)
        wait_until(
            lambda: any(e.job_id in long_ids for e in _open_runs(log, victim.pid)),
            timeout=15,
            message="the victim to start a long job",
        )
        survivors = [
            spawn_worker(db_url, errs[name], "-c", "4", "--name", name, log=log, lease=LEASE)
            for name in ("w1", "w2")
        ]
        procs.extend(survivors)

        def victim_mid_job() -> bool:
            runs = read_executions(log)
            return sum(e.end is not None for e in runs) >= 50 and any(
                e.pid == victim.pid and e.end is None and e.job_id in long_ids for e in runs
            )

        wait_until(victim_mid_job, timeout=10, message="executions logged, victim mid-job")
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        # Reaped: nothing the victim wrote can be later than this.
        t_kill = time.time()

        wait_until(
            lambda: _states(app).get(JobState.SUCCEEDED, 0) == len(all_ids),
            timeout=20,
            message="every job to succeed",
        )
        # Registered means running with its signal handlers: SIGTERM stops it gracefully even
        # if the other one did all the work before it was up.
        wait_until(lambda: {"w1", "w2"} <= {w.name for w in app.inspector.workers()},
                   timeout=30, message="both survivors to be up")
        for proc, name in zip(survivors, ("w1", "w2"), strict=True):
            proc.send_signal(signal.SIGTERM)
            assert _exit_code(proc, errs[name], 15) == 0, _stderr(errs[name])
    finally:
        kill_all(procs)

    assert dict(_states(app)) == {JobState.SUCCEEDED: len(all_ids)}

    runs_by_job: dict[int, list[Execution]] = defaultdict(list)
    for run in read_executions(log):
        runs_by_job[run.job_id].append(run)
    assert set(runs_by_job) == all_ids

    for job_id, runs in runs_by_job.items():
        assert any(run.end is not None for run in runs), f"job {job_id} never completed a run"
        for run in runs:
            # Only the killed worker may leave a run without an end line.
            assert run.end is not None or run.pid == victim.pid, run
        # At-least-once, but never concurrently: runs of one job must not overlap in time.
        runs.sort(key=lambda run: run.start)
        for earlier, later in itertools.pairwise(runs):
            earlier_end = t_kill if earlier.end is None else earlier.end
            assert earlier_end <= later.start, f"job {job_id}: runs overlap: {runs}"
        # A live worker never runs a job twice; extra runs come only from the victim's lease.
        survivor_runs = [run for run in runs if run.pid != victim.pid]
        assert len(survivor_runs) <= 1, f"job {job_id} ran twice on live workers: {runs}"

    rerun = {job_id for job_id, runs in runs_by_job.items() if len(runs) > 1}
    assert long_ids <= rerun, f"the victim's long jobs were not re-run: {runs_by_job}"
    for job_id in long_ids:
        runs = runs_by_job[job_id]
        assert runs[0].pid == victim.pid and runs[0].end is None
        assert runs[-1].pid != victim.pid and runs[-1].end is not None
        job = app.get_job(job_id)
        assert job.state is JobState.SUCCEEDED
        assert job.attempts >= 2
        assert job.record.result == runs[-1].pid
        lost = [a for a in app.inspector.attempts(job_id) if a.outcome == "lost"]
        assert lost, app.inspector.attempts(job_id)
        assert lost[0].worker == "victim"
        assert lost[0].attempt == runs[0].attempt == 1


@needs_sigstop
@pytest.mark.parametrize("pool", ["thread", "process"])
def test_a_worker_frozen_past_its_lease_never_runs_its_job_beside_the_rescuer(
    app: Conveyor, db_url: str, tmp_path: Path, pool: str
) -> None:
    """A (SIGSTOP'd) holds a job past its lease; B takes it over and finishes it. A's run
    must never go on beside B's: in the process pool the job's own process stops itself at
    the deadline even while its worker is frozen; a thread-pool worker, which cannot stop a
    thread, exits as soon as it wakes. Either way A's run never ends and never reports."""
    log = tmp_path / "executions.log"
    gates = tmp_path / "gates"  # t.gate_pid: each process waits for gates/<its pid>
    gates.mkdir()
    err_a, err_b = tmp_path / "a.err", tmp_path / "b.err"
    job = app.tasks["t.gate_pid"].enqueue(str(gates), timeout=30.0)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        worker_a = spawn_worker(db_url, err_a, "-c", "1", "--name", "A", "--pool", pool,
                                log=log, lease=LEASE)
        procs.append(worker_a)
        (run_a,) = wait_until(lambda: [e for e in read_executions(log) if e.end is None],
                              timeout=30, message="A starts the job")
        assert app.get_job(job.id).record.lease_owner == "A"

        freeze_outside_write(worker_a, db_url)
        frozen_at = time.monotonic()
        worker_b = spawn_worker(db_url, err_b, "-c", "1", "--name", "B", log=log, lease=LEASE)
        procs.append(worker_b)
        wait_until(lambda: _open_runs(log, worker_b.pid), timeout=15, message="B starts the job")
        if pool == "process":  # A's pool process stopped itself while A was still frozen
            assert not pid_alive(run_a.pid), "A's pool process runs beside B's run"
        b_started = next(e.start for e in read_executions(log) if e.pid == worker_b.pid)
        assert time.monotonic() - frozen_at >= LEASE  # B waited out a whole lease

        os.kill(worker_a.pid, signal.SIGCONT)
        if pool == "thread":  # the thread cannot be stopped: its whole process goes
            assert _exit_code(worker_a, err_a, 10) != 0, _stderr(err_a)
        (gates / str(run_a.pid)).touch()  # A's run could go on now, if anything were left
        (gates / str(worker_b.pid)).touch()
        wait_until(lambda: app.get_job(job.id).state is JobState.SUCCEEDED, timeout=10,
                   message="B's run to succeed")
        final = app.get_job(job.id)
        assert final.record.result == worker_b.pid and final.attempts == 2
        assert [(a.attempt, a.outcome, a.worker) for a in app.inspector.attempts(job.id)] == [
            (1, "lost", "A")]
    finally:
        for path in (*(gates / str(p.pid) for p in procs), gates / "all"):
            path.touch()
        kill_all(procs)

    runs = read_executions(log)
    assert sorted((e.pid == worker_b.pid, e.end is not None) for e in runs) == [
        (False, False), (True, True)], runs  # A's run never finished; B's did
    assert all(e.start < b_started for e in runs if e.pid != worker_b.pid)


def test_sigterm_drains_running_jobs(app: Conveyor, db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "executions.log"
    err = tmp_path / "worker.err"
    record = app.tasks["t.record"]
    jobs = app.enqueue_many(record.prepare(tag=str(n), sleep=0.5) for n in range(6))
    proc = spawn_worker(db_url, err, "-c", "2", "--shutdown-timeout", "10", log=log, lease=LEASE)
    try:
        wait_until(lambda: len(read_executions(log)) >= 2, timeout=15, message="two jobs started")
        proc.send_signal(signal.SIGTERM)
        t_term = time.time()
        assert _exit_code(proc, err, 15) == 0, _stderr(err)
    finally:
        kill_all([proc])

    runs = read_executions(log)
    started = {run.job_id for run in runs}
    assert len(runs) == 2 == len(started), f"claims went on after SIGTERM: {runs}"
    for run in runs:
        assert run.end is not None and run.end > t_term, f"run not drained after SIGTERM: {run}"
    for job in jobs:
        job.refresh()
        if job.id in started:
            assert job.state is JobState.SUCCEEDED, job
            assert job.attempts == 1
        else:
            assert job.state is JobState.QUEUED, job
            assert job.attempts == 0
            assert job.record.lease_owner is None


def test_sigterm_grace_expired_hands_back_without_counting_attempt(
    app: Conveyor, db_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    gate = tmp_path / "gate"
    err1, err2 = tmp_path / "w1.err", tmp_path / "w2.err"
    job = app.tasks["t.gate"].enqueue(str(gate), timeout=30.0)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        first = spawn_worker(
            db_url, err1, "-c", "1", "--shutdown-timeout", "0.5", log=log, lease=LEASE
        )
        procs.append(first)
        wait_until(lambda: _open_runs(log, first.pid), timeout=15, message="the job to start")
        assert app.get_job(job.id).attempts == 1
        first.send_signal(signal.SIGTERM)
        started_wait = time.monotonic()
        assert _exit_code(first, err1, 10) == 0, _stderr(err1)
        assert time.monotonic() - started_wait < 5
        assert "handed back 1 unfinished job" in _stderr(err1)

        record = app.get_job(job.id).record
        _assert_handed_back(record)
        assert app.inspector.attempts(job.id) == []

        second = spawn_worker(db_url, err2, "-c", "1", log=log, lease=LEASE)
        procs.append(second)
        wait_until(
            lambda: _open_runs(log, second.pid),
            timeout=15,
            message="another worker to start the job",
        )
        gate.touch()
        wait_until(
            lambda: app.get_job(job.id).state is JobState.SUCCEEDED,
            timeout=10,
            message="the job to succeed",
        )
        final = app.get_job(job.id)
        assert final.attempts == 1
        assert final.record.result == second.pid
        second.send_signal(signal.SIGTERM)
        assert _exit_code(second, err2, 15) == 0, _stderr(err2)
    finally:
        gate.touch()
        kill_all(procs)

    runs = sorted(read_executions(log), key=lambda run: run.start)
    assert [(run.pid, run.attempt, run.end is not None) for run in runs] == [
        (first.pid, 1, False),
        (second.pid, 1, True),
    ]


def test_second_signal_stops_now(app: Conveyor, db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "executions.log"
    gate = tmp_path / "gate"
    err = tmp_path / "worker.err"
    job = app.tasks["t.gate"].enqueue(str(gate), timeout=30.0)
    proc = spawn_worker(db_url, err, "-c", "1", "--shutdown-timeout", "60", log=log, lease=LEASE)
    try:
        wait_until(lambda: _open_runs(log, proc.pid), timeout=15, message="the job to start")
        proc.send_signal(signal.SIGTERM)
        wait_until(
            lambda: "finishing running jobs" in _stderr(err),
            timeout=10,
            message="the first signal to be handled",
        )
        assert proc.poll() is None, "the worker did not wait for its running job"
        proc.send_signal(signal.SIGTERM)
        second_at = time.monotonic()
        assert _exit_code(proc, err, 10) == 0, _stderr(err)
        assert time.monotonic() - second_at < 10
    finally:
        gate.touch()
        kill_all([proc])

    record = app.get_job(job.id).record
    _assert_handed_back(record)
    assert [run.end for run in read_executions(log)] == [None]


@needs_sigkill
def test_process_pool_kill_9_of_worker_kills_its_children(
    app: Conveyor, db_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    gate = tmp_path / "gate"
    err1, err2 = tmp_path / "pool.err", tmp_path / "rescuer.err"
    gate_task = app.tasks["t.gate"]
    jobs = app.enqueue_many(gate_task.prepare(str(gate), timeout=30.0) for _ in range(2))
    procs: list[subprocess.Popen[bytes]] = []
    children: set[int] = set()
    try:
        pooled = spawn_worker(db_url, err1, "--pool", "process", "-c", "2", log=log, lease=LEASE)
        procs.append(pooled)

        def both_running() -> bool:
            runs = read_executions(log)
            return len(runs) == 2 and all(run.end is None for run in runs)

        wait_until(both_running, timeout=30, message="both jobs running in pool processes")
        children = {run.pid for run in read_executions(log)}
        assert len(children) == 2 and pooled.pid not in children
        assert all(pid_alive(pid) for pid in children)

        os.kill(pooled.pid, signal.SIGKILL)
        pooled.wait(timeout=10)
        wait_until(
            lambda: not any(pid_alive(pid) for pid in children),
            timeout=10,
            message=f"pool processes {sorted(children)} to exit after their worker died",
        )

        # Only now open the gate: an orphan still running would log an end line and return.
        rescuer = spawn_worker(db_url, err2, "-c", "2", log=log, lease=LEASE)
        procs.append(rescuer)
        wait_until(
            lambda: len(_open_runs(log, rescuer.pid)) == 2,
            timeout=15,
            message="another worker to take the jobs over",
        )
        gate.touch()
        wait_until(
            lambda: all(app.get_job(job.id).state is JobState.SUCCEEDED for job in jobs),
            timeout=10,
            message="the jobs to succeed",
        )
        rescuer.send_signal(signal.SIGTERM)
        assert _exit_code(rescuer, err2, 15) == 0, _stderr(err2)
    finally:
        gate.touch()
        kill_all(procs)
        for pid in children:  # the pool's own processes, should they have outlived it
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    for job in jobs:
        record = app.get_job(job.id).record
        assert record.result == rescuer.pid
        assert record.attempts == 2
        assert [a.outcome for a in app.inspector.attempts(job.id)] == ["lost"]
    ends = [run for run in read_executions(log) if run.end is not None]
    assert {run.pid for run in ends} == {rescuer.pid}, "an orphaned pool process finished a job"
