"""conveyor: durable background jobs for Python. SQLite by default; no broker to run.

This package's __init__ is the one place that sees every layer: it wires the runtime
(`conveyor.worker`) into the app layer, which never imports it (see DESIGN.md, "Layers").
The worker is imported on first use, so `import conveyor` stays light.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .app import Conveyor, register_worker_factory
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
from .workflow import Workflow

if TYPE_CHECKING:
    from .worker import Worker


def _new_worker(
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
) -> "Worker":
    from .worker import Worker

    return Worker(app, queues=queues, concurrency=concurrency, pool=pool, burst=burst,
                  shutdown_timeout=shutdown_timeout, name=name, burst_horizon=burst_horizon,
                  scheduler=scheduler, max_tasks_per_child=max_tasks_per_child,
                  max_memory_per_child=max_memory_per_child, prefetch=prefetch)


register_worker_factory(_new_worker)


def __getattr__(name: str) -> Any:
    """`conveyor.Worker`, imported when first asked for."""
    if name == "Worker":
        from .worker import Worker

        return Worker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
