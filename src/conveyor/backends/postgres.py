"""PostgreSQL backend: many worker hosts, one database. psycopg 3 with a connection pool,
claims with FOR UPDATE SKIP LOCKED, LISTEN/NOTIFY to wake idle workers, the database clock
for leases and schedules, an advisory lock for singleton duties."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg.conninfo
import psycopg.errors
import psycopg.sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from .. import sql
from ..errors import ConfigurationError, DatabaseUnavailable, SchemaMismatch
from ..job import JobError, JobRecord, JobState
from ..lease_watch import ObservedLease
from ..outcomes import Cancelled, Failed, Outcome, Retry, Succeeded
from .base import (
    ClaimedJob,
    EnqueueResult,
    HeartbeatReply,
    Lease,
    Location,
    NewJob,
    ProgressUpdate,
    RescueReport,
    RetryReport,
    TaskInfo,
    WorkerInfo,
    WorkerRecord,
)
from .inspector import SQLInspector
from .rows import (
    claimed_job,
    encode_error,
    encode_progress,
    job_record,
    lease_lost_error,
    rescue_report,
    worker_record,
)
from .unavailable import postgres_unavailable
from .wakeups import Wakeups

log = logging.getLogger("conveyor.postgres")

DIALECT = "postgresql"
POOL_SIZE = 8
WORKER_POOL_SIZE = 4  # dispatcher, heartbeat, rescuer, other duties
UNIQUE_RACE_RETRIES = 5
# How long a call waits for a connection before it raises DatabaseUnavailable; the URL's
# libpq parameter connect_timeout (seconds) sets it. The last PROBE_TIMEOUT seconds of it go
# to one direct connection attempt that learns the server's reason (the pool keeps none).
CONNECT_TIMEOUT = 10.0
PROBE_TIMEOUT = 2.0
LISTEN_RECONNECT_MAX = 5.0

Row = dict[str, Any]


def _q(name: str) -> str:
    return sql.load(DIALECT, name)


class PostgresBackend:
    """Durable jobs in PostgreSQL, shared by worker processes on any number of hosts."""

    dialect = DIALECT

    def __init__(self, url: str, *, auto_migrate: bool = True) -> None:
        self.url = url
        self.timeout = _connect_timeout(url)
        self._closed = threading.Event()
        self._wakeups = Wakeups(self._listen, "conveyor-pg-listen")
        self._probe()
        self._pool = self._make_pool("conveyor", POOL_SIZE, check=True)
        self._worker_pool: ConnectionPool[psycopg.Connection[Row]] | None = None
        self._worker_pool_lock = threading.Lock()
        self._writer_pid: int | None = None
        try:
            with self._connection() as conn:
                row = conn.execute(
                    "SELECT current_schema() AS s, current_database() AS d"
                ).fetchone()
                info = conn.info
                server = (info.user, info.host, info.port)
            if row is None or row["s"] is None:
                raise ConfigurationError(
                    "no schema to put conveyor's tables in: the search_path names no existing "
                    "schema; create it, or fix options=-csearch_path in the URL"
                )
            self.schema, self.database = str(row["s"]), str(row["d"])
            user, host, port = server
            self._location = Location(DIALECT, (
                f"postgresql://{user}@{host}:{port}/{self.database}, schema {self.schema}"
            ), {"host": host, "port": port, "database": self.database, "schema": self.schema,
                "user": user})
            # Channel names are identifiers of at most 63 bytes: a hash fits any schema name.
            digest = hashlib.md5(self.schema.encode(), usedforsecurity=False).hexdigest()[:16]
            self.channel = f"conveyor_{digest}"
            self.inspector = SQLInspector(self._read_all, self.schema_version)
            if auto_migrate:
                self.migrate(auto=True)
        except BaseException:
            self._pool.close()
            raise

    def _probe(self) -> None:
        """One plain connection before the pool opens: a URL that cannot work fails at once
        with the server's own reason, instead of the pool retrying (and logging each retry)
        until its timeout. A wrong user, password or database name is a ConfigurationError;
        a server that is down, unreachable or starting up is DatabaseUnavailable."""
        try:
            psycopg.connect(self.url, autocommit=True,
                            connect_timeout=max(2, round(self.timeout))).close()
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            if isinstance(exc, psycopg.OperationalError) and not _url_mistake(reason):
                raise DatabaseUnavailable(
                    f"PostgreSQL at {_redact(self.url)} is unavailable: {reason}") from exc
            raise ConfigurationError(
                f"cannot connect to PostgreSQL at {_redact(self.url)}: "
                f"{reason.rsplit('FATAL:', 1)[-1].strip()}; check the URL (user, password, "
                "database name)") from exc

    @property
    def location(self) -> Location:
        """Host, port, database, schema and user as connected: never the password."""
        return self._location

    def _make_pool(
        self, name: str, size: int, *, check: bool
    ) -> ConnectionPool[psycopg.Connection[Row]]:
        wait = max(self.timeout - PROBE_TIMEOUT, 1.0)
        try:
            pool = ConnectionPool[psycopg.Connection[Row]](
                self.url,
                connection_class=psycopg.Connection[Row],
                min_size=1,
                max_size=size,
                kwargs={"autocommit": True, "row_factory": dict_row,
                        "connect_timeout": max(2, round(self.timeout))},
                # Checking costs a round trip per checkout: worth it for callers' one-off
                # calls after a server restart, not for workers, which retry failures anyway.
                check=ConnectionPool.check_connection if check else None,
                configure=_configure_session,
                name=name,
                open=False,
                timeout=wait,  # a checkout waits this long for a connection
            )
            pool.open(wait=True, timeout=wait)
        except PoolTimeout as exc:
            raise self._unavailable(exc) from exc
        except Exception as exc:
            raise ConfigurationError(
                f"cannot connect to PostgreSQL at {_redact(self.url)}: {exc}"
            ) from exc
        return pool

    # -- connections -----------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Row]]:
        with self._checkout(self._pool) as conn:
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Row]]:
        with self._checkout(self._pool) as conn, conn.transaction():
            yield conn

    @contextmanager
    def _checkout(
        self, pool: ConnectionPool[psycopg.Connection[Row]]
    ) -> Iterator[psycopg.Connection[Row]]:
        """A connection of `pool`. A server that is down, unreachable, restarting or full
        raises DatabaseUnavailable (its reason, the URL without its password), within
        self.timeout when no connection can be had."""
        try:
            with pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise self._unavailable(exc) from exc
        except psycopg.OperationalError as exc:
            unavailable = postgres_unavailable(exc, _redact(self.url))
            if unavailable is None:
                raise
            raise unavailable from exc

    def _unavailable(self, exc: PoolTimeout) -> DatabaseUnavailable:
        """The error for a pool that got no connection in time, with the server's reason
        (one direct connection attempt finds it: the pool keeps only its own timeout)."""
        try:
            with psycopg.connect(self.url, autocommit=True,
                                 connect_timeout=int(PROBE_TIMEOUT)):
                reason = f"no connection became free in time ({exc})"
        except psycopg.Error as probe:
            reason = " ".join(str(probe).split()) or type(probe).__name__
        return DatabaseUnavailable(
            f"PostgreSQL at {_redact(self.url)} is unavailable: {reason}; gave up after "
            f"{self.timeout:g} s (the URL's connect_timeout sets this)")

    @contextmanager
    def _worker_connection(self) -> Iterator[psycopg.Connection[Row]]:
        """Workers' own pool: heartbeats and claims never queue behind callers' enqueues."""
        with self._worker_pool_lock:
            if self._worker_pool is None:
                self._worker_pool = self._make_pool("conveyor-worker", WORKER_POOL_SIZE,
                                                    check=False)
            pool = self._worker_pool
        with self._checkout(pool) as conn:
            yield conn

    @contextmanager
    def _worker_transaction(self) -> Iterator[psycopg.Connection[Row]]:
        with self._worker_connection() as conn, conn.transaction():
            yield conn

    def _read_all(self, name: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        with self._connection() as conn:
            return conn.execute(_q(name), params or {}).fetchall()

    # -- schema ----------------------------------------------------------------------

    def schema_version(self) -> int:
        with self._connection() as conn:
            return self._version(conn)

    def _version(self, conn: psycopg.Connection[Row]) -> int:
        present = conn.execute(_q("migrations_table_exists")).fetchone()
        if not present or not present["present"]:
            return 0
        row = conn.execute(_q("schema_version")).fetchone()
        return int(row["version"]) if row else 0

    def migrate(self, *, auto: bool = False) -> int:
        """Bring the schema up to date. With `auto`, only create a missing schema: an older
        one is refused (other hosts may still run the old code) with what to run."""
        known = sql.migrations(DIALECT)
        latest = known[-1][0]
        with self._transaction() as conn:
            # Serialise concurrent migrators (many workers starting at once).
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':migrate'))")
            current = self._version(conn)
            if current > latest:
                raise SchemaMismatch(
                    f"the database schema is version {current}, newer than the {latest} this "
                    "conveyor understands; upgrade conveyor on this host"
                )
            if current == latest:
                return latest
            if auto and current != 0:
                raise SchemaMismatch(
                    f"the database schema is version {current}, older than the {latest} this "
                    "conveyor needs; run `conveyor db migrate` once (then restart workers)"
                )
            conn.execute(_q("create_migrations_table"))
            for version, name, script in known:
                if version <= current:
                    continue
                conn.execute(script.encode())
                conn.execute(_q("record_migration"), {"version": version, "name": name})
        if auto:  # only a missing schema gets here: it was created on first use
            log.warning("created conveyor's tables, empty, in %s: if your jobs are elsewhere, "
                        "give this process the same URL (--url or CONVEYOR_URL) as the "
                        "processes that enqueue and run them", self._location)
        return latest

    # -- enqueue ---------------------------------------------------------------------

    def enqueue_many(
        self, jobs: Sequence[NewJob], *, connection: Any = None
    ) -> list[EnqueueResult]:
        if not jobs:
            return []
        if connection is not None:
            with self._caller_cursor(connection) as cursor:
                return self._enqueue_in(cursor, jobs)
        with self._transaction() as conn, conn.cursor() as cursor:
            return self._enqueue_in(cursor, jobs)

    def _caller_cursor(self, connection: Any) -> psycopg.Cursor[Row]:
        if not isinstance(connection, psycopg.Connection):
            raise ConfigurationError(
                "a PostgreSQL app enqueues in your transaction through a psycopg "
                f"Connection, got {type(connection).__name__}"
            )
        idle = connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        if connection.autocommit and idle:
            raise ConfigurationError(
                "the connection given is in autocommit mode with no transaction open, so the "
                "jobs would not share your transaction; open one first "
                "(with conn.transaction(): ...) or pass a connection without autocommit"
            )
        cursor = connection.cursor(row_factory=dict_row)
        row = cursor.execute("SELECT current_schema() AS s, current_database() AS d").fetchone()
        where = (row["s"], row["d"]) if row else (None, None)
        if where != (self.schema, self.database):
            cursor.close()
            raise ConfigurationError(
                f"the connection given works in schema {where[0]!r} of database {where[1]!r}, "
                f"not in this app's schema {self.schema!r} of database {self.database!r}; "
                "connect with the same URL (including its search_path)"
            )
        return cursor

    def _enqueue_in(
        self, cursor: psycopg.Cursor[Row], jobs: Sequence[NewJob]
    ) -> list[EnqueueResult]:
        results: list[EnqueueResult] = []
        if all(job.unique_key is None for job in jobs):
            # Identity values follow the ORDER BY of the insert, so rows sort back by id.
            cursor.execute(_q("enqueue_batch"), {
                "tasks": [job.task for job in jobs],
                "queues": [job.queue for job in jobs],
                "priorities": [job.priority for job in jobs],
                "args": [job.args_json for job in jobs],
                "kwargs": [job.kwargs_json for job in jobs],
                "max_attempts": [job.max_attempts for job in jobs],
                "delays": [job.delay for job in jobs],
                "run_ats": [job.run_at for job in jobs],
                "backoffs": [job.backoff for job in jobs],
                "timeouts": [job.timeout for job in jobs],
            })
            rows = sorted(cursor.fetchall(), key=lambda row: int(row["id"]))
            results = [EnqueueResult(job_record(row), created=True) for row in rows]
        else:
            results = self._enqueue_each(cursor, jobs)
        for queue in sorted({r.record.queue for r in results if r.created}):
            cursor.execute(_q("notify"), {"channel": self.channel, "queue": queue})
        return results

    def _enqueue_each(
        self, cursor: psycopg.Cursor[Row], jobs: Sequence[NewJob]
    ) -> list[EnqueueResult]:
        results: list[EnqueueResult] = []
        insert = _q("enqueue")
        for job in jobs:
            params = {
                "task": job.task, "queue": job.queue, "priority": job.priority,
                "args": job.args_json, "kwargs": job.kwargs_json, "unique_key": job.unique_key,
                "max_attempts": job.max_attempts, "delay": job.delay, "run_at": job.run_at,
                "backoff": job.backoff, "timeout": job.timeout,
            }
            # The job holding the key may finish between the clash and the lookup (READ
            # COMMITTED): then the key is free, and inserting again succeeds.
            for _ in range(UNIQUE_RACE_RETRIES):
                row = cursor.execute(insert, params).fetchone()
                if row is not None:
                    results.append(EnqueueResult(job_record(row), created=True))
                    break
                existing = cursor.execute(
                    _q("find_active_by_unique_key"), {"unique_key": job.unique_key}
                ).fetchone()
                if existing is not None:
                    results.append(EnqueueResult(job_record(existing), created=False))
                    break
            else:
                raise RuntimeError(
                    f"enqueue of {job.task!r}: unique key {job.unique_key!r} kept changing hands; "
                    "enqueue again"
                )
        return results

    # -- claiming and running --------------------------------------------------------

    def claim(
        self, owner: str, queues: Sequence[str], limit: int, lease: float
    ) -> list[ClaimedJob]:
        return self.ack_and_claim((), owner, queues, limit, lease)[1]

    def ack_and_claim(
        self,
        outcomes: Sequence[Outcome],
        owner: str,
        queues: Sequence[str],
        limit: int,
        lease: float,
        progress: Sequence[ProgressUpdate] = (),
    ) -> tuple[list[bool], list[ClaimedJob]]:
        limit = limit if queues else 0
        if limit <= 0 and not outcomes and not progress:
            return [], []
        rows: list[Row] = []
        with self._worker_connection() as conn:
            # One round trip for the whole transaction: statements are pipelined.
            with conn.pipeline(), conn.transaction():
                if progress:
                    self._progress_in(conn, progress)
                settle = self._ack_in(conn, outcomes, owner) if outcomes else None
                claim = None
                if limit > 0:
                    conn.execute(_q("promote_due"))
                    claim = conn.execute(_q("claim"), {
                        "queues": list(queues), "limit": limit, "owner": owner,
                        "lease": lease,
                    })
            accepted = settle() if settle is not None else []
            if claim is not None:
                rows = claim.fetchall()
        claimed = [claimed_job(row) for row in rows]
        claimed.sort(key=lambda job: (job.priority, job.run_at, job.id))
        return accepted, claimed

    def next_due(self, queues: Sequence[str] | None = None) -> float | None:
        if queues is None:
            rows = self._read_all("next_due")
        else:
            rows = self._read_all("next_due_on_queues", {"queues": list(queues)})
        wait = rows[0]["wait"] if rows else None
        return None if wait is None else time.time() + float(wait)

    def heartbeat(
        self, worker: WorkerInfo, leases: Sequence[Lease], lease: float, busy: int
    ) -> HeartbeatReply:
        cancel: set[int] = set()
        lost: set[int] = set()
        with self._worker_transaction() as conn:
            self._note_writer(conn)
            try:
                if leases:
                    held = {"ids": [h.job_id for h in leases], "tokens": [h.token for h in leases]}
                    rows = conn.execute(_q("extend_leases"), {**held, "lease": lease}).fetchall()
                    extended = {row["id"] for row in rows}
                    cancel = {row["id"] for row in rows if row["cancel_requested"]}
                    if len(extended) < len(leases):
                        finished = {row["id"] for row in
                                    conn.execute(_q("finished_leases"), held).fetchall()}
                        lost = {h.job_id for h in leases} - extended - finished
                row = conn.execute(
                    _q("worker_heartbeat"), {"name": worker.name, "busy": busy}
                ).fetchone()
                if row is None:  # our row was removed as dead: come back
                    self._insert_worker(conn, worker)
                    stop = False
                else:
                    stop = bool(row["stop_requested"])
            finally:
                self._note_writer(None)
        return HeartbeatReply(frozenset(cancel), frozenset(lost), stop)

    def cancels_requested(self, job_ids: Sequence[int]) -> set[int]:
        with self._worker_connection() as conn:
            rows = conn.execute(_q("cancels_requested"), {"ids": list(job_ids)}).fetchall()
        return {row["id"] for row in rows}

    def save_progress(self, updates: Sequence[ProgressUpdate]) -> None:
        if updates:
            with self._worker_transaction() as conn:
                self._progress_in(conn, updates)

    def _progress_in(
        self, conn: psycopg.Connection[Row], updates: Sequence[ProgressUpdate]
    ) -> None:
        with conn.cursor() as cursor:
            cursor.executemany(_q("save_progress"), [
                {"id": u.lease.job_id, "token": u.lease.token,
                 "progress": encode_progress(u.progress)}
                for u in updates
            ])

    def ack_many(self, outcomes: Sequence[Outcome], worker: str) -> list[bool]:
        if not outcomes:
            return []
        with self._worker_connection() as conn:
            with conn.pipeline(), conn.transaction():
                settle = self._ack_in(conn, outcomes, worker)
            return settle()

    def _ack_in(
        self, conn: psycopg.Connection[Row], outcomes: Sequence[Outcome], worker: str
    ) -> Callable[[], list[bool]]:
        """Send the acks (pipelined); returns how to read which were accepted, once the
        transaction is through."""
        successes = [o for o in outcomes if isinstance(o, Succeeded)]
        done_cursor = None
        if successes:
            done_cursor = conn.execute(_q("ack_succeeded"), {
                "ids": [o.job_id for o in successes],
                "tokens": [o.token for o in successes],
                "results": [o.result_json for o in successes],
            })
        others: list[psycopg.Cursor[Row] | None] = []
        for outcome in outcomes:
            if isinstance(outcome, Succeeded):
                others.append(None)
                continue
            params: dict[str, Any] = {
                "id": outcome.job_id, "token": outcome.token, "attempt": outcome.attempt,
                "worker": worker, "started_at": outcome.started_at,
                "finished_at": outcome.finished_at, "outcome": outcome.kind,
            }
            error: JobError | None
            if isinstance(outcome, Retry):
                error = outcome.error
                params["delay"] = max(0.0, outcome.run_at - outcome.finished_at)
                statement = "ack_retry"
            elif isinstance(outcome, Failed):
                error = outcome.error
                statement = "ack_failed"
            elif isinstance(outcome, Cancelled):
                error = outcome.error
                statement = "ack_cancelled"
            else:  # pragma: no cover
                raise TypeError(f"unknown outcome {outcome!r}")
            params["error"] = encode_error(error)
            params["error_type"] = error.type if error else None
            params["error_message"] = error.message if error else None
            params["traceback"] = error.traceback if error else None
            others.append(conn.execute(_q(statement), params))

        def settle() -> list[bool]:
            done = {row["id"] for row in done_cursor.fetchall()} if done_cursor else set()
            return [
                outcome.job_id in done if cursor is None else cursor.fetchone() is not None
                for outcome, cursor in zip(outcomes, others, strict=True)
            ]

        return settle

    def _record_attempt(
        self,
        conn: psycopg.Connection[Row],
        job_id: int,
        attempt: int,
        worker: str | None,
        started_at: float | None,
        finished_at: float,
        kind: str,
        error: JobError | None,
    ) -> None:
        conn.execute(_q("record_attempt"), {
            "job_id": job_id, "attempt": attempt, "worker": worker,
            "started_at": started_at, "finished_at": finished_at, "outcome": kind,
            "error_type": error.type if error else None,
            "error_message": error.message if error else None,
            "traceback": error.traceback if error else None,
        })

    def release(self, leases: Sequence[Lease], *, not_before: float = 0.0) -> int:
        if not leases:
            return 0
        delay = max(0.0, not_before - time.time()) if not_before else 0.0
        released = 0
        with self._worker_transaction() as conn:
            for held in leases:
                released += conn.execute(
                    _q("release"), {"id": held.job_id, "token": held.token, "delay": delay}
                ).rowcount
            if released:
                conn.execute(_q("notify"), {"channel": self.channel, "queue": ""})
        return released

    def observe_leases(self) -> list[ObservedLease]:
        # Rows locked FOR UPDATE SKIP LOCKED: seen only when they could be written.
        with self._worker_transaction() as conn:
            conn.execute(_q("lock_as_writer"))
            rows = conn.execute(_q("observe_leases")).fetchall()
        return [ObservedLease(row["id"], row["lease_token"], row["lease_expires_at"])
                for row in rows]

    def rescue(self, leases: Sequence[ObservedLease]) -> RescueReport:
        rescued: list[Any] = []
        if not leases:
            return RescueReport()
        with self._worker_transaction() as conn:
            conn.execute(_q("lock_as_writer"))
            for seen in leases:
                params = {"id": seen.job_id, "token": seen.token, "beat": seen.beat}
                row = conn.execute(_q("find_observed"), params).fetchone()
                if row is None:  # renewed, finished, taken or being written since it was watched
                    continue
                owner = row["lease_owner"] or "unknown"
                error = lease_lost_error(owner)
                conn.execute(_q("rescue_one"), {
                    "id": seen.job_id, "token": seen.token, "error": encode_error(error),
                })
                self._record_attempt(conn, row["id"], row["attempts"], owner,
                                     row["started_at"], row["now"], "lost", error)
                rescued.append(row)
            report = rescue_report(rescued)
            if report.requeued:
                conn.execute(_q("notify"), {"channel": self.channel, "queue": ""})
        return report

    def _note_writer(self, conn: psycopg.Connection[Row] | None) -> None:
        """Remember the server process of the renewal in flight, so
        `renewal_blocked` can ask the server what it waits for."""
        self._writer_pid = None if conn is None else conn.info.backend_pid

    def renewal_blocked(self) -> bool:
        pid = self._writer_pid
        if pid is None:
            return False
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=2,
                                 options="-c statement_timeout=2000") as conn:
                row = conn.execute(_q("waits_for_table_lock"), {"pid": pid}).fetchone()
        except psycopg.Error:
            return False  # cannot tell: assume the worst (cut off), never the best
        return bool(row and row[0])

    def cancel(self, job_id: int) -> JobState | None:
        with self._transaction() as conn:
            if conn.execute(_q("cancel_waiting"), {"id": job_id}).rowcount:
                return JobState.CANCELLED
            if conn.execute(_q("cancel_running"), {"id": job_id}).rowcount:
                return JobState.RUNNING
            row = conn.execute(_q("get_state"), {"id": job_id}).fetchone()
        return None if row is None else JobState(row["state"])

    def prune(self, older_than: float) -> int:
        with self._transaction() as conn:
            return conn.execute(_q("prune_finished"), {"older_than": older_than}).rowcount

    def retry(self, job_ids: Sequence[int]) -> RetryReport:
        retried: list[int] = []
        held: dict[int, JobRecord] = {}
        with self._transaction() as conn:
            for job_id in job_ids:
                # The job holding the key may end between the clash and the lookup (READ
                # COMMITTED): then the key is free, and retrying again succeeds.
                for _ in range(UNIQUE_RACE_RETRIES):
                    try:
                        with conn.transaction():  # a savepoint: a clash undoes this job only
                            row = conn.execute(_q("retry_job"), {"id": job_id}).fetchone()
                    except psycopg.errors.UniqueViolation:
                        job = conn.execute(_q("get_job"), {"id": job_id}).fetchone()
                        holder = conn.execute(_q("find_active_by_unique_key"), {
                            "unique_key": job["unique_key"] if job else None}).fetchone()
                        if holder is not None:
                            held[job_id] = job_record(holder)
                            break
                        continue
                    if row is not None:
                        retried.append(job_id)
                    break
            if retried:
                conn.execute(_q("notify"), {"channel": self.channel, "queue": ""})
        return RetryReport(tuple(retried), held)

    def delete(self, job_ids: Sequence[int]) -> list[int]:
        deleted: list[int] = []
        with self._transaction() as conn:
            for job_id in job_ids:
                if conn.execute(_q("delete_job"), {"id": job_id}).rowcount:
                    deleted.append(job_id)
        return deleted

    def purge(self, queue: str, state: JobState | None, *, dry_run: bool = False) -> int:
        params = {"queue": queue, "state": None if state is None else str(state)}
        if dry_run:
            return int(self._read_all("purge_count", params)[0]["n"])
        with self._transaction() as conn:
            return conn.execute(_q("purge"), params).rowcount

    def request_worker_stop(self, name: str | None) -> int:
        with self._transaction() as conn:
            return conn.execute(_q("request_worker_stop"), {"name": name}).rowcount

    # -- workers ---------------------------------------------------------------------

    def _insert_worker(self, conn: psycopg.Connection[Row], worker: WorkerInfo, *,
                       takeover_after: float = math.inf,
                       gone: WorkerRecord | None = None) -> bool:
        """Register `worker`; False when a live worker holds its name (register_worker.sql)."""
        return conn.execute(_q("register_worker"), {
            "name": worker.name, "host": worker.host, "pid": worker.pid,
            "queues": json.dumps(list(worker.queues)), "concurrency": worker.concurrency,
            "pool": worker.pool, "takeover_after": takeover_after,
            "gone_host": gone.host if gone else None, "gone_pid": gone.pid if gone else None,
            "gone_started": gone.started_at if gone else None,
        }).fetchone() is not None

    def register_worker(self, worker: WorkerInfo, *, takeover_after: float = math.inf,
                        gone: WorkerRecord | None = None) -> WorkerRecord | None:
        with self._worker_transaction() as conn:
            if self._insert_worker(conn, worker, takeover_after=takeover_after, gone=gone):
                return None
            row = conn.execute(_q("get_worker"), {"name": worker.name}).fetchone()
        assert row is not None  # the insert clashed with it, in this transaction
        return worker_record(row)

    def register_tasks(self, worker: str, tasks: Sequence[TaskInfo]) -> None:
        if not tasks:
            return
        # In name order: workers starting together lock the rows in one order, never deadlock.
        with self._worker_transaction() as conn, conn.cursor() as cursor:
            cursor.executemany(_q("register_task"), [
                {"name": t.name, "queue": t.queue, "priority": t.priority,
                 "max_attempts": t.max_attempts, "worker": worker}
                for t in sorted(tasks, key=lambda t: t.name)])

    def deregister_worker(self, name: str) -> None:
        with self._worker_transaction() as conn:
            conn.execute(_q("deregister_worker"), {"name": name})

    def forget_dead_workers(self, older_than: float) -> int:
        with self._worker_transaction() as conn:
            return conn.execute(_q("forget_dead_workers"), {"older_than": older_than}).rowcount

    # -- leaders of singleton duties -------------------------------------------------

    def take_leadership(self, duty: str, owner: str, ttl: float) -> bool:
        with self._worker_transaction() as conn:
            return conn.execute(_q("take_leadership"), {
                "duty": duty, "owner": owner, "ttl": ttl}).fetchone() is not None

    def resign_leadership(self, duty: str, owner: str) -> None:
        with self._worker_transaction() as conn:
            conn.execute(_q("resign_leadership"), {"duty": duty, "owner": owner})

    # -- wake-ups --------------------------------------------------------------------

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (from another thread) whenever new work may have arrived."""
        return self._wakeups.subscribe(callback)

    def _notify(self) -> None:
        self._wakeups.notify()

    def _listen(self) -> None:
        pause = 0.1
        while not self._closed.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True,
                                     connect_timeout=int(CONNECT_TIMEOUT)) as conn:
                    conn.execute(psycopg.sql.SQL("LISTEN {}").format(
                        psycopg.sql.Identifier(self.channel)))
                    pause = 0.1
                    self._notify()  # anything enqueued while we were not listening
                    while not self._closed.is_set():
                        for _ in conn.notifies(timeout=0.1, stop_after=1):
                            self._notify()
            except psycopg.Error as exc:
                if self._closed.is_set():
                    return
                log.warning("LISTEN connection lost (%s); reconnecting in %.1f s", exc, pause)
                self._closed.wait(pause)
                pause = min(pause * 2, LISTEN_RECONNECT_MAX)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._wakeups.join(timeout=3)
        if self._worker_pool is not None:
            self._worker_pool.close()
        self._pool.close()


