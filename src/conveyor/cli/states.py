"""The --state option's type, for the commands that filter jobs by state. A module apart from
params.py because it imports conveyor.job: `conveyor worker` reads its options without it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ..job import JobState

if TYPE_CHECKING:  # click >= 8.4 types Choice as a generic; older clicks cannot subscript it
    _StrChoice = click.Choice[str]
else:
    _StrChoice = click.Choice


class State(_StrChoice):
    """A job state name, case-insensitive; converts to JobState."""

    name = "state"

    def __init__(self) -> None:
        super().__init__([state.value for state in JobState], case_sensitive=False)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> JobState:
        if isinstance(value, JobState):
            return value
        return JobState(super().convert(value, param, ctx))


STATE = State()
