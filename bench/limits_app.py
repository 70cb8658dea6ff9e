"""Tasks for limits_throughput.py, importable by worker processes as `limits_app:app`.

$BENCH_LIMITS=0 declares no limit at all (the baseline); otherwise `other` has limits (and no
jobs), `keyed` has a concurrency limit per key that never binds (1,000 per key), and
`throttled` starts one job an hour (its backlog waits the whole run)."""

import os

from conveyor import Conveyor

app = Conveyor()  # URL from $CONVEYOR_URL


@app.task(name="bench.noop")
def noop() -> None:
    return None


if os.environ.get("BENCH_LIMITS", "1") != "0":

    @app.task(name="bench.other", rate_limit="10/s", concurrency=2)
    def other() -> None:
        return None

    @app.task(name="bench.keyed", concurrency=1000, limit_key=lambda key: key)
    def keyed(key: str) -> None:
        return None

    @app.task(name="bench.throttled", rate_limit="1/h")
    def throttled() -> None:
        return None
