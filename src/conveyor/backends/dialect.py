"""What a database must offer the store: connect, run a named statement, batch, notify and
listen, and a clock. Everything else (the verbs, their transactions, what an outcome writes)
is the store's, written once.

Conventions every dialect keeps:
- statements are named files in sql/<dialect>/, with `:name` placeholders; `:now` is the
  database's clock (SQLite: this process's clock, read once per transaction);
- a list parameter is a list of scalars (SQLite gets it as a JSON array, PostgreSQL as an
  array);
- `batch(name, columns)` runs a statement for many rows, given as parallel lists (one per
  parameter): SQLite runs it once per row (a prepared statement in this process costs less
  than decoding an array) or, for an `INSERT ... VALUES {rows}`, once per 500 rows;
  PostgreSQL once for the whole batch, each parameter an array;
- a clash with a unique constraint inside `session.guarded()` raises `KeyClash` and undoes
  only that statement.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ..records import Location
from .wakeups import Subscription

Params = Mapping[str, Any]
Columns = Mapping[str, Sequence[Any]]  # a batch: one list of values per parameter


class Row(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


class KeyClash(Exception):
    """A statement inside `Session.guarded()` broke a unique constraint."""


class Result(Protocol):
    """What a statement returned. On a pipelined session, read it after the transaction."""

    def all(self) -> list[Row]: ...

    def one(self) -> Row | None: ...

    @property
    def count(self) -> int:
        """Rows changed (or returned by RETURNING)."""
        ...


class Session(Protocol):
    """One transaction's statements."""

    def run(self, name: str, params: Params | None = None) -> Result: ...

    def batch(self, name: str, columns: Columns) -> Result: ...

    def guarded(self) -> AbstractContextManager[None]:
        """A unique-constraint clash inside raises KeyClash and undoes only its statement."""
        ...

    def script(self, text: str) -> None:
        """Run a migration script (several statements) inside this transaction."""
        ...

    def notify(self, queue: str = "") -> None:
        """Say, once this transaction commits, that new work may be waiting (in `queue`)."""
        ...


class Dialect(Protocol):
    name: str  # the folder of its SQL files
    log: logging.Logger  # where what happens to this database is told
    # Whether a process may bring an older schema up to date on its own (an embedded SQLite
    # file: yes; a server other hosts share, perhaps with older code: no, an operator does).
    upgrades_on_open: bool
    # Every write transaction holds the database's one write lock (SQLite): what a write
    # transaction reads cannot change under it.
    serial_writes: bool
    # Jobs a worker's auto prefetch holds at most, which bounds its rounds. SQLite: big rounds,
    # each taking the one write lock once. PostgreSQL: smaller, since workers claiming side by
    # side skip each other's locked rows and each claim scans past what the last ones left
    # dead.
    round_size: int

    @property
    def location(self) -> Location: ...

    def transaction(
        self, *, worker: bool = False, pipeline: bool = False, renewal: bool = False
    ) -> AbstractContextManager[Session]:
        """A write transaction. `worker`: on the workers' own connections (never queued
        behind callers' enqueues); `pipeline`: statements sent without waiting for each
        reply (read results after the block); `renewal`: it renews leases, so
        `renewal_blocked()` may ask whether it waits for a table lock."""
        ...

    def statement(self, name: str, params: Params, *, notify: str | None = None
                  ) -> list[Row]:
        """One statement in a transaction of its own (PostgreSQL: one round trip), its
        rows read; `notify`: the queue its commit wakes (a dialect whose SQL cannot)."""
        ...

    def read(self, name: str, params: Params | None = None, *,
             worker: bool = False) -> list[Row]:
        """A read outside any write transaction."""
        ...

    def caller_session(self, connection: Any) -> AbstractContextManager[Session]:
        """Statements inside the caller's own open transaction on `connection` (checked to
        be this database, in a transaction); never commits."""
        ...

    def renewal_blocked(self) -> bool: ...

    def maintain(self) -> bool:
        """Keep the write-ahead log small, never waiting for a lock (Store.shrink_log)."""
        ...

    def subscribe(self, callback: Callable[[], None]) -> Subscription: ...

    def close(self) -> None: ...
