"""SQLite backend: WAL, BEGIN IMMEDIATE for every write, one writer connection per process."""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, Literal

from .. import sql
from ..errors import ConfigurationError, ConveyorWarning, SchemaMismatch
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
from .unavailable import sqlite_unavailable
from .wakeups import Wakeups

Durability = Literal["normal", "full"]
log = logging.getLogger("conveyor.sqlite")

# How often an idle process checks whether another process committed (PRAGMA data_version).
WATCH_FAST = 0.002
WATCH_SLOW = 0.008
WATCH_QUIET_AFTER = 1.0
PAGE_SIZE = 2048
CACHE_KIB = 32768
BUSY_TIMEOUT = 60.0
# A reader that keeps a transaction open stops checkpoints from reaching the end of the WAL, so
# the WAL grows meanwhile; afterwards it is cut back to this size at its next reset...
WAL_SIZE_LIMIT = 64 * 1024 * 1024
# ...and an idle worker truncates a WAL larger than this (a normal one cycles within about
# 1000 pages, ~2 MiB, the auto-checkpoint threshold).
WAL_TRUNCATE_ABOVE = 4 * 1024 * 1024
# Seconds between an idle worker's looks at the WAL's size (an os.stat; the checkpoint only
# when it is too large).
MAINTAIN_EVERY = 2.0
# Above this many queues a claim lists them in one JSON parameter rather than one UNION ALL
# term each (SQLite allows at most 500 terms in a compound SELECT).
CLAIM_UNION_MAX = 100
# WAL needs shared memory between processes, which these filesystems do not provide.
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smbfs", "smb3", "9p", "fuse.sshfs", "afs", "ceph", "glusterfs",
     "lustre", "gpfs", "beegfs", "fuse.glusterfs", "fuse.rclone"}
)


def _q(name: str) -> str:
    return sql.load("sqlite", name)


@cache
def _claim_sql(queue_count: int) -> str:
    if queue_count > CLAIM_UNION_MAX:
        return _q("claim").replace("{candidates}", _q("claim_candidates_many_queues"))
    one = _q("claim_candidates_one_queue")
    candidates = "\nUNION ALL\n".join(one.replace("{n}", str(i)) for i in range(queue_count))
    return _q("claim").replace("{candidates}", candidates)


def _split_statements(script: str) -> list[str]:
    """Migration statements, one per `;` that ends a line (executescript would COMMIT)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in buffer.splitlines()
    ):
        statements.append(buffer.strip())
    return statements


_STATES = {state.value: state for state in JobState}


def _fresh_record(row: tuple[Any, ...]) -> JobRecord:
    """The record of a job just inserted from `row` (enqueue.sql's parameters)."""
    job_id, task, queue, state, priority, args, kwargs, unique_key, max_attempts, run_at, now, \
        *_ = row
    return JobRecord(
        job_id, task, queue, _STATES[state], priority, args, kwargs, unique_key, 0,
        max_attempts, run_at, now,
    )


# 13 parameters a row: 500 rows stay far below SQLite's 32,766 variables.
BATCH_ROWS = 500


@cache
def _batch_insert_sql(rows: int) -> str:
    return _q("enqueue_batch").replace("{rows}", ", ".join(["(?,?,?,?,?,?,?,?,?,?,?,?,?)"] * rows))


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF == sqlite3.SQLITE_BUSY)
    return "locked" in str(exc)


