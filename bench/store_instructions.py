"""Instructions per job of the SQLite store's hot paths, counted by valgrind (callgrind), not
timed: the same count whatever else the machine is doing, so a change to the SQL or the store
shows on a noisy machine where a timed run would not.

Three paths, each on a fresh SQLite file of no-op jobs:
- `round`: what a busy worker's rounds cost per job: `ack_and_claim` of the last round's
  successes and up to 256 more jobs, until none is left (claim + ack, Python and SQLite), in
  this process (no worker, no threads);
- `enqueue`: a single `task.enqueue()` (prepare, checks, the INSERT, the job's handle), in this
  process;
- `worker`: a whole `conveyor worker --burst -c 16 --prefetch 256 --log-level warning` draining
  the jobs (its threads, duties and polling too): the worker CPU target's count. Its threads
  make it vary by a few per cent from run to run, as the others do not.

A path's count is that of a run doing it N times minus that of a run doing it 0 times (import,
schema, set-up). Each tree given is counted in its own process, with PYTHONPATH set to it:

    bench/.venv/bin/python bench/store_instructions.py --tree before=/tmp/old-tree/src \
        --tree after=src [--jobs 10000] [--record]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import command_line, machine, markdown_table, now_utc, record

PATHS = ("round", "enqueue", "worker")
WORKER_OPTIONS = ("--burst", "-c", "16", "--prefetch", str(256), "--log-level", "warning")
ROUND = 256
COLLECTED = re.compile(r"Collected : (\d+)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=SRC",
                        help="a conveyor src/ folder to count, e.g. after=src (repeatable)")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    parser.add_argument("--run", nargs=3, metavar=("PATH", "JOBS", "FILE"),
                        help=argparse.SUPPRESS)  # the counted process itself
    options = parser.parse_args()
    if options.run:
        path, jobs, file = options.run
        run(path, int(jobs), Path(file))
        return
    trees = dict(spec.split("=", 1) for spec in options.tree) or {
        "this tree": str(Path(__file__).resolve().parent.parent / "src")}
    rows = []
    for name, src in trees.items():
        per_job = [count(src, path, options.jobs) for path in PATHS]
        rows.append([name, *(f"{value:,.0f}" for value in per_job)])
        print(f"{name}: " + ", ".join(f"{path} {value:,.0f}" for path, value
                                      in zip(PATHS, per_job, strict=True)), flush=True)
    table = markdown_table(["tree", "round (claim + ack), instructions a job",
                            "single enqueue, instructions a job",
                            "whole worker, instructions a job"], rows)
    print(table)
    if options.record:
        record(f"## {now_utc()}: SQLite store, instructions a job (callgrind)\n\n"
               f"Machine: {machine()}. {options.jobs:,} no-op jobs, rounds of {ROUND}.\n\n"
               f"`{command_line()}`\n\n{table}\n")


def count(src: str, path: str, jobs: int) -> float:
    """Instructions a job of `path` with the tree at `src`."""
    return (collected(src, path, jobs) - collected(src, path, 0)) / jobs


def collected(src: str, path: str, jobs: int) -> int:
    with tempfile.TemporaryDirectory() as work:
        file = Path(work) / "q.db"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, str(Path(__file__).parent)]),
                   CONVEYOR_URL=f"sqlite:///{file}")
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # compiled once, not in every counted run
        this = [sys.executable, __file__, "--run"]
        if path == "worker":
            fill = [*this, "fill", str(jobs), str(file)]
            command = [sys.executable, "-m", "conveyor", "worker", "-A", "bench_app:app",
                       *WORKER_OPTIONS]
        else:
            fill, command = None, [*this, path, str(jobs), str(file)]
        for counted in (False, True):  # the first, untimed: compiles, warms the cache
            if fill is not None:
                subprocess.run(fill, env=env, check=True, capture_output=True)
            prefix = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
            done = subprocess.run([*prefix, *command] if counted else command, env=env,
                                  capture_output=True, text=True, check=True)
    found = COLLECTED.search(done.stderr)
    if found is None:
        raise SystemExit(f"valgrind said no count:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def run(path: str, jobs: int, file: Path) -> None:
    from conveyor import Conveyor
    from conveyor.outcomes import Succeeded

    for leftover in file.parent.glob(file.name + "*"):
        leftover.unlink()
    app = Conveyor(f"sqlite:///{file}")
    noop = app.task(name="bench.noop")(_noop)
    backend = app.backend
    if path == "fill":  # the worker path's jobs, enqueued before the counted worker starts
        app.inspector.schema_version()  # the schema made here, with 0 jobs too
        for start in range(0, jobs, ROUND):
            app.enqueue_many([noop.prepare() for _ in range(min(ROUND, jobs - start))])
    elif path == "enqueue":
        for _ in range(jobs):
            noop.enqueue()
    else:
        app.enqueue_many([noop.prepare() for _ in range(jobs)])
        done: list[Succeeded] = []
        while True:
            now = time.time()
            claimed = backend.ack_and_claim(done, "bench", ["default"], ROUND, 60.0)[1]
            if not claimed and not done:
                break
            done = [Succeeded(job.id, job.token, job.attempt, now, now, "null")
                    for job in claimed]
    app.close()


def _noop() -> None:
    return None


if __name__ == "__main__":
    main()
