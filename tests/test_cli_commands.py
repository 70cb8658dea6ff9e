"""The operator commands in-process (CliRunner): every command, its --json form and its usage
errors (exit 2, a clear message, no traceback), on both backends. Tests about SQLite files
(missing files, folders, non-database files) and usage errors that never reach the database run
on SQLite only."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from databases import execute
from helpers import assert_usage_error, kill_all, spawn_worker, wait_until, worker_thread

from conveyor import Conveyor, JobState
from conveyor.cli import cli
from conveyor.cli.durations import format_duration, parse_duration
from conveyor.cli.pidfile import is_worker_argv, process_identity


@pytest.fixture
def invoke(runner: CliRunner, db_url: str) -> Any:
    """Run `conveyor ARGS --url <the test database>`."""

    def run(*args: str, url: str | None = db_url) -> Result:
        return runner.invoke(cli, [*args, *(["--url", url] if url else [])])

    return run


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def as_json(result: Result) -> Any:
    assert_ok(result)
    return json.loads(result.stdout)


def finish(app: Conveyor, *queues: str) -> None:
    """Run every claimable job of `queues` to its end with a burst worker."""
    app.worker(burst=True, queues=list(queues) or ["default"], concurrency=2).run()


def failed_job(app: Conveyor, message: str = "boom", queue: str = "default") -> int:
    job = app.tasks["t.fail"].options(max_attempts=1, queue=queue).enqueue(message)
    finish(app, queue)
    assert job.refresh().state is JobState.FAILED
    return job.id


# -- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("30", 30.0), ("0", 0.0), ("2.5", 2.5), ("30s", 30.0), ("10m", 600.0), ("2h", 7200.0),
    ("1d", 86400.0), ("1w", 604800.0), ("1h30m", 5400.0), ("1H 30M", 5400.0), ("1.5h", 5400.0),
    ("1d2h3m4s", 93784.0),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"), ("10x", "not a duration"), ("-5", "negative"), ("1h1h", "unit twice"),
    ("h", "not a duration"), ("1e400", "not a duration"),
])
def test_parse_duration_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0.25, 42, 303, 7800, 273600, float("inf"))] == [
        "0.2s", "42s", "5m 03s", "2h 10m", "3d 4h", "forever"]


# -- enqueue ---------------------------------------------------------------------------------


def test_enqueue_by_name_without_importing_task_code(invoke: Any, app: Conveyor) -> None:
    result = invoke("enqueue", "t.echo", '[1, "two"]', "--kwargs", '{"flag": true}',
                    "-q", "other", "--priority", "7")
    assert_ok(result)
    assert result.output.startswith("enqueued job 1: t.echo on queue other")
    job = app.get_job(1)
    assert (job.args, job.kwargs, job.queue, job.priority, job.max_attempts, job.state) == (
        [1, "two"], {"flag": True}, "other", 7, 3, JobState.QUEUED)


def test_enqueue_with_app_applies_the_task_settings(invoke: Any, app: Conveyor) -> None:
    # t.gate declares max_attempts=5; enqueued by bare name, the default 3 applies.
    assert as_json(invoke("enqueue", "t.gate", '["x"]', "--json"))["job"]["max_attempts"] == 3
    with_app = as_json(invoke("enqueue", "t.gate", '["x"]', "-A", "jobs_app:app", "--json"))
    assert with_app["job"]["max_attempts"] == 5
    assert as_json(invoke("enqueue", "t.gate", '["x"]', "-A", "jobs_app:app",
                          "--max-attempts", "9", "--json"))["job"]["max_attempts"] == 9


def test_enqueue_json_and_unique_key(invoke: Any, app: Conveyor) -> None:
    first = as_json(invoke("enqueue", "t.add", "[1, 2]", "--unique-key", "k1", "--json"))
    assert first["created"] is True
    assert first["job"]["args"] == [1, 2]
    assert first["job"]["state"] == "queued"
    assert first["job"]["unique_key"] == "k1"
    again = as_json(invoke("enqueue", "t.add", "[1, 2]", "--unique-key", "k1", "--json"))
    assert again["created"] is False
    assert again["job"]["id"] == first["job"]["id"]
    human = invoke("enqueue", "t.add", "[1, 2]", "--unique-key", "k1")
    assert_ok(human)
    assert f"job {first['job']['id']} already holds unique key 'k1'" in human.output
    assert len(app.inspector.list_jobs()) == 1


def test_enqueue_delay_and_at(invoke: Any, app: Conveyor) -> None:
    before = time.time()
    delayed = as_json(invoke("enqueue", "t.add", "[1, 2]", "--delay", "1h30m", "--json"))
    record = app.get_job(delayed["job"]["id"]).record
    assert record.state is JobState.SCHEDULED
    assert before + 5400 <= record.run_at <= time.time() + 5400
    at = as_json(invoke("enqueue", "t.add", "[1, 2]", "--at", "2030-01-31T09:00:00+02:00",
                        "--json"))
    assert app.get_job(at["job"]["id"]).record.run_at == datetime(
        2030, 1, 31, 7, tzinfo=UTC).timestamp()
    assert at["job"]["run_at"] == "2030-01-31T07:00:00+00:00"
    human = invoke("enqueue", "t.add", "[1, 2]", "--delay", "10m")
    assert "scheduled to run in 9m 5" in human.output or "scheduled to run in 10m" in human.output


@pytest.mark.parametrize(("args", "message"), [
    (["t.add", '{"a": 1}'], "must be a JSON array like"),
    (["t.add", '"text"'], "got a string"),
    (["t.add", "[1,"], "is not valid JSON"),
    (["t.add", "--kwargs", "[1]"], "must be a JSON object like"),
    (["t.add", "--kwargs", "{a: 1}"], "is not valid JSON"),
    (["t.add", "[NaN]"], "which JSON cannot represent"),
    (["t.add", "--delay", "10x"], "is not a duration"),
    (["t.add", "--delay", "-5"], "is negative"),
    (["t.add", "--at", "2030-01-01T09:00"], "has no timezone"),
    (["t.add", "--at", "tomorrow"], "is not an ISO 8601 datetime"),
    (["t.add", "--delay", "10", "--at", "2030-01-01T09:00Z"], "give --delay or --at, not both"),
    (["t.add", "--priority", "5000"], "priority must be an int from -1000 to 1000"),
    (["t.add", "--priority", "high"], "'high' is not a valid integer"),
    (["t.add", "-q", "bad queue"], "may only contain"),
    (["", "[]"], "task name must not be empty"),
    (["t.add", "--wait", "[1, 2]"], "looks like JSON arguments"),
    (["t.add", "--wait", "soon"], "is not a duration"),
    (["t.nope", "-A", "jobs_app:app"], "has no task 't.nope'"),
    (["t.ad", "-A", "jobs_app:app"], "did you mean 't.add'"),
    (["t.add", "-A", "no_such_module_xyz:app"], "cannot import the app module"),
    ([], "Missing argument 'TASK'"),
])
def test_enqueue_usage_errors(invoke: Any, app: Conveyor, args: list[str], message: str) -> None:
    assert_usage_error(invoke("enqueue", *args), message)
    assert app.inspector.list_jobs() == []


@pytest.mark.backends("sqlite")  # about SQLite files
def test_enqueue_into_a_missing_folder_is_a_usage_error(invoke: Any, tmp_path: Path) -> None:
    result = invoke("enqueue", "t.add", "[1, 2]",
                    url=f"sqlite:///{tmp_path / 'nowhere' / 'jobs.db'}")
    assert_usage_error(result, "does not exist")


def test_enqueue_wait_prints_the_result(invoke: Any, app: Conveyor) -> None:
    with worker_thread(app):
        result = invoke("enqueue", "t.add", "[2, 3]", "--wait", "20")
        assert_ok(result)
        assert result.stdout.strip() == "5"
        assert "enqueued job" in result.stderr
        data = as_json(invoke("enqueue", "t.echo", "[1]", "--kwargs", '{"k": "v"}',
                              "--json", "--wait"))
    assert data["job"]["state"] == "succeeded"
    assert data["job"]["result"] == {"args": [1], "kwargs": {"k": "v"}}
    assert data["timed_out"] is False


def test_enqueue_wait_exits_1_with_the_error_when_the_job_fails(invoke: Any,
                                                                app: Conveyor) -> None:
    with worker_thread(app):
        result = invoke("enqueue", "t.fail", '["it broke"]', "--max-attempts", "1", "--wait=20")
        data = json.loads(invoke("enqueue", "t.fail", '["json broke"]', "--max-attempts", "1",
                                 "--json", "--wait").stdout)
    assert result.exit_code == 1, result.output
    assert "failed after 1 attempt(s): ValueError: it broke" in result.stderr
    assert 'raise ValueError(message)' in result.stderr  # the job's own traceback
    assert result.stdout == ""
    assert data["job"]["state"] == "failed"
    assert data["job"]["error"]["message"] == "json broke"


def test_enqueue_wait_gives_up_with_exit_124(invoke: Any, app: Conveyor) -> None:
    result = invoke("enqueue", "t.add", "[1, 2]", "--wait", "0.2")
    assert result.exit_code == 124, result.output
    assert "is still queued after 0.2s; it stays enqueued" in result.stderr
    assert app.get_job(1).state is JobState.QUEUED


def test_enqueue_wait_on_a_cancelled_job_exits_1(invoke: Any, app: Conveyor) -> None:
    def cancel_it() -> None:
        [job] = wait_until(app.inspector.list_jobs, message="job enqueued")
        app.cancel(job.id)

    canceller = threading.Thread(target=cancel_it)
    canceller.start()
    result = invoke("enqueue", "t.add", "[1, 2]", "--wait", "20")
    canceller.join()
    assert result.exit_code == 1, result.output
    assert "was cancelled" in result.stderr


# -- status ----------------------------------------------------------------------------------


def test_status_json_counts_ages_throughput_and_workers(invoke: Any, app: Conveyor) -> None:
    for n in range(3):
        app.tasks["t.add"].enqueue(n, n)
    finish(app)  # 3 succeeded within the last minute
    failed_job(app)
    app.tasks["t.add"].options(queue="media").enqueue(1, 1)
    app.tasks["t.add"].options(queue="media").enqueue(2, 2)
    app.tasks["t.add"].options(queue="media", delay=600).enqueue(3, 3)
    with worker_thread(app, queues=["default"], name="w-status", concurrency=3):
        data = as_json(invoke("status", "--json"))
        human = invoke("status")
    queues = {queue["queue"]: queue for queue in data["queues"]}
    assert queues["default"]["counts"] == {"waiting": 0, "scheduled": 0, "queued": 0,
                                           "running": 0, "succeeded": 3, "failed": 1,
                                           "cancelled": 0}
    assert queues["default"]["finished_last_minute"] == 4
    assert queues["default"]["oldest_queued_age"] is None
    assert queues["media"]["counts"]["queued"] == 2
    assert queues["media"]["counts"]["scheduled"] == 1
    assert 0 <= queues["media"]["oldest_queued_age"] < 60
    assert queues["media"]["finished_last_minute"] == 0
    [worker] = data["workers"]
    assert worker["name"] == "w-status"
    assert (worker["pid"], worker["queues"], worker["concurrency"], worker["busy"]) == (
        os.getpid(), ["default"], 3, 0)
    assert worker["status"] == "alive"
    assert 0 <= worker["heartbeat_age"] < 5
    assert_ok(human)
    for text in ("Queues", "media", "oldest", "Workers", "w-status", "0/3", "alive"):
        assert text in human.output


def test_status_refreshes_until_count(invoke: Any, app: Conveyor) -> None:
    app.tasks["t.add"].enqueue(1, 1)
    lines = invoke("status", "-i", "0.1", "--count", "3", "--json")
    assert_ok(lines)
    frames = [json.loads(line) for line in lines.stdout.splitlines()]
    assert len(frames) == 3
    assert all(frame["queues"][0]["counts"]["queued"] == 1 for frame in frames)
    human = invoke("status", "--interval", "0.1", "--count", "2")
    assert_ok(human)
    assert human.output.count("conveyor status at") == 2
    assert "Ctrl+C to stop" in human.output


def test_status_on_an_empty_database(invoke: Any, app: Conveyor) -> None:
    app.inspector.schema_version()  # creates the file
    assert as_json(invoke("status", "--json"))["queues"] == []
    human = invoke("status")
    assert "no jobs yet" in human.output
    assert "no workers running" in human.output


@pytest.mark.parametrize(("args", "message"), [
    (["--count", "2"], "--count needs --interval"),
    (["-i", "0.01"], "refresh at most every 0.1 s"),
    (["-i", "often"], "is not a duration"),
    (["-i", "1", "--count", "0"], "0 is not in the range"),
])
def test_status_usage_errors(invoke: Any, app: Conveyor, args: list[str], message: str) -> None:
    app.inspector.schema_version()
    assert_usage_error(invoke("status", *args), message)


@pytest.mark.backends("sqlite")  # about SQLite files
def test_reading_commands_refuse_a_missing_database_rather_than_create_it(
        invoke: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    for args in (["status"], ["jobs", "list"], ["jobs", "show", "1"], ["workers", "list"],
                 ["purge", "-q", "default"], ["jobs", "cancel", "1"]):
        assert_usage_error(invoke(*args, url=url), "no conveyor database at")
    assert not (tmp_path / "typo.db").exists()


@pytest.mark.backends("sqlite")  # about SQLite files
def test_a_file_that_is_not_a_database_is_an_error_not_a_traceback(invoke: Any,
                                                                   tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n" * 100)
    result = invoke("status", url=f"sqlite:///{path}")
    assert result.exit_code == 2, result.output  # a wrong --url is a usage error
    assert "as a conveyor database: file is not a database" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


# -- jobs ------------------------------------------------------------------------------------


@pytest.fixture
def mixed(app: Conveyor) -> dict[str, int]:
    """One job in each interesting state; returns their ids by state."""
    done = app.tasks["t.add"].enqueue(1, 2)
    progress = app.tasks["t.progress"].enqueue(4)
    finish(app)
    failed = failed_job(app, "kaput")
    queued = app.tasks["t.echo"].options(queue="media").enqueue("q")
    scheduled = app.tasks["t.echo"].options(delay=600).enqueue("s")
    cancelled = app.tasks["t.echo"].enqueue("c")
    cancelled.cancel()
    return {"succeeded": done.id, "progress": progress.id, "failed": failed,
            "queued": queued.id, "scheduled": scheduled.id, "cancelled": cancelled.id}


def test_jobs_list(invoke: Any, mixed: dict[str, int]) -> None:
    everything = as_json(invoke("jobs", "list", "--json"))
    assert [job["id"] for job in everything] == sorted(mixed.values(), reverse=True)
    assert [j["id"] for j in as_json(invoke("jobs", "list", "--state", "FAILED", "--json"))] == [
        mixed["failed"]]
    assert [j["id"] for j in as_json(invoke("jobs", "list", "-q", "media", "--json"))] == [
        mixed["queued"]]
    by_task = as_json(invoke("jobs", "list", "--task", "t.echo", "--limit", "2", "--json"))
    assert [j["id"] for j in by_task] == [mixed["cancelled"], mixed["scheduled"]]
    human = invoke("jobs", "list", "--limit", "3")
    assert_ok(human)
    assert "showing the newest 3" in human.stderr
    assert "t.echo" in human.stdout
    assert "ValueError: kaput" in invoke("jobs", "list", "--state", "failed").stdout
    assert "no jobs match" in invoke("jobs", "list", "--task", "t.none").stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--state", "done"], "'done' is not one of"),
    (["--limit", "0"], "0 is not in the range"),
    (["--limit", "many"], "'many' is not a valid integer"),
])
def test_jobs_list_usage_errors(invoke: Any, mixed: dict[str, int], args: list[str],
                                message: str) -> None:
    assert_usage_error(invoke("jobs", "list", *args), message)


def test_jobs_show(invoke: Any, app: Conveyor, mixed: dict[str, int]) -> None:
    failed = as_json(invoke("jobs", "show", str(mixed["failed"]), "--json"))
    assert failed["state"] == "failed"
    assert failed["args"] == ["kaput"]
    assert failed["error"]["type"] == "ValueError"
    [attempt] = failed["attempt_history"]
    assert attempt["outcome"] == "failed"
    assert attempt["error"]["message"] == "kaput"
    assert "raise ValueError(message)" in attempt["error"]["traceback"]
    assert failed["started_at"] is not None and failed["finished_at"] is not None
    human = invoke("jobs", "show", str(mixed["failed"]))
    assert_ok(human)
    for text in ("Job ", "t.fail", "failed", "args", '"kaput"', "Attempts",
                 "attempt 1 traceback", "raise ValueError(message)", "timings"):
        assert text in human.output, text
    done = as_json(invoke("jobs", "show", str(mixed["progress"]), "--json"))
    assert done["result"] == 4
    assert done["progress"] == {"done": 4, "total": 4, "message": "step 4"}
    assert [a["outcome"] for a in done["attempt_history"]] == ["succeeded"]
    shown = invoke("jobs", "show", str(mixed["progress"])).output
    assert "4/4 (100%) step 4" in shown
    assert "result" in shown


def test_jobs_show_lists_every_attempt(invoke: Any, app: Conveyor) -> None:
    job = app.tasks["t.flaky"].enqueue(3)
    with worker_thread(app):
        assert job.result(timeout=20) == 3
    data = as_json(invoke("jobs", "show", str(job.id), "--json"))
    assert [(a["attempt"], a["outcome"]) for a in data["attempt_history"]] == [
        (1, "retry"), (2, "retry"), (3, "succeeded")]
    assert data["attempt_history"][1]["error"]["message"] == "attempt 2 failed"
    human = invoke("jobs", "show", str(job.id)).output
    assert "ConnectionError: attempt 1 failed" in human
    assert "attempt 2 traceback" in human


def test_jobs_show_of_a_job_waiting_to_retry_and_of_a_finished_one(
        invoke: Any, app: Conveyor, db_url: str, mixed: dict[str, int]) -> None:
    job = app.tasks["t.fail"].enqueue("again")
    app.worker(burst=True, burst_horizon=0).run()  # one attempt
    assert (job.refresh().state, job.attempts) == (JobState.SCHEDULED, 1)
    execute(db_url, "UPDATE conveyor_jobs SET run_at = run_at + 900 WHERE id = ?", (job.id,))
    shown = invoke("jobs", "show", str(job.id)).stdout
    assert "waiting to retry at 20" in shown and "(in 1" in shown  # 15m or 14m 59s
    assert "), attempt 2 of 3" in shown
    assert "so far" not in shown
    assert "retry 2/3 in 1" in invoke("jobs", "list").stdout
    execute(db_url, "UPDATE conveyor_jobs SET run_at = run_at - 1800 WHERE id = ?", (job.id,))
    shown = invoke("jobs", "show", str(job.id)).stdout
    assert "retry due since 20" in shown and "attempt 2 of 3: waiting for a worker" in shown
    assert "retry 2/3 due now" in invoke("jobs", "list").stdout
    done = invoke("jobs", "show", str(mixed["progress"])).stdout
    assert "final progress  4/4 (100%) step 4" in done
    assert "\nprogress " not in done


@pytest.mark.parametrize(("args", "message"), [
    (["999"], "no job with id 999"),
    (["abc"], "'abc' is not a job id"),
    (["0"], "'0' is not a job id"),
    ([], "Missing argument 'ID'"),
])
def test_jobs_show_usage_errors(invoke: Any, mixed: dict[str, int], args: list[str],
                                message: str) -> None:
    assert_usage_error(invoke("jobs", "show", *args), message)


def test_jobs_retry_by_id(invoke: Any, app: Conveyor, mixed: dict[str, int]) -> None:
    result = invoke("jobs", "retry", str(mixed["failed"]), str(mixed["cancelled"]))
    assert_ok(result)
    assert f"job {mixed['failed']}: queued again" in result.output
    assert app.get_job(mixed["failed"]).state is JobState.QUEUED
    assert app.get_job(mixed["cancelled"]).state is JobState.QUEUED
    partly = invoke("jobs", "retry", str(mixed["succeeded"]), str(mixed["failed"]), "--json")
    assert partly.exit_code == 1
    data = json.loads(partly.stdout)
    assert data["retried"] == []
    assert data["not_retried"] == [mixed["succeeded"], mixed["failed"]]
    human = invoke("jobs", "retry", str(mixed["succeeded"]))
    assert human.exit_code == 1
    assert "not retried: it succeeded; only failed or cancelled jobs can be retried" in (
        human.stderr)


def test_jobs_retry_names_the_job_holding_a_unique_key(invoke: Any, app: Conveyor) -> None:
    nightly = app.tasks["t.fail"].options(max_attempts=1, unique_key="nightly").enqueue("x")
    plain = failed_job(app, "plain")  # runs `nightly` to its failure too
    assert app.get_job(nightly.id).state is JobState.FAILED
    # The key is free once its job failed: a new job takes it.
    holder = app.tasks["t.add"].options(unique_key="nightly").enqueue(1, 2)
    result = invoke("jobs", "retry", str(nightly.id), str(plain))
    assert result.exit_code == 1, result.output
    assert (f"job {nightly.id}: not retried: its unique key 'nightly' is held by job "
            f"{holder.id} (queued)") in result.stderr
    assert f"job {plain}: queued again" in result.stdout  # the others are still retried
    assert "Traceback" not in result.output
    assert app.get_job(nightly.id).state is JobState.FAILED
    assert app.get_job(plain).state is JobState.QUEUED
    data = json.loads(invoke("jobs", "retry", str(nightly.id), "--json").stdout)
    assert data["not_retried"] == [nightly.id]
    assert data["jobs"][0]["held_by"] == holder.id
    every = invoke("jobs", "retry", "--failed")
    assert every.exit_code == 1
    assert "retried 0 failed job(s)" in every.stdout
    assert f"is held by job {holder.id}" in every.stderr
    report = app.retry_report([nightly.id])
    assert report.retried == () and report.held[nightly.id].id == holder.id
    assert app.retry([nightly.id]) == []
    app.cancel(holder.id)  # the key is free again: now the retry goes through
    assert_ok(invoke("jobs", "retry", str(nightly.id)))
    assert app.get_job(nightly.id).state is JobState.QUEUED


def test_jobs_retry_failed_by_queue_and_task(invoke: Any, app: Conveyor) -> None:
    a = failed_job(app, "a", queue="alpha")
    b = failed_job(app, "b", queue="beta")
    c = failed_job(app, "c", queue="beta")
    other = app.tasks["t.flaky"].options(max_attempts=1, queue="beta").enqueue(5)
    finish(app, "beta")
    assert app.get_job(other.id).state is JobState.FAILED
    data = as_json(invoke("jobs", "retry", "--failed", "-q", "beta", "--task", "t.fail",
                          "--json"))
    assert sorted(data["retried"]) == [b, c]
    assert app.get_job(a).state is JobState.FAILED
    assert app.get_job(other.id).state is JobState.FAILED
    human = invoke("jobs", "retry", "--failed")
    assert_ok(human)
    assert "retried 2 failed job(s)" in human.output
    assert app.get_job(a).state is JobState.QUEUED
    assert app.get_job(other.id).state is JobState.QUEUED
    assert "retried 0 failed job(s) on queue beta" in invoke(
        "jobs", "retry", "--failed", "-q", "beta").output


@pytest.mark.parametrize(("args", "message"), [
    ([], "give the ids of the jobs to retry, or --failed"),
    (["1", "--failed"], "give job ids or --failed, not both"),
    (["1", "-q", "default"], "-q/--queue and --task select jobs for --failed"),
    (["1", "999"], "no job with id 999; nothing was changed"),
    (["x1"], "'x1' is not a job id"),
])
def test_jobs_retry_usage_errors(invoke: Any, app: Conveyor, args: list[str],
                                 message: str) -> None:
    failed = failed_job(app)
    assert failed == 1
    assert_usage_error(invoke("jobs", "retry", *args), message)
    assert app.get_job(failed).state is JobState.FAILED


def test_jobs_cancel(invoke: Any, app: Conveyor, mixed: dict[str, int]) -> None:
    data = as_json(invoke("jobs", "cancel", str(mixed["queued"]), str(mixed["scheduled"]),
                          str(mixed["cancelled"]), "--json"))
    assert data["cancelled"] == [mixed["queued"], mixed["scheduled"], mixed["cancelled"]]
    assert data["jobs"][2]["message"] == "already cancelled"
    assert app.get_job(mixed["queued"]).state is JobState.CANCELLED
    assert app.get_job(mixed["scheduled"]).state is JobState.CANCELLED
    ended = invoke("jobs", "cancel", str(mixed["succeeded"]))
    assert ended.exit_code == 1
    assert "not cancelled: it already succeeded" in ended.stderr
    assert app.get_job(mixed["succeeded"]).state is JobState.SUCCEEDED


def test_jobs_cancel_asks_a_running_job_to_stop(invoke: Any, app: Conveyor) -> None:
    job = app.tasks["t.until_cancelled"].enqueue()
    with worker_thread(app):
        wait_until(lambda: job.refresh().state is JobState.RUNNING, message="job running")
        result = invoke("jobs", "cancel", str(job.id))
        assert_ok(result)
        assert "running: asked to stop (cancel requested)" in result.output
        wait_until(lambda: job.refresh().state is JobState.CANCELLED, message="cancelled")


def test_jobs_delete(invoke: Any, app: Conveyor, mixed: dict[str, int]) -> None:
    result = invoke("jobs", "delete", str(mixed["failed"]), str(mixed["queued"]))
    assert_ok(result)
    assert f"job {mixed['failed']}: deleted" in result.output
    assert app.inspector.get(mixed["failed"]) is None
    assert app.inspector.get(mixed["queued"]) is None
    assert app.inspector.attempts(mixed["failed"]) == []
    data = as_json(invoke("jobs", "delete", str(mixed["succeeded"]), "--json"))
    assert data["deleted"] == [mixed["succeeded"]]


def test_jobs_delete_refuses_a_running_job(invoke: Any, app: Conveyor, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    job = app.tasks["t.gate"].enqueue(str(gate))
    with worker_thread(app):
        wait_until(lambda: job.refresh().state is JobState.RUNNING, message="job running")
        result = invoke("jobs", "delete", str(job.id), "--json")
        gate.touch()
        assert job.result(timeout=20)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["not_deleted"] == [job.id]
    assert "cancel it first" in result.stdout


@pytest.mark.parametrize("command", ["cancel", "delete"])
def test_jobs_cancel_and_delete_usage_errors(invoke: Any, app: Conveyor, command: str) -> None:
    job = app.tasks["t.add"].enqueue(1, 1)
    assert_usage_error(invoke("jobs", command), "give the ids of the jobs to")
    assert_usage_error(invoke("jobs", command, str(job.id), "404"),
                       "no job with id 404; nothing was changed")
    assert_usage_error(invoke("jobs", command, "-3"), "No such option '-3'")
    assert job.refresh().state is JobState.QUEUED


# -- purge -----------------------------------------------------------------------------------


def test_purge_counts_without_yes_and_deletes_with_it(invoke: Any, app: Conveyor) -> None:
    failed = failed_job(app)
    for n in range(3):
        app.tasks["t.add"].enqueue(n, n)
    app.tasks["t.add"].options(queue="keep").enqueue(9, 9)
    dry = invoke("purge", "-q", "default")
    assert_ok(dry)
    assert "would delete 4 jobs (any state but running) from queue 'default'" in dry.output
    assert "--yes" in dry.output
    assert len(app.inspector.list_jobs()) == 5
    assert as_json(invoke("purge", "-q", "default", "--state", "failed", "--json")) == {
        "queue": "default", "state": "failed", "dry_run": True, "count": 1}
    assert as_json(invoke("purge", "-q", "default", "--state", "failed", "--yes",
                          "--json"))["count"] == 1
    assert app.inspector.get(failed) is None
    done = invoke("purge", "-q", "default", "--yes")
    assert_ok(done)
    assert "deleted 3 jobs (any state but running) from queue 'default'" in done.output
    assert [job.queue for job in app.inspector.list_jobs()] == ["keep"]


@pytest.mark.parametrize(("args", "message"), [
    ([], "Missing option '-q' / '--queue'"),
    (["-q", "default", "--state", "running", "--yes"], "running jobs are never purged"),
    (["-q", "default", "--state", "old"], "'old' is not one of"),
    (["-q", "no queue", "--yes"], "may only contain"),
])
def test_purge_usage_errors(invoke: Any, app: Conveyor, args: list[str], message: str) -> None:
    app.tasks["t.add"].enqueue(1, 1)
    assert_usage_error(invoke("purge", *args), message)
    assert len(app.inspector.list_jobs()) == 1


# -- workers and health ----------------------------------------------------------------------


def _age_heartbeats(db_url: str, seconds: float) -> None:
    """Make every registered worker's last heartbeat `seconds` older (a worker that died)."""
    execute(db_url, "UPDATE conveyor_workers SET heartbeat_at = heartbeat_at - ?", (seconds,))


