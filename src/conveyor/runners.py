"""The seam between the app and the runtime: what `Conveyor.worker()` returns, as the app
layer sees it, and the factory that builds it. The runtime sits above the app, so the app
never imports it; `import conveyor` registers `conveyor.Worker` here. A module of its own,
so that registering costs `import conveyor` nothing (the app itself is imported when used)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .app import Conveyor


class Runner(Protocol):
    """What `Conveyor.worker()` returns, as the app layer sees it: a `conveyor.Worker` (the
    runtime sits above the app, so the app names only what it promises)."""

    @property
    def name(self) -> str: ...

    @property
    def processed(self) -> int: ...  # jobs run to an outcome so far

    @property
    def started(self) -> threading.Event: ...

    @property
    def stopped(self) -> threading.Event: ...

    def run(self) -> None: ...

    def stop(self, *, now: bool = False) -> None: ...


class WorkerFactory(Protocol):
    """Builds the worker `Conveyor.worker()` returns; the runtime registers one."""

    def __call__(
        self,
        app: Conveyor,
        /,
        *,
        queues: Sequence[str] | None,
        concurrency: int | None,
        pool: str,
        burst: bool,
        shutdown_timeout: float,
        name: str | None,
        burst_horizon: float,
        scheduler: bool,
        max_tasks_per_child: int | None,
        max_memory_per_child: int | str | None,
        prefetch: int | str | None,
    ) -> Runner: ...


worker_factory: WorkerFactory | None = None


def register_worker_factory(factory: WorkerFactory) -> None:
    """Make `Conveyor.worker()` build its workers with `factory`.

    The app layer never imports the runtime (it sits above); `import conveyor` registers
    `conveyor.Worker` here. A test or an integration may register its own."""
    global worker_factory
    worker_factory = factory
