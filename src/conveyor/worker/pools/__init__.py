"""Execution pools: where a claimed job's code runs. Each only runs jobs and reports their
start, progress and outcome; the worker does the bookkeeping.

- thread (the default): one thread per slot; `async def` jobs get an event loop each.
- process: one spawned process per slot, for CPU work, hard timeouts and killable jobs.
- asyncio: one event loop in one thread runs many `async def` jobs at once.

Each pool's module is imported when that pool is made (or its class asked for): a worker
needs one of them, a process pool's child none but the process pool's, and `conveyor worker`
none until it has read its options.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from ... import validation
from ...errors import ConfigurationError, InvalidInput
from ..loader import find_import_path

if TYPE_CHECKING:
    from ...app import Conveyor
    from .asyncio import AsyncioPool
    from .base import OutcomeCallback, Pool, ProgressCallback, Recycling, StartCallback
    from .process import ProcessPool
    from .spawn import Launcher
    from .thread import ThreadPool

__all__ = ["POOLS", "AsyncioPool", "Pool", "ProcessPool", "Recycling", "ThreadPool",
           "check_recycling", "default_concurrency", "make_pool"]

POOLS: tuple[str, ...] = ("thread", "process", "asyncio")

# Slots by default. thread: a claim takes as many jobs as there are free slots, so more
# threads mean fewer transactions per job (16: about 1.5x the jobs/s of 8), and idle threads
# cost nothing. process: one per core, for CPU work. asyncio: a waiting coroutine costs a few
# KB, so many I/O-bound jobs can overlap; 100 claims enough at once to keep the loop busy in
# one short transaction, without by default sending hundreds of requests at once to whatever
# the jobs call (raise it with -c, up to 1000).
_DEFAULT_CONCURRENCY = {"thread": 16, "asyncio": 100}


def default_concurrency(kind: str) -> int:
    """How many jobs a pool of this kind runs at once unless told otherwise."""
    _check_kind(kind)
    if kind == "process":
        return max(1, os.cpu_count() or 1)
    return _DEFAULT_CONCURRENCY[kind]


def check_recycling(kind: str, max_tasks_per_child: Any,
                    max_memory_per_child: Any) -> Recycling:
    """When a pool of `kind` replaces its processes, checked (ConfigurationError if not)."""
    from .base import Recycling

    if max_tasks_per_child is None and max_memory_per_child is None:
        return Recycling()
    if kind != "process":
        raise ConfigurationError(
            f"max_tasks_per_child and max_memory_per_child replace pool processes; the {kind} "
            "pool has none (use pool='process', --pool process)")
    if max_tasks_per_child is not None and (
            isinstance(max_tasks_per_child, bool) or not isinstance(max_tasks_per_child, int)
            or max_tasks_per_child < 1):
        raise ConfigurationError(f"max_tasks_per_child must be an int >= 1, got "
                                 f"{max_tasks_per_child!r}")
    memory = None
    if max_memory_per_child is not None:
        try:
            memory = validation.byte_size("max_memory_per_child", max_memory_per_child)
        except InvalidInput as exc:
            raise ConfigurationError(str(exc)) from None
        try:
            import resource  # noqa: F401  # how a pool process measures itself
        except ImportError:
            raise ConfigurationError("max_memory_per_child needs the resource module (not on "
                                     "Windows) to read a pool process's peak RSS") from None
    return Recycling(max_tasks_per_child, memory)


def make_pool(
    kind: str,
    *,
    app: Conveyor,
    concurrency: int,
    lease: float,
    on_outcome: OutcomeCallback,
    on_progress: ProgressCallback,
    on_start: StartCallback,
    recycling: Recycling | None = None,
    launcher: Launcher | None = None,
) -> Pool:
    """A pool of `kind` (one of POOLS) running `app`'s tasks, `concurrency` jobs at once.
    `launcher`: a process pool's processes launched ahead (by `conveyor worker`), if any."""
    _check_kind(kind)
    if kind == "process":
        app_path = find_import_path(app)
        if app_path is None:
            raise ConfigurationError(
                "the process pool needs to import your app in each process; run the worker "
                "with --app module:attr, or define the app at module level in an "
                "importable module"
            )
        from .base import Recycling
        from .process import ProcessPool

        recycling = recycling or Recycling()
        return ProcessPool(concurrency, app.tasks, app_path, app.url, on_outcome, on_progress,
                           lease, on_start=on_start, max_tasks_per_child=recycling.max_tasks,
                           max_memory_per_child=recycling.max_memory, launcher=launcher)
    if kind == "asyncio":
        from .asyncio import AsyncioPool

        return AsyncioPool(concurrency, app.tasks, on_outcome, on_progress,
                           max_result_bytes=app.max_payload_bytes, on_start=on_start)
    from .thread import ThreadPool

    return ThreadPool(concurrency, app.tasks, on_outcome, on_progress,
                      max_result_bytes=app.max_payload_bytes, on_start=on_start)


if not TYPE_CHECKING:  # (so a type checker still refuses a misspelled name)
    def __getattr__(name: str) -> Any:
        """The pool classes and the protocol, each imported when first asked for."""
        modules = {"AsyncioPool": "asyncio", "ProcessPool": "process", "ThreadPool": "thread",
                   "Pool": "base", "Recycling": "base", "OutcomeCallback": "base",
                   "ProgressCallback": "base", "StartCallback": "base"}
        if name in modules:
            module = importlib.import_module(f"{__name__}.{modules[name]}")
            return getattr(module, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _check_kind(kind: str) -> None:
    if kind not in POOLS:
        raise ConfigurationError(f"pool must be one of {', '.join(POOLS)}, got {kind!r}")
