"""Hostile values: one bad value fails one job with a readable reason and never stops a worker;
bad input is refused at every way in (Python API and CLI) with nothing stored; a damaged row
never crashes a reader.

The poison values are what real programs produce: a str with a lone surrogate is what
`os.listdir()` gives for a file name that is not UTF-8, and it reaches exception messages,
results, dict keys and progress messages alike.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from databases import execute, is_postgres
from helpers import (
    assert_usage_error,
    kill_all,
    read_executions,
    spawn_worker,
    wait_until,
    worker_thread,
)
from jobs_app import BAD_NAME, make_app

from conveyor import ConfigurationError, Conveyor, InvalidInput, JobFailed, JobState, NewJob
from conveyor.cli import cli
from conveyor.errors import CorruptJob, PayloadTooLarge
from conveyor.job import JobRecord

KIB = 1024
MIB = 1024 * KIB


def stored_count(app: Conveyor) -> int:
    return sum(sum(states.values()) for states in app.inspector.count_by_state().values())


def records(app: Conveyor) -> dict[int, JobRecord]:
    return {record.id: record for record in app.inspector.list_jobs(limit=1000)}


def run_all(app: Conveyor) -> None:
    """Run every claimable job once with a burst worker (tests here use no retries)."""
    app.worker(burst=True, concurrency=2).run()


# -- the pure rules ----------------------------------------------------------------------------


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_error_text_is_always_storable_and_bounded() -> None:
    from conveyor.worker.executor import error_from_exception

    error = error_from_exception(_raised(OSError(f"cannot open {BAD_NAME}")))
    assert (error.type, error.message) == ("OSError", "cannot open report-\\xff.csv")
    assert error.traceback is not None and "report-\\xff.csv" in error.traceback
    # A surrogate that stands for no byte is escaped as itself.
    assert error_from_exception(ValueError("\ud800 and \x00")).message == "\\ud800 and \\x00"

    class Mute(Exception):
        def __str__(self) -> str:
            raise KeyError("no")

    muted = error_from_exception(_raised(Mute()))
    assert muted.message == "<str() of the exception raised KeyError>"
    assert muted.type.endswith("Mute") and muted.traceback

    big = error_from_exception(_raised(ValueError("é" * 100_000)))
    assert len(big.message.encode()) <= 64 * KIB
    assert big.message.startswith("éé") and "195.3 KiB in all, cut to 64.0 KiB" in big.message
    assert big.traceback is not None and len(big.traceback.encode()) <= 64 * KIB
    assert big.traceback.startswith("Traceback") and big.traceback.rstrip().endswith("é")
    small = error_from_exception(ValueError("plain"))
    assert (small.type, small.message) == ("ValueError", "plain")


def test_progress_refuses_values_no_database_could_store() -> None:
    from conveyor.context import JobContext

    reported: list[Any] = []
    context = JobContext(id=1, task="t", queue="q", attempt=1, max_attempts=1,
                         is_cancel_requested=lambda: False, report_progress=reported.append)
    for done, total in [(10**400, None), (1, 2**63), (math.inf, None), (1, math.nan)]:
        with pytest.raises(InvalidInput, match=r"progress (done|total) must be a finite number"):
            context.progress(done, total)
    with pytest.raises(InvalidInput, match="progress message has a lone surrogate"):
        context.progress(1, 2, BAD_NAME)
    context.progress(1, 2, "é" * 2000)  # long text is cut, not refused
    context.progress(2**63 - 1, 2.5e300)
    assert [len(p.message or "") for p in reported] == [1000, 0]


def test_find_unserialisable_names_where() -> None:
    from conveyor.serializer import find_unserialisable

    assert find_unserialisable({"a": [1, 2.5, "é", None, True, (3,)]}) is None
    assert find_unserialisable(_nested(100)) is None
    long_key = "k" * 100
    problem = find_unserialisable({long_key: {"x": BAD_NAME}}, "the return value")
    assert problem is not None
    shown_key = "'" + "k" * 35 + "...'"
    assert problem.startswith(f"the return value[{shown_key}]['x'] is a str with a lone "
                              "surrogate")


# -- a real worker process against poison values -----------------------------------------------

POISONS = ("t.poison_result", "t.poison_key", "t.poison_error", "t.nul_error",
           "t.unprintable_error")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_a_worker_survives_poison_values_and_every_neighbour_runs_once(
    app: Conveyor, db_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    record = app.tasks["t.record"]
    # Poison in the middle of the queue, so its outcome shares ack batches with neighbours.
    normal = [job.id for job in app.enqueue_many(record.prepare(tag=f"a{n}") for n in range(25))]
    poison = {name: app.enqueue(name).id for name in POISONS}
    poison["t.huge_error"] = app.enqueue("t.huge_error", 300_000).id
    normal += [job.id for job in app.enqueue_many(record.prepare(tag=f"b{n}") for n in range(25))]
    every = set(normal) | set(poison.values())

    err = tmp_path / "worker.err"
    proc = spawn_worker(db_url, err, "-c", "4", log=log)
    try:
        def settled() -> bool:
            if proc.poll() is not None:
                return True
            found = records(app)
            return all(found[job_id].state.is_terminal for job_id in every)

        wait_until(settled, timeout=60, message="every job to end")
        assert proc.poll() is None, f"the worker died:\n{err.read_text(errors='replace')}"
        found = records(app)
        # Every normal job ran exactly once, by the log the task itself writes.
        runs = read_executions(log)
        assert all(run.end is not None for run in runs)
        assert Counter(run.job_id for run in runs) == Counter(normal)
        assert all(found[job_id].state is JobState.SUCCEEDED for job_id in normal)

        for name, job_id in poison.items():
            assert found[job_id].state is JobState.FAILED, (name, found[job_id])
        result = found[poison["t.poison_result"]]
        assert result.attempts == 1 and result.error is not None
        assert result.error.type == "UnserialisableResult"
        assert "the return value[1] is a str with a lone surrogate '\\udcff'" in (
            result.error.message)
        key = found[poison["t.poison_key"]].error
        assert key is not None and key.type == "UnserialisableResult"
        assert "the return value['files'] has the key 'report-\\udcff.csv'" in key.message

        failing = found[poison["t.poison_error"]]
        assert failing.attempts == 2 and failing.error is not None
        assert failing.error.type == "FileNotFoundError"
        # The byte the surrogate stood for, escaped: readable and storable everywhere.
        assert failing.error.message == "no such file: report-\\xff.csv"
        assert failing.error.traceback and "report-\\xff.csv" in failing.error.traceback
        history = app.inspector.attempts(failing.id)
        assert [(a.outcome, a.error and a.error.message) for a in history] == [
            ("retry", "no such file: report-\\xff.csv"),
            ("failed", "no such file: report-\\xff.csv")]

        nul = found[poison["t.nul_error"]].error
        assert nul is not None and nul.message == "a NUL \\x00 in the message"
        unprintable = found[poison["t.unprintable_error"]].error
        assert unprintable is not None and unprintable.type.endswith("Unprintable")
        assert unprintable.message == "<str() of the exception raised RuntimeError>"
        huge = found[poison["t.huge_error"]].error
        assert huge is not None and huge.traceback is not None
        assert len(huge.message.encode()) <= 64 * KIB and "cut to 64.0 KiB" in huge.message
        assert len(huge.traceback.encode()) <= 64 * KIB
        assert huge.traceback.rstrip().endswith("x")  # the end of a traceback is kept
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
        kill_all([proc])


def test_a_progress_message_with_a_lone_surrogate_fails_the_job_readably(
    app: Conveyor,
) -> None:
    job = app.enqueue("t.poison_progress")
    fine = app.enqueue("t.progress", 3)
    run_all(app)
    assert fine.result(timeout=5) == 3
    with pytest.raises(JobFailed) as failed:
        job.result(timeout=5)
    assert failed.value.error_type == "conveyor.errors.InvalidInput"
    assert "progress message has a lone surrogate '\\udcff'" in failed.value.message
    assert job.refresh().attempts == 1


# -- refused at enqueue ------------------------------------------------------------------------


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def _loop() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


REFUSED_ARGUMENTS = [
    pytest.param((BAD_NAME,), {}, "argument 0 is a str with a lone surrogate '\\udcff' at "
                 "index 7", id="surrogate-arg"),
    pytest.param((), {"path": BAD_NAME}, "keyword argument 'path' is a str with a lone "
                 "surrogate", id="surrogate-kwarg"),
    pytest.param(([{"a": ["ok", BAD_NAME]}],), {}, "argument 0[0]['a'][1] is a str with a "
                 "lone surrogate", id="surrogate-nested"),
    pytest.param(({BAD_NAME: 1},), {}, "argument 0 has the key 'report-\\udcff.csv' with a "
                 "lone surrogate", id="surrogate-key"),
    pytest.param((), {BAD_NAME: 1}, "the keyword argument name 'report-\\udcff.csv' has a "
                 "lone surrogate", id="surrogate-kwarg-name"),
    pytest.param((_nested(101),), {}, "argument 0[0][0][0][0][0][0]...(88 more levels)..."
                 "[0][0][0][0][0][0] is nested more than 100 levels deep", id="too-deep"),
    pytest.param((_loop(),), {}, "nested more than 100 levels deep (or contains itself)",
                 id="contains-itself"),
    pytest.param((2**63,), {}, "argument 0 is an int too large for JSON interop (outside the "
                 "signed 64-bit range", id="int-too-large"),
    pytest.param(([-(2**63) - 1],), {}, "argument 0[0] is an int too large", id="int-too-small"),
    pytest.param((10**5000,), {}, "argument 0 is an int too large", id="int-past-str-limit"),
    pytest.param(({10**5000: 1},), {}, "has the key <int of 16610 bits> of type int",
                 id="huge-int-key"),
]


@pytest.mark.parametrize(("args", "kwargs", "message"), REFUSED_ARGUMENTS)
def test_hostile_arguments_are_refused_at_every_way_in(
    app: Conveyor, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    echo = app.tasks["t.echo"]
    ways: dict[str, Callable[[], object]] = {
        "task.enqueue": lambda: echo.enqueue(*args, **kwargs),
        "task.options().enqueue": lambda: echo.options(priority=1).enqueue(*args, **kwargs),
        "app.enqueue": lambda: app.enqueue("t.echo", *args, **kwargs),
        "app.enqueue by unknown name": lambda: app.enqueue("elsewhere.task", *args, **kwargs),
        "prepare": lambda: echo.prepare(*args, **kwargs),
        "app.prepare": lambda: app.prepare("t.echo", *args, **kwargs),
        "enqueue_many": lambda: app.enqueue_many(
            [echo.prepare("fine"), echo.prepare(*args, **kwargs)]),
    }
    for way, call in ways.items():
        with pytest.raises(InvalidInput) as refused:
            call()
        assert message in str(refused.value), way
        assert "cannot enqueue" in str(refused.value), way
    assert stored_count(app) == 0


REFUSED_OPTIONS = [
    pytest.param({"delay": 1e300}, "delay of 1e+300 s would run the job after the year 9999",
                 id="delay-1e300"),
    pytest.param({"delay": timedelta.max}, "after the year 9999", id="delay-timedelta-max"),
    pytest.param({"delay": math.nan}, "delay must be a number of seconds >= 0", id="delay-nan"),
    pytest.param({"delay": -math.inf}, "delay must be", id="delay-minus-inf"),
    pytest.param({"at": datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))},
                 "at=9999-12-31T23:00:00-05:00 is after the years 1..9999 in UTC",
                 id="at-past-9999-in-utc"),
    pytest.param({"at": datetime(1, 1, 1, 1, tzinfo=timezone(timedelta(hours=5)))},
                 "at=0001-01-01T01:00:00+05:00 is before the years 1..9999 in UTC",
                 id="at-before-year-1-in-utc"),
    pytest.param({"unique_key": BAD_NAME}, "unique_key 'report-\\udcff.csv' contains a NUL "
                 "character or a lone surrogate", id="unique-key-surrogate"),
    pytest.param({"unique_key": "a\x00b"}, "contains a NUL", id="unique-key-nul"),
]


@pytest.mark.parametrize(("options", "message"), REFUSED_OPTIONS)
def test_times_and_keys_no_reader_could_handle_are_refused(
    app: Conveyor, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        app.tasks["t.add"].options(**options).enqueue(1, 2)
    assert message in str(refused.value)
    with pytest.raises(InvalidInput):
        app.options("t.add", **options).prepare(1, 2)
    assert stored_count(app) == 0


def test_the_latest_time_that_fits_is_accepted_and_shown(app: Conveyor) -> None:
    latest = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    job = app.tasks["t.add"].options(at=latest).enqueue(1, 2)
    assert job.state is JobState.SCHEDULED
    assert job.record.run_at == latest.timestamp()
    delayed = app.tasks["t.add"].options(delay=timedelta(days=365 * 1000)).enqueue(1, 2)
    assert delayed.state is JobState.SCHEDULED


# -- the CLI -----------------------------------------------------------------------------------


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch, db_url: str) -> Any:
    monkeypatch.delenv("CONVEYOR_APP", raising=False)
    monkeypatch.delenv("CONVEYOR_URL", raising=False)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli, [*args, "--url", db_url])

    return run


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(['["\\udcff"]'], "argument 0 is a str with a lone surrogate",
                 id="escaped-surrogate"),
    pytest.param([json.dumps([BAD_NAME], ensure_ascii=False)], "lone surrogate '\\udcff'",
                 id="raw-surrogate"),
    pytest.param(["[]", "--kwargs", '{"files": {"\\udcff": 1}}'],
                 "keyword argument 'files' has the key '\\udcff' with a lone surrogate",
                 id="surrogate-key"),
    pytest.param(["[" * 150 + "]" * 150], "is nested more than 100 levels deep",
                 id="too-deep"),
    pytest.param(["[" * 100_000 + "]" * 100_000], "is nested too deeply to read",
                 id="far-too-deep"),
    pytest.param(["[9223372036854775808]"], "argument 0 is an int too large for JSON interop",
                 id="int-too-large"),
    pytest.param(["[" + "9" * 5000 + "]"], "Exceeds the limit (4300 digits)",
                 id="int-past-str-limit"),
    pytest.param(["[NaN]"], "argument 0 is nan, which JSON cannot represent", id="nan"),
    pytest.param(["[]", "--delay", "99999999999999d"], "would run the job after the year 9999",
                 id="delay-past-9999"),
    pytest.param(["[]", "--at", "9999-12-31T23:00:00-05:00"], "after the years 1..9999",
                 id="at-past-9999"),
    pytest.param(["[]", "--unique-key", BAD_NAME], "contains a NUL character or a lone "
                 "surrogate", id="unique-key"),
    pytest.param([json.dumps(["x" * (4 * MIB)])], "over the limit of 4.0 MiB", id="too-big"),
])
def test_cli_enqueue_refuses_hostile_values(invoke: Any, app: Conveyor, args: list[str],
                                            message: str) -> None:
    assert_usage_error(invoke("enqueue", "t.echo", *args), message)
    assert stored_count(app) == 0


def test_cli_filters_that_are_not_text_are_usage_errors(invoke: Any, app: Conveyor) -> None:
    app.enqueue("t.echo")
    for args in (["jobs", "list", "--task", BAD_NAME], ["jobs", "list", "-q", BAD_NAME],
                 ["jobs", "retry", "--failed", "--task", BAD_NAME]):
        assert_usage_error(invoke(*args), "holds '\\udcff', which is not valid text")


# -- size limits -------------------------------------------------------------------------------


@pytest.fixture
def small(db_url: str) -> Any:
    """The test app with a 4 KiB payload limit."""
    application = make_app(db_url, lease_timeout=5.0, max_payload_bytes=4 * KIB)
    yield application
    application.close()


def test_arguments_over_the_size_limit_are_refused(small: Conveyor) -> None:
    echo = small.tasks["t.echo"]
    # '["' + data + '"]' and '{}' are what is stored: exactly at the limit passes.
    assert echo.enqueue("x" * (4 * KIB - 6)).args == ["x" * (4 * KIB - 6)]
    over: list[tuple[Callable[[], object], str]] = [
        (lambda: echo.enqueue("x" * (4 * KIB - 5)), "argument 0"),
        (lambda: echo.enqueue("a" * 1500, b="b" * 3000), "keyword argument 'b'"),
        (lambda: echo.enqueue("€" * 1400), "argument 0"),  # 1400 characters, 4200 bytes
        (lambda: small.enqueue("elsewhere", "x" * 5000), "argument 0"),
        (lambda: small.enqueue_many([echo.prepare("x" * 5000)]), "argument 0"),
    ]
    for call, largest in over:
        with pytest.raises(PayloadTooLarge) as refused:
            call()
        message = str(refused.value)
        assert "KiB of JSON, over the limit of 4.0 KiB" in message
        assert f"the largest is {largest}" in message
        assert ("pass a path or an id instead of the data, or raise max_payload_bytes"
                in message)
    assert stored_count(small) == 1


def test_the_default_limit_is_4_mib(app: Conveyor) -> None:
    assert app.max_payload_bytes == 4 * MIB
    with pytest.raises(PayloadTooLarge, match=r"4\.0 MiB of JSON, over the limit of 4\.0 MiB"):
        app.tasks["t.echo"].enqueue("x" * (4 * MIB))
    assert stored_count(app) == 0


@pytest.mark.parametrize("bad", [1023, 0, -1, True, 2.5e6, "4MiB", None])
def test_max_payload_bytes_is_checked(bad: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="max_payload_bytes must be an int >= 1024"):
        Conveyor(f"sqlite:///{tmp_path}/x.db", max_payload_bytes=bad)
    assert Conveyor(f"sqlite:///{tmp_path}/x.db", max_payload_bytes=1024).max_payload_bytes == 1024


def test_a_result_over_the_size_limit_fails_the_job_without_retry(small: Conveyor) -> None:
    big = small.enqueue("t.big_result", 5000)
    fits = small.enqueue("t.big_result", 100)
    run_all(small)
    assert fits.result(timeout=5) == "x" * 100
    with pytest.raises(JobFailed) as failed:
        big.result(timeout=5)
    assert failed.value.error_type == "ResultTooLarge"
    assert ("task 't.big_result' returned too much: the return value is 4.9 KiB of JSON, over "
            "the limit of 4.0 KiB") in failed.value.message
    assert "raise max_payload_bytes" in failed.value.message
    assert big.refresh().attempts == 1


@pytest.mark.backends("sqlite")
@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_the_process_pool_applies_the_same_rules(
    app: Conveyor, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool's child processes load the app themselves, limit included."""
    monkeypatch.setenv("CONVEYOR_TEST_MAX_PAYLOAD", str(4 * KIB))
    jobs = {
        "big": app.enqueue("t.big_result", 5000),
        "poison": app.enqueue("t.poison_result"),
        "error": app.enqueue("t.nul_error"),
        "fine": app.enqueue("t.big_result", 10),
    }
    err = tmp_path / "worker.err"
    proc = spawn_worker(db_url, err, "--pool", "process", "-c", "1")
    try:
        wait_until(lambda: proc.poll() is not None or all(
            job.refresh().state.is_terminal for job in jobs.values()), timeout=60,
            message="every job to end")
        assert proc.poll() is None, err.read_text(errors="replace")
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        kill_all([proc])
    assert jobs["fine"].result(timeout=1) == "x" * 10
    errors = {name: job.error for name, job in jobs.items() if name != "fine"}
    assert {name: error and error.type for name, error in errors.items()} == {
        "big": "ResultTooLarge", "poison": "UnserialisableResult", "error": "ValueError"}


