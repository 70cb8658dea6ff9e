"""An idle worker's CPU with many schedules against none: one `conveyor worker` process on an
empty queue, measured over a window after it started (its scheduler has written and read the
schedules by then). Rounds alternate between 0 and N schedules; medians.

    .venv/bin/python bench/idle_schedules.py --schedules 100 --seconds 10 --rounds 3
    .venv/bin/python bench/idle_schedules.py --url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from common import (
    HERE,
    REPO,
    Spawned,
    command_line,
    conveyor_revision,
    idle_cpu,
    machine,
    markdown_table,
    median,
    now_utc,
    record,
    wait_until,
)


def registered(url: str) -> int:
    from conveyor import Conveyor

    with Conveyor(url) as app:
        return len(app.inspector.workers())


def one_round(url: str, schedules: int, seconds: float, log: Path) -> float:
    env = {**os.environ, "CONVEYOR_URL": url, "BENCH_SCHEDULES": str(schedules),
           "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO / "src")])}
    spawned = Spawned()
    try:
        pid = spawned.start([sys.executable, "-m", "conveyor", "worker", "-A",
                             "schedules_app:app", "--log-level", "warning"], env, log)
        wait_until(lambda: registered(url) == 1, 60, "the worker", check=spawned.check_alive)
        time.sleep(2.0)  # start-up settles: the scheduler syncs at its first tick
        total, _ = idle_cpu([pid], seconds)
        spawned.check_alive()
        return total * 100
    finally:
        spawned.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schedules", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="PostgreSQL URL (a fresh schema is made); default SQLite")
    parser.add_argument("--no-record", action="store_true")
    options = parser.parse_args()
    figures: dict[int, list[float]] = {0: [], options.schedules: []}
    schemas: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for n in range(options.rounds):
                for count in ((0, options.schedules) if n % 2 == 0 else (options.schedules, 0)):
                    url = f"sqlite:///{tmp}/idle-{n}-{count}.db"
                    if options.url:
                        schemas.append(f"bench_idle_{os.getpid()}_{n}_{count}")
                        url = fresh_schema(options.url, schemas[-1])
                    figures[count].append(one_round(url, count, options.seconds,
                                                    Path(tmp) / "worker.log"))
        finally:
            if options.url and schemas:
                drop_schemas(options.url, schemas)
    rows = [[str(count), f"{median(values):.2f}", " ".join(f"{v:.2f}" for v in values)]
            for count, values in figures.items()]
    table = markdown_table(["schedules", "idle CPU, % of a core (median)", "rounds"], rows,
                           right=[True, True, False])
    backend = "PostgreSQL" if options.url else "SQLite"
    text = (f"## {now_utc()}: idle worker with schedules ({backend})\n\n{machine()}, "
            f"{conveyor_revision()}. One worker process, empty queues, {options.seconds:g} s "
            f"windows, {options.rounds} rounds alternating.\n\n`{command_line()}`\n\n{table}\n")
    print(text)
    if not options.no_record:
        record(text)


def drop_schemas(server: str, schemas: list[str]) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def fresh_schema(server: str, schema: str) -> str:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in server else "?"
    return f"{server}{sep}options=-csearch_path%3D{schema}"


if __name__ == "__main__":
    main()
