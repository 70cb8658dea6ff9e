"""The schedules an app declares (`@app.periodic`, `app.schedule`): checked when declared, so a
bad one fails at import, never at 02:00 in a worker; written to the schedules table by every
scheduler when it starts (`definitions`).

Each run's arguments are prepared like any job's (`task.prepare`) when the schedule is declared,
so they are known to encode, fit the payload limit and, for a task known here, bind to its
function; what is stored is their JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any

from .errors import ConfigurationError, InvalidInput
from .records import NewJob, ScheduleDefinition
from .schedule import CatchUp, Schedule
from .validation import task_name


def seconds_of(argument: str, value: Any, where: str) -> Any:
    """A timedelta as seconds; anything else as given, for Schedule to check."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        if not math.isfinite(seconds):  # pragma: no cover - timedelta is always finite
            raise InvalidInput(f"{where}: {argument} must be finite")
        return seconds
    return value


class DeclaredSchedules:
    """An app's schedules by name, in declaration order."""

    def __init__(self) -> None:
        self._by_name: dict[str, tuple[Schedule, NewJob]] = {}

    def __iter__(self) -> Iterator[Schedule]:
        return (schedule for schedule, _ in self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def as_mapping(self) -> Mapping[str, Schedule]:
        return {name: schedule for name, (schedule, _) in self._by_name.items()}

    def add(
        self,
        name: Any,
        task: str,
        prepare: Callable[..., NewJob],
        *,
        cron: str | None,
        every: float | timedelta | None,
        tz: str,
        args: Any,
        kwargs: Any,
        catch_up: CatchUp,
        max_lateness: float | timedelta | None,
    ) -> Schedule:
        """Check and keep a schedule. `prepare(*args, **kwargs)` prepares one of its runs."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput(f"a schedule's name must be a non-empty str, got {name!r}")
        where = f"schedule {name!r}"
        if not isinstance(args, list | tuple):
            raise InvalidInput(f"{where}: args must be a tuple or list, got {args!r}")
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise InvalidInput(f"{where}: kwargs must be a dict with str keys, got {kwargs!r}")
        schedule = Schedule(
            name, task_name(task), cron=cron, every=seconds_of("every", every, where), tz=tz,
            args=tuple(args), kwargs=dict(kwargs), catch_up=catch_up,
            max_lateness=seconds_of("max_lateness", max_lateness, where))
        try:
            run = prepare(*schedule.args, **schedule.kwargs)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: its arguments are refused: {exc}") from None
        existing = self._by_name.get(name)
        if existing is not None and existing[0] != schedule:
            raise ConfigurationError(
                f"two schedules are named {name!r} ({existing[0].task} {existing[0].spec}, "
                f"and {schedule.task} {schedule.spec}); give one another name "
                "(app.schedule(name, ...), or @app.periodic(name=...))")
        self._by_name[name] = (schedule, run)
        return schedule

    def definitions(self) -> list[ScheduleDefinition]:
        """What the schedules table holds for each (its run's arguments as JSON)."""
        return [definition_of(schedule, run) for schedule, run in self._by_name.values()]


def definition_of(schedule: Schedule, run: NewJob) -> ScheduleDefinition:
    return ScheduleDefinition(
        name=schedule.name, task=schedule.task, cron=schedule.cron,
        every=None if schedule.every is None else float(schedule.every), tz=schedule.tz,
        args_json=run.args_json, kwargs_json=run.kwargs_json, catch_up=schedule.catch_up,
        max_lateness=None if schedule.max_lateness is None else float(schedule.max_lateness))


def stored_arguments(definition: ScheduleDefinition) -> tuple[list[Any], dict[str, Any]]:
    """A stored schedule's run arguments, refused with a clear error when damaged."""
    try:
        args = json.loads(definition.args_json)
        kwargs = json.loads(definition.kwargs_json)
    except ValueError:
        args = kwargs = None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise InvalidInput(f"schedule {definition.name!r}: its stored arguments are not valid "
                           "JSON (edited by hand?); restart a scheduler of its app to write "
                           "them again")
    return args, kwargs
