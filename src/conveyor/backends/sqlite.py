"""SQLite: WAL, BEGIN IMMEDIATE for every write, one writer connection per process; the
dialect the store runs its verbs over, and `SQLiteBackend`, the store on one SQLite file."""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

from .. import sql
from ..errors import ConfigurationError, ConveyorWarning
from ..records import Location, varies
from .base import Durability
from .dialect import Columns, KeyClash, Params, Row
from .store import Store
from .unavailable import sqlite_unavailable
from .wakeups import Subscription, Wakeups

log = logging.getLogger("conveyor.sqlite")

# How often an idle process checks whether another process committed (PRAGMA data_version).
WATCH_FAST = 0.001
WATCH_SLOW = 0.008
WATCH_QUIET_AFTER = 0.25
PAGE_SIZE = 2048
CACHE_KIB = 32768
BUSY_TIMEOUT = 60.0
# A reader that keeps a transaction open stops checkpoints from reaching the end of the WAL, so
# the WAL grows meanwhile; afterwards it is cut back to this size at its next reset...
WAL_SIZE_LIMIT = 64 * 1024 * 1024
# ...and an idle worker truncates a WAL larger than this (a normal one cycles within about
# 1000 pages, ~2 MiB, the auto-checkpoint threshold).
WAL_TRUNCATE_ABOVE = 4 * 1024 * 1024
# Seconds between an idle worker's looks at the WAL's size (an os.stat; the checkpoint only
# when it is too large).
MAINTAIN_EVERY = 2.0
# Above this many queues a claim lists them in one JSON parameter rather than one UNION ALL
# term each (SQLite allows at most 500 terms in a compound SELECT).
CLAIM_UNION_MAX = 100
# WAL needs shared memory between processes, which these filesystems do not provide.
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smbfs", "smb3", "9p", "fuse.sshfs", "afs", "ceph", "glusterfs",
     "lustre", "gpfs", "beegfs", "fuse.glusterfs", "fuse.rclone"}
)


def _q(name: str) -> str:
    return sql.load("sqlite", name)


class _Prepared:
    """A named statement as sqlite3 runs it fastest: numbered placeholders, bound from a
    tuple in their order; list parameters (what json_each reads) sent as JSON arrays."""

    __slots__ = ("_pick", "_single", "clocked", "lists", "names", "returns", "text")

    def __init__(self, text: str) -> None:
        self.text, self.names = sql.numbered(text)
        self.clocked = "now" in self.names  # then it is ?1
        self.lists = frozenset(_JSON_LIST.findall(text))
        self.returns = "RETURNING" in text
        given = self.names[1:] if self.clocked else self.names
        self._pick = itemgetter(*given) if given else None
        self._single = len(given) == 1

    def values(self, params: Params | None, now: float) -> tuple[Any, ...]:
        clock = (now,) if self.clocked else ()
        if self._pick is None:
            return clock
        if self.lists:
            # (UTF-8 as it is: SQLite's JSON reads it back exactly, escapes and all.)
            params = {key: json.dumps(value, ensure_ascii=False) if key in self.lists
                      else value for key, value in (params or {}).items()}
        try:
            picked = self._pick(params or {})
        except KeyError as exc:
            raise TypeError(f"no value for the statement's parameter :{exc.args[0]}") \
                from None
        return clock + ((picked,) if self._single else picked)


@cache
def _statement(name: str) -> _Prepared:
    return _Prepared(_q(name))


@cache
def _claim_sql(name: str, queue_count: int, lifo: tuple[bool, ...] = ()) -> _Prepared:
    """Claim statement `name` with its candidates: one term per queue (FIFO or LIFO, plain or
    weighted), or, for a plain claim over many queues, one term reading them as JSON."""
    if name == "claim" and queue_count > CLAIM_UNION_MAX:
        return _Prepared(
            _q("claim").replace("{candidates}", _q("claim_candidates_many_queues")))
    statement, *terms = _CLAIM_TERMS[name]
    flags = lifo or (False,) * queue_count
    candidates = "\nUNION ALL\n".join(
        _q(terms[flag]).replace("{n}", str(i)) for i, flag in enumerate(flags))
    return _Prepared(_q(statement).replace("{candidates}", candidates))


