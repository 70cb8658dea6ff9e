"""The running job's context, reachable from task code through `current_job()`."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextvars import ContextVar, Token

from .errors import InvalidInput, NoCurrentJob
from .job import Progress
from .serializer import INT_MAX, lone_surrogate, short_repr

MAX_PROGRESS_MESSAGE = 1000  # characters; a longer message is cut

_current: ContextVar[JobContext | None] = ContextVar("conveyor_current_job", default=None)


class JobContext:
    """What a task can learn about, and tell about, the attempt it is running."""

    __slots__ = ("_cancel_seen", "_is_cancel_requested", "_report", "attempt", "id", "max_attempts",
                 "queue", "task")

    def __init__(
        self,
        *,
        id: int,
        task: str,
        queue: str,
        attempt: int,
        max_attempts: int,
        is_cancel_requested: Callable[[], bool],
        report_progress: Callable[[Progress], None],
    ) -> None:
        self.id = id
        self.task = task
        self.queue = queue
        self.attempt = attempt
        self.max_attempts = max_attempts
        self._is_cancel_requested = is_cancel_requested
        self._report = report_progress
        self._cancel_seen = False

    def __repr__(self) -> str:
        return f"<JobContext job={self.id} task={self.task} attempt={self.attempt}>"

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked to cancel this job. Stop soon: the job then ends `cancelled`."""
        requested = self._is_cancel_requested()
        if requested:
            self._cancel_seen = True
        return requested

    @property
    def cancel_seen(self) -> bool:
        return self._cancel_seen

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report progress; stored within a fraction of a second, latest value wins.

        Raises InvalidInput (in the task: a bug in the task) for a `done` or `total` that is not
        a finite number >= 0, or a `message` that is not a str or holds a lone surrogate."""
        _amount("done", done)
        if total is not None:
            _amount("total", total)
        if message is not None:
            if not isinstance(message, str):
                raise InvalidInput(
                    f"progress message must be a str or None, got {short_repr(message)}"
                )
            if len(message) > MAX_PROGRESS_MESSAGE:
                message = message[:MAX_PROGRESS_MESSAGE]
            at = lone_surrogate(message)
            if at is not None:
                raise InvalidInput(
                    f"progress message has a lone surrogate {message[at]!r} at index {at} "
                    "(typically from a file name that is not UTF-8), which no database stores "
                    "as text; clean it first, e.g. "
                    "message.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace')"
                )
        self._report(Progress(done, total, message))


def _amount(name: str, value: object) -> None:
    if isinstance(value, float):
        ok = math.isfinite(value) and value >= 0
    else:
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT_MAX
    if not ok:
        raise InvalidInput(
            f"progress {name} must be a finite number >= 0 (an int at most 2**63-1), got "
            f"{short_repr(value)}"
        )


def current_job() -> JobContext:
    """The context of the job running in this thread or task; raises NoCurrentJob outside one."""
    context = _current.get()
    if context is None:
        raise NoCurrentJob(
            "current_job() was called outside a running job (calling a task function "
            "directly runs it inline, without a job)"
        )
    return context


def activate(context: JobContext) -> Token[JobContext | None]:
    return _current.set(context)


def deactivate(token: Token[JobContext | None]) -> None:
    _current.reset(token)
