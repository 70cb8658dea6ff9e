"""Enqueue by name lands where the task lives: workers register the tasks they know (with
their queue, priority and max_attempts) when they start, and a process that does not import a
task takes those defaults when it enqueues the task by name. A name no worker ever registered
is still stored (on `default`), with a warning."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from databases import query
from helpers import kill_all, wait_until, worker_env, worker_thread

from conveyor import Conveyor, ConveyorWarning, JobState
from conveyor.cli import cli

UNREGISTERED = "no worker has registered task"

MEDIA_APP = '''
from conveyor import Conveyor

app = Conveyor()  # the URL comes from --url

@app.task(name="media.resize", queue="media", priority=-3, max_attempts=7)
def resize(path: str, size: int = 64) -> str:
    return f"{path}@{size}"
'''


def media_app(url: str, queue: str = "media") -> Conveyor:
    """The app of the workers (and of nobody else in these tests)."""
    app = Conveyor(url, lease_timeout=5.0)

    @app.task(name="media.resize", queue=queue, priority=-3, max_attempts=7)
    def resize(path: str, size: int = 64) -> str:
        return f"{path}@{size}"

    @app.task(name="media.probe")
    def probe(path: str) -> str:
        return path

    return app


def test_a_worker_process_registers_its_tasks_and_enqueues_by_name_follow_them(
        db_url: str, tmp_path: Path, runner: CliRunner) -> None:
    (tmp_path / "media_app.py").write_text(MEDIA_APP)
    worker = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "-A", "media_app:app", "--url", db_url,
         "--name", "media-worker"],
        cwd=tmp_path, env=worker_env(db_url), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    try:
        with Conveyor(db_url) as caller:  # knows no task at all
            wait_until(lambda: caller.inspector.registered_tasks(["media.resize"]),
                       message="the worker to register its tasks")
            job = caller.enqueue("media.resize", "cat.jpg", size=128)
            assert (job.queue, job.priority, job.max_attempts) == ("media", -3, 7)
            assert job.result(timeout=30) == "cat.jpg@128"
            cli_job = runner.invoke(cli, ["enqueue", "media.resize", '["dog.jpg"]', "--url",
                                          db_url, "--json", "--wait", "30"])
            assert cli_job.exit_code == 0, cli_job.output
            data = json.loads(cli_job.stdout)
            assert (data["job"]["queue"], data["job"]["priority"], data["job"]["max_attempts"],
                    data["job"]["result"]) == ("media", -3, 7, "dog.jpg@64")
            assert cli_job.stderr == ""
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            _, err = worker.communicate(timeout=30)
        finally:
            kill_all([worker])
    assert worker.returncode == 0, err.decode()
    assert query(db_url, "SELECT name, queue, priority, max_attempts, worker FROM "
                         "conveyor_tasks") == [("media.resize", "media", -3, 7, "media-worker")]


def test_by_name_takes_what_the_caller_left_unset_and_a_known_task_keeps_its_own(
        db_url: str) -> None:
    workers = media_app(db_url)
    caller = Conveyor(db_url)
    local = Conveyor(db_url)

    @local.task(name="media.resize", queue="local", max_attempts=2)
    def resize(path: str, size: int = 64) -> str:
        return f"{path}@{size}"

    try:
        with worker_thread(workers, queues=["nowhere"]):  # registers; runs nothing here
            pass
        registered = caller.inspector.registered_tasks(["media.resize", "media.probe", "x"])
        assert {name: (t.queue, t.priority, t.max_attempts) for name, t in registered.items()
                } == {"media.resize": ("media", -3, 7), "media.probe": ("default", 0, 3)}
        plain = caller.enqueue("media.resize", "a.jpg")
        assert (plain.queue, plain.priority, plain.max_attempts) == ("media", -3, 7)
        # What the caller gives wins; the rest comes from the registered task.
        chosen = caller.options("media.resize", queue="urgent", max_attempts=1).enqueue("b")
        assert (chosen.queue, chosen.priority, chosen.max_attempts) == ("urgent", -3, 1)
        prioritised = caller.options("media.resize", priority=5).enqueue("c")
        assert (prioritised.queue, prioritised.priority) == ("media", 5)
        # enqueue_many of calls prepared by name, one transaction.
        batch = caller.enqueue_many([caller.prepare("media.resize", f"{n}.jpg")
                                     for n in range(3)] + [caller.prepare("media.probe", "p")])
        assert [(job.queue, job.max_attempts) for job in batch] == [("media", 7)] * 3 + [
            ("default", 3)]
        one, created = caller.enqueue_one(caller.prepare("media.resize", "d.jpg"))
        assert created and one.queue == "media"
        # A process that knows the task uses its own settings, whatever is registered.
        mine = local.enqueue("media.resize", "e.jpg")
        assert (mine.queue, mine.priority, mine.max_attempts) == ("local", 0, 2)
        assert resize.enqueue("f.jpg").queue == "local"
        # The jobs run on the task's queue.
        with worker_thread(workers, queues=["media"]):
            assert plain.result(timeout=20) == "a.jpg@64"
            assert all(job.result(timeout=20) == f"{n}.jpg@64" for n, job in enumerate(batch[:3]))
    finally:
        for app in (workers, caller, local):
            app.close()


def test_the_last_registration_wins(db_url: str) -> None:
    with media_app(db_url, queue="media") as old, media_app(db_url, queue="video") as new, \
            Conveyor(db_url) as caller:
        with worker_thread(old, queues=["nowhere"]):
            pass
        assert caller.enqueue("media.resize", "x").queue == "media"
        with worker_thread(new, queues=["nowhere"]):
            pass
        assert caller.enqueue("media.resize", "x").queue == "video"


def test_a_name_no_worker_registered_is_stored_on_default_with_a_warning(db_url: str) -> None:
    with media_app(db_url) as workers, Conveyor(db_url) as caller:
        with worker_thread(workers, queues=["nowhere"]):
            pass
        with pytest.warns(ConveyorWarning) as caught:
            typo = caller.enqueue("media.resise", "cat.jpg")
        assert [str(w.message) for w in caught] == [
            f"{UNREGISTERED} 'media.resise' and this process does not know it, so its job went "
            "to queue 'default' with default settings: check the name, or start a worker that "
            "knows the task first (a worker registers its app's tasks, with their queue, when "
            "it starts)"]
        assert caught[0].filename == __file__  # it points at the caller's line
        assert (typo.queue, typo.state) == ("default", JobState.QUEUED)
        # One warning per name, naming the queue the caller chose; known names are quiet.
        with pytest.warns(ConveyorWarning) as many:
            jobs = caller.enqueue_many(
                [caller.options("nope", queue="q1").prepare() for _ in range(3)]
                + [caller.prepare("media.resize", "fine.jpg")])
        assert [str(w.message).split(" and ")[0] for w in many] == [f"{UNREGISTERED} 'nope'"]
        assert "went to queue 'q1'" in str(many[0].message)
        assert [job.queue for job in jobs] == ["q1", "q1", "q1", "media"]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert caller.enqueue("media.probe", "p").queue == "default"


def test_the_cli_enqueue_by_name_follows_the_registered_task_or_warns_on_stderr(
        db_url: str, runner: CliRunner) -> None:
    def invoke(*args: str) -> Any:
        result = runner.invoke(cli, ["enqueue", *args, "--url", db_url])
        assert result.exit_code == 0, result.output
        return result

    with media_app(db_url) as workers:
        with worker_thread(workers, queues=["nowhere"]):
            pass
        known = invoke("media.resize", '["cat.jpg"]')
        assert known.stdout == "enqueued job 1: media.resize on queue media\n"
        assert known.stderr == ""
        chosen = invoke("media.resize", '["cat.jpg"]', "-q", "urgent", "--json")
        assert json.loads(chosen.stdout)["job"]["queue"] == "urgent"
        typo = invoke("media.resise", '["cat.jpg"]')
        assert typo.stdout == "enqueued job 3: media.resise on queue default\n"
        assert typo.stderr.startswith(f"warning: {UNREGISTERED} 'media.resise' and this "
                                      "process does not know it, so its job went to queue "
                                      "'default'")
        as_json = invoke("media.resise", "--json")
        assert json.loads(as_json.stdout)["job"]["queue"] == "default"  # stdout stays JSON
        # Under --json, what is said besides the result is JSON too (on stderr).
        assert json.loads(as_json.stderr)["note"].startswith(
            f"warning: {UNREGISTERED} 'media.resise'")
        assert [job.queue for job in reversed(workers.inspector.list_jobs())] == [
            "media", "urgent", "default", "default"]