# Each claim: (its statement, the candidate term of a FIFO queue, of a LIFO queue). A LIFO
# claim is claim.sql with LIFO terms: the candidates merge by priority either way.
_CLAIM_TERMS = {
    "claim": ("claim", "claim_candidates_one_queue", "claim_candidates_one_queue"),
    "claim_lifo": ("claim", "claim_candidates_one_queue", "claim_candidates_lifo_queue"),
    "claim_weighted": ("claim_weighted", "claim_candidates_weighted_fifo",
                       "claim_candidates_weighted_lifo"),
}


def _claim_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """claim.sql takes its queues one parameter each (up to CLAIM_UNION_MAX), else as JSON;
    a weighted claim also each queue's share so far and weight."""
    queues = params["queues"]
    claim = {key: value for key, value in params.items()
             if key not in ("queues", "lifo", "start", "weight")}
    if len(queues) > CLAIM_UNION_MAX and "lifo" not in params:
        claim["queues"] = list(queues)  # sent as JSON, for json_each
    else:
        for index, queue in enumerate(queues):
            claim[f"queue_{index}"] = queue
        for key in ("start", "weight"):
            for index, value in enumerate(params.get(key, ())):
                claim[f"{key}_{index}"] = value
    return claim


# Rows a statement of a VALUES batch carries: 10 or so parameters each stays far below
# SQLite's 32,766 variables.
BATCH_ROWS = 500
PAD_ROWS = 16
_JSON_LIST = re.compile(r"json_each\(:(\w+)\)")
# `INSERT INTO table (columns) VALUES {rows}`, or `WITH name (columns) AS (VALUES {rows})`.
_BATCH_COLUMNS = re.compile(r"\(([^()]*)\)\s*(?:AS\s*\(\s*)?VALUES \{rows\}")


@cache
def _values_sql(name: str, varying: tuple[bool, ...], rows: int) -> str:
    """Statement `name` for `rows` rows, its placeholders (`:now` too) positional. A column
    that is not `varying` (the same in every row) is bound once, in a SELECT list over the
    VALUES, instead of once per row: for a batch of like jobs (one task, one queue, the same
    options) that makes the insert about half again as fast."""
    text = sql.replace_now(_q(name), "?")
    row = f"({', '.join('?' * sum(varying))})"
    values = f"VALUES {', '.join([row] * rows)}"
    if all(varying):
        return text.replace("VALUES {rows}", values)
    numbers = iter(range(1, len(varying) + 1))  # VALUES names its columns column1, column2...
    picked = ", ".join(f"column{next(numbers)}" if varies else "?" for varies in varying)
    return text.replace("VALUES {rows}", f"SELECT {picked} FROM ({values})")


@cache
def _matched(name: str) -> bool:
    """Whether batch statement `name` matches its rows against jobs (`WITH name (columns) AS
    (VALUES {rows})`, its jobs found by the first column, their id) rather than inserting
    them."""
    return re.search(r"\bAS\s*\(\s*VALUES \{rows\}", _q(name)) is not None


@cache
def _batch_columns(name: str) -> tuple[str, ...]:
    match = _BATCH_COLUMNS.search(_q(name))
    if match is None:
        raise ValueError(f"{name}.sql: a VALUES batch reads `INSERT INTO table (columns) "
                         "VALUES {rows}` or `WITH name (columns) AS (VALUES {rows})`")
    return tuple(column.strip() for column in match.group(1).split(","))