def filesystem_type(path: Path) -> str | None:
    """The Linux filesystem type holding `path`, or None where that cannot be told."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    target = str(path.resolve())
    best, best_type = "", None
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount_point = parts[1].replace("\\040", " ")
        prefix = mount_point.rstrip("/") + "/"
        if (target == mount_point or target.startswith(prefix)) and len(mount_point) > len(best):
            best, best_type = mount_point, parts[2]
    return best_type


class SQLiteBackend:
    """Durable jobs in one SQLite file, shared by any number of processes on one machine."""

    dialect = "sqlite"

    def __init__(
        self, path: Path | str, *, durability: Durability = "normal", auto_migrate: bool = True
    ) -> None:
        if durability not in ("normal", "full"):
            raise ConfigurationError(
                f"durability must be 'normal' or 'full', got {durability!r}"
            )
        given = Path(path)
        # A relative path resolves against the current directory, once, here: every
        # connection of this backend (the watcher's too) opens the same file.
        self.path = Path(os.path.abspath(given))
        self._relative = not given.is_absolute()
        self.durability = durability
        if not self.path.parent.exists():
            raise ConfigurationError(
                f"cannot create the SQLite database {str(self.path)!r}: the folder "
                f"{str(given.parent)!r} does not exist{self._relative_note()}"
            )
        fs_type = filesystem_type(self.path.parent)
        if fs_type in NETWORK_FILESYSTEMS:
            warnings.warn(
                f"{self.path} is on a network filesystem ({fs_type}); SQLite's WAL mode needs "
                "shared memory between processes and can corrupt the database there. "
                "Put the database on a local disk, or use PostgreSQL.",
                ConveyorWarning,
                stacklevel=3,
            )
        self._create_private()
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._lock_wait_since: float | None = None
        self._write = self._connect()
        try:
            self._read = self._connect()
        except BaseException:
            self._write.close()
            raise
        if os.environ.get("CONVEYOR_SQLITE_BUSY") != "native":
            self._write.execute("PRAGMA busy_timeout = 0")  # see _begin_immediate
        self._wakeups = Wakeups(self._watch, "conveyor-sqlite-watch")
        self._closed = threading.Event()
        self.inspector = SQLInspector(self._read_all, self.schema_version)
        if auto_migrate:  # embedded: the schema follows the code, on first use
            try:
                self.migrate()
            except BaseException:
                self._write.close()
                self._read.close()
                raise

    # -- connections -----------------------------------------------------------------

    def _create_private(self) -> None:
        """Create a new database file readable by its owner only (0600); SQLite gives its
        -wal and -shm files the database's mode. An existing file is left as it is; of
        several processes creating the file at once, one does and the rest open it."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the SQLite database {str(self.path)!r}: {exc.strerror}"
            ) from None
        os.close(fd)
        log.warning("created a new, empty database %s%s: if your jobs are elsewhere, give "
                    "this process the same URL (--url or CONVEYOR_URL) as the processes that "
                    "enqueue and run them", self.path, self._relative_note())

    def _relative_note(self) -> str:
        if not self._relative:
            return ""
        return f" (relative to the current directory {os.getcwd()})"

    @property
    def location(self) -> Location:
        return Location("sqlite", str(self.path), {"path": str(self.path)})

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                str(self.path),
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT,
                cached_statements=256,
            )
        except sqlite3.OperationalError as exc:
            raise ConfigurationError(
                f"cannot open SQLite database {str(self.path)!r}: {exc}"
            ) from exc
        try:
            self._configure(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                raise
            raise ConfigurationError(
                f"cannot use {str(self.path)!r} as a conveyor database: {exc}"
            ) from exc
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        # Takes effect only when the file is created. Job rows are small and every commit
        # writes whole pages to the WAL: 2 KiB pages made a single enqueue ~50 % faster than
        # 4 KiB (bench/RESULTS.md) at no cost to the worker.
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        mode = self._enable_wal(conn)
        if mode != "wal":
            raise ConfigurationError(
                f"SQLite database {str(self.path)!r} refused WAL mode (got {mode!r}); "
                "conveyor needs WAL so readers never block the writer"
            )
        conn.execute(f"PRAGMA synchronous = {self.durability.upper()}")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        # The default 2 MB cache misses on the hot pages of a queue of a few thousand jobs
        # and more than doubles the cost of a claim; the cache only grows as pages are used.
        conn.execute(f"PRAGMA cache_size = {-CACHE_KIB}")
        conn.execute("PRAGMA foreign_keys = ON")

    def _enable_wal(self, conn: sqlite3.Connection) -> str:
        """Switch to WAL. Several processes opening a new file at once make the switch fail
        with "locked" without consulting busy_timeout, so retry it for as long."""
        deadline = time.monotonic() + BUSY_TIMEOUT
        pause = 0.001
        while True:
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            if mode == "wal":
                return mode
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE takes the write lock up front, so busy_timeout applies to it.
        A full disk, an I/O error or a lock held too long raises DatabaseUnavailable (or
        StorageFull), after the transaction was rolled back: nothing of it is stored."""
        with self._write_lock, self._unavailable_as_error():
            conn = self._write
            self._begin_immediate(conn)
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back by itself (e.g. disk full); never leave the one
                # writer connection inside a transaction.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _unavailable_as_error(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            unavailable = sqlite_unavailable(exc, self.path)
            if unavailable is None:
                raise
            raise unavailable from exc

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """Take the write lock, waiting up to BUSY_TIMEOUT while another process holds it.

        SQLite's own busy handler sleeps 1, 2, 5, 10 ms... between tries, while a worker's
        transaction lasts well under a millisecond: with two busy processes that sleep was
        most of the time. The writer connection has busy_timeout 0 and retries here with
        sleeps of 50 us growing to 5 ms. While it waits, `renewal_blocked()` says so."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        deadline = time.monotonic() + BUSY_TIMEOUT
        pause = 0.00005
        self._lock_wait_since = time.monotonic()
        try:
            while True:
                time.sleep(pause)
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or time.monotonic() > deadline:
                        raise
                pause = min(pause * 1.5, 0.005)
        finally:
            self._lock_wait_since = None

    def renewal_blocked(self) -> bool:
        return self._lock_wait_since is not None

    def _read_all(self, name: str, params: Mapping[str, Any] | None = None) -> list[sqlite3.Row]:
        with self._read_lock, self._unavailable_as_error():
            return self._read.execute(_q(name), params or {}).fetchall()

    # -- schema ----------------------------------------------------------------------

    def schema_version(self) -> int:
        with self._read_lock:
            exists = self._read.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'conveyor_migrations'"
            ).fetchone()
            if not exists:
                return 0
            return int(self._read.execute(_q("schema_version")).fetchone()["version"])

    def migrate(self) -> int:
        """Bring the schema up to date; returns the version. Refuses a newer schema."""
        known = sql.migrations("sqlite")
        latest = known[-1][0]
        with self._transaction() as conn:
            conn.execute(_q("create_migrations_table"))
            current = int(conn.execute(_q("schema_version")).fetchone()["version"])
            if current > latest:
                raise SchemaMismatch(
                    f"database {str(self.path)!r} has schema version {current}, newer than the "
                    f"{latest} this conveyor understands; upgrade conveyor"
                )
            for version, name, script in known:
                if version <= current:
                    continue
                for statement in _split_statements(script):
                    conn.execute(statement)
                conn.execute(
                    _q("record_migration"), {"version": version, "name": name, "now": time.time()}
                )
        return latest

    # -- enqueue ---------------------------------------------------------------------

    def enqueue_many(
        self, jobs: Sequence[NewJob], *, connection: Any = None
    ) -> list[EnqueueResult]:
        if not jobs:
            return []
        if connection is not None:
            # Inside the caller's transaction: no BEGIN, no COMMIT. Workers notice the jobs
            # when the caller commits (PRAGMA data_version changes).
            cursor = self._caller_cursor(connection)
            try:
                return self._enqueue_in(cursor, jobs, own_transaction=False)
            finally:
                cursor.close()
        if len(jobs) == 1 and jobs[0].unique_key is None:
            return [self._enqueue_one(jobs[0])]
        with self._transaction() as conn:
            results = self._enqueue_in(conn.cursor(), jobs)
        if any(result.created for result in results):
            self._notify()
        return results

    def _caller_cursor(self, connection: Any) -> sqlite3.Cursor:
        if not isinstance(connection, sqlite3.Connection):
            raise ConfigurationError(
                "a SQLite app enqueues in your transaction through a sqlite3.Connection to "
                f"its database file, got {type(connection).__name__}"
            )
        if connection.isolation_level is None and not connection.in_transaction:
            raise ConfigurationError(
                "the connection given is in autocommit mode (isolation_level=None) with no "
                "transaction open, so the jobs would not share your transaction; run BEGIN "
                "first, or pass a connection with the default isolation level"
            )
        cursor = connection.cursor()
        cursor.row_factory = sqlite3.Row
        files = [row["file"] for row in cursor.execute("PRAGMA database_list")
                 if row["name"] == "main"]
        if not files or not files[0] or Path(files[0]).resolve() != self.path.resolve():
            cursor.close()
            raise ConfigurationError(
                f"the connection given is to {files[0] if files else 'no file'!r}, not to "
                f"this app's database {str(self.path)!r}"
            )
        return cursor

    def _enqueue_in(
        self, cursor: sqlite3.Cursor, jobs: Sequence[NewJob], *, own_transaction: bool = True
    ) -> list[EnqueueResult]:
        """Insert `jobs`. In our own BEGIN IMMEDIATE transaction ids can be computed up
        front; in a caller's transaction (which Python's sqlite3 may open only at the first
        INSERT) each statement computes its own id."""
        now = time.time()
        rows = []
        for job in jobs:
            run_at = job.due(now)
            rows.append((
                job.task,
                job.queue,
                "scheduled" if run_at > now else "queued",
                job.priority,
                job.args_json,
                job.kwargs_json,
                job.unique_key,
                job.max_attempts,
                run_at,
                now,
                job.backoff,
                job.timeout,
            ))
        if own_transaction and all(job.unique_key is None for job in jobs):
            next_id = cursor.execute(_q("next_id")).fetchone()[0] + 1
            numbered = [(next_id + index, *row) for index, row in enumerate(rows)]
            for start in range(0, len(numbered), BATCH_ROWS):
                chunk = numbered[start:start + BATCH_ROWS]
                cursor.execute(_batch_insert_sql(len(chunk)),
                               [value for row in chunk for value in row])
            return [EnqueueResult(_fresh_record(row), True) for row in numbered]
        results: list[EnqueueResult] = []
        insert, find = _q("enqueue"), _q("find_active_by_unique_key")
        for row in rows:
            inserted = cursor.execute(insert, row).fetchone()
            if inserted is not None:
                results.append(EnqueueResult(_fresh_record((inserted[0], *row)), True))
                continue
            existing = cursor.execute(find, {"unique_key": row[6]}).fetchone()
            if existing is None:  # pragma: no cover - no other constraint can clash
                raise RuntimeError(f"enqueue of {row[0]!r} conflicted on no unique key")
            results.append(EnqueueResult(job_record(existing), created=False))
        return results

    def _enqueue_one(self, job: NewJob) -> EnqueueResult:
        """The common single enqueue: one statement in its own transaction."""
        with self._transaction() as conn:
            now = time.time()
            run_at = job.due(now)
            row = (
                job.task, job.queue, "scheduled" if run_at > now else "queued", job.priority,
                job.args_json, job.kwargs_json, None, job.max_attempts, run_at, now, job.backoff,
                job.timeout,
            )
            # enqueue.sql computes the id in the statement; without a unique key it cannot
            # clash, so it always returns the row.
            job_id = conn.execute(_q("enqueue"), row).fetchone()[0]
        self._notify()
        return EnqueueResult(_fresh_record((job_id, *row)), True)

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
        """Write progress and finished jobs' outcomes, and claim new jobs, in one transaction:
        a busy worker pays for one commit per round instead of several."""
        limit = limit if queues else 0
        if limit <= 0 and not outcomes and not progress:
            return [], []
        with self._transaction() as conn:
            if progress:
                self._progress_in(conn, progress)
            accepted = self._ack_in(conn, outcomes, owner) if outcomes else []
            rows: list[sqlite3.Row] = []
            if limit > 0:
                now = time.time()
                params: dict[str, Any] = {"owner": owner, "lease": lease, "limit": limit,
                                          "now": now}
                if len(queues) > CLAIM_UNION_MAX:
                    params["queues"] = json.dumps(list(queues))
                else:
                    for index, queue in enumerate(queues):
                        params[f"queue_{index}"] = queue
                conn.execute(_q("promote_due"), {"now": now})
                rows = conn.execute(_claim_sql(len(queues)), params).fetchall()
        claimed = [claimed_job(row) for row in rows]
        claimed.sort(key=lambda job: (job.priority, job.run_at, job.id))
        return accepted, claimed

    def next_due(self, queues: Sequence[str] | None = None) -> float | None:
        if queues is None:
            rows = self._read_all("next_due")
        else:
            rows = self._read_all("next_due_on_queues", {"queues": json.dumps(list(queues))})
        value = rows[0]["run_at"] if rows else None
        return None if value is None else float(value)

    def heartbeat(
        self, worker: WorkerInfo, leases: Sequence[Lease], lease: float, busy: int
    ) -> HeartbeatReply:
        cancel: set[int] = set()
        lost: set[int] = set()
        with self._transaction() as conn:
            now = time.time()
            if leases:
                held = {
                    "ids": json.dumps([h.job_id for h in leases]),
                    "tokens": json.dumps({str(h.job_id): h.token for h in leases}),
                }
                rows = conn.execute(
                    _q("extend_leases"), {**held, "expires": now + lease}
                ).fetchall()
                extended = {row["id"] for row in rows}
                cancel = {row["id"] for row in rows if row["cancel_requested"]}
                if len(extended) < len(leases):
                    finished = {row["id"] for row in conn.execute(_q("finished_leases"), held)}
                    lost = {h.job_id for h in leases} - extended - finished
            row = conn.execute(
                _q("worker_heartbeat"), {"name": worker.name, "now": now, "busy": busy}
            ).fetchone()
            if row is None:  # our row was removed as dead: come back
                self._insert_worker(conn, worker, now)
                stop = False
            else:
                stop = bool(row["stop_requested"])
        return HeartbeatReply(frozenset(cancel), frozenset(lost), stop)

    def cancels_requested(self, job_ids: Sequence[int]) -> set[int]:
        rows = self._read_all("cancels_requested", {"ids": json.dumps(list(job_ids))})
        return {row["id"] for row in rows}

    def save_progress(self, updates: Sequence[ProgressUpdate]) -> None:
        if not updates:
            return
        with self._transaction() as conn:
            self._progress_in(conn, updates)

    def _progress_in(self, conn: sqlite3.Connection, updates: Sequence[ProgressUpdate]) -> None:
        statement = _q("save_progress")
        for update in updates:
            conn.execute(
                statement,
                {
                    "id": update.lease.job_id,
                    "token": update.lease.token,
                    "progress": encode_progress(update.progress),
                },
            )

    def ack_many(self, outcomes: Sequence[Outcome], worker: str) -> list[bool]:
        if not outcomes:
            return []
        with self._transaction() as conn:
            return self._ack_in(conn, outcomes, worker)

    def _ack_in(
        self, conn: sqlite3.Connection, outcomes: Sequence[Outcome], worker: str
    ) -> list[bool]:
        accepted: list[bool] = []
        succeeded = _q("ack_succeeded")
        for outcome in outcomes:
            if isinstance(outcome, Succeeded):
                accepted.append(conn.execute(
                    succeeded,
                    (outcome.result_json, outcome.finished_at, outcome.job_id, outcome.token),
                ).rowcount == 1)
                continue
            params: dict[str, Any] = {
                "id": outcome.job_id,
                "token": outcome.token,
                "finished_at": outcome.finished_at,
            }
            error: JobError | None
            if isinstance(outcome, Retry):
                error = outcome.error
                params["run_at"] = outcome.run_at
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
            ok = conn.execute(_q(statement), params).rowcount == 1
            accepted.append(ok)
            if ok:
                self._record_attempt(conn, outcome, worker, outcome.kind, error)
        return accepted

    def _record_attempt(
        self,
        conn: sqlite3.Connection,
        outcome: Outcome,
        worker: str | None,
        kind: str,
        error: JobError | None,
    ) -> None:
        conn.execute(
            _q("record_attempt"),
            {
                "job_id": outcome.job_id,
                "attempt": outcome.attempt,
                "worker": worker,
                "started_at": outcome.started_at,
                "finished_at": outcome.finished_at,
                "outcome": kind,
                "error_type": error.type if error else None,
                "error_message": error.message if error else None,
                "traceback": error.traceback if error else None,
            },
        )

    def release(self, leases: Sequence[Lease], *, not_before: float = 0.0) -> int:
        if not leases:
            return 0
        released = 0
        statement = _q("release")
        with self._transaction() as conn:
            now = time.time()
            for held in leases:
                released += conn.execute(
                    statement,
                    {"id": held.job_id, "token": held.token, "now": now,
                     "not_before": not_before},
                ).rowcount
        if released:
            self._notify()
        return released

    def observe_leases(self) -> list[ObservedLease]:
        # Inside BEGIN IMMEDIATE: the rescuer sees leases only when it could write them.
        with self._transaction() as conn:
            rows = conn.execute(_q("observe_leases")).fetchall()
        return [ObservedLease(row[0], row[1], row[2]) for row in rows]

    def rescue(self, leases: Sequence[ObservedLease]) -> RescueReport:
        rescued: list[Any] = []
        if not leases:
            return RescueReport()
        with self._transaction() as conn:
            now = time.time()
            for seen in leases:
                params = {"id": seen.job_id, "token": seen.token, "beat": seen.beat}
                row = conn.execute(_q("find_observed"), params).fetchone()
                if row is None:  # renewed, finished or taken since it was watched
                    continue
                owner = row["lease_owner"] or "unknown"
                error = lease_lost_error(owner)
                conn.execute(_q("rescue_one"), {
                    "id": seen.job_id, "token": seen.token, "now": now,
                    "error": encode_error(error),
                })
                lost = Failed(row["id"], 0, row["attempts"], row["started_at"] or now, now, error)
                self._record_attempt(conn, lost, owner, "lost", error)
                rescued.append(row)
        report = rescue_report(rescued)
        if report.requeued:
            self._notify()
        return report

    def cancel(self, job_id: int) -> JobState | None:
        with self._transaction() as conn:
            params = {"id": job_id, "now": time.time()}
            if conn.execute(_q("cancel_waiting"), params).rowcount:
                return JobState.CANCELLED
            if conn.execute(_q("cancel_running"), {"id": job_id}).rowcount:
                return JobState.RUNNING
            row = conn.execute(_q("get_state"), {"id": job_id}).fetchone()
        return None if row is None else JobState(row["state"])

    def prune(self, older_than: float) -> int:
        with self._transaction() as conn:
            conn.execute(_q("raise_id_floor"))
            return conn.execute(
                _q("prune_finished"), {"before": time.time() - older_than}
            ).rowcount

    def retry(self, job_ids: Sequence[int]) -> RetryReport:
        retried: list[int] = []
        held: dict[int, JobRecord] = {}
        with self._transaction() as conn:
            now = time.time()
            for job_id in job_ids:
                try:
                    if conn.execute(_q("retry_job"), {"id": job_id, "now": now}).rowcount:
                        retried.append(job_id)
                except sqlite3.IntegrityError:
                    # Its unique key is held by another waiting or running job. Only this
                    # statement is undone; the transaction and the other retries go on.
                    key = conn.execute(_q("get_job"), {"id": job_id}).fetchone()["unique_key"]
                    holder = conn.execute(_q("find_active_by_unique_key"),
                                          {"unique_key": key}).fetchone()
                    if holder is None:  # pragma: no cover - nothing else can clash
                        raise
                    held[job_id] = job_record(holder)
        if retried:
            self._notify()
        return RetryReport(tuple(retried), held)

    def delete(self, job_ids: Sequence[int]) -> list[int]:
        deleted: list[int] = []
        with self._transaction() as conn:
            conn.execute(_q("raise_id_floor"))
            for job_id in job_ids:
                if conn.execute(_q("delete_job"), {"id": job_id}).rowcount:
                    deleted.append(job_id)
        return deleted

    def purge(self, queue: str, state: JobState | None, *, dry_run: bool = False) -> int:
        params = {"queue": queue, "state": None if state is None else str(state)}
        if dry_run:
            return int(self._read_all("purge_count", params)[0]["n"])
        with self._transaction() as conn:
            conn.execute(_q("raise_id_floor"))
            return conn.execute(_q("purge"), params).rowcount

    def request_worker_stop(self, name: str | None) -> int:
        with self._transaction() as conn:
            return conn.execute(_q("request_worker_stop"), {"name": name}).rowcount

    # -- workers ---------------------------------------------------------------------

    def _insert_worker(self, conn: sqlite3.Connection, worker: WorkerInfo, now: float, *,
                       takeover_after: float = math.inf,
                       gone: WorkerRecord | None = None) -> bool:
        """Register `worker`; False when a live worker holds its name (register_worker.sql)."""
        return conn.execute(
            _q("register_worker"),
            {
                "name": worker.name,
                "host": worker.host,
                "pid": worker.pid,
                "queues": json.dumps(list(worker.queues)),
                "concurrency": worker.concurrency,
                "pool": worker.pool,
                "now": now,
                "takeover_after": takeover_after,
                "gone_host": gone.host if gone else None,
                "gone_pid": gone.pid if gone else None,
                "gone_started": gone.started_at if gone else None,
            },
        ).fetchone() is not None

    def register_worker(self, worker: WorkerInfo, *, takeover_after: float = math.inf,
                        gone: WorkerRecord | None = None) -> WorkerRecord | None:
        with self._transaction() as conn:
            if self._insert_worker(conn, worker, time.time(), takeover_after=takeover_after,
                                   gone=gone):
                return None
            row = conn.execute(_q("get_worker"), {"name": worker.name}).fetchone()
        assert row is not None  # the insert clashed with it, in this transaction
        return worker_record(row)

    def register_tasks(self, worker: str, tasks: Sequence[TaskInfo]) -> None:
        if not tasks:
            return
        with self._transaction() as conn:
            now = time.time()
            conn.executemany(_q("register_task"), [
                {"name": t.name, "queue": t.queue, "priority": t.priority,
                 "max_attempts": t.max_attempts, "worker": worker, "now": now}
                for t in sorted(tasks, key=lambda t: t.name)])

    def deregister_worker(self, name: str) -> None:
        with self._transaction() as conn:
            conn.execute(_q("deregister_worker"), {"name": name})

    def forget_dead_workers(self, older_than: float) -> int:
        with self._transaction() as conn:
            return conn.execute(
                _q("forget_dead_workers"), {"before": time.time() - older_than}
            ).rowcount

    # -- leaders of singleton duties -------------------------------------------------

    def take_leadership(self, duty: str, owner: str, ttl: float) -> bool:
        with self._transaction() as conn:
            row = conn.execute(_q("take_leadership"), {
                "duty": duty, "owner": owner, "ttl": ttl, "now": time.time()}).fetchone()
        return row is not None

    def resign_leadership(self, duty: str, owner: str) -> None:
        with self._transaction() as conn:
            conn.execute(_q("resign_leadership"), {"duty": duty, "owner": owner})

    # -- maintenance -----------------------------------------------------------------

    def maintain(self) -> bool:
        """Keep the WAL small: when it has grown past WAL_TRUNCATE_ABOVE (a reader held a
        transaction open while many writes went on), checkpoint it and truncate it to zero.
        Never waits for a lock: when this process or another is writing, or a reader still
        needs the WAL, it does nothing and says so (False). An idle worker calls it."""
        try:
            size = os.stat(f"{self.path}-wal").st_size
        except OSError:
            return True
        if size <= WAL_TRUNCATE_ABOVE:
            return True
        if not self._write_lock.acquire(blocking=False):
            return False
        try:
            conn = self._write
            busy_ms = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
            if busy_ms:
                conn.execute("PRAGMA busy_timeout = 0")
            try:
                busy = int(conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0])
            finally:
                if busy_ms:
                    conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
        finally:
            self._write_lock.release()
        return busy == 0

    # -- wake-ups --------------------------------------------------------------------

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (from another thread) whenever new work may have arrived."""
        return self._wakeups.subscribe(callback)

    def _notify(self) -> None:
        self._wakeups.notify()

    def _watch(self) -> None:
        """Another process's commit changes PRAGMA data_version: a cheap poll (about 4 us).

        Polled every WATCH_FAST while jobs keep arriving, easing to WATCH_SLOW after a
        second of quiet: quick pickup when busy, well under 1 % of a core when idle. A short
        sleep, not Event.wait, which costs twice the CPU at this rate."""
        conn = self._connect()
        try:
            last = conn.execute("PRAGMA data_version").fetchone()[0]
            last_change = time.monotonic()
            next_maintenance = 0.0
            while not self._closed.is_set():
                now = time.monotonic()
                quiet = now - last_change > WATCH_QUIET_AFTER
                if quiet and now >= next_maintenance:  # nobody is writing: a good moment
                    next_maintenance = now + MAINTAIN_EVERY
                    self._maintain_quietly()
                time.sleep(WATCH_SLOW if quiet else WATCH_FAST)
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version != last:
                    last, last_change = version, time.monotonic()
                    self._notify()
        finally:
            conn.close()

    def _maintain_quietly(self) -> None:
        try:
            self.maintain()
        except sqlite3.Error as exc:  # maintenance must never stop the wake-ups
            log.warning("WAL maintenance of %s failed: %s", self.path, exc)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._wakeups.join(timeout=2)
        with self._write_lock:
            self._write.close()
        with self._read_lock:
            self._read.close()
