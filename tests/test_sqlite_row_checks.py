"""SQLite's per-row checks stay cheap: no IN list of more than two values in the jobs table's
CHECK or in the WHERE of its partial indexes (migration 0008).

SQLite evaluates those for every row a statement writes and, there, rebuilds an IN list of more
than two values as a temporary table each time: a third of what a claim and an ack of a no-op
job cost (bench/RESULTS.md). The conditions are OR chains instead; these tests hold them so,
and hold that they still refuse what they refused."""

from __future__ import annotations

import re
import sqlite3
import time

import pytest
from databases import make_version_1_database
from jobs_app import make_app

from conveyor import JobState
from conveyor.backends import sqlite_path
from conveyor.backends.sqlite import _statement

IN_LIST = re.compile(r"\bIN\s*\(", re.IGNORECASE)


def jobs_schema(url: str) -> dict[str, str]:
    """Name -> SQL of the jobs table and every index on it."""
    with sqlite3.connect(sqlite_path(url)) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master "
                            "WHERE tbl_name = 'conveyor_jobs' AND sql IS NOT NULL").fetchall()
    return dict(rows)


@pytest.mark.parametrize("start", ["new", "version 1"])
def test_the_jobs_tables_row_checks_hold_no_in_list(sqlite_url: str, start: str) -> None:
    if start == "version 1":
        make_version_1_database(sqlite_url)
    with make_app(sqlite_url) as app:
        app.inspector.schema_version()  # creates or upgrades the schema
    schema = jobs_schema(sqlite_url)
    assert {"conveyor_jobs", "conveyor_jobs_finished", "conveyor_jobs_unique_key"} <= set(schema)
    with_lists = {name: text for name, text in schema.items() if IN_LIST.search(text)}
    assert with_lists == {}


def test_the_rewritten_checks_refuse_what_they_refused(sqlite_url: str) -> None:
    with make_app(sqlite_url) as app:
        job = app.enqueue("t.add", 1, 2)
        keyed = app.tasks["t.add"].options(unique_key="k").enqueue(3, 4)
        with sqlite3.connect(sqlite_path(sqlite_url)) as conn:
            with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
                conn.execute("UPDATE conveyor_jobs SET state = 'bogus' WHERE id = ?", (job.id,))
            # An active job holds its unique key; an ended one does not.
            with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
                conn.execute("INSERT INTO conveyor_jobs (task, queue, state, unique_key, run_at, "
                             "enqueued_at) VALUES ('t.add', 'default', 'queued', 'k', 1, 1)")
            conn.execute("UPDATE conveyor_jobs SET state = 'succeeded', finished_at = 1 "
                         "WHERE id = ?", (keyed.id,))
        again = app.tasks["t.add"].options(unique_key="k").enqueue(5, 6)
        assert again.id != keyed.id
        assert again.state is JobState.QUEUED


@pytest.mark.parametrize("name", ["prune_finished", "prune_finished_count"])
def test_pruning_still_finds_ended_jobs_through_their_index(sqlite_url: str, name: str) -> None:
    # The query lists the states; the index's condition is now an OR chain. SQLite must still
    # see that one implies the other, or each prune reads the whole table.
    with make_app(sqlite_url) as app:
        app.inspector.schema_version()
    statement = _statement(name)
    values = statement.values({"state": "succeeded", "age": 60.0, "limit": 100}, time.time())
    with sqlite3.connect(sqlite_path(sqlite_url)) as conn:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement.text, values)]
    assert any("USING INDEX conveyor_jobs_finished" in step for step in plan), plan
