"""Claim cost against the backlog: claim+ack rate with 1,000,000 queued jobs vs 10,000.

Builds each database once (conveyor's own migration, one job enqueued through conveyor, then
copied by SQL with fresh ids and increasing run_at) and caches it under /tmp, keyed by the
schema version and a hash of the migrations, so re-runs only copy the file. Each round then
copies the cached file, opens it with conveyor's SQLite backend and times `claim` + `ack_many`
of N jobs in batches from one process.

    .venv/bin/python bench/claim_scaling.py --record
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import command_line, machine, markdown_table, median, now_utc, record

CACHE = Path(tempfile.gettempdir()) / "conveyor-bench-cache"


def schema_key() -> str:
    from conveyor import sql

    migrations = sql.migrations("sqlite")
    digest = hashlib.sha256()
    for version, name, text in migrations:
        digest.update(f"{version}:{name}:{text}".encode())
    return f"schema{migrations[-1][0]}-{digest.hexdigest()[:12]}"


def cached_db(count: int, *, log: bool = True) -> Path:
    """A database holding `count` queued no-op jobs in queue 'default' (built once)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"queued-{count}-{schema_key()}.db"
    if path.exists():
        return path
    started = time.perf_counter()
    building = path.with_suffix(".building")
    for leftover in CACHE.glob(building.name + "*"):
        leftover.unlink()
    _build(building, count)
    building.rename(path)
    for stale in CACHE.glob(f"queued-{count}-*.db"):  # built for an older schema
        if stale != path:
            stale.unlink()
    if log:
        print(f"  built {path} ({count:,} jobs) in {time.perf_counter() - started:.1f} s",
              flush=True)
    return path


def _build(path: Path, count: int) -> None:
    from conveyor import Conveyor

    with Conveyor(f"sqlite:///{path}") as app:
        noop = app.task(name="bench.noop")(_noop)
        template = app.enqueue_many([noop.prepare()])[0].id
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        columns = [row[1] for row in conn.execute("PRAGMA table_info(conveyor_jobs)")]
        copied = ", ".join(
            f"t.{name} + seq.n * 1e-6" if name in ("run_at", "enqueued_at") else f"t.{name}"
            for name in columns if name != "id"
        )
        names = ", ".join(name for name in columns if name != "id")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            f"""WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq
                                         WHERE n < :extra)
                INSERT INTO conveyor_jobs (id, {names})
                SELECT t.id + seq.n, {copied}
                FROM seq, (SELECT * FROM conveyor_jobs WHERE id = :template) AS t""",
            {"extra": count - 1, "template": template},
        )
        conn.execute("COMMIT")
        queued = conn.execute(
            "SELECT count(*) FROM conveyor_jobs WHERE state = 'queued'").fetchone()[0]
        if queued != count:
            raise RuntimeError(f"built {queued} queued jobs, wanted {count}")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _noop() -> None:
    return None


@dataclass
class Round:
    rate: float  # claim+ack jobs/s
    claim_s: float
    ack_s: float
    client_cpu_s: float = math.nan  # this process, claims and acks (PostgreSQL rounds)
    server_claim_s: float = math.nan  # CPU of the server process serving the claims
    server_ack_s: float = math.nan


@dataclass
class ScalingResult:
    backlog: int
    rounds: list[Round] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """The best round: noise on a shared machine only ever slows a round down."""
        return max(r.rate for r in self.rounds)

    @property
    def median_rate(self) -> float:
        return median([r.rate for r in self.rounds])


