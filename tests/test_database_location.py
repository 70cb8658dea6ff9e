"""Every process says where its database is: a worker logs it at start, `conveyor status` shows
it, and a process that creates a new, empty database says so loudly (a relative SQLite path
resolves against the current directory, so a worker started elsewhere would otherwise idle
on an empty database of its own)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import pytest
from click.testing import CliRunner
from databases import is_postgres
from helpers import worker_env

from conveyor import Conveyor
from conveyor.cli import cli

NEW_DATABASE = "created a new, empty database"
NEW_TABLES = "created conveyor's tables, empty, in"


def with_password(url: str, password: str) -> str:
    """`url` with a password in its credentials (the test server trusts everyone, so it is
    accepted and ignored): it must never show."""
    parts = urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def postgres_location(url: str) -> str:
    parts = urlsplit(url)
    schema = dict(parse_qsl(parts.query))["options"].split("=", 1)[1]
    return (f"postgresql://{parts.username}@{parts.hostname}:{parts.port}{parts.path}, "
            f"schema {schema}")


def run_worker(url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`conveyor worker --burst` on the test app, in `cwd`: it exits once idle."""
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "worker", "-A", "jobs_app:app", "--url", url,
         "--burst"],
        env=worker_env(url), cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.backends("sqlite")  # about relative paths
def test_a_worker_started_elsewhere_logs_the_absolute_path_and_the_new_database(
        tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cwd = Path(subprocess.run(["pwd", "-P"], cwd=elsewhere, capture_output=True, text=True,
                              check=True).stdout.strip())  # as the process sees it
    first = run_worker("sqlite:///jobs.db", elsewhere)
    assert first.returncode == 0, first.stderr
    database = cwd / "jobs.db"
    assert database.exists()
    assert (f"WARNING conveyor.sqlite: {NEW_DATABASE} {database} (relative to the current "
            f"directory {cwd}): if your jobs are elsewhere, give this process the same URL "
            "(--url or CONVEYOR_URL) as the processes that enqueue and run them") in first.stderr
    assert f"database {database}" in first.stderr.split(NEW_DATABASE, 1)[1]
    # The same database again: where it is, but nothing new was created.
    again = run_worker("sqlite:///jobs.db", elsewhere)
    assert again.returncode == 0, again.stderr
    assert f": database {database}\n" in again.stderr
    assert NEW_DATABASE not in again.stderr


def test_a_worker_logs_where_its_database_is_without_the_password(
        db_url: str, tmp_path: Path) -> None:
    url = with_password(db_url, "s3cret") if is_postgres(db_url) else db_url
    first = run_worker(url, tmp_path)
    assert first.returncode == 0, first.stderr
    if is_postgres(db_url):
        where = postgres_location(db_url)
        assert f"WARNING conveyor.postgres: {NEW_TABLES} {where}: if your jobs" in first.stderr
    else:
        where = url.removeprefix("sqlite:///")
        assert f"{NEW_DATABASE} {where}:" in first.stderr  # absolute: no directory to name
        assert "relative to the current directory" not in first.stderr
    assert f": database {where}\n" in first.stderr
    assert "s3cret" not in first.stderr
    again = run_worker(url, tmp_path)
    assert again.returncode == 0, again.stderr
    assert f": database {where}\n" in again.stderr
    assert NEW_DATABASE not in again.stderr and NEW_TABLES not in again.stderr


def test_any_process_that_creates_the_database_says_so_once(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="conveyor")
    with Conveyor(db_url) as app:
        app.inspector.schema_version()
        where = app.location.text
    created = [r for r in caplog.records if NEW_DATABASE in r.message or NEW_TABLES in r.message]
    assert [r.levelno for r in created] == [logging.WARNING]
    assert where in created[0].message
    caplog.clear()
    with Conveyor(db_url) as app:
        app.inspector.schema_version()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.backends("sqlite")  # about relative paths
def test_a_relative_sqlite_url_resolves_against_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cwd = Path(os.getcwd())
    with Conveyor("sqlite:///jobs.db") as app:
        assert app.location.text == str(cwd / "jobs.db")
        assert dict(app.location.details) == {"path": str(cwd / "jobs.db")}
        app.inspector.schema_version()
        # The backend pinned the file when it opened it: changing directory later does not
        # move this process's database.
        monkeypatch.chdir(tmp_path.parent)
        assert app.location.text == str(cwd / "jobs.db")
        assert app.inspector.list_jobs() == []
    assert not (tmp_path.parent / "jobs.db").exists()


def status_json(url: str) -> Any:
    import json

    result = CliRunner().invoke(cli, ["status", "--json", "--url", url])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_status_shows_where_the_database_is(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.delenv("CONVEYOR_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_APP", raising=False)
    url = with_password(db_url, "s3cret") if is_postgres(db_url) else "sqlite:///jobs.db"
    if not is_postgres(db_url):
        monkeypatch.chdir(tmp_path)
    with Conveyor(url) as app:
        app.inspector.schema_version()  # create it
    data = status_json(url)
    human = CliRunner().invoke(cli, ["status", "--url", url])
    assert human.exit_code == 0, human.output
    if is_postgres(db_url):
        parts = urlsplit(db_url)
        where = postgres_location(db_url)
        schema = where.rsplit(" ", 1)[1]
        assert data["database"] == {
            "dialect": "postgresql", "location": where, "host": parts.hostname,
            "port": parts.port, "database": parts.path.lstrip("/"), "schema": schema,
            "user": parts.username}
    else:
        where = str(Path(os.getcwd()) / "jobs.db")
        assert data["database"] == {"dialect": "sqlite", "location": where, "path": where}
    assert f"database {where}" in " ".join(human.stdout.split())  # however rich wraps it
    assert "s3cret" not in human.output + str(data)


@pytest.mark.backends("sqlite")  # about relative paths
def test_a_command_that_finds_no_database_says_where_it_looked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cwd = Path(os.getcwd())
    result = CliRunner().invoke(cli, ["status", "--url", "sqlite:///jobs.db"])
    assert result.exit_code == 2, result.output
    assert (f"no conveyor database at '{cwd / 'jobs.db'}' (relative to the current directory "
            f"{cwd})") in " ".join(result.output.split())
