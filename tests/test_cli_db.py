"""`conveyor db status|migrate`, and refusing a schema this conveyor does not understand."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from databases import execute, is_postgres, make_version_1_database, query
from helpers import worker_thread
from jobs_app import make_app

from conveyor import Conveyor, JobState, SchemaMismatch
from conveyor.cli import cli

MIGRATION_2 = "0002_tasks_and_job_options.sql"
MIGRATION_3 = "0003_leaders.sql"
MIGRATION_4 = "0004_schedules_and_queues.sql"
MIGRATION_5 = "0005_job_soft_timeout.sql"
MIGRATION_6 = "0006_limits.sql"
MIGRATION_7 = "0007_workflows.sql"
# SQLite only: its row checks as OR chains (PostgreSQL's IN lists cost nothing per row).
SQLITE_MIGRATION_8 = "0008_row_checks_without_in_lists.sql"


def latest_migrations(url: str) -> list[str]:
    """Every migration of the url's dialect after the first, in order."""
    names = [MIGRATION_2, MIGRATION_3, MIGRATION_4, MIGRATION_5, MIGRATION_6, MIGRATION_7]
    return names if is_postgres(url) else [*names, SQLITE_MIGRATION_8]


@pytest.mark.filterwarnings("ignore:no worker has registered task:conveyor.errors.ConveyorWarning")
def test_db_status_and_migrate(db_url: str) -> None:
    runner = CliRunner()
    fresh = runner.invoke(cli, ["db", "status", "--url", db_url, "--json"])
    assert fresh.exit_code == 1, fresh.output
    every = ["0001_initial.sql", *latest_migrations(db_url)]
    assert json.loads(fresh.stdout) == {
        "current": 0, "latest": len(every), "pending": every, "up_to_date": False}
    migrated = runner.invoke(cli, ["db", "migrate", "--url", db_url])
    assert migrated.exit_code == 0, migrated.output
    assert "".join(f"applied {name}\n" for name in every) in migrated.output
    again = runner.invoke(cli, ["db", "migrate", "--url", db_url])
    assert "already up to date" in again.output
    status = runner.invoke(cli, ["db", "status", "--url", db_url])
    assert status.exit_code == 0
    assert f"schema version {len(every)}: up to date" in status.output
    with Conveyor(db_url) as app:  # the migrated schema works
        assert app.enqueue("x").id > 0


@pytest.mark.filterwarnings("ignore:no worker has registered task:conveyor.errors.ConveyorWarning")
def test_a_schema_newer_than_this_conveyor_is_refused(db_url: str) -> None:
    with Conveyor(db_url) as app:
        app.enqueue("x")
    execute(db_url, "INSERT INTO conveyor_migrations VALUES (99, 'future', 0)")
    latest = len(latest_migrations(db_url)) + 1
    with pytest.raises(SchemaMismatch,
                       match=f"newer than the {latest} this conveyor understands"):
        Conveyor(db_url).backend  # noqa: B018
    status = CliRunner().invoke(cli, ["db", "status", "--url", db_url])
    assert status.exit_code == 1
    assert "upgrade conveyor" in status.output
    worker = CliRunner().invoke(cli, ["worker", "--url", db_url, "-A", "jobs_app:app",
                                      "--burst"])
    assert worker.exit_code == 2
    assert "upgrade conveyor" in worker.output


def test_a_version_1_database_upgrades_and_keeps_its_jobs(db_url: str) -> None:
    make_version_1_database(db_url)
    if is_postgres(db_url):
        # Other hosts may still run the old code: PostgreSQL waits for `db migrate`.
        with pytest.raises(SchemaMismatch, match=r"older than the 7.*conveyor db migrate"):
            Conveyor(db_url).backend  # noqa: B018
        status = CliRunner().invoke(cli, ["db", "status", "--url", db_url, "--json"])
        assert json.loads(status.stdout)["pending"] == latest_migrations(db_url)
        migrated = CliRunner().invoke(cli, ["db", "migrate", "--url", db_url])
        assert migrated.exit_code == 0, migrated.output
        assert migrated.stdout == (f"applied {MIGRATION_2}\napplied {MIGRATION_3}\n"
                                   f"applied {MIGRATION_4}\napplied {MIGRATION_5}\n"
                                   f"applied {MIGRATION_6}\napplied {MIGRATION_7}\n"
                                   "schema version 7: up to date\n")
    # SQLite upgrades by itself on first use (one process's embedded schema).
    with make_app(db_url, lease_timeout=5.0) as app:
        [old] = app.inspector.list_jobs()
        assert (old.task, old.state, old.args) == ("t.add", JobState.QUEUED, [1, 2])
        latest = len(latest_migrations(db_url)) + 1
        assert app.inspector.schema_version() == latest
        new = app.tasks["t.add"].options(backoff=0.5, timeout=30).enqueue(3, 4)  # new columns
        # The upgraded table takes the state `waiting` (SQLite: its CHECK edited in place).
        after = app.tasks["t.add"].options(depends_on=[new]).enqueue(5, 6)
        assert after.state is JobState.WAITING
        with worker_thread(app):
            assert app.get_job(old.id).result(timeout=20) == 3
            assert new.result(timeout=20) == 7
            assert after.result(timeout=20) == 11
    assert query(db_url, "SELECT version FROM conveyor_migrations ORDER BY version") == [
        (version,) for version in range(1, latest + 1)]
    assert query(db_url, "SELECT backoff, timeout FROM conveyor_jobs ORDER BY id") == [
        (None, None), (0.5, 30.0), (None, None)]

