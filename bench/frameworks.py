"""One adapter per job system, so run_all.py runs the same workloads against each.

Every adapter can: enqueue no-ops one at a time (into a scratch store), enqueue many into a
held queue the workers do not read, start its worker processes and tell when they are ready,
open the gate (move the held jobs to the workers' queue in one step), tell when the jobs it was
told to expect are finished, and enqueue "stamp" jobs whose code writes the time it started.

The gate lets the processing rate be measured from the moment the workers are ready rather
than from process start; it is a single statement in each system (a SQL UPDATE, a Redis
RENAME) and is not counted.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import sqlite3
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from common import HERE, Spawned


def _bench_env(bench_dir: Path) -> dict[str, str]:
    paths = [str(HERE)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return dict(os.environ, BENCH_DIR=str(bench_dir), PYTHONPATH=os.pathsep.join(paths))


def _script(name: str) -> str:
    """A console script installed beside this interpreter (the bench virtualenv's bin/)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise RuntimeError(f"{path} not found: run bench/setup.sh and use bench/.venv/bin/python")
    return str(path)


class Framework(ABC):
    key = "?"
    settings = ""  # how its workers are configured, for the report
    enqueue_many_how = ""
    settle = 0.0  # seconds to wait after ready before opening the gate (not timed)
    # How often run_all asks drained() while jobs run. A system that records when each job
    # ended (last_done_at) is timed by that, so it can be asked less often: the asking loads
    # the database the workers use.
    poll_interval = 0.005

    def __init__(self, workdir: Path, workers: int) -> None:
        self.dir = workdir / self.key
        self.dir.mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.spawned = Spawned()
        self.env = _bench_env(self.dir)
        self._expected_done = 0
        self._released = 0
        self._ready_base = 0
        self.ready_needed = workers  # ready marks that mean "all workers ready"

    # -- marks left by tasks in BENCH_DIR ----------------------------------------------------

    def _mark_file(self, name: str) -> Path:
        return self.dir / name

    def done_marks(self) -> int:
        try:
            return self._mark_file("done").stat().st_size
        except FileNotFoundError:
            return 0

    def ready_marks(self) -> int:
        try:
            return len(self._mark_file("ready").read_text().splitlines())
        except FileNotFoundError:
            return 0

    def clear_stamps(self) -> None:
        self._mark_file("stamps").unlink(missing_ok=True)

    def finished(self) -> int:
        """No-op jobs finished so far (their task returned; conveyor: outcome committed)."""
        return self.done_marks()

    def reconnect(self) -> None:  # noqa: B027 - optional hook
        """The driver's own connections again, after the server restarted."""

    def discard_pending(self) -> None:
        """Delete every job not finished (after a server restart broke a run): the step is
        then done again from the start. PostgreSQL adapters only."""
        raise NotImplementedError

    def stamps(self) -> dict[int, float]:
        try:
            lines = self._mark_file("stamps").read_text().splitlines()
        except FileNotFoundError:
            return {}
        found: dict[int, float] = {}
        for line in lines:
            tag, _, stamp = line.partition(" ")
            found[int(tag)] = float(stamp)
        return found

    # -- the workload steps --------------------------------------------------------------------

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Create the stores (untimed)."""

    @abstractmethod
    def enqueue_one(self, count: int) -> float:
        """Enqueue `count` no-ops one call (and commit) each into a scratch store; seconds."""

    @abstractmethod
    def enqueue_many(self, count: int) -> float:
        """Enqueue `count` no-ops into the held queue with the batch API; seconds."""

    def start_workers(self) -> None:
        self._ready_base = self.ready_marks()
        self._spawn()

    @abstractmethod
    def _spawn(self) -> None: ...

    def ready(self) -> bool:
        return self.ready_marks() - self._ready_base >= self.ready_needed

    def expect(self, count: int) -> None:
        """The next `count` no-ops to finish are the ones the gate is about to release."""
        self._expected_done = self.done_marks() + count
        self._released = count

    @abstractmethod
    def open_gate(self) -> None:
        """Move every held job to the workers' queue at once."""

    def drained(self) -> bool:
        return self.done_marks() >= self._expected_done

    def progressed(self) -> bool:
        """At least one released job is done (or at least started, where that is cheaper)."""
        return self.done_marks() > self._expected_done - self._released

    def last_done_at(self) -> float | None:
        """time.time() when the last job ended, where the system records it; else None."""
        return None

    @abstractmethod
    def enqueue_stamp(self, tag: int) -> None: ...

    def stop_workers(self) -> None:
        self.spawned.stop()

    def prepare_run(self) -> None:  # noqa: B027 - optional hook
        """Before each processing run's workers start, with the jobs held (untimed)."""

    def server_cpu(self) -> dict[int, float]:
        """CPU seconds so far of the database server processes serving the workers, by pid
        (PostgreSQL only: SQLite works inside the workers)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and remove what this framework stored outside its folder."""

    def describe_extra(self) -> list[str]:
        return []


# -- conveyor ----------------------------------------------------------------------------------


class ConveyorFramework(Framework):
    key = "conveyor"
    enqueue_many_how = "app.enqueue_many, batches of {batch:,} (one transaction each)"
    durability = "durability normal (WAL, synchronous=NORMAL)"

    def __init__(self, workdir: Path, workers: int, *, concurrency: int | None = None,
                 batch: int = 1000) -> None:
        super().__init__(workdir, workers)
        from conveyor import Conveyor

        self.concurrency = concurrency
        self.batch = batch
        self._describe(concurrency)
        self.url = self._main_url()
        self.env["CONVEYOR_URL"] = self.url
        self.app = Conveyor(self.url)
        self.noop = self.app.task(name="bench.noop")(_noop)
        self.stamp = self.app.task(name="bench.stamp")(_stamp)
        self.stamp_jobs: dict[int, Any] = {}
        self._conn: sqlite3.Connection | None = None

    def _main_url(self) -> str:
        self.path = self.dir / "conveyor.db"
        return f"sqlite:///{self.path}"

    def _scratch_url(self) -> str:
        return f"sqlite:///{self.dir / 'scratch.db'}"

    def _describe(self, concurrency: int | str | None) -> None:
        option = "" if self.concurrency is None else f" -c {self.concurrency}"
        threads = "default" if concurrency is None else str(concurrency)
        self.settings = (f"{self.workers} x `conveyor worker{option}` (thread pool, "
                         f"{threads} threads each), {self.durability}")

    def setup(self) -> None:
        self.app.backend  # noqa: B018 - create the schema now, untimed
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None
        return self._conn

    def _rows(self, query: str) -> list[Any]:
        return list(self.conn.execute(query).fetchall())

    def enqueue_one(self, count: int) -> float:
        from conveyor import Conveyor

        with Conveyor(self._scratch_url()) as scratch:
            noop = scratch.task(name="bench.noop")(_noop)
            scratch.backend  # noqa: B018
            started = time.perf_counter()
            for _ in range(count):
                noop.enqueue()
            return time.perf_counter() - started

    def enqueue_many(self, count: int) -> float:
        held = self.noop.options(queue="hold")
        started = time.perf_counter()
        for offset in range(0, count, self.batch):
            size = min(self.batch, count - offset)
            self.app.enqueue_many([held.prepare() for _ in range(size)])
        return time.perf_counter() - started

    def _spawn(self) -> None:
        command = [sys.executable, "-m", "conveyor", "worker", "-A", "bench_app:app",
                   "--log-level", "warning"]
        if self.concurrency is not None:
            command += ["-c", str(self.concurrency)]
        for index in range(self.workers):
            self.spawned.start(command, self.env, self.dir / f"worker-{index}.log")

    def ready(self) -> bool:
        rows = self._rows("SELECT pid, concurrency FROM conveyor_workers")
        if not set(self.spawned.pids) <= {pid for pid, _ in rows}:
            return False
        mine = sorted({c for pid, c in rows if pid in self.spawned.pids})
        self._describe(", ".join(map(str, mine)))
        return True

    def expect(self, count: int) -> None:
        pass  # drained() looks at the table itself

    def open_gate(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute(
            "UPDATE conveyor_jobs SET queue = 'default' WHERE queue = 'hold' AND state = 'queued'"
        )
        self.conn.execute("COMMIT")

    # Timed by the jobs' own finished_at (the time of the ack that committed them), so the
    # driver need not poll the workers' database every 5 ms.
    poll_interval = 0.05

    def last_done_at(self) -> float | None:
        row = self._rows("SELECT max(finished_at) FROM conveyor_jobs WHERE task = 'bench.noop' "
                         "AND state = 'succeeded'")[0]
        return None if row[0] is None else float(row[0])

    def drained(self) -> bool:
        # Done means the outcome is committed: nothing queued, nothing running. Both checks
        # read a partial index, so polling costs little.
        row = self._rows(
            "SELECT EXISTS (SELECT 1 FROM conveyor_jobs WHERE state = 'queued' "
            "AND queue = 'default') OR EXISTS (SELECT 1 FROM conveyor_jobs "
            "WHERE state = 'running')"
        )[0]
        return not row[0]

    def progressed(self) -> bool:
        row = self._rows(
            "SELECT EXISTS (SELECT 1 FROM conveyor_jobs WHERE state = 'running')")[0]
        return bool(row[0]) or self.drained()

    def finished(self) -> int:
        return self.succeeded_noops()

    def succeeded_noops(self) -> int:
        row = self._rows(
            "SELECT count(*) FROM conveyor_jobs WHERE state = 'succeeded' AND task = 'bench.noop'"
        )[0]
        return int(row[0])

    def enqueue_stamp(self, tag: int) -> None:
        self.stamp_jobs[tag] = self.stamp.enqueue(tag)

    def db_pickup_latencies(self) -> list[float]:
        """started_at - enqueued_at of the stamp jobs, as conveyor itself records them."""
        return [started - enqueued for _, enqueued, started in self.stamp_records()]

    def stamp_records(self) -> list[tuple[int, float, float]]:
        """(tag, enqueued_at, started_at) of the stamp jobs, as conveyor recorded them (the
        database's clock: on PostgreSQL here, the same machine's clock as time.time())."""
        found = []
        for tag, job in self.stamp_jobs.items():
            record = self.app.fetch_record(job.id)
            if record is not None and record.started_at is not None:
                found.append((tag, record.enqueued_at, record.started_at))
        return found

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.app.close()


def _noop() -> None:
    return None


def _stamp(tag: int) -> None:
    return None  # the driver only enqueues it; bench_app.stamp is what workers run


# -- huey, SQLite ------------------------------------------------------------------------------


class HueyFramework(Framework):
    key = "huey-sqlite"
    enqueue_many_how = "task.map() (huey has no batch enqueue: one INSERT and commit per job)"

    def __init__(self, workdir: Path, workers: int) -> None:
        super().__init__(workdir, workers)
        self.settings = (f"`huey_consumer -w {workers} -k process -q` (process workers, default "
                         "polling: 0.1 s initial delay, x1.15 backoff up to 10 s); SqliteHuey, "
                         "WAL, synchronous=NORMAL (set to match conveyor)")
        self.path = self.dir / "huey.db"
        self.env.update(BENCH_HUEY_QUEUE="bench", BENCH_HUEY_DB=str(self.path))
        self._module: Any = importlib.import_module("bench_huey")
        self._conn: sqlite3.Connection | None = None

    def setup(self) -> None:
        self.hold_huey, self.hold_noop, _ = self._module.make_huey("hold", str(self.path))
        self.huey, _, self.stamp = self._module.make_huey("bench", str(self.path))
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)

    def enqueue_one(self, count: int) -> float:
        scratch, noop, _ = self._module.make_huey("scratch", str(self.dir / "scratch.db"))
        try:
            started = time.perf_counter()
            for _ in range(count):
                noop()
            return time.perf_counter() - started
        finally:
            scratch.storage.close()

    def enqueue_many(self, count: int) -> float:
        started = time.perf_counter()
        self.hold_noop.map([()] * count)
        return time.perf_counter() - started

    def _spawn(self) -> None:
        command = [_script("huey_consumer"), "bench_huey.huey", "-w", str(self.workers),
                   "-k", "process", "-q"]
        self.spawned.start(command, self.env, self.dir / "consumer.log")

    def open_gate(self) -> None:
        assert self._conn is not None
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute("UPDATE task SET queue = 'bench' WHERE queue = 'hold'")
        self._conn.execute("COMMIT")

    def enqueue_stamp(self, tag: int) -> None:
        self.stamp(tag)

    def stop_workers(self) -> None:
        self.spawned.stop()  # SIGTERM: huey's immediate shutdown; the queue is empty by now

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        for huey in (getattr(self, "hold_huey", None), getattr(self, "huey", None)):
            if huey is not None:
                huey.storage.close()


# -- celery, Redis ---------------------------------------------------------------------------


class CeleryFramework(Framework):
    key = "celery-redis"
    enqueue_many_how = ("group(...).apply_async() (celery has no batch enqueue: one LPUSH per "
                        "job over one connection)")

    def __init__(self, workdir: Path, workers: int, *, redis_url: str) -> None:
        super().__init__(workdir, workers)
        self.redis_url = redis_url
        self.settings = (f"`celery worker -P prefork -c {workers}` with --without-gossip "
                         "--without-mingle --without-heartbeat; broker Redis "
                         f"{redis_url}; no result backend; acks_late off, prefetch multiplier "
                         "4 (defaults)")
        self.env["BENCH_REDIS_URL"] = redis_url
        os.environ["BENCH_REDIS_URL"] = redis_url  # the driver's own celery app
        import redis

        self.redis = redis.Redis.from_url(redis_url)
        self._module: Any = importlib.import_module("bench_celery")
        self.ready_needed = 1  # one worker_ready for the whole prefork worker

    def setup(self) -> None:
        self.redis.ping()
        self.redis.flushdb()  # our own DB number only

    def enqueue_one(self, count: int) -> float:
        noop = self._module.noop
        started = time.perf_counter()
        for _ in range(count):
            noop.apply_async(queue="scratch")
        elapsed = time.perf_counter() - started
        self.redis.delete("scratch")
        return elapsed

    def enqueue_many(self, count: int) -> float:
        from celery import group  # type: ignore[import-untyped]

        noop = self._module.noop
        started = time.perf_counter()
        group(noop.s().set(queue="hold") for _ in range(count)).apply_async()
        return time.perf_counter() - started

    def _spawn(self) -> None:
        command = [_script("celery"), "-A", "bench_celery", "worker", "-P", "prefork",
                   "-c", str(self.workers), "-l", "warning", "-Q", "celery",
                   "--without-gossip", "--without-mingle", "--without-heartbeat",
                   "-n", f"bench-{os.getpid()}@%h"]
        self.spawned.start(command, self.env, self.dir / "worker.log")

    def open_gate(self) -> None:
        if self.redis.exists("celery"):
            raise RuntimeError("the celery queue is not empty; refusing to overwrite it")
        self.redis.rename("hold", "celery")  # wakes the worker's BRPOP like a push would

    def enqueue_stamp(self, tag: int) -> None:
        self._module.stamp.delay(tag)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.redis.flushdb()
        self.redis.close()


# -- PostgreSQL: conveyor, procrastinate, pgqueuer ---------------------------------------------
#
# Each system gets two fresh databases of its own on the same server (the held jobs, and a
# scratch one for enqueue-one-at-a-time), dropped when it is done. Ready means the workers are
# registered; the gate then waits `settle` seconds more, so a worker that registers before it
# LISTENs cannot miss the gate's notification (the rate is timed from the gate, so this costs
# nothing). Before each processing run the database is vacuumed and analysed, untimed, for every
# system alike: it stands in for autovacuum, which may be off on a shared server.

PG_SETTLE = 0.5
PG_DURABILITY = "PostgreSQL synchronous_commit=on (the default: one WAL flush per commit)"


class _PgMixin:
    """The database pair and the server-side CPU reading shared by the PostgreSQL adapters."""

    key: str
    db: Any

    def _pg_databases(self, server: Any) -> tuple[str, str]:
        from pg import Database

        suffix = self.key.replace("-", "_")
        main = server.create(suffix)
        scratch = server.create(suffix + "_scratch")
        self.server = server
        self.db = Database(main)
        self._db_names = [Database(main).name, Database(scratch).name]
        return main, scratch

    def server_cpu(self) -> dict[int, float]:
        return dict(self.db.backend_cpu())

    def prepare_run(self) -> None:
        self.db.vacuum_analyze()

    def reconnect(self) -> None:
        self.db.close()  # the next query connects again

    def _drop_databases(self) -> None:
        self.db.close()
        for name in getattr(self, "_db_names", []):
            with contextlib.suppress(Exception):
                self.server.drop(name)


class ConveyorPgFramework(_PgMixin, ConveyorFramework):
    key = "conveyor-pg"
    settle = PG_SETTLE
    durability = PG_DURABILITY
    enqueue_many_how = ("app.enqueue_many, batches of {batch:,} (one INSERT ... SELECT FROM "
                        "unnest(arrays) per batch, one transaction each)")

    def __init__(self, workdir: Path, workers: int, *, server: Any,
                 concurrency: int | None = None, batch: int = 1000,
                 worker_options: str = "") -> None:
        self._server = server
        super().__init__(workdir, workers, concurrency=concurrency, batch=batch)
        if worker_options:  # server settings for the workers' sessions only (diagnostics)
            from urllib.parse import quote

            self.env["CONVEYOR_URL"] = f"{self.url}?options={quote(worker_options)}"
            self.settings += f"; worker sessions with `{worker_options}`"

    def _main_url(self) -> str:
        main, self._scratch = self._pg_databases(self._server)
        return main

    def _scratch_url(self) -> str:
        return self._scratch

    def setup(self) -> None:
        self.app.backend  # noqa: B018 - create the schema now, untimed
        from conveyor import Conveyor

        with Conveyor(self._scratch) as scratch:
            scratch.backend  # noqa: B018 - its schema too

    def _rows(self, query: str) -> list[Any]:
        return list(self.db.rows(query))

    def discard_pending(self) -> None:
        self.db.execute("DELETE FROM conveyor_jobs WHERE state IN ('scheduled', 'queued', "
                        "'running')")

    def open_gate(self) -> None:
        channel = getattr(self.app.backend, "channel", "conveyor_public")
        with self.db.transaction() as conn:
            conn.execute("UPDATE conveyor_jobs SET queue = 'default' "
                         "WHERE queue = 'hold' AND state = 'queued'")
            conn.execute("SELECT pg_notify(%s, 'default')", (channel,))

    def close(self) -> None:
        self.app.close()
        self._drop_databases()


class ProcrastinateFramework(_PgMixin, Framework):
    key = "procrastinate"
    settle = PG_SETTLE
    enqueue_many_how = ("task.batch_defer(), batches of {batch:,} (one call of its "
                        "procrastinate_defer_jobs function, one transaction each)")

    def __init__(self, workdir: Path, workers: int, *, server: Any, batch: int = 1000,
                 concurrency: int | None = None) -> None:
        super().__init__(workdir, workers)
        self.batch = batch
        self.concurrency = concurrency
        self.url, self.scratch_url = self._pg_databases(server)
        self.env["BENCH_PG_URL"] = self.url
        self._module: Any = importlib.import_module("bench_procrastinate")
        option = "" if concurrency is None else f" --concurrency {concurrency}"
        version = importlib.metadata.version("procrastinate")
        self.settings = (
            f"procrastinate {version}: {workers} x `procrastinate worker --queues default"
            f"{option} --log-level warning` (asyncio; concurrency "
            f"{concurrency or 1} job(s) at a time{'' if concurrency else ' (its default)'}, one "
            "fetch_job call per job, LISTEN/NOTIFY, 5 s polling fallback); async tasks; "
            f"PsycopgConnector; {PG_DURABILITY}")
        self._workers_base = 0

    def setup(self) -> None:
        self.app, self.noop, self.stamp = self._module.make_app(self.url)
        self.app.open()
        self.app.schema_manager.apply_schema()

    def enqueue_one(self, count: int) -> float:
        scratch, noop, _ = self._module.make_app(self.scratch_url)
        scratch.open()
        try:
            scratch.schema_manager.apply_schema()
            started = time.perf_counter()
            for _ in range(count):
                noop.defer()
            return time.perf_counter() - started
        finally:
            scratch.close()

    def enqueue_many(self, count: int) -> float:
        held = self.noop.configure(queue="hold")
        started = time.perf_counter()
        for offset in range(0, count, self.batch):
            size = min(self.batch, count - offset)
            held.batch_defer(*([{}] * size))
        return time.perf_counter() - started

    def start_workers(self) -> None:
        self._workers_base = int(self.db.scalar("SELECT count(*) FROM procrastinate_workers"))
        super().start_workers()

    def _spawn(self) -> None:
        command = [_script("procrastinate"), "--app", "bench_procrastinate.app",
                   "--log-level", "warning", "worker", "--queues", "default"]
        if self.concurrency is not None:
            command += ["--concurrency", str(self.concurrency)]
        for index in range(self.workers):
            self.spawned.start(command, self.env, self.dir / f"worker-{index}.log")

    def ready(self) -> bool:
        count = int(self.db.scalar("SELECT count(*) FROM procrastinate_workers"))
        return count - self._workers_base >= self.workers

    def reconnect(self) -> None:
        super().reconnect()
        with contextlib.suppress(Exception):
            self.app.close()
        self.app, self.noop, self.stamp = self._module.make_app(self.url)
        self.app.open()

    def discard_pending(self) -> None:
        self.db.execute("DELETE FROM procrastinate_jobs WHERE status IN ('todo', 'doing')")

    def open_gate(self) -> None:
        # Its NOTIFY trigger fires on INSERT only: send what the trigger would have sent.
        payload = '{"type": "job_inserted", "job_id": 0}'
        with self.db.transaction() as conn:
            conn.execute("UPDATE procrastinate_jobs SET queue_name = 'default' "
                         "WHERE queue_name = 'hold' AND status = 'todo'")
            conn.execute("SELECT pg_notify('procrastinate_queue_v1#default', %s), "
                         "pg_notify('procrastinate_any_queue_v1', %s)", (payload, payload))

    def drained(self) -> bool:
        # Done means the outcome is committed: nothing left to do or doing (partial index).
        if not super().drained():
            return False
        return not self.db.scalar(
            "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing') "
            "AND queue_name = 'default')")

    def enqueue_stamp(self, tag: int) -> None:
        self.stamp.defer(tag=tag)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.app.close()
        self._drop_databases()


class PgQueuerFramework(_PgMixin, Framework):
    key = "pgqueuer"
    settle = PG_SETTLE
    enqueue_many_how = ("Queries.enqueue(lists), batches of {batch:,} (one INSERT ... SELECT "
                        "FROM UNNEST(arrays) per batch, one transaction each)")

    def __init__(self, workdir: Path, workers: int, *, server: Any, batch: int = 1000) -> None:
        super().__init__(workdir, workers)
        self.batch = batch
        self.url, self.scratch_url = self._pg_databases(server)
        self.env["BENCH_PG_URL"] = self.url
        version = importlib.metadata.version("pgqueuer")
        self.settings = (
            f"pgqueuer {version}: {workers} x `python -m bench_pgqueuer` (= `pgq run "
            "bench_pgqueuer:create`: pgqueuer.run on uvloop; defaults: batch size 10, no "
            "limit on concurrent jobs, status log flushed every 10 jobs or 0.1 s, "
            "LISTEN/NOTIFY with 30 s dequeue timeout); async entrypoints; asyncpg, one "
            "connection per worker; durability 'durable' (its default: all tables logged); "
            f"{PG_DURABILITY}")
        import asyncio

        self._runner = asyncio.Runner()
        self._queries: Any = None
        self._conn: Any = None

    def _run(self, coro: Any) -> Any:
        return self._runner.run(coro)

    @staticmethod
    async def _connect(url: str) -> tuple[Any, Any]:
        import asyncpg  # type: ignore[import-untyped]
        from pgqueuer.db import AsyncpgDriver
        from pgqueuer.queries import Queries

        conn = await asyncpg.connect(url)
        return conn, Queries(AsyncpgDriver(conn))

    def setup(self) -> None:
        self._conn, self._queries = self._run(self._connect(self.url))
        self._run(self._queries.install())

    def enqueue_one(self, count: int) -> float:
        async def go() -> float:
            conn, queries = await self._connect(self.scratch_url)
            try:
                await queries.install()
                started = time.perf_counter()
                for _ in range(count):
                    await queries.enqueue("noop", None, 0)
                return time.perf_counter() - started
            finally:
                await conn.close()

        return float(self._run(go()))

    def enqueue_many(self, count: int) -> float:
        async def go() -> float:
            started = time.perf_counter()
            for offset in range(0, count, self.batch):
                size = min(self.batch, count - offset)
                await self._queries.enqueue(["hold"] * size, [None] * size, [0] * size)
            return time.perf_counter() - started

        return float(self._run(go()))

    def _spawn(self) -> None:
        # `pgq run bench_pgqueuer:create`, through pgqueuer's own `run` (the CLI fails here).
        command = [sys.executable, "-m", "bench_pgqueuer"]
        for index in range(self.workers):
            self.spawned.start(command, self.env, self.dir / f"worker-{index}.log")

    def reconnect(self) -> None:
        super().reconnect()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._run(self._conn.close())
        self._conn, self._queries = self._run(self._connect(self.url))

    def discard_pending(self) -> None:
        self.db.execute("DELETE FROM pgqueuer")  # finished jobs' rows are gone already

    def open_gate(self) -> None:
        # Its trigger is statement-level and, for an UPDATE, compares OLD with NEW (both NULL
        # there), so it only notifies of INSERT and DELETE: send what it sends for an INSERT.
        with self.db.transaction() as conn:
            conn.execute("UPDATE pgqueuer SET entrypoint = 'noop' "
                         "WHERE entrypoint = 'hold' AND status = 'queued'")
            conn.execute(
                "SELECT pg_notify('ch_pgqueuer', json_build_object('channel', 'ch_pgqueuer', "
                "'operation', 'insert', 'sent_at', NOW(), 'table', 'pgqueuer', "
                "'type', 'table_changed_event')::text)")

    def drained(self) -> bool:
        # Done means the outcome is committed: a finished job's row is deleted (and logged).
        if not super().drained():
            return False
        return not self.db.scalar(
            "SELECT EXISTS (SELECT 1 FROM pgqueuer WHERE status = 'queued' "
            "AND entrypoint = 'noop') OR EXISTS (SELECT 1 FROM pgqueuer WHERE status = 'picked')")

    def enqueue_stamp(self, tag: int) -> None:
        self._run(self._queries.enqueue("stamp", str(tag).encode(), 0))

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._run(self._conn.close())
            self._conn = None
        self._runner.close()
        self._drop_databases()
