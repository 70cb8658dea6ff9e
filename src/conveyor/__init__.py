"""conveyor: durable background jobs for Python. SQLite by default; no broker to run."""

from .app import Conveyor
from .backends.base import NewJob
from .context import JobContext, current_job
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
    StorageFull,
)
from .job import Job, JobError, JobState, Progress
from .task import Task, TaskCall

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "Conveyor",
    "ConveyorError",
    "ConveyorWarning",
    "CorruptJob",
    "DatabaseUnavailable",
    "InvalidInput",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobError",
    "JobFailed",
    "JobNotFound",
    "JobState",
    "NewJob",
    "NoCurrentJob",
    "PayloadTooLarge",
    "Progress",
    "SchemaMismatch",
    "StorageFull",
    "Task",
    "TaskCall",
    "__version__",
    "current_job",
]
