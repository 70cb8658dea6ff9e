"""Enqueue: what gets stored, and what is refused with a message naming the problem."""

from __future__ import annotations

import contextlib
import gc
import math
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from databases import execute, is_postgres, open_sessions, query

from conveyor import Conveyor, ConveyorWarning, InvalidInput, JobNotFound, JobState
from conveyor.backends import sqlite_path


def stored_count(app: Conveyor) -> int:
    return sum(sum(states.values()) for states in app.inspector.count_by_state().values())


def test_enqueue_stores_a_committed_job(app: Conveyor, db_url: str) -> None:
    job = app.tasks["t.add"].enqueue(1, b=2)
    assert job.id > 0
    assert job.task == "t.add"
    assert job.queue == "default"
    assert job.state is JobState.QUEUED
    assert job.attempts == 0
    # Another connection sees it at once: enqueued means committed.
    rows = query(db_url, "SELECT task, args, kwargs, state FROM conveyor_jobs")
    assert rows == [("t.add", "[1]", '{"b":2}', "queued")]


def test_calling_a_task_directly_runs_it_inline(app: Conveyor) -> None:
    assert app.tasks["t.add"](2, 3) == 5
    assert stored_count(app) == 0


def test_default_task_name_is_module_and_qualname(app: Conveyor) -> None:
    @app.task
    def resize(path: str) -> str:
        return path

    qualname = "test_default_task_name_is_module_and_qualname.<locals>.resize"
    assert resize.name == f"{__name__}.{qualname}"
    assert resize("x") == "x"


def test_registering_two_functions_under_one_name_is_refused(app: Conveyor) -> None:
    with pytest.raises(Exception, match="already registered"):
        app.task(name="t.add")(lambda: None)


def test_options_override_task_defaults(app: Conveyor) -> None:
    job = app.tasks["t.add"].options(queue="urgent", priority=-5, max_attempts=7).enqueue(1, 2)
    record = job.record
    assert (record.queue, record.priority, record.max_attempts) == ("urgent", -5, 7)


def test_delay_and_at_make_a_scheduled_job(app: Conveyor) -> None:
    delayed = app.tasks["t.add"].options(delay=60).enqueue(1, 2)
    assert delayed.state is JobState.SCHEDULED
    by_timedelta = app.tasks["t.add"].options(delay=timedelta(minutes=5)).enqueue(1, 2)
    assert by_timedelta.state is JobState.SCHEDULED
    assert by_timedelta.record.run_at - by_timedelta.record.enqueued_at == pytest.approx(300, abs=1)
    when = datetime.now(UTC) + timedelta(hours=1)
    at = app.tasks["t.add"].options(at=when).enqueue(1, 2)
    assert at.state is JobState.SCHEDULED
    assert at.record.run_at == pytest.approx(when.timestamp())
    past = app.tasks["t.add"].options(at=datetime.now(UTC) - timedelta(hours=1)).enqueue(
        1, 2)
    assert past.state is JobState.QUEUED


def test_enqueue_by_name_works_for_tasks_this_process_does_not_know(app: Conveyor) -> None:
    with pytest.warns(ConveyorWarning, match="no worker has registered task 'reports.some"):
        job = app.enqueue("reports.somewhere.else", 1, key="v")
    assert job.task == "reports.somewhere.else"
    assert job.args == [1] and job.kwargs == {"key": "v"}
    assert job.max_attempts == 3
    known = app.enqueue("t.fail")
    assert known.max_attempts == 3
    with pytest.warns(ConveyorWarning, match="no worker has registered task 'elsewhere'"):
        with_options = app.options("elsewhere", queue="other", priority=3).enqueue()
    assert (with_options.queue, with_options.priority) == ("other", 3)


def test_enqueue_many_is_one_transaction(app: Conveyor) -> None:
    add = app.tasks["t.add"]
    jobs = app.enqueue_many([add.prepare(n, n) for n in range(100)])
    assert len(jobs) == 100
    assert len({job.id for job in jobs}) == 100
    assert stored_count(app) == 100
    assert app.enqueue_many([]) == []


