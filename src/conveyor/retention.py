"""How long finished jobs are kept, per final state: the app's keep_succeeded, keep_failed and
keep_cancelled, checked once, and the ages a prune is asked for."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from .errors import ConfigurationError, InvalidInput
from .job import TERMINAL_STATES, JobState

DAY = 86400.0
# Rows deleted per transaction: small, so a worker's claim never waits long behind a prune.
PRUNE_BATCH = 500
# Longest pause between two batches of one prune (each pause lasts as long as its batch did).
PRUNE_PAUSE_MAX = 0.05
# Schedule slot rows are kept this long (the newest of each schedule always).
SLOT_KEEP = DAY

Keep = float | int | timedelta | None
# Ages asked of a prune: seconds or a timedelta per final state (a JobState or its name).
PruneAges = Mapping[JobState, float | timedelta] | Mapping[str, float | timedelta]
PRUNABLE = ", ".join(state.value for state in sorted(TERMINAL_STATES))


def _seconds(value: object, name: str, error: type[Exception], *, zero: bool) -> float:
    """`value` as seconds: a number or a timedelta, finite, > 0 (>= 0 with `zero`)."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise error(f"{name} must be seconds (a number) or a timedelta, or None to keep "
                    f"forever; got {value!r}")
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not zero):
        least = "0 or more" if zero else "more than 0"
        raise error(f"{name} must be {least} seconds, got {value!r}; use None to keep "
                    "forever")
    return seconds


@dataclass(frozen=True, slots=True)
class Retention:
    """Seconds a finished job is kept after it ended, per state; None keeps it forever."""

    succeeded: float | None = 7 * DAY
    failed: float | None = 30 * DAY
    cancelled: float | None = 7 * DAY

    @classmethod
    def checked(cls, *, keep_succeeded: Keep, keep_failed: Keep,
                keep_cancelled: Keep) -> Retention:
        """From the app's arguments; a bad one raises ConfigurationError naming it."""
        def keep(value: Keep, name: str) -> float | None:
            return None if value is None else _seconds(value, name, ConfigurationError,
                                                       zero=False)

        return cls(keep(keep_succeeded, "keep_succeeded"), keep(keep_failed, "keep_failed"),
                   keep(keep_cancelled, "keep_cancelled"))

    def ages(self) -> dict[JobState, float]:
        """The states that are pruned, each with its age; a state kept forever is absent."""
        ages = {JobState.SUCCEEDED: self.succeeded, JobState.FAILED: self.failed,
                JobState.CANCELLED: self.cancelled}
        return {state: age for state, age in ages.items() if age is not None}


def prune_ages(ages: PruneAges) -> dict[JobState, float]:
    """Ages asked of a prune by hand, checked: final states only, 0 or more seconds each (0:
    every finished job of that state). Raises InvalidInput naming the problem."""
    checked: dict[JobState, float] = {}
    for key, value in ages.items():
        try:
            state = JobState(key)
        except ValueError:
            raise InvalidInput(f"unknown state {key!r}; prune one of {PRUNABLE}") from None
        if state not in TERMINAL_STATES:
            raise InvalidInput(f"{state.value} jobs are never pruned, only finished ones "
                               f"({PRUNABLE}); cancel or delete a waiting job instead")
        checked[state] = _seconds(value, f"the age of {state.value} jobs", InvalidInput,
                                  zero=True)
    return checked
