"""Cancel watcher: pass cancel requests on to running jobs within CANCEL_CHECK, not a
heartbeat (one indexed read of this worker's running jobs)."""

from __future__ import annotations

from .base import DutyContext

CANCEL_CHECK = 0.25  # seconds: a cancel reaches the task well within a second


class CancelWatcher:
    name = "cancels"
    interval = CANCEL_CHECK
    singleton = False

    def __init__(self, ctx: DutyContext) -> None:
        self.ctx = ctx

    def run_once(self) -> None:
        running = self.ctx.dispatcher.running_ids()
        if running:
            for job_id in self.ctx.backend.cancels_requested(running):
                self.ctx.pool.request_cancel(job_id)
