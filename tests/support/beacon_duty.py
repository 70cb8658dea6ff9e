"""A singleton duty for tests: each run appends "<worker name> <pid> <time>" to the file named
by $CONVEYOR_TEST_DUTY_LOG. `python -c "import beacon_duty; beacon_duty.install(); ..."` adds it
to a worker process's duties."""

from __future__ import annotations

import os
import time
from pathlib import Path

from conveyor.worker import duties
from conveyor.worker.duties import DutyContext


class Beacon:
    name = "test-beacon"
    interval = 0.1
    singleton = True

    def __init__(self, ctx: DutyContext) -> None:
        self.worker = ctx.info.name
        self.path = Path(os.environ["CONVEYOR_TEST_DUTY_LOG"])

    def run_once(self) -> None:
        with self.path.open("a") as log:
            log.write(f"{self.worker} {os.getpid()} {time.time()}\n")


def install() -> None:
    duties.DUTIES.append(Beacon)


def runs(path: Path) -> list[tuple[str, int, float]]:
    """(worker name, pid, time) of each run, whole lines only."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text().split("\n")[:-1]:
        name, pid, at = line.split()
        found.append((name, int(pid), float(at)))
    return found


def leaders(path: Path) -> list[str]:
    """The workers that ran the duty, in the order they took over (one entry per reign)."""
    reigns: list[str] = []
    for name, _, _ in runs(path):
        if not reigns or reigns[-1] != name:
            reigns.append(name)
    return reigns
