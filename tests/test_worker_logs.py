"""What a `conveyor worker` process logs: its configuration when it starts, and a line per job
when it starts and when it ends (state, duration, the error of a failed attempt, the traceback
of a job that failed for good), as text or as JSON lines, from the thread pool and the process
pool alike (outcomes are logged in the worker process, where they arrive)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import spawn_worker

import conveyor
from conveyor import Conveyor


def run_burst(app: Conveyor, tmp_path: Path, *args: str) -> str:
    """Enqueue a success, a failure for good and a retried failure; run a burst worker over
    them; return its stderr."""
    app.tasks["t.add"].enqueue(1, 2)
    app.tasks["t.fail"].options(max_attempts=1).enqueue("boom")
    app.tasks["t.flaky"].enqueue(2)
    err = tmp_path / "worker.err"
    proc = spawn_worker(app.url, err, "--burst", "-c", "3", *args)
    assert proc.wait(timeout=90) == 0, err.read_text()
    return err.read_text()


def json_lines(text: str) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in text.splitlines()]
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
    return entries


def one(entries: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    found = [e for e in entries if all(e.get(k) == v for k, v in fields.items())]
    assert len(found) == 1, (fields, entries)
    return found[0]


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_json_log_lines_for_log_shippers(app: Conveyor, tmp_path: Path, pool: str) -> None:
    entries = json_lines(run_burst(app, tmp_path, "--log-format", "json", "--pool", pool))
    start = one(entries, logger="conveyor.worker", queues=["default"])
    assert start["message"].startswith("worker ")
    assert (start["pool"], start["concurrency"], start["lease"], start["version"]) == (
        pool, 3, 30.0, conveyor.__version__)
    assert start["time"].endswith("+00:00")

    add, fail, flaky = (j.id for j in app.inspector.list_jobs()[::-1])
    began = one(entries, job_id=add, message=f"job {add} started: t.add on default, "
                                             "attempt 1 of 3")
    assert (began["level"], began["task"], began["attempt"]) == ("INFO", "t.add", 1)
    done = one(entries, job_id=add, state="succeeded")
    assert done["level"] == "INFO" and done["logger"] == "conveyor.jobs"
    assert isinstance(done["duration"], float) and done["duration"] >= 0

    failed = one(entries, job_id=fail, state="failed")
    assert failed["level"] == "WARNING"
    assert (failed["error_type"], failed["error_message"]) == ("ValueError", "boom")
    assert "raise ValueError(message)" in failed["traceback"]

    retried = one(entries, job_id=flaky, attempt=1, state="scheduled")
    assert retried["level"] == "INFO"
    assert retried["error_type"] == "ConnectionError"
    assert retried["retry_in"] >= 0 and "traceback" not in retried


@pytest.mark.backends("sqlite")
def test_text_log_lines_and_levels(app: Conveyor, tmp_path: Path) -> None:
    text = run_burst(app, tmp_path)
    add, fail, flaky = (j.id for j in app.inspector.list_jobs()[::-1])
    assert "started: queues=default pool=thread concurrency=3 lease=30s conveyor=" in text
    assert f"INFO conveyor.jobs: job {add} started: t.add on default, attempt 1 of 3" in text
    assert f"INFO conveyor.jobs: job {add} succeeded: t.add, attempt 1 of 3, " in text
    assert (f"INFO conveyor.jobs: job {flaky} attempt 1 of 3 failed: t.flaky, " in text
            and "ConnectionError: attempt 1 failed; retrying in " in text)
    failed = text.split(f"WARNING conveyor.jobs: job {fail} failed: t.fail, attempt 1 of 1, ")[1]
    assert failed.split("\n", 2)[1] == "Traceback (most recent call last):"


@pytest.mark.backends("sqlite")
def test_at_warning_only_jobs_that_failed_for_good_are_logged(app: Conveyor,
                                                              tmp_path: Path) -> None:
    text = run_burst(app, tmp_path, "--log-level", "warning")
    assert "conveyor.jobs" in text
    assert [line.split(": job ")[1].split()[1] for line in text.splitlines()
            if "conveyor.jobs" in line] == ["failed:"]
