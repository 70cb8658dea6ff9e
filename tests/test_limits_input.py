"""Bad input to limits (issue 11, part 7): each is refused at declaration or enqueue with a
message that names the task and the problem, and nothing is stored. On both backends: the
jobs table is read back empty after every refusal."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from databases import query
from helpers import assert_usage_error

from conveyor import Conveyor, InvalidInput
from conveyor.backends.base import NewJob
from conveyor.cli import cli
from conveyor.task import Task


@pytest.fixture
def app(db_url: str) -> Iterator[Conveyor]:
    application = Conveyor(db_url, lease_timeout=30.0)
    application.migrate()  # the tables exist, so "nothing stored" can be read back
    yield application
    application.close()


def stored(db_url: str) -> int:
    ((count,),) = query(db_url, "SELECT count(*) FROM conveyor_jobs")
    return int(count)


def refused(app: Conveyor, db_url: str, attempt: Callable[[], Any], *parts: str) -> None:
    """`attempt` raises InvalidInput whose message holds every one of `parts`; no job."""
    with pytest.raises(InvalidInput) as raised:
        attempt()
    message = str(raised.value)
    for part in parts:
        assert part in message, message
    assert stored(db_url) == 0


def job(tenant: str = "acme") -> None:
    """What the tasks below run (never: each is refused first)."""


BAD_TASK_LIMITS: list[tuple[dict[str, Any], str]] = [
    ({"rate_limit": "ten per second"}, "rate_limit 'ten per second' is not a rate; write it "
                                       "as N/s, N/m, N/h or N/d"),
    ({"rate_limit": "0/s"}, "rate_limit '0/s' would never let a job start"),
    ({"rate_limit": 10}, "rate_limit must be a str such as '10/s', got 10"),
    ({"concurrency": 0}, "concurrency must be an int from 1 to 100000"),
    ({"concurrency": -1}, "concurrency must be an int from 1 to 100000"),
    ({"concurrency": True}, "got True"),
    ({"concurrency": 2.5}, "got 2.5"),
    ({"rate_limit": "5/s", "limit_key": "tenant"},
     "limit_key must be a function of the job's arguments"),
    ({"limit_key": lambda tenant, **_: tenant},
     "limit_key keys the task's limits, and it has none: give rate_limit= or concurrency="),
    ({"timeout": 5, "soft_timeout": 5}, "soft_timeout (5 s) must be below timeout (5 s)"),
    ({"timeout": 5, "soft_timeout": 9}, "soft_timeout (9 s) must be below timeout (5 s)"),
]


def test_bad_task_limits_are_refused_at_declaration(app: Conveyor, db_url: str) -> None:
    for settings, problem in BAD_TASK_LIMITS:
        refused(app, db_url, functools.partial(app.task(name="reports.build", **settings), job),
                "task 'reports.build'", problem)
        assert "reports.build" not in app.tasks


def test_a_bad_queue_concurrency_is_refused(app: Conveyor, db_url: str) -> None:
    bad: Any
    for bad in (0, -1, True, 2.5):
        refused(app, db_url, functools.partial(app.queue, "gpu", concurrency=bad),
                "queue 'gpu': concurrency must be an int from 1 to 100000")


def raises(tenant: str) -> str:
    raise LookupError(f"no tenant {tenant!r}")


BAD_KEY_FUNCTIONS: list[tuple[Callable[..., Any], str]] = [
    (raises, "its limit_key function raised LookupError: no tenant 'acme'"),
    (lambda tenant: 42, "limit_key must give a str (e.g. a tenant's id), got int 42"),
    (lambda tenant: None, "limit_key must give a str (e.g. a tenant's id), got NoneType None"),
    (lambda tenant: "", "limit_key '' must be 1 to 200 printable characters"),
    (lambda tenant: "x" * 201, "must be 1 to 200 printable characters"),
]


def _batch(app: Conveyor, before: list[NewJob], task: Task[..., Any]) -> None:
    app.enqueue_many([*before, task.prepare("acme")])


def test_a_bad_limit_key_function_refuses_the_enqueue(app: Conveyor, db_url: str) -> None:
    fine = app.task(name="mail.send")(job).prepare("acme")
    for number, (key, problem) in enumerate(BAD_KEY_FUNCTIONS):
        task = app.task(name=f"sync.tenant{number}", concurrency=1, limit_key=key)(job)
        name = f"'sync.tenant{number}'"
        refused(app, db_url, functools.partial(task.enqueue, "acme"), name, problem)
        # In a batch, nothing of it is stored (the key is computed as each job is prepared).
        refused(app, db_url, functools.partial(_batch, app, [fine], task), name, problem)


def test_a_limit_key_for_a_task_without_limits_is_refused(app: Conveyor, db_url: str) -> None:
    plain = app.task(name="mail.send")(job)
    problem = "has no rate_limit or concurrency for limit_key to key"
    refused(app, db_url, lambda: plain.options(limit_key="acme"), "task 'mail.send'", problem)
    refused(app, db_url, lambda: app.options("mail.send", limit_key="acme").enqueue(),
            "task 'mail.send'", problem)


def test_a_limit_key_for_a_registered_task_without_limits_is_refused_by_name(
        app: Conveyor, db_url: str) -> None:
    """A process that does not import the task enqueues it by name: the task as a worker
    registered it decides. Stored, the key would park the job where no limit governs it."""
    worker_side = Conveyor(db_url)
    worker_side.task(name="mail.send")(job)
    app.backend.register_tasks("w1", [t.info for t in worker_side.tasks.values()])
    worker_side.close()
    refused(app, db_url, lambda: app.options("mail.send", limit_key="acme").enqueue(),
            "cannot enqueue 'mail.send': limit_key 'acme' keys a task's rate and concurrency "
            "limits, and the task (as a worker registered it) has none")


def test_a_bad_key_given_for_one_job_is_refused(app: Conveyor, db_url: str) -> None:
    """An option's problem reads the same from every way in (test_job_options), so this one
    names the option, not the task; `conveyor enqueue` adds the task."""
    task = app.task(name="sync.tenant", rate_limit="5/s")(job)
    key: Any
    for key, problem in (("", "limit_key '' must be 1 to 200 printable characters"),
                         ("x" * 201, "must be 1 to 200 printable characters"),
                         ("a\nb", "limit_key 'a\\nb' must be 1 to 200 printable"),
                         (5, "limit_key must give a str (e.g. a tenant's id), got int 5")):
        refused(app, db_url, functools.partial(task.options, limit_key=key), problem)
        refused(app, db_url, functools.partial(app.options, "sync.tenant", limit_key=key),
                problem)


def test_enqueue_refuses_an_empty_limit_key(app: Conveyor, db_url: str,
                                            runner: CliRunner) -> None:
    worker_side = Conveyor(db_url)
    worker_side.task(name="sync.tenant", concurrency=2)(job)
    worker_side.task(name="mail.send")(job)
    app.backend.register_tasks("w1", [t.info for t in worker_side.tasks.values()])
    worker_side.close()
    result = runner.invoke(cli, ["enqueue", "sync.tenant", "--limit-key", "", "--url", db_url])
    assert_usage_error(result, "Invalid value for '--limit-key': task 'sync.tenant': "
                               "limit_key '' must be 1 to 200 printable characters")
    result = runner.invoke(cli, ["enqueue", "mail.send", "--limit-key", "acme",
                                 "--url", db_url])
    assert_usage_error(result, "cannot enqueue 'mail.send': limit_key 'acme' keys")
    assert stored(db_url) == 0
    # The same key, well formed, for the limited task: stored.
    result = runner.invoke(cli, ["enqueue", "sync.tenant", "--limit-key", "acme", "--json",
                                 "--url", db_url])
    assert result.exit_code == 0, result.output
    assert query(db_url, "SELECT task, limit_key FROM conveyor_jobs") == [
        ("sync.tenant", "acme")]

