"""The two real databases the contract suite runs on, and backend-neutral ways to touch them.

SQLite: a fresh file per test. PostgreSQL: a fresh schema per test on one server, selected
through libpq options in the URL (conveyor creates its tables in the first schema of the
search_path); every connection of the test, in this process or in worker processes, carries
the schema's name as its application_name, so teardown can find them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from conveyor import sql
from conveyor.backends import sqlite_path
from conveyor.backends.sqlite import _split_statements

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_URL = os.environ.get("CONVEYOR_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL
SCHEMA_PREFIX = "ct_"
_schemas = itertools.count(1)


def is_postgres(url: str) -> bool:
    return url.split(":", 1)[0].lower() in ("postgres", "postgresql")


def in_ci() -> bool:
    """CI=true (or any value but empty/0/false/no) means a missing database is a failure."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def postgres_problem(url: str = POSTGRES_URL) -> str | None:
    """Why the PostgreSQL tests cannot run here, or None when they can."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed ({exc}); pip install -e '.[test,postgres]'"
    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"cannot connect to {url}: {str(exc).strip()}"
    return None


def schema_url(server_url: str, schema: str) -> str:
    """`server_url` with search_path and application_name set to `schema`."""
    parts = urlsplit(server_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("options", "application_name")]
    query += [("options", f"-csearch_path={schema}"), ("application_name", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _admin(server_url: str) -> Any:
    import psycopg

    return psycopg.connect(server_url, autocommit=True, connect_timeout=5)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def drop_abandoned_schemas(server_url: str) -> None:
    """Schemas left by test sessions that died before their teardown (their pid is gone)."""
    with _admin(server_url) as conn:
        names = [row[0] for row in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (SCHEMA_PREFIX + "%",))]
        for name in names:
            pid = name[len(SCHEMA_PREFIX):].split("_", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _sessions(conn: Any, schema: str) -> list[tuple[int, str, str]]:
    return [tuple(row) for row in conn.execute(
        "SELECT pid, coalesce(state, ''), left(coalesce(query, ''), 200) FROM pg_stat_activity"
        " WHERE application_name = %s AND pid <> pg_backend_pid()", (schema,))]


@contextmanager
def fresh_schema(server_url: str) -> Iterator[str]:
    """CREATE SCHEMA, yield its URL, then end its leftover sessions and DROP SCHEMA CASCADE."""
    schema = f"{SCHEMA_PREFIX}{os.getpid()}_{next(_schemas)}"
    with _admin(server_url) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema_url(server_url, schema)
    finally:
        with _admin(server_url) as conn:
            # Anything still connected (a worker process a failed test could not stop, a pool
            # left open) would hold locks that DROP SCHEMA waits for.
            for pid, _, _ in _sessions(conn, schema):
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            conn.execute("SET lock_timeout = '20s'")
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def sessions_in_transaction(url: str) -> list[tuple[int, str, str]]:
    """Sessions of this test's schema (other than the one asking) that are inside a
    transaction or running a statement: (pid, state, query)."""
    schema = dict(parse_qsl(urlsplit(url).query))["application_name"]
    with _admin(url) as conn:
        return [s for s in _sessions(conn, schema) if s[1] != "idle"]


def open_sessions(url: str) -> list[tuple[int, str, str]]:
    """Every session connected with this test schema's application_name, but the asker."""
    schema = dict(parse_qsl(urlsplit(url).query))["application_name"]
    with _admin(url) as conn:
        return _sessions(conn, schema)


# -- backend-neutral SQL ---------------------------------------------------------------------


def connect(url: str) -> Any:
    """A plain DB-API connection to the test database (the caller commits and closes)."""
    if is_postgres(url):
        import psycopg

        return psycopg.connect(url, connect_timeout=5)
    return sqlite3.connect(sqlite_path(url), timeout=30)


def execute(url: str, statement: str, params: Sequence[Any] = ()) -> int:
    """Run one write statement (placeholders written `?`) and commit; returns the row count."""
    conn = connect(url)
    try:
        cursor = conn.execute(_placeholders(url, statement), tuple(params))
        count = int(cursor.rowcount)
        conn.commit()
        return count
    finally:
        conn.close()


def query(url: str, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of one read statement (placeholders written `?`), as tuples."""
    conn = connect(url)
    try:
        return [tuple(row) for row in conn.execute(_placeholders(url, statement), tuple(params))]
    finally:
        with contextlib.suppress(Exception):
            conn.rollback()
        conn.close()


def _placeholders(url: str, statement: str) -> str:
    return statement.replace("?", "%s") if is_postgres(url) else statement


def make_version_1_database(url: str) -> None:
    """A database as conveyor 0.1 (schema version 1) left it, with one job waiting."""
    dialect = "postgresql" if is_postgres(url) else "sqlite"
    version, name, script = sql.migrations(dialect)[0]
    assert (version, name) == (1, "0001_initial.sql")
    if dialect == "sqlite":
        conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
        try:
            conn.execute(sql.load(dialect, "create_migrations_table"))
            for statement in _split_statements(script):
                conn.execute(statement)
            conn.execute(sql.load(dialect, "record_migration"),
                         {"version": 1, "name": name, "now": 0.0})
        finally:
            conn.close()
    else:
        with connect(url) as pg:
            pg.execute(sql.load(dialect, "create_migrations_table"))
            pg.execute(script)
            pg.execute(sql.load(dialect, "record_migration"), {"version": 1, "name": name})
    execute(url, "INSERT INTO conveyor_jobs (task, queue, state, args, kwargs, run_at, "
                 "enqueued_at) VALUES ('t.add', 'default', 'queued', '[1, 2]', '{}', 1, 1)")
