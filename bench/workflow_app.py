"""Tasks for workflow_chord.py, importable by worker processes as `workflow_app:app`."""

import time

from conveyor import Conveyor

app = Conveyor()  # URL from $CONVEYOR_URL


@app.task(name="bench.member")
def member(n: int) -> float:
    return time.time()  # its end, as near as the task can tell


@app.task(name="bench.gather")
def gather(ends: list[float]) -> list[float]:
    """How many members fed it, and the seconds from the last one's end to this start."""
    return [len(ends), time.time() - max(ends)]
