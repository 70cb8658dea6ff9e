"""Schedules end to end on both backends: declared in code, synced to the database, fired once
per slot by any number of schedulers, caught up after an outage as each policy says, shown and
controlled from the CLI."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import assert_usage_error, wait_until, worker_thread
from jobs_app import make_app

from conveyor import Conveyor, JobState
from conveyor.backends import Backend
from conveyor.cli import cli
from conveyor.errors import ConfigurationError, InvalidInput
from conveyor.records import ScheduleDefinition, SlotRun
from conveyor.worker.scheduling import Scheduler


def definition(name: str = "nightly", *, every: float | None = None,
               cron: str | None = "0 2 * * *", tz: str = "UTC") -> ScheduleDefinition:
    return ScheduleDefinition(name, "t.add", None if every else cron, every, tz, "[1, 2]", "{}",
                              "skip", None)


def run_of(app: Conveyor, name: str, slot: float | None) -> SlotRun:
    return SlotRun(name, slot, app.prepare("t.add", 1, 2))


def scheduled_jobs(app: Conveyor, name: str) -> list[tuple[float, int]]:
    """(slot, job id) of every job fired for a slot of schedule `name`, oldest slot first."""
    return sorted((j.schedule_slot, j.id) for j in app.inspector.list_jobs(limit=10_000)
                  if j.schedule == name and j.schedule_slot is not None)


def set_since(backend: Backend, name: str, since: float) -> None:
    """Pretend the schedule started (or last fired) at `since`: an outage since then."""
    with backend.db.transaction() as s:  # type: ignore[attr-defined]
        s.script(f"UPDATE conveyor_schedules SET since = {since!r} WHERE name = '{name}'")


# -- storage ------------------------------------------------------------------------------


def test_sync_writes_keeps_and_retires_schedules(app: Conveyor) -> None:
    backend = app.backend
    assert backend.sync_schedules("w1", [definition("a"), definition("b", every=60)]) == []
    [a, b] = app.inspector.schedules()
    assert (a.definition, a.active, a.paused, a.synced_by) == (definition("a"), True, False,
                                                                "w1")
    assert b.definition.every == 60.0 and b.definition.cron is None
    # Same timing again: `since` (where firing resumes) is kept; new arguments are taken.
    moved = ScheduleDefinition("a", "t.add", "0 2 * * *", None, "UTC", "[5, 6]", "{}", "all",
                               30.0)
    assert backend.sync_schedules("w2", [moved, definition("b", every=60)]) == []
    [a2, _] = app.inspector.schedules()
    assert a2.after == a.after and a2.definition == moved and a2.synced_by == "w2"
    # New timing: from its next slot (since = now), never the old expression's missed slots.
    backend.sync_schedules("w3", [definition("a", cron="30 3 * * *"), definition("b", every=60)])
    [a3, _] = app.inspector.schedules()
    assert a3.after > a2.after and a3.definition.cron == "30 3 * * *"
    # Gone from the code: inactive, and no scheduler sees it any more.
    assert backend.sync_schedules("w4", [definition("b", every=60)]) == ["a"]
    assert [s.definition.name for s in backend.schedule_states()[1]] == ["b"]
    assert [(r.definition.name, r.active) for r in app.inspector.schedules()] == [
        ("a", False), ("b", True)]
    # Back in the code: active again, starting afresh.
    backend.sync_schedules("w5", [definition("a", cron="30 3 * * *"), definition("b", every=60)])
    assert [s.definition.name for s in backend.schedule_states()[1]] == ["a", "b"]


def test_a_slot_fires_once_however_many_schedulers_ask(app: Conveyor) -> None:
    backend = app.backend
    backend.sync_schedules("w", [definition("tick", every=1)])
    slots = [float(n) for n in range(1_000, 1_020)]
    fired: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def scheduler() -> None:
        try:
            start.wait()
            for slot in slots:
                done = backend.fire([run_of(app, "tick", slot)])
                with lock:
                    fired.extend(f.job.id for f in done)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    jobs = scheduled_jobs(app, "tick")
    assert [slot for slot, _ in jobs] == slots  # each slot once
    assert sorted(fired) == sorted(job_id for _, job_id in jobs)
    job = app.get_job(jobs[0][1])
    assert (job.schedule, job.schedule_slot) == ("tick", job.schedule_slot)
    assert job.schedule_slot is not None and job.schedule_slot.timestamp() == 1_000.0
    assert (job.task, job.args, job.state) == ("t.add", [1, 2], JobState.QUEUED)


def test_a_run_by_hand_has_no_slot_and_leaves_the_slots_alone(app: Conveyor) -> None:
    app.backend.sync_schedules("w", [definition("nightly")])
    job = app.run_schedule("nightly")
    assert (job.schedule, job.schedule_slot, job.args) == ("nightly", None, [1, 2])
    again = app.run_schedule("nightly")
    assert again.id != job.id  # by hand: always a new run
    [state] = app.backend.schedule_states()[1]
    assert state.after == app.inspector.schedules()[0].after  # no slot was taken
    with pytest.raises(InvalidInput, match="no schedule named 'nope'"):
        app.run_schedule("nope")


def test_pause_and_resume(app: Conveyor) -> None:
    app.backend.sync_schedules("w", [definition("nightly")])
    before = app.inspector.schedules()[0].after
    app.pause_schedule("nightly")
    assert app.inspector.schedules()[0].paused
    assert app.backend.schedule_states()[1][0].paused
    app.resume_schedule("nightly")
    record = app.inspector.schedules()[0]
    assert not record.paused and record.after > before  # slots missed while paused: skipped
    with pytest.raises(InvalidInput, match="no schedule named"):
        app.pause_schedule("nope")


# -- the scheduler --------------------------------------------------------------------------


def every_30s(app: Conveyor, catch_up: str, max_lateness: float | None = None) -> None:
    app.schedule("half", "t.add", every=30, args=(1, 2), catch_up=catch_up,  # type: ignore[arg-type]
                 max_lateness=max_lateness)


@pytest.mark.parametrize(("catch_up", "max_lateness", "runs"), [
    ("skip", None, {1}),  # the current slot only
    ("once", None, {2}),  # one run for the nine missed slots, and the current one
    ("all", None, {10}),  # each of them
    ("all", 100.0, {3, 4}),  # those at most 100 s late: 3 or 4, as the clock falls
])
def test_catch_up_after_an_outage_of_ten_slots(
        db_url: str, catch_up: str, max_lateness: float | None, runs: set[int]) -> None:
    with make_app(db_url, lease_timeout=5.0) as app:
        every_30s(app, catch_up, max_lateness)
        scheduler = Scheduler(app, app.backend, "s1")
        scheduler.sync()
        # The last slot taken was ten slots ago; no scheduler ran since.
        now = time.time()
        current = math.floor(now / 30) * 30
        app.backend.fire([run_of(app, "half", current - 300)])
        set_since(app.backend, "half", current - 300)  # (it started before that slot)
        scheduler.tick()
        slots = [slot for slot, _ in scheduled_jobs(app, "half")]
        assert slots[0] == current - 300
        fired = slots[1:]
        assert len(fired) in runs, fired
        if fired:
            assert fired[-1] >= current  # the current slot always runs
            assert fired == sorted(set(fired)) and fired[0] > current - 300
        # A second scheduler (or tick) finds nothing left to fire.
        Scheduler(app, app.backend, "s2").tick()
        assert len(scheduled_jobs(app, "half")) == 1 + len(fired)


class CountingReads:
    """The app's backend, counting the scheduler's reads of the schedules table."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def schedule_states(self) -> tuple[float, list[Any]]:
        self.reads += 1
        return self.inner.schedule_states()


