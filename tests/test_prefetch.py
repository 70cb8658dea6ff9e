"""Prefetch: a thread-pool worker holds claimed jobs beyond its threads (dispatcher.py). What it
promises, with real worker processes: a prefetched job that never started goes back on SIGTERM,
its attempt not counted and its place in the queue kept; after a kill -9 it is rescued and runs
once, its attempt counted; long jobs are not hoarded while another worker idles."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import (
    assert_usage_error,
    kill_all,
    read_executions,
    spawn_worker,
    wait_until,
    worker_thread,
)

from conveyor import Conveyor, InvalidInput
from conveyor.backends import Backend, open_backend
from conveyor.backends.base import ClaimedJob, Lease
from conveyor.cli import cli
from conveyor.errors import ConfigurationError
from conveyor.job import JobRecord, JobState
from conveyor.outcomes import Outcome, Retry, Succeeded
from conveyor.worker import Worker
from conveyor.worker.pools import ThreadPool


def _running(app: Conveyor) -> int:
    return app.inspector.count_by_state().get("default", {}).get(JobState.RUNNING, 0)


def _record(app: Conveyor, job_id: int) -> JobRecord:
    record = app.inspector.get(job_id)
    assert record is not None
    return record


def _started(log: Path) -> set[int]:
    return {run.job_id for run in read_executions(log)}


def test_prefetched_jobs_that_never_started_go_back_on_sigterm_uncounted(
    app: Conveyor, db_url: str, tmp_path: Path, exec_log: Path
) -> None:
    gate = tmp_path / "gate"
    first = app.tasks["t.gate"].enqueue(str(gate))
    waiting = [app.tasks["t.record"].enqueue(f"w{index}") for index in range(5)]
    places = {job.id: _record(app, job.id).run_at for job in waiting}
    err = tmp_path / "worker.err"
    proc = spawn_worker(db_url, err, "-c", "1", "--prefetch", "5", "--shutdown-timeout", "30",
                        log=exec_log)
    try:
        # One thread, five more jobs held: all six claimed at once, one started.
        wait_until(lambda: _running(app) == 6 and _started(exec_log) == {first.id},
                   timeout=30, message="the gate job to start with five jobs prefetched")
        proc.send_signal(signal.SIGTERM)
        # Handed back while the gate job still runs (the gate is closed): never started.
        wait_until(lambda: all(job.refresh().state is JobState.QUEUED for job in waiting),
                   timeout=15, message="the prefetched jobs to be handed back")
        assert _started(exec_log) == {first.id}
        for job in waiting:
            record = _record(app, job.id)
            assert record.attempts == 0  # never started: no attempt counted
            assert record.run_at == places[job.id]  # its place in the queue kept
            assert record.lease_owner is None
        gate.touch()
        assert proc.wait(timeout=30) == 0, err.read_text()
    finally:
        kill_all([proc])
    assert first.refresh().state is JobState.SUCCEEDED
    assert "handed back 5 prefetched job(s) that never started" in err.read_text()


def test_after_kill_9_prefetched_jobs_are_rescued_and_run_once(
    app: Conveyor, db_url: str, tmp_path: Path, exec_log: Path
) -> None:
    gate = tmp_path / "gate"
    first = app.tasks["t.gate"].enqueue(str(gate))
    waiting = [app.tasks["t.record"].enqueue(f"w{index}") for index in range(3)]
    err = tmp_path / "worker.err"
    doomed = spawn_worker(db_url, err, "-c", "1", "--prefetch", "3", log=exec_log, lease=2.0)
    procs = [doomed]
    try:
        wait_until(lambda: _running(app) == 4 and _started(exec_log) == {first.id},
                   timeout=30, message="the gate job to start with three jobs prefetched")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
        gate.touch()
        procs.append(spawn_worker(db_url, err, "-c", "4", log=exec_log, lease=2.0))
        wait_until(lambda: all(job.refresh().state is JobState.SUCCEEDED
                               for job in [first, *waiting]),
                   timeout=60, message="every job to be rescued and run")
    finally:
        kill_all(procs)
    runs = read_executions(exec_log)
    for job in waiting:  # prefetched, never started before the kill: run exactly once
        assert [run.job_id for run in runs].count(job.id) == 1
        # The claim counted an attempt and nothing in the database says it never started.
        assert _record(app, job.id).attempts == 2
    assert [run.job_id for run in runs].count(first.id) == 2  # killed mid-run, run again


def test_long_jobs_are_not_hoarded_while_another_worker_idles(
    app: Conveyor, db_url: str, tmp_path: Path, exec_log: Path
) -> None:
    err = tmp_path / "worker.err"
    hoarder = spawn_worker(db_url, err, "-c", "16", log=exec_log)
    procs = [hoarder]
    try:
        # Short jobs first, so this worker prefetches (it has learned jobs here are short).
        app.enqueue_many([app.tasks["t.add"].prepare(index, 1) for index in range(300)])
        wait_until(lambda: app.inspector.count_by_state().get("default", {})
                   .get(JobState.SUCCEEDED, 0) == 300, timeout=30, message="short jobs done")
        # Twenty jobs of 3 s of a task it has never run: it keeps what its threads can start.
        app.enqueue_many([app.tasks["t.record"].prepare(f"long{index}", 3.0)
                          for index in range(20)])
        wait_until(lambda: len(_started(exec_log)) == 16, timeout=15,
                   message="the first worker to start 16 jobs")
        assert _running(app) == 16  # the other four went back to the queue at once
        idle = spawn_worker(db_url, err, "-c", "16", log=exec_log)
        procs.append(idle)
        wait_until(lambda: any(w.pid == idle.pid for w in app.inspector.workers()),
                   timeout=30, message="the second worker to register")
        ready = time.time()
        wait_until(lambda: len(_started(exec_log)) == 20, timeout=15,
                   message="the second worker to start the other four")
        runs = read_executions(exec_log)
        late = [run for run in runs if run.pid == idle.pid]
        assert len(late) == 4
        # A hoard would have kept them from it for a whole job (3 s).
        assert max(run.start for run in late) - ready < 1.0
    finally:
        kill_all(procs)


@pytest.mark.parametrize("value", [-1, 10_001, 2.5, "lots", True])
def test_a_bad_prefetch_is_refused(app: Conveyor, value: object) -> None:
    with pytest.raises(ConfigurationError, match="prefetch must be 'auto' or a whole number"):
        app.worker(prefetch=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("pool", ["process", "asyncio"])
def test_prefetch_is_refused_where_the_pool_cannot_hold_jobs(app: Conveyor, pool: str) -> None:
    with pytest.raises(ConfigurationError, match=f"the {pool} pool starts every job it is "
                                                 "given at once"):
        app.worker(pool=pool, prefetch=8)
    assert Worker(app, pool=pool, prefetch=0).prefetch == 0  # none asked: nothing to refuse


def test_the_cli_refuses_a_bad_prefetch(runner: CliRunner, db_url: str) -> None:
    result = runner.invoke(cli, ["worker", "-A", "jobs_app:app", "--url", db_url,
                                 "--prefetch", "many"])
    assert_usage_error(result, "prefetch must be 'auto' or a whole number of jobs from 0 to "
                               "10000 (0: claim no more jobs than slots), got 'many'")


def test_prefetch_values_people_type_are_understood() -> None:
    from conveyor import validation

    assert validation.prefetch("auto") is None
    assert validation.prefetch(None) is None
    assert validation.prefetch("32") == 32
    assert validation.prefetch(0) == 0
    with pytest.raises(InvalidInput):
        validation.prefetch("-3")


def _claimed(job_id: int, task: str, args: list[object]) -> ClaimedJob:
    return ClaimedJob(job_id, task, "default", 0, json.dumps(args), "{}", 1, 3, 7, 0.0, 0.0,
                      False)


def _thread_pool(outcomes: list[Outcome]) -> ThreadPool:
    import jobs_app

    ended = threading.Lock()

    def on_outcome(job: ClaimedJob, outcome: Outcome) -> None:
        with ended:
            outcomes.append(outcome)

    return ThreadPool(1, jobs_app.app.tasks, on_outcome, lambda job, progress: None)


def test_the_pool_gives_back_what_no_thread_started(tmp_path: Path, exec_log: Path) -> None:
    outcomes: list[Outcome] = []
    pool = _thread_pool(outcomes)
    pool.start()
    gate = tmp_path / "gate"
    pool.submit(_claimed(1, "t.gate", [str(gate)]))
    for job_id in (2, 3):
        pool.submit(_claimed(job_id, "t.record", [f"w{job_id}"]))
    wait_until(lambda: _started(exec_log) == {1}, message="job 1 to start")
    assert [job.id for job in pool.take_unstarted()] == [2, 3]
    gate.touch()
    wait_until(lambda: outcomes, message="job 1 to end")
    pool.close(kill=False)
    assert [type(o) for o in outcomes] == [Succeeded] and _started(exec_log) == {1}


def test_a_prefetched_job_whose_lease_was_lost_never_starts(
    tmp_path: Path, exec_log: Path
) -> None:
    outcomes: list[Outcome] = []
    pool = _thread_pool(outcomes)
    pool.start()
    gate = tmp_path / "gate"
    pool.submit(_claimed(1, "t.gate", [str(gate)]))
    pool.submit(_claimed(2, "t.record", ["lost"]))
    pool.submit(_claimed(3, "t.record", ["kept"]))
    wait_until(lambda: _started(exec_log) == {1}, message="job 1 to start")
    pool.stop_job(2)  # its lease lost: another worker may run it, so it must not start here
    gate.touch()
    wait_until(lambda: len(outcomes) == 3, message="three outcomes")
    pool.close(kill=False)
    assert _started(exec_log) == {1, 3}
    lost = next(o for o in outcomes if o.job_id == 2)
    assert isinstance(lost, Retry) and lost.error.type == "LeaseNotRenewed"


class CountingReleases:
    """A real backend that counts the hand-backs (`release` calls) going through it."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner
        self.releases = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def release(self, leases: Sequence[Lease], *, not_before: float = 0.0) -> int:
        self.releases += 1
        released: int = self._inner.release(leases, not_before=not_before)
        return released


