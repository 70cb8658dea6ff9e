"""Which database errors mean "the database cannot be used right now" (a full disk, an I/O
error, a lock held too long, a server that is down or unreachable) rather than a bug.

Both backends turn such errors into `DatabaseUnavailable` (`StorageFull` for a full disk) with
a message that says what to do; `is_unavailable` recognises those and the drivers' raw errors
alike, so the worker keeps retrying them instead of giving up (see worker/loops.py), without
importing a database driver itself."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from ..errors import DatabaseUnavailable, StorageFull

# SQLite's primary result codes (the low byte of an extended code) that pass by themselves.
_SQLITE_TRANSIENT = frozenset({
    sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOMEM,
})
# PostgreSQL SQLSTATEs of a server that is going away, starting up, full or overloaded.
_POSTGRES_TRANSIENT = frozenset({"57P01", "57P02", "57P03", "53000", "53100", "53200", "53300",
                                 "53400"})
_POSTGRES_DISK_FULL = "53100"


def _sqlite_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def sqlite_unavailable(exc: BaseException, path: Path | str) -> DatabaseUnavailable | None:
    """The DatabaseUnavailable that SQLite error `exc` on database `path` stands for, or None
    when `exc` is something else (a constraint, a bug)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return None
    code = _sqlite_code(exc)
    if code is None or code not in _SQLITE_TRANSIENT:
        return None
    if code == sqlite3.SQLITE_FULL:
        return StorageFull(f"the disk holding {path} is full; free space and try again "
                           f"(SQLite: {exc})")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return DatabaseUnavailable(f"the database {path} stayed locked by another connection "
                                   f"(SQLite: {exc}); try again once it is released")
    if code == sqlite3.SQLITE_IOERR:
        return DatabaseUnavailable(f"a disk I/O error on the database {path} (SQLite: {exc}); "
                                   "check the disk (is it full, removed or failing?)")
    return DatabaseUnavailable(f"the database {path} cannot be used right now (SQLite: {exc})")


def postgres_unavailable(exc: BaseException, where: str) -> DatabaseUnavailable | None:
    """The DatabaseUnavailable that psycopg error `exc` on the server at `where` (a URL
    without its password) stands for, or None when `exc` is something else."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(exc, psycopg.OperationalError):
        return None
    pool = sys.modules.get("psycopg_pool")
    if pool is not None and isinstance(exc, pool.PoolClosed):
        return None  # used after close(): a bug, not an outage
    state = getattr(exc, "sqlstate", None)
    if state is not None and not state.startswith("08") and state not in _POSTGRES_TRANSIENT:
        return None  # a deadlock, a serialization failure, a statement timeout...
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if state == _POSTGRES_DISK_FULL:
        return StorageFull(f"the disk of the PostgreSQL server at {where} is full; free "
                           f"space there and try again ({reason})")
    return DatabaseUnavailable(f"PostgreSQL at {where} is unavailable: {reason}")


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be used right now, so that trying the same
    thing again later can succeed."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    return (sqlite_unavailable(exc, "") is not None
            or postgres_unavailable(exc, "") is not None)
