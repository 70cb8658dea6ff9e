"""Unique keys: a database constraint, not a read-then-write race."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import worker_env, worker_thread

from conveyor import Conveyor, JobState

ENQUEUE_SCRIPT = """
import json, sys, time
from jobs_app import make_app
app = make_app(sys.argv[1])
go = float(sys.argv[2])
while time.time() < go:
    pass
job = app.tasks["t.add"].options(unique_key="nightly-import").enqueue(1, 2)
print(json.dumps({"id": job.id}))
"""


@pytest.mark.filterwarnings("ignore:no worker has registered task:conveyor.errors.ConveyorWarning")
def test_eight_processes_enqueue_one_key_exactly_one_row(app: Conveyor, db_url: str,
                                                         tmp_path: Path) -> None:
    app.enqueue("warm.up")  # schema in place, so the race is about the key alone
    import time

    go = time.time() + 1.5  # all eight processes start their enqueue at the same instant
    procs = [
        subprocess.Popen([sys.executable, "-c", ENQUEUE_SCRIPT, db_url, str(go)],
                         env=worker_env(db_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(8)
    ]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        ids.append(json.loads(out)["id"])
    assert len(set(ids)) == 1, ids
    rows = app.inspector.list_jobs(task="t.add")
    assert len(rows) == 1
    assert rows[0].unique_key == "nightly-import"


def test_duplicate_returns_the_existing_job(app: Conveyor) -> None:
    first = app.tasks["t.add"].options(unique_key="k").enqueue(1, 2)
    second = app.tasks["t.add"].options(unique_key="k").enqueue(3, 4)
    assert second.id == first.id
    assert second.args == [1, 2]
    in_batch = app.enqueue_many([app.tasks["t.add"].options(unique_key="b").prepare(1, 1),
                                 app.tasks["t.add"].options(unique_key="b").prepare(2, 2)])
    assert in_batch[0].id == in_batch[1].id


def test_key_is_free_again_once_the_job_has_finished(app: Conveyor) -> None:
    first = app.tasks["t.add"].options(unique_key="k").enqueue(1, 2)
    with worker_thread(app):
        first.result(timeout=10)
    again = app.tasks["t.add"].options(unique_key="k").enqueue(1, 2)
    assert again.id != first.id
    assert again.state is JobState.QUEUED
    cancelled = app.tasks["t.add"].options(unique_key="c").enqueue(1, 2)
    cancelled.cancel()
    assert app.tasks["t.add"].options(unique_key="c").enqueue(1, 2).id != cancelled.id


def test_scheduled_and_running_jobs_hold_their_key(app: Conveyor, tmp_path: Path) -> None:
    scheduled = app.tasks["t.add"].options(unique_key="s", delay=60).enqueue(1, 2)
    assert app.tasks["t.add"].options(unique_key="s").enqueue(1, 2).id == scheduled.id
    gate = tmp_path / "gate"
    running = app.tasks["t.gate"].options(unique_key="r").enqueue(str(gate))
    with worker_thread(app):
        from helpers import wait_until

        wait_until(lambda: running.refresh().state is JobState.RUNNING)
        assert app.tasks["t.gate"].options(unique_key="r").enqueue(str(gate)).id == running.id
        gate.touch()
        running.result(timeout=10)
