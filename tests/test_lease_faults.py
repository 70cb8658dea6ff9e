"""Never twice at the same time, through the faults that break naive leases: a database stall
longer than the lease, a clock step, an embedded worker stopped by SIGTERM, CPU starvation.

Every test counts executions from the log the tasks write themselves (never from the queue's
own state) and asserts that no job ran twice at once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from databases import is_postgres
from helpers import (
    kill_all,
    overlaps,
    read_executions,
    spawn_worker,
    wait_until,
    worker_env,
)

from conveyor import Conveyor, JobState
from conveyor.backends import sqlite_path

LEASE = 2.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _succeeded(app: Conveyor, ids: list[int]) -> bool:
    return all(app.get_job(job_id).state is JobState.SUCCEEDED for job_id in ids)


def _stderr(paths: list[Path]) -> str:
    return "\n".join(path.read_text(errors="replace") for path in paths if path.exists())


def _lock_holder(db_url: str, seconds: float, mode: str = "") -> subprocess.Popen[str]:
    """An outside process that holds the database's write lock (SQLite: BEGIN IMMEDIATE;
    PostgreSQL: LOCK TABLE on the jobs table, in `mode`) for `seconds`, printing "locked" once
    it does."""
    if is_postgres(db_url):
        script = f"""
            import sys, time, psycopg
            with psycopg.connect({db_url!r}) as conn:
                conn.execute("LOCK TABLE conveyor_jobs {mode}")
                print("locked", flush=True)
                time.sleep({seconds})
        """
    else:
        script = f"""
            import sqlite3, time
            conn = sqlite3.connect({str(sqlite_path(db_url))!r}, isolation_level=None,
                                   timeout=30)
            conn.execute("BEGIN IMMEDIATE")
            print("locked", flush=True)
            time.sleep({seconds})
            conn.execute("COMMIT")
        """
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)],
                            stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize("mode", ["", "IN SHARE MODE"])
def test_a_stall_longer_than_the_lease_runs_nothing_twice(
    db_url: str, tmp_path: Path, exec_log: Path, mode: str
) -> None:
    """An outside process holds the lock for 2.25 leases while jobs run: heartbeats that
    nobody could write are no evidence of death, so no job is taken over, none is stopped.
    On PostgreSQL also a SHARE lock (what CREATE INDEX takes): it stops heartbeats' UPDATEs
    but not plain or share-locking reads, so a rescuer must wait for it as well."""
    if mode and not is_postgres(db_url):
        pytest.skip("a table lock mode is PostgreSQL's")
    from jobs_app import make_app

    app = make_app(db_url, lease_timeout=LEASE)
    errs = [tmp_path / "w1.err", tmp_path / "w2.err"]
    procs: list[subprocess.Popen[bytes]] = []
    holder = None
    try:
        jobs = [app.tasks["t.record"].enqueue(f"long-{n}", sleep=3 * LEASE) for n in range(8)]
        procs = [spawn_worker(db_url, err, "-c", "4", log=exec_log, lease=LEASE) for err in errs]
        wait_until(lambda: len(read_executions(exec_log)) == 8, timeout=30,
                   message="all eight jobs running")
        holder = _lock_holder(db_url, 2.25 * LEASE, mode)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert holder.wait(timeout=30) == 0
        wait_until(lambda: _succeeded(app, [job.id for job in jobs]), timeout=60,
                   message="every job to succeed")
        assert all(proc.poll() is None for proc in procs), _stderr(errs)
    finally:
        if holder is not None:
            holder.kill()
            holder.communicate(timeout=10)  # reaps it and closes its pipe
        kill_all(procs)
        app.close()
    runs = read_executions(exec_log)
    assert not overlaps(runs), _stderr(errs)
    assert sorted(run.job_id for run in runs) == sorted(job.id for job in jobs), runs
    assert all(app.get_job(job.id).attempts == 1 for job in jobs)


def test_a_clock_step_runs_nothing_twice(db_url: str, tmp_path: Path, exec_log: Path) -> None:
    """A's clock is two minutes slow, B's two minutes fast: to B every lease A writes looks
    long expired. Leases are judged by watching them, so B takes nothing over."""
    from jobs_app import make_app

    app = make_app(db_url, lease_timeout=LEASE)
    err_a, err_b = tmp_path / "a.err", tmp_path / "b.err"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        jobs = [app.tasks["t.record"].enqueue(f"long-{n}", sleep=2.5 * LEASE) for n in range(4)]
        procs.append(spawn_worker(db_url, err_a, "-c", "4", "--name", "A", log=exec_log,
                                  lease=LEASE, env={"CONVEYOR_TEST_CLOCK_SHIFT": "-120"}))
        wait_until(lambda: len(read_executions(exec_log)) == 4, timeout=30,
                   message="A runs all four jobs")
        procs.append(spawn_worker(db_url, err_b, "-c", "4", "--name", "B", log=exec_log,
                                  lease=LEASE, env={"CONVEYOR_TEST_CLOCK_SHIFT": "120"}))
        wait_until(lambda: _succeeded(app, [job.id for job in jobs]), timeout=60,
                   message="every job to succeed")
        assert all(proc.poll() is None for proc in procs), _stderr([err_a, err_b])
    finally:
        kill_all(procs)
        app.close()
    runs = read_executions(exec_log)
    assert not overlaps(runs), _stderr([err_a, err_b])
    assert len(runs) == 4 and {run.pid for run in runs} == {procs[0].pid}, runs


def test_an_embedded_worker_stopped_by_sigterm_never_hands_back_a_running_thread(
    db_url: str, tmp_path: Path, exec_log: Path
) -> None:
    """`app.worker().run()` in a host that goes on after SIGTERM: the job whose thread still
    runs past the grace period is not handed back (another worker would run it beside the
    thread); its lease is kept and its outcome written when it ends."""
    script = f"""
        import time
        from jobs_app import make_app
        app = make_app({db_url!r}, lease_timeout={LEASE})
        worker = app.worker(concurrency=1, shutdown_timeout=0.2, name="embedded")
        worker.run()
        print("returned", flush=True)
        assert worker.stopped.wait(60)
        print("stopped", flush=True)
        time.sleep(60)  # the host goes on with its own work
    """
    from jobs_app import make_app

    app = make_app(db_url, lease_timeout=LEASE)
    err = tmp_path / "other.err"
    procs: list[subprocess.Popen[bytes]] = []
    host = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)],
                            env=worker_env(db_url, exec_log, LEASE), stdout=subprocess.PIPE)
    try:
        job = app.tasks["t.record"].enqueue("long", sleep=3 * LEASE)
        wait_until(lambda: read_executions(exec_log), timeout=30, message="the job to start")
        host.send_signal(signal.SIGTERM)
        assert host.stdout is not None and host.stdout.readline().strip() == b"returned"
        procs.append(spawn_worker(db_url, err, "-c", "1", "--name", "other", log=exec_log,
                                  lease=LEASE))
        assert host.stdout.readline().strip() == b"stopped"
        record = app.get_job(job.id).record
        assert record.state is JobState.SUCCEEDED and record.worker == "embedded", record
        assert record.result == host.pid
        assert host.poll() is None  # the host process itself was never stopped
    finally:
        host.kill()
        host.communicate(timeout=10)
        kill_all(procs)
        app.close()
    runs = read_executions(exec_log)
    assert len(runs) == 1 and runs[0].end is not None, runs


def test_cpu_starved_heartbeats_run_nothing_twice(
    db_url: str, tmp_path: Path, exec_log: Path
) -> None:
    """Two workers of 12 threads each spin on the CPU beside two CPU hogs, with a 2 s lease:
    heartbeats wait for the GIL behind a dozen busy threads. Any job may be stopped and
    retried, and a starved worker may even exit (then it is replaced), but no job ever runs
    twice at once and every job ends."""
    from jobs_app import make_app

    hog = "import time\nend = time.monotonic() + 90\nwhile time.monotonic() < end: pass\n"
    app = make_app(db_url, lease_timeout=LEASE)
    errs: list[Path] = []
    procs: list[subprocess.Popen[bytes]] = []
    hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(2)]

    def spawn() -> subprocess.Popen[bytes]:
        errs.append(tmp_path / f"w{len(errs)}.err")
        return spawn_worker(db_url, errs[-1], "-c", "12", log=exec_log, lease=LEASE)

    try:
        jobs = app.enqueue_many([app.tasks["t.spin"].prepare(0.5) for _ in range(24)])
        workers = [spawn(), spawn()]
        procs.extend(workers)
        deadline = time.monotonic() + 120
        while not _succeeded(app, [job.id for job in jobs]):
            assert time.monotonic() < deadline, f"jobs left undone:\n{_stderr(errs)}"
            for index, proc in enumerate(workers):
                if proc.poll() is not None:  # exited rather than run a job twice: replace it
                    workers[index] = spawn()
                    procs.append(workers[index])
            time.sleep(0.1)
    finally:
        for proc in hogs:
            proc.kill()
            proc.wait(timeout=10)
        kill_all(procs)
        app.close()
    runs = read_executions(exec_log)
    assert not overlaps(runs), _stderr(errs)
    assert {run.job_id for run in runs if run.end is not None} == {job.id for job in jobs}
