"""Tasks with rate and concurrency limits, importable by worker processes as `limits_app:app`
(tests/test_limits_workers.py).

Every execution appends "start|end job pid time attempt" lines to $CONVEYOR_TEST_LOG with
O_APPEND, the format helpers.read_executions reads: tests count what really ran, never the
queue's own state. A test tells tasks and keys apart by the job ids enqueue gave it.
"""

from __future__ import annotations

import os
import time

from task_log import log_event

from conveyor import Conveyor, current_job

# (The log holds each task's own view of its attempt, so a test can also check that waiting
# on a limit used none.)



def _run(sleep: float) -> int:
    log_event("start")
    if sleep:
        time.sleep(sleep)
    log_event("end")
    return os.getpid()


def _participant(participant: str, *_: object, **__: object) -> str:
    return participant


def make_app(url: str | None = None, lease_timeout: float | None = None) -> Conveyor:
    lease = lease_timeout or float(os.environ.get("CONVEYOR_TEST_LEASE", "30"))
    app = Conveyor(url, lease_timeout=lease)
    # At most one job of this queue runs at once, anywhere (its tasks have no limits).
    app.queue("gpu", concurrency=1)

    @app.task(name="l.rate", rate_limit="5/s")
    def rate(n: int = 0) -> int:
        return _run(0.0)

    @app.task(name="l.rate_keyed", rate_limit="5/s", limit_key=_participant)
    def rate_keyed(participant: str, n: int = 0) -> int:
        return _run(0.0)

    @app.task(name="l.pair", concurrency=2)
    def pair(sleep: float = 0.0) -> int:
        return _run(sleep)

    @app.task(name="l.single_keyed", concurrency=1, limit_key=_participant)
    def single_keyed(participant: str, sleep: float = 0.0) -> int:
        return _run(sleep)

    @app.task(name="l.pair_by_key", concurrency=2)
    def pair_by_key(sleep: float = 0.0) -> int:
        """Keyed only by options(limit_key=...): two running per key."""
        return _run(sleep)

    @app.task(name="l.many_by_key", concurrency=100)
    def many_by_key(sleep: float = 0.0) -> int:
        """Keyed only by options(limit_key=...): a limit that never binds with a few workers,
        so only the keys' turns keep one key from taking every slot."""
        return _run(sleep)

    @app.task(name="l.solo", concurrency=1, max_attempts=5, backoff=0)
    def solo(first_sleep: float = 0.0, sleep: float = 0.0) -> int:
        """Sleeps `first_sleep` on its first attempt, `sleep` on later ones: a worker killed
        during the first leaves a job whose next run ends soon."""
        return _run(first_sleep if current_job().attempt == 1 else sleep)

    @app.task(name="l.gpu", queue="gpu")
    def gpu(sleep: float = 0.0) -> int:
        return _run(sleep)

    @app.task(name="l.cpu", queue="cpu")
    def cpu(sleep: float = 0.0) -> int:
        return _run(sleep)

    return app


app = make_app()
