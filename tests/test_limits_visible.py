"""Limits made visible (issue 11): why a waiting job does not run (`conveyor jobs show`), the
limits holding jobs back (`conveyor status`), every limit and its use (`conveyor limits list`),
each queue's concurrency limit (`conveyor queues list`). The pure decision (conveyor.waits)
first, then the commands in-process on real databases. State is set up directly: jobs claimed
by the store's limited claim run until acknowledged; one test runs a real worker."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helpers import wait_until, worker_thread

from conveyor import Conveyor, JobState
from conveyor.backends.base import ClaimedJob, ClaimPlan
from conveyor.cli import cli
from conveyor.limits import Rate, admit, parse_rate
from conveyor.outcomes import Succeeded
from conveyor.waits import (
    JobLimits,
    KeyUse,
    job_reasons,
    queue_use,
    summary,
    task_use,
    throttled_until,
    waiting,
)

# -- the pure decision -----------------------------------------------------------------------

NOW = 1_000_000.0


def facts(**changes: Any) -> JobLimits:
    base: dict[str, Any] = {
        "job_id": 7, "task": "X", "queue": "default", "key": "K", "rate": None,
        "concurrency": None, "tat": None, "running": 0, "queue_paused": False,
        "queue_concurrency": None, "queue_running": 0, "now": NOW}
    return JobLimits(**{**base, **changes})


def messages(limits: JobLimits) -> list[str]:
    return [reason.message for reason in job_reasons(limits)]


def test_a_job_without_limits_has_no_reason_to_wait() -> None:
    assert job_reasons(facts(key=None)) == []
    # Within its limits: nothing holds it back (it waits for a worker).
    assert job_reasons(facts(concurrency=2, running=1, queue_concurrency=3,
                             queue_running=2)) == []


def test_a_key_at_its_concurrency_limit_says_so() -> None:
    assert messages(facts(concurrency=2, running=2)) == [
        "concurrency limit reached: 2 of 2 running (task X, key 'K')"]
    # The task's one shared key ('') is not named.
    assert messages(facts(key="", concurrency=1, running=1)) == [
        "concurrency limit reached: 1 of 1 running (task X)"]
    # A limit lowered under what runs still reads as reached.
    (reason,) = job_reasons(facts(concurrency=1, running=3))
    assert (reason.kind, reason.running, reason.limit) == ("concurrency", 3, 1)


def test_a_throttled_key_says_when_it_next_starts() -> None:
    rate = parse_rate("5/s")
    (reason,) = job_reasons(facts(key="A", rate=rate, tat=NOW + 0.2))
    assert reason.kind == "rate" and reason.next_at == pytest.approx(NOW + 0.2)
    at = datetime.fromisoformat(reason.message.rsplit("next start at ", 1)[1])
    assert at.timestamp() == pytest.approx(NOW + 0.2)
    assert reason.message.startswith("rate limited (5/s per key 'A'): next start at ")
    # Never used, or its slot has come: not throttled.
    assert job_reasons(facts(rate=rate, tat=None)) == []
    assert job_reasons(facts(rate=rate, tat=NOW)) == []
    unkeyed = messages(facts(key="", rate=parse_rate("1/h"), tat=NOW + 3600))
    assert unkeyed[0].startswith("rate limited (1/h): next start at ")


def test_a_burst_lets_a_key_start_ahead_of_its_tat() -> None:
    rate = parse_rate("5/s", burst=3)  # tolerance 0.4 s
    assert job_reasons(facts(rate=rate, tat=NOW + 0.4)) == []
    (reason,) = job_reasons(facts(rate=rate, tat=NOW + 0.5))
    assert reason.next_at == pytest.approx(NOW + 0.1)
    assert "(5/s (burst 3) per key 'K')" in reason.message


@pytest.mark.parametrize("tat", [NOW - 5, NOW, NOW + 0.05, NOW + 0.1, NOW + 3])
def test_throttled_until_is_the_claims_own_rule(tat: float) -> None:
    rate = Rate(10, 1.0, 2)
    admission = admit(rate, tat, NOW, 1)
    until = throttled_until(rate, tat, NOW)
    assert (until is None) == (admission.started == 1)
    if until is not None:
        assert until == admission.next_at


def test_every_reason_is_given_the_paused_queue_first() -> None:
    reasons = job_reasons(facts(queue="gpu", queue_paused=True, queue_concurrency=1,
                                queue_running=1, concurrency=1, running=1,
                                rate=parse_rate("1/m"), tat=NOW + 60))
    assert [reason.kind for reason in reasons] == [
        "queue_paused", "queue_concurrency", "concurrency", "rate"]
    assert reasons[0].message == ("queue paused: no worker claims it until "
                                  "`conveyor queues resume gpu`")
    assert reasons[1].message == "queue 'gpu' concurrency limit reached: 1 of 1 running"


def test_a_task_limit_sums_its_keys() -> None:
    rate = parse_rate("5/s")
    keys = [KeyUse("X", "a", 10, 2, NOW + 1.0), KeyUse("X", "b", 5, 0, NOW + 0.3),
            KeyUse("X", "c", 0, 2, NOW + 9), KeyUse("X", "d", 3, 1, None),
            KeyUse("other", "a", 99, 9, NOW + 9)]
    use = task_use("X", rate, 2, True, keys, NOW)
    assert (use.keys, use.queued, use.running) == (4, 18, 5)
    # c has nothing queued: it holds nothing back, whatever its state.
    assert (use.throttled, use.at_concurrency) == (2, 1)
    assert use.next_at == pytest.approx(NOW + 0.3)
    assert use.held
    assert summary(use, NOW) == (
        "task X: 18 queued over 4 keys, 1 of 4 keys at their concurrency limit "
        "(2 running each), rate limited 5/s on 2 of 4 keys (next start in 0.3 s)")


def test_summaries_of_unkeyed_and_queue_limits() -> None:
    rate = parse_rate("5/s")
    throttled = task_use("X", rate, None, False, [KeyUse("X", "", 120, 1, NOW + 0.2)], NOW)
    assert summary(throttled, NOW) == "task X: 120 queued, rate limited 5/s (next start in 0.2 s)"
    full = task_use("Y", None, 2, False, [KeyUse("Y", "", 3, 2, None)], NOW)
    assert summary(full, NOW) == "task Y: 3 queued, concurrency limit reached: 2 of 2 running"
    free = task_use("Z", None, 4, False, [KeyUse("Z", "", 3, 1, None)], NOW)
    assert summary(free, NOW) == "task Z: 3 queued, within its limits (1 of 4 running)"
    gpu = queue_use("gpu", 1, 1, 4)
    assert summary(gpu, NOW) == "queue 'gpu': 4 queued, concurrency limit reached: 1 of 1 running"
    idle = task_use("W", rate, None, True, [], NOW)
    assert (idle.keys, idle.queued, idle.held) == (0, 0, False)
    # Only limits with queued jobs are summarised, those holding jobs back first.
    assert waiting([idle, free, gpu, throttled]) == [gpu, throttled, free]


# -- the commands, on real databases ---------------------------------------------------------

def by_tenant(tenant: str, **_: Any) -> str:
    return tenant


def limits_app(url: str) -> Conveyor:
    """Tasks with each kind of limit: their names are what the messages show."""
    app = Conveyor(url, lease_timeout=30.0)

    # One start per hour: a key that started one is surely throttled during the test.
    @app.task(name="fetch", rate_limit="1/h", limit_key=by_tenant)
    def fetch(tenant: str) -> None: ...

    @app.task(name="crunch", concurrency=2, limit_key=by_tenant)
    def crunch(tenant: str) -> None: ...

    @app.task(name="report", rate_limit="1/h", concurrency=1)
    def report() -> None: ...

    @app.task(name="render", queue="gpu")
    def render() -> None: ...

    @app.task(name="plain")
    def plain() -> None: ...

    app.queue("gpu", concurrency=1)
    return app


@pytest.fixture
def limited(db_url: str) -> Iterator[Conveyor]:
    app = limits_app(db_url)
    # What a starting worker stores: its tasks and its queues' settings.
    app.backend.register_tasks("w1", [task.info for task in app.tasks.values()])
    app.backend.set_queue("gpu", concurrency=1)
    yield app
    app.close()


def claim_all(app: Conveyor) -> list[ClaimedJob]:
    """One claim round of a worker of every queue: the limited claim starts what the limits
    allow, and those jobs run (are leased) until acknowledged."""
    plan = ClaimPlan(limited=True, capped=frozenset({"gpu"}))
    return app.backend.ack_and_claim((), "w1", ["default", "gpu"], 50, 30, (), plan)[1]


def finish(app: Conveyor, job: ClaimedJob) -> None:
    now = time.time()
    accepted, _ = app.backend.ack_and_claim(
        [Succeeded(job.id, job.token, job.attempt, now, now, "null")], "w1", [], 0, 30)
    assert accepted == [True]


@pytest.fixture
def invoke(runner: CliRunner, db_url: str) -> Any:
    def run(*args: str) -> Result:
        result = runner.invoke(cli, [*args, "--url", db_url])
        assert result.exit_code == 0, result.output
        return result

    return run


def data(result: Result) -> Any:
    return json.loads(result.stdout)


def waits_of(invoke: Any, job_id: int) -> list[str]:
    return [wait["message"] for wait in data(invoke("jobs", "show", str(job_id), "--json"))[
        "waiting_on"]]


def test_jobs_show_says_which_limit_holds_a_job(limited: Conveyor, invoke: Any) -> None:
    fetch, crunch, report, render = (limited.tasks[name] for name in (
        "fetch", "crunch", "report", "render"))
    fetched = [fetch.enqueue("A") for _ in range(2)]
    crunched = [crunch.enqueue("K") for _ in range(3)]
    reported = [report.enqueue() for _ in range(2)]
    rendered = [render.enqueue() for _ in range(2)]
    other_key = crunch.enqueue("L")
    started = {job.id for job in claim_all(limited)}
    assert started == {fetched[0].id, *(j.id for j in crunched[:2]), reported[0].id,
                       rendered[0].id, other_key.id}

    (rate,) = data(invoke("jobs", "show", str(fetched[1].id), "--json"))["waiting_on"]
    assert rate["reason"] == "rate"
    assert rate["message"] == f"rate limited (1/h per key 'A'): next start at " \
                              f"{rate['next_start_at']}"
    next_at = datetime.fromisoformat(rate["next_start_at"]).timestamp()
    assert next_at == pytest.approx(time.time() + 3600, abs=60)
    assert waits_of(invoke, crunched[2].id) == [
        "concurrency limit reached: 2 of 2 running (task crunch, key 'K')"]
    assert waits_of(invoke, reported[1].id)[0] == (
        "concurrency limit reached: 1 of 1 running (task report)")
    assert waits_of(invoke, reported[1].id)[1].startswith(
        "rate limited (1/h): next start at ")
    assert waits_of(invoke, rendered[1].id) == [
        "queue 'gpu' concurrency limit reached: 1 of 1 running"]
    # A running job, and a job of a task without limits, wait for nothing.
    assert waits_of(invoke, crunched[0].id) == []
    assert waits_of(invoke, limited.tasks["plain"].enqueue().id) == []

    text = invoke("jobs", "show", str(crunched[2].id)).output
    assert "waiting   concurrency limit reached: 2 of 2 running (task crunch, key 'K')" in text
    text = invoke("jobs", "show", str(fetched[1].id)).output
    assert "rate limited (1/h per key 'A'): next start at " in text and "(in 59m" in text
    assert "queue 'gpu' concurrency limit reached: 1 of 1 running" in invoke(
        "jobs", "show", str(rendered[1].id)).output

    # A pause adds its reason to the limit's.
    limited.pause_queue("gpu")
    shown = data(invoke("jobs", "show", str(rendered[1].id), "--json"))
    assert shown["queue_paused"] is True
    assert [wait["reason"] for wait in shown["waiting_on"]] == [
        "queue_paused", "queue_concurrency"]
    assert "queue paused: no worker claims it until `conveyor queues resume gpu`" in invoke(
        "jobs", "show", str(rendered[1].id)).output


def test_a_freed_slot_clears_the_reason(limited: Conveyor, invoke: Any) -> None:
    crunch = limited.tasks["crunch"]
    jobs = [crunch.enqueue("K") for _ in range(3)]
    first, _ = claim_all(limited)
    assert waits_of(invoke, jobs[2].id) == [
        "concurrency limit reached: 2 of 2 running (task crunch, key 'K')"]
    finish(limited, first)
    assert waits_of(invoke, jobs[2].id) == []
    (third,) = claim_all(limited)
    assert third.id == jobs[2].id  # the key is full again: second and third run
    # A scheduled job is held only by a paused queue: limits apply once it is due.
    later = crunch.options(delay=600).enqueue("K")
    now = crunch.enqueue("K")
    assert waits_of(invoke, later.id) == []
    assert waits_of(invoke, now.id) == [
        "concurrency limit reached: 2 of 2 running (task crunch, key 'K')"]
    limited.pause_queue("default")
    assert [wait["reason"] for wait in data(invoke("jobs", "show", str(later.id), "--json"))[
        "waiting_on"]] == ["queue_paused"]


def test_status_summarises_the_limits_holding_jobs(limited: Conveyor, invoke: Any) -> None:
    fetch, crunch, render = (limited.tasks[name] for name in ("fetch", "crunch", "render"))
    for tenant in ("A", "A", "A", "B", "B"):
        fetch.enqueue(tenant)
    for _ in range(3):
        crunch.enqueue("K")
    for _ in range(4):
        render.enqueue()
    limited.tasks["report"].enqueue()
    claim_all(limited)
    claim_all(limited)  # a second round: nothing more starts
    limits = {row["name"]: row for row in data(invoke("status", "--json"))["limits"]}
    # report ran its one job and has nothing queued: not in the summary.
    assert set(limits) == {"fetch", "crunch", "gpu"}
    assert limits["fetch"]["summary"].startswith(
        "task fetch: 3 queued over 2 keys, rate limited 1/h on 2 of 2 keys (next start in ")
    assert limits["crunch"]["summary"] == (
        "task crunch: 1 queued, concurrency limit reached: 2 of 2 running")
    assert limits["gpu"]["summary"] == (
        "queue 'gpu': 3 queued, concurrency limit reached: 1 of 1 running")
    text = invoke("status").output
    assert "Limits" in text
    assert "queue 'gpu': 3 queued, concurrency limit reached: 1 of 1 running" in text
    assert "task fetch: 3 queued over 2 keys, rate limited 1/h on 2 of 2 keys (next start in 59m" \
        in text


def test_status_without_limits_has_no_limits_section(app: Conveyor, runner: CliRunner,
                                                     db_url: str) -> None:
    app.tasks["t.record"].enqueue()
    result = runner.invoke(cli, ["status", "--url", db_url])
    assert result.exit_code == 0 and "Limits" not in result.output
    assert data(runner.invoke(cli, ["status", "--json", "--url", db_url]))["limits"] == []


def test_limits_list_shows_every_limit_and_its_use(limited: Conveyor, invoke: Any) -> None:
    fetch, crunch, render = (limited.tasks[name] for name in ("fetch", "crunch", "render"))
    for tenant in ("A", "A", "B"):
        fetch.enqueue(tenant)
    for tenant in ("K", "K", "K", "L"):
        crunch.enqueue(tenant)
    render.enqueue()
    render.enqueue()
    claim_all(limited)
    rows = {row["name"]: row for row in data(invoke("limits", "list", "--json"))}
    assert list(rows) == ["crunch", "fetch", "report", "gpu"]
    assert rows["fetch"] == {**rows["fetch"], "limit": "task", "rate": "1/h", "burst": 1,
                             "concurrency": None, "keyed": True, "keys": 2, "running": 2,
                             "queued": 1, "keys_throttled": 1, "keys_at_concurrency": None,
                             "held": True}
    assert rows["crunch"] == {**rows["crunch"], "rate": None, "concurrency": 2, "keyed": True,
                              "keys": 2, "running": 3, "queued": 1, "keys_throttled": None,
                              "keys_at_concurrency": 1, "next_start_at": None, "held": True}
    assert rows["report"] == {**rows["report"], "rate": "1/h", "concurrency": 1,
                              "keyed": False, "keys": 0, "running": 0, "queued": 0,
                              "keys_throttled": 0, "keys_at_concurrency": 0, "held": False}
    assert rows["gpu"] == {**rows["gpu"], "limit": "queue", "concurrency": 1, "keys": None,
                           "running": 1, "queued": 1, "keys_at_concurrency": 1}
    assert 3500 < rows["fetch"]["next_start_in"] <= 3600
    table = invoke("limits", "list").output
    lines = {line.split()[1]: line for line in table.splitlines()
             if line.startswith(("task ", "queue "))}
    assert lines.keys() == {"crunch", "fetch", "report", "'gpu'"}
    # limit, rate, concurrency, keys, running, throttled, queued, next start
    assert lines["fetch"].split()[2:12] == ["1/h", "per", "key", "-", "2", "2", "1", "key",
                                            "1", "in"]
    assert "in 59m" in lines["fetch"]
    assert lines["crunch"].split()[2:] == ["-", "2", "per", "key", "2", "3", "(1", "key",
                                           "at", "limit)", "-", "1", "-"]
    assert lines["'gpu'"].split()[2:] == ["-", "1", "-", "1/1", "-", "1", "-"]


def test_limits_list_with_no_limits(app: Conveyor, runner: CliRunner, db_url: str) -> None:
    app.tasks["t.record"].enqueue()  # (the database exists)
    result = runner.invoke(cli, ["limits", "list", "--url", db_url])
    assert result.exit_code == 0 and result.output.startswith("no limits:")
    assert data(runner.invoke(cli, ["limits", "list", "--json", "--url", db_url])) == []


def test_queues_list_shows_each_queues_concurrency_limit(limited: Conveyor,
                                                          invoke: Any) -> None:
    limited.tasks["render"].enqueue()
    rows = {row["queue"]: row for row in data(invoke("queues", "list", "--json"))}
    assert rows["gpu"]["concurrency"] == 1 and rows["default"]["concurrency"] is None
    table = invoke("queues", "list").output
    assert "concurrency" in table.splitlines()[1]
    gpu = next(line for line in table.splitlines() if line.startswith("gpu"))
    assert gpu.split() == ["gpu", "running", "fifo", "1", "1", "0", "0", "0"]
    # Lifting the limit (a worker of code without it stores 0) shows no limit.
    limited.backend.set_queue("gpu", concurrency=0)
    rows = {row["queue"]: row for row in data(invoke("queues", "list", "--json"))}
    assert rows["gpu"]["concurrency"] is None


def test_a_real_worker_at_a_concurrency_limit(db_url: str, invoke: Any) -> None:
    """The reason as a worker's own claim leaves it: one job of a task limited to one runs
    (blocked on an Event), the next waits for it."""
    app = Conveyor(db_url, lease_timeout=30.0)
    release = threading.Event()

    @app.task(name="solo", concurrency=1)
    def solo() -> None:
        release.wait(20)

    jobs = [solo.enqueue() for _ in range(2)]
    try:
        with worker_thread(app, concurrency=4):
            wait_until(lambda: any(job.refresh().state is JobState.RUNNING for job in jobs),
                       timeout=10, message="one job running")
            waiting_job = next(job for job in jobs if job.refresh().state is JobState.QUEUED)
            assert waits_of(invoke, waiting_job.id) == [
                "concurrency limit reached: 1 of 1 running (task solo)"]
            release.set()
            wait_until(lambda: all(job.refresh().state is JobState.SUCCEEDED for job in jobs),
                       timeout=10, message="both jobs done")
    finally:
        release.set()
        app.close()
