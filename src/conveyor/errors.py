"""Exceptions raised by conveyor. Every one says what went wrong and how to fix it."""

from __future__ import annotations


class ConveyorError(Exception):
    """Base class of every error conveyor raises on purpose."""


class ConveyorWarning(UserWarning):
    """conveyor works, but something about the set-up will hurt."""


class InvalidInput(ConveyorError, ValueError):
    """An argument given to conveyor was refused; nothing was stored."""


class PayloadTooLarge(InvalidInput):
    """Arguments (at enqueue) or a result (in the worker) encode to more JSON than the app's
    `max_payload_bytes` allows."""


class CorruptJob(ConveyorError, ValueError):
    """A stored job row holds a value conveyor cannot decode (edited by hand, or written by a
    bug). Raised only when the damaged field is read; the rest of the row stays readable."""


class ConfigurationError(ConveyorError):
    """conveyor was set up wrongly (bad URL, unknown option, unreachable app)."""


class SchemaMismatch(ConfigurationError):
    """The database schema is newer or older than this version of conveyor understands."""


class DatabaseUnavailable(ConveyorError):
    """The database cannot be used right now: the server is down or unreachable, the disk is
    full, an I/O error, a lock held too long. Nothing was stored by the call that raised it,
    with one exception no client of a server can rule out: a PostgreSQL server that commits
    and then loses the connection before its reply arrives (a restart, a cut link). The same
    call can succeed once the cause is gone (workers keep retrying by themselves); an enqueue
    retried after such a loss may store the job twice, unless it has a unique key."""


class StorageFull(DatabaseUnavailable):
    """The disk (or the database server's disk) is full; free space and try again."""


class JobNotFound(ConveyorError, LookupError):
    """No job with that id exists (it may have been pruned)."""


class NoCurrentJob(ConveyorError, RuntimeError):
    """`current_job()` was called outside a running job."""


class JobCancelled(ConveyorError):
    """The job was cancelled. Raise it inside a task to stop cooperatively."""

    def __init__(self, message: str = "job was cancelled", *, job_id: int | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class SoftTimeLimitExceeded(ConveyorError):
    """Raised inside a task that ran past its soft_timeout: catch it to clean up (a result
    returned before the hard timeout is kept); left uncaught, the attempt timed out."""

    def __init__(self, message: str = "the task ran past its soft_timeout") -> None:
        super().__init__(message)


class TimeLimitExceeded(ConveyorError):
    """Raised inside a thread-pool task at its hard timeout, to stop it if it runs Python
    code; the attempt has already failed as timed out, whatever the task does then."""

    def __init__(self, message: str = "the task ran past its timeout") -> None:
        super().__init__(message)


class JobFailed(ConveyorError):
    """The job ended `failed`; carries the remote exception's type, message and traceback."""

    def __init__(
        self, job_id: int, error_type: str, message: str, traceback: str | None = None
    ) -> None:
        super().__init__(f"job {job_id} failed: {error_type}: {message}")
        self.job_id = job_id
        self.error_type = error_type
        self.message = message
        self.traceback = traceback