def test_a_scheduler_fires_due_slots_and_reads_nothing_until_the_next(app: Conveyor) -> None:
    app.schedule("tick", "t.add", every=1, args=(1, 2))
    counting = CountingReads(app.backend)
    scheduler = Scheduler(app, counting, "s1")
    scheduler.sync()
    wait_until(lambda: scheduler.tick() >= 0 and len(scheduled_jobs(app, "tick")) >= 2,
               timeout=10, interval=0.05, message="two slots fired")
    slots = [slot for slot, _ in scheduled_jobs(app, "tick")]
    assert slots[1] - slots[0] == 1.0
    reads = counting.reads
    wait = scheduler.tick()  # nothing due: how long until the next slot, and no read
    assert 0 < wait <= 1.0 and counting.reads == reads


def test_a_new_expression_takes_effect_from_its_next_slot(app: Conveyor) -> None:
    backend = app.backend
    backend.sync_schedules("w", [definition("half", every=30)])
    set_since(backend, "half", time.time() - 3600)  # an hour of missed slots, policy skip...
    backend.sync_schedules("w", [definition("half", every=60)])  # ...then a new timing
    Scheduler(app, backend, "s").tick()
    slots = [slot for slot, _ in scheduled_jobs(app, "half")]
    assert all(slot % 60 == 0 and slot > time.time() - 61 for slot in slots)
    assert len(slots) <= 1