def test_jobs_held_back_are_not_claimed_again_until_a_thread_is_free(
    db_url: str, tmp_path: Path, exec_log: Path
) -> None:
    from jobs_app import make_app

    counting = CountingReleases(open_backend(db_url))
    app = make_app(db_url, backend=counting)
    try:
        record = app.tasks["t.record"]
        with worker_thread(app, concurrency=2) as worker:
            app.enqueue_many([record.prepare(f"short{index}") for index in range(40)])
            wait_until(lambda: worker.processed == 40, message="the short jobs")  # learned
            busy = app.enqueue_many([record.prepare(f"busy{index}", 2.0) for index in range(2)])
            wait_until(lambda: {job.id for job in busy} <= _started(exec_log),
                       message="both threads busy")
            opened = tmp_path / "open"
            opened.touch()  # (t.gate, never run here yet, returns at once through it)
            others = [app.tasks["t.gate"].enqueue(str(opened)) for _ in range(3)]
            wait_until(lambda: all(job.refresh().state is JobState.SUCCEEDED
                                   for job in others), timeout=15, message="the others run")
    finally:
        app.close()
    # Claimed beyond the busy threads and not known to be short: handed back once, then left
    # alone until a thread was free (a claim-and-hand-back loop would have run thousands of
    # times in the 2 s), and run after a busy job ended.
    assert counting.releases == 1
    runs = {run.job_id: run for run in read_executions(exec_log)}
    first_free = min(runs[job.id].end or 0.0 for job in busy)
    assert all(runs[job.id].start >= first_free for job in others)


