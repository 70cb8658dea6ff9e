"""Tasks for workflow tests, importable by worker processes as `workflow_app:app`
(tests/test_workflows*.py).

Every execution appends "start|end job pid time attempt" lines to $CONVEYOR_TEST_LOG (the
format helpers.read_executions reads), so tests check what really ran and in which order,
never the queue's own state. `w.slow` waits until the file $CONVEYOR_TEST_GATE exists, so a
test can kill its worker mid-run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from task_log import log_event

from conveyor import Conveyor


def make_app(url: str | None = None, lease_timeout: float | None = None) -> Conveyor:
    lease = lease_timeout or float(os.environ.get("CONVEYOR_TEST_LEASE", "30"))
    app = Conveyor(url, lease_timeout=lease)

    @app.task(name="w.add")
    def add(a: int, b: int) -> int:
        log_event("start")
        log_event("end")
        return a + b

    @app.task(name="w.double")
    def double(x: int) -> int:
        log_event("start")
        log_event("end")
        return 2 * x

    @app.task(name="w.total")
    def total(values: list[Any], *extra: int) -> int:
        log_event("start")
        log_event("end")
        return sum(v for v in values if isinstance(v, int)) + sum(extra)

    @app.task(name="w.echo")
    def echo(*args: Any, **kwargs: Any) -> list[Any]:
        log_event("start")
        log_event("end")
        return [list(args), kwargs]

    @app.task(name="w.fail", max_attempts=1)
    def fail(*args: Any) -> None:
        log_event("start")
        log_event("end")
        raise ValueError("boom")

    @app.task(name="w.slow", max_attempts=3)
    def slow(n: int) -> int:
        """Runs until the gate file exists (or 30 s), then returns n."""
        log_event("start")
        gate = os.environ.get("CONVEYOR_TEST_GATE")
        deadline = time.monotonic() + 30
        while gate and not Path(gate).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        log_event("end")
        return n

    @app.task(name="w.node")
    def node(n: int, *parents: Any) -> int:
        log_event("start")
        log_event("end")
        return n

    return app


app = make_app()