def test_workers_list(invoke: Any, app: Conveyor) -> None:
    app.inspector.schema_version()
    assert as_json(invoke("workers", "list", "--json")) == []
    assert "no workers running" in invoke("workers", "list").output
    with worker_thread(app, name="w-list", queues=["a", "b"], concurrency=2):
        [row] = as_json(invoke("workers", "list", "--json"))
        human = invoke("workers", "list")
    assert (row["name"], row["queues"], row["concurrency"], row["pool"], row["status"]) == (
        "w-list", ["a", "b"], 2, "thread", "alive")
    assert row["host"] and row["pid"] == os.getpid()
    for text in ("w-list", "a,b", "0/2", "thread", "alive"):
        assert text in human.output


def test_workers_list_marks_a_silent_worker_stale(invoke: Any, app: Conveyor,
                                                  db_url: str) -> None:
    from conveyor.backends.base import WorkerInfo

    app.backend.register_worker(WorkerInfo("ghost", "elsewhere", 4242, ("default",), 1,
                                           "thread"))
    _age_heartbeats(db_url, 600)
    [row] = as_json(invoke("workers", "list", "--json"))
    assert row["status"] == "stale"
    assert row["heartbeat_age"] >= 600
    assert "stale" in invoke("workers", "list").output


def test_a_worker_name_is_taken_over_only_from_a_worker_that_is_gone(
        invoke: Any, app: Conveyor, db_url: str) -> None:
    from conveyor.backends.base import WorkerInfo

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # its pid names no process now
    app.backend.register_worker(WorkerInfo("alive", "elsewhere", 4242, ("default",), 1,
                                           "thread"))
    app.backend.register_worker(WorkerInfo("silent", "elsewhere", 4243, ("default",), 1,
                                           "thread"))
    _age_heartbeats(db_url, 3600)  # "silent" stopped heartbeating an hour ago...
    execute(db_url, "UPDATE conveyor_workers SET heartbeat_at = heartbeat_at + 3600 "
                    "WHERE name = 'alive'")  # ...while "alive" heartbeats still
    app.backend.register_worker(WorkerInfo("exited", socket.gethostname(), ended.pid,
                                           ("default",), 1, "thread"))  # fresh, but exited
    refused = invoke("worker", "-A", "jobs_app:app", "--name", "alive", "--burst")
    assert_usage_error(refused, "worker name 'alive' is taken by a live worker: pid 4242 on "
                                "host 'elsewhere', last heartbeat ")
    for name in ("silent", "exited"):
        assert_ok(invoke("worker", "-A", "jobs_app:app", "--name", name, "--burst"))
    assert [(w.name, w.pid) for w in app.inspector.workers()] == [("alive", 4242)]


