"""The storage contract for the verbs a worker uses in production, on every backend, and the
conventions of the SQL files that make the store's Python the same for every database."""

from __future__ import annotations

import re
import threading
import time
from importlib import resources

import pytest
from databases import execute, is_postgres, query
from helpers import claim

from conveyor import sql
from conveyor.backends import Backend
from conveyor.backends.base import Lease, NewJob, ProgressUpdate, TaskInfo, WorkerInfo
from conveyor.job import JobError, JobState, Progress
from conveyor.outcomes import Failed, Retry, Succeeded

INFO = WorkerInfo("w-contract", "host", 1, ("default",), 4, "thread")


def new(queue: str = "default", **kw: object) -> NewJob:
    return NewJob(task="t", queue=queue, args_json="[]", kwargs_json="{}", **kw)  # type: ignore[arg-type]


def test_ack_and_claim_writes_progress_and_outcomes_then_claims_in_one_call(
        backend: Backend) -> None:
    backend.enqueue_many([new() for _ in range(4)])
    first, second, third = claim(backend, "w", ["default"], 3, lease=30)
    now = time.time()
    outcomes = [
        Succeeded(first.id, first.token, 1, now, now, "42"),
        Retry(second.id, second.token, 1, now, now, JobError("E", "again"), now + 60),
        Failed(third.id, third.token + 1, 1, now, now, JobError("E", "stale token")),
    ]
    progress = [ProgressUpdate(Lease(third.id, third.token), Progress(3, 10, "on its way"))]
    accepted, claimed = backend.ack_and_claim(outcomes, "w", ["default"], 5, 30, progress)
    assert accepted == [True, True, False]  # the stale token is refused
    (fourth,) = claimed  # the only job left that could run
    assert fourth.id not in (first.id, second.id, third.id) and fourth.attempt == 1
    done, retried, running = (backend.inspector.get(job.id) for job in (first, second, third))
    assert done is not None and done.state is JobState.SUCCEEDED and done.result_json == "42"
    assert retried is not None and retried.state is JobState.SCHEDULED
    assert retried.run_at == pytest.approx(now + 60, abs=5)
    assert [a.outcome for a in backend.inspector.attempts(second.id)] == ["retry"]
    assert running is not None and running.state is JobState.RUNNING
    assert running.progress == Progress(3, 10, "on its way")
    assert backend.inspector.attempts(third.id) == []


def test_ack_and_claim_with_nothing_to_do_touches_nothing(backend: Backend) -> None:
    assert backend.ack_and_claim((), "w", ["default"], 0, 30) == ([], [])
    assert backend.ack_and_claim((), "w", [], 10, 30) == ([], [])


def test_a_retry_with_no_backoff_is_claimable_at_once(backend: Backend) -> None:
    backend.enqueue_many([new()])
    (job,) = claim(backend, "w", ["default"], 1, lease=30)
    now = time.time()
    retry = Retry(job.id, job.token, 1, now, now, JobError("E", "m"), now)
    accepted, (again,) = backend.ack_and_claim([retry], "w", ["default"], 1, 30)
    assert accepted == [True] and again.id == job.id and again.attempt == 2


def test_cancels_requested_names_only_running_jobs_asked_to_stop(backend: Backend) -> None:
    backend.enqueue_many([new() for _ in range(3)])
    one, two = claim(backend, "w", ["default"], 2, lease=30)
    assert backend.cancels_requested([one.id, two.id]) == set()
    assert backend.cancel(two.id) is JobState.RUNNING
    assert backend.cancels_requested([one.id, two.id, 999]) == {two.id}
    assert backend.cancels_requested([]) == set()


def test_register_tasks_keeps_the_last_registration(backend: Backend) -> None:
    backend.register_tasks("w1", [TaskInfo("a", "q1", 0, 3), TaskInfo("b", "q2", 5, 1)])
    backend.register_tasks("w2", [TaskInfo("a", "q9", -1, 7)])
    backend.register_tasks("w3", [])
    found = backend.inspector.registered_tasks(["a", "b", "c"])
    assert found == {"a": TaskInfo("a", "q9", -1, 7), "b": TaskInfo("b", "q2", 5, 1)}


