"""Leases on every backend: the observe-and-wait rescuer, heartbeats that race outcomes, a
rescued job's place in its queue, and a worker stopping jobs whose lease it lost."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from databases import execute
from helpers import (
    claim,
    kill_all,
    pid_alive,
    read_executions,
    spawn_worker,
    wait_until,
    worker_thread,
)
from hypothesis import given
from hypothesis import strategies as st

from conveyor import Conveyor, JobState
from conveyor.backends import Backend
from conveyor.backends.base import Lease, NewJob, RescueReport, WorkerInfo
from conveyor.lease_watch import LeaseWatch, ObservedLease
from conveyor.outcomes import Succeeded

INFO = WorkerInfo("w1", "host", 1, ("default",), 4, "thread")


def new(task: str = "t", **kw: object) -> NewJob:
    return NewJob(task=task, queue="default", args_json="[]", kwargs_json="{}", **kw)  # type: ignore[arg-type]


# -- the watch, as pure rules ----------------------------------------------------------------


def test_a_lease_is_dead_only_after_a_whole_lease_of_unbroken_watching() -> None:
    watch = LeaseWatch(lease=10.0)
    seen = [ObservedLease(1, 7, 100.0)]
    assert watch.observe(seen, 0.0, 0.1) == []
    assert watch.observe(seen, 2.5, 2.6) == []
    assert watch.observe(seen, 5.0, 5.1) == []
    assert watch.observe(seen, 7.5, 7.6) == []
    assert watch.observe(seen, 10.0, 10.1) == []  # 10.0 - 0.1 < a lease
    assert watch.observe(seen, 12.5, 12.6) == seen


def _watch_every(watch: LeaseWatch, seen: list[ObservedLease], start: float,
                 end: float) -> float | None:
    """Observe `seen` every 2.5 s (each look 0.1 s) from `start` to `end`; when declared
    dead, the time that look began."""
    began = start
    while began <= end:
        if watch.observe(seen, began, began + 0.1):
            return began
        began += 2.5
    return None


def test_a_renewal_or_a_new_token_starts_the_watch_over() -> None:
    watch = LeaseWatch(lease=10.0)
    assert _watch_every(watch, [ObservedLease(1, 7, 100.0)], 0.0, 7.5) is None
    assert _watch_every(watch, [ObservedLease(1, 7, 101.0)], 10.0, 17.5) is None  # renewed
    # Taken by another worker (a new token): watched afresh for a whole lease.
    assert _watch_every(watch, [ObservedLease(1, 8, 101.0)], 20.0, 40.0) == 32.5


def test_a_stall_of_the_watcher_is_no_evidence() -> None:
    """A long observation (the watcher itself could not write) or a long gap between two
    starts every window over: heartbeats could not be written meanwhile either."""
    watch = LeaseWatch(lease=10.0)
    seen = [ObservedLease(1, 7, 100.0)]
    assert _watch_every(watch, seen, 0.0, 7.5) is None
    assert watch.observe(seen, 10.0, 21.5) == []  # stuck 11.5 s waiting for the lock
    assert _watch_every(watch, seen, 24.0, 29.0) is None  # 29.0 - 21.5 < a lease
    assert _watch_every(watch, seen, 40.0, 60.0) == 52.5  # an 11 s gap: from 40.1 again


@given(st.lists(st.tuples(st.floats(0.01, 20.0), st.floats(0.0, 20.0)), min_size=1,
                max_size=40), st.floats(1.0, 60.0))
def test_no_lease_is_declared_dead_sooner_than_a_lease_after_it_was_first_seen(
    steps: list[tuple[float, float]], lease: float
) -> None:
    watch = LeaseWatch(lease)
    seen = [ObservedLease(1, 1, 1.0)]
    now, first_end = 0.0, None
    for gap, duration in steps:
        began = now + gap
        now = began + duration
        first_end = now if first_end is None else first_end
        if watch.observe(seen, began, now):
            assert began - first_end >= lease
            break


# -- backends --------------------------------------------------------------------------------


def test_a_heartbeat_racing_the_workers_own_outcome_is_not_a_lost_lease(
    backend: Backend,
) -> None:
    backend.enqueue_many([new(), new()])
    done, running = claim(backend, "w1", ["default"], 2, lease=30)
    now = time.time()
    assert backend.ack_many([Succeeded(done.id, done.token, 1, now, now, "1")], "w1") == [True]
    reply = backend.heartbeat(INFO, [Lease(done.id, done.token), Lease(running.id,
                                                                      running.token)], 30, 2)
    assert reply.lost == frozenset()
    # A lease another worker holds now is lost, even for a job that has since finished.
    assert backend.rescue(backend.observe_leases()).requeued == (running.id,)
    (again,) = claim(backend, "w2", ["default"], 1, lease=30)
    assert backend.ack_many([Succeeded(again.id, again.token, 2, now, now, "2")], "w2") == [True]
    reply = backend.heartbeat(INFO, [Lease(running.id, running.token)], 30, 1)
    assert reply.lost == {running.id}


def test_a_rescued_job_keeps_its_place_in_the_queue(backend: Backend) -> None:
    (first,) = backend.enqueue_many([new("first")])
    (taken,) = claim(backend, "w1", ["default"], 1, lease=30)
    assert taken.id == first.record.id
    backend.enqueue_many([new("later") for _ in range(3)])
    assert backend.rescue(backend.observe_leases()).requeued == (taken.id,)
    (next_up,) = claim(backend, "w2", ["default"], 1, lease=30)
    assert next_up.id == taken.id


def test_rescue_takes_only_what_is_still_as_observed(backend: Backend) -> None:
    backend.enqueue_many([new(), new()])
    kept, finished = claim(backend, "w1", ["default"], 2, lease=30)
    observed = backend.observe_leases()
    backend.heartbeat(INFO, [Lease(kept.id, kept.token)], 30, 1)
    now = time.time()
    backend.ack_many([Succeeded(finished.id, finished.token, 1, now, now, "1")], "w1")
    assert backend.rescue(observed) == RescueReport()
    assert backend.inspector.get(kept.id).state is JobState.RUNNING  # type: ignore[union-attr]


# -- workers ---------------------------------------------------------------------------------


def test_a_lost_lease_cancels_a_running_coroutine(db_url: str, exec_log: Path) -> None:
    from jobs_app import make_app

    app = make_app(db_url, lease_timeout=5.0)
    try:
        job = app.tasks["t.async_sleep"].enqueue(60.0)
        with worker_thread(app, concurrency=1) as worker:
            wait_until(lambda: read_executions(exec_log), message="the coroutine to start")
            # Another party takes the job over behind the worker's back: a fresh lease token.
            assert execute(db_url, "UPDATE conveyor_jobs SET lease_token = -1 WHERE id = ?",
                           (job.id,)) == 1
            wait_until(lambda: worker.processed == 1, timeout=10,
                       message="the coroutine to be cancelled")
        (run,) = read_executions(exec_log)
        assert run.end is None  # cancelled mid-sleep, not finished
        assert job.refresh().state is JobState.RUNNING  # its stale outcome was refused
    finally:
        app.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX process checks")
def test_a_lost_lease_kills_the_process_pool_job_at_once(
    app: Conveyor, db_url: str, tmp_path: Path
) -> None:
    """The process pool can stop a job for real: a lost lease kills its process, instead of
    asking a task that may never look."""
    log, gate = tmp_path / "executions.log", tmp_path / "gate"
    err = tmp_path / "worker.err"
    job = app.tasks["t.gate"].enqueue(str(gate))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(spawn_worker(db_url, err, "--pool", "process", "-c", "1", log=log,
                                  lease=2.0))
        (run,) = wait_until(lambda: read_executions(log), timeout=30, message="the job to start")
        assert execute(db_url, "UPDATE conveyor_jobs SET lease_token = -1 WHERE id = ?",
                       (job.id,)) == 1
        wait_until(lambda: not pid_alive(run.pid), timeout=10,
                   message="the job's process to be killed")
        assert procs[0].poll() is None  # the worker itself goes on
    finally:
        gate.touch()
        kill_all(procs)
    assert read_executions(log)[0].end is None


@pytest.mark.backends("postgresql")
def test_the_server_ends_a_conveyor_session_left_idle_inside_a_transaction(
    backend: Backend,
) -> None:
    """A worker cut off in the middle of a transaction leaves its session open on the server,
    holding row locks that hide the job from every rescuer (they skip locked rows). conveyor's
    sessions ask the server to end such a transaction, so the job can be taken over."""
    import psycopg

    from conveyor.backends.postgres import PostgresBackend

    assert isinstance(backend, PostgresBackend)
    backend.enqueue_many([new()])
    (job,) = claim(backend, "w1", ["default"], 1, lease=30)  # opens the workers' own pool
    for pool in (backend.db._pool, backend.db._worker_pool):
        assert pool is not None
        with pool.connection() as conn:
            row = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()
            assert row is not None and next(iter(row.values())) == "10s"
            # And the server does end one: a shorter timeout, a transaction left idle.
            conn.execute("SET idle_in_transaction_session_timeout = '100ms'")
            conn.execute("BEGIN")
            conn.execute("SELECT 1 FROM conveyor_jobs WHERE id = %s FOR UPDATE", (job.id,))
            time.sleep(0.5)  # idle inside the transaction, as a cut-off worker is
            with pytest.raises(psycopg.Error, match="idle-in-transaction"):
                conn.execute("SELECT 1")
