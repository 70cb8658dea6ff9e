"""Idle-worker pickup latency and idle CPU.

Starts one worker process, lets it sit idle, measures its CPU use while idle, then enqueues
jobs one at a time, N ms apart, and reports started_at - enqueued_at (both stamped on this
machine's clock) as p50/p99.

    .venv/bin/python bench/pickup_latency.py --jobs 200 --gap 0.02
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.02)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--record", action="store_true")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CONVEYOR_URL"] = f"sqlite:///{tmp}/bench.db"
        sys.path.insert(0, str(HERE))
        from bench_app import app, noop

        app.enqueue_many([])
        app.backend  # noqa: B018  (create the schema before the worker starts)
        env = dict(os.environ, PYTHONPATH=str(HERE))
        worker = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "worker", "-A", "bench_app:app", "-c", "4",
             "--log-level", "warning"], env=env)
        try:
            # Wait until the worker is registered and idle.
            deadline = time.monotonic() + 30
            while not app.inspector.workers():
                if time.monotonic() > deadline:
                    raise SystemExit("worker did not start")
                time.sleep(0.05)
            time.sleep(0.5)
            before = cpu_seconds(worker.pid)
            time.sleep(options.idle_seconds)
            idle_cpu = (cpu_seconds(worker.pid) - before) / options.idle_seconds

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
            worker.terminate()
            worker.wait(timeout=30)
            app.close()

    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    line = (f"| {datetime.now(timezone.utc):%Y-%m-%d} | {platform.node()} ({os.cpu_count()} cores)"
            f" | idle pickup, {options.jobs} jobs {options.gap * 1000:.0f} ms apart"
            f" | p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {latencies[-1] * 1000:.2f} ms"
            f" | idle worker CPU {idle_cpu * 100:.2f} % of a core |")
    print(line)
    if options.record:
        with open(HERE / "RESULTS.md", "a") as results:
            results.write(line + f"\n\n`{' '.join(['python', *sys.argv])}`\n\n")


if __name__ == "__main__":
    main()