def test_hand_built_jobs_are_checked_too(app: Conveyor) -> None:
    """NewJob is public: what `prepare` checks, enqueue_many checks cheaply again."""
    small = make_app(app.url, max_payload_bytes=4 * KIB)
    try:
        cases = [
            (NewJob("t.echo", "default", json.dumps([BAD_NAME], ensure_ascii=False), "{}"),
             "NUL character or a lone surrogate"),
            (NewJob("t.echo", "default", "[]", '{"a":"\x00"}'), "NUL character"),
            (NewJob("t.echo", "default", json.dumps(["x" * 5000]), "{}"),
             "its arguments are 4.9 KiB of JSON, over the limit of 4.0 KiB"),
            (NewJob("t.echo", "default", "[]", "{}", run_at=1e300), "years 1..9999"),
            (NewJob("t.echo", "default", "[]", "{}", run_at=math.nan), "years 1..9999"),
            (NewJob("t.echo", "default", "[]", "{}", delay=1e300), "after the year 9999"),
            (NewJob("t.echo", "default", b"[]", "{}"),  # type: ignore[arg-type]
             "must be JSON text"),
        ]
        for job, message in cases:
            with pytest.raises(InvalidInput, match=message):
                small.enqueue_many([small.tasks["t.echo"].prepare(1), job])
            with pytest.raises(InvalidInput, match=message):
                small.enqueue_one(job)
        assert stored_count(small) == 0
    finally:
        small.close()


