"""Queue controls: pause and resume (a condition of the claim, honoured by every worker), LIFO
queues, weighted queues; their CLI (`conveyor queues`, `conveyor worker -q high:3,...`)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helpers import (
    assert_usage_error,
    claim,
    kill_all,
    read_executions,
    spawn_worker,
    wait_until,
    worker_thread,
)

from conveyor import ConfigurationError, Conveyor, InvalidInput, Worker
from conveyor.backends import Backend
from conveyor.backends.base import ClaimedJob, ClaimPlan, NewJob
from conveyor.cli import cli
from conveyor.fairshare import FairShare
from conveyor.job import JobState
from conveyor.outcomes import Outcome
from conveyor.worker.dispatcher import IDLE_RECHECK


def _jobs(backend: Backend, queue: str, count: int, priority: int = 0) -> list[int]:
    """`count` jobs on `queue`, one transaction each (so each has its own, later run_at)."""
    return [backend.enqueue_many([NewJob("t.record", queue, "[]", "{}", priority=priority)])[0]
            .record.id for _ in range(count)]


def _started(log: Path) -> list[int]:
    """Job ids in the order their executions started, from the task's own log."""
    return [run.job_id for run in sorted(read_executions(log), key=lambda run: run.start)]


def _ran(log: Path, job: int) -> bool:
    return job in _started(log)


# -- storage: the claim statement honours pause, LIFO and weights ------------------------------


def test_a_paused_queue_is_skipped_by_the_claim_itself(backend: Backend) -> None:
    paused = _jobs(backend, "held", 3)
    running = _jobs(backend, "open", 3)
    backend.set_queue("held", paused=True)
    got = claim(backend, "w1", ["held", "open"], 10, lease=30)
    assert sorted(job.id for job in got) == running
    assert claim(backend, "w1", ["held"], 10, lease=30) == []
    backend.set_queue("held", paused=False)
    assert sorted(job.id for job in claim(backend, "w1", ["held"], 10, lease=30)) == paused


def test_a_paused_queue_is_skipped_by_a_claim_over_many_queues(backend: Backend) -> None:
    # Past the SQLite dialect's one-term-per-queue limit the queues arrive as one list.
    queues = [f"q{n}" for n in range(150)]
    held = _jobs(backend, "q7", 2)
    backend.set_queue("q7", paused=True)
    assert claim(backend, "w1", queues, 10, lease=30) == []
    backend.set_queue("q7", paused=False)
    assert sorted(job.id for job in claim(backend, "w1", queues, 10, lease=30)) == held


def test_set_queue_keeps_what_it_is_not_given(backend: Backend) -> None:
    assert backend.inspector.queue_settings() == []
    backend.set_queue("media", lifo=True)
    backend.set_queue("media", paused=True)
    (media,) = backend.inspector.queue_settings()
    assert (media.name, media.paused, media.lifo) == ("media", True, True)
    backend.set_queue("media", paused=False)
    (media,) = backend.inspector.queue_settings()
    assert (media.paused, media.lifo) == (False, True)


def test_runnable_queues_leave_paused_ones_out(backend: Backend) -> None:
    _jobs(backend, "a", 1)
    _jobs(backend, "b", 1)
    backend.set_queue("a", paused=True)
    assert backend.inspector.runnable_queues() == ["b"]


def test_a_lifo_claim_takes_the_newest_of_the_best_priority(backend: Backend) -> None:
    old = _jobs(backend, "recent", 4)
    urgent = _jobs(backend, "recent", 2, priority=-5)
    newest = _jobs(backend, "recent", 1)
    fifo = _jobs(backend, "plain", 2)
    plan = ClaimPlan(lifo=frozenset({"recent"}))
    assert [j.id for j in claim_plan(backend, ["recent"], 1, plan)] == [urgent[1]]
    assert [j.id for j in claim_plan(backend, ["recent"], 5, plan)] == [urgent[0]]
    assert [j.id for j in claim_plan(backend, ["recent"], 1, plan)] == newest
    assert {j.id for j in claim_plan(backend, ["recent"], 2, plan)} == {old[3], old[2]}
    # A FIFO queue keeps its order under a plan that names another queue LIFO.
    assert [j.id for j in claim_plan(backend, ["plain"], 1, plan)] == fifo[:1]


def claim_plan(backend: Backend, queues: Sequence[str], limit: int,
               plan: ClaimPlan) -> list[ClaimedJob]:
    return backend.ack_and_claim((), "w1", queues, limit, 30, (), plan)[1]


