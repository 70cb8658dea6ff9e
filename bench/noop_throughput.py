"""Process N queued no-op jobs with W `conveyor worker --burst` processes; print and record jobs/s.

Conveyor alone, in the project's own virtualenv (run_all.py adds the peers and the figure from
"workers ready"). The time here runs from spawning the workers to the last one exiting, so it
includes interpreter start-up.

    .venv/bin/python bench/noop_throughput.py --jobs 10000 --workers 1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from common import HERE, command_line, now_utc, record


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
        from bench_app import app, noop

        started = time.perf_counter()
        for offset in range(0, options.jobs, 5000):
            count = min(5000, options.jobs - offset)
            app.enqueue_many([noop.prepare() for _ in range(count)])
        enqueue_s = time.perf_counter() - started

        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(HERE), os.environ.get("PYTHONPATH", "")]))
        command = [sys.executable, "-m", "conveyor", "worker", "-A", "bench_app:app", "--burst",
                   "-c", str(options.concurrency), "--log-level", "warning"]
        started = time.perf_counter()
        procs = [subprocess.Popen(command, env=env) for _ in range(options.workers)]
        try:
            for proc in procs:
                if proc.wait(timeout=600) != 0:
                    raise SystemExit(f"worker exited with {proc.returncode}")
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        process_s = time.perf_counter() - started
        counts = app.inspector.count_by_state()
        app.close()

    done = sum(counts.get("default", {}).values())
    rate = options.jobs / process_s
    line = (f"| {now_utc()[:10]} | {os.uname().nodename} ({os.cpu_count()} cores)"
            f" | noop x{options.jobs}, {options.workers} worker(s) x {options.concurrency} "
            f"threads | enqueue_many {options.jobs / enqueue_s:,.0f} jobs/s"
            f" | process {rate:,.0f} jobs/s ({process_s:.2f} s incl. worker start-up) |")
    print(line)
    print(f"states: {counts}; jobs counted: {done}")
    if options.record:
        record(f"{line}\n\n`{command_line()}`")


if __name__ == "__main__":
    main()
