"""Scheduler duty: every worker fires due schedule slots (scheduling.py) unless started with
--no-scheduler. Not a singleton: slots are fired once by the database's constraint, so a
second scheduler is a spare, never a duplicate."""

from __future__ import annotations

from ..scheduling import TICK, Scheduler
from .base import DutyContext


class SchedulerDuty:
    name = "scheduler"
    interval = TICK
    singleton = False

    def __init__(self, ctx: DutyContext) -> None:
        self.scheduler = Scheduler(ctx.app, ctx.backend, ctx.info.name)
        self._synced = False

    def run_once(self) -> None:
        if not self._synced:
            self.scheduler.sync()
            self._synced = True
        self.scheduler.tick()
