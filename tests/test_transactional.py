"""Transactional enqueue: `task.options(connection=conn).enqueue(...)` and
`app.enqueue_many([...], connection=conn)` write through the caller's own open connection and
transaction, so the job exists if and only if the caller commits.

The caller's connection is what an application would hold: a psycopg connection opened from
the same URL (the URL's options choose the schema) on PostgreSQL, a sqlite3 connection to the
same file on SQLite, both in their libraries' default transaction mode.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from databases import connect, execute, fresh_schema, is_postgres, query
from helpers import read_executions, wait_until, worker_thread

from conveyor import ConfigurationError, Conveyor, JobNotFound, JobState
from conveyor.backends import sqlite_path


@pytest.fixture
def ready(app: Conveyor, db_url: str) -> Conveyor:
    """The app with its schema in place and an application table of the caller's own."""
    app.inspector.schema_version()  # opening the backend creates the schema
    execute(db_url, "CREATE TABLE orders (item TEXT NOT NULL)")
    return app


@pytest.fixture
def conn(ready: Conveyor, db_url: str) -> Iterator[Any]:
    """The application's own connection, in its library's default (transactional) mode."""
    connection = connect(db_url)
    yield connection
    connection.rollback()
    connection.close()


def transaction(conn: Any) -> AbstractContextManager[Any]:
    """The library's own "commit on success, roll back on exception" block."""
    if isinstance(conn, sqlite3.Connection):
        return conn
    return conn.transaction()  # type: ignore[no-any-return]


def stored(app: Conveyor) -> int:
    return sum(sum(states.values()) for states in app.inspector.count_by_state().values())


def orders(db_url: str) -> list[str]:
    return [row[0] for row in query(db_url, "SELECT item FROM orders ORDER BY item")]


def test_a_job_enqueued_in_a_committed_transaction_runs(
    ready: Conveyor, conn: Any, db_url: str, exec_log: Path
) -> None:
    record = ready.tasks["t.record"]
    with worker_thread(ready, concurrency=2):  # already idle when the caller commits
        conn.execute("INSERT INTO orders (item) VALUES ('book')")
        job = record.options(connection=conn).enqueue("order-1")
        assert job.id > 0 and job.state is JobState.QUEUED and job.args == ["order-1"]
        # Not committed: neither the app's connections nor anybody else's see it.
        assert ready.inspector.get(job.id) is None
        assert stored(ready) == 0
        with pytest.raises(JobNotFound):
            ready.get_job(job.id)
        with pytest.raises(JobNotFound):
            job.refresh()
        assert query(db_url, "SELECT count(*) FROM conveyor_jobs") == [(0,)]
        assert orders(db_url) == []
        conn.commit()
        # Committed: stored, and the idle worker is woken to run it.
        assert job.result(timeout=10) is not None
    assert orders(db_url) == ["book"]
    assert [run.job_id for run in read_executions(exec_log)] == [job.id]
    assert job.refresh().state is JobState.SUCCEEDED and job.attempts == 1


def test_a_job_enqueued_in_a_rolled_back_transaction_never_exists(
    ready: Conveyor, conn: Any, db_url: str, exec_log: Path
) -> None:
    record = ready.tasks["t.record"]
    conn.execute("INSERT INTO orders (item) VALUES ('book')")
    one = record.options(connection=conn).enqueue("one")
    many = ready.enqueue_many([record.prepare(f"many-{n}") for n in range(3)], connection=conn)
    by_name = ready.options("t.record", connection=conn).enqueue("by-name")
    ids = [one.id, *(job.id for job in many), by_name.id]
    assert len(set(ids)) == 5
    conn.rollback()
    assert stored(ready) == 0
    assert all(ready.inspector.get(job_id) is None for job_id in ids)
    assert orders(db_url) == []
    worker = ready.worker(burst=True, concurrency=2)
    worker.run()
    assert worker.processed == 0
    assert read_executions(exec_log) == []
    # The same connection goes on working: its next transaction commits a job.
    again = record.options(connection=conn).enqueue("again")
    conn.commit()
    assert ready.get_job(again.id).args == ["again"]
    assert stored(ready) == 1


def test_a_handle_on_a_rolled_back_job_never_speaks_for_the_next_job(
    ready: Conveyor, conn: Any
) -> None:
    """SQLite hands the id of a job whose transaction rolled back to the next job (nothing of
    a rolled-back transaction can be remembered): the stale handle must not read, wait for or
    cancel that other job."""
    add = ready.tasks["t.add"]
    conn.execute("INSERT INTO orders (item) VALUES ('vase')")
    stale = add.options(connection=conn).enqueue(1, 1)
    conn.rollback()
    other = ready.tasks["t.echo"].enqueue("someone else's job")
    with pytest.raises(JobNotFound, match=f"job {stale.id} no longer exists"):
        stale.refresh()
    with pytest.raises(JobNotFound, match=r"rolled back|deleted"):
        stale.result(timeout=1)
    with pytest.raises(JobNotFound):
        stale.cancel()
    assert other.refresh().state is JobState.QUEUED  # untouched by the stale handle
    assert stale.args == [1, 1] and stale.task == "t.add"


