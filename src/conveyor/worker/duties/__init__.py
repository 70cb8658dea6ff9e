"""A worker's side duties: one small file each behind one protocol (base.Duty), run and
supervised by supervisor.Supervisor. A new duty is one file and one line in DUTIES."""

from __future__ import annotations

from .base import Duty, DutyContext, DutyFactory
from .cancels import CancelWatcher
from .heartbeat import Heartbeat
from .lease_guard import GuardLeases
from .pruner import Pruner
from .rescuer import Rescuer
from .scheduler import SchedulerDuty
from .supervisor import Supervisor

# Every worker runs each of these (a singleton one only while it leads it).
DUTIES: list[DutyFactory] = [
    Heartbeat, GuardLeases, Rescuer, CancelWatcher, SchedulerDuty, Pruner]


def make_duties(ctx: DutyContext) -> list[Duty]:
    """The worker's duties, but those it was told not to run (e.g. --no-scheduler)."""
    return [duty for duty in (factory(ctx) for factory in DUTIES)
            if duty.name not in ctx.disabled]


__all__ = ["DUTIES", "Duty", "DutyContext", "DutyFactory", "Supervisor", "make_duties"]
