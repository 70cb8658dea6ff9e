"""What bounds a single enqueue on PostgreSQL: conveyor's `task.enqueue()` and pgqueuer's
`Queries.enqueue()` beside the same work with nothing around it, interleaved.

Each variant enqueues `--jobs` times, one autocommit statement (one durable commit) each, on
one connection to a fresh database of its own:

- `conveyor`: `task.enqueue()`, conveyor's whole path (prepare, checks, pool, record);
- `conveyor's statement, psycopg`: the SQL conveyor sends for it (enqueue.sql, prepared) with
  the same parameters, straight through psycopg: conveyor's client with no Python of its own;
- `conveyor's statement, asyncpg`: the same statement through asyncpg, pgqueuer's driver;
- `pgqueuer`: `Queries.enqueue("noop", None, 0)` on asyncpg (as run_all.py);
- `a one-column insert, psycopg`: `INSERT INTO t (x) VALUES (1)`: the server's floor for one
  durable commit on this machine.

With `--async-commit`, each variant also runs with `synchronous_commit=off` in its session:
the difference is what the commit's WAL flush costs it.

    bench/.venv/bin/python bench/pg_enqueue_floor.py [--jobs 3000] [--rounds 4] [--record]

`--smoke` (the test suite): a few enqueues each, never recorded, pgqueuer's variants left out
where pgqueuer or asyncpg is not installed, databases named with this process's pid.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import time
from collections.abc import Callable
from typing import Any

from common import command_line, conveyor_revision, machine, markdown_table, median, now_utc, record
from pg import DEFAULT_ADMIN_URL, Server

PARAMS: dict[str, Any] = {
    "task": "bench.noop", "queue": "default", "priority": 0, "args": "[]", "kwargs": "{}",
    "max_attempts": 3, "delay": None, "run_at": None, "backoff": None, "timeout": None,
    "soft_timeout": None, "unique_key": None, "limit_key": None, "channel": "conveyor",
}
TINY = "INSERT INTO floor_t (x) VALUES (1)"
PGQUEUER = "pgqueuer `Queries.enqueue()`"


def _noop() -> None:
    return None


def conveyor_statement() -> str:
    from conveyor.backends.postgres import _q

    return _q("enqueue")


def as_numbered(query: str) -> tuple[str, list[str]]:
    """psycopg's `%(name)s` placeholders as asyncpg's `$n`, and the name of each n."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return re.sub(r"%\((\w+)\)s", number, query).replace("%%", "%"), names


def _session(synchronous: bool) -> str:
    return "" if synchronous else "SET synchronous_commit = off"


def run_conveyor(url: str, jobs: int, synchronous: bool) -> float:
    from conveyor import Conveyor

    options = "" if synchronous else "?options=-c%20synchronous_commit%3Doff"
    with Conveyor(url + options) as app:
        noop = app.task(name="bench.noop")(_noop)
        noop.enqueue()  # the schema and a warm connection, untimed
        started = time.perf_counter()
        for _ in range(jobs):
            noop.enqueue()
        return time.perf_counter() - started


def run_psycopg(url: str, jobs: int, synchronous: bool, query: str,
                params: dict[str, Any] | None) -> float:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if not synchronous:
            conn.execute(_session(synchronous))
        conn.execute(query, params, prepare=True)
        started = time.perf_counter()
        for _ in range(jobs):
            conn.execute(query, params, prepare=True)
        return time.perf_counter() - started


def run_asyncpg_statement(url: str, jobs: int, synchronous: bool) -> float:
    import asyncpg

    query, names = as_numbered(conveyor_statement())
    values = [PARAMS[name] for name in names]

    async def go() -> float:
        conn = await asyncpg.connect(url)
        try:
            if not synchronous:
                await conn.execute(_session(synchronous))
            statement = await conn.prepare(query)
            await statement.fetch(*values)
            started = time.perf_counter()
            for _ in range(jobs):
                await statement.fetch(*values)
            return time.perf_counter() - started
        finally:
            await conn.close()

    return asyncio.run(go())


def run_pgqueuer(url: str, jobs: int, synchronous: bool) -> float:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    async def go() -> float:
        conn = await asyncpg.connect(url)
        try:
            if not synchronous:
                await conn.execute(_session(synchronous))
            queries = Queries(AsyncpgDriver(conn))
            await queries.enqueue("noop", None, 0)
            started = time.perf_counter()
            for _ in range(jobs):
                await queries.enqueue("noop", None, 0)
            return time.perf_counter() - started
        finally:
            await conn.close()

    return asyncio.run(go())