def test_workers_stop_by_name_through_the_database(invoke: Any, app: Conveyor) -> None:
    with worker_thread(app, name="w-a"), worker_thread(app, name="w-b"):
        result = invoke("workers", "stop", "w-a", "--wait", "20")
        assert_ok(result)
        assert "stopped: w-a" in result.output
        assert [w.name for w in app.inspector.workers()] == ["w-b"]
        data = as_json(invoke("workers", "stop", "--all", "--json"))
        assert data == {"asked": 1, "workers": ["w-b"]}
        wait_until(lambda: not app.inspector.workers(), message="w-b deregistered")
    nobody = invoke("workers", "stop", "--all")
    assert_ok(nobody)
    assert "no workers are registered" in nobody.output


def test_workers_stop_wait_times_out_on_a_dead_worker(invoke: Any, app: Conveyor) -> None:
    from conveyor.backends.base import WorkerInfo

    app.backend.register_worker(WorkerInfo("ghost", "elsewhere", 4242, ("default",), 1,
                                           "thread"))
    result = invoke("workers", "stop", "ghost", "--wait", "0.3", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["stopped"] == []
    assert "still running after" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    ([], "give a worker NAME"),
    (["w1", "--all"], "not both"),
    (["nobody"], "no worker named 'nobody'; registered workers: none"),
    (["--all", "--wait", "later"], "is not a duration"),
])
def test_workers_stop_usage_errors(invoke: Any, app: Conveyor, args: list[str],
                                   message: str) -> None:
    app.inspector.schema_version()
    assert_usage_error(invoke("workers", "stop", *args), message)


