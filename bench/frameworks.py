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

    @abstractmethod
    def enqueue_stamp(self, tag: int) -> None: ...

    def stop_workers(self) -> None:
        self.spawned.stop()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and remove what this framework stored outside its folder."""

    def describe_extra(self) -> list[str]:
        return []


# -- conveyor ----------------------------------------------------------------------------------


class ConveyorFramework(Framework):
    key = "conveyor"
    enqueue_many_how = "app.enqueue_many, batches of {batch:,} (one transaction each)"

    def __init__(self, workdir: Path, workers: int, *, concurrency: int | None = None,
                 batch: int = 1000) -> None:
        super().__init__(workdir, workers)
        from conveyor import Conveyor

        self.concurrency = concurrency
        self.batch = batch
        self._describe(concurrency)
        self.path = self.dir / "conveyor.db"
        self.url = f"sqlite:///{self.path}"
        self.env["CONVEYOR_URL"] = self.url
        self.app = Conveyor(self.url)
        self.noop = self.app.task(name="bench.noop")(_noop)
        self.stamp = self.app.task(name="bench.stamp")(_stamp)
        self.stamp_jobs: dict[int, Any] = {}
        self._conn: sqlite3.Connection | None = None

    def _describe(self, concurrency: int | str | None) -> None:
        option = "" if self.concurrency is None else f" -c {self.concurrency}"
        threads = "default" if concurrency is None else str(concurrency)
        self.settings = (f"{self.workers} x `conveyor worker{option}` (thread pool, "
                         f"{threads} threads each), durability normal (WAL, "
                         "synchronous=NORMAL)")

    def setup(self) -> None:
        self.app.backend  # noqa: B018 - create the schema now, untimed
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None
        return self._conn

    def enqueue_one(self, count: int) -> float:
        from conveyor import Conveyor

        with Conveyor(f"sqlite:///{self.dir / 'scratch.db'}") as scratch:
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
        rows = self.conn.execute("SELECT pid, concurrency FROM conveyor_workers").fetchall()
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

    def drained(self) -> bool:
        # Done means the outcome is committed: nothing queued, nothing running. Both checks
        # read a partial index, so polling costs little.
        row = self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM conveyor_jobs WHERE state = 'queued' "
            "AND queue = 'default') OR EXISTS (SELECT 1 FROM conveyor_jobs "
            "WHERE state = 'running')"
        ).fetchone()
        return not row[0]

    def progressed(self) -> bool:
        row = self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM conveyor_jobs WHERE state = 'running')").fetchone()
        return bool(row[0]) or self.drained()

    def succeeded_noops(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM conveyor_jobs WHERE state = 'succeeded' AND task = 'bench.noop'"
        ).fetchone()
        return int(row[0])

    def enqueue_stamp(self, tag: int) -> None:
        self.stamp_jobs[tag] = self.stamp.enqueue(tag)

    def db_pickup_latencies(self) -> list[float]:
        """started_at - enqueued_at of the stamp jobs, as conveyor itself records them."""
        latencies = []
        for job in self.stamp_jobs.values():
            record = self.app.fetch_record(job.id)
            if record is not None and record.started_at is not None:
                latencies.append(record.started_at - record.enqueued_at)
        return latencies

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
