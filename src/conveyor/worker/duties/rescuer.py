"""Rescuer: watch running jobs' leases; take back those not renewed for a whole lease while
this worker could write (lease_watch.py). Every worker runs one: a rescue is fenced by what
was observed, so rescuers never need a leader."""

from __future__ import annotations

import logging
import time

from ...lease_watch import LeaseWatch
from .base import DutyContext

log = logging.getLogger("conveyor.worker")


class Rescuer:
    name = "rescuer"
    singleton = False

    def __init__(self, ctx: DutyContext) -> None:
        self.ctx = ctx
        self.interval = min(max(ctx.lease / 4, 0.1), 15.0)
        self.watch = LeaseWatch(ctx.lease)

    def run_once(self) -> None:
        backend = self.ctx.backend
        began = time.monotonic()
        observed = backend.observe_leases()
        dead = self.watch.observe(observed, began, time.monotonic())
        if dead:
            report = backend.rescue(dead)
            self.watch.forget(dead)
            for label, ids in (("requeued", report.requeued), ("failed", report.failed),
                               ("cancelled", report.cancelled)):
                if ids:
                    log.warning("rescued jobs whose worker stopped renewing their lease (%s): %s",
                                label, list(ids))
        backend.forget_dead_workers(max(self.ctx.lease * 4, 60.0))
