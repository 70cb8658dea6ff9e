"""Procrastinate tasks for the PostgreSQL comparison; each worker is
`procrastinate --app bench_procrastinate.app worker` (PsycopgConnector on $BENCH_PG_URL, a
benchmark database of its own).

The tasks are async functions, procrastinate's own fast path (a sync task would run in a
thread).
"""

from __future__ import annotations

import os
from typing import Any

from marks import mark_done, mark_stamp
from procrastinate import App, PsycopgConnector


def make_app(url: str) -> tuple[Any, Any, Any]:
    """A procrastinate app on `url` and its (noop, stamp) tasks."""
    app = App(connector=PsycopgConnector(conninfo=url))

    @app.task(name="bench.noop", queue="default")
    async def noop() -> None:
        mark_done()

    @app.task(name="bench.stamp", queue="default")
    async def stamp(tag: int) -> None:
        mark_stamp(tag)

    return app, noop, stamp


_worker_app: Any = None


def __getattr__(name: str) -> Any:
    """`bench_procrastinate.app`, made on first use (the worker's)."""
    global _worker_app
    if name != "app":
        raise AttributeError(name)
    if _worker_app is None:
        _worker_app = make_app(os.environ["BENCH_PG_URL"])[0]
    return _worker_app
