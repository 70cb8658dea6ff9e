"""The execution log tasks of the test apps write: one "start|end job pid time attempt" line
per event, appended to $CONVEYOR_TEST_LOG with O_APPEND (whole lines from any number of
processes), the format helpers.read_executions reads. Tests count what really ran from it,
never from the queue's own state."""

from __future__ import annotations

import os
import time

from conveyor import current_job


def log_event(event: str, at: float | None = None) -> None:
    """Log `event` of the current job, at `at` (default: now)."""
    path = os.environ.get("CONVEYOR_TEST_LOG")
    if not path:
        return
    job = current_job()
    when = time.time() if at is None else at
    line = f"{event} {job.id} {os.getpid()} {when:.6f} {job.attempt}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
