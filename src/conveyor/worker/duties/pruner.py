"""Pruner: delete finished jobs past the app's keep_* ages (app.prune), and schedule slot rows
older than a day (the newest of each schedule kept). A singleton: one worker prunes at a time.

It looks every CHECK_EVERY seconds (so it runs soon after a worker starts or takes the lead)
and prunes every PRUNE_EVERY seconds, at most RUN_MAX_ROWS jobs a run, in transactions of
PRUNE_BATCH rows; a run that hit the bound goes on at the next look. After a large prune the
SQLite WAL is checkpointed and truncated, so the files stop growing. CHECK_EVERY and
PRUNE_EVERY are module constants a benchmark or a test may lower in its worker processes
before the worker starts (bench/retention_soak.py); they are not a setting.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from ...job import JobState
from ...retention import SLOT_KEEP
from .base import DutyContext

log = logging.getLogger("conveyor.worker")

CHECK_EVERY = 5.0
PRUNE_EVERY = 60.0
RUN_MAX_ROWS = 50_000
CHUNK_ROWS = 5_000
# After deleting more than this many rows, checkpoint the WAL (backend.shrink_log).
SHRINK_AFTER = 10_000
SLOT_BATCH = 500


class Pruner:
    name = "pruner"
    singleton = True

    def __init__(self, ctx: DutyContext) -> None:
        self.ctx = ctx
        self.interval = CHECK_EVERY
        self.every = PRUNE_EVERY
        self._next = 0.0  # monotonic time of the next prune: the first look prunes

    def run_once(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        ctx = self.ctx
        counts: Counter[JobState] = Counter()
        while not ctx.stopping():  # in chunks, so a stopping worker is not kept waiting
            chunk = ctx.app.prune(max_rows=CHUNK_ROWS)
            counts.update(chunk)
            if sum(chunk.values()) < CHUNK_ROWS or counts.total() >= RUN_MAX_ROWS:
                break
        jobs = counts.total()
        slots = 0
        while not ctx.stopping():
            deleted = ctx.backend.prune_schedule_slots(SLOT_KEEP, limit=SLOT_BATCH)
            slots += deleted
            if deleted < SLOT_BATCH or slots >= RUN_MAX_ROWS:
                break
        if not ctx.stopping():  # rate limits' spent keys (a tenant seen once, long ago)
            ctx.backend.prune_rate_state(limit=SLOT_BATCH)
        if jobs + slots > SHRINK_AFTER and not ctx.backend.shrink_log():
            log.debug("the WAL is in use; an idle worker will truncate it")
        # A run that hit its bound goes on at the next look; otherwise wait a whole period.
        self._next = now if jobs >= RUN_MAX_ROWS else now + self.every
        if jobs or slots:
            by_state = ", ".join(f"{state} {n}" for state, n in sorted(counts.items()) if n)
            log.info("pruned %d finished job(s) (%s) and %d schedule slot(s)", jobs,
                     by_state or "none", slots,
                     extra={"pruned": {str(state): n for state, n in counts.items()},
                            "slots": slots})
