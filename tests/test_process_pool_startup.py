"""The process pool's start-up: its processes import the app side by side, and the worker runs
jobs on the ones that are ready while the others still import it; a broken app still fails
the worker at start.

tests/support/slow_start_app.py holds every pool process but the first inside its import of
the app until a job has run, and logs, from the processes themselves, the order things
happened in: nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers import kill_all, wait_until, worker_env
from slow_start_app import make_app


@contextmanager
def slow_start_worker(db_url: str, tmp_path: Path, *args: str, hold: float = 30.0,
                      broken: bool = False) -> Iterator[subprocess.Popen[bytes]]:
    """A real `conveyor worker --pool process` on slow_start_app, events in tmp_path."""
    env = {**worker_env(db_url), "SLOW_START_DIR": str(tmp_path),
           "SLOW_START_HOLD": str(hold)}
    if broken:
        env["SLOW_START_BROKEN"] = "1"
    command = [sys.executable, "-m", "conveyor", "worker", "-A", "slow_start_app:app",
               "--url", db_url, "--pool", "process", *args]
    with open(tmp_path / "worker.err", "ab") as err:
        worker = subprocess.Popen(command, env=env, stdout=err, stderr=err)
    try:
        yield worker
    finally:
        kill_all([worker])


def events(tmp_path: Path) -> list[tuple[str, int]]:
    """(event, pid) of each line the app's imports and task wrote, in the order written."""
    path = tmp_path / "events"
    lines = path.read_text().split("\n")[:-1] if path.exists() else []
    return [(event, int(pid)) for event, pid, _ in (line.split() for line in lines)]


def test_the_first_job_runs_while_other_pool_processes_still_import_the_app(
        db_url: str, tmp_path: Path) -> None:
    with make_app(db_url) as app:
        job = app.tasks["s.open_gate"].enqueue()  # queued before the worker starts
        with slow_start_worker(db_url, tmp_path, "-c", "2") as worker:
            ran_in = job.result(timeout=60)  # it opened the gate the other process waits on
            wait_until(lambda: [e for e, _ in events(tmp_path)].count("imported") == 2,
                       timeout=60, message="both pool processes to import the app")
            assert worker.poll() is None, (tmp_path / "worker.err").read_text()
    log = events(tmp_path)
    (held,) = [pid for event, pid in log if event == "held"]
    (first,) = [pid for event, pid in log if event == "imported" and pid != held]
    assert ran_in == first != held
    # The job ran before the other process had imported the app (it could not have: the
    # job opened the gate that process waits on).
    assert log.index(("job", first)) < log.index(("imported", held)), log


def test_an_app_that_pool_processes_cannot_import_fails_the_worker_at_start(
        db_url: str, tmp_path: Path) -> None:
    with slow_start_worker(db_url, tmp_path, "-c", "2", broken=True) as worker:
        code = worker.wait(timeout=60)
    output = (tmp_path / "worker.err").read_text()
    assert code != 0, output
    assert "while importing 'slow_start_app:app'" in output, output