class _Rows:
    """A statement's result, read at once (SQLite answers in-process)."""

    __slots__ = ("_rows", "count")

    def __init__(self, rows: list[Row], count: int) -> None:
        self._rows = rows
        self.count = count

    def all(self) -> list[Row]:
        return self._rows

    def one(self) -> Row | None:
        return self._rows[0] if self._rows else None


class _Session:
    """Statements on one connection (or a caller's cursor), the clock read once."""

    def __init__(self, target: sqlite3.Connection | sqlite3.Cursor, now: float) -> None:
        self._target = target
        self.now = now
        self.notified = False

    def run(self, name: str, params: Params | None = None) -> _Rows:
        if name in _CLAIM_TERMS:
            params = params or {}
            statement = _claim_sql(name, len(params["queues"]), tuple(params.get("lifo", ())))
            params = _claim_params(params)
        else:
            statement = _statement(name)
        cursor = self._target.execute(statement.text, statement.values(params, self.now))
        rows = cursor.fetchall()
        return _Rows(rows, cursor.rowcount if cursor.rowcount >= 0 else len(rows))

    def batch(self, name: str, columns: Columns) -> _Rows:
        """Run statement `name` for every row. One that reads `json_each(:batch)` runs once,
        the rows sent as a JSON array of objects. Otherwise once per row: a statement with
        RETURNING yields its rows; one without yields `{"id": ...}` of each row it changed
        (cheaper than RETURNING)."""
        statement = _statement(name)
        if "batch" in statement.lists:
            keys = list(columns)
            batch = [dict(zip(keys, row, strict=True))
                     for row in zip(*columns.values(), strict=True)]
            cursor = self._target.execute(statement.text,
                                          statement.values({"batch": batch}, self.now))
            rows = cursor.fetchall()
            return _Rows(rows, cursor.rowcount if cursor.rowcount >= 0 else len(rows))
        if "{rows}" in statement.text:
            return self._values_batch(name, columns)
        size = len(next(iter(columns.values()), ()))
        lists = [columns[key] if key != "now" else [self.now] * size
                 for key in statement.names]
        ids = columns.get("id", ())
        execute = self._target.execute
        found: list[Row] = []
        count = 0
        for index, values in enumerate(zip(*lists, strict=True)):
            cursor = execute(statement.text, values)
            if statement.returns:
                found.extend(cursor.fetchall())
            elif cursor.rowcount > 0:
                found.append({"id": ids[index]})
            count += cursor.rowcount
        return _Rows(found, count)

    def _values_batch(self, name: str, columns: Columns) -> _Rows:
        """One statement per BATCH_ROWS rows: `{rows}` becomes that many VALUES tuples, each
        row's values bound in the order of the columns named before `VALUES`, but for columns
        with one value in every row, bound once. Positional, so the statement's text depends
        only on the chunk's size and which columns vary, and stays prepared."""
        named = [columns[column] for column in _batch_columns(name)]
        before, after = (sql.count_now(part) for part in _q(name).split("{rows}", 1))
        varying = tuple(map(varies, named))
        matched = _matched(name)
        if not any(varying) or matched:
            # VALUES needs a column; and rows matched against jobs carry their ids (the first
            # column) row by row, or a padding row would carry the id too, and match.
            varying = (True, *varying[1:])
        fixed = [values[0] for values, varies in zip(named, varying, strict=True)
                 if not varies]
        varied = [values for values, varies in zip(named, varying, strict=True) if varies]
        size = len(named[0])
        found: list[Row] = []
        count = 0
        for start in range(0, size, BATCH_ROWS):
            end = min(start + BATCH_ROWS, size)
            values: list[Any] = [self.now] * before
            values.extend(fixed)
            # Row by row (zip reuses its tuple as chain consumes it: no object per row).
            values.extend(chain.from_iterable(zip(*(column[start:end] for column in varied),
                                                  strict=True)))
            rows = end - start
            if matched:
                # Rows of NULLs up to a multiple of PAD_ROWS: they match no job, and the
                # statement's texts stay few (a round's size varies), so they stay prepared.
                padded = min(BATCH_ROWS, -(-rows // PAD_ROWS) * PAD_ROWS)
                values.extend([None] * (len(varied) * (padded - rows)))
                rows = padded
            values.extend([self.now] * after)
            cursor = self._target.execute(_values_sql(name, varying, rows), values)
            found.extend(cursor.fetchall())
            count += cursor.rowcount
        return _Rows(found, count)

    @contextmanager
    def guarded(self) -> Iterator[None]:
        # SQLite undoes a failing statement by itself; the transaction goes on.
        try:
            yield
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" not in str(exc):
                raise
            raise KeyClash(str(exc)) from exc

    def script(self, text: str) -> None:
        statements = _split_statements(text)
        for statement in statements:
            self._target.execute(statement)
        if any("writable_schema" in statement for statement in statements):
            # Schema text edited in place: every connection, this one too, must read it
            # again (SQLite's documented procedure bumps the schema cookie).
            version = int(self._target.execute("PRAGMA schema_version").fetchone()[0])
            self._target.execute(f"PRAGMA schema_version = {version + 1}")

    def notify(self, queue: str = "") -> None:
        self.notified = True


def _split_statements(script: str) -> list[str]:
    """Migration statements, one per `;` that ends a line (executescript would COMMIT)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in buffer.splitlines()
    ):
        statements.append(buffer.strip())
    return statements


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF == sqlite3.SQLITE_BUSY)
    return "locked" in str(exc)


def filesystem_type(path: Path) -> str | None:
    """The Linux filesystem type holding `path`, or None where that cannot be told."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    target = str(path.resolve())
    best, best_type = "", None
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount_point = parts[1].replace("\\040", " ")
        prefix = mount_point.rstrip("/") + "/"
        if (target == mount_point or target.startswith(prefix)) and len(mount_point) > len(best):
            best, best_type = mount_point, parts[2]
    return best_type


class _Transaction:
    """SQLiteDialect.transaction(): a class rather than a generator, as it is on every job's
    path (a single enqueue, each claim round)."""

    __slots__ = ("_db", "_session")

    def __init__(self, db: SQLiteDialect) -> None:
        self._db = db

    def __enter__(self) -> _Session:
        db = self._db
        db._write_lock.acquire()
        try:
            db._begin_immediate(db._write)
        except BaseException as exc:
            db._write_lock.release()
            db._raise_unavailable(exc)
            raise
        self._session = _Session(db._write, time.time())
        return self._session

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        db, conn = self._db, self._db._write
        try:
            if exc is None:
                conn.execute("COMMIT")
        except BaseException as failed:
            exc = failed
            raise
        finally:
            try:
                # SQLite may have rolled back by itself (e.g. disk full); never leave the one
                # writer connection inside a transaction.
                if exc is not None and conn.in_transaction:
                    conn.execute("ROLLBACK")
            finally:
                db._write_lock.release()
                if exc is not None:
                    db._raise_unavailable(exc)
        if self._session.notified:
            db._wakeups.notify()


# The oldest SQLite whose SQL conveyor's statements use: RETURNING (3.35.0), UPDATE ... FROM
# (3.33.0).
MIN_SQLITE = (3, 35, 0)


def check_sqlite_version() -> None:
    """Refuse a SQLite library too old for conveyor's statements, saying which and why, before
    any file is touched (rather than a syntax error at the first claim)."""
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        needed = ".".join(map(str, MIN_SQLITE))
        raise ConfigurationError(
            f"conveyor needs SQLite {needed} or newer, and this Python's sqlite3 module uses "
            f"SQLite {sqlite3.sqlite_version} (released before RETURNING): use a Python built "
            "with a newer SQLite (python.org's installers and uv's and conda's Pythons bundle "
            "one), or use PostgreSQL (postgresql://...)")


class SQLiteDialect:
    """Connections to one SQLite file, shared by any number of processes on one machine."""

    name = "sqlite"
    log = log
    upgrades_on_open = True  # an embedded file: the schema follows the code
    round_size = 256
    serial_writes = True  # BEGIN IMMEDIATE

    def __init__(
        self, path: Path | str, *, durability: Durability = "normal"
    ) -> None:
        if durability not in ("normal", "full"):
            raise ConfigurationError(
                f"durability must be 'normal' or 'full', got {durability!r}"
            )
        check_sqlite_version()
        given = Path(path)
        # A relative path resolves against the current directory, once, here: every
        # connection of this backend (the watcher's too) opens the same file.
        self.path = Path(os.path.abspath(given))
        self._relative = not given.is_absolute()
        self.durability = durability
        if not self.path.parent.exists():
            raise ConfigurationError(
                f"cannot create the SQLite database {str(self.path)!r}: the folder "
                f"{str(given.parent)!r} does not exist{self._relative_note()}"
            )
        fs_type = filesystem_type(self.path.parent)
        if fs_type in NETWORK_FILESYSTEMS:
            warnings.warn(
                f"{self.path} is on a network filesystem ({fs_type}); SQLite's WAL mode needs "
                "shared memory between processes and can corrupt the database there. "
                "Put the database on a local disk, or use PostgreSQL.",
                ConveyorWarning,
                stacklevel=3,
            )
        self._create_private()
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._lock_wait_since: float | None = None
        self._write = self._connect()
        try:
            self._read = self._connect()
        except BaseException:
            self._write.close()
            raise
        if os.environ.get("CONVEYOR_SQLITE_BUSY") != "native":
            self._write.execute("PRAGMA busy_timeout = 0")  # see _begin_immediate
        self._wakeups = Wakeups(self._watch, "conveyor-sqlite-watch")
        self._closed = threading.Event()

    # -- connections -----------------------------------------------------------------

    def _create_private(self) -> None:
        """Create a new database file readable by its owner only (0600); SQLite gives its
        -wal and -shm files the database's mode. An existing file is left as it is; of
        several processes creating the file at once, one does and the rest open it."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the SQLite database {str(self.path)!r}: {exc.strerror}"
            ) from None
        os.close(fd)
        log.warning("created a new, empty database %s%s: if your jobs are elsewhere, give "
                    "this process the same URL (--url or CONVEYOR_URL) as the processes that "
                    "enqueue and run them", self.path, self._relative_note())

    def _relative_note(self) -> str:
        if not self._relative:
            return ""
        return f" (relative to the current directory {os.getcwd()})"

    @property
    def location(self) -> Location:
        return Location("sqlite", str(self.path), {"path": str(self.path)})

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                str(self.path),
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT,
                cached_statements=256,
            )
        except sqlite3.OperationalError as exc:
            raise ConfigurationError(
                f"cannot open SQLite database {str(self.path)!r}: {exc}"
            ) from exc
        try:
            self._configure(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                raise
            raise ConfigurationError(
                f"cannot use {str(self.path)!r} as a conveyor database: {exc}"
            ) from exc
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        # Takes effect only when the file is created. Job rows are small and every commit
        # writes whole pages to the WAL: 2 KiB pages made a single enqueue ~50 % faster than
        # 4 KiB (bench/RESULTS.md) at no cost to the worker.
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        mode = self._enable_wal(conn)
        if mode != "wal":
            raise ConfigurationError(
                f"SQLite database {str(self.path)!r} refused WAL mode (got {mode!r}); "
                "conveyor needs WAL so readers never block the writer"
            )
        conn.execute(f"PRAGMA synchronous = {self.durability.upper()}")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        # The default 2 MB cache misses on the hot pages of a queue of a few thousand jobs
        # and more than doubles the cost of a claim; the cache only grows as pages are used.
        conn.execute(f"PRAGMA cache_size = {-CACHE_KIB}")
        conn.execute("PRAGMA foreign_keys = ON")

    def _enable_wal(self, conn: sqlite3.Connection) -> str:
        """Switch to WAL. Several processes opening a new file at once make the switch fail
        with "locked" without consulting busy_timeout, so retry it for as long."""
        deadline = time.monotonic() + BUSY_TIMEOUT
        pause = 0.001
        while True:
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            if mode == "wal":
                return mode
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def transaction(self, *, worker: bool = False, pipeline: bool = False,
                    renewal: bool = False) -> _Transaction:
        """BEGIN IMMEDIATE takes the write lock up front, so busy_timeout applies to it.
        A full disk, an I/O error or a lock held too long raises DatabaseUnavailable (or
        StorageFull), after the transaction was rolled back: nothing of it is stored.

        One writer connection serves every role (`worker`); statements run in-process, so
        there is nothing to pipeline; any write may renew leases (see renewal_blocked)."""
        return _Transaction(self)

    def _raise_unavailable(self, exc: BaseException) -> None:
        """A full disk, an I/O error or a lock held too long as DatabaseUnavailable."""
        if isinstance(exc, sqlite3.OperationalError):
            unavailable = sqlite_unavailable(exc, self.path)
            if unavailable is not None:
                raise unavailable from exc

    @contextmanager
    def _unavailable_as_error(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            unavailable = sqlite_unavailable(exc, self.path)
            if unavailable is None:
                raise
            raise unavailable from exc

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """Take the write lock, waiting up to BUSY_TIMEOUT while another process holds it.

        SQLite's own busy handler sleeps 1, 2, 5, 10 ms... between tries, while a worker's
        transaction lasts well under a millisecond: with two busy processes that sleep was
        most of the time. The writer connection has busy_timeout 0 and retries here with
        sleeps of 50 us growing to 5 ms. While it waits, `renewal_blocked()` says so."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        deadline = time.monotonic() + BUSY_TIMEOUT
        pause = 0.00005
        self._lock_wait_since = time.monotonic()
        try:
            while True:
                time.sleep(pause)
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or time.monotonic() > deadline:
                        raise
                pause = min(pause * 1.5, 0.005)
        finally:
            self._lock_wait_since = None

    def renewal_blocked(self) -> bool:
        return self._lock_wait_since is not None

    def statement(self, name: str, params: Params, *, notify: str | None = None
                  ) -> list[Row]:
        """One statement in a transaction of its own; `notify`: the queue to wake."""
        with self.transaction() as session:
            rows = session.run(name, params).all()
            if notify is not None:
                session.notify(notify)
        return rows

    def read(self, name: str, params: Params | None = None, *,
             worker: bool = False) -> list[Row]:
        statement = _statement(name)
        values = statement.values(params, time.time())
        with self._read_lock, self._unavailable_as_error():
            rows: list[Row] = self._read.execute(statement.text, values).fetchall()
            return rows

    @contextmanager
    def caller_session(self, connection: Any) -> Iterator[_Session]:
        """Inside the caller's transaction: no BEGIN, no COMMIT. Workers notice the jobs when
        the caller commits (PRAGMA data_version changes)."""
        if not isinstance(connection, sqlite3.Connection):
            raise ConfigurationError(
                "a SQLite app enqueues in your transaction through a sqlite3.Connection to "
                f"its database file, got {type(connection).__name__}"
            )
        if connection.isolation_level is None and not connection.in_transaction:
            raise ConfigurationError(
                "the connection given is in autocommit mode (isolation_level=None) with no "
                "transaction open, so the jobs would not share your transaction; run BEGIN "
                "first, or pass a connection with the default isolation level"
            )
        cursor = connection.cursor()
        try:
            cursor.row_factory = sqlite3.Row
            files = [row["file"] for row in cursor.execute("PRAGMA database_list")
                     if row["name"] == "main"]
            if not files or not files[0] or Path(files[0]).resolve() != self.path.resolve():
                raise ConfigurationError(
                    f"the connection given is to {files[0] if files else 'no file'!r}, not to "
                    f"this app's database {str(self.path)!r}"
                )
            if not connection.in_transaction:
                # sqlite3 opens the caller's transaction by itself only before a statement
                # that starts with INSERT, UPDATE or DELETE: a batch starts with WITH.
                cursor.execute("BEGIN")
            yield _Session(cursor, time.time())
        finally:
            cursor.close()

    # -- maintenance -----------------------------------------------------------------

    def maintain(self) -> bool:
        """Keep the WAL small: when it has grown past WAL_TRUNCATE_ABOVE (a reader held a
        transaction open while many writes went on), checkpoint it and truncate it to zero.
        Never waits for a lock: when this process or another is writing, or a reader still
        needs the WAL, it does nothing and says so (False). An idle worker calls it."""
        try:
            size = os.stat(f"{self.path}-wal").st_size
        except OSError:
            return True
        if size <= WAL_TRUNCATE_ABOVE:
            return True
        if not self._write_lock.acquire(blocking=False):
            return False
        try:
            conn = self._write
            busy_ms = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
            if busy_ms:
                conn.execute("PRAGMA busy_timeout = 0")
            try:
                busy = int(conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0])
            finally:
                if busy_ms:
                    conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
        finally:
            self._write_lock.release()
        return busy == 0

    # -- wake-ups --------------------------------------------------------------------

    def subscribe(self, callback: Callable[[], None]) -> Subscription:
        """Call `callback` (from another thread) whenever new work may have arrived."""
        return self._wakeups.subscribe(callback)

    def _watch(self) -> None:
        """Another process's commit changes PRAGMA data_version: a cheap poll (about 4 us).

        Polled every WATCH_FAST while jobs keep arriving, easing to WATCH_SLOW after
        WATCH_QUIET_AFTER of quiet: quick pickup when busy, well under 1 % of a core when
        idle. A short sleep, not Event.wait, which costs twice the CPU at this rate. While
        every subscriber is busy (its slots all taken: it claims by itself as its jobs end),
        every WATCH_SLOW too, in an Event.wait that one ends as soon as it has room (twice a
        sleep's CPU at that rate, still a fraction of polling every WATCH_FAST, whose polls
        would only wake a busy worker for nothing and take the GIL from its threads)."""
        conn = self._connect()
        try:
            last = conn.execute("PRAGMA data_version").fetchone()[0]
            last_change = time.monotonic()
            next_maintenance = 0.0
            while not self._closed.is_set():
                now = time.monotonic()
                quiet = now - last_change > WATCH_QUIET_AFTER
                if quiet and now >= next_maintenance:  # nobody is writing: a good moment
                    next_maintenance = now + MAINTAIN_EVERY
                    self._maintain_quietly()
                if quiet:
                    time.sleep(WATCH_SLOW)
                elif self._wakeups.wanted():
                    time.sleep(WATCH_FAST)
                else:
                    self._wakeups.rest(WATCH_SLOW)
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version != last:
                    last, last_change = version, time.monotonic()
                    self._wakeups.notify()
        finally:
            conn.close()

    def _maintain_quietly(self) -> None:
        try:
            self.maintain()
        except sqlite3.Error as exc:  # maintenance must never stop the wake-ups
            log.warning("WAL maintenance of %s failed: %s", self.path, exc)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._wakeups.join(timeout=2)
        with self._write_lock:
            self._write.close()
        with self._read_lock:
            self._read.close()


class SQLiteBackend(Store):
    """Durable jobs in one SQLite file, shared by any number of processes on one machine."""

    db: SQLiteDialect

    def __init__(
        self, path: Path | str, *, durability: Durability = "normal", auto_migrate: bool = True
    ) -> None:
        super().__init__(SQLiteDialect(path, durability=durability), auto_migrate=auto_migrate)

    @property
    def path(self) -> Path:
        return self.db.path

    def maintain(self) -> bool:
        return self.db.maintain()
