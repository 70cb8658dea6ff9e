"""The scheduler: writes the app's schedules to the database when it starts, then fires every
active schedule's due slots (the database's clock decides what is due). A slot is taken under
UNIQUE(schedule, slot) in the transaction that enqueues its job, so any number of schedulers,
on any number of hosts, fire it once; a scheduler only has to look often enough.

A tick that finds nothing due costs no query: the scheduler remembers when the next slot of any
schedule falls and reads the table again then, or after REFRESH at the latest (to see pauses,
resumes, and schedules other schedulers wrote).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import TYPE_CHECKING

from ..backends.base import Backend
from ..errors import ConveyorError
from ..records import NewJob, ScheduleDefinition, SlotRun
from ..schedule import Schedule, due_slots
from .loops import FailureBudget

if TYPE_CHECKING:
    from ..app import Conveyor

log = logging.getLogger("conveyor.scheduler")

REFRESH = 5.0  # seconds: the longest a scheduler goes without reading the schedules table
TICK = 0.25  # seconds between a scheduler's looks at its clock


class Scheduler:
    """One scheduler: `sync()` once, then `tick()` every TICK (or as it says)."""

    def __init__(self, app: Conveyor, backend: Backend, owner: str) -> None:
        self.app = app
        self.backend = backend
        self.owner = owner
        self.fired = 0  # slots this scheduler fired (others may have fired more)
        self._timings: dict[ScheduleDefinition, Schedule | None] = {}
        # definition -> (where it was, its next slot after that): most reads compute nothing
        self._next_slots: dict[ScheduleDefinition, tuple[float, float]] = {}
        self._next_read = 0.0  # this host's time.time() of the next read of the table

    def sync(self) -> None:
        """Write this app's schedules; mark the others inactive (gone from the code). A
        schedule of a task nobody knows gets a warning here, not at 02:00."""
        definitions = self.app.schedule_definitions()
        gone = self.backend.sync_schedules(self.owner, definitions)
        log.info("scheduler %s: %d schedule(s) from the code: %s", self.owner,
                 len(definitions), ", ".join(d.name for d in definitions) or "none")
        if gone:
            log.info("schedules no longer in the code, now inactive: %s", ", ".join(gone))
        unknown = sorted({d.task for d in definitions} - self.app.tasks.keys())
        if unknown:
            registered = self.app.inspector.registered_tasks(unknown)
            for task in unknown:
                if task not in registered:
                    log.warning("schedules run task %r, which this app does not define and no "
                                "worker has registered: its runs will fail with 'unknown "
                                "task' unless a worker that knows it serves its queue", task)
        self._next_read = 0.0

    def tick(self) -> float:
        """Fire what is due; returns how long until something may be due (seconds)."""
        local = time.time()
        if local < self._next_read:
            return self._next_read - local
        now, states = self.backend.schedule_states()
        due: list[tuple[ScheduleDefinition, float | None]] = []
        next_due = math.inf
        for state in states:
            if state.paused:
                continue
            known = self._next_slots.get(state.definition)
            if known is not None and known[0] == state.after and known[1] > now:
                next_due = min(next_due, known[1])  # nothing due: no slot computed
                continue
            timing = self._timing(state.definition)
            if timing is None:
                continue
            slots = due_slots(timing, state.after, now)
            due += [(state.definition, slot) for slot in slots]
            upcoming = timing.next_slot(max(now, state.after))
            self._next_slots[state.definition] = (max([state.after, *slots]), upcoming)
            next_due = min(next_due, upcoming)
        if due:
            self._fire(due)
        wait = min(REFRESH, max(0.0, next_due - now))
        self._next_read = time.time() + wait
        return wait

    def _fire(self, due: list[tuple[ScheduleDefinition, float | None]]) -> None:
        jobs: dict[ScheduleDefinition, NewJob | None] = {}
        for definition, _ in due:
            if definition in jobs:
                continue  # one job, prepared once, for every due slot of a schedule
            try:
                jobs[definition] = self.app.prepare_run(definition)
            except ConveyorError as exc:  # bad stored arguments: this schedule only
                log.error("schedule %r: cannot prepare its run: %s", definition.name, exc)
                jobs[definition] = None
        runs = [SlotRun(definition.name, slot, job) for definition, slot in due
                if (job := jobs[definition]) is not None]
        fired = self.backend.fire(runs)
        self.fired += len(fired)
        for done in fired:
            log.info("schedule %r fired for %s UTC: job %d", done.schedule,
                     time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(done.slot or 0)),
                     done.job.id)

    def _timing(self, definition: ScheduleDefinition) -> Schedule | None:
        """The pure schedule of a stored definition, made once (checking a cron expression
        is not free); None, logged once, when the stored row is damaged."""
        if definition not in self._timings:
            try:
                self._timings[definition] = definition.timing()
            except ConveyorError as exc:
                log.error("schedule %r is stored damaged and will not fire: %s",
                          definition.name, exc)
                self._timings[definition] = None
            if len(self._timings) > 10_000:  # definitions that changed, long ago
                self._timings.clear()
                self._next_slots.clear()
        return self._timings[definition]


def run_scheduler(scheduler: Scheduler, stop: threading.Event) -> None:
    """`conveyor scheduler`: sync, then tick until `stop` is set. An unavailable database is
    waited out for as long as it lasts; another failure that keeps coming back is raised."""
    budget = FailureBudget()
    synced = False
    while not stop.is_set():
        try:
            if not synced:
                scheduler.sync()
                synced = True
            wait = min(scheduler.tick(), TICK)
            budget.succeeded()
        except Exception as exc:
            if budget.failed(exc):
                raise
            budget.log_failure("scheduler", exc)
            wait = budget.pause()
        stop.wait(wait)