def test_health(invoke: Any, app: Conveyor, db_url: str, tmp_path: Path) -> None:
    app.inspector.schema_version()
    healthy = invoke("health")
    assert_ok(healthy)
    assert healthy.output.strip() == "healthy"
    assert as_json(invoke("health", "--json")) == {
        "healthy": True, "url": db_url, "worker": None, "problems": []}
    missing_url = f"sqlite:///{tmp_path / 'absent.db'}"
    missing = invoke("health", url=missing_url)
    assert missing.exit_code == 1
    assert "unhealthy: no conveyor database at" in missing.output
    assert not (tmp_path / "absent.db").exists()
    folder = invoke("health", "--json", url=f"sqlite:///{tmp_path / 'no' / 'x.db'}")
    assert folder.exit_code == 1
    assert json.loads(folder.stdout)["healthy"] is False


def test_health_names_queues_with_jobs_ready_that_no_live_worker_serves(
        invoke: Any, app: Conveyor, db_url: str, tmp_path: Path) -> None:
    add = app.tasks["t.add"]
    add.options(queue="media").enqueue(1, 1)
    due = add.options(queue="due", delay=3600).enqueue(2, 2)
    execute(db_url, "UPDATE conveyor_jobs SET run_at = run_at - 7200 WHERE id = ?", (due.id,))
    add.options(queue="later", delay=3600).enqueue(3, 3)  # not ready: never a reason
    sick = invoke("health")
    assert sick.exit_code == 1
    assert sick.stderr.strip() == ("unhealthy: no live worker serves queues 'due', 'media', "
                                   "which have jobs ready to run; start one with: conveyor "
                                   "worker -q due,media")
    gate = tmp_path / "gate"
    app.tasks["t.gate"].options(queue="media").enqueue(str(gate))
    with worker_thread(app, queues=["media"], concurrency=1):
        wait_until(lambda: app.inspector.count_by_state()["media"].get(JobState.RUNNING),
                   message="the gate job to run")
        # 'media' still has a job ready, but a live worker serves it.
        [problem] = json.loads(invoke("health", "--json").stdout)["problems"]
        assert problem.startswith("no live worker serves queue 'due', which has jobs ready")
        gate.touch()
    finish(app, "media", "due")
    assert_ok(invoke("health"))


