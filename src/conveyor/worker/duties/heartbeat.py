"""Heartbeat: renew the leases this worker holds and its own row; pass on what the reply says
(cancel requests, leases lost to another worker, a stop asked through the database)."""

from __future__ import annotations

import logging
import time

from .base import DutyContext

log = logging.getLogger("conveyor.worker")


class Heartbeat:
    name = "heartbeat"
    singleton = False

    def __init__(self, ctx: DutyContext) -> None:
        self.ctx = ctx
        self.interval = max(0.05, ctx.lease / 3)

    def run_once(self) -> None:
        ctx = self.ctx
        leases = ctx.dispatcher.held()
        began = time.monotonic()
        reply = ctx.backend.heartbeat(ctx.info, leases, ctx.lease, ctx.dispatcher.running())
        ctx.guard.renewed((held.job_id for held in leases if held.job_id not in reply.lost),
                          began)
        for job_id in reply.cancel_requested:
            ctx.pool.request_cancel(job_id)
        if reply.lost:
            sent = {held.job_id: held.token for held in leases}
            for job_id in reply.lost:
                if not ctx.dispatcher.lose(job_id, sent[job_id]):
                    continue  # that attempt no longer runs here (it ended, or a next began)
                # Another worker may run it now: stop ours (no longer vouched for).
                log.error("job %s: lease lost (another worker may run it now); stopping it",
                          job_id)
                ctx.pool.stop_job(job_id)
        if reply.stop_requested and not ctx.stopping():
            log.info("stop requested through the database")
            ctx.stop()
