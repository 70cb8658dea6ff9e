"""PostgreSQL: many worker hosts, one database. psycopg 3 with connection pools (callers' and
workers' own), pipelined transactions, LISTEN/NOTIFY to wake idle workers, the database clock.
The dialect the store runs its verbs over, and `PostgresBackend`, the store on one server."""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import select
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg.conninfo
import psycopg.errors
import psycopg.sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from .. import sql
from ..errors import ConfigurationError, DatabaseUnavailable
from ..records import Location, varies
from .dialect import Columns, KeyClash, Params
from .dialect import Row as AnyRow
from .store import Store
from .unavailable import postgres_unavailable
from .wakeups import Subscription, Wakeups

log = logging.getLogger("conveyor.postgres")

DIALECT = "postgresql"
POOL_SIZE = 8
WORKER_POOL_SIZE = 6  # dispatcher, heartbeat, rescuer, cancels, singleton duties
# How long a call waits for a connection before it raises DatabaseUnavailable; the URL's
# libpq parameter connect_timeout (seconds) sets it. The last PROBE_TIMEOUT seconds of it go
# to one direct connection attempt that learns the server's reason (the pool keeps none).
CONNECT_TIMEOUT = 10.0
PROBE_TIMEOUT = 2.0
LISTEN_RECONNECT_MAX = 5.0
LISTEN_CHECK = 30.0  # seconds the LISTEN thread sleeps at most between looks at its socket

Row = dict[str, Any]


def _q(name: str) -> str:
    return sql.load(DIALECT, name)


# Batches of new jobs: `SELECT * FROM unnest(:column::type[], ...)`, an array per column.
_BROADCAST_BATCHES = frozenset({"enqueue_batch", "enqueue_members"})
_UNNEST = re.compile(r"SELECT \* FROM unnest\(([^;]*)\)\s*$")
_ARRAY = re.compile(r"%\((\w+)\)s::(\w+)\[\]")


@functools.cache
def _unnested(name: str) -> tuple[tuple[str, str], ...]:
    """The columns of batch statement `name`, with their types, in order."""
    match = _UNNEST.search(_q(name))
    if match is None:
        raise ValueError(f"{name}.sql: a batch of jobs reads `SELECT * FROM unnest(:column::"
                         "type[], ...)`")
    return tuple(_ARRAY.findall(match.group(1)))


@functools.cache
def _broadcast_sql(name: str, varying: tuple[bool, ...]) -> str:
    """Batch statement `name` with each column that is not `varying` (one value in every row)
    sent once, as a value, not as an array, and every parameter in binary: psycopg dumps a
    list element by element in Python, about 0.1 us an element in binary and 0.35 in text."""
    columns = [(f'"{column}"', kind, varies)
               for (column, kind), varies in zip(_unnested(name), varying, strict=True)]
    picked = ", ".join(f"u.{column}" if varies else f"%({column[1:-1]})b::{kind}"
                       for column, kind, varies in columns)
    arrays = ", ".join(f"%({column[1:-1]})b::{kind}[]" for column, kind, varies in columns
                       if varies)
    named = ", ".join(column for column, _, varies in columns if varies)
    text = _q(name)
    match = _UNNEST.search(text)
    assert match is not None
    return f"{text[:match.start()]}SELECT {picked} FROM unnest({arrays}) AS u({named})"


@functools.cache
def _announces(name: str) -> bool:
    """Whether a statement sends a wake-up itself (it takes the channel)."""
    return "%(channel)s" in _q(name)


class _Result:
    """A statement's cursor; read once the transaction's statements have been sent (in a
    pipeline, reading one earlier waits for its reply)."""

    __slots__ = ("_count", "_cursor", "_rows")

    def __init__(self, cursor: psycopg.Cursor[Row]) -> None:
        self._cursor = cursor
        self._rows: list[AnyRow] | None = None
        self._count = -1

    def settle(self) -> None:
        """Read the reply while the connection is still ours."""
        if self._rows is None:
            cursor = self._cursor
            try:  # in a pipeline, fetching waits for this statement's reply
                self._rows = list(cursor.fetchall())
            except psycopg.ProgrammingError as exc:
                if exc.sqlstate is not None:  # the server refused the statement
                    raise
                self._rows = []  # a statement that returns no rows
            self._count = cursor.rowcount

    def all(self) -> list[AnyRow]:
        self.settle()
        assert self._rows is not None
        return self._rows

    def one(self) -> AnyRow | None:
        rows = self.all()
        return rows[0] if rows else None

    @property
    def count(self) -> int:
        self.settle()
        return self._count


