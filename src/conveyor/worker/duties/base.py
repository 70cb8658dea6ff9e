"""What every duty is (one protocol) and what it may use (one context)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ...backends.base import Backend, WorkerInfo
from ..dispatcher import Dispatcher
from ..lease_guard import HardDeadline, LeaseGuard
from ..pools import Pool

if TYPE_CHECKING:
    from ...app import Conveyor


class Duty(Protocol):
    """A worker's side duty, run every `interval` seconds in a thread of its own by the
    supervisor. A `singleton` duty runs on one worker at a time: the one holding its leader
    lease (taken, or renewed, before each run)."""

    name: str
    interval: float
    singleton: bool

    def run_once(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DutyContext:
    """The worker's parts a duty may use."""

    app: Conveyor
    backend: Backend
    info: WorkerInfo
    lease: float
    dispatcher: Dispatcher
    pool: Pool
    guard: LeaseGuard
    hard: HardDeadline | None
    owns_process: bool
    stop: Callable[[], None]  # drain and stop the worker, as SIGTERM does
    stopping: Callable[[], bool]
    disabled: frozenset[str] = frozenset()  # names of duties this worker does not run


DutyFactory = Callable[[DutyContext], Duty]
