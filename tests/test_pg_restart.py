"""PostgreSQL restarts under a running worker: it reconnects, and no job is lost or run twice
at the same time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from databases import in_ci
from helpers import overlaps, read_executions, spawn_worker, wait_until
from private_postgres import PrivateCluster, private_cluster, unavailable

from conveyor import JobState

pytestmark = pytest.mark.backends("postgresql")


@pytest.fixture
def cluster(backend_name: str) -> Iterator[PrivateCluster]:
    """A server of this test's own: restarting the shared one would cut off the PostgreSQL
    tests running beside this one."""
    reason = unavailable()
    if reason is not None:
        if in_ci():
            pytest.fail(f"the PostgreSQL restart test must run in CI: {reason}")
        pytest.skip(reason)
    with private_cluster() as made:
        yield made


def test_worker_survives_a_database_restart(cluster: PrivateCluster, tmp_path: Path) -> None:
    from jobs_app import make_app

    pg_url = cluster.url
    app = make_app(pg_url, lease_timeout=30)
    log = tmp_path / "executions.log"
    err = tmp_path / "worker.err"
    proc = spawn_worker(pg_url, err, "-c", "4", log=log, lease=30)
    try:
        record = app.tasks["t.record"]
        first = app.enqueue_many([record.prepare(f"a{n}", sleep=0.01) for n in range(300)])
        wait_until(lambda: len(read_executions(log)) >= 50, timeout=60, message="progress")
        app.close()  # the test's own pool would see the restart too
        cluster.restart()
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
    assert all(run.end is not None for run in runs)  # every run ended
    assert not overlaps(runs)  # and none ran twice at once
