"""Idle-worker pickup latency and idle CPU, conveyor alone, one worker.

Starts one worker process, lets it sit idle, measures its CPU use while idle, then enqueues
jobs one at a time, N ms apart, and reports started_at - enqueued_at (both stamped on this
machine's clock by conveyor) as p50/p99. run_all.py measures the same against the peers, with
two workers and the time from the enqueue call to the task's first line.

    .venv/bin/python bench/pickup_latency.py --jobs 200 --gap 0.02
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from common import HERE, Spawned, command_line, cpu_seconds, now_utc, percentile, record
from common import median as median_of


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.02)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--record", action="store_true")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CONVEYOR_URL"] = f"sqlite:///{tmp}/bench.db"
        from bench_app import app, noop

        app.backend  # noqa: B018  (create the schema before the worker starts)
        env = dict(os.environ, PYTHONPATH=str(HERE))
        spawned = Spawned()
        worker = spawned.start(
            [sys.executable, "-m", "conveyor", "worker", "-A", "bench_app:app", "-c", "4",
             "--log-level", "warning"], env, Path(tmp) / "worker.log")
        try:
            # Wait until the worker is registered and idle.
            deadline = time.monotonic() + 30
            while not app.inspector.workers():
                if time.monotonic() > deadline:
                    raise SystemExit("worker did not start")
                spawned.check_alive()
                time.sleep(0.05)
            time.sleep(0.5)
            before = cpu_seconds(worker)
            time.sleep(options.idle_seconds)
            idle_cpu = (cpu_seconds(worker) - before) / options.idle_seconds

            jobs = []
            for _ in range(options.jobs):
                jobs.append(noop.enqueue())
                time.sleep(options.gap)
            for job in jobs:
                job.result(timeout=30)
            latencies = sorted(
                (job.refresh().record.started_at or 0) - job.record.enqueued_at for job in jobs
            )
        finally:
            spawned.stop()
            app.close()

    p50 = median_of(latencies) * 1000
    p99 = percentile(latencies, 99) * 1000
    line = (f"| {now_utc()[:10]} | {os.uname().nodename} ({os.cpu_count()} cores)"
            f" | idle pickup, {options.jobs} jobs {options.gap * 1000:.0f} ms apart"
            f" | p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {latencies[-1] * 1000:.2f} ms"
            f" | idle worker CPU {idle_cpu * 100:.2f} % of a core |")
    print(line)
    if options.record:
        record(f"{line}\n\n`{command_line()}`")


if __name__ == "__main__":
    main()