def install(conveyor_url: str, pgqueuer_url: str | None, tiny_url: str) -> None:
    import psycopg

    from conveyor import Conveyor

    with Conveyor(conveyor_url) as app:
        app.backend  # noqa: B018 - conveyor's tables
    if pgqueuer_url is not None:
        asyncio.run(install_pgqueuer(pgqueuer_url))
    with psycopg.connect(tiny_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE floor_t (id bigserial PRIMARY KEY, x int)")


async def install_pgqueuer(url: str) -> None:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(url)
    try:
        await Queries(AsyncpgDriver(conn)).install()
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000, help="enqueues per variant and round")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (medians)")
    parser.add_argument("--async-commit", action="store_true",
                        help="also each variant with synchronous_commit=off")
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    parser.add_argument("--smoke", action="store_true",
                        help="a few enqueues each, to see that it runs; never recorded")
    options = parser.parse_args()
    if options.smoke:
        options.jobs, options.rounds, options.record = 5, 1, False
    peers = not options.smoke or all(importlib.util.find_spec(name) is not None
                                     for name in ("asyncpg", "pgqueuer"))

    # A smoke run (the test suite) leaves other runs' databases alone, and names its own.
    server = Server(options.admin_url, tag=f"smoke{os.getpid()}_" if options.smoke else "")
    if not options.smoke:
        server.drop_leftovers()
    try:
        conveyor_url = server.create("floor_conveyor")
        pgqueuer_url = server.create("floor_pgqueuer")
        tiny_url = server.create("floor_tiny")
        install(conveyor_url, pgqueuer_url if peers else None, tiny_url)
        statement = conveyor_statement()
        variants: dict[str, Callable[[bool], float]] = {
            "conveyor `task.enqueue()`": lambda s: run_conveyor(conveyor_url, options.jobs, s),
            "conveyor's statement, psycopg": lambda s: run_psycopg(
                conveyor_url, options.jobs, s, statement, PARAMS),
            "conveyor's statement, asyncpg": lambda s: run_asyncpg_statement(
                conveyor_url, options.jobs, s),
            PGQUEUER: lambda s: run_pgqueuer(pgqueuer_url, options.jobs, s),
            "a one-column insert, psycopg": lambda s: run_psycopg(
                tiny_url, options.jobs, s, TINY, None),
        }
        if not peers:
            print("asyncpg or pgqueuer is not installed: their variants are left out")
            del variants["conveyor's statement, asyncpg"]
            del variants[PGQUEUER]
        modes = (True, False) if options.async_commit else (True,)
        seconds: dict[tuple[str, bool], list[float]] = {
            (name, mode): [] for name in variants for mode in modes}
        for round_index in range(options.rounds):
            names = list(variants) if round_index % 2 == 0 else list(reversed(variants))
            for name in names:
                for mode in modes:
                    seconds[(name, mode)].append(variants[name](mode))
    finally:
        server.drop_all()

    pgqueuer_us = (median(seconds[(PGQUEUER, True)]) / options.jobs * 1e6 if PGQUEUER in variants
                   else None)
    rows = []
    for name in variants:
        durable = median(seconds[(name, True)]) / options.jobs * 1e6
        row = [name, f"{durable:.0f}", f"{1e6 / durable:,.0f}",
               "n/a" if pgqueuer_us is None else f"{pgqueuer_us / durable:.2f}"]
        if options.async_commit:
            relaxed = median(seconds[(name, False)]) / options.jobs * 1e6
            row += [f"{relaxed:.0f}", f"{durable - relaxed:.0f}"]
        rows.append(row)
    header = ["variant", "us an enqueue", "enqueues/s", "pgqueuer's us / this"]
    if options.async_commit:
        header += ["us, synchronous_commit=off", "the flush's share, us"]
    table = markdown_table(header, rows)
    text = (f"## {now_utc()}: PostgreSQL single enqueue and its floor\n\n"
            f"Machine: {machine()}. conveyor at {conveyor_revision()}. {options.jobs:,} "
            f"enqueues per variant and round, {options.rounds} rounds interleaved (order "
            "reversed every other round), medians.\n\n"
            f"`{command_line()}`\n\n{table}\n")
    print(text)
    if options.record:
        record(text)


if __name__ == "__main__":
    main()