def test_an_inactive_or_paused_schedule_never_fires(app: Conveyor) -> None:
    backend = app.backend
    backend.sync_schedules("w", [definition("gone", every=1), definition("held", every=1)])
    set_since(backend, "gone", time.time() - 10)
    set_since(backend, "held", time.time() - 10)
    backend.sync_schedules("w", [definition("held", every=1)])  # "gone" left the code
    app.pause_schedule("held")
    Scheduler(app, backend, "s").tick()
    assert scheduled_jobs(app, "gone") == [] and scheduled_jobs(app, "held") == []


def test_workers_fire_schedules_and_no_scheduler_turns_it_off(
        db_url: str, exec_log: Any) -> None:
    with make_app(db_url, lease_timeout=5.0) as app:
        app.schedule("tick", "t.add", every=1, args=(2, 3))
        with worker_thread(app, scheduler=False, concurrency=1) as worker:
            # a job of a second and a half: the scheduler would have fired meanwhile
            app.enqueue("t.record", sleep=1.5).result(timeout=20)
            assert worker.processed == 1
        assert app.inspector.schedules() == []  # not even synced
        with worker_thread(app, concurrency=1):
            done = wait_until(lambda: [j for j in app.inspector.list_jobs()
                                       if j.schedule == "tick" and j.state.is_terminal],
                              message="a scheduled run")
        assert done[0].result == 5


# -- declaring schedules -----------------------------------------------------------------


def test_periodic_registers_a_task_and_its_schedule(db_url: str) -> None:
    app = Conveyor(db_url)

    @app.periodic(cron="0 2 * * *", tz="Europe/Berlin", queue="maintenance", max_attempts=1,
                  kwargs={"deep": True})
    def cleanup(deep: bool = False) -> str:
        return "clean"

    @app.periodic(every=timedelta(hours=6), name="temp.sweep", catch_up="once",
                  max_lateness=timedelta(minutes=30))
    def sweep() -> None: ...

    app.schedule("health", "other.service.health", every=900)
    app.schedule("backup-a", "db.backup", cron="@daily", args=("a",))
    app.schedule("backup-b", "db.backup", cron="0 3 * * *", args=("b",))
    assert cleanup.settings.queue == "maintenance"
    assert set(app.schedules) == {cleanup.name, "temp.sweep", "health", "backup-a", "backup-b"}
    nightly = app.schedules[cleanup.name]
    assert (nightly.task, nightly.tz, nightly.kwargs) == (cleanup.name, "Europe/Berlin",
                                                         {"deep": True})
    assert nightly.describe() == "At 02:00 every day (Europe/Berlin)"
    six = app.schedules["temp.sweep"]
    assert (six.every, six.catch_up, six.max_lateness) == (21600.0, "once", 1800.0)
    assert six.describe() == "Every 6 hours"
    assert sweep() is None and cleanup() == "clean"  # still plain functions to call
    app.close()


BAD: list[tuple[Callable[[Conveyor], Any], type[Exception], str]] = [
    (lambda app: app.schedule("x", "t.add", cron="61 * * * *"), InvalidInput,
     "schedule 'x': invalid cron expression '61 * * * *'"),
    (lambda app: app.schedule("x", "t.add", cron="0 2 * * *", tz="Mars/Olympus"), InvalidInput,
     "schedule 'x': unknown timezone 'Mars/Olympus'"),
    (lambda app: app.schedule("x", "t.add", every=0), InvalidInput,
     "schedule 'x': every must be a number of seconds >= 1"),
    (lambda app: app.schedule("x", "t.add", every="often"), InvalidInput,  # type: ignore[arg-type]
     "every must be a number of seconds"),
    (lambda app: app.schedule("x", "t.add"), InvalidInput, "give cron=... or every=..."),
    (lambda app: app.schedule("x", "t.add", every=5, catch_up="never"),  # type: ignore[arg-type]
     InvalidInput, "catch_up must be one of skip, once, all"),
    (lambda app: app.schedule("x", "t.add", every=5, args=(1,)), InvalidInput,
     "schedule 'x': its arguments are refused"),
    (lambda app: app.schedule("x", "t.echo", every=5, args=({1, 2},)), InvalidInput,
     "schedule 'x': its arguments are refused"),
    (lambda app: app.schedule("", "t.add", every=5), InvalidInput, "non-empty str"),
    (lambda app: app.periodic(lambda: None), InvalidInput,
     "@app.periodic needs its timing: write @app.periodic(cron="),
    (lambda app: (app.schedule("x", "t.add", every=5, args=(1, 2)),
                  app.schedule("x", "t.add", every=6, args=(1, 2))), ConfigurationError,
     "two schedules are named 'x'"),
]