# -- damaged rows ------------------------------------------------------------------------------


def test_arguments_that_are_not_json_fail_the_job_and_stay_readable(
    app: Conveyor, db_url: str, invoke: Any
) -> None:
    bad_args = app.enqueue("t.echo", 1)
    bad_kwargs = app.enqueue("t.echo", 2)
    too_deep = app.enqueue("t.echo", 3)
    fine = app.enqueue("t.echo", 4)
    execute(db_url, "UPDATE conveyor_jobs SET args = ? WHERE id = ?", ("{not json", bad_args.id))
    execute(db_url, "UPDATE conveyor_jobs SET kwargs = ? WHERE id = ?", ("[1]", bad_kwargs.id))
    execute(db_url, "UPDATE conveyor_jobs SET args = ? WHERE id = ?",
            ("[" * 100_000 + "]" * 100_000, too_deep.id))
    run_all(app)
    assert fine.result(timeout=5) == {"args": [4], "kwargs": {}}
    for job in (bad_args, bad_kwargs, too_deep):
        with pytest.raises(JobFailed) as failed:
            job.result(timeout=5)
        assert failed.value.error_type == "BadPayload"
        assert job.attempts == 1
    with pytest.raises(CorruptJob, match=f"job {bad_args.id}: the stored args is not valid "
                                         "JSON .*: '{not json'"):
        _ = bad_args.args
    with pytest.raises(CorruptJob, match="the stored kwargs is not an object: '\\[1\\]'"):
        _ = app.get_job(bad_kwargs.id).kwargs

    listed = json.loads(_ok(invoke("jobs", "list", "--json")).stdout)
    view = {job["id"]: job for job in listed}[bad_args.id]
    assert view["args"] is None and view["kwargs"] == {}
    assert "the stored args is not valid JSON" in view["corrupt"][0]
    assert {job["id"]: job for job in listed}[fine.id]["corrupt"] == []
    shown = _ok(invoke("jobs", "show", str(bad_args.id)))
    assert "<cannot be shown: job" in shown.stdout and "BadPayload" in shown.stdout
    _ok(invoke("jobs", "list"))


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception)
    return result