def test_enqueue_many_refuses_items_that_are_not_prepared_jobs(app: Conveyor) -> None:
    add = app.tasks["t.add"]
    with pytest.raises(InvalidInput, match="item 1 is tuple"):
        app.enqueue_many([add.prepare(1, 2), ("t.add", 1, 2)])  # type: ignore[list-item]
    assert stored_count(app) == 0


def test_get_job_and_missing_job(app: Conveyor) -> None:
    job = app.tasks["t.add"].enqueue(1, 2)
    assert app.get_job(job.id).id == job.id
    with pytest.raises(JobNotFound, match="no job with id 999"):
        app.get_job(999)
    with pytest.raises(InvalidInput, match="positive int"):
        app.get_job("1")  # type: ignore[arg-type]


class Opaque:
    pass


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((Opaque(),), {}, "argument 0 is of type Opaque"),
        ((1, {1, 2}), {}, "argument 1 is of type set"),
        ((), {"when": datetime.now()}, "keyword argument 'when' is of type datetime"),
        ((math.nan,), {}, "argument 0 is nan"),
        (([1, [2, math.inf]],), {}, r"argument 0\[1\]\[1\] is inf"),
        (({1: "a"},), {}, "key 1 of type int"),
        ((b"bytes",), {}, "argument 0 is of type bytes"),
        ((), {"nested": {"deep": [Opaque()]}}, r"keyword argument 'nested'\['deep'\]\[0\]"),
    ],
)
def test_unserialisable_arguments_are_refused_and_nothing_stored(
    app: Conveyor, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        app.tasks["t.echo"].enqueue(*args, **kwargs)
    with pytest.raises(InvalidInput, match=message):
        app.enqueue_many([app.tasks["t.echo"].prepare("fine"),
                          app.tasks["t.echo"].prepare(*args, **kwargs)])
    assert stored_count(app) == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"queue": ""}, "queue must not be empty"),
        ({"queue": "q" * 101}, "limit is 100"),
        ({"queue": "a,b"}, "may only contain"),
        ({"queue": 5}, "queue must be a str"),
        ({"priority": 1.5}, "priority must be an int"),
        ({"priority": True}, "priority must be an int"),
        ({"priority": 1001}, "priority must be an int from -1000 to 1000"),
        ({"delay": -1}, "delay must be a number of seconds >= 0"),
        ({"delay": timedelta(seconds=-5)}, "delay must be"),
        ({"delay": math.inf}, "delay must be"),
        ({"delay": "10m"}, "delay must be"),
        ({"at": datetime(2030, 1, 1)}, "timezone-aware"),
        ({"at": "2030-01-01"}, "at must be a datetime"),
        ({"delay": 1, "at": datetime(2030, 1, 1, tzinfo=UTC)}, "either delay or at"),
        ({"max_attempts": 0}, "max_attempts must be an int from 1"),
        ({"unique_key": ""}, "unique_key must be a non-empty str"),
        ({"unique_key": "k" * 256}, "limit is 255"),
    ],
)
def test_bad_options_are_refused(app: Conveyor, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        app.tasks["t.add"].options(**options).enqueue(1, 2)
    assert stored_count(app) == 0


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "must not be empty"), ("x" * 201, "limit is 200"), ("has space", "whitespace"),
     ("tab\tname", "whitespace"), (42, "must be a str")],
)
def test_bad_task_names_are_refused(app: Conveyor, name: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        app.enqueue(name)
    with pytest.raises(InvalidInput, match=message):
        app.task(name=name)(lambda: None)
    assert stored_count(app) == 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"backoff": -1}, "backoff"), ({"timeout": 0}, "timeout must be > 0"),
     ({"max_attempts": 0}, "max_attempts"), ({"queue": ""}, "queue")],
)
def test_bad_task_settings_are_refused(app: Conveyor, settings: dict[str, Any],
                                       message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        app.task(name="t.other", **settings)(lambda: None)


def test_bad_app_settings_are_refused(tmp_path: Path) -> None:
    from conveyor import ConfigurationError

    with pytest.raises(ConfigurationError, match="lease_timeout"):
        Conveyor(f"sqlite:///{tmp_path}/x.db", lease_timeout=0)
    with pytest.raises(ConfigurationError, match="durability"):
        Conveyor(f"sqlite:///{tmp_path}/x.db", durability="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="in-memory"):
        Conveyor("sqlite:///:memory:").backend  # noqa: B018
    with pytest.raises(ConfigurationError, match="unsupported database URL"):
        Conveyor("mysql://localhost/db").backend  # noqa: B018
    with pytest.raises(ConfigurationError, match="does not exist"):
        Conveyor(f"sqlite:///{tmp_path}/missing/dir/x.db").backend  # noqa: B018


@pytest.mark.filterwarnings("ignore:no worker has registered task:conveyor.errors.ConveyorWarning")
def test_url_forms_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVEYOR_URL", raising=False)
    with Conveyor() as default:
        default.enqueue("x")
    assert (tmp_path / "conveyor.db").exists()
    with Conveyor("sqlite:///relative.db") as relative:
        relative.enqueue("x")
    assert (tmp_path / "relative.db").exists()
    absolute = tmp_path / "abs.db"
    with Conveyor(f"sqlite:///{absolute}") as app:  # sqlite:////abs/path.db
        assert app.url.startswith("sqlite:////")
        app.enqueue("x")
    assert absolute.exists()
    monkeypatch.setenv("CONVEYOR_URL", "sqlite:///from-env.db")
    with Conveyor() as from_env:
        from_env.enqueue("x")
    assert (tmp_path / "from-env.db").exists()


def test_creating_an_app_touches_no_file(tmp_path: Path) -> None:
    Conveyor(f"sqlite:///{tmp_path}/lazy.db")
    assert not (tmp_path / "lazy.db").exists()


@pytest.mark.filterwarnings("ignore:no worker has registered task:conveyor.errors.ConveyorWarning")
def test_wal_and_durability_pragmas(tmp_path: Path) -> None:
    with Conveyor(f"sqlite:///{tmp_path}/n.db") as normal:
        normal.enqueue("x")
        conn = normal.backend.db._write  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    with Conveyor(f"sqlite:///{tmp_path}/f.db", durability="full") as full:
        full.enqueue("x")
        conn = full.backend.db._write  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


@pytest.mark.filterwarnings("ignore:no worker has registered task:conveyor.errors.ConveyorWarning")
def test_a_newer_schema_is_refused_and_nothing_is_left_open(db_url: str) -> None:
    from conveyor import SchemaMismatch

    with Conveyor(db_url) as app:
        app.enqueue("x")
    execute(db_url, "INSERT INTO conveyor_migrations VALUES (999, 'future', 0)")
    before = _open_handles(db_url)
    gc.disable()  # closed by the backend itself, not by a garbage collection that happens by
    try:
        with pytest.raises(SchemaMismatch, match=r"version 999.*upgrade conveyor"):
            Conveyor(db_url).backend  # noqa: B018
        # The refused backend closed what it had opened (a pool, its connections, files).
        assert _open_handles(db_url) == before
    finally:
        gc.enable()
        gc.collect()


def _open_handles(db_url: str) -> list[str]:
    """What this test holds open on its database: PostgreSQL sessions carrying the test's
    application_name, or this process's file descriptors on the SQLite file."""
    if is_postgres(db_url):
        return sorted(f"session {state}: {text}" for _, state, text in open_sessions(db_url))
    path = str(sqlite_path(db_url))
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc")
    handles = []
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith(path):
                handles.append(target)
    return sorted(handles)