def test_health_of_a_worker(invoke: Any, app: Conveyor, db_url: str) -> None:
    app.inspector.schema_version()
    unknown = invoke("health", "--worker", "w-h")
    assert unknown.exit_code == 1
    assert "no worker named 'w-h' is registered" in unknown.output
    with worker_thread(app, name="w-h"):
        alive = invoke("health", "--worker", "w-h")
        assert_ok(alive)
        assert "worker w-h is alive" in alive.output
        _age_heartbeats(db_url, 3600)
        stale = invoke("health", "--worker", "w-h", "--json")
        assert stale.exit_code == 1
        [problem] = json.loads(stale.stdout)["problems"]
        assert "worker 'w-h' last heartbeat" in problem


@pytest.mark.backends("sqlite")  # never reaches the test database
def test_health_usage_errors(invoke: Any) -> None:
    assert_usage_error(invoke("health", "--worker", url=None), "'--worker' requires an argument")
    assert_usage_error(invoke("health", url="sqlite:///"), "names no database file")
    # A URL no backend serves is a probe failure (exit 1), explained.
    result = invoke("health", url="redis://localhost")
    assert result.exit_code == 1
    assert "unhealthy: database unreachable: unsupported database URL" in result.output


# -- the worker command group ----------------------------------------------------------------


