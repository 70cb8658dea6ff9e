"""Lease guard: stop jobs whose lease this worker could not renew in time, and keep the pool's
and the process's hard deadlines on the guard's (the rules: worker/lease_guard.py)."""

from __future__ import annotations

import logging

from ...lease_watch import STOP_AT
from .base import DutyContext

log = logging.getLogger("conveyor.worker")


class GuardLeases:
    name = "lease-guard"
    singleton = False

    def __init__(self, ctx: DutyContext) -> None:
        self.ctx = ctx
        self.interval = min(max(ctx.lease / 20, 0.02), 0.5)

    def run_once(self) -> None:
        ctx = self.ctx
        guard, pool = ctx.guard, ctx.pool
        for job_id in guard.overdue():
            if not pool.kills_jobs and not ctx.owns_process:
                log.error("job %s: lease not renewed for %.1f s; asked it to stop, but a thread "
                          "cannot be killed: if it runs on past its lease it may run twice",
                          job_id, ctx.lease * STOP_AT)
            else:
                log.error("job %s: lease not renewed for %.1f s; stopping it", job_id,
                          ctx.lease * STOP_AT)
            pool.stop_job(job_id)
        for job_id in ctx.dispatcher.running_ids():
            pool.set_deadline(job_id, guard.deadline(job_id))
        if ctx.hard is not None:
            ctx.hard.arm(guard.earliest_deadline())
