"""PostgreSQL restarts under a running worker: it reconnects, and no job is lost or run twice
at the same time."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import read_executions, spawn_worker, wait_until

from conveyor import JobState

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the PostgreSQL restart test must run in CI: {reason}")
    pytest.skip(reason)


def _cluster_command(action: str) -> list[str]:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action]


@pytest.fixture
def pg_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        _unavailable("restarting PostgreSQL needs root and pg_ctlcluster")
    schema = f"restart_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as exc:
        _unavailable(f"PostgreSQL is not reachable ({exc})")
    yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    subprocess.run(_cluster_command("start"), capture_output=True, timeout=60)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=30) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


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
