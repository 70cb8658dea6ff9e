"""How long a worker's loops (the dispatcher, each duty) put up with failures before giving up."""

from __future__ import annotations

import logging
import sys
import time

from ..backends.unavailable import is_unavailable

log = logging.getLogger("conveyor.worker")

MIN_FAILURES = 5
# A bug (an exception other than the database being unavailable) stops a duty only after
# failing this long without a single success: then the worker stops loudly.
OUTAGE_TOLERANCE = 20.0
PAUSE_MAX = 2.0
# The database being unavailable (a full disk, an I/O error, a lock held too long, a server
# that is down) never stops a duty: it retries, this long apart at most, until it is back.
UNAVAILABLE_PAUSE_MAX = 5.0
# While the same problem goes on, it is logged again (as a warning) this often.
REMIND_EVERY = 60.0


class FailureBudget:
    """Consecutive failures of one duty, and whether it is time to give up.

    `failed()` looks at the exception: one that means the database is unavailable right now
    (backends.unavailable.is_unavailable) never spends the budget, and the duty keeps
    retrying with a capped backoff. Any other exception spends it: after MIN_FAILURES that
    span OUTAGE_TOLERANCE, the budget is spent and the duty gives up.
    """

    def __init__(self) -> None:
        self.failures = 0  # in a row, of any kind
        self.unavailable = False  # the last failure was the database being unavailable
        self.problem: str | None = None
        self.new_problem = False  # the last failure is worth a warning (see log_failure)
        self._spent = 0  # failures in a row that spend the budget
        self._since = 0.0
        self._warned_at = 0.0

    def succeeded(self) -> None:
        self.failures = 0
        self._spent = 0
        self.unavailable = False
        self.problem = None

    def failed(self, exc: BaseException | None = None) -> bool:
        """Record a failure; True when it is time to give up. Called without `exc` from an
        `except` block, it looks at the exception being handled."""
        if exc is None:
            exc = sys.exc_info()[1]
        now = time.monotonic()
        self.failures += 1
        self.unavailable = exc is not None and is_unavailable(exc)
        problem = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"
        self.new_problem = problem != self.problem or now - self._warned_at >= REMIND_EVERY
        if self.new_problem:
            self._warned_at = now
        self.problem = problem
        if self.unavailable:
            return False
        if self._spent == 0:
            self._since = now
        self._spent += 1
        return self._spent >= MIN_FAILURES and now - self._since >= OUTAGE_TOLERANCE

    def pause(self) -> float:
        """How long to wait before the next try: 50 ms doubling to 2 s, or to 5 s while the
        database is unavailable."""
        cap = UNAVAILABLE_PAUSE_MAX if self.unavailable else PAUSE_MAX
        return float(min(0.05 * 2 ** min(max(self.failures - 1, 0), 16), cap))

    def log_failure(self, what: str, exc: BaseException) -> None:
        """Log the failure: a warning for a problem not seen in this run of failures (or not
        for REMIND_EVERY seconds), a debug line for each repeat."""
        level = logging.WARNING if self.new_problem else logging.DEBUG
        if self.unavailable:
            log.log(level, "%s failed (%d in a row): %s; retrying until the database is "
                    "available again", what, self.failures, exc)
        else:
            log.log(level, "%s failed (%d in a row): %s", what, self.failures, exc)

