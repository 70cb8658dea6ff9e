"""Everyday options: a job's own backoff and timeout (stored with it, used by the worker),
arguments checked against the task's signature at enqueue, the names a Celery user types
(`task.delay`, `job.ready()`, `job.successful()`, `job.failed()`) and `app.get_job_by_key`."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from databases import query
from helpers import kill_all, spawn_worker, wait_until, worker_thread
from jobs_app import make_app

from conveyor import (
    Conveyor,
    ConveyorWarning,
    InvalidInput,
    JobFailed,
    JobState,
    NewJob,
    Task,
    links,
)
from conveyor import options as job_options
from conveyor.cli import cli
from conveyor.cli import enqueue as enqueue_cli
from conveyor.task import TaskSettings


def run_all(app: Conveyor) -> None:
    app.worker(burst=True, concurrency=2, queues=["default"]).run()


# -- a job's own backoff and timeout ---------------------------------------------------------


def test_a_job_s_own_backoff_and_timeout_travel_with_it(app: Conveyor, db_url: str) -> None:
    fail = app.tasks["t.fail"]  # max_attempts=3, backoff=0.2
    slow = app.tasks["t.slow_timeout"]  # timeout=0.3, max_attempts=1
    record = app.tasks["t.record"]  # no timeout
    hasty = fail.options(backoff=0).enqueue("hasty")
    plain = fail.enqueue("plain")
    unlimited = slow.options(timeout=None).enqueue(0.6)
    longer = slow.options(timeout=timedelta(seconds=30)).enqueue(0.6)
    limited = record.options(timeout=0.2, max_attempts=1).enqueue("late", sleep=0.6)
    assert query(db_url, "SELECT id, backoff, timeout FROM conveyor_jobs ORDER BY id") == [
        (hasty.id, 0.0, None), (plain.id, None, None), (unlimited.id, None, math.inf),
        (longer.id, None, 30.0), (limited.id, None, 0.2)]
    with worker_thread(app), Conveyor(db_url) as caller:
        # From a process that does not know the task: the options still reach the worker.
        patient = caller.options("t.fail", backoff=600).enqueue("patient")
        assert unlimited.result(timeout=20) == "done"  # the task's 0.3 s would discard it
        assert longer.result(timeout=20) == "done"
        with pytest.raises(JobFailed, match=r"TimeoutError: task exceeded its timeout of 0.2 s"):
            limited.result(timeout=20)
        with pytest.raises(JobFailed, match="ValueError: hasty"):
            hasty.result(timeout=20)  # three attempts, no wait between them
        assert hasty.attempts == 3
        wait_until(lambda: patient.refresh().attempts == 1 and patient.state is
                   JobState.SCHEDULED, message="the first attempt of the patient job")
        [attempt] = app.inspector.attempts(patient.id)
        assert patient.record.run_at - attempt.finished_at >= 600 * 0.8  # its own backoff
        with pytest.raises(JobFailed, match="ValueError: plain"):
            plain.result(timeout=20)  # the task's own 0.2 s backoff


def test_a_job_s_own_timeout_kills_its_pool_process(db_url: str, tmp_path: Path) -> None:
    worker = spawn_worker(db_url, tmp_path / "worker.err", "--pool", "process", "-c", "2")
    try:
        with make_app(db_url) as app:
            killed = app.tasks["t.record"].options(timeout=0.5, max_attempts=1).enqueue(
                "stuck", sleep=60)
            unlimited = app.tasks["t.slow_timeout"].options(timeout=None).enqueue(0.8)
            with pytest.raises(JobFailed, match=r"exceeded its timeout of 0\.5 s and its process "
                                                r"was killed"):
                killed.result(timeout=60)
            assert unlimited.result(timeout=60) == "done"  # the task's 0.3 s would kill it
    finally:
        kill_all([worker])


@pytest.mark.parametrize(("options", "message"), [
    ({"backoff": -1}, "backoff must be a number of seconds >= 0"),
    ({"backoff": "soon"}, "backoff must be a number of seconds >= 0"),
    ({"backoff": math.nan}, "backoff must be a number of seconds >= 0"),
    ({"timeout": 0}, "timeout must be > 0 seconds, or None for no limit"),
    ({"timeout": -5}, "timeout must be a number of seconds >= 0"),
    ({"timeout": math.inf}, "timeout must be a number of seconds >= 0"),
])
def test_bad_backoff_and_timeout_are_refused(app: Conveyor, options: dict[str, Any],
                                             message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        app.tasks["t.add"].options(**options)
    with pytest.raises(InvalidInput, match=message):
        app.options("t.add", **options)
    hand_built = NewJob("t.add", "default", "[1, 2]", "{}", timeout=-1.0)
    with pytest.raises(InvalidInput, match=r"timeout=-1\.0 is not a number of seconds > 0"):
        app.enqueue_many([hand_built])
    assert app.inspector.list_jobs() == []


# -- declared once ---------------------------------------------------------------------------


def test_every_way_in_offers_every_job_option() -> None:
    """conveyor.options declares the options; each signature that takes them offers exactly
    those, so a new option cannot be added to one way in and forgotten in another."""
    def takes(fn: Callable[..., Any], *besides: str) -> set[str]:
        return set(inspect.signature(fn).parameters) - {"self", *besides}

    # (and what ties a job to others, declared and checked once in conveyor.links)
    every = set(job_options.NAMES) | set(links.NAMES)
    assert takes(Task.options, "connection") == every
    assert takes(Conveyor.options, "task", "connection") == every
    assert takes(Conveyor.task, "fn", "name") == (
        set(job_options.TASK_NAMES) | set(job_options.TASK_ONLY_NAMES))
    command = cli.commands["enqueue"]
    flags = {param.name for param in command.params}
    assert set(enqueue_cli.JOB_FLAGS) <= flags
    assert set(job_options.NAMES) - set(enqueue_cli.JOB_FLAGS) == {"backoff", "timeout",
                                                                  "soft_timeout"}
    # Callbacks are signatures, which a command line cannot give.
    assert set(links.NAMES) - flags == {"on_success", "on_failure"}


@pytest.mark.parametrize(("option", "value", "flag"), [
    ("priority", 5000, "--priority"),
    ("max_attempts", 0, "--max-attempts"),
    ("queue", "bad queue", "--queue"),
    ("unique_key", "", "--unique-key"),
    ("delay", 10**15, "--delay"),
])
def test_a_bad_option_gets_one_message_from_every_way_in(
        app: Conveyor, option: str, value: Any, flag: str, db_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInput) as declared:
        job_options.check(option, value)
    message = str(declared.value)
    refusals: list[Callable[[], Any]] = [
        lambda: app.tasks["t.add"].options(**{option: value}),
        lambda: app.options("t.add", **{option: value}),
        lambda: job_options.JobOptions.checked(**{option: value}),
    ]
    if option in job_options.TASK_NAMES:
        refusals.append(lambda: app.task(name="t.other", **{option: value})(lambda: None))
    for refuse in refusals:
        with pytest.raises(InvalidInput) as error:
            refuse()
        assert str(error.value) == message
    monkeypatch.delenv("CONVEYOR_URL", raising=False)
    result = CliRunner().invoke(cli, ["enqueue", "t.add", "[1, 2]", flag, str(value),
                                      "--url", db_url])
    assert result.exit_code == 2, result.output
    assert "Invalid value for " in result.output and f"'{flag}'" in result.output
    assert " ".join(message.split()) in " ".join(result.output.split())
    assert app.inspector.list_jobs() == []


@pytest.mark.parametrize(("fields", "message"), [
    ({"queue": "bad queue"}, "queue 'bad queue' may only contain"),
    ({"queue": ""}, "queue must not be empty"),
    ({"task": "two words"}, "task name 'two words' must not contain whitespace"),
    ({"priority": 10**9}, "priority must be an int from -1000 to 1000"),
    ({"priority": True}, "priority must be an int from -1000 to 1000"),
    ({"max_attempts": 0}, "max_attempts must be an int from 1 to 1000, got 0"),
    ({"unique_key": ""}, "unique_key must be a non-empty str or None"),
])
def test_a_job_built_by_hand_is_held_to_the_same_options(
        app: Conveyor, fields: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"task": "t.add", "queue": "default", "args_json": "[1, 2]",
                              "kwargs_json": "{}", **fields}
    with pytest.raises(InvalidInput, match=r"cannot enqueue .* \(enqueue_many item 1\): "
                       + re.escape(message)):
        app.enqueue_many([app.prepare("t.add", 1, 2), NewJob(**values)])
    with pytest.raises(InvalidInput, match=re.escape(message)):
        app.enqueue_one(NewJob(**values))
    assert app.inspector.list_jobs() == []


def test_job_options_resolve_over_the_task_s() -> None:
    task = job_options.JobOptions.checked(queue="media", backoff=timedelta(seconds=2))
    assert (task.queue, task.backoff, task.given) == ("media", 2.0, frozenset())
    one = task.override(priority=-5, timeout=None, delay=None, unique_key=job_options.UNSET)
    assert (one.queue, one.priority, one.backoff, one.timeout) == ("media", -5, 2.0, None)
    assert one.given == {"priority", "timeout"}  # delay=None is no delay: not given
    assert (one.job_backoff, one.job_timeout) == (None, math.inf)  # stored: own, else None
    assert one.defaulted == {"queue", "max_attempts"}
    assert task.override() is task
    with pytest.raises(InvalidInput, match="give either delay or at, not both"):
        task.override(delay=1, at=datetime.now(UTC))
    with pytest.raises(InvalidInput, match="unknown job option 'queues'; the options are queue"):
        job_options.check("queues", ["a"])
    with pytest.raises(InvalidInput, match="a task holds no default for unique_key"):
        TaskSettings.checked("t.x", unique_key="k")


# -- arguments checked against the signature -------------------------------------------------


def test_arguments_the_function_cannot_take_are_refused_at_enqueue(app: Conveyor) -> None:
    add = app.tasks["t.add"]  # add(a, b)
    refused: list[tuple[Callable[[], Any], str]] = [
        (lambda: add.enqueue(1), "missing a required argument: 'b'"),
        (lambda: add.enqueue(1, 2, 3), "too many positional arguments"),
        (lambda: add.enqueue(1, 2, c=3), "got an unexpected keyword argument 'c'"),
        (lambda: add.enqueue(1, a=2), "multiple values for argument 'a'"),
        (lambda: add.delay(1), "missing a required argument: 'b'"),
        (lambda: add.options(queue="q").enqueue(1), "missing a required argument: 'b'"),
        (lambda: add.prepare(1), "missing a required argument: 'b'"),
        (lambda: app.enqueue("t.add", 1), "missing a required argument: 'b'"),
        (lambda: app.prepare("t.add", b=1), "missing a required argument: 'a'"),
        (lambda: app.options("t.add", priority=1).enqueue(),
         "missing a required argument: 'a'"),
    ]
    for call, problem in refused:
        with pytest.raises(InvalidInput) as error:
            call()
        assert str(error.value) == (f"cannot enqueue 't.add': {problem}; the task takes "
                                    "add(a: 'int', b: 'int')")
    assert app.inspector.list_jobs() == []
    # What fits is stored; *args and **kwargs take anything.
    assert add.enqueue(1, b=2).kwargs == {"b": 2}
    assert app.tasks["t.echo"].enqueue(1, 2, x=3).args == [1, 2]
    assert app.tasks["t.record"].enqueue(sleep=0).kwargs == {"sleep": 0}
    # A function whose signature cannot be read (some builtins) is not checked.
    largest = app.task(name="builtin.max")(max)
    assert largest.enqueue(1, 2, 3).args == [1, 2, 3]


def test_a_process_that_does_not_know_the_task_cannot_check_its_arguments(
        app: Conveyor, db_url: str) -> None:
    with Conveyor(db_url) as caller, pytest.warns(ConveyorWarning):
        stored = caller.options("t.add", max_attempts=1).enqueue(1)  # fails in the worker
    run_all(app)
    with pytest.raises(JobFailed, match="missing 1 required positional argument: 'b'"):
        stored.result(timeout=5)


def test_the_cli_refuses_arguments_that_do_not_fit_a_task_of_its_app(
        app: Conveyor, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_URL", raising=False)
    result = CliRunner().invoke(cli, ["enqueue", "t.add", "[1]", "-A", "jobs_app:app", "--url",
                                      db_url])
    assert result.exit_code == 2, result.output
    assert "cannot enqueue 't.add': missing a required argument: 'b'" in result.output
    assert "Traceback" not in result.output
    assert app.inspector.list_jobs() == []


# -- Celery's names --------------------------------------------------------------------------


def test_delay_ready_successful_failed(app: Conveyor) -> None:
    job = app.tasks["t.add"].delay(2, 3)
    assert job.state is JobState.QUEUED
    assert (job.ready(), job.successful(), job.failed()) == (False, False, False)
    bad = app.tasks["t.fail"].options(max_attempts=1).delay("no")
    cancelled = app.tasks["t.add"].delay(0, 0)
    cancelled.cancel()
    run_all(app)
    assert (job.ready(), job.successful(), job.failed()) == (True, True, False)
    assert job.result() == 5
    assert (bad.ready(), bad.successful(), bad.failed()) == (True, False, True)
    assert (cancelled.ready(), cancelled.successful(), cancelled.failed()) == (
        True, False, False)


# -- get_job_by_key --------------------------------------------------------------------------


def test_get_job_by_key_finds_the_active_job_else_the_latest(app: Conveyor) -> None:
    fail, add = app.tasks["t.fail"], app.tasks["t.add"]
    assert app.get_job_by_key("nightly") is None
    first = fail.options(unique_key="nightly", max_attempts=1).enqueue("first")
    found = app.get_job_by_key("nightly")
    assert found is not None and (found.id, found.state) == (first.id, JobState.QUEUED)
    run_all(app)
    found = app.get_job_by_key("nightly")  # finished, the latest that had the key
    assert found is not None and (found.id, found.state) == (first.id, JobState.FAILED)
    second = add.options(unique_key="nightly").enqueue(1, 1)
    run_all(app)
    found = app.get_job_by_key("nightly")
    assert found is not None and (found.id, found.state) == (second.id, JobState.SUCCEEDED)
    # The first job runs again: the active job wins over the later one that finished.
    assert app.retry([first.id]) == [first.id]
    found = app.get_job_by_key("nightly")
    assert found is not None and (found.id, found.state) == (first.id, JobState.QUEUED)
    assert app.get_job_by_key("other") is None
    for bad in (None, "", 5):
        with pytest.raises(InvalidInput, match="unique"):
            app.get_job_by_key(bad)  # type: ignore[arg-type]