def test_a_prefetched_job_cancelled_before_it_starts_never_runs(
    app: Conveyor, tmp_path: Path, exec_log: Path
) -> None:
    gate = tmp_path / "gate"
    first = app.tasks["t.gate"].enqueue(str(gate))
    waiting = [app.tasks["t.record"].enqueue(f"w{index}") for index in range(3)]
    with worker_thread(app, concurrency=1, prefetch=3) as worker:
        wait_until(lambda: _running(app) == 4 and _started(exec_log) == {first.id},
                   message="the gate job to start with three jobs prefetched")
        app.cancel(waiting[1].id)
        pool = worker._dispatcher.pool  # type: ignore[attr-defined]
        # The cancel watcher tells the pool (the gate still closed, the job still waiting).
        wait_until(lambda: waiting[1].id in pool._cancel_requested,
                   message="the cancel to reach the pool")
        gate.touch()
        wait_until(lambda: all(job.refresh().state is JobState.SUCCEEDED
                               for job in (first, waiting[0], waiting[2])),
                   message="the others to run")
        wait_until(lambda: waiting[1].refresh().state is JobState.CANCELLED,
                   message="the cancelled one to end")
    assert waiting[1].id not in _started(exec_log)


def test_an_outcome_is_written_soon_while_prefetched_jobs_wait(
    app: Conveyor, exec_log: Path
) -> None:
    jobs = [app.tasks["t.record"].enqueue(f"j{index}", 0.2) for index in range(9)]
    with worker_thread(app, concurrency=1, prefetch=8):
        wait_until(lambda: any(run.end is not None for run in read_executions(exec_log)),
                   message="the first job to end")
        # Eight jobs still held, so no claim is due until four more have ended (0.8 s): the
        # outcome is written all the same, well before that or the loop's idle recheck (1 s).
        wait_until(lambda: jobs[0].refresh().state is JobState.SUCCEEDED, timeout=0.4,
                   message="the first outcome to be written")
