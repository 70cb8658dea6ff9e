"""What a task raises to steer its own job: `conveyor.Retry` and `conveyor.Snooze`.

Pure: the exceptions only carry the delay asked for (checked when raised) and why; how the
job then ends is the outcome policy's (policy.decide), the same in every pool.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from .context import current_job
from .errors import InvalidInput, NoCurrentJob

# The longest delay a task may ask for: longer is a unit mistake (ms for s), not a plan.
MAX_CONTROL_DELAY = 10 * 365.25 * 86400.0


def _where() -> str:
    try:
        job = current_job()
    except NoCurrentJob:  # raised outside a job (a test, inline call): no job to name
        return ""
    return f" in task {job.task!r} (job {job.id})"


def control_delay(what: str, value: Any) -> float:
    """`value` as seconds: a finite number (or timedelta) from 0 to 10 years, else
    InvalidInput naming what asked for it and the task it was raised in."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if (isinstance(seconds, bool) or not isinstance(seconds, int | float)
            or not math.isfinite(seconds) or not 0 <= seconds <= MAX_CONTROL_DELAY):
        raise InvalidInput(
            f"{what}(delay={value!r}){_where()}: the delay must be a finite number of seconds "
            f"(or a timedelta) from 0 to {MAX_CONTROL_DELAY:.0f} (10 years)"
        )
    return float(seconds)


class Retry(Exception):
    """Raise in a task to retry its job: after `delay` seconds (a timedelta too), or after the
    task's backoff when no delay is given. The attempt counts: with no attempts left the job
    fails, saying so. `reason` or `exc` (the exception that made the task give up this
    attempt) is recorded as why."""

    def __init__(self, delay: float | timedelta | None = None, *, reason: str | None = None,
                 exc: BaseException | None = None) -> None:
        self.delay = None if delay is None else control_delay("Retry", delay)
        self.reason = reason
        self.exc = exc
        when = "after the task's backoff" if self.delay is None else f"in {self.delay:g} s"
        why = reason if reason is not None else (
            f"{type(exc).__name__}: {exc}" if exc is not None else None)
        super().__init__(f"retry {when}" + (f": {why}" if why else ""))
        if exc is not None:  # its traceback is recorded with the Retry's
            self.__cause__ = exc


class Snooze(Exception):
    """Raise in a task to run its job again in `delay` seconds (a timedelta too) without
    counting the attempt: max_attempts is not consumed. `reason` is recorded."""

    def __init__(self, delay: float | timedelta, *, reason: str | None = None) -> None:
        self.delay = control_delay("Snooze", delay)
        self.reason = reason
        super().__init__(f"snoozed for {self.delay:g} s" + (f": {reason}" if reason else ""))
