"""The asyncio pool against the thread pool on I/O-bound jobs: N jobs that each
`await asyncio.sleep(S)`, drained by one real `conveyor worker --burst`.

    .venv/bin/python bench/asyncio_pool.py                      # SQLite, 5,000 x 0.05 s
    .venv/bin/python bench/asyncio_pool.py --postgres --record  # PostgreSQL on loopback

Per pool (asyncio -c 500, thread -c 16 by default), one fresh database each run: enqueue the
jobs (enqueue_many), then start the worker and wait for it to exit. Two figures:

- drain: from the first job's start to the last job's end, as the jobs' own code measured them
  (time.time() around the await, appended to a file): the time the pool took to run them all,
  without interpreter start-up or the burst worker's exit;
- worker: wall time of the worker process, from spawn to exit (includes start-up, about
  half a second on a quiet machine).

Ideal drain for the asyncio pool: N * S / c (5,000 * 0.05 / 500 = 0.5 s). The targets
checked: asyncio drain <= 2x ideal, and >= 5x faster than the thread pool's drain.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from common import HERE, command_line, conveyor_revision, machine, now_utc, record


def run_once(url: str, pool: str, concurrency: int, jobs: int, seconds: float,
             work: Path) -> tuple[float, float]:
    """(drain seconds from the jobs' own timestamps, worker process wall seconds)."""
    spans = work / f"spans-{pool}-{time.monotonic_ns()}"
    env = dict(os.environ, CONVEYOR_URL=url, BENCH_SPANS=str(spans),
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    os.environ["CONVEYOR_URL"] = url
    from conveyor import Conveyor, ConveyorWarning

    # Enqueued by name before any worker registered the task: say nothing about it.
    warnings.simplefilter("ignore", ConveyorWarning)
    app = Conveyor(url)
    try:
        for offset in range(0, jobs, 1000):
            count = min(1000, jobs - offset)
            app.enqueue_many([app.prepare("bench.async_sleep", seconds) for _ in range(count)])
        command = [sys.executable, "-m", "conveyor", "worker", "-A", "bench_app:app", "--url",
                   url, "--burst", "--pool", pool, "-c", str(concurrency), "--log-level",
                   "warning"]
        started = time.perf_counter()
        proc = subprocess.Popen(command, env=env)
        try:
            code = proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        wall = time.perf_counter() - started
        if code != 0:
            raise SystemExit(f"worker exited with {code}")
        counts = app.inspector.count_by_state()
    finally:
        app.close()
    succeeded = sum(per.get("succeeded", 0) for per in counts.values())
    lines = spans.read_text().split("\n")[:-1]
    if succeeded != jobs or len(lines) != jobs:
        raise SystemExit(f"{pool}: {succeeded} succeeded, {len(lines)} ran, of {jobs}: {counts}")
    starts, ends = zip(*((float(a), float(b)) for a, b in (line.split() for line in lines)),
                       strict=True)
    return max(ends) - min(starts), wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--sleep", type=float, default=0.05, help="seconds each job awaits")
    parser.add_argument("--asyncio-concurrency", type=int, default=500)
    parser.add_argument("--thread-concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="runs per pool; median shown")
    parser.add_argument("--postgres", action="store_true",
                        help="PostgreSQL on loopback (--pg-url) instead of a SQLite file")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    options = parser.parse_args()
    if not 1 <= options.repeats <= 20:
        raise SystemExit("--repeats must be from 1 to 20")

    pools = [("asyncio", options.asyncio_concurrency), ("thread", options.thread_concurrency)]
    results: dict[str, list[tuple[float, float]]] = {pool: [] for pool, _ in pools}
    server = None
    backend = "SQLite (WAL, synchronous=NORMAL)"
    if options.postgres:
        from pg import Server

        server = Server(options.pg_url)
        server.drop_leftovers()
        backend = server.version()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for repeat in range(options.repeats):
                for pool, concurrency in pools:
                    if server is not None:
                        url = server.create(f"asyncio_pool_{pool}")
                    else:
                        url = f"sqlite:///{work}/{pool}-{repeat}.db"
                    try:
                        drain, wall = run_once(url, pool, concurrency, options.jobs,
                                               options.sleep, work)
                    finally:
                        if server is not None:
                            server.drop(f"conveyor_bench_asyncio_pool_{pool}")
                    results[pool].append((drain, wall))
                    print(f"{pool} -c {concurrency}: drain {drain:.3f} s, worker {wall:.3f} s",
                          flush=True)
    finally:
        if server is not None:
            server.drop_all()

    ideal = options.jobs * options.sleep / options.asyncio_concurrency
    drain_of = {pool: statistics.median(d for d, _ in runs) for pool, runs in results.items()}
    wall_of = {pool: statistics.median(w for _, w in runs) for pool, runs in results.items()}
    rows = [
        "| pool | drain, s (median) | drain runs, s | worker process, s (median) "
        "| jobs/s (drain) |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for pool, concurrency in pools:
        runs = ", ".join(f"{d:.3f}" for d, _ in results[pool])
        rows.append(f"| {pool} -c {concurrency} | {drain_of[pool]:.3f} | {runs} | "
                    f"{wall_of[pool]:.3f} | {options.jobs / drain_of[pool]:,.0f} |")
    speedup = drain_of["thread"] / drain_of["asyncio"]
    within = drain_of["asyncio"] / ideal
    checks = [
        f"- asyncio drain {drain_of['asyncio']:.3f} s = {within:.2f}x the ideal {ideal:.3f} s "
        f"(target <= 2x): {'yes' if within <= 2 else 'NO'}",
        f"- asyncio {speedup:.1f}x faster than thread -c {options.thread_concurrency} "
        f"(target >= 5x): {'yes' if speedup >= 5 else 'NO'}",
    ]
    block = "\n".join([
        f"## {now_utc()}: asyncio_pool",
        "",
        f"{machine()}, conveyor at {conveyor_revision()}; {backend}.",
        f"{options.jobs:,} jobs, each `await asyncio.sleep({options.sleep:g})`, drained by one "
        "`conveyor worker --burst --log-level warning`; drain = first job start to last job "
        f"end from the jobs' own timestamps; {options.repeats} run(s) per pool, fresh database "
        "each.",
        "",
        *rows,
        "",
        *checks,
        "",
        f"`{command_line()}`",
    ])
    print(block)
    if options.record:
        record(block)


if __name__ == "__main__":
    main()