class _Session:
    def __init__(self, conn: psycopg.Connection[Any], channel: str, *,
                 own: bool = True) -> None:
        self._conn = conn
        self._channel = channel
        self._results: list[_Result] = []
        # A caller's connection may make tuples: its cursors are asked for dicts.
        self._execute: Callable[[str, Params], psycopg.Cursor[Row]] = (
            conn.execute if own else
            lambda query, params: conn.cursor(row_factory=dict_row).execute(query, params))

    def _keep(self, cursor: psycopg.Cursor[Row]) -> _Result:
        result = _Result(cursor)
        self._results.append(result)
        return result

    def run(self, name: str, params: Params | None = None) -> _Result:
        if _announces(name):  # (its SQL sends the wake-up itself)
            params = {**(params or {}), "channel": self._channel}
        return self._keep(self._execute(_q(name), params or {}))

    def batch(self, name: str, columns: Columns) -> _Result:
        """One statement for the whole batch, each parameter an array."""
        if name not in _BROADCAST_BATCHES:
            return self._keep(self._execute(_q(name), columns))
        order = [column for column, _ in _unnested(name)]
        varying = tuple(varies(columns[column]) for column in order)
        if not any(varying):  # one row, or all alike: unnest needs an array
            varying = (True, *varying[1:])
        params = {column: columns[column] if column_varies else columns[column][0]
                  for column, column_varies in zip(order, varying, strict=True)}
        return self._keep(self._execute(_broadcast_sql(name, varying), params))

    @contextmanager
    def guarded(self) -> Iterator[None]:
        try:
            with self._conn.transaction():  # a savepoint: a clash undoes this statement only
                yield
        except psycopg.errors.UniqueViolation as exc:
            raise KeyClash(str(exc)) from exc

    def script(self, text: str) -> None:
        self._conn.execute(text.encode())

    def notify(self, queue: str = "") -> None:
        self._execute(_q("notify"), {"channel": self._channel, "queue": queue})

    def settle(self) -> None:
        for result in self._results:
            result.settle()


