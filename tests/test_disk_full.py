"""A full disk under a SQLite database, for real: a 2 MiB tmpfs filled up with a file.

Enqueue refuses clearly and stores nothing; a worker keeps retrying (however long the disk
stays full) and finishes every job exactly once when space comes back."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import kill_all, read_executions, wait_until, worker_env
from jobs_app import make_app

from conveyor import JobState, StorageFull
from conveyor.worker.loops import MIN_FAILURES

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mounts a tmpfs")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on its own 2 MiB filesystem."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path) -> Path:
    """Take every free byte of `folder`'s filesystem; delete the returned file to give it
    back."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == 28, exc  # ENOSPC
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_enqueue_on_a_full_disk_says_so_and_stores_nothing(small_disk: Path) -> None:
    db = small_disk / "jobs.db"
    app = make_app(f"sqlite:///{db}")
    try:
        kept = app.tasks["t.add"].enqueue(1, 2)
        filler = fill(small_disk)
        with pytest.raises(StorageFull) as caught:
            app.tasks["t.add"].enqueue(3, 4)
        assert f"the disk holding {db} is full; free space and try again" in str(caught.value)
        with pytest.raises(StorageFull):
            app.enqueue_many([app.tasks["t.add"].prepare(n, n) for n in range(200)])
        with pytest.raises(StorageFull):
            app.tasks["t.add"].options(unique_key="k").enqueue(5, 6)
        assert [job.id for job in app.inspector.list_jobs()] == [kept.id]  # nothing half-stored
        filler.unlink()
        again = app.tasks["t.add"].enqueue(7, 8)
        assert [job.id for job in app.inspector.list_jobs()] == [again.id, kept.id]
    finally:
        app.close()


def test_a_worker_outlasts_a_full_disk_and_then_runs_every_job_once(
        small_disk: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{small_disk / 'jobs.db'}"
    log, err, gate = tmp_path / "executions.log", tmp_path / "worker.err", tmp_path / "gate"
    app = make_app(url)
    proc: subprocess.Popen[bytes] | None = None
    try:
        held = app.tasks["t.gate"].enqueue(str(gate))
        rest = app.enqueue_many([app.tasks["t.record"].prepare(f"r{n}") for n in range(20)])
        # A real worker process. With the old rule (a duty gives up after MIN_FAILURES failures
        # spanning OUTAGE_TOLERANCE) and no tolerance, it would stop after MIN_FAILURES.
        command = [sys.executable, "-c",
                   "import conveyor.worker.loops as loops; loops.OUTAGE_TOLERANCE = 0.0; "
                   "from conveyor.cli import main; main()",
                   "worker", "-A", "jobs_app:app", "--url", url, "-c", "1",
                   "--log-level", "debug"]
        with open(err, "wb") as sink:
            proc = subprocess.Popen(command, env=worker_env(url, log), stdout=sink,
                                    stderr=sink)
        wait_until(lambda: [run.job_id for run in read_executions(log)] == [held.id],
                   message="the held job to start")
        filler = fill(small_disk)
        gate.touch()  # the held job ends: its outcome and the next claim need the disk

        def most_failures_in_a_row() -> int:
            counts = re.findall(r"failed \((\d+) in a row\)", err.read_text())
            return max((int(n) for n in counts), default=0)

        # Its duties (claiming, writing outcomes, heartbeat) all fail; each keeps trying.
        wait_until(lambda: most_failures_in_a_row() > MIN_FAILURES + 1, timeout=15,
                   message="the worker to fail to write more than a few times in a row")
        text = err.read_text()
        assert proc.poll() is None, text  # still running, still trying
        assert "is full; free space and try again" in text
        assert "retrying until the database is available again" in text
        filler.unlink()
        jobs = [held, *rest]
        wait_until(lambda: all(job.refresh().state is JobState.SUCCEEDED for job in jobs),
                   timeout=30, message="every job to succeed once there is space")
        runs = read_executions(log)
        assert all(run.end is not None for run in runs)
        assert Counter(run.job_id for run in runs) == {job.id: 1 for job in jobs}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, err.read_text()
    finally:
        if proc is not None:
            kill_all([proc])
        app.close()