def claim_round(source: Path, workdir: Path, jobs: int, batch: int) -> Round:
    from conveyor.backends.sqlite import SQLiteBackend
    from conveyor.outcomes import Succeeded

    copy = workdir / "claim.db"
    for leftover in workdir.glob("claim.db*"):
        leftover.unlink()
    shutil.copyfile(source, copy)
    # Flush the copy now: otherwise the first checkpoint's fsync would write back the whole
    # freshly copied file and bill it to the claims.
    fd = os.open(copy, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.sync()  # and whatever the previous round's clean-up left for the disk to do
    backend = SQLiteBackend(copy)
    try:
        owner = "bench-claimer"
        # One untimed batch: first statements prepared, first pages read.
        warm = backend.ack_and_claim((), owner, ["default"], batch, 30.0)[1]
        now = time.time()
        backend.ack_many([Succeeded(j.id, j.token, j.attempt, now, now, "null") for j in warm],
                         owner)
        claim_s = ack_s = 0.0
        done = 0
        while done < jobs:
            t0 = time.perf_counter()
            claimed = backend.ack_and_claim((), owner, ["default"], min(batch, jobs - done),
                                            30.0)[1]
            t1 = time.perf_counter()
            if not claimed:
                raise RuntimeError(f"nothing left to claim after {done} jobs")
            now = time.time()
            accepted = backend.ack_many(
                [Succeeded(j.id, j.token, j.attempt, now, now, "null") for j in claimed], owner)
            t2 = time.perf_counter()
            if not all(accepted):
                raise RuntimeError("an ack was refused")
            claim_s += t1 - t0
            ack_s += t2 - t1
            done += len(claimed)
    finally:
        backend.close()
        for leftover in workdir.glob("claim.db*"):
            leftover.unlink()
    return Round(rate=jobs / (claim_s + ack_s), claim_s=claim_s, ack_s=ack_s)


def run(small: int = 10_000, large: int = 1_000_000, jobs: int = 5_000, batch: int = 32,
        rounds: int = 3) -> tuple[ScalingResult, ScalingResult]:
    if jobs >= small:
        raise ValueError(f"claim fewer jobs ({jobs}) than the small backlog ({small})")
    small_db, large_db = cached_db(small), cached_db(large)
    results = ScalingResult(small), ScalingResult(large)
    with tempfile.TemporaryDirectory(prefix="conveyor-claim-") as tmp:
        for _ in range(rounds):  # alternate, so drift on a noisy machine hits both alike
            results[0].rounds.append(claim_round(small_db, Path(tmp), jobs, batch))
            results[1].rounds.append(claim_round(large_db, Path(tmp), jobs, batch))
    return results


# -- PostgreSQL --------------------------------------------------------------------------------
#
# The same measurement on PostgreSQL: two databases of our own (`conveyor_bench_claim_*`), built
# per run by conveyor's migration, one enqueued job and an INSERT ... SELECT over
# generate_series, and dropped at the end. Between rounds the claimed jobs are put back in the
# queue and the table vacuumed (untimed), so every round starts from the same backlog.

PG_RESET = """UPDATE conveyor_jobs
SET state = 'queued', attempts = 0, worker = NULL, lease_owner = NULL, lease_token = NULL,
    lease_expires_at = NULL, started_at = NULL, finished_at = NULL, result = NULL
WHERE state <> 'queued'"""


def _build_pg(url: str, count: int) -> None:
    from pg import Database

    from conveyor import Conveyor

    with Conveyor(url) as app:
        noop = app.task(name="bench.noop")(_noop)
        template = app.enqueue_many([noop.prepare()])[0].id
    db = Database(url)
    try:
        db.execute(
            """INSERT INTO conveyor_jobs (task, queue, state, priority, args, kwargs,
                                          max_attempts, run_at, enqueued_at)
               SELECT t.task, t.queue, t.state, t.priority, t.args, t.kwargs, t.max_attempts,
                      t.run_at + n * 1e-6, t.enqueued_at + n * 1e-6
               FROM conveyor_jobs AS t, generate_series(1, %(extra)s) AS n
               WHERE t.id = %(template)s""",
            {"extra": count - 1, "template": template})
        queued = db.scalar("SELECT count(*) FROM conveyor_jobs WHERE state = 'queued'")
        if queued != count:
            raise RuntimeError(f"built {queued} queued jobs, wanted {count}")
        db.execute("VACUUM (ANALYZE) conveyor_jobs")
    finally:
        db.close()


def claim_round_pg(url: str, jobs: int, batch: int) -> Round:
    from pg import Database, cpu_delta

    from conveyor.backends.postgres import PostgresBackend
    from conveyor.outcomes import Succeeded

    db = Database(url)
    try:
        db.execute(PG_RESET)
        db.execute("VACUUM (ANALYZE) conveyor_jobs")
    finally:
        db.close()
    backend = PostgresBackend(url)
    watcher = Database(url)  # reads the CPU of the server process serving `backend`
    try:
        owner = "bench-claimer"
        warm = backend.ack_and_claim((), owner, ["default"], batch, 30.0)[1]
        now = time.time()
        backend.ack_many([Succeeded(j.id, j.token, j.attempt, now, now, "null") for j in warm],
                         owner)
        claim_s = ack_s = client_s = server_claim = server_ack = 0.0
        pids = watcher.backend_pids()
        watcher.close()  # /proc only from here on: no query of ours during the round
        done = 0
        while done < jobs:
            cpu0 = watcher.backend_cpu(pids)
            c0 = time.process_time()
            t0 = time.perf_counter()
            claimed = backend.ack_and_claim((), owner, ["default"], min(batch, jobs - done),
                                            30.0)[1]
            t1 = time.perf_counter()
            c1 = time.process_time()
            cpu1 = watcher.backend_cpu(pids)
            if not claimed:
                raise RuntimeError(f"nothing left to claim after {done} jobs")
            c2 = time.process_time()
            t2 = time.perf_counter()
            now = time.time()
            accepted = backend.ack_many(
                [Succeeded(j.id, j.token, j.attempt, now, now, "null") for j in claimed], owner)
            t3 = time.perf_counter()
            c3 = time.process_time()
            cpu2 = watcher.backend_cpu(pids)
            if not all(accepted):
                raise RuntimeError("an ack was refused")
            claim_s += t1 - t0
            ack_s += t3 - t2
            client_s += (c1 - c0) + (c3 - c2)
            server_claim += cpu_delta(cpu0, cpu1)
            server_ack += cpu_delta(cpu1, cpu2)
            done += len(claimed)
    finally:
        watcher.close()
        backend.close()
    return Round(rate=jobs / (claim_s + ack_s), claim_s=claim_s, ack_s=ack_s,
                 client_cpu_s=client_s, server_claim_s=server_claim, server_ack_s=server_ack)
    return Round(rate=jobs / (claim_s + ack_s), claim_s=claim_s, ack_s=ack_s)


def run_postgres(server: Any, small: int = 10_000, large: int = 1_000_000, jobs: int = 5_000,
                 batch: int = 32, rounds: int = 3, log: bool = True
                 ) -> tuple[ScalingResult, ScalingResult]:
    """Claim+ack rate on PostgreSQL with `small` and `large` queued jobs. `server` is a
    pg.Server; the two databases it creates here are dropped before returning."""
    if jobs >= small:
        raise ValueError(f"claim fewer jobs ({jobs}) than the small backlog ({small})")
    urls = []
    try:
        for count in (small, large):
            started = time.perf_counter()
            url = server.create(f"claim_{count}")
            urls.append(url)
            _build_pg(url, count)
            if log:
                print(f"  built a PostgreSQL database with {count:,} queued jobs in "
                      f"{time.perf_counter() - started:.1f} s", flush=True)
        results = ScalingResult(small), ScalingResult(large)
        for _ in range(rounds):  # alternate, so drift on a noisy machine hits both alike
            results[0].rounds.append(claim_round_pg(urls[0], jobs, batch))
            results[1].rounds.append(claim_round_pg(urls[1], jobs, batch))
        return results
    finally:
        for url in urls:
            server.drop(url.rsplit("/", 1)[1])


def describe(small: ScalingResult, large: ScalingResult, jobs: int, batch: int) -> str:
    rows = []
    for result in (small, large):
        best = max(result.rounds, key=lambda r: r.rate)
        rows.append([f"{result.backlog:,} queued", f"{result.rate:,.0f}",
                     f"{result.median_rate:,.0f}", f"{best.claim_s / jobs * 1e6:.1f}",
                     f"{best.ack_s / jobs * 1e6:.1f}",
                     ", ".join(f"{r.rate:,.0f}" for r in result.rounds)])
    table = markdown_table(
        ["backlog", "claim+ack jobs/s (best)", "median", "claim us/job (best)",
         "ack us/job (best)", "rounds"], rows)
    text = (f"{table}\n\nratio 1M/10k, best rounds: {large.rate / small.rate:.2f} (target "
            f">= 0.70); medians: {large.median_rate / small.median_rate:.2f}; "
            f"{jobs:,} jobs per round in batches of {batch}, one process")
    best = max(small.rounds, key=lambda r: r.rate)
    if not math.isnan(best.client_cpu_s):
        wall = best.claim_s + best.ack_s
        server = best.server_claim_s + best.server_ack_s
        text += (
            f". Where a claim+ack goes (best round, {small.backlog:,} queued, per job): "
            f"{wall / jobs * 1e6:.0f} us of wall time = this process's CPU "
            f"{best.client_cpu_s / jobs * 1e6:.0f} us + the server process's CPU "
            f"{server / jobs * 1e6:.0f} us (claim {best.server_claim_s / jobs * 1e6:.0f}, ack "
            f"{best.server_ack_s / jobs * 1e6:.0f}) + the rest, "
            f"{(wall - best.client_cpu_s - server) / jobs * 1e6:.0f} us (round trips, WAL "
            f"flushes: 2 commits per batch of {batch})")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=5_000, help="jobs claimed+acked per round")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", action="store_true",
                        help="on PostgreSQL (databases conveyor_bench_claim_*, dropped after)")
    parser.add_argument("--pg-url", default=None,
                        help="admin URL of a loopback PostgreSQL server [default: "
                        "postgresql://postgres@127.0.0.1:5432/postgres]")
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    options = parser.parse_args()
    if options.postgres:
        from pg import DEFAULT_ADMIN_URL, Server

        server = Server(options.pg_url or DEFAULT_ADMIN_URL)
        server.drop_leftovers()  # of an interrupted earlier run
        try:
            small, large = run_postgres(server, options.small, options.large, options.jobs,
                                        options.batch, options.rounds)
        finally:
            server.drop_all()
    else:
        small, large = run(options.small, options.large, options.jobs, options.batch,
                           options.rounds)
    text = describe(small, large, options.jobs, options.batch)
    print(text)
    if options.record:
        where = "PostgreSQL" if options.postgres else "SQLite"
        record(f"### {now_utc()}: claim scaling ({where}), {machine()}\n\n"
               f"`{command_line()}`\n\n{text}")


if __name__ == "__main__":
    main()
