"""Huey tasks for the comparison; the consumer loads `bench_huey.huey`.

SqliteHuey storage, WAL, with synchronous=NORMAL to match conveyor's default durability
(huey's own default leaves SQLite's FULL, an fsync per commit). The queue name and file come
from $BENCH_HUEY_QUEUE and $BENCH_HUEY_DB.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from huey import Huey  # type: ignore[import-untyped]
from huey.signals import SIGNAL_COMPLETE  # type: ignore[import-untyped]
from huey.storage import SqliteStorage  # type: ignore[import-untyped]
from marks import mark_done, mark_ready, mark_stamp


class NormalSyncSqliteStorage(SqliteStorage):  # type: ignore[misc]
    def _create_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = super()._create_connection()
        conn.execute("pragma synchronous = NORMAL")
        return conn


class BenchHuey(Huey):  # type: ignore[misc]
    storage_class = NormalSyncSqliteStorage


def make_huey(queue: str, filename: str) -> tuple[Any, Any, Any]:
    """A huey instance on `filename` using queue `queue`, and its (noop, stamp) tasks."""
    huey = BenchHuey(queue, filename=filename)

    @huey.task(name="bench.noop")  # type: ignore[untyped-decorator]
    def noop() -> None:
        return None

    @huey.task(name="bench.stamp")  # type: ignore[untyped-decorator]
    def stamp(tag: int) -> None:
        mark_stamp(tag)

    @huey.signal(SIGNAL_COMPLETE)  # type: ignore[untyped-decorator]
    def count_done(signal: str, task: Any, *args: Any, **kwargs: Any) -> None:
        if task.name == "bench.noop":
            mark_done()

    @huey.on_startup()  # type: ignore[untyped-decorator]
    def ready() -> None:
        mark_ready("huey-worker")

    return huey, noop, stamp


_consumer_huey: Any = None


def __getattr__(name: str) -> Any:
    """`bench_huey.huey`, made on first use so importing this module creates no file."""
    global _consumer_huey
    if name != "huey":
        raise AttributeError(name)
    if _consumer_huey is None:
        _consumer_huey = make_huey(os.environ["BENCH_HUEY_QUEUE"], os.environ["BENCH_HUEY_DB"])[0]
    return _consumer_huey
