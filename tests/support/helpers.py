"""Test helpers: polling with a deadline, worker threads and real worker processes."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import Result
from databases import is_postgres, sessions_in_transaction

from conveyor import Conveyor
from conveyor.app import Runner
from conveyor.backends import Backend, sqlite_path
from conveyor.backends.base import ClaimedJob
from conveyor.outcomes import Succeeded
from conveyor.worker.dispatcher import Dispatcher

SUPPORT = Path(__file__).resolve().parent
SRC = SUPPORT.parent.parent / "src"


def assert_usage_error(result: Result, message: str) -> None:
    """A CLI call refused as bad usage: exit 2, `message` shown, no traceback."""
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), result.exception


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.01,
               message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


@contextmanager
def worker_thread(app: Conveyor, **options: Any) -> Iterator[Runner]:
    """Run a worker in a thread for the duration of the block."""
    worker = app.worker(**options)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:  # surfaced after the block
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_until(lambda: worker.started.is_set() or errors, message="worker start")
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive(), "worker did not stop"
    if errors:
        raise errors[0]


def worker_env(url: str, log: Path | None = None, lease: float | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), str(SRC), env.get("PYTHONPATH", "")])
    env["CONVEYOR_URL"] = url
    if log is not None:
        env["CONVEYOR_TEST_LOG"] = str(log)
    if lease is not None:
        env["CONVEYOR_TEST_LEASE"] = str(lease)
    return env


def spawn_worker(url: str, stderr: Path, *args: str, log: Path | None = None,
                 lease: float | None = None,
                 env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A real `conveyor worker` process on the test app (`env`: extra variables)."""
    command = [sys.executable, "-m", "conveyor", "worker", "-A", "jobs_app:app", "--url", url,
               *args]
    with open(stderr, "ab") as err:
        return subprocess.Popen(command, env={**worker_env(url, log, lease), **(env or {})},
                                stdout=err, stderr=err)


def overlaps(runs: list[Execution]) -> list[tuple[Execution, Execution]]:
    """Pairs of runs of the same job that were running at the same time (an unfinished run
    counts as running until now)."""
    found: list[tuple[Execution, Execution]] = []
    by_job: dict[int, list[Execution]] = {}
    for run in runs:
        by_job.setdefault(run.job_id, []).append(run)
    for spans in by_job.values():
        spans.sort(key=lambda run: run.start)
        for index, first in enumerate(spans):
            first_end = first.end if first.end is not None else float("inf")
            found.extend((first, later) for later in spans[index + 1:]
                         if later.start < first_end)
    return found


@dataclass(frozen=True)
class Execution:
    job_id: int
    pid: int
    start: float
    end: float | None
    attempt: int


def read_executions(log: Path) -> list[Execution]:
    """Pair each start line with the end line of the same job and pid."""
    if not log.exists():
        return []
    open_runs: dict[tuple[int, int, int], float] = {}
    done: list[Execution] = []
    # A line still being appended may be read in part: only whole lines count.
    for line in log.read_text().split("\n")[:-1]:
        event, job, pid, at, attempt = line.split()
        key = (int(job), int(pid), int(attempt))
        if event == "start":
            open_runs[key] = float(at)
        else:
            start = open_runs.pop(key)
            done.append(Execution(int(job), int(pid), start, float(at), int(attempt)))
    done.extend(Execution(j, p, s, None, a) for (j, p, a), s in open_runs.items())
    return done


# -- fault injection -----------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a live process: gone, or a zombie waiting to be reaped, counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return not Path("/proc").is_dir()  # no /proc: trust os.kill; gone in between: dead
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def freeze_outside_write(proc: subprocess.Popen[bytes], db_url: str,
                         attempts: int = 50) -> None:
    """SIGSTOP `proc` at a moment it holds no write lock or open transaction.

    A process frozen inside a write transaction would block the other workers (SQLite: the
    file's write lock; PostgreSQL: the rows it updated), which is the database, not the code
    under test. So after stopping it we check that it holds nothing (SQLite: a write
    transaction can start; PostgreSQL: no session of this test is inside a transaction), and
    if it does, let it run a little and try again.
    """
    for _ in range(attempts):
        os.kill(proc.pid, signal.SIGSTOP)
        if _holds_nothing(db_url):
            return
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.01)  # let it finish the transaction it is in
    raise AssertionError(f"could not freeze pid {proc.pid} outside a write transaction")


def _holds_nothing(db_url: str) -> bool:
    if is_postgres(db_url):
        return not sessions_in_transaction(db_url)
    conn = sqlite3.connect(str(sqlite_path(db_url)), timeout=0.3, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Cleanup for a `finally`: SIGKILL (after SIGCONT, in case it is frozen) and reap."""
    for proc in procs:
        if proc.poll() is None:
            if hasattr(signal, "SIGCONT"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def claim(backend: Backend, owner: str, queues: Sequence[str], limit: int, *,
          lease: float) -> list[ClaimedJob]:
    """Claim without acknowledging anything (what a worker's first round does)."""
    return backend.ack_and_claim((), owner, queues, limit, lease)[1]


class InstantPool:
    """A pool whose jobs end as they are submitted, each with a success."""

    kind = "instant"
    kills_jobs = False
    prefetches = False

    def __init__(self) -> None:
        self.dispatcher: Dispatcher | None = None

    def start(self) -> None: ...

    def submit(self, job: ClaimedJob) -> None:
        assert self.dispatcher is not None
        now = time.time()
        self.dispatcher.on_outcome(job, Succeeded(job.id, job.token, 1, now, now, "1"))

    def take_unstarted(self) -> list[ClaimedJob]:
        return []

    def request_cancel(self, job_id: int) -> None: ...

    def stop_job(self, job_id: int) -> None: ...

    def set_deadline(self, job_id: int, deadline: float | None) -> None: ...

    def close(self, *, kill: bool) -> None: ...


def burst_dispatcher(backend: Backend, concurrency: int,
                     deaths: list[BaseException]) -> Dispatcher:
    """A dispatcher that claims into an InstantPool and stops once nothing is left."""
    pool = InstantPool()
    dispatcher = Dispatcher(backend, "w", ["default"], concurrency, 30.0,
                            stopping=threading.Event(),
                            on_death=lambda name, exc: deaths.append(exc), burst=True,
                            burst_horizon=0.0)
    dispatcher.use(pool)
    pool.dispatcher = dispatcher
    return dispatcher
