"""Deciding that a lease is dead by watching it, not by comparing clocks.

A rescuer may take a job back only after it has watched the job's lease not advance for a
full lease period, measured on its own monotonic clock, while it could itself write to the
database the whole time. A stored expiry compared with a wall clock is not evidence: a clock
step makes every lease look expired, and a stall that stops everyone writing (an outside
process holding the lock, a table lock) stops the heartbeats too.

Each observation happens inside a write transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: the
table lock an UPDATE takes, then the rows share-locked, skipping rows being written), so seeing
a row proves the row was writable then. An
observation that took long, or a long gap between two, breaks the watch: every window
starts again after it. Times are conservative both ways: a window starts when the first
observation of a value *ended* and is measured up to when the latest one *began*.

The worker's side of the bargain (worker/lease_guard.py): stop a job before a full lease
has passed since the start of its last successful renewal. Its renewal committed before any
rescuer could observe the new value, so the rescuer's window starts later than the worker's
deadline.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MIN_LEASE = 1.0  # seconds; below, a GIL switch or a page fault is a real share of the lease
SHORT_LEASE = 5.0  # below this a lease_timeout gets a warning
STOP_AT = 0.8  # of a lease since its last renewal began: the worker stops the job
HARD_STOP_AT = 0.9  # ... and, where it owns its process, exits if the job still runs


@dataclass(frozen=True, slots=True)
class ObservedLease:
    """A running job's lease as one observation saw it; `beat` changes at every renewal."""

    job_id: int
    token: int
    beat: float


@dataclass(slots=True)
class _Window:
    beat: float
    since: float  # end of the first observation that saw this token and beat
    last_seen: float  # end of the latest observation that saw them


class LeaseWatch:
    """Keeps the windows of one rescuer; `observe` returns the leases declared dead."""

    def __init__(self, lease: float, max_gap: float | None = None) -> None:
        self.lease = lease
        # Rounds come every lease/4; a round or a gap longer than lease/2 means this rescuer
        # could not write for a while, so it saw nothing in between.
        self.max_gap = lease / 2 if max_gap is None else max_gap
        self._windows: dict[tuple[int, int], _Window] = {}
        self._last_end: float | None = None

    def observe(
        self, leases: Iterable[ObservedLease], began: float, ended: float
    ) -> list[ObservedLease]:
        """Record one observation made between monotonic times `began` and `ended`."""
        continuous = (
            self._last_end is not None
            and ended - began <= self.max_gap
            and began - self._last_end <= self.max_gap
        )
        self._last_end = ended
        windows: dict[tuple[int, int], _Window] = {}
        dead: list[ObservedLease] = []
        for seen in leases:
            key = (seen.job_id, seen.token)
            window = self._windows.get(key)
            if continuous and window is not None and window.beat == seen.beat:
                window.last_seen = ended
                if began - window.since >= self.lease:
                    dead.append(seen)
            else:
                window = _Window(seen.beat, ended, ended)
            windows[key] = window
        # A lease not seen this round (finished, taken, or its row locked) starts over.
        self._windows = windows
        return dead

    def forget(self, leases: Iterable[ObservedLease]) -> None:
        """Drop leases that were rescued (or found alive after all)."""
        for seen in leases:
            self._windows.pop((seen.job_id, seen.token), None)

    def watching(self) -> int:
        return len(self._windows)
