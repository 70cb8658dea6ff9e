"""PostgreSQL helpers for the benchmarks: databases of our own on a loopback server, and the
CPU of the server processes that serve them.

Every database this module creates is named `conveyor_bench_*`, is dropped when the benchmark
is done with it, and is dropped first if an earlier run left it behind. Nothing else on the
server is touched: not other databases, not server settings.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from common import cpu_seconds

PREFIX = "conveyor_bench_"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def check_loopback(url: str) -> None:
    """Refuse anything but a server on this machine: benchmark traffic stays on loopback."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"refusing PostgreSQL at {host!r}: benchmarks only talk to loopback "
                     "(127.0.0.1, ::1, localhost)")


def database_url(admin_url: str, name: str) -> str:
    """`admin_url` pointing at database `name` instead (no query string: public schema)."""
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))


def _connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=10)


class Server:
    """The admin connection: creates and drops our databases."""

    def __init__(self, admin_url: str, tag: str = "") -> None:
        """`tag` goes into every name this run creates (a smoke run: its pid), so that runs
        side by side never drop each other's databases."""
        check_loopback(admin_url)
        self.admin_url = admin_url
        self.tag = tag
        self.created: list[str] = []

    def version(self) -> str:
        with _connect(self.admin_url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            settings = dict(conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('synchronous_commit', 'fsync', 'autovacuum', 'shared_buffers')").fetchall())
        shared_mib = int(settings.get("shared_buffers", "0")) * 8 // 1024
        return (f"PostgreSQL {row[0] if row else '?'} on loopback (synchronous_commit="
                f"{settings.get('synchronous_commit')}, fsync={settings.get('fsync')}, "
                f"autovacuum={settings.get('autovacuum')}, shared_buffers={shared_mib} MiB)")

    def started_at(self, wait: float = 0.0) -> str:
        """When the server last (re)started; waits up to `wait` seconds for it to be up."""
        import time

        deadline = time.monotonic() + wait
        while True:
            try:
                with _connect(self.admin_url) as conn:
                    row = conn.execute("SELECT pg_postmaster_start_time()::text").fetchone()
                return str(row[0]) if row else "?"
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def drop_leftovers(self) -> list[str]:
        """Drop `conveyor_bench_*` databases an interrupted earlier run left behind."""
        with _connect(self.admin_url) as conn:
            names = [row[0] for row in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s",
                (PREFIX.replace("_", r"\_") + "%",)).fetchall()]
        for name in names:
            self.drop(name)
        return names

    def create(self, suffix: str) -> str:
        """A fresh, empty database `conveyor_bench_<suffix>`; returns its URL."""
        name = PREFIX + self.tag + suffix
        self.drop(name)
        with _connect(self.admin_url) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return database_url(self.admin_url, name)

    def drop(self, name: str) -> None:
        if not name.startswith(PREFIX):
            raise ValueError(f"not a benchmark database: {name}")
        with _connect(self.admin_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with contextlib.suppress(ValueError):
            self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(self.created):
            with contextlib.suppress(Exception):
                self.drop(name)


class Database:
    """One autocommit connection to a benchmark database, for the driver's own queries."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = urlsplit(url).path.lstrip("/")
        self._conn: Any = None
        self.statements = 0  # sent through this object (each its own transaction)

    @property
    def conn(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = _connect(self.url)
        return self._conn

    def rows(self, query: str, params: Any = None) -> list[Any]:
        self.statements += 1
        return list(self._execute(query, params).fetchall())

    def _execute(self, query: str, params: Any) -> Any:
        """Execute; a connection that broke since its last use (the server restarted) is
        replaced once. Autocommit: a failed statement has changed nothing."""
        import psycopg

        try:
            return self.conn.execute(query, params)
        except psycopg.OperationalError:
            if self._conn is not None and not self._conn.closed:
                raise  # the connection is fine: the statement itself failed
            self.close()
            return self.conn.execute(query, params)

    def scalar(self, query: str, params: Any = None) -> Any:
        rows = self.rows(query, params)
        return rows[0][0] if rows else None

    def execute(self, query: str, params: Any = None) -> None:
        self.statements += 1
        self._execute(query, params)

    def commits(self) -> int:
        """Transactions committed in this database so far (pg_stat_database; read-only
        statements in autocommit count too). The statistics are flushed by each backend at
        most once a second and when it goes idle, so read them after a pause."""
        self.execute("SELECT pg_stat_clear_snapshot()")
        return int(self.scalar(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"))

    def wal_syncs(self) -> tuple[int, float]:
        """WAL flushes to disk so far, server-wide, and the milliseconds spent in them by
        sessions that have track_wal_io_timing on (pg_stat_wal)."""
        self.execute("SELECT pg_stat_clear_snapshot()")
        row = self.rows("SELECT wal_sync, wal_sync_time FROM pg_stat_wal")[0]
        return int(row[0]), float(row[1])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        self.statements += 1
        with self.conn.transaction():
            yield self.conn

    def vacuum_analyze(self) -> None:
        """What autovacuum would have done by now (it is off on some servers): untimed."""
        self._execute("VACUUM (ANALYZE)", None)

    def backend_pids(self) -> list[int]:
        """Server processes serving other connections to this database (the workers')."""
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()").fetchall()
        return [int(row[0]) for row in rows]

    def backend_cpu(self, pids: list[int] | None = None) -> dict[int, float]:
        """CPU seconds so far of each server process serving this database (not ours), or of
        the given ones (no query then)."""
        usage: dict[int, float] = {}
        for pid in self.backend_pids() if pids is None else pids:
            with contextlib.suppress(OSError):
                usage[pid] = cpu_seconds(pid)
        return usage

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two `backend_cpu` readings; a process new in `after` counts whole."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())

