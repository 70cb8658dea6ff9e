"""Process N queued no-op jobs with W worker processes; print and record jobs/s.

    .venv/bin/python bench/noop_throughput.py --jobs 10000 --workers 1
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        os.environ["CONVEYOR_URL"] = url
        sys.path.insert(0, str(HERE))
        from bench_app import app, noop

        started = time.perf_counter()
        for offset in range(0, options.jobs, 5000):
            count = min(5000, options.jobs - offset)
            app.enqueue_many([noop.prepare() for _ in range(count)])
        enqueue_s = time.perf_counter() - started

        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get(
            "PYTHONPATH", "")]))
        command = [sys.executable, "-m", "conveyor", "worker", "-A", "bench_app:app", "--burst",
                   "-c", str(options.concurrency), "--log-level", "warning"]
        started = time.perf_counter()
        procs = [subprocess.Popen(command, env=env) for _ in range(options.workers)]
        for proc in procs:
            if proc.wait(timeout=600) != 0:
                raise SystemExit(f"worker exited with {proc.returncode}")
        process_s = time.perf_counter() - started
        counts = app.inspector.count_by_state()
        app.close()

    done = sum(counts.get("default", {}).values())
    rate = options.jobs / process_s
    line = (f"| {datetime.now(timezone.utc):%Y-%m-%d} | {platform.node()} ({os.cpu_count()} cores)"
            f" | noop x{options.jobs}, {options.workers} worker(s) x {options.concurrency} threads"
            f" | enqueue_many {options.jobs / enqueue_s:,.0f} jobs/s"
            f" | process {rate:,.0f} jobs/s ({process_s:.2f} s incl. worker start-up) |")
    print(line)
    print(f"states: {counts}; jobs counted: {done}")
    if options.record:
        with open(HERE / "RESULTS.md", "a") as results:
            results.write(line + f"\n\n`{' '.join(['python', *sys.argv])}`\n\n")


if __name__ == "__main__":
    main()
