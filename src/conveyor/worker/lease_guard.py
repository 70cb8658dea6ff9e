"""The worker's side of the lease: stop a job before anyone else may take it.

A rescuer declares a lease dead only after watching it not advance for a full lease period
(lease_watch.py), and that watch starts after the renewal's commit, so after the renewal's
start. A worker that has not renewed a job's lease for STOP_AT of a lease since the start of
its last successful renewal stops the job itself: the process pool kills the job's process,
an `async def` job is cancelled, a thread is asked to stop (threads cannot be killed; a
worker that owns its process exits at HARD_STOP_AT instead, see HardDeadline).

Not renewing is no reason to stop while this process's writes wait for a lock another session
holds on the whole jobs table: no rescuer can write meanwhile either, and its watch starts
over after the stall. So the last moment seen blocked counts as a renewal of every lease.

The edge of that rule, on SQLite: "blocked" means some thread of this process is retrying
BEGIN IMMEDIATE, and SQLite's lock is taken by polling, not in turn. A rescuer in another
process that won the lock again and again while this process lost every try for a whole
lease could take a job this worker still runs. Both run the same retry loop, so that takes
sustained bad luck; capping this process's own wait below half a lease would close it, but
then an outside process holding the lock that long would make every worker stop its jobs.
"""

from __future__ import annotations

import faulthandler
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable

from ..lease_watch import HARD_STOP_AT, STOP_AT

log = logging.getLogger("conveyor.worker")

AT_RISK = 0.5  # of a lease without renewal: from here on, ask whether renewals are blocked
RE_ARM = 0.3  # of a lease: how close an armed hard deadline may come before it is moved


class LeaseGuard:
    """Tracks when each running job's lease was last renewed; reports the overdue ones."""

    def __init__(self, lease: float, renewal_blocked: Callable[[], bool]) -> None:
        self.lease = lease
        self._renewal_blocked = renewal_blocked
        self._renewed: dict[int, float] = {}  # job id -> monotonic start of its last renewal
        self._stopped: set[int] = set()
        self._blocked_seen = 0.0  # monotonic: the last moment renewals were seen blocked
        self._lock = threading.Lock()

    def claimed(self, job_ids: Iterable[int], began: float) -> None:
        """A claim that began at `began` (monotonic) took these leases: start tracking."""
        with self._lock:
            for job_id in job_ids:
                self._renewed[job_id] = began

    def renewed(self, job_ids: Iterable[int], began: float) -> None:
        """A heartbeat that began at `began` (monotonic) renewed these leases."""
        with self._lock:
            for job_id in job_ids:
                at = self._renewed.get(job_id)
                if at is not None and began > at:
                    self._renewed[job_id] = began

    def finished(self, job_id: int) -> None:
        with self._lock:
            self._renewed.pop(job_id, None)
            self._stopped.discard(job_id)

    def running(self) -> int:
        with self._lock:
            return len(self._renewed)

    def overdue(self) -> list[int]:
        """Jobs past STOP_AT without a renewal, each reported once."""
        now = time.monotonic()
        with self._lock:
            if not self._renewed:
                return []
            oldest = max(min(self._renewed.values()), self._blocked_seen)
        if now - oldest >= self.lease * AT_RISK and self._renewal_blocked():
            # Everyone's writes wait on the same lock: nobody can take these jobs now, and a
            # rescuer's watch starts over once the lock is free.
            self._blocked_seen = now
        limit = now - self.lease * STOP_AT
        with self._lock:
            late = [job_id for job_id, at in self._renewed.items()
                    if max(at, self._blocked_seen) <= limit and job_id not in self._stopped]
            self._stopped.update(late)
        return late

    def deadline(self, job_id: int, fraction: float = HARD_STOP_AT) -> float | None:
        """Monotonic time by which the job must have stopped, or None if not tracked."""
        with self._lock:
            at = self._renewed.get(job_id)
        if at is None:
            return None
        return max(at, self._blocked_seen) + self.lease * fraction

    def earliest_deadline(self, fraction: float = HARD_STOP_AT) -> float | None:
        with self._lock:
            if not self._renewed:
                return None
            oldest = min(self._renewed.values())
        return max(oldest, self._blocked_seen) + self.lease * fraction


class HardDeadline:
    """Exits the process if it is still running jobs past their hard deadline.

    Armed through faulthandler's watchdog, a C thread that needs no GIL: a worker starved of
    CPU by its own busy threads, or frozen and then woken, exits even when no Python code of
    its own gets to run. Only for a worker that owns its process (`conveyor worker`), and in
    process-pool children: an app embedding a worker keeps its process.

    Re-arming restarts faulthandler's thread, so it is done lazily: at once for an earlier
    deadline, else only once the armed one comes within RE_ARM of a lease (the lease guard
    calls `arm` every lease/20 or so); a worker with no job left is disarmed the same way.
    """

    def __init__(self, lease: float) -> None:
        self.margin = lease * RE_ARM
        self._armed_for: float | None = None
        self._lock = threading.Lock()
        self.available = has_fileno(sys.stderr)

    def arm(self, deadline: float | None) -> None:
        """Make sure the process exits by `deadline` (monotonic), or not at all (None)."""
        if not self.available:
            return
        with self._lock:
            armed = self._armed_for
            if armed is not None and (deadline is None or deadline > armed) \
                    and armed - time.monotonic() > self.margin:
                return  # armed early enough, and not yet close: postpone later
            if deadline is None:
                if armed is not None:
                    faulthandler.cancel_dump_traceback_later()
                    self._armed_for = None
                return
            if deadline == armed:
                return
            remaining = max(deadline - time.monotonic(), 0.001)
            faulthandler.dump_traceback_later(remaining, repeat=False, file=sys.stderr,
                                              exit=True)
            self._armed_for = deadline

    def disarm(self) -> None:
        with self._lock:
            if self._armed_for is not None:
                faulthandler.cancel_dump_traceback_later()
                self._armed_for = None


def has_fileno(stream: object) -> bool:
    try:
        return isinstance(stream.fileno(), int)  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
