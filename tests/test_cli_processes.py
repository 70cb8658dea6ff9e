"""The operator commands as real processes (`python -m conveyor ...`): at least one run per
command family, a real `worker --detach` + `worker stop --pidfile` round trip, a real worker
stopped through the database by `workers stop --all`, and `status -i` ended by Ctrl+C."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import kill_all, pid_alive, spawn_worker, wait_until, worker_env

from conveyor import Conveyor, JobState
from conveyor.backends import sqlite_path
from conveyor.cli.pidfile import read_pidfile

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def conveyor(url: str, cwd: Path, *args: str, timeout: float = 60,
             lease: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conveyor", *args],
                          env=worker_env(url, lease=lease), cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def test_detach_and_stop_with_a_pidfile(tmp_path: Path, db_url: str) -> None:
    pidfile, logfile = tmp_path / "run" / "worker.pid", tmp_path / "run" / "worker.log"
    pidfile.parent.mkdir()
    started = conveyor(db_url, tmp_path, "worker", "-A", "jobs_app:app", "--detach",
                       "--pidfile", str(pidfile), "--logfile", str(logfile), "-c", "2",
                       "--name", "bg-worker", "--json")
    assert started.returncode == 0, started.stderr
    pid = read_pidfile(pidfile)
    assert json.loads(started.stdout) == {"name": "bg-worker", "pid": pid,
                                          "pidfile": str(pidfile), "logfile": str(logfile)}
    try:
        assert pid_alive(pid)
        assert os.getsid(pid) == pid  # its own session: closing the terminal does not stop it
        with Conveyor(db_url) as app:
            [row] = app.inspector.workers()
            assert (row.name, row.pid, row.concurrency) == ("bg-worker", pid, 2)
        # The enqueue family, for real: the detached worker runs the job.
        result = conveyor(db_url, tmp_path, "enqueue", "t.add", "[20, 22]", "--wait", "30")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "42"
        again = conveyor(db_url, tmp_path, "worker", "-A", "jobs_app:app", "--detach",
                         "--pidfile", str(pidfile))
        assert again.returncode == 1
        assert f"names process {pid}, which is running" in again.stderr
        stopped = conveyor(db_url, tmp_path, "worker", "stop", "--pidfile", str(pidfile),
                           "--timeout", "30")
        assert stopped.returncode == 0, stopped.stderr
        assert f"worker {pid} stopped" in stopped.stdout
        assert not pid_alive(pid)
        assert not pidfile.exists()
        assert "worker bg-worker stopped after 1 jobs" in logfile.read_text()
        with Conveyor(db_url) as app:
            assert app.inspector.workers() == []
        gone = conveyor(db_url, tmp_path, "worker", "stop", "--pidfile", str(pidfile))
        assert gone.returncode == 1
        assert "no pidfile at" in gone.stderr
        assert "Traceback" not in gone.stderr
    finally:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.backends("sqlite")  # about the database file too
def test_a_detached_worker_s_files_are_readable_by_their_owner_only(tmp_path: Path,
                                                                    db_url: str) -> None:
    db, pidfile = sqlite_path(db_url), tmp_path / "w.pid"
    kept = tmp_path / "kept.log"
    kept.write_bytes(b"")
    kept.chmod(0o640)
    previous = os.umask(0o022)  # the usual umask: new files 0644
    try:
        started = conveyor(db_url, tmp_path, "worker", "-A", "jobs_app:app", "--detach",
                           "--pidfile", str(pidfile))
        assert started.returncode == 0, started.stderr
        try:
            for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), pidfile,
                         tmp_path / "w.log"):
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        finally:
            stopped = conveyor(db_url, tmp_path, "worker", "stop", "--pidfile", str(pidfile))
            assert stopped.returncode == 0, stopped.stderr
        # An existing logfile keeps its mode.
        again = conveyor(db_url, tmp_path, "worker", "-A", "jobs_app:app", "--detach",
                         "--pidfile", str(pidfile), "--logfile", str(kept))
        assert again.returncode == 0, again.stderr
        try:
            assert stat.S_IMODE(kept.stat().st_mode) == 0o640
            assert b"started" in kept.read_bytes()
        finally:
            stopped = conveyor(db_url, tmp_path, "worker", "stop", "--pidfile", str(pidfile))
            assert stopped.returncode == 0, stopped.stderr
    finally:
        os.umask(previous)


@pytest.mark.backends("sqlite")  # about SQLite folders
def test_detach_refuses_bad_usage_before_starting_anything(tmp_path: Path, db_url: str) -> None:
    pidfile = tmp_path / "w.pid"
    result = conveyor(db_url, tmp_path, "worker", "-A", "jobs_app:app", "--detach",
                      "--pidfile", str(pidfile), "--url", "sqlite:///sub/jobs.db")
    assert result.returncode == 2
    assert "the folder 'sub' does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not pidfile.exists()
    assert not (tmp_path / "w.log").exists()


def test_detach_reports_a_worker_that_dies_at_once(tmp_path: Path, db_url: str) -> None:
    # An app that imports in the launching command but crashes in the worker it starts.
    (tmp_path / "fragile.py").write_text(
        "import sys\n"
        "from conveyor import Conveyor\n"
        "app = Conveyor()\n"
        "if '--detach' not in sys.argv:\n"
        "    raise RuntimeError('no licence for this worker')\n"
    )
    pidfile = tmp_path / "w.pid"
    result = conveyor(db_url, tmp_path, "worker", "-A", "fragile:app", "--detach",
                      "--pidfile", str(pidfile))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout
    assert "the worker exited at once with code 1" in result.stderr
    assert "RuntimeError: no licence for this worker" in result.stderr  # the log's tail
    assert not pidfile.exists()


def test_detach_prints_where_it_logs(tmp_path: Path, db_url: str) -> None:
    pidfile = tmp_path / "ok.pid"
    started = conveyor(db_url, tmp_path, "worker", "-A", "jobs_app:app", "--detach",
                       "--pidfile", str(pidfile))
    try:
        assert started.returncode == 0, started.stderr
        assert "started in the background: pid" in started.stdout
        assert str(tmp_path / "ok.log") in started.stdout  # the default logfile
    finally:
        stop = conveyor(db_url, tmp_path, "worker", "stop", "--pidfile", str(pidfile))
        assert stop.returncode == 0, stop.stderr


def test_workers_stop_all_makes_a_real_worker_exit_0(tmp_path: Path, db_url: str) -> None:
    proc = spawn_worker(db_url, tmp_path / "worker.err", lease=1.0)
    try:
        with Conveyor(db_url) as app:
            wait_until(lambda: any(w.pid == proc.pid for w in app.inspector.workers()),
                       message="worker registered")
            queued = app.enqueue("t.add", 1, 2)
            wait_until(lambda: queued.refresh().state is JobState.SUCCEEDED, message="job run")
        result = conveyor(db_url, tmp_path, "workers", "stop", "--all", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["asked"] == 1
        assert proc.wait(timeout=20) == 0
        assert "stop requested through the database" in (tmp_path / "worker.err").read_text()
        listed = conveyor(db_url, tmp_path, "workers", "list", "--json")
        assert json.loads(listed.stdout) == []
    finally:
        kill_all([proc])


@pytest.mark.filterwarnings("ignore:no worker has registered task:conveyor.errors.ConveyorWarning")
def test_status_interval_ends_cleanly_on_ctrl_c(tmp_path: Path, db_url: str) -> None:
    with Conveyor(db_url) as app:
        app.enqueue("t.add", 1, 2)
    out = tmp_path / "status.out"
    with open(out, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "conveyor", "status", "-i", "0.2"],
                                env=worker_env(db_url), cwd=tmp_path, stdout=sink,
                                stderr=subprocess.PIPE)
    try:
        wait_until(lambda: out.read_text().count("conveyor status at") >= 2,
                   message="two refreshes")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 0, stderr
        assert b"Traceback" not in stderr
        assert "default" in out.read_text()
    finally:
        kill_all([proc])


@pytest.mark.filterwarnings("ignore:no worker has registered task:conveyor.errors.ConveyorWarning")
def test_jobs_purge_health_and_status_as_real_commands(tmp_path: Path, db_url: str) -> None:
    with Conveyor(db_url) as app:
        first = app.enqueue("t.add", 1, 2)
        app.enqueue("t.add", 3, 4)
    listed = conveyor(db_url, tmp_path, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 2
    cancelled = conveyor(db_url, tmp_path, "jobs", "cancel", str(first.id))
    assert cancelled.returncode == 0
    assert f"job {first.id}: cancelled" in cancelled.stdout
    unknown = conveyor(db_url, tmp_path, "jobs", "show", "999")
    assert unknown.returncode == 2
    assert "no job with id 999" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    status = conveyor(db_url, tmp_path, "status", "--json")
    assert json.loads(status.stdout)["queues"][0]["counts"]["cancelled"] == 1
    dry = conveyor(db_url, tmp_path, "purge", "-q", "default")
    assert "would delete 2 jobs" in dry.stdout
    purged = conveyor(db_url, tmp_path, "purge", "-q", "default", "--state", "cancelled",
                      "--yes", "--json")
    assert json.loads(purged.stdout)["count"] == 1
    waiting = conveyor(db_url, tmp_path, "health")  # a job is ready, and no worker runs
    assert waiting.returncode == 1
    assert "no live worker serves queue 'default'" in waiting.stderr
    assert conveyor(db_url, tmp_path, "purge", "-q", "default", "--yes").returncode == 0
    assert conveyor(db_url, tmp_path, "health").returncode == 0
    sick = conveyor(db_url, tmp_path, "health", "--url", f"sqlite:///{tmp_path / 'gone.db'}")
    assert sick.returncode == 1
    assert "no conveyor database" in sick.stderr
    bad = conveyor(db_url, tmp_path, "enqueue", "t.add", "{not json")
    assert bad.returncode == 2
    assert "is not valid JSON" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_second_worker_with_the_name_of_a_live_one_is_refused(tmp_path: Path,
                                                                 db_url: str) -> None:
    first = spawn_worker(db_url, tmp_path / "first.err", "--name", "twin", "-c", "1")
    try:
        with Conveyor(db_url) as app:
            wait_until(lambda: [w.pid for w in app.inspector.workers()] == [first.pid],
                       timeout=30, message="the first worker to register")
            second = conveyor(db_url, tmp_path, "worker", "-A", "jobs_app:app", "--name", "twin",
                              "--burst")
            assert second.returncode == 2, second.stderr
            assert (f"worker name 'twin' is taken by a live worker: pid {first.pid} on host "
                    f"{os.uname().nodename!r}, last heartbeat ") in second.stderr
            assert "Traceback" not in second.stderr
            [row] = app.inspector.workers()  # the first one's registration, untouched
            assert (row.name, row.pid) == ("twin", first.pid)
            job = app.enqueue("t.add", 1, 2)
            assert job.result(timeout=30) == 3  # and it carries on
    finally:
        first.terminate()
        first.wait(timeout=30)
    assert first.returncode == 0