def test_damaged_result_error_progress_and_times_do_not_crash_readers(
    app: Conveyor, db_url: str, invoke: Any
) -> None:
    succeeded = app.enqueue("t.add", 1, 2)
    failed = app.tasks["t.fail"].options(max_attempts=1).enqueue("kaput")
    progressed = app.enqueue("t.progress", 2)
    far = app.enqueue("t.add", 3, 4)
    run_all(app)
    assert failed.refresh().state is JobState.FAILED
    execute(db_url, "UPDATE conveyor_jobs SET result = ? WHERE id = ?", ("{broken", succeeded.id))
    execute(db_url, "UPDATE conveyor_jobs SET error = ? WHERE id = ?", ("not json", failed.id))
    execute(db_url, "UPDATE conveyor_jobs SET progress = ? WHERE id = ?",
            ('{"done": "x"}', progressed.id))
    # What delay=1e300 stored before it was refused.
    execute(db_url, "UPDATE conveyor_jobs SET run_at = ?, state = 'scheduled' WHERE id = ?",
            (1e300, far.id))
    if is_postgres(db_url):
        execute(db_url, "UPDATE conveyor_jobs SET finished_at = 'NaN' WHERE id = ?",
                (progressed.id,))

    with pytest.raises(CorruptJob, match="the stored result is not valid JSON"):
        app.get_job(succeeded.id).result(timeout=1)
    error = app.get_job(failed.id).error
    assert error is not None and error.type == "CorruptRow"
    assert "corrupt row: the stored error cannot be read" in error.message
    assert "'not json'" in error.message
    with pytest.raises(JobFailed, match="CorruptRow"):
        failed.result(timeout=1)
    record = app.get_job(progressed.id).record
    assert record.progress is None
    assert any(problem.startswith("progress cannot be read") for problem in record.corrupt)
    distant = app.get_job(far.id).record
    assert math.isnan(distant.run_at)
    assert distant.corrupt == ("run_at is not a time within the years 1..9999: 1e+300",)
    assert len(app.inspector.list_jobs()) == 4

    listed = {job["id"]: job for job in json.loads(_ok(invoke("jobs", "list", "--json")).stdout)}
    assert listed[succeeded.id]["result"] is None
    assert "the stored result is not valid JSON" in listed[succeeded.id]["corrupt"][0]
    assert listed[failed.id]["error"]["type"] == "CorruptRow"
    assert listed[far.id]["run_at"] is None and listed[far.id]["corrupt"]
    assert "corrupt" in _ok(invoke("jobs", "list")).stdout
    for job in (succeeded, failed, progressed, far):
        _ok(invoke("jobs", "show", str(job.id)))
        json.loads(_ok(invoke("jobs", "show", str(job.id), "--json")).stdout)
    assert "run_at is not a time" in _ok(invoke("jobs", "show", str(far.id))).stdout
    _ok(invoke("status"))
    _ok(invoke("status", "--json"))