# What the server (or libpq) says when the URL itself is wrong, so trying again cannot help:
# libpq reports no SQLSTATE for a refused connection, so its (English) text is all there is.
_URL_MISTAKES = ("password authentication failed", "does not exist", "no pg_hba.conf entry",
                 "no password supplied", "permission denied for database",
                 "not permitted to log in")


def _url_mistake(reason: str) -> bool:
    return any(mistake in reason for mistake in _URL_MISTAKES)


def _connect_timeout(url: str) -> float:
    """The URL's connect_timeout (seconds), else CONNECT_TIMEOUT."""
    try:
        value = psycopg.conninfo.conninfo_to_dict(url).get("connect_timeout")
    except psycopg.Error:
        return CONNECT_TIMEOUT  # a malformed URL: opening the pool says what is wrong
    if value is None or str(value).strip() == "":
        return CONNECT_TIMEOUT
    try:
        seconds = float(str(value))
    except ValueError:
        seconds = -1.0
    if not 1 <= seconds <= 86400:
        raise ConfigurationError(
            f"connect_timeout={value!r} in the URL {_redact(url)} is not a number of seconds "
            "from 1 to 86400")
    return seconds


# conveyor's transactions are a few statements long. A session idle inside one this long
# belongs to a client that is gone (a worker cut off mid-transaction, its socket still open):
# the server ends it, so the rows it locked can be watched and taken over again.
IDLE_IN_TRANSACTION_TIMEOUT = "10s"


def _configure_session(conn: psycopg.Connection[Row]) -> None:
    conn.execute(psycopg.sql.SQL("SET idle_in_transaction_session_timeout = {}").format(
        psycopg.sql.Literal(IDLE_IN_TRANSACTION_TIMEOUT)))


def _redact(url: str) -> str:
    """The URL without its password (in its credentials or a password= parameter)."""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    if "?" in rest:
        rest, query = rest.split("?", 1)
        kept = [part for part in query.split("&") if not part.lower().startswith("password=")]
        query = "&".join(kept)
    else:
        query = ""
    if "@" in rest:
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        rest = f"{user}@{host}"
    return f"{scheme}://{rest}" + (f"?{query}" if query else "")