def test_the_libraries_transaction_blocks_commit_or_roll_back(
    ready: Conveyor, conn: Any
) -> None:
    add = ready.tasks["t.add"]
    with pytest.raises(RuntimeError, match="payment declined"), transaction(conn):
        conn.execute("INSERT INTO orders (item) VALUES ('lamp')")
        lost = add.options(connection=conn).enqueue(1, 1)
        raise RuntimeError("payment declined")
    assert ready.inspector.get(lost.id) is None
    with transaction(conn):
        conn.execute("INSERT INTO orders (item) VALUES ('lamp')")
        kept = add.options(connection=conn).enqueue(2, 2)
    assert ready.get_job(kept.id).state is JobState.QUEUED
    assert stored(ready) == 1


def test_enqueue_many_through_the_callers_connection(ready: Conveyor, conn: Any) -> None:
    add = ready.tasks["t.add"]
    prepared = [add.prepare(n, n) for n in range(120)]
    prepared.append(add.options(delay=600, queue="later").prepare(0, 0))
    jobs = ready.enqueue_many(prepared, connection=conn)
    assert len({job.id for job in jobs}) == 121
    assert [job.args for job in jobs[:3]] == [[0, 0], [1, 1], [2, 2]]
    assert jobs[-1].state is JobState.SCHEDULED
    assert stored(ready) == 0
    conn.commit()
    counts = ready.inspector.count_by_state()
    assert counts == {"default": {JobState.QUEUED: 120}, "later": {JobState.SCHEDULED: 1}}
    assert ready.get_job(jobs[7].id).args == [7, 7]
    worker = ready.worker(burst=True, concurrency=4, queues=["default"])
    worker.run()
    assert [job.result(timeout=1) for job in jobs[:120]] == [2 * n for n in range(120)]


def test_unique_keys_inside_the_callers_transaction(ready: Conveyor, conn: Any) -> None:
    add = ready.tasks["t.add"]
    held = add.options(unique_key="held").enqueue(1, 1)  # committed by the app
    first = add.options(connection=conn, unique_key="k").enqueue(1, 2)
    second = add.options(connection=conn, unique_key="k").enqueue(3, 4)
    assert second.id == first.id and second.args == [1, 2]
    batch = ready.enqueue_many([add.options(unique_key="b").prepare(5, 5),
                                add.options(unique_key="b").prepare(6, 6),
                                add.options(unique_key="held").prepare(7, 7)],
                               connection=conn)
    assert batch[0].id == batch[1].id != first.id
    assert batch[2].id == held.id and batch[2].args == [1, 1]
    conn.commit()
    jobs = {record.unique_key: record for record in ready.inspector.list_jobs()}
    assert sorted(key or "" for key in jobs) == ["b", "held", "k"]
    assert (jobs["k"].args, jobs["b"].args, jobs["held"].args) == ([1, 2], [5, 5], [1, 1])


def test_a_rolled_back_transaction_frees_its_unique_key(ready: Conveyor, conn: Any) -> None:
    add = ready.tasks["t.add"]
    add.options(connection=conn, unique_key="k").enqueue(1, 2)
    conn.rollback()
    mine = ready.enqueue_one(add.options(unique_key="k").prepare(3, 4))
    assert mine[1] is True
    assert ready.get_job(mine[0].id).args == [3, 4]


