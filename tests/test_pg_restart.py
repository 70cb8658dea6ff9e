"""PostgreSQL restarts under a running worker: it reconnects, and no job is lost or run twice
at the same time."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from databases import in_ci, postgres_problem
from helpers import read_executions, spawn_worker, wait_until

from conveyor import JobState

pytestmark = pytest.mark.backends("postgresql")


def _cluster_command(action: str) -> list[str]:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action]


@pytest.fixture
def pg_url(db_url: str) -> Iterator[str]:
    """The test schema's URL; the server is started again (should the test leave it down)
    before the schema is dropped."""
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        reason = "restarting PostgreSQL needs root and pg_ctlcluster"
        if in_ci():
            pytest.fail(f"the PostgreSQL restart test must run in CI: {reason}")
        pytest.skip(reason)
    yield db_url
    subprocess.run(_cluster_command("start"), capture_output=True, timeout=60)
    wait_until(lambda: postgres_problem() is None, timeout=30, interval=0.2,
               message="PostgreSQL to accept connections again")


def test_worker_survives_a_database_restart(pg_url: str, tmp_path: Path) -> None:
    from jobs_app import make_app

    app = make_app(pg_url, lease_timeout=30)
    log = tmp_path / "executions.log"
    err = tmp_path / "worker.err"
    proc = spawn_worker(pg_url, err, "-c", "4", log=log, lease=30)
    try:
        record = app.tasks["t.record"]
        first = app.enqueue_many([record.prepare(f"a{n}", sleep=0.01) for n in range(300)])
        wait_until(lambda: len(read_executions(log)) >= 50, timeout=60, message="progress")
        app.close()  # the test's own pool would see the restart too
        subprocess.run(_cluster_command("restart"), check=True, capture_output=True, timeout=120)
        second = app.enqueue_many([record.prepare(f"b{n}") for n in range(100)])
        jobs = first + second
        wait_until(lambda: all(job.refresh().state is JobState.SUCCEEDED for job in jobs),
                   timeout=120, interval=0.2, message="every job, before and after, to succeed")
        assert proc.poll() is None, err.read_text()  # still running: it reconnected
        assert "connection lost" in err.read_text()  # the restart did reach the worker
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        app.close()
    assert proc.returncode == 0, err.read_text()
    runs = read_executions(log)
    ids = {job.id for job in jobs}
    assert {run.job_id for run in runs} == ids
    by_job: dict[int, list[tuple[float, float]]] = {}
    for run in runs:
        assert run.end is not None
        by_job.setdefault(run.job_id, []).append((run.start, run.end))
    for job_id, spans in by_job.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"job {job_id} ran twice at once: {spans}"