def _check_unless_quiet(conn: psycopg.Connection[Any]) -> None:
    """The pool's check of a connection it is about to hand out (a round trip), only when the
    server said something while the connection sat idle. A server that shuts down or restarts,
    or a network that drops the connection, sends a message or closes the socket, which makes
    it readable: then the check runs, fails, and the pool replaces the connection or says the
    server is unavailable. A quiet socket skips the round trip: about 50 us of the 300 of a
    single enqueue here."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    if _readable(conn.fileno()):
        ConnectionPool.check_connection(conn)


def _readable(*fds: int, timeout: float = 0.0) -> bool:
    """Whether one of `fds` has something to read, waiting up to `timeout` seconds. poll, not
    select: select refuses a descriptor past 1023, which an application with many files open
    soon hands out."""
    if hasattr(select, "poll"):
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(timeout * 1000))
    told, _, _ = select.select(fds, [], [], timeout)  # (Windows: no poll, and no such limit)
    return bool(told)


class PostgresDialect:
    """Connections to one PostgreSQL database (one schema), shared by any number of hosts."""

    name = DIALECT
    log = log
    # Other hosts may still run older code: an operator runs `conveyor db migrate`.
    upgrades_on_open = False
    serial_writes = False
    round_size = 96

    def __init__(self, url: str) -> None:
        self.url = url
        self.timeout = _connect_timeout(url)
        self._closed = threading.Event()
        self._wakeups = Wakeups(self._listen, "conveyor-pg-listen")
        self._probe()
        self._pool = self._make_pool("conveyor", POOL_SIZE, check=True)
        self._worker_pool: ConnectionPool[psycopg.Connection[Row]] | None = None
        self._worker_pool_lock = threading.Lock()
        self._writer_pid: int | None = None
        try:
            with self._connection() as conn:
                row = conn.execute(
                    "SELECT current_schema() AS s, current_database() AS d"
                ).fetchone()
                info = conn.info
                server = (info.user, info.host, info.port)
            if row is None or row["s"] is None:
                raise ConfigurationError(
                    "no schema to put conveyor's tables in: the search_path names no existing "
                    "schema; create it, or fix options=-csearch_path in the URL"
                )
            self.schema, self.database = str(row["s"]), str(row["d"])
            user, host, port = server
            self._location = Location(DIALECT, (
                f"postgresql://{user}@{host}:{port}/{self.database}, schema {self.schema}"
            ), {"host": host, "port": port, "database": self.database, "schema": self.schema,
                "user": user})
            # Channel names are identifiers of at most 63 bytes: a hash fits any schema name.
            digest = hashlib.md5(self.schema.encode(), usedforsecurity=False).hexdigest()[:16]
            self.channel = f"conveyor_{digest}"
        except BaseException:
            self._pool.close()
            raise
        # Wakes the LISTEN thread when the dialect closes (it sleeps on its socket, no
        # polling): made with the thread, which keeps it (and this object) alive until then.
        self._stop_pair: tuple[socket.socket, socket.socket] | None = None
        self._stop_pair_lock = threading.Lock()

    def _probe(self) -> None:
        """One plain connection before the pool opens: a URL that cannot work fails at once
        with the server's own reason, instead of the pool retrying (and logging each retry)
        until its timeout. A wrong user, password or database name is a ConfigurationError;
        a server that is down, unreachable or starting up is DatabaseUnavailable."""
        try:
            psycopg.connect(self.url, autocommit=True,
                            connect_timeout=max(2, round(self.timeout))).close()
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            if isinstance(exc, psycopg.OperationalError) and not _url_mistake(reason):
                raise DatabaseUnavailable(
                    f"PostgreSQL at {_redact(self.url)} is unavailable: {reason}") from exc
            raise ConfigurationError(
                f"cannot connect to PostgreSQL at {_redact(self.url)}: "
                f"{reason.rsplit('FATAL:', 1)[-1].strip()}; check the URL (user, password, "
                "database name)") from exc

    @property
    def location(self) -> Location:
        """Host, port, database, schema and user as connected: never the password."""
        return self._location

    def _make_pool(
        self, name: str, size: int, *, check: bool
    ) -> ConnectionPool[psycopg.Connection[Row]]:
        wait = max(self.timeout - PROBE_TIMEOUT, 1.0)
        try:
            pool = ConnectionPool[psycopg.Connection[Row]](
                self.url,
                connection_class=psycopg.Connection[Row],
                min_size=1,
                max_size=size,
                kwargs={"autocommit": True, "row_factory": dict_row,
                        "connect_timeout": max(2, round(self.timeout))},
                # Checking is worth it for callers' one-off calls after a server restart,
                # not for workers, which retry failures anyway.
                check=_check_unless_quiet if check else None,
                configure=_configure_session,
                name=name,
                open=False,
                timeout=wait,  # a checkout waits this long for a connection
            )
            pool.open(wait=True, timeout=wait)
        except PoolTimeout as exc:
            raise self._unavailable(exc) from exc
        except Exception as exc:
            raise ConfigurationError(
                f"cannot connect to PostgreSQL at {_redact(self.url)}: {exc}"
            ) from exc
        return pool

    # -- connections -----------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Row]]:
        with self._checkout(self._pool) as conn:
            yield conn

    @contextmanager
    def transaction(self, *, worker: bool = False, pipeline: bool = False,
                    renewal: bool = False) -> Iterator[_Session]:
        pool = self._workers_pool() if worker else self._pool
        with self._checkout(pool) as conn:
            if renewal:
                self._writer_pid = conn.info.backend_pid
            try:
                session = _Session(conn, self.channel)
                if pipeline:
                    with conn.pipeline(), conn.transaction():
                        yield session
                else:
                    with conn.transaction():
                        yield session
                session.settle()
            finally:
                if renewal:
                    self._writer_pid = None

    def statement(self, name: str, params: Params, *, notify: str | None = None
                  ) -> list[AnyRow]:
        """One statement in a transaction of its own: on an autocommit connection, one round
        trip. Its SQL sends its own wake-up (`notify` is for dialects that cannot)."""
        with self._checkout(self._pool) as conn:
            rows: list[AnyRow] = list(conn.execute(
                _q(name), {**params, "channel": self.channel}).fetchall())
            return rows

    def read(self, name: str, params: Params | None = None, *,
             worker: bool = False) -> list[AnyRow]:
        with self._checkout(self._workers_pool() if worker else self._pool) as conn:
            rows: list[AnyRow] = list(conn.execute(_q(name), params or {}).fetchall())
            return rows

    @contextmanager
    def _checkout(
        self, pool: ConnectionPool[psycopg.Connection[Row]]
    ) -> Iterator[psycopg.Connection[Row]]:
        """A connection of `pool`. A server that is down, unreachable, restarting or full
        raises DatabaseUnavailable (its reason, the URL without its password), within
        self.timeout when no connection can be had."""
        try:
            # getconn/putconn, not pool.connection(): that also enters the connection, whose
            # exit commits, a no-op on these autocommit connections that still costs about
            # a tenth of a single enqueue's Python. putconn rolls back a transaction left open.
            conn = pool.getconn()
            try:
                yield conn
            finally:
                pool.putconn(conn)
        except PoolTimeout as exc:
            raise self._unavailable(exc) from exc
        except psycopg.OperationalError as exc:
            unavailable = postgres_unavailable(exc, _redact(self.url))
            if unavailable is None:
                raise
            raise unavailable from exc

    def _unavailable(self, exc: PoolTimeout) -> DatabaseUnavailable:
        """The error for a pool that got no connection in time, with the server's reason
        (one direct connection attempt finds it: the pool keeps only its own timeout)."""
        try:
            with psycopg.connect(self.url, autocommit=True,
                                 connect_timeout=int(PROBE_TIMEOUT)):
                reason = f"no connection became free in time ({exc})"
        except psycopg.Error as probe:
            reason = " ".join(str(probe).split()) or type(probe).__name__
        return DatabaseUnavailable(
            f"PostgreSQL at {_redact(self.url)} is unavailable: {reason}; gave up after "
            f"{self.timeout:g} s (the URL's connect_timeout sets this)")

    def _workers_pool(self) -> ConnectionPool[psycopg.Connection[Row]]:
        """Workers' own pool: heartbeats and claims never queue behind callers' enqueues."""
        with self._worker_pool_lock:
            if self._worker_pool is None:
                self._worker_pool = self._make_pool("conveyor-worker", WORKER_POOL_SIZE,
                                                    check=False)
            return self._worker_pool

    @contextmanager
    def caller_session(self, connection: Any) -> Iterator[_Session]:
        """Inside the caller's transaction: the jobs (and the NOTIFY) exist when it commits."""
        if not isinstance(connection, psycopg.Connection):
            raise ConfigurationError(
                "a PostgreSQL app enqueues in your transaction through a psycopg "
                f"Connection, got {type(connection).__name__}"
            )
        idle = connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        if connection.autocommit and idle:
            raise ConfigurationError(
                "the connection given is in autocommit mode with no transaction open, so the "
                "jobs would not share your transaction; open one first "
                "(with conn.transaction(): ...) or pass a connection without autocommit"
            )
        with connection.cursor(row_factory=dict_row) as cursor:
            row = cursor.execute(
                "SELECT current_schema() AS s, current_database() AS d").fetchone()
        where = (row["s"], row["d"]) if row else (None, None)
        if where != (self.schema, self.database):
            raise ConfigurationError(
                f"the connection given works in schema {where[0]!r} of database {where[1]!r}, "
                f"not in this app's schema {self.schema!r} of database {self.database!r}; "
                "connect with the same URL (including its search_path)"
            )
        session = _Session(connection, self.channel, own=False)
        yield session
        session.settle()

    def renewal_blocked(self) -> bool:
        pid = self._writer_pid
        if pid is None:
            return False
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=2,
                                 options="-c statement_timeout=2000") as conn:
                row = conn.execute(_q("waits_for_table_lock"), {"pid": pid}).fetchone()
        except psycopg.Error:
            return False  # cannot tell: assume the worst (cut off), never the best
        return bool(row and row[0])

    def maintain(self) -> bool:
        return True  # the server checkpoints and recycles its own WAL

    # -- wake-ups --------------------------------------------------------------------

    def subscribe(self, callback: Callable[[], None]) -> Subscription:
        """Call `callback` (from another thread) whenever new work may have arrived."""
        with self._stop_pair_lock:
            if self._stop_pair is None and not self._closed.is_set():
                self._stop_pair = socket.socketpair()
        return self._wakeups.subscribe(callback)

    def _listen(self) -> None:
        stop = self._stop_pair
        if stop is None:  # closed before it started
            return
        pause = 0.1
        while not self._closed.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True,
                                     connect_timeout=int(CONNECT_TIMEOUT)) as conn:
                    conn.execute(psycopg.sql.SQL("LISTEN {}").format(
                        psycopg.sql.Identifier(self.channel)))
                    pause = 0.1
                    self._wakeups.notify()  # anything enqueued while we were not listening
                    while not self._closed.is_set():
                        # Asleep until the server speaks (a NOTIFY, or the connection's end)
                        # or close() writes to the socket pair: an idle worker costs nothing.
                        _readable(conn.fileno(), stop[1].fileno(), timeout=LISTEN_CHECK)
                        if any(True for _ in conn.notifies(timeout=0.0)):
                            self._wakeups.notify()
            except psycopg.Error as exc:
                if self._closed.is_set():
                    return
                log.warning("LISTEN connection lost (%s); reconnecting in %.1f s", exc, pause)
                self._closed.wait(pause)
                pause = min(pause * 2, LISTEN_RECONNECT_MAX)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        with self._stop_pair_lock:
            stop, self._stop_pair = self._stop_pair, None
        if stop is not None:
            stop[0].send(b"x")
        self._wakeups.join(timeout=3)
        if stop is not None:
            stop[0].close()
            stop[1].close()
        if self._worker_pool is not None:
            self._worker_pool.close()
        self._pool.close()