def test_worker_with_a_pidfile_writes_it_while_running_and_removes_it(
        runner: CliRunner, app: Conveyor, db_url: str, tmp_path: Path) -> None:
    pidfile = tmp_path / "w.pid"
    gate = tmp_path / "gate"
    job = app.tasks["t.gate"].enqueue(str(gate))
    seen: list[str] = []

    def open_gate_once_the_pidfile_exists() -> None:
        seen.append(wait_until(lambda: pidfile.exists() and pidfile.read_text(),
                               message="pidfile"))
        gate.touch()

    helper = threading.Thread(target=open_gate_once_the_pidfile_exists)
    helper.start()
    result = runner.invoke(cli, ["worker", "-A", "jobs_app:app", "--url", db_url, "--burst",
                                 "--pidfile", str(pidfile)])
    helper.join()
    assert_ok(result)
    # The pid, then when that process started: what tells it from a later one with its pid.
    assert seen == [f"{os.getpid()}\n{process_identity(os.getpid())}\n"]
    assert job.result(timeout=1) == os.getpid()
    assert not pidfile.exists()


@pytest.mark.backends("sqlite")  # never reaches the database
def test_worker_refuses_a_pidfile_naming_a_live_process(runner: CliRunner, db_url: str,
                                                        tmp_path: Path) -> None:
    pidfile = tmp_path / "w.pid"
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            pidfile.write_text(f"{other.pid}\n")
            for extra in ([], ["--detach"]):
                result = runner.invoke(cli, ["worker", "-A", "jobs_app:app", "--url", db_url,
                                             "--burst", "--pidfile", str(pidfile), *extra])
                assert result.exit_code == 1, result.output
                assert f"names process {other.pid}, which is running" in result.output
            assert pidfile.read_text() == f"{other.pid}\n"
        finally:
            other.kill()


