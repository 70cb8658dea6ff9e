"""When a periodic job's slots fall, and which of them run after an outage. Pure: no database,
no clock of its own (times are given, as epoch seconds).

Every scheduler computes the same slots for a schedule, so a slot can be claimed under a unique
(schedule, slot) constraint and fire once whatever the number of schedulers:
- `cron` slots come from the expression in the schedule's timezone (cronsim). On a
  spring-forward day a slot in the skipped hour runs once, at the first valid time after it
  (02:30 -> 03:00); on an autumn day a daily slot in the repeated hour runs once, at its first
  occurrence; a sub-hourly expression runs in both repeated hours (they are different instants).
- `every` slots are the multiples of the interval since the epoch (UTC), whoever computes them.

Every policy runs the current slot (the latest one, if within SKIP_GRACE of its time). After
an outage, `catch_up` decides which missed slots (the earlier ones, and a current slot that is
no longer on time) run too: "skip" none, "once" one run standing for all of them (the latest),
"all" each of them, oldest first (the latest MAX_CATCH_UP). A slot later than `max_lateness`
seconds never runs, whatever the policy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from .errors import InvalidInput

CatchUp = Literal["skip", "once", "all"]
CATCH_UP: tuple[CatchUp, ...] = ("skip", "once", "all")
# How late a slot may still run under catch_up="skip": a scheduler's ordinary delay, not an
# outage.
SKIP_GRACE = 60.0
# At most this many missed slots run after an outage with catch_up="all" (a schedule every
# second, stopped for a day, would otherwise flood the queue): the latest ones.
MAX_CATCH_UP = 1000

ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True, slots=True)
class Schedule:
    """A named schedule for a task: `cron` (5 fields or an @alias, in `tz`) or `every`
    (seconds, >= 1). Checked when made, so a bad one fails at declaration, never at 02:00."""

    name: str
    task: str
    cron: str | None = None
    every: float | None = None
    tz: str = "UTC"
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    catch_up: CatchUp = "skip"
    max_lateness: float | None = None

    def __post_init__(self) -> None:
        where = f"schedule {self.name!r}"
        if (self.cron is None) == (self.every is None):
            raise InvalidInput(f"{where}: give cron=... or every=..., exactly one of them")
        if self.cron is not None:
            if not isinstance(self.cron, str) or not self.cron.strip():
                raise InvalidInput(f"{where}: cron must be a cron expression such as "
                                   f"'0 2 * * *', got {self.cron!r}")
            try:
                CronSim(self.expression, datetime(2000, 1, 1, tzinfo=UTC))
            except CronSimError as exc:
                raise InvalidInput(f"{where}: invalid cron expression {self.cron!r}: {exc}; "
                                   "write 5 fields (minute hour day month weekday), e.g. "
                                   "'0 2 * * *', or an alias such as '@daily'") from None
        if self.every is not None and (
                isinstance(self.every, bool) or not isinstance(self.every, int | float)
                or not math.isfinite(self.every) or self.every < 1):
            raise InvalidInput(f"{where}: every must be a number of seconds >= 1 (or a "
                               f"timedelta), got {self.every!r}")
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise InvalidInput(f"{where}: unknown timezone {self.tz!r}; use an IANA name "
                               "such as 'Europe/Berlin' or 'UTC'") from None
        if self.catch_up not in CATCH_UP:
            raise InvalidInput(f"{where}: catch_up must be one of {', '.join(CATCH_UP)}, "
                               f"got {self.catch_up!r}")
        if self.max_lateness is not None and (
                isinstance(self.max_lateness, bool)
                or not isinstance(self.max_lateness, int | float)
                or not self.max_lateness >= 0):
            raise InvalidInput(f"{where}: max_lateness must be a number of seconds >= 0 or "
                               f"None, got {self.max_lateness!r}")

    @property
    def expression(self) -> str:
        """The cron expression with an @alias spelt out (`every` schedules have none)."""
        if self.cron is None:
            return ""
        text = " ".join(self.cron.split())
        return ALIASES.get(text.lower(), text)

    @property
    def spec(self) -> str:
        """The timing as written: the cron expression, or "every 6h"."""
        return self.cron if self.cron is not None else f"every {_seconds_text(self.every)}"

    def describe(self) -> str:
        """The timing in plain English: "At 02:00 every day (Europe/Berlin)", "Every 6 hours"."""
        if self.every is not None:
            return f"Every {_seconds_text(self.every, long=True)}"
        text = CronSim(self.expression, datetime(2000, 1, 1, tzinfo=UTC)).explain()
        return text if self.tz == "UTC" else f"{text} ({self.tz})"

    def slots_after(self, after: float) -> Iterator[float]:
        """The schedule's slots strictly after `after`, in order (endless)."""
        if self.every is not None:
            step = float(self.every)
            slot = (math.floor(after / step) + 1) * step
            while True:
                yield slot
                slot += step
        start = datetime.fromtimestamp(after, ZoneInfo(self.tz))
        for when in CronSim(self.expression, start):
            slot = when.timestamp()
            if slot > after:  # cronsim starts at the next whole minute
                yield slot

    def next_slot(self, after: float) -> float:
        return next(self.slots_after(after))


_UNITS = ((86400.0, "d", "day"), (3600.0, "h", "hour"), (60.0, "m", "minute"),
          (1.0, "s", "second"))


def _seconds_text(seconds: float | None, *, long: bool = False) -> str:
    """6h, 90s, 1.5s; long: "6 hours", "second", "90 seconds"."""
    value = float(seconds or 0)
    for size, short, word in _UNITS:
        if value >= size and (value / size).is_integer():
            count = int(value / size)
            if not long:
                return f"{count}{short}"
            return word if count == 1 else f"{count} {word}s"
    return f"{value:g} seconds" if long else f"{value:g}s"


def due_slots(schedule: Schedule, last: float, now: float) -> list[float]:
    """The slots to run now: those after `last` (the latest slot taken, or when the schedule
    started) and not after `now`, as the schedule's catch-up policy and max_lateness allow."""
    missed: list[float] = []
    for slot in schedule.slots_after(last):
        if slot > now:
            break
        missed.append(slot)
        if len(missed) > MAX_CATCH_UP:
            del missed[0]
    if schedule.max_lateness is not None:
        missed = [slot for slot in missed if now - slot <= schedule.max_lateness]
    if not missed:
        return []
    # The current slot is the latest, if on time (within a scheduler's ordinary delay): every
    # policy runs it. The others were missed: an outage, or a stall longer than an interval.
    current = missed[-1] if now - missed[-1] <= SKIP_GRACE else None
    late = missed[:-1] if current is not None else missed
    on_time = [] if current is None else [current]
    if schedule.catch_up == "all":
        return late + on_time
    if schedule.catch_up == "once" and late:
        return [late[-1], *on_time]  # one run stands for every missed slot
    return on_time