@pytest.mark.backends("sqlite")
def test_text_in_number_columns_breaks_neither_the_claim_nor_the_readers(
    app: Conveyor, db_url: str, exec_log: Path, invoke: Any
) -> None:
    """SQLite is dynamically typed: UPDATE ... SET run_at = 'abc' succeeds."""
    record = app.tasks["t.record"]
    jobs = [record.enqueue(tag=str(n)) for n in range(4)]
    stuck = app.tasks["t.add"].options(queue="elsewhere").enqueue(1, 2)
    execute(db_url, "UPDATE conveyor_jobs SET run_at = 'abc' WHERE id IN (?, ?)",
            (jobs[1].id, stuck.id))
    execute(db_url, "UPDATE conveyor_jobs SET enqueued_at = 'xyz', priority = 'high', "
                    "max_attempts = 'many' WHERE id = ?", (jobs[2].id,))
    with worker_thread(app, concurrency=2):
        wait_until(lambda: all(job.refresh().state.is_terminal for job in jobs), timeout=20,
                   message="every job to end")
    assert sorted(run.job_id for run in read_executions(exec_log)) == [job.id for job in jobs]
    assert all(job.state is JobState.SUCCEEDED for job in jobs)

    damaged = app.get_job(jobs[2].id).record
    assert math.isnan(damaged.enqueued_at) and damaged.priority == 0
    assert damaged.corrupt == (
        "priority is not an integer: 'high'",
        "max_attempts is not an integer: 'many'",
        "enqueued_at is not a time within the years 1..9999: 'xyz'",
    )
    assert "run_at is not a time within the years 1..9999: 'abc'" in (
        app.get_job(stuck.id).record.corrupt)
    listed = json.loads(_ok(invoke("jobs", "list", "--json")).stdout)
    assert {job["id"]: job for job in listed}[jobs[1].id]["run_at"] is None
    assert "corrupt" in _ok(invoke("jobs", "list")).stdout
    assert "'xyz'" in _ok(invoke("jobs", "show", str(jobs[2].id))).stdout
    status = json.loads(_ok(invoke("status", "--json")).stdout)
    elsewhere = {queue["queue"]: queue for queue in status["queues"]}["elsewhere"]
    assert elsewhere["oldest_queued_at"] is None and elsewhere["counts"]["queued"] == 1
    _ok(invoke("status"))