@pytest.mark.backends("sqlite")  # never reaches the database
@pytest.mark.parametrize(("args", "message"), [
    (["--logfile", "w.log"], "--logfile is for --detach"),
    (["--detach"], "--detach needs --pidfile"),
    (["--json"], "--json is for --detach"),
    (["--detach", "--pidfile", "nowhere/w.pid"], "the folder"),
    (["--detach", "--pidfile", "w.pid", "-c", "0"], "0 is not in the range"),
    (["--detach", "--pidfile", "w.pid", "-q", "bad queue"], "may only contain"),
    (["unknown-subcommand"], "No such command 'unknown-subcommand'"),
])
def test_worker_group_usage_errors(runner: CliRunner, db_url: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch, args: list[str],
                                   message: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["worker", "-A", "jobs_app:app", "--url", db_url, *args])
    assert_usage_error(result, message)
    assert not (tmp_path / "w.pid").exists()


def test_worker_stop_with_a_missing_stale_or_garbled_pidfile(runner: CliRunner,
                                                             tmp_path: Path) -> None:
    pidfile = tmp_path / "w.pid"
    missing = runner.invoke(cli, ["worker", "stop", "--pidfile", str(pidfile)])
    assert missing.exit_code == 1
    assert "no pidfile at" in missing.output
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    pidfile.write_text(finished.stdout)  # a pid that has exited
    stale = runner.invoke(cli, ["worker", "stop", "--pidfile", str(pidfile)])
    assert stale.exit_code == 1
    assert "was stale" in stale.output
    assert not pidfile.exists()
    pidfile.write_text("not a pid\n")
    garbled = runner.invoke(cli, ["worker", "stop", "--pidfile", str(pidfile)])
    assert garbled.exit_code == 1
    assert "does not hold a process id" in garbled.output
    for result in (missing, stale, garbled):
        assert isinstance(result.exception, SystemExit)
    assert_usage_error(runner.invoke(cli, ["worker", "stop"]), "Missing option '--pidfile'")
    assert_usage_error(runner.invoke(cli, ["worker", "stop", "--pidfile", str(pidfile),
                                           "--timeout", "x"]), "is not a duration")


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_worker_stop_never_signals_a_process_that_is_not_a_worker(runner: CliRunner,
                                                                  tmp_path: Path) -> None:
    pidfile = tmp_path / "w.pid"
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            pidfile.write_text(f"{other.pid}\n")
            result = runner.invoke(cli, ["worker", "stop", "--pidfile", str(pidfile)])
            assert result.exit_code == 1
            assert "is not a conveyor worker" in result.output
            assert other.poll() is None
        finally:
            other.kill()