# What the server (or libpq) says when the URL itself is wrong, so trying again cannot help:
# libpq reports no SQLSTATE for a refused connection, so its (English) text is all there is.
_URL_MISTAKES = ("password authentication failed", "does not exist", "no pg_hba.conf entry",
                 "no password supplied", "permission denied for database",
                 "not permitted to log in")


def _url_mistake(reason: str) -> bool:
    return any(mistake in reason for mistake in _URL_MISTAKES)


def _connect_timeout(url: str) -> float:
    """The URL's connect_timeout (seconds), else CONNECT_TIMEOUT."""
    try:
        value = psycopg.conninfo.conninfo_to_dict(url).get("connect_timeout")
    except psycopg.Error:
        return CONNECT_TIMEOUT  # a malformed URL: opening the pool says what is wrong
    if value is None or str(value).strip() == "":
        return CONNECT_TIMEOUT
    try:
        seconds = float(str(value))
    except ValueError:
        seconds = -1.0
    if not 1 <= seconds <= 86400:
        raise ConfigurationError(
            f"connect_timeout={value!r} in the URL {_redact(url)} is not a number of seconds "
            "from 1 to 86400")
    return seconds


# conveyor's transactions are a few statements long. A session idle inside one this long
# belongs to a client that is gone (a worker cut off mid-transaction, its socket still open):
# the server ends it, so the rows it locked can be watched and taken over again.
IDLE_IN_TRANSACTION_TIMEOUT = "10s"


def _configure_session(conn: psycopg.Connection[Row]) -> None:
    conn.execute(psycopg.sql.SQL("SET idle_in_transaction_session_timeout = {}").format(
        psycopg.sql.Literal(IDLE_IN_TRANSACTION_TIMEOUT)))


def _redact(url: str) -> str:
    """The URL without its password (in its credentials or a password= parameter)."""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    if "?" in rest:
        rest, query = rest.split("?", 1)
        kept = [part for part in query.split("&") if not part.lower().startswith("password=")]
        query = "&".join(kept)
    else:
        query = ""
    if "@" in rest:
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        rest = f"{user}@{host}"
    return f"{scheme}://{rest}" + (f"?{query}" if query else "")


class PostgresBackend(Store):
    """Durable jobs in PostgreSQL, shared by worker processes on any number of hosts."""

    db: PostgresDialect

    def __init__(self, url: str, *, auto_migrate: bool = True) -> None:
        super().__init__(PostgresDialect(url), auto_migrate=auto_migrate)

    @property
    def url(self) -> str:
        return self.db.url

    @property
    def channel(self) -> str:
        return self.db.channel