def test_a_weighted_claim_orders_candidates_by_their_shares(backend: Backend) -> None:
    high = _jobs(backend, "high", 10)
    low = _jobs(backend, "low", 10)
    plan = ClaimPlan(weights={"high": 3, "low": 1}, starts={"high": 0.0, "low": 0.0})
    got = claim_plan(backend, ["high", "low"], 4, plan)
    # Shares: high 1/3, 2/3, 1, 4/3...; low 1, 2...: three of high for one of low.
    assert sorted(j.id for j in got) == sorted(high[:3] + low[:1])
    # Carried shares decide small rounds: low is behind, so it goes first.
    behind = ClaimPlan(weights={"high": 3, "low": 1}, starts={"high": 2.0, "low": 0.0})
    assert [j.id for j in claim_plan(backend, ["high", "low"], 1, behind)] == [low[1]]
    # Within a queue, priority still comes first.
    (urgent,) = _jobs(backend, "low", 1, priority=-1)
    assert [j.id for j in claim_plan(backend, ["low"], 1, behind)] == [urgent]


# -- the pure bookkeeping of weights -------------------------------------------------------------


def _pick(fair: FairShare, available: dict[str, int]) -> str:
    """What a one-slot weighted claim takes: the smallest share, the first queue on a tie."""
    starts = fair.starts()
    queue = min((q for q in fair.weights if available.get(q)),
                key=lambda q: (starts[q] + 1 / fair.weights[q], list(fair.weights).index(q)))
    fair.claimed({queue: 1}, 1)
    return queue


def test_fair_share_alternates_by_weight_in_rounds_of_one() -> None:
    fair = FairShare({"high": 3, "default": 1})
    order = "".join(_pick(fair, {"high": 1, "default": 1})[0] for _ in range(12))
    assert order == "hhhd" * 3


def test_an_idle_queue_builds_no_credit() -> None:
    fair = FairShare({"high": 3, "default": 1})
    for _ in range(50):  # high has nothing for a while: default runs alone
        assert _pick(fair, {"default": 1}) == "default"
    order = "".join(_pick(fair, {"high": 1, "default": 1})[0] for _ in range(8))
    assert order.count("d") == 2  # not 50 jobs of high first


# -- pause and resume, honoured by a worker in another process --------------------------------


def test_a_paused_queue_waits_and_a_resume_wakes_workers_elsewhere(
    app: Conveyor, db_url: str, exec_log: Path, tmp_path: Path
) -> None:
    record = app.tasks["t.record"]
    app.pause_queue("held")
    held = [record.options(queue="held").enqueue().id for _ in range(3)]
    procs = [spawn_worker(db_url, tmp_path / "worker.err", "-q", "held,open", "-c", "2",
                          log=exec_log)]
    try:
        for _ in range(2):  # the worker claims and runs jobs of the other queue meanwhile
            marker = record.options(queue="open").enqueue().id
            wait_until(partial(_ran, exec_log, marker), message="a job of 'open'")
            held.append(record.options(queue="held").enqueue().id)  # a paused queue takes jobs
        assert not set(held) & set(_started(exec_log))
        assert app.get_job(held[0]).record.state is JobState.QUEUED
        resumed = time.time()
        app.resume_queue("held")
        wait_until(lambda: set(held) & set(_started(exec_log)), timeout=IDLE_RECHECK,
                   message="a job of the resumed queue")
        first = min(run.start for run in read_executions(exec_log) if run.job_id in held)
        # Woken by the resume, not found by the look a waiting worker takes every second.
        assert first - resumed < IDLE_RECHECK / 2, first - resumed
        wait_until(lambda: set(held) <= set(_started(exec_log)), message="every held job")
    finally:
        kill_all(procs)