@pytest.mark.parametrize("caller_ends", ["commit", "rollback"])
def test_an_enqueue_racing_the_open_transaction_for_its_key_waits_for_it(
    ready: Conveyor, conn: Any, db_url: str, caller_ends: str
) -> None:
    """The key's owner is decided by the database: the app's enqueue of the same key waits
    for the caller's transaction, then returns the caller's job, or creates its own."""
    add = ready.tasks["t.add"]
    conn.execute("INSERT INTO orders (item) VALUES ('book')")
    callers = add.options(connection=conn, unique_key="race").enqueue(1, 1)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def enqueue() -> None:
        try:
            job, created = ready.enqueue_one(add.options(unique_key="race").prepare(2, 2))
            results.append((job.id, created))
        except BaseException as exc:
            errors.append(exc)

    racer = threading.Thread(target=enqueue)
    racer.start()
    if is_postgres(db_url):  # make sure it is waiting on the caller's row, not yet to start
        wait_until(lambda: query(
            db_url, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND application_name = current_setting('application_name')") == [(1,)],
            message="the racing enqueue to wait for the caller's transaction")
    assert results == []
    getattr(conn, caller_ends)()
    racer.join(timeout=30)
    assert not racer.is_alive() and errors == []
    [(job_id, created)] = results
    if caller_ends == "commit":
        assert (job_id, created) == (callers.id, False)
        assert ready.get_job(job_id).args == [1, 1]
    else:
        assert created is True
        assert ready.get_job(job_id).args == [2, 2]
    assert stored(ready) == 1


# -- connections that are not this app's database --------------------------------------------


def test_a_connection_of_the_wrong_kind_is_refused(
    ready: Conveyor, db_url: str, backend_name: str, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    add = ready.tasks["t.add"]
    if backend_name == "sqlite":
        import psycopg

        other: Any = psycopg.connect(request.getfixturevalue("postgres_server"))
        expected = "sqlite3.Connection"
    else:
        other = sqlite3.connect(tmp_path / "elsewhere.db")
        expected = "psycopg Connection"
    try:
        for wrong in (other, "dbname=jobs", object()):
            with pytest.raises(ConfigurationError, match=expected):
                add.options(connection=wrong).enqueue(1, 2)
            with pytest.raises(ConfigurationError, match=expected):
                ready.enqueue_many([add.prepare(1, 2)], connection=wrong)
    finally:
        other.close()
    assert stored(ready) == 0


@pytest.mark.backends("sqlite")
def test_a_sqlite_connection_to_another_file_is_refused(
    ready: Conveyor, db_url: str, tmp_path: Path
) -> None:
    add = ready.tasks["t.add"]
    with Conveyor(f"sqlite:///{tmp_path / 'other.db'}") as other_app:
        other_app.inspector.schema_version()  # a conveyor database, just not this app's
    for target in (tmp_path / "other.db", ":memory:"):
        wrong = sqlite3.connect(target)
        try:
            with pytest.raises(ConfigurationError, match="not to this app's database"):
                add.options(connection=wrong).enqueue(1, 2)
            with pytest.raises(ConfigurationError, match="not to this app's database"):
                ready.enqueue_many([add.prepare(1, 2)], connection=wrong)
        finally:
            wrong.close()
    # The same file through another path is the same database.
    alias = tmp_path / "alias.db"
    alias.symlink_to(sqlite_path(db_url))
    same = sqlite3.connect(alias)
    try:
        job = add.options(connection=same).enqueue(1, 2)
        same.commit()
    finally:
        same.close()
    assert ready.get_job(job.id).state is JobState.QUEUED
    assert stored(ready) == 1
    with Conveyor(f"sqlite:///{tmp_path / 'other.db'}") as other_app:
        assert other_app.inspector.count_by_state() == {}


@pytest.mark.backends("postgresql")
def test_a_psycopg_connection_to_another_schema_or_database_is_refused(
    ready: Conveyor, postgres_server: str
) -> None:
    import psycopg

    add = ready.tasks["t.add"]
    # A conveyor schema next door, just not this app's.
    with fresh_schema(postgres_server) as other_url, Conveyor(other_url) as other_app:
        other_app.inspector.schema_version()
        elsewhere = [psycopg.connect(other_url),
                     psycopg.connect(postgres_server.rsplit("/", 1)[0] + "/template1")]
        try:
            for wrong in elsewhere:
                with pytest.raises(ConfigurationError, match="this app's"):
                    add.options(connection=wrong).enqueue(1, 2)
                wrong.rollback()
                with pytest.raises(ConfigurationError, match="this app's"):
                    ready.enqueue_many([add.prepare(1, 2)], connection=wrong)
                wrong.rollback()
        finally:
            for connection in elsewhere:
                connection.close()
        assert other_app.inspector.count_by_state() == {}
    assert stored(ready) == 0


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("unique_key", [None, "k"])
def test_enqueue_as_the_first_statement_while_another_process_enqueues(
    ready: Conveyor, conn: Any, unique_key: str | None
) -> None:
    """Python's sqlite3 (default mode) begins the caller's transaction at its first INSERT.
    Another process committing a job at that moment must not make the enqueue fail."""
    others: list[int] = []

    def another_process_enqueues(statement: str) -> None:
        if statement.strip().upper().startswith("BEGIN") and not others:
            others.append(ready.enqueue("t.add", 9, 9).id)  # the app's own connection

    conn.set_trace_callback(another_process_enqueues)
    try:
        job = ready.tasks["t.add"].options(connection=conn, unique_key=unique_key).enqueue(1, 2)
    finally:
        conn.set_trace_callback(None)
    conn.commit()
    assert others and job.id != others[0]
    assert ready.get_job(job.id).args == [1, 2]
    assert ready.get_job(others[0]).args == [9, 9]


@pytest.mark.backends("postgresql")
def test_an_autocommit_psycopg_connection_needs_an_open_transaction(
    ready: Conveyor, db_url: str
) -> None:
    import psycopg

    add = ready.tasks["t.add"]
    with psycopg.connect(db_url, autocommit=True) as autocommit:
        with pytest.raises(ConfigurationError, match="autocommit mode with no transaction"):
            add.options(connection=autocommit).enqueue(1, 2)
        assert stored(ready) == 0
        with pytest.raises(RuntimeError, match="changed my mind"), autocommit.transaction():
            add.options(connection=autocommit).enqueue(1, 2)
            raise RuntimeError("changed my mind")
        assert stored(ready) == 0
        with autocommit.transaction():
            job = add.options(connection=autocommit).enqueue(3, 4)
            assert ready.inspector.get(job.id) is None
    assert ready.get_job(job.id).args == [3, 4]