@pytest.mark.parametrize(("declare", "error", "message"), BAD)
def test_a_bad_schedule_is_refused_when_declared(
        db_url: str, declare: Callable[[Conveyor], Any], error: type[Exception],
        message: str) -> None:
    with make_app(db_url) as app:
        with pytest.raises(error, match=None) as raised:
            declare(app)
        assert message in str(raised.value)
        assert "x" not in app.schedules or len(app.schedules) == 1


def test_declaring_the_same_schedule_twice_is_harmless(db_url: str) -> None:
    with make_app(db_url) as app:
        for _ in range(2):  # a module imported twice
            app.schedule("x", "t.add", every=5, args=(1, 2))
        assert list(app.schedules) == ["x"]


def test_a_schedule_of_a_task_nobody_knows_is_warned_about_at_start(
        app: Conveyor, caplog: pytest.LogCaptureFixture) -> None:
    app.schedule("ghost", "nobody.knows", every=60)
    Scheduler(app, app.backend, "s").sync()
    assert "task 'nobody.knows', which this app does not define" in caplog.text


# -- CLI ---------------------------------------------------------------------------------


def test_schedules_cli(app: Conveyor, db_url: str, runner: CliRunner) -> None:
    app.schedule("nightly", "t.add", cron="0 2 * * *", tz="Europe/Berlin", args=(1, 2))
    app.schedule("quarter", "t.add", every=900, args=(3, 4))
    Scheduler(app, app.backend, "s").sync()
    listed = runner.invoke(cli, ["schedules", "list", "--url", db_url, "--json"])
    assert listed.exit_code == 0, listed.output
    views = {v["name"]: v for v in json.loads(listed.stdout)["schedules"]}
    nightly = views["nightly"]
    assert (nightly["task"], nightly["expression"], nightly["timezone"], nightly["paused"]) == (
        "t.add", "0 2 * * *", "Europe/Berlin", False)
    assert nightly["description"] == "At 02:00 every day (Europe/Berlin)"
    assert len(nightly["next_runs"]) == 3 and nightly["last_run"] is None
    assert views["quarter"]["description"] == "Every 15 minutes"

    ran = runner.invoke(cli, ["schedules", "run", "nightly", "--url", db_url, "--json"])
    assert ran.exit_code == 0, ran.output
    job_id = json.loads(ran.stdout)["job"]
    assert app.get_job(job_id).schedule == "nightly"
    shown = runner.invoke(cli, ["jobs", "show", str(job_id), "--url", db_url])
    assert "nightly (run by hand)" in shown.output
    assert json.loads(runner.invoke(cli, ["jobs", "show", str(job_id), "--url", db_url,
                                          "--json"]).stdout)["schedule"] == "nightly"

    paused = runner.invoke(cli, ["schedules", "pause", "nightly", "--url", db_url])
    assert paused.exit_code == 0 and "paused" in paused.output
    table = runner.invoke(cli, ["schedules", "list", "--url", db_url])
    assert "paused" in table.output and "At 02:00 every day" in table.output
    again = json.loads(runner.invoke(cli, ["schedules", "list", "--url", db_url,
                                           "--json"]).stdout)["schedules"]
    by_name = {v["name"]: v for v in again}
    assert by_name["nightly"]["paused"] and by_name["nightly"]["next_runs"] == []
    assert by_name["nightly"]["last_run"]["job_id"] == job_id
    resumed = runner.invoke(cli, ["schedules", "resume", "nightly", "--url", db_url, "--json"])
    assert json.loads(resumed.stdout) == {"schedule": "nightly", "paused": False}

    assert_usage_error(runner.invoke(cli, ["schedules", "pause", "nope", "--url", db_url]),
                       "no schedule named 'nope'")
    assert_usage_error(runner.invoke(cli, ["schedules", "run", "nope", "--url", db_url]),
                       "no schedule named 'nope'")
