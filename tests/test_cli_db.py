"""`conveyor db status|migrate`, and refusing a schema this conveyor does not understand."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from databases import execute

from conveyor import Conveyor, SchemaMismatch
from conveyor.cli import cli


def test_db_status_and_migrate(db_url: str) -> None:
    runner = CliRunner()
    fresh = runner.invoke(cli, ["db", "status", "--url", db_url, "--json"])
    assert fresh.exit_code == 1, fresh.output
    assert json.loads(fresh.output) == {"current": 0, "latest": 1,
                                        "pending": ["0001_initial.sql"], "up_to_date": False}
    migrated = runner.invoke(cli, ["db", "migrate", "--url", db_url])
    assert migrated.exit_code == 0, migrated.output
    assert "applied 0001_initial.sql" in migrated.output
    again = runner.invoke(cli, ["db", "migrate", "--url", db_url])
    assert "already up to date" in again.output
    status = runner.invoke(cli, ["db", "status", "--url", db_url])
    assert status.exit_code == 0
    assert "schema version 1: up to date" in status.output
    with Conveyor(db_url) as app:  # the migrated schema works
        assert app.enqueue("x").id > 0


def test_a_schema_newer_than_this_conveyor_is_refused(db_url: str) -> None:
    with Conveyor(db_url) as app:
        app.enqueue("x")
    execute(db_url, "INSERT INTO conveyor_migrations VALUES (99, 'future', 0)")
    with pytest.raises(SchemaMismatch, match="newer than the 1 this conveyor understands"):
        Conveyor(db_url).backend  # noqa: B018
    status = CliRunner().invoke(cli, ["db", "status", "--url", db_url])
    assert status.exit_code == 1
    assert "upgrade conveyor" in status.output
    worker = CliRunner().invoke(cli, ["worker", "--url", db_url, "-A", "jobs_app:app",
                                      "--burst"])
    assert worker.exit_code == 2
    assert "upgrade conveyor" in worker.output
