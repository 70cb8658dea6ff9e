"""What limits cost a job (issue 11): no-op throughput of 2 `conveyor worker --burst` processes
on three workloads, interleaved round by round, medians:

- `none`: no limit declared anywhere (the baseline);
- `other`: plain no-op jobs while another task has rate and concurrency limits (so every
  claim runs the limited claim too, and finds nothing): target within 10 % of `none`;
- `keyed`: every job carries a concurrency key (100 distinct keys, a limit that never binds):
  target at least 50 % of `none`;
- `throttled`: plain no-op jobs while 1,000 jobs of another task wait on its rate limit
  (1/h): every round looks at them first, and can start none.

Jobs/s is measured from the jobs' own start times (started_at, the database's clock), over the
10 %-90 % of starts, so interpreter start-up is left out.

    .venv/bin/python bench/limits_throughput.py --backend sqlite --jobs 20000 --rounds 3
    .venv/bin/python bench/limits_throughput.py --backend postgresql --jobs 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from common import HERE, median, now_utc
from pg import DEFAULT_ADMIN_URL, Server

WORKLOADS = ("none", "other", "keyed", "throttled")
KEYS = 100


def run_once(url: str, workload: str, jobs: int, workers: int, concurrency: int) -> float:
    env = dict(os.environ, CONVEYOR_URL=url, BENCH_LIMITS="0" if workload == "none" else "1",
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    enqueue = ("from limits_app import app, noop\n"
               "import sys\n"
               "jobs = int(sys.argv[1])\n"
               "for offset in range(0, jobs, 5000):\n"
               "    n = min(5000, jobs - offset)\n")
    if workload == "keyed":
        enqueue += ("    from limits_app import keyed\n"
                    f"    app.enqueue_many([keyed.prepare(f'k{{i % {KEYS}}}') "
                    "for i in range(offset, offset + n)])\n")
    else:
        enqueue += "    app.enqueue_many([noop.prepare() for _ in range(n)])\n"
    if workload == "throttled":
        enqueue += ("from limits_app import throttled\n"
                    "app.enqueue_many([throttled.prepare() for _ in range(1000)])\n")
    # A worker first registers the tasks (their limits), as in production.
    subprocess.run([sys.executable, "-m", "conveyor", "worker", "-A", "limits_app:app",
                    "--burst", "--log-level", "warning"], env=env, check=True)
    subprocess.run([sys.executable, "-c", enqueue, str(jobs)], env=env, check=True)
    command = [sys.executable, "-m", "conveyor", "worker", "-A", "limits_app:app", "--burst",
               "-c", str(concurrency), "--log-level", "warning"]
    procs = [subprocess.Popen(command, env=env) for _ in range(workers)]
    for proc in procs:
        if proc.wait(timeout=600) != 0:
            raise SystemExit(f"worker exited with {proc.returncode}")
    starts = sorted(started_at(url))
    if len(starts) != jobs:
        raise SystemExit(f"{workload}: {len(starts)} of {jobs} jobs ran")
    low, high = starts[int(jobs * 0.1)], starts[int(jobs * 0.9)]
    return (int(jobs * 0.9) - int(jobs * 0.1)) / (high - low)


def started_at(url: str) -> list[float]:
    query = ("SELECT started_at FROM conveyor_jobs WHERE state = 'succeeded' "
             "AND task <> 'bench.throttled'")
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as con:
            return [row[0] for row in con.execute(query)]
    import psycopg

    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute(query)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    options = parser.parse_args()

    rates: dict[str, list[float]] = {w: [] for w in WORKLOADS}
    server = Server(options.admin_url) if options.backend == "postgresql" else None
    if server is not None:
        server.drop_leftovers()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for round_ in range(options.rounds):
                for workload in WORKLOADS:
                    if server is not None:
                        url = server.create(f"limits_{workload}_{round_}")
                    else:
                        url = f"sqlite:///{Path(tmp) / f'{workload}-{round_}.db'}"
                    rate = run_once(url, workload, options.jobs, options.workers,
                                    options.concurrency)
                    rates[workload].append(rate)
                    print(f"round {round_ + 1} {workload}: {rate:,.0f} jobs/s", flush=True)
                    if server is not None:
                        server.drop(url.rsplit("/", 1)[1])
    finally:
        if server is not None:
            server.drop_all()
    base = median(rates["none"])
    print(f"\n{now_utc()} {options.backend}, {options.jobs} no-op jobs, {options.workers} "
          f"workers x {options.concurrency} threads, {options.rounds} rounds")
    print("| workload | runs, jobs/s | median | vs none |")
    print("| --- | --- | ---: | ---: |")
    for workload in WORKLOADS:
        runs = ", ".join(f"{r:,.0f}" for r in rates[workload])
        print(f"| {workload} | {runs} | {median(rates[workload]):,.0f} | "
              f"{median(rates[workload]) / base:.2f} |")


if __name__ == "__main__":
    main()