@pytest.mark.backends("sqlite")  # the worker started at the end never reaches far
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_worker_stop_never_signals_a_reused_pid_whatever_its_command_line(
        runner: CliRunner, db_url: str, tmp_path: Path) -> None:
    pidfile = tmp_path / "w.pid"
    # The program that got the worker's old pid even says "conveyor worker" on its command line.
    lookalike = [sys.executable, "-c", "import time; time.sleep(60)", "conveyor", "worker"]
    with subprocess.Popen(lookalike) as other:
        try:
            identity = process_identity(other.pid)
            assert identity is not None
            boot, ticks = identity.rsplit(":", 1)
            # The pidfile's worker had this pid before, and started earlier.
            reused = f"{other.pid}\n{boot}:{int(ticks) - 500}\n"
            pidfile.write_text(reused)
            result = runner.invoke(cli, ["worker", "stop", "--pidfile", str(pidfile)])
            assert result.exit_code == 1, result.output
            assert ("is not a conveyor worker: it started after the pidfile was written"
                    in result.output)
            assert other.poll() is None  # not signalled
            assert not pidfile.exists()  # certainly stale: removed
            # Nor does that stale pidfile stop a new worker from starting.
            pidfile.write_text(reused)
            started = runner.invoke(cli, ["worker", "-A", "jobs_app:app", "--url", db_url,
                                          "--burst", "--pidfile", str(pidfile)])
            assert_ok(started)
            assert not pidfile.exists()
            assert other.poll() is None
        finally:
            other.kill()


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_worker_stop_without_a_recorded_start_time_checks_the_command_line_strictly(
        runner: CliRunner, db_url: str, tmp_path: Path) -> None:
    """A pidfile of an older conveyor holds only the pid: then the process must be running
    `conveyor worker`, not merely mention "conveyor" (a checkout or venv in a folder of
    that name puts it in every command line)."""
    folder = tmp_path / "conveyor"
    folder.mkdir()
    sleep = shutil.which("sleep")
    assert sleep is not None
    shutil.copy(sleep, folder / "sleep")
    pidfile = tmp_path / "w.pid"
    lookalikes = [
        [sys.executable, "-c", "import time; time.sleep(60)", str(folder / "worker")],
        [str(folder / "sleep"), "60"],
    ]
    for argv in lookalikes:
        with subprocess.Popen(argv) as other:
            try:
                pidfile.write_text(f"{other.pid}\n")
                result = runner.invoke(cli, ["worker", "stop", "--pidfile", str(pidfile)])
                assert result.exit_code == 1, (argv, result.output)
                assert "command line is not a conveyor worker's" in result.output
                assert other.poll() is None, argv  # not signalled
                assert pidfile.exists()  # not certainly stale: left for the operator
            finally:
                other.kill()
    # A real worker behind such a pidfile is still stopped.
    proc = spawn_worker(db_url, tmp_path / "worker.err")
    try:
        with Conveyor(db_url) as app:
            wait_until(lambda: any(w.pid == proc.pid for w in app.inspector.workers()),
                       message="worker registered")
        pidfile.write_text(f"{proc.pid}\n")
        result = runner.invoke(cli, ["worker", "stop", "--pidfile", str(pidfile)])
        assert_ok(result)
        assert f"worker {proc.pid} stopped" in result.output
        assert proc.wait(timeout=20) == 0
    finally:
        kill_all([proc])


@pytest.mark.parametrize(("argv", "is_worker"), [
    (["/opt/venv/bin/python3", "/opt/venv/bin/conveyor", "worker", "-A", "app:app"], True),
    (["/usr/bin/python3", "-s", "/usr/local/bin/conveyor", "worker"], True),
    (["conveyor", "worker", "--pidfile", "w.pid"], True),
    (["/usr/bin/python3.12", "-X", "dev", "-m", "conveyor", "worker"], True),
    (["C:\\Python312\\python.exe", "-m", "conveyor", "worker"], True),
    (["C:\\venv\\Scripts\\conveyor.exe", "worker"], True),
    (["/home/me/conveyor/.venv/bin/python", "-m", "pytest", "tests"], False),
    (["/usr/bin/python3", "-c", "import time; time.sleep(60)", "conveyor", "worker"], False),
    (["/srv/conveyor/bin/sleep", "60"], False),
    (["/opt/venv/bin/python3", "/opt/venv/bin/conveyor", "status"], False),
    (["/usr/bin/python3", "-m", "conveyor", "enqueue", "worker"], False),
    (["/usr/bin/python3", "/srv/conveyor/manage.py", "worker"], False),
    ([], False),
])
def test_what_counts_as_a_conveyor_worker_command_line(argv: list[str],
                                                       is_worker: bool) -> None:
    assert is_worker_argv(argv) is is_worker


# -- errors under --json ---------------------------------------------------------------------


def _json_commands() -> list[list[str]]:
    """The command line of every command (or group) that takes --json."""
    found: list[list[str]] = []

    def walk(command: click.Command, path: list[str]) -> None:
        if any("--json" in param.opts for param in command.params):
            found.append(path)
        if isinstance(command, click.Group):
            for name, sub in sorted(command.commands.items()):
                walk(sub, [*path, name])

    walk(cli, [])
    return found


@pytest.mark.backends("sqlite")  # never reaches the database
@pytest.mark.parametrize("command", _json_commands(), ids=" ".join)
def test_every_json_command_reports_bad_usage_as_json(runner: CliRunner,
                                                      command: list[str]) -> None:
    result = runner.invoke(cli, [*command, "--no-such-option", "--json"])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert json.loads(result.stderr) == {"error": "No such option '--no-such-option'.",
                                         "exit_code": 2}


def test_json_errors_keep_their_exit_codes(invoke: Any, app: Conveyor, db_url: str,
                                           tmp_path: Path) -> None:
    from conveyor.backends.base import WorkerInfo

    def error(result: Result) -> Any:
        assert len(result.stderr.splitlines()) == 1, result.stderr
        return json.loads(result.stderr)

    app.inspector.schema_version()  # creates the database
    missing = invoke("jobs", "show", "999", "--json")
    assert (missing.exit_code, missing.stdout) == (2, "")
    assert error(missing) == {"error": "no job with id 999", "exit_code": 2}
    nowhere = invoke("status", "--json", url=f"sqlite:///{tmp_path / 'typo.db'}")
    assert nowhere.exit_code == 2
    assert error(nowhere)["error"].startswith("no conveyor database at")
    app.backend.register_worker(WorkerInfo("ghost", "elsewhere", 4242, ("default",), 1,
                                           "thread"))
    stuck = invoke("workers", "stop", "ghost", "--wait", "0.2", "--json")
    assert stuck.exit_code == 1
    assert json.loads(stuck.stdout)["stopped"] == []  # the result, as before
    assert error(stuck) == {"error": "still running after 0.2s: ghost", "exit_code": 1}
    waited = invoke("enqueue", "t.add", "[1, 2]", "--json", "--wait", "0.2")
    assert waited.exit_code == 124
    assert json.loads(waited.stdout)["timed_out"] is True
    assert error(waited)["exit_code"] == 124
    assert "is still queued after 0.2s" in error(waited)["error"]
    # Without --json, the same errors stay text.
    text = invoke("jobs", "show", "999")
    assert text.exit_code == 2 and "Error: no job with id 999" in text.stderr
