"""The storage contract, at the backend layer: leases, fencing, rescue, handback.

`backend` (from conftest) is each backend in turn, opened from `db_url` as an app opens it.
The tests that take only `tmp_path` are about SQLite's own machinery."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from databases import execute
from helpers import claim, wait_until

from conveyor import Conveyor
from conveyor.backends import Backend, open_backend
from conveyor.backends.base import (
    EnqueueResult,
    Lease,
    NewJob,
    ProgressUpdate,
    RescueReport,
    WorkerInfo,
)
from conveyor.backends.sqlite import SQLiteBackend, _split_statements, filesystem_type
from conveyor.errors import ConveyorWarning
from conveyor.job import JobError, JobState, Progress
from conveyor.outcomes import Cancelled, Failed, Retry, Snoozed, Succeeded


def new(task: str = "t", queue: str = "default", **kw: object) -> NewJob:
    return NewJob(task=task, queue=queue, args_json="[]", kwargs_json="{}", **kw)  # type: ignore[arg-type]


def state(backend: Backend, job_id: int) -> JobState:
    record = backend.inspector.get(job_id)
    assert record is not None
    return record.state


def test_claim_sets_owner_lease_and_a_fresh_token(backend: Backend) -> None:
    backend.enqueue_many([new()])
    before = time.time()
    (job,) = claim(backend, "w1", ["default"], 10, lease=30)
    record = backend.inspector.get(job.id)
    assert record is not None
    assert record.state is JobState.RUNNING
    assert record.lease_owner == "w1"
    assert record.lease_expires_at is not None and record.lease_expires_at >= before + 30
    assert record.attempts == job.attempt == 1
    assert job.token > 0
    assert claim(backend, "w2", ["default"], 10, lease=30) == []


def test_claim_takes_only_as_many_as_asked(backend: Backend) -> None:
    backend.enqueue_many([new() for _ in range(10)])
    assert len(claim(backend, "w", ["default"], 3, lease=30)) == 3
    assert len(claim(backend, "w", ["default"], 0, lease=30)) == 0
    assert len(claim(backend, "w", ["default"], 100, lease=30)) == 7


def test_claim_merges_queues_by_priority(backend: Backend) -> None:
    backend.enqueue_many([new(queue="a", priority=5), new(queue="b", priority=1),
                          new(queue="a", priority=0), new(queue="c", priority=-9)])
    claimed = claim(backend, "w", ["a", "b"], 2, lease=30)
    assert [(j.queue, j.priority) for j in claimed] == [("a", 0), ("b", 1)]


def test_a_worker_on_600_queues_claims_in_priority_order(app: Conveyor) -> None:
    """SQLite allows 500 terms in a compound SELECT: a claim must not need one per queue."""
    queues = [f"q{n:03}" for n in range(600)]
    last = app.options("t.add", queue=queues[-1]).enqueue(1, 2)
    urgent = app.options("t.add", queue=queues[300], priority=-5).enqueue(3, 4)
    app.options("t.add", queue="elsewhere").enqueue(5, 6)
    claimed = claim(app.backend, "w", queues, 10, lease=30)
    assert [job.id for job in claimed] == [urgent.id, last.id]
    app.options("t.add", queue=queues[-1]).enqueue(7, 8)
    worker = app.worker(queues=queues, burst=True, concurrency=2)
    worker.run()
    assert worker.processed == 1


def test_fencing_rejects_a_stale_token(backend: Backend) -> None:
    backend.enqueue_many([new(max_attempts=5)])
    (first,) = claim(backend, "w1", ["default"], 1, lease=0.05)
    report = backend.rescue(backend.observe_leases()).requeued
    assert report == (first.id,)
    (second,) = claim(backend, "w2", ["default"], 1, lease=30)
    assert second.id == first.id and second.token != first.token
    assert second.attempt == 2
    now = time.time()
    stale = Succeeded(first.id, first.token, first.attempt, now, now, '"stale"')
    assert backend.ack_many([stale], "w1") == [False]
    heartbeat = backend.heartbeat(WorkerInfo("w1", "h", 1, ("default",), 1, "thread"),
                                  [Lease(first.id, first.token)], 30, 1)
    assert heartbeat.lost == {first.id}
    assert backend.release([Lease(first.id, first.token)]) == 0
    fresh = Succeeded(second.id, second.token, second.attempt, now, now, '"fresh"')
    assert backend.ack_many([fresh], "w2") == [True]
    record = backend.inspector.get(first.id)
    assert record is not None and record.result == "fresh"
    assert [a.outcome for a in backend.inspector.attempts(first.id)] == ["lost"]


def test_rescue_fails_a_job_out_of_attempts(backend: Backend) -> None:
    (created,) = backend.enqueue_many([new(max_attempts=1)])
    claim(backend, "w1", ["default"], 1, lease=0.05)
    report = backend.rescue(backend.observe_leases()).failed
    assert report == (created.record.id,)
    record = backend.inspector.get(created.record.id)
    assert record is not None and record.state is JobState.FAILED
    assert record.error is not None and record.error.type == "LeaseExpired"


def test_rescue_leaves_live_leases_alone(backend: Backend) -> None:
    backend.enqueue_many([new()])
    (job,) = claim(backend, "w1", ["default"], 1, lease=30)
    observed = backend.observe_leases()
    assert [(seen.job_id, seen.token) for seen in observed] == [(job.id, job.token)]
    info = WorkerInfo("w1", "h", 1, ("default",), 1, "thread")
    backend.heartbeat(info, [Lease(job.id, job.token)], 30, 1)  # renewed since observed
    assert backend.rescue(observed) == RescueReport()
    assert state(backend, job.id) is JobState.RUNNING


def test_release_hands_back_without_counting_the_attempt(backend: Backend) -> None:
    backend.enqueue_many([new()])
    (job,) = claim(backend, "w1", ["default"], 1, lease=30)
    assert backend.release([Lease(job.id, job.token)]) == 1
    record = backend.inspector.get(job.id)
    assert record is not None
    assert (record.state, record.attempts, record.lease_owner) == (JobState.QUEUED, 0, None)


def test_retry_after_cancel_request_ends_cancelled(backend: Backend) -> None:
    backend.enqueue_many([new()])
    (job,) = claim(backend, "w1", ["default"], 1, lease=30)
    assert backend.cancel(job.id) is JobState.RUNNING
    now = time.time()
    retry = Retry(job.id, job.token, 1, now, now, JobError("E", "m"), now + 10)
    assert backend.ack_many([retry], "w1") == [True]
    assert state(backend, job.id) is JobState.CANCELLED


def test_ack_batch_mixes_outcomes(backend: Backend) -> None:
    backend.enqueue_many([new() for _ in range(3)])
    a, b, c = claim(backend, "w", ["default"], 3, lease=30)
    now = time.time()
    accepted = backend.ack_many([
        Succeeded(a.id, a.token, 1, now, now, "1"),
        Failed(b.id, b.token, 1, now, now, JobError("E", "bad")),
        Retry(c.id, c.token, 1, now, now, JobError("E", "again"), now + 60),
    ], "w")
    assert accepted == [True, True, True]
    assert [state(backend, j.id) for j in (a, b, c)] == [
        JobState.SUCCEEDED, JobState.FAILED, JobState.SCHEDULED]


def test_a_round_of_every_kind_of_ending_is_written_whole(backend: Backend) -> None:
    """Each kind is one statement for the round (and the attempts one more): every outcome
    lands on its own job, a stale one is refused, and only what was written is recorded."""
    backend.enqueue_many([new() for _ in range(12)])
    jobs = claim(backend, "w", ["default"], 12, lease=30)
    now = time.time()
    message = "crème brûlée \U0001f600 \"quoted\" \\ back\nslash"
    outcomes = []
    for index, job in enumerate(jobs):
        error = JobError("E", f"{message} {index}", f"trace {index}")
        token = job.token if index % 4 else job.token + 1  # every 4th: a lease lost
        outcomes.append([
            Retry(job.id, token, 1, now - 1, now, error, now + 60 + index),
            Failed(job.id, token, 1, now - 1, now, error),
            Cancelled(job.id, token, 1, now - 1, now, error if index % 2 else None),
            Snoozed(job.id, token, 1, now - 1, now, JobError("Snooze", f"wait {index}"), 30.0),
        ][index % 4 if index < 8 else (index + 1) % 4])
    accepted = backend.ack_many(outcomes, "w")
    assert accepted == [outcome.token == job.token
                        for outcome, job in zip(outcomes, jobs, strict=True)]
    expected = {Retry: JobState.SCHEDULED, Failed: JobState.FAILED,
                Cancelled: JobState.CANCELLED, Snoozed: JobState.SCHEDULED}
    for outcome, job, ok in zip(outcomes, jobs, accepted, strict=True):
        record = backend.inspector.get(job.id)
        assert record is not None
        attempts = backend.inspector.attempts(job.id)
        if not ok:
            assert record.state is JobState.RUNNING and attempts == []
            continue
        assert record.state is expected[type(outcome)]
        assert [a.outcome for a in attempts] == [outcome.kind]
        ended_by: JobError | None = getattr(outcome, "error", None)
        if isinstance(outcome, Snoozed):
            assert record.attempts == 0  # not counted
            assert attempts[0].error is not None and attempts[0].error.message.startswith("wait")
        elif ended_by is not None:
            assert record.error == ended_by and attempts[0].error == ended_by
        if isinstance(outcome, Retry):
            # Placed by the database's clock, its delay kept.
            assert record.run_at - now == pytest.approx(outcome.run_at - now, abs=5)


def test_scheduled_jobs_are_promoted_when_due(backend: Backend) -> None:
    backend.enqueue_many([new(run_at=time.time() + 0.1)])
    assert claim(backend, "w", ["default"], 1, lease=30) == []
    assert backend.next_due() is not None
    (job,) = wait_until(lambda: claim(backend, "w", ["default"], 1, lease=30), timeout=5)
    assert job.attempt == 1


def test_prune_removes_only_old_finished_jobs(backend: Backend, db_url: str) -> None:
    backend.enqueue_many([new(), new(), new()])
    old, recent, running = claim(backend, "w", ["default"], 3, lease=30)
    now = time.time()
    backend.ack_many([Succeeded(old.id, old.token, 1, now, now, "1"),
                      Succeeded(recent.id, recent.token, 1, now, now, "1")], "w")
    # PostgreSQL stamps finished_at by its own clock: age the row rather than the outcome.
    execute(db_url, "UPDATE conveyor_jobs SET finished_at = finished_at - 100 WHERE id = ?",
            (old.id,))
    assert backend.prune({JobState.SUCCEEDED: 50}) == 1
    assert backend.inspector.get(old.id) is None
    assert state(backend, recent.id) is JobState.SUCCEEDED
    assert state(backend, running.id) is JobState.RUNNING


def test_migration_statements_split_cleanly() -> None:
    script = "-- a comment; with a semicolon\nCREATE TABLE a (\n  x -- why; because\n);\n" \
        "CREATE TABLE b (y);\n-- end\n"
    assert _split_statements(script) == [
        "-- a comment; with a semicolon\nCREATE TABLE a (\n  x -- why; because\n);",
        "CREATE TABLE b (y);"]


def test_filesystem_type_of_a_local_folder(tmp_path: Path) -> None:
    kind = filesystem_type(tmp_path)
    assert kind is None or kind not in {"nfs", "cifs"}


def test_a_network_filesystem_gets_a_loud_warning(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.backends import sqlite as sqlite_module

    monkeypatch.setattr(sqlite_module, "filesystem_type", lambda path: "nfs4")
    with pytest.warns(ConveyorWarning, match="network filesystem"):
        SQLiteBackend(tmp_path / "n.db").close()


def test_ids_are_never_reused_after_deleting_the_newest_jobs(backend: Backend) -> None:
    created = backend.enqueue_many([new(), new(), new()])
    ids = [result.record.id for result in created]
    assert ids == [ids[0], ids[0] + 1, ids[0] + 2]
    assert backend.delete([ids[2]]) == [ids[2]]
    assert backend.purge("default", JobState.QUEUED) == 2  # the table is now empty
    (again,) = backend.enqueue_many([new(unique_key="u")])
    (plain,) = backend.enqueue_many([new()])
    assert ids[2] < again.record.id < plain.record.id
    if isinstance(backend, SQLiteBackend):  # the id floor: no gap either
        assert again.record.id == ids[2] + 1
        assert plain.record.id == ids[2] + 2


def test_batch_enqueue_over_many_statements_keeps_order_and_ids(backend: Backend) -> None:
    created = backend.enqueue_many([new(priority=n % 3) for n in range(1234)])
    ids = [result.record.id for result in created]
    assert ids == list(range(ids[0], ids[0] + 1234))
    stored = backend.inspector.get(ids[700])
    assert stored is not None and stored.priority == 700 % 3


def test_a_file_that_is_not_a_database_is_refused_clearly(tmp_path: Path) -> None:
    from conveyor.errors import ConfigurationError

    junk = tmp_path / "notes.txt"
    junk.write_bytes(b"this is not a SQLite database, just some notes\n" * 100)
    with pytest.raises(ConfigurationError, match=r"cannot use .* as a conveyor database"):
        SQLiteBackend(junk)


def test_the_job_remembers_which_worker_ran_it(backend: Backend) -> None:
    backend.enqueue_many([new()])
    (job,) = claim(backend, "w-7", ["default"], 1, lease=30)
    now = time.time()
    backend.ack_many([Succeeded(job.id, job.token, 1, now, now, "1")], "w-7")
    record = backend.inspector.get(job.id)
    assert record is not None
    assert (record.worker, record.lease_owner) == ("w-7", None)


def test_every_write_of_a_stale_lease_is_refused(backend: Backend) -> None:
    """Fencing for every outcome kind and for progress, not only success."""
    backend.enqueue_many([new(max_attempts=9) for _ in range(4)])
    first = claim(backend, "w1", ["default"], 4, lease=0.05)
    assert len(backend.rescue(backend.observe_leases()).requeued) == 4
    second = {job.id: job for job in claim(backend, "w2", ["default"], 4, lease=30)}
    assert set(second) == {job.id for job in first}
    now = time.time()
    a, b, c, d = first
    error = JobError("E", "stale")
    stale = [
        Failed(a.id, a.token, 1, now, now, error),
        Retry(b.id, b.token, 1, now, now, error, now + 60),
        Cancelled(c.id, c.token, 1, now, now, error),
        Succeeded(d.id, d.token, 1, now, now, '"stale"'),
    ]
    assert backend.ack_many(stale, "w1") == [False] * 4
    backend.save_progress([ProgressUpdate(Lease(a.id, a.token), Progress(1, 2, "stale"))])
    for job_id, job in second.items():
        record = backend.inspector.get(job_id)
        assert record is not None
        assert (record.state, record.lease_owner, record.attempts) == (
            JobState.RUNNING, "w2", 2)
        assert record.progress is None and record.result is None
        assert [x.outcome for x in backend.inspector.attempts(job_id)] == ["lost"]
        assert job.token not in {old.token for old in first}
    fresh = second[a.id]
    backend.save_progress([ProgressUpdate(Lease(fresh.id, fresh.token), Progress(2, 2, "ok"))])
    record = backend.inspector.get(a.id)
    assert record is not None and record.progress == Progress(2, 2, "ok")


def test_heartbeat_extends_leases_and_reports_cancel_requests(backend: Backend) -> None:
    info = WorkerInfo("w-hb", "host", 123, ("default",), 2, "thread")
    backend.register_worker(info)
    backend.enqueue_many([new(), new()])
    one, two = claim(backend, "w-hb", ["default"], 2, lease=0.5)
    assert backend.cancel(two.id) is JobState.RUNNING
    observed = backend.observe_leases()
    before = time.time()
    reply = backend.heartbeat(info, [Lease(one.id, one.token), Lease(two.id, two.token)],
                              30, busy=2)
    assert reply.lost == frozenset() and reply.cancel_requested == {two.id}
    assert not reply.stop_requested
    for job in (one, two):
        record = backend.inspector.get(job.id)
        assert record is not None and record.lease_expires_at is not None
        assert record.lease_expires_at >= before + 30
    assert backend.rescue(observed) == RescueReport()  # the leases were renewed
    (row,) = backend.inspector.workers()
    assert (row.name, row.busy, row.queues) == ("w-hb", 2, ("default",))
    assert backend.request_worker_stop("w-hb") == 1
    assert backend.heartbeat(info, [], 30, busy=0).stop_requested


def test_a_worker_forgotten_as_dead_comes_back_with_its_next_heartbeat(
    backend: Backend, db_url: str
) -> None:
    info = WorkerInfo("w-ghost", "host", 123, ("default",), 1, "thread")
    backend.register_worker(info)
    execute(db_url, "UPDATE conveyor_workers SET heartbeat_at = heartbeat_at - 3600")
    assert backend.forget_dead_workers(older_than=60) == 1
    assert backend.inspector.workers() == []
    backend.heartbeat(info, [], 30, busy=0)
    assert [row.name for row in backend.inspector.workers()] == ["w-ghost"]


def test_concurrent_claimers_never_get_the_same_job(backend: Backend, db_url: str) -> None:
    """Two backends (as two processes would have) and four threads claim at once."""
    backend.enqueue_many([new() for _ in range(400)])
    other = open_backend(db_url)
    claimed: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def claimer(store: Backend, name: str) -> None:
        start.wait()
        while True:
            jobs = claim(store, name, ["default"], 7, lease=30)
            if not jobs:
                return
            with lock:
                claimed.extend(job.id for job in jobs)

    try:
        threads = [threading.Thread(target=claimer, args=(store, f"w{n}"))
                   for n, store in enumerate([backend, other, backend, other])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        other.close()
    assert len(claimed) == 400
    assert len(set(claimed)) == 400


class Recording:
    """A real backend that counts the enqueues and closes it was asked for."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner
        self.enqueues = 0
        self.closed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def enqueue_many(self, jobs: Sequence[NewJob], *, connection: object = None
                     ) -> Sequence[EnqueueResult]:
        self.enqueues += 1
        return self._inner.enqueue_many(jobs, connection=connection)

    def close(self) -> None:
        self.closed += 1
        self._inner.close()


def test_an_injected_backend_serves_the_app_which_closes_it(db_url: str) -> None:
    recording = Recording(open_backend(db_url))
    injected: Backend = recording
    with Conveyor(db_url, backend=injected) as app:

        @app.task(name="t.echo")
        def echo(value: int) -> int:
            return value

        assert app.backend is injected
        job = echo.enqueue(1)
        assert recording.enqueues == 1
        assert app.get_job(job.id).args == [1]
        status = app.schema_status()  # through the injected backend, not one of its own
        assert status.is_current and status.pending == ()
        assert app.migrate().is_current
        assert app.backend is injected
        assert app.health() == ["no live worker serves queue 'default', which has jobs ready "
                                "to run; start one with: conveyor worker -q default"]
    assert recording.closed == 1
    with Conveyor(db_url) as reopened:  # the same database, opened from the URL
        assert reopened.get_job(job.id).task == "t.echo"
        assert reopened.backend is not injected