def test_deregister_removes_only_the_named_worker(backend: Backend) -> None:
    other = WorkerInfo("w-other", "host", 2, ("default",), 1, "thread")
    assert backend.register_worker(INFO) is None
    assert backend.register_worker(other) is None
    backend.deregister_worker(INFO.name)
    assert [w.name for w in backend.inspector.workers()] == ["w-other"]
    backend.deregister_worker("nobody")  # nothing to do, no error
    assert [w.name for w in backend.inspector.workers()] == ["w-other"]


def test_renewal_is_not_blocked_when_nothing_holds_a_lock(backend: Backend) -> None:
    backend.heartbeat(INFO, [], 30, 0)
    assert backend.renewal_blocked() is False


def test_subscribers_hear_of_new_work(backend: Backend, db_url: str) -> None:
    heard = threading.Event()
    subscription = backend.subscribe(heard.set)
    try:
        if is_postgres(db_url):
            # The listener announces itself once it listens (work may have come meanwhile):
            # wait for that, so the next call is the enqueue's.
            assert heard.wait(10), "the listener never started"
            heard.clear()
        backend.enqueue_many([new()])
        assert heard.wait(10), "no wake-up after an enqueue"
    finally:
        subscription.cancel()


def test_a_rescue_keeps_the_jobs_exact_place_and_forgets_its_token(backend: Backend,
                                                                  db_url: str) -> None:
    backend.enqueue_many([new()])
    (job,) = claim(backend, "w-gone", ["default"], 1, lease=30)
    placed = backend.inspector.get(job.id)
    assert placed is not None
    (seen,) = backend.observe_leases()
    report = backend.rescue([seen])
    assert report.requeued == (job.id,)
    after = backend.inspector.get(job.id)
    assert after is not None and after.state is JobState.QUEUED
    assert after.run_at == placed.run_at  # its place in the queue, exactly
    (attempt,) = backend.inspector.attempts(job.id)
    assert attempt.outcome == "lost" and attempt.worker == "w-gone"
    # The worker that lost it learns so from its heartbeat (lost, not finished).
    info = WorkerInfo("w-gone", "h", 1, ("default",), 1, "thread")
    reply = backend.heartbeat(info, [Lease(job.id, job.token)], 30, 1)
    assert reply.lost == {job.id}
    token = query(db_url, "SELECT lease_token FROM conveyor_jobs WHERE id = ?", [job.id])
    assert token == [(None,)]


# -- the SQL files' conventions ----------------------------------------------------------

DIALECTS = ("sqlite", "postgresql")
# Files one dialect needs for its own plumbing, not verbs of the store.
PLUMBING = {
    "sqlite": {"claim_candidates_one_queue", "claim_candidates_many_queues",
               "claim_candidates_lifo_queue", "claim_candidates_weighted_fifo",
               "claim_candidates_weighted_lifo"},
    # SQLite's LIFO claim is claim.sql with LIFO candidate terms (backends/sqlite.py).
    "postgresql": {"notify", "waits_for_table_lock", "claim_lifo"},
}


def statements(dialect: str) -> dict[str, str]:
    folder = resources.files(sql) / dialect
    return {entry.name[:-4]: entry.read_text(encoding="utf-8")
            for entry in folder.iterdir() if entry.name.endswith(".sql")}


def test_every_verb_has_a_statement_in_each_dialect() -> None:
    verbs = [set(statements(d)) - PLUMBING[d] for d in DIALECTS]
    assert verbs[0] == verbs[1]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_statements_use_named_placeholders_and_the_database_clock(dialect: str) -> None:
    for name, text in statements(dialect).items():
        code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
        assert "%(" not in code and "?" not in code, f"{dialect}/{name}.sql: use :name"
        assert "conveyor_now()" not in code and "time()" not in code, \
            f"{dialect}/{name}.sql: read the clock as :now"


