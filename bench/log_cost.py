"""What per-job log lines cost: 20,000 no-ops drained by 2 `conveyor worker --burst -c 16`
processes logging to a file at LEVEL, with the conveyor found at SRC (compare two checkouts).

    python bench/log_cost.py SRC LEVEL      # prints jobs/s
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

JOBS = 20_000
ENQUEUE = (
    "from bench_app import app, noop\n"
    f"for _ in range({JOBS // 5000}): app.enqueue_many([noop.prepare() for _ in range(5000)])\n"
    "app.close()\n"
)


def main() -> None:
    src, level = sys.argv[1], sys.argv[2]
    bench = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, CONVEYOR_URL=f"sqlite:///{tmp}/bench.db",
                   PYTHONPATH=os.pathsep.join([src, bench]))
        subprocess.run([sys.executable, "-c", ENQUEUE], env=env, check=True,
                       stderr=subprocess.DEVNULL)
        command = [sys.executable, "-m", "conveyor", "worker", "-A", "bench_app:app", "--burst",
                   "-c", "16", "--log-level", level]
        started = time.perf_counter()
        with open(os.path.join(tmp, "worker.log"), "wb") as log:
            procs = [subprocess.Popen(command, env=env, stdout=log, stderr=log)
                     for _ in range(2)]
            for proc in procs:
                proc.wait(timeout=600)
        print(f"{JOBS / (time.perf_counter() - started):,.0f}")


if __name__ == "__main__":
    main()