class CountingBackend:
    """A real backend that counts the claims made through it."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner
        self.claims = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def ack_and_claim(self, outcomes: Sequence[Outcome], owner: str, queues: Sequence[str],
                      limit: int, *args: Any) -> tuple[list[bool], list[ClaimedJob]]:
        if limit > 0:
            self.claims += 1
        return self._inner.ack_and_claim(outcomes, owner, queues, limit, *args)


def test_a_worker_whose_queues_are_all_paused_does_not_spin(db_url: str) -> None:
    from jobs_app import make_app

    inner = make_app(db_url).backend
    counting = CountingBackend(inner)
    app = make_app(db_url, backend=counting)
    try:
        app.pause_queue("held")
        for _ in range(5):
            app.tasks["t.record"].options(queue="held").enqueue()
        with worker_thread(app, queues=["held"], concurrency=4):
            before = counting.claims
            window = 2.5
            time.sleep(window)  # measuring a rate over a window, not waiting for an event
            rounds = counting.claims - before
        # An idle worker claims once per IDLE_RECHECK; a spinning one thousands of times.
        assert rounds <= window / IDLE_RECHECK + 3, rounds
        assert all(r.state is JobState.QUEUED
                   for r in app.inspector.list_jobs(queue="held"))
    finally:
        app.close()
        inner.close()


# -- LIFO ----------------------------------------------------------------------------------------


def test_a_lifo_queue_runs_newest_first_and_priority_still_wins(
    app: Conveyor, exec_log: Path
) -> None:
    app.queue("recent", order="lifo")
    record = app.tasks["t.record"]
    plain = [record.options(queue="recent").enqueue().id for _ in range(5)]
    urgent = record.options(queue="recent", priority=-1).enqueue().id
    with worker_thread(app, queues=["recent"], concurrency=1, burst=True):
        wait_until(lambda: len(_started(exec_log)) == 6, message="every job")
    assert _started(exec_log) == [urgent, *reversed(plain)]
    (stored,) = app.queue_settings()
    assert (stored.name, stored.lifo, stored.paused) == ("recent", True, False)


def test_a_fifo_queue_still_runs_oldest_first(app: Conveyor, exec_log: Path) -> None:
    record = app.tasks["t.record"]
    jobs = [record.enqueue().id for _ in range(4)]
    with worker_thread(app, queues=["default"], concurrency=1, burst=True):
        wait_until(lambda: len(_started(exec_log)) == 4, message="every job")
    assert _started(exec_log) == jobs


def test_a_lifo_worker_with_many_slots_does_not_idle_between_priorities(
    app: Conveyor, exec_log: Path
) -> None:
    # Each round gives one priority's jobs; the worker must claim again at once, not wait
    # IDLE_RECHECK for a job to end, while jobs remain.
    app.queue("recent", order="lifo")
    record = app.tasks["t.record"]
    jobs = [record.options(queue="recent", priority=p).enqueue(sleep=3.0).id
            for p in range(6)]
    with worker_thread(app, queues=["recent"], concurrency=8):
        wait_until(lambda: set(jobs) <= set(_started(exec_log)), message="every job")
    starts = [run.start for run in read_executions(exec_log)]
    assert max(starts) - min(starts) < IDLE_RECHECK / 2, starts
    assert _started(exec_log) == jobs  # by priority


# -- weights -------------------------------------------------------------------------------------


def test_weighted_queues_share_about_three_to_one_and_never_starve(
    app: Conveyor, db_url: str, exec_log: Path, tmp_path: Path
) -> None:
    record = app.tasks["t.record"]
    queue_of: dict[int, str] = {}
    for queue in ("high", "default"):
        jobs = app.enqueue_many(record.options(queue=queue).prepare() for _ in range(420))
        queue_of.update((job.id, queue) for job in jobs)
    procs = [spawn_worker(db_url, tmp_path / "worker.err", "-q", "high:3,default:1",
                          "-c", "1", log=exec_log)]
    try:
        wait_until(lambda: len(_started(exec_log)) >= 400, timeout=120,
                   message="400 executions")
    finally:
        kill_all(procs)
    first = [queue_of[job] for job in _started(exec_log)[:400]]
    high, default = first.count("high"), first.count("default")
    assert 3 * 0.8 <= high / default <= 3 * 1.2, (high, default)
    windows = [first[i:i + 20] for i in range(0, 400, 20)]
    assert all("default" in window for window in windows), windows


def test_worker_queue_weights(app: Conveyor) -> None:
    worker = Worker(app, queues=["high:3", "default"])
    assert worker.queues == ("high", "default")
    assert worker.weights == {"high": 3, "default": 1}
    assert Worker(app, queues="a,b").weights == {}


@pytest.mark.parametrize("spec", ["high:0", "high:x", "high:", "high:1001", "high:-1"])
def test_bad_weights_are_refused(app: Conveyor, spec: str) -> None:
    with pytest.raises(InvalidInput, match="weight after ':' must be an int from 1 to 1000"):
        Worker(app, queues=[spec, "default"])


# -- declaring queues ----------------------------------------------------------------------------


def test_queue_declarations_are_checked(app: Conveyor) -> None:
    assert app.queue("recent", order="lifo").lifo
    app.queue("recent", order="lifo")  # the same again: fine
    with pytest.raises(ConfigurationError, match="'recent' is declared twice"):
        app.queue("recent")
    with pytest.raises(ConfigurationError, match="order must be 'fifo' or 'lifo', got 'newest'"):
        app.queue("other", order="newest")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="may only contain"):
        app.queue("no spaces")
    for bad in (0, -1, 2.5, True, "2"):
        with pytest.raises(InvalidInput, match=r"queue 'other': concurrency must be an int "
                                               r"from 1 to 100000"):
            app.queue("other", concurrency=bad)  # type: ignore[arg-type]
    assert app.queue("gpu", concurrency=1).concurrency == 1
    with pytest.raises(InvalidInput, match="may only contain"):
        app.pause_queue("no spaces")
    assert dict(app.queues) == {"recent": app.queue("recent", order="lifo"),
                                "gpu": app.queue("gpu", concurrency=1)}


# -- the CLI -------------------------------------------------------------------------------------


@pytest.fixture
def invoke(runner: CliRunner, db_url: str) -> Any:
    def run(*args: str) -> Result:
        return runner.invoke(cli, [*args, "--url", db_url])

    return run


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_pause_list_resume(invoke: Any, app: Conveyor) -> None:
    record = app.tasks["t.record"]
    queued = record.options(queue="media").enqueue().id
    record.options(queue="media", delay=600).enqueue()
    app.queue("recent", order="lifo")
    app.backend.set_queue("recent", lifo=True)
    assert _json(invoke("queues", "pause", "media", "--json")) == {
        "queue": "media", "paused": True}
    rows = {row["queue"]: row for row in _json(invoke("queues", "list", "--json"))}
    assert rows["media"] == {"queue": "media", "paused": True, "order": "fifo",
                             "concurrency": None,
                             "counts": {"queued": 1, "scheduled": 1, "waiting": 0,
                                        "running": 0}}
    assert rows["recent"]["order"] == "lifo" and not rows["recent"]["paused"]
    table = invoke("queues", "list")
    assert table.exit_code == 0 and "paused" in table.output and "lifo" in table.output
    show = invoke("jobs", "show", str(queued))
    assert show.exit_code == 0 and "queue paused" in show.output
    assert _json(invoke("jobs", "show", str(queued), "--json"))["queue_paused"] is True
    status = invoke("status")
    assert status.exit_code == 0 and "queue paused" in status.output
    assert {q["queue"]: q["paused"] for q in _json(invoke("status", "--json"))["queues"]} == {
        "media": True}
    resumed = invoke("queues", "resume", "media")
    assert resumed.exit_code == 0 and "queue 'media' resumed" in resumed.output
    assert not {row["queue"]: row for row in _json(invoke("queues", "list", "--json"))}[
        "media"]["paused"]
    assert _json(invoke("jobs", "show", str(queued), "--json"))["queue_paused"] is False


def test_cli_lists_the_queues_of_registered_tasks(invoke: Any, app: Conveyor) -> None:
    app.backend.register_tasks("w1", [app.tasks["t.record"].info])
    rows = _json(invoke("queues", "list", "--json"))
    assert rows == [{"queue": "default", "paused": False, "order": "fifo",
                     "concurrency": None,
                     "counts": {"queued": 0, "scheduled": 0, "waiting": 0, "running": 0}}]
    paused = invoke("queues", "pause", "default")
    assert paused.exit_code == 0 and "no job or task uses" not in paused.stderr


def test_cli_pausing_an_unused_queue_notes_it(invoke: Any, app: Conveyor) -> None:
    assert app.queue_settings() == []  # (the database exists)
    result = invoke("queues", "pause", "nobody")
    assert result.exit_code == 0, result.output
    assert "queue 'nobody' paused" in result.stdout
    assert "no job or task uses queue 'nobody'" in result.stderr
    assert [s.name for s in app.queue_settings() if s.paused] == ["nobody"]
    notes = invoke("queues", "resume", "nobody", "--json")
    assert json.loads(notes.stdout) == {"queue": "nobody", "paused": False}
    assert "no job or task uses" in json.loads(notes.stderr.splitlines()[0])["note"]


@pytest.mark.parametrize("command", ["pause", "resume"])
def test_cli_refuses_a_bad_queue_name(invoke: Any, app: Conveyor, command: str) -> None:
    assert_usage_error(invoke("queues", command, "no spaces"), "may only contain")
    assert app.queue_settings() == []


@pytest.mark.parametrize("spec", ["high:0", "high:x", "high:"])
def test_cli_worker_refuses_bad_weights(invoke: Any, spec: str) -> None:
    assert_usage_error(invoke("worker", "-A", "jobs_app:app", "-q", f"{spec},default:1",
                              "--burst"),
                       "the weight after ':' must be an int from 1 to 1000")


def test_cli_worker_runs_weighted_queues(invoke: Any, app: Conveyor, exec_log: Path) -> None:
    record = app.tasks["t.record"]
    jobs = [record.options(queue=q).enqueue().id for q in ("high", "default", "high")]
    result = invoke("worker", "-A", "jobs_app:app", "-q", "high:3,default:1", "-c", "1",
                    "--burst")
    assert result.exit_code == 0, result.output
    assert sorted(_started(exec_log)) == sorted(jobs)