def test_postgresql_gets_the_statements_translated() -> None:
    text = sql.to_pyformat("SELECT :a::int, ':b', x -- :c\nWHERE t < :now AND y LIKE '%z'")
    assert text == ("SELECT %(a)s::int, ':b', x -- :c\n"
                    f"WHERE t < {sql.NOW} AND y LIKE '%%z'")
    assert sql.uses_now("SELECT :now") and not sql.uses_now("SELECT ':now' -- :now")
    assert re.search(r"%\(\w+\)s", sql.load("postgresql", "claim"))


def test_a_statement_the_database_refuses_is_not_taken_for_an_outage(
        backend: Backend, db_url: str) -> None:
    """A schema out of step with the code is a programming error, said as such: never
    swallowed as "no rows", nor retried for ever as an unavailable database."""
    from conveyor.errors import DatabaseUnavailable

    backend.enqueue_many([new()])
    (job,) = claim(backend, "w", ["default"], 1, lease=30)
    execute(db_url, "ALTER TABLE conveyor_attempts RENAME COLUMN traceback TO trace")
    now = time.time()
    failed = Failed(job.id, job.token, 1, now, now, JobError("E", "m"))
    with pytest.raises(Exception, match="traceback") as raised:
        backend.ack_and_claim([failed], "w", ["default"], 1, 30)
    assert not isinstance(raised.value, DatabaseUnavailable)
    record = backend.inspector.get(job.id)
    assert record is not None and record.state is JobState.RUNNING  # nothing half-written


def test_a_lost_lease_stops_only_an_attempt_that_runs_under_it(backend: Backend) -> None:
    from helpers import burst_dispatcher

    deaths: list[BaseException] = []
    dispatcher = burst_dispatcher(backend, 1, deaths)
    # Nothing runs here under token 7 of job 42 (it ended, or its next attempt has not
    # started yet): the worker stops vouching for it, and stops nothing.
    assert dispatcher.lose(42, 7) is False


def test_successes_of_every_round_size_are_written_for_exactly_their_jobs(
        backend: Backend) -> None:
    # SQLite sends a round's successes as VALUES rows padded with rows of NULLs (so that few
    # statement texts serve every size): no padding row may match a job, and each result must
    # land on its own job, whether a round's results differ or are all alike.
    sizes = (1, 2, 15, 16, 17)
    backend.enqueue_many([new() for _ in range(sum(sizes))])
    jobs = claim(backend, "w", ["default"], sum(sizes), lease=30)
    rounds = [jobs[sum(sizes[:k]):sum(sizes[:k + 1])] for k in range(len(sizes))]
    stale = rounds[-1][-1]  # its outcome names an old token: refused
    now = time.time()
    expected: dict[int, str] = {}
    for round_jobs in rounds:
        alike = len(round_jobs) % 2 == 1
        results = {job.id: "null" if alike else f'"job {job.id}"' for job in round_jobs}
        outcomes = [Succeeded(job.id, job.token + (job is stale), 1, now, now, results[job.id])
                    for job in round_jobs]
        accepted, _ = backend.ack_and_claim(outcomes, "w", ["default"], 0, 30)
        assert accepted == [job is not stale for job in round_jobs]
        expected.update(results)
    for job in jobs:
        record = backend.inspector.get(job.id)
        assert record is not None
        if job is stale:
            assert record.state is JobState.RUNNING
        else:
            assert (record.state, record.result_json) == (JobState.SUCCEEDED, expected[job.id])


def test_a_round_that_names_one_job_twice_stores_one_of_its_results(backend: Backend) -> None:
    # Both rows name the same job and token: a padding row (SQLite) must not have carried
    # them too, with no result.
    backend.enqueue_many([new()])
    (job,) = claim(backend, "w", ["default"], 1, lease=30)
    now = time.time()
    twice = [Succeeded(job.id, job.token, 1, now, now, result) for result in ('"A"', '"B"')]
    backend.ack_and_claim(twice, "w", ["default"], 0, 30)
    record = backend.inspector.get(job.id)
    assert record is not None and record.state is JobState.SUCCEEDED
    assert record.result_json in ('"A"', '"B"')
