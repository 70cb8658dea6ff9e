"""Retention: the app's keep_* settings, the store's prune verbs (finished jobs past their
state's age, in batches; schedule slots), the pruner duty in real worker processes (only the
leader prunes) and `conveyor prune`; on both backends."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import retention_app
from click.testing import CliRunner, Result
from databases import connect, execute, is_postgres, query
from helpers import assert_usage_error, claim, kill_all, wait_until, worker_env

from conveyor import Conveyor, JobState
from conveyor.backends import Backend, sqlite_path
from conveyor.backends.base import NewJob
from conveyor.cli import cli
from conveyor.errors import ConfigurationError, InvalidInput
from conveyor.job import JobError
from conveyor.outcomes import Failed
from conveyor.retention import DAY, Retention

DONE = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


def new(queue: str = "default") -> NewJob:
    return NewJob(task="t", queue=queue, args_json="[]", kwargs_json="{}")


def jobs(backend: Backend, db_url: str, *rows: tuple[JobState, float],
         schedule: str | None = None) -> list[int]:
    """A job per (state, age): its state set, ended `age` seconds ago (waiting and running
    jobs get a finished_at that old too, which must not matter), in the order given."""
    ids = [result.record.id for result in backend.enqueue_many([new() for _ in rows])]
    for job_id, (state, age) in zip(ids, rows, strict=True):
        execute(db_url, "UPDATE conveyor_jobs SET state = ?, finished_at = ?, schedule = ? "
                "WHERE id = ?", (str(state), time.time() - age, schedule, job_id))
    return ids


def present(db_url: str) -> set[int]:
    return {row[0] for row in query(db_url, "SELECT id FROM conveyor_jobs")}


# -- settings ---------------------------------------------------------------------------------


def test_the_defaults_keep_a_week_a_month_and_a_week(tmp_path: Path) -> None:
    app = Conveyor(f"sqlite:///{tmp_path / 'jobs.db'}")
    assert app.retention == Retention(7 * DAY, 30 * DAY, 7 * DAY)
    assert app.retention.ages() == {JobState.SUCCEEDED: 7 * DAY, JobState.FAILED: 30 * DAY,
                                    JobState.CANCELLED: 7 * DAY}


def test_keep_settings_take_seconds_timedeltas_or_none(tmp_path: Path) -> None:
    app = Conveyor(f"sqlite:///{tmp_path / 'jobs.db'}", keep_succeeded=90,
                   keep_failed=timedelta(hours=1), keep_cancelled=None)
    assert app.retention.ages() == {JobState.SUCCEEDED: 90.0, JobState.FAILED: 3600.0}


@pytest.mark.parametrize("name", ["keep_succeeded", "keep_failed", "keep_cancelled"])
@pytest.mark.parametrize("value", [0, -1, 0.0, math.nan, math.inf, True, "7d",
                                   timedelta(0), timedelta(seconds=-5)])
def test_bad_keep_settings_are_refused_naming_the_argument(tmp_path: Path, name: str,
                                                           value: Any) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Conveyor(f"sqlite:///{tmp_path / 'jobs.db'}", **{name: value})


# -- the store's verbs ----------------------------------------------------------------------


def test_prune_takes_only_finished_jobs_past_their_states_age(backend: Backend,
                                                              db_url: str) -> None:
    very_old = 1e6
    old_ok, recent_ok, failed_young, failed_old, cancelled = jobs(
        backend, db_url, (JobState.SUCCEEDED, 100), (JobState.SUCCEEDED, 10),
        (JobState.FAILED, 100), (JobState.FAILED, 300), (JobState.CANCELLED, very_old))
    waiting = jobs(backend, db_url, (JobState.SCHEDULED, very_old),
                   (JobState.QUEUED, very_old), (JobState.RUNNING, very_old))
    # A failed job's attempts go with it.
    backend.enqueue_many([new("attempted")])
    (attempted,) = claim(backend, "w", ["attempted"], 1, lease=30)
    now = time.time()
    backend.ack_many([Failed(attempted.id, attempted.token, 1, now, now,
                             JobError("E", "m"))], "w")
    execute(db_url, "UPDATE conveyor_jobs SET finished_at = finished_at - 1000 WHERE id = ?",
            (attempted.id,))
    assert len(backend.inspector.attempts(attempted.id)) == 1

    ages = {JobState.SUCCEEDED: 50.0, JobState.FAILED: 200.0}  # cancelled: kept
    assert backend.prune(ages, dry_run=True) == 3
    assert len(present(db_url)) == 9  # a dry run deletes nothing
    assert backend.prune(ages) == 3
    assert present(db_url) == {recent_ok, failed_young, cancelled, *waiting}
    assert not {old_ok, failed_old} & present(db_url)
    assert query(db_url, "SELECT count(*) FROM conveyor_attempts WHERE job_id = ?",
                 (attempted.id,)) == [(0,)]
    # Even at age 0, waiting and running jobs stay.
    everything = dict.fromkeys(DONE, 0.0)
    assert backend.prune(everything) == 3
    assert present(db_url) == set(waiting)
    with pytest.raises(InvalidInput, match="queued jobs are never pruned"):
        backend.prune({JobState.QUEUED: 0.0})
    assert present(db_url) == set(waiting)


def test_prune_keeps_the_newest_job_of_each_schedule(backend: Backend, db_url: str) -> None:
    old = (JobState.SUCCEEDED, 100)
    daily = jobs(backend, db_url, old, old, old, schedule="daily")
    hourly = jobs(backend, db_url, old, old, schedule="hourly")
    (hourly_next,) = jobs(backend, db_url, (JobState.QUEUED, 0), schedule="hourly")
    plain = jobs(backend, db_url, old, old)
    assert backend.prune({JobState.SUCCEEDED: 50}, dry_run=True) == 6
    assert backend.prune({JobState.SUCCEEDED: 50}) == 6
    # daily's last run stays; hourly's newest job is the queued one, its finished ones go.
    assert present(db_url) == {daily[-1], hourly_next}
    assert not set(hourly + plain) & present(db_url)
    assert backend.prune({JobState.SUCCEEDED: 0}) == 0


def test_prune_deletes_at_most_limit_per_call(backend: Backend, db_url: str) -> None:
    jobs(backend, db_url, *[(JobState.SUCCEEDED, 100)] * 12, (JobState.FAILED, 100))
    ages = {JobState.SUCCEEDED: 50.0, JobState.FAILED: 50.0}
    assert backend.prune(ages, dry_run=True, limit=5) == 13  # a dry run counts them all
    assert [backend.prune(ages, limit=5) for _ in range(4)] == [5, 5, 3, 0]
    assert present(db_url) == set()


def test_a_pruned_id_is_never_given_again(backend: Backend, db_url: str) -> None:
    ids = jobs(backend, db_url, *[(JobState.SUCCEEDED, 100)] * 3)
    assert backend.prune({JobState.SUCCEEDED: 50}) == 3  # the highest id included
    (single,) = backend.enqueue_many([new()])
    batch = backend.enqueue_many([new(), new()])
    assert min(r.record.id for r in [single, *batch]) > max(ids)


def test_old_schedule_slots_go_but_the_newest_of_each_schedule_stays(
        backend: Backend, db_url: str) -> None:
    now = time.time()
    slots = [("a", now - 3 * DAY), ("a", now - 2.5 * DAY), ("a", now - 2 * DAY),
             ("b", now - 3 * DAY), ("b", now - 60), ("b", now - 30),
             ("c", now - 5 * DAY)]
    for schedule, slot in slots:
        execute(db_url, "INSERT INTO conveyor_schedule_slots (schedule, slot, job_id, taken_at)"
                " VALUES (?, ?, NULL, ?)", (schedule, slot, slot))

    def left() -> list[tuple[str, float]]:
        return [(s, round(t)) for s, t in query(
            db_url, "SELECT schedule, slot FROM conveyor_schedule_slots ORDER BY 1, 2")]

    assert backend.prune_schedule_slots(DAY, limit=2) == 2
    assert backend.prune_schedule_slots(DAY, limit=2) == 1
    assert backend.prune_schedule_slots(DAY) == 0
    assert left() == [("a", round(now - 2 * DAY)), ("b", round(now - 60)),
                      ("b", round(now - 30)), ("c", round(now - 5 * DAY))]


def test_shrink_log_gives_back_a_wal_grown_large(backend: Backend, db_url: str) -> None:
    if is_postgres(db_url):
        assert backend.shrink_log() is True  # the server keeps its own WAL
        return
    wal = Path(f"{sqlite_path(db_url)}-wal")
    reader = connect(db_url)
    try:  # a reader's open transaction keeps checkpoints from recycling the WAL
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM conveyor_jobs").fetchall()
        big = NewJob(task="t", queue="default", args_json=json.dumps(["x" * 1000]),
                     kwargs_json="{}")
        for _ in range(3):
            backend.enqueue_many([big] * 2000)
    finally:
        reader.close()
    assert wal.stat().st_size > 4 * 2**20
    assert backend.shrink_log() is True
    assert wal.stat().st_size == 0


def test_the_app_prunes_in_batches_until_none_is_left(app: Conveyor, db_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor import app as app_module

    monkeypatch.setattr(app_module, "PRUNE_BATCH", 3)
    jobs(app.backend, db_url, *[(JobState.SUCCEEDED, 8 * DAY)] * 7,
         (JobState.FAILED, 8 * DAY), (JobState.CANCELLED, 8 * DAY))
    assert app.prune(dry_run=True) == {JobState.SUCCEEDED: 7, JobState.FAILED: 0,
                                       JobState.CANCELLED: 1}
    assert app.prune(max_rows=4) == {JobState.SUCCEEDED: 4, JobState.FAILED: 0,
                                     JobState.CANCELLED: 0}
    assert app.prune() == {JobState.SUCCEEDED: 3, JobState.FAILED: 0, JobState.CANCELLED: 1}
    assert app.prune({"failed": timedelta(days=1)}) == {JobState.FAILED: 1}
    assert present(db_url) == set()


@pytest.mark.parametrize("ages, message", [
    ({"running": 1}, "running jobs are never pruned"),
    ({"scheduled": 1}, "scheduled jobs are never pruned"),
    ({"bogus": 1}, "unknown state 'bogus'"),
    ({"succeeded": -1}, "the age of succeeded jobs must be 0 or more"),
    ({"failed": "1d"}, "the age of failed jobs must be seconds"),
    ({"failed": math.nan}, "the age of failed jobs must be 0 or more"),
])
def test_a_prune_by_hand_refuses_bad_ages(app: Conveyor, ages: dict[str, Any],
                                          message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        app.prune(ages)


# -- the pruner duty, in real worker processes ------------------------------------------------

WORKER = [sys.executable, "-c", "import retention_app; retention_app.install(); "
          "from conveyor.cli import main; main()", "worker", "-A", "retention_app:app"]


def test_the_leaders_pruner_removes_old_succeeded_jobs_and_nothing_else(
        db_url: str, tmp_path: Path) -> None:
    client = Conveyor(db_url)
    procs: list[subprocess.Popen[bytes]] = []
    errs = {name: tmp_path / f"{name}.err" for name in ("one", "two")}
    try:
        for name, err_path in errs.items():
            with open(err_path, "wb") as err:
                procs.append(subprocess.Popen(
                    [*WORKER, "--url", db_url, "-c", "4", "--name", name],
                    env=worker_env(db_url), stdout=err, stderr=err))
        wait_until(lambda: len(client.inspector.workers()) == 2, timeout=30,
                   message="both workers to register")
        gate = tmp_path / "gate"
        running = client.enqueue("r.gate", str(gate))
        queued = client.options("r.quick", queue="nobody-serves-this").enqueue()
        scheduled = client.options("r.quick", delay=3600).enqueue()
        failed = client.enqueue("r.fail")
        wait_until(lambda: running.refresh().state is JobState.RUNNING
                   and failed.refresh().state is JobState.FAILED, message="the gate to run")

        for _ in range(2):  # two waves: a pruner on every worker would show in both logs
            wave = [client.enqueue("r.quick").id for _ in range(20)]
            ended: dict[int, float] = {}
            gone: dict[int, float] = {}

            def all_gone(wave: list[int] = wave, ended: dict[int, float] = ended,
                         gone: dict[int, float] = gone) -> bool:
                for job_id in wave:
                    if job_id in gone:
                        continue
                    record = client.fetch_record(job_id)
                    if record is None:
                        gone[job_id] = time.time()
                    elif record.state is JobState.SUCCEEDED and record.finished_at:
                        ended[job_id] = record.finished_at
                return len(gone) == len(wave)

            wait_until(all_gone, timeout=60, interval=0.05, message="the wave to be pruned")
            assert ended, "no job of the wave was seen succeeded before it went"
            for job_id, at in ended.items():  # kept for keep_succeeded first
                assert gone[job_id] >= at + retention_app.KEEP_SUCCEEDED, (job_id, at)

        assert running.refresh().state is JobState.RUNNING
        assert queued.refresh().state is JobState.QUEUED
        assert scheduled.refresh().state is JobState.SCHEDULED
        assert failed.refresh().state is JobState.FAILED  # kept 30 days
        # One worker leads the pruner, and only it pruned.
        [(leader,)] = query(db_url, "SELECT owner FROM conveyor_leaders WHERE duty = 'pruner'")
        follower = "two" if leader == "one" else "one"
        assert "worker one leads duty 'pruner'" in errs["one"].read_text() or \
            "worker two leads duty 'pruner'" in errs["two"].read_text()
        assert "pruned 20 finished job(s) (succeeded 20)" in errs[leader].read_text()
        assert "pruned" not in errs[follower].read_text()
        gate.touch()
        wait_until(lambda: running.refresh().state is JobState.SUCCEEDED,
                   message="the gate job to end")
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, err_path in zip(procs, errs.values(), strict=True):
            assert proc.wait(timeout=30) == 0, err_path.read_text()
    finally:
        kill_all(procs)
        client.close()


# -- conveyor prune ---------------------------------------------------------------------------


@pytest.fixture
def invoke(runner: CliRunner, db_url: str) -> Any:
    def run(*args: str) -> Result:
        return runner.invoke(cli, [*args, "--url", db_url])

    return run


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_prune_command_dry_run_state_older_than_app_and_json(invoke: Any, app: Conveyor,
                                                             db_url: str) -> None:
    old_ok, recent_ok, old_failed, old_cancelled, waiting = jobs(
        app.backend, db_url, (JobState.SUCCEEDED, 8 * DAY), (JobState.SUCCEEDED, 3600),
        (JobState.FAILED, 8 * DAY), (JobState.CANCELLED, 8 * DAY), (JobState.QUEUED, 9 * DAY))

    dry = invoke("prune", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.splitlines() == [
        "succeeded: would delete 1 ended more than 7d 0h ago",
        "failed: would delete 0 ended more than 30d 0h ago",
        "cancelled: would delete 1 ended more than 7d 0h ago"]
    assert len(present(db_url)) == 5
    assert as_json(invoke("prune", "--dry-run", "--json")) == {
        "dry_run": True,
        "older_than": {"succeeded": 7 * DAY, "failed": 30 * DAY, "cancelled": 7 * DAY},
        "counts": {"succeeded": 1, "failed": 0, "cancelled": 1}, "total": 2}
    assert len(present(db_url)) == 5

    assert as_json(invoke("prune", "--state", "failed", "--older-than", "1d", "--json")) == {
        "dry_run": False, "older_than": {"failed": DAY}, "counts": {"failed": 1}, "total": 1}
    assert old_failed not in present(db_url)
    assert present(db_url) == {old_ok, recent_ok, old_cancelled, waiting}

    # The app's settings (-A): succeeded jobs kept 2 s, so the hour-old one goes too.
    assert as_json(invoke("prune", "-A", "retention_app:app", "--state", "succeeded",
                          "--json"))["counts"] == {"succeeded": 2}
    done = invoke("prune")
    assert done.exit_code == 0, done.output
    assert "cancelled: deleted 1 ended more than 7d 0h ago" in done.stdout
    assert present(db_url) == {waiting}


@pytest.mark.parametrize("args, message", [
    (["--state", "running"], "running jobs are never pruned"),
    (["--state", "queued"], "queued jobs are never pruned"),
    (["--state", "scheduled"], "scheduled jobs are never pruned"),
    (["--state", "bogus"], "'bogus' is not one of"),
    (["--older-than", "soon"], "'soon' is not a duration"),
    (["--older-than", "-1d"], "is negative"),
])
def test_prune_command_usage_errors(invoke: Any, app: Conveyor, db_url: str,
                                    args: list[str], message: str) -> None:
    (waiting,) = jobs(app.backend, db_url, (JobState.QUEUED, 9 * DAY))
    assert_usage_error(invoke("prune", *args), message)
    assert present(db_url) == {waiting}


@pytest.mark.backends("sqlite")  # about SQLite files
def test_prune_command_refuses_a_missing_database_and_speaks_json(runner: CliRunner,
                                                                  tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    assert_usage_error(runner.invoke(cli, ["prune", "--url", url]), "no conveyor database at")
    assert not (tmp_path / "typo.db").exists()
    refused = runner.invoke(cli, ["prune", "--state", "running", "--json", "--url", url])
    assert refused.exit_code == 2 and refused.stdout == ""
    assert "running jobs are never pruned" in json.loads(refused.stderr)["error"]
