"""conveyor: durable background jobs for Python. SQLite by default; no broker to run.

This package's __init__ is the one place that sees every layer: it wires the runtime
(`conveyor.worker`) into the app layer, which never imports it (see DESIGN.md, "Layers").

Each name below is imported from its module when first used (PEP 562): `import conveyor`
costs nearly nothing, so `conveyor worker` can start its process pool's children before it
imports the rest, and a process that needs only part of conveyor imports only that part.
"""

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .runners import register_worker_factory

if TYPE_CHECKING:
    from .app import Conveyor
    from .backends.base import JobLink, NewJob
    from .canvas import Chain, Chord, Group, Signature, chain, chord, group
    from .context import JobContext, current_job
    from .control import Retry, Snooze
    from .errors import (
        ConfigurationError,
        ConveyorError,
        ConveyorWarning,
        CorruptJob,
        DatabaseUnavailable,
        InvalidInput,
        JobCancelled,
        JobFailed,
        JobNotFound,
        NoCurrentJob,
        PayloadTooLarge,
        SchemaMismatch,
        SoftTimeLimitExceeded,
        StorageFull,
        TimeLimitExceeded,
    )
    from .job import Job, JobError, JobState, Progress
    from .schedule import Schedule
    from .task import Task, TaskCall
    from .worker import Worker
    from .workflow import Workflow

# Where each name lives (relative to this package).
_MODULES = {
    "Conveyor": ".app",
    "JobLink": ".backends.base",
    "NewJob": ".backends.base",
    **dict.fromkeys(["Chain", "Chord", "Group", "Signature", "chain", "chord", "group"],
                    ".canvas"),
    "JobContext": ".context",
    "current_job": ".context",
    "Retry": ".control",
    "Snooze": ".control",
    **dict.fromkeys(["ConfigurationError", "ConveyorError", "ConveyorWarning", "CorruptJob",
                     "DatabaseUnavailable", "InvalidInput", "JobCancelled", "JobFailed",
                     "JobNotFound", "NoCurrentJob", "PayloadTooLarge", "SchemaMismatch",
                     "SoftTimeLimitExceeded", "StorageFull", "TimeLimitExceeded"], ".errors"),
    **dict.fromkeys(["Job", "JobError", "JobState", "Progress"], ".job"),
    "Schedule": ".schedule",
    "Task": ".task",
    "TaskCall": ".task",
    "Worker": ".worker",
    "Workflow": ".workflow",
}


def _new_worker(
    app: "Conveyor",
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
) -> "Worker":
    from .worker import Worker

    return Worker(app, queues=queues, concurrency=concurrency, pool=pool, burst=burst,
                  shutdown_timeout=shutdown_timeout, name=name, burst_horizon=burst_horizon,
                  scheduler=scheduler, max_tasks_per_child=max_tasks_per_child,
                  max_memory_per_child=max_memory_per_child, prefetch=prefetch)


register_worker_factory(_new_worker)


if not TYPE_CHECKING:  # (so a type checker still refuses a misspelled name)
    def __getattr__(name: str) -> Any:
        """`conveyor.NAME`, imported from its module when first asked for."""
        module = _MODULES.get(name)
        if module is None:
            if not name.startswith("_"):  # a submodule, as `conveyor.errors.JobFailed`
                try:
                    return importlib.import_module(f"{__name__}.{name}")
                except ModuleNotFoundError as exc:
                    if exc.name != f"{__name__}.{name}":  # one it imports is missing
                        raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value  # asked once
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "Chain",
    "Chord",
    "ConfigurationError",
    "Conveyor",
    "ConveyorError",
    "ConveyorWarning",
    "CorruptJob",
    "DatabaseUnavailable",
    "Group",
    "InvalidInput",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobError",
    "JobFailed",
    "JobLink",
    "JobNotFound",
    "JobState",
    "NewJob",
    "NoCurrentJob",
    "PayloadTooLarge",
    "Progress",
    "Retry",
    "Schedule",
    "SchemaMismatch",
    "Signature",
    "Snooze",
    "SoftTimeLimitExceeded",
    "StorageFull",
    "Task",
    "TaskCall",
    "TimeLimitExceeded",
    "Worker",
    "Workflow",
    "__version__",
    "chain",
    "chord",
    "current_job",
    "group",
]
