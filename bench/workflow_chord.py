"""A chord of N no-op members and a callback (issue 12), on 2 `conveyor worker --burst`
processes, round after round:

- enqueue: `chord(...).enqueue()` of N members and the callback (every job and edge in one
  transaction), in jobs/s (the issue's target on SQLite: at least 30,000);
- fan-in: from the last member's end (the time.time() it returns) to the callback's start
  (the callback computes it: every member's end is in its input), on one machine's clock;
  the issue's target: under 50 ms at p50;
- the members' own throughput (10 %-90 % of their starts), beside the plain no-op figures.

    .venv/bin/python bench/workflow_chord.py --backend sqlite --members 10000 --rounds 5
    .venv/bin/python bench/workflow_chord.py --backend postgresql --members 10000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import HERE, median, now_utc
from pg import DEFAULT_ADMIN_URL, Server

ENQUEUE = """
import sys, time
import conveyor
from workflow_app import app, member, gather
n = int(sys.argv[1])
flow = conveyor.chord([member.s(i) for i in range(n)], gather.s())
started = time.perf_counter()
handle = flow.enqueue()
print(time.perf_counter() - started, handle.id)
"""


def rows(url: str, statement: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as con:
            return list(con.execute(statement))
    import psycopg

    with psycopg.connect(url) as conn:
        return list(conn.execute(statement))


def run_once(url: str, members: int, workers: int, concurrency: int) -> tuple[float, float,
                                                                             float]:
    env = dict(os.environ, CONVEYOR_URL=url,
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    # A worker registers the tasks first, as in production.
    subprocess.run([sys.executable, "-m", "conveyor", "worker", "-A", "workflow_app:app",
                    "--burst", "--log-level", "warning"], env=env, check=True)
    out = subprocess.run([sys.executable, "-c", ENQUEUE, str(members)], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    enqueue_rate = (members + 1) / float(out[0])
    command = [sys.executable, "-m", "conveyor", "worker", "-A", "workflow_app:app", "--burst",
               "-c", str(concurrency), "--log-level", "warning"]
    procs = [subprocess.Popen(command, env=env) for _ in range(workers)]
    for proc in procs:
        if proc.wait(timeout=600) != 0:
            raise SystemExit(f"worker exited with {proc.returncode}")
    ends = rows(url, "SELECT started_at, finished_at FROM conveyor_jobs "
                     "WHERE task = 'bench.member' AND state = 'succeeded'")
    callback = rows(url, "SELECT started_at, result FROM conveyor_jobs "
                         "WHERE task = 'bench.gather' AND state = 'succeeded'")
    fed, fan_in = json.loads(callback[0][1]) if len(callback) == 1 else (0, 0.0)
    if len(ends) != members or fed != members:
        raise SystemExit(f"{len(ends)} of {members} members and {callback} callback ran")
    starts = sorted(start for start, _ in ends)
    low, high = starts[int(members * 0.1)], starts[int(members * 0.9)]
    return enqueue_rate, fan_in, (int(members * 0.9) - int(members * 0.1)) / (high - low)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    options = parser.parse_args()

    server = Server(options.admin_url) if options.backend == "postgresql" else None
    if server is not None:
        server.drop_leftovers()
    runs: list[tuple[float, float, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for round_ in range(options.rounds):
                if server is not None:
                    url = server.create(f"chord_{round_}")
                else:
                    url = f"sqlite:///{Path(tmp) / f'chord-{round_}.db'}"
                run = run_once(url, options.members, options.workers, options.concurrency)
                runs.append(run)
                print(f"round {round_ + 1}: enqueue {run[0]:,.0f} jobs/s, fan-in "
                      f"{run[1] * 1000:.1f} ms, members {run[2]:,.0f} jobs/s", flush=True)
                if server is not None:
                    server.drop(url.rsplit("/", 1)[1])
    finally:
        if server is not None:
            server.drop_all()
    print(f"\n{now_utc()} {options.backend}, chord of {options.members:,} no-op members, "
          f"{options.workers} workers x {options.concurrency} threads, {options.rounds} rounds")
    print("| measure | runs | median |")
    print("| --- | --- | ---: |")
    for index, (name, scale, unit) in enumerate((("enqueue", 1, "jobs/s"),
                                                 ("last member end -> callback start", 1000,
                                                  "ms"),
                                                 ("members processed", 1, "jobs/s"))):
        values = [run[index] * scale for run in runs]
        shown = ", ".join(f"{v:,.1f}" if unit == "ms" else f"{v:,.0f}" for v in values)
        middle = median(values)
        print(f"| {name}, {unit} | {shown} | "
              f"{middle:,.1f} |" if unit == "ms" else f"| {name}, {unit} | {shown} | "
              f"{middle:,.0f} |")


if __name__ == "__main__":
    main()
