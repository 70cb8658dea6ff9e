"""Rate and concurrency limits, the pure rules: what a limit means, and how many jobs of a
limited task may start now. The database will hold each limit's state and apply these rules in
the claim transaction (never a check before it); this module is their specification, and the
oracle the storage tests compare against.

A rate is kept by the generic cell rate algorithm (GCRA): one number per (limit, key), the
theoretical arrival time `tat`. "10/s" lets one job start every 0.1 s; `burst` lets that many
start at once after a quiet spell. So any window of `per` seconds holds at most
count + burst - 1 starts, and a long busy run averages count per `per`. The next start's time
is known exactly (`Admission.next_at`), so a worker waits for it instead of polling.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInput

UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
         "h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}
MAX_COUNT = 1_000_000
MAX_CONCURRENCY = 100_000
MAX_KEY_LENGTH = 200
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")
_HINT = "write it as N/s, N/m, N/h or N/d (e.g. '10/s', '100/m', '5/10s')"
# Jobs start exactly on their slot in theory; float sums drift by far less than this.
_EPSILON = 1e-9


def _where(task: str | None) -> str:
    return f"task {task!r}: " if task is not None else ""


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `count` starts per `per` seconds, evenly spaced; `burst` at once after quiet."""

    count: int
    per: float
    burst: int = 1

    @property
    def interval(self) -> float:
        """Seconds between two starts at the steady rate."""
        return self.per / self.count

    @property
    def tolerance(self) -> float:
        """How far ahead of the steady rate a burst may run (GCRA's tau)."""
        return (self.burst - 1) * self.interval

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "m", 3600.0: "h", 86400.0: "d"}.get(self.per)
        return f"{self.count}/{unit}" if unit else f"{self.count}/{self.per:g}s"


def parse_rate(text: Any, *, task: str | None = None, burst: int = 1) -> Rate:
    """A rate limit as written: "10/s", "100/m", "1000/h", "5/10s"; refused with a message
    that names the task and says how to write it."""
    where = _where(task)
    if not isinstance(text, str):
        raise InvalidInput(f"{where}rate_limit must be a str such as '10/s', got {text!r}")
    match = _RATE.match(text.lower())
    if match is None or match.group(3) not in UNITS:
        raise InvalidInput(f"{where}rate_limit {text!r} is not a rate; {_HINT}")
    count = int(match.group(1))
    per = float(match.group(2) or 1) * UNITS[match.group(3)]
    if count < 1:
        raise InvalidInput(f"{where}rate_limit {text!r} would never let a job start; to stop "
                           "a task's jobs for a while, pause its queue (conveyor queues pause)")
    if count > MAX_COUNT or not per > 0 or not math.isfinite(per):
        raise InvalidInput(f"{where}rate_limit {text!r} is out of range: at most {MAX_COUNT} "
                           "starts, over a period longer than 0 s")
    if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= count:
        raise InvalidInput(f"{where}rate_limit burst must be an int from 1 to {count}, got "
                           f"{burst!r}")
    return Rate(count, per, burst)


@dataclass(frozen=True, slots=True)
class Admission:
    """What `admit` decided: how many jobs start now, the state to store, and when the next
    job may start (seconds since the epoch, by the same clock as `now`)."""

    started: int
    tat: float
    next_at: float


def admit(rate: Rate, tat: float, now: float, wanted: int) -> Admission:
    """GCRA for up to `wanted` jobs asking at `now`, the limit's state being `tat` (0.0 for a
    limit never used). Job k (from 0) may start when max(tat, now) + k * interval - now is
    within the tolerance."""
    interval, tolerance = rate.interval, rate.tolerance
    start = max(tat, now)
    ahead = start - now
    room = 0
    if ahead <= tolerance + _EPSILON:
        room = math.floor((tolerance - ahead) / interval + _EPSILON) + 1
    started = max(0, min(wanted, room))
    new_tat = start + started * interval if started else tat
    next_at = max(now, max(new_tat, now) - tolerance)
    return Admission(started, new_tat, next_at)


def concurrency_limit(value: Any, *, where: str) -> int:
    """A concurrency limit: an int of at least 1 (None is no limit, checked by the caller)."""
    if isinstance(value, bool) or not isinstance(value, int) or not (
            1 <= value <= MAX_CONCURRENCY):
        raise InvalidInput(f"{where}concurrency must be an int from 1 to {MAX_CONCURRENCY} "
                           f"(at most that many running at once), got {value!r}")
    return value


def limit_key(value: Any, *, task: str | None = None) -> str:
    """A limit key as a job stores it: a non-empty str of printable text, at most
    MAX_KEY_LENGTH characters (what `limit_key=` returned, or was given)."""
    where = _where(task)
    if not isinstance(value, str):
        raise InvalidInput(f"{where}limit_key must give a str (e.g. a tenant's id), got "
                           f"{type(value).__name__} {value!r}")
    if not value or len(value) > MAX_KEY_LENGTH or not value.isprintable():
        raise InvalidInput(f"{where}limit_key {value[:40]!r} must be 1 to {MAX_KEY_LENGTH} "
                           "printable characters")
    return value


@dataclass(frozen=True, slots=True)
class Waiting:
    """Jobs that wait under the same limits: one (queue, task, limit key), or the jobs without
    limits of their own in a queue with a concurrency limit (task and key None), with what
    its limits need to decide."""

    queue: str
    task: str | None
    key: str | None
    rate: Rate | None = None
    tat: float = 0.0
    concurrency: int | None = None
    running: int = 0


def room(group: Waiting, now: float, wanted: int) -> int:
    """How many of `group`'s jobs may start at `now`, of the `wanted`, by its own limits."""
    allowed = wanted
    if group.concurrency is not None:
        allowed = min(allowed, max(0, group.concurrency - group.running))
    if group.rate is not None and allowed > 0:
        allowed = admit(group.rate, group.tat, now, allowed).started
    return allowed


def allocate(groups: Sequence[Waiting], free: int, now: float,
             queue_room: Mapping[str, int]) -> list[int]:
    """How many jobs of each group start now, for `free` slots: one per group in turn, in the
    order given (the caller's rotation of keys), within each group's limits and its queue's
    room (a queue missing from `queue_room` has no concurrency limit). Round robin is what
    keeps a key with 10,000 waiting jobs from holding back one with 10."""
    rooms = [room(group, now, free) for group in groups]
    order = range(len(groups))
    left = dict(queue_room)
    grants = [0] * len(groups)
    granted = True
    while free > 0 and granted:
        granted = False
        for i in order:
            if free == 0:
                break
            queue = groups[i].queue
            if grants[i] >= rooms[i] or left.get(queue, 1) <= 0:
                continue
            grants[i] += 1
            free -= 1
            granted = True
            if queue in left:
                left[queue] -= 1
    return grants
