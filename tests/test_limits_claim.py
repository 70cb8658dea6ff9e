"""Rate and concurrency limits in the claim, on both databases, through the storage layer (no
worker): what one claim may take, that a waiting job uses no attempt and holds back no other
task, keys served in turn, queue limits, and a task's limits changing at registration."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
from databases import query
from helpers import wait_until, worker_thread

from conveyor import Conveyor, InvalidInput
from conveyor.backends import Backend, open_backend
from conveyor.backends.base import ClaimedJob, ClaimPlan, Lease, NewJob, TaskInfo
from conveyor.job import JobState
from conveyor.limits import Rate
from conveyor.outcomes import Succeeded

LIMITED = ClaimPlan(limited=True)


def _register(backend: Backend, name: str, *, rate: Rate | None = None,
              concurrency: int | None = None, keyed: bool = False) -> None:
    backend.register_tasks("w0", [TaskInfo(name, "default", 0, 3, rate, concurrency, keyed)])


def _enqueue(backend: Backend, task: str, count: int, key: str | None = "",
             queue: str = "default") -> list[int]:
    jobs = [NewJob(task, queue, "[]", "{}", limit_key=key) for _ in range(count)]
    return [r.record.id for r in backend.enqueue_many(jobs)]


def _keys(db_url: str, ids: Sequence[int]) -> list[str | None]:
    """The limit keys stored with these jobs, in id order."""
    rows = query(db_url, "SELECT id, limit_key FROM conveyor_jobs ORDER BY id")
    wanted = set(ids)
    return [key for job_id, key in rows if job_id in wanted]


def _claim(backend: Backend, limit: int, *, owner: str = "w1",
           queues: Sequence[str] = ("default",), plan: ClaimPlan = LIMITED
           ) -> list[ClaimedJob]:
    return backend.ack_and_claim((), owner, queues, limit, 30.0, (), plan)[1]


def _finish(backend: Backend, jobs: Sequence[ClaimedJob], owner: str = "w1") -> None:
    now = time.time()
    accepted = backend.ack_many(
        [Succeeded(j.id, j.token, j.attempt, now, now, "null") for j in jobs], owner)
    assert all(accepted)


def test_a_concurrency_limit_caps_running_jobs_across_workers(backend: Backend) -> None:
    _register(backend, "t.pipeline", concurrency=2)
    _enqueue(backend, "t.pipeline", 5)
    first = _claim(backend, 10, owner="w1")
    assert len(first) == 2
    assert _claim(backend, 10, owner="w2") == []  # another worker: the same two slots
    _finish(backend, first[:1])
    again = _claim(backend, 10, owner="w2")
    assert len(again) == 1
    # Waiting jobs used no attempt.
    waiting = backend.inspector.list_jobs(state=JobState.QUEUED)
    assert len(waiting) == 2 and all(job.attempts == 0 for job in waiting)


def test_each_key_has_its_own_concurrency(backend: Backend, db_url: str) -> None:
    _register(backend, "t.participant", concurrency=1, keyed=True)
    for key in ("sub-01", "sub-02", "sub-03"):
        _enqueue(backend, "t.participant", 3, key)
    got = _claim(backend, 10)
    assert sorted(key or "" for key in _keys(db_url, [job.id for job in got])) == [
        "sub-01", "sub-02", "sub-03"]
    assert _claim(backend, 10) == []


def test_a_rate_limit_starts_jobs_an_interval_apart(backend: Backend) -> None:
    _register(backend, "t.download", rate=Rate(5, 1.0))
    _enqueue(backend, "t.download", 4)
    started = time.monotonic()
    assert len(_claim(backend, 10)) == 1  # burst 1
    assert _claim(backend, 10) == []
    due = backend.next_due()
    assert due is not None and 0.0 < due - time.time() <= 0.25  # the next token, not a poll
    wait_until(lambda: len(_claim(backend, 10)) == 1, timeout=5.0, interval=0.02)
    assert time.monotonic() - started >= 0.18  # 0.2 s apart (less a little clock skew)


def test_a_limited_job_holds_back_no_other_task(backend: Backend) -> None:
    _register(backend, "t.limited", concurrency=1)
    _enqueue(backend, "t.limited", 50)  # ahead in the queue
    plain = _enqueue(backend, "t.plain", 3, key=None)
    got = _claim(backend, 10)
    assert len([j for j in got if j.task == "t.limited"]) == 1
    assert sorted(j.id for j in got if j.task == "t.plain") == plain


def test_keys_are_served_in_turn(backend: Backend) -> None:
    _register(backend, "t.tenant", concurrency=100, keyed=True)
    _enqueue(backend, "t.tenant", 40, "A")
    late = _enqueue(backend, "t.tenant", 2, "B")
    got = _claim(backend, 4)
    assert sorted(j.id for j in got if j.id in late) == late  # B is not behind A's 40


def test_many_keys_are_all_served_over_rounds(backend: Backend, db_url: str) -> None:
    _register(backend, "t.tenant", concurrency=1, keyed=True)
    keys = [f"k{i:02d}" for i in range(30)]
    for key in keys:
        _enqueue(backend, "t.tenant", 2, key)
    served: set[str] = set()
    for _ in range(15):  # 2 free slots a round, 30 keys: in turn, each served within 15
        got = _claim(backend, 2)
        served.update(key or "" for key in _keys(db_url, [j.id for j in got]))
        _finish(backend, got)
        if served == set(keys):
            break
    assert served == set(keys)


def test_a_queue_concurrency_limit_holds_on_every_worker(backend: Backend) -> None:
    backend.set_queue("gpu", concurrency=1)
    _enqueue(backend, "t.train", 3, key=None, queue="gpu")
    other = _enqueue(backend, "t.plain", 2, key=None)
    plan = ClaimPlan(capped=frozenset({"gpu"}))
    got = _claim(backend, 10, queues=("gpu", "default"), plan=plan)
    assert sorted(j.queue for j in got) == ["default", "default", "gpu"]
    assert sorted(j.id for j in got if j.queue == "default") == other
    assert _claim(backend, 10, owner="w2", queues=("gpu",), plan=plan) == []
    _finish(backend, [j for j in got if j.queue == "gpu"])
    assert len(_claim(backend, 10, owner="w2", queues=("gpu",), plan=plan)) == 1
    backend.set_queue("gpu", concurrency=0)  # no limit any more
    assert [s.concurrency for s in backend.inspector.queue_settings() if s.name == "gpu"] == [
        None]


def test_a_paused_queue_holds_its_limited_jobs(backend: Backend) -> None:
    _register(backend, "t.limited", concurrency=5)
    _enqueue(backend, "t.limited", 2)
    backend.set_queue("default", paused=True)
    assert _claim(backend, 10) == []
    backend.set_queue("default", paused=False)
    assert len(_claim(backend, 10)) == 2


def test_a_task_gaining_or_losing_limits_moves_its_waiting_jobs(backend: Backend,
                                                                 db_url: str) -> None:
    waiting = _enqueue(backend, "t.later", 4, key=None)  # enqueued before any limit existed
    _register(backend, "t.later", concurrency=1)
    assert set(_keys(db_url, waiting)) == {""}
    assert len(_claim(backend, 10)) == 1
    _register(backend, "t.later")  # the limit is gone from the code
    assert len(_claim(backend, 10, plan=ClaimPlan())) == 3


def test_limits_are_registered_and_read_back(backend: Backend) -> None:
    _register(backend, "t.rated", rate=Rate(10, 60.0), concurrency=3, keyed=True)
    _register(backend, "t.plain")
    [info] = backend.inspector.limited_tasks()
    assert (info.name, info.rate, info.concurrency, info.keyed) == (
        "t.rated", Rate(10, 60.0), 3, True)
    assert backend.inspector.registered_tasks(["t.rated"])["t.rated"] == info


def test_an_enqueue_by_name_takes_the_registered_limits(db_url: str) -> None:
    with Conveyor(db_url) as app:
        _register(app.backend, "elsewhere.unkeyed", concurrency=2)
        _register(app.backend, "elsewhere.keyed", concurrency=1, keyed=True)
        job = app.enqueue("elsewhere.unkeyed")
        assert _keys(db_url, [job.id]) == [""]
        with pytest.raises(InvalidInput, match="keyed by a function of its arguments that "
                                               "this process does not have"):
            app.enqueue("elsewhere.keyed", 1)
        keyed = app.options("elsewhere.keyed", limit_key="sub-01").enqueue(1)
        assert _keys(db_url, [keyed.id]) == ["sub-01"]
        assert sorted(j.id for j in app.inspector.list_jobs()) == sorted([job.id, keyed.id])


def test_a_task_computes_each_job_s_key(db_url: str) -> None:
    with Conveyor(db_url) as app:
        @app.task(name="t.pipeline", concurrency=1, limit_key=lambda participant, **_: participant)
        def pipeline(participant: str, step: int = 0) -> None: ...

        @app.task(name="t.rated", rate_limit="5/s")
        def rated() -> None: ...

        jobs = [pipeline.enqueue("sub-01", step=2).id,
                pipeline.options(limit_key="other").enqueue("sub-01").id, rated.enqueue().id]
        assert _keys(db_url, jobs) == ["sub-01", "other", ""]
        assert pipeline.info == TaskInfo("t.pipeline", "default", 0, 3, None, 1, True)


def test_spent_rate_state_is_pruned(backend: Backend, db_url: str) -> None:
    _register(backend, "t.download", rate=Rate(100, 1.0), keyed=True)
    for key in ("a", "b"):
        _enqueue(backend, "t.download", 1, key)
    assert len(_claim(backend, 10)) == 2
    assert len(query(db_url, "SELECT key FROM conveyor_rate_limits")) == 2
    # Each key's next start is due 10 ms later; until then its row is kept.
    pruned = [0]

    def all_pruned() -> bool:
        pruned[0] += backend.prune_rate_state()
        return pruned[0] == 2

    wait_until(all_pruned, timeout=5.0, interval=0.02)
    assert query(db_url, "SELECT key FROM conveyor_rate_limits") == []


def test_a_key_function_gets_the_arguments_by_name_however_given(db_url: str) -> None:
    with Conveyor(db_url) as app:
        @app.task(name="t.scan", concurrency=1, limit_key=lambda participant, **_: participant)
        def scan(participant: str, session: str, force: bool = False) -> None: ...

        @app.task(name="t.flag", concurrency=1, limit_key=lambda force, **_: str(force))
        def flag(participant: str, force: bool = False) -> None: ...

        jobs = [scan.enqueue("sub-01", "ses-1").id,
                scan.enqueue(participant="sub-02", session="ses-1").id,
                scan.enqueue("sub-03", session="ses-2", force=True).id,
                flag.enqueue("sub-04").id]  # a default is given to the function too
        assert _keys(db_url, jobs) == ["sub-01", "sub-02", "sub-03", "False"]


def test_a_key_given_before_the_task_was_registered_is_dropped_if_it_has_no_limits(
        backend: Backend, db_url: str) -> None:
    keyed = _enqueue(backend, "t.unknown", 2, key="k")  # by name, no worker knew the task yet
    _register(backend, "t.unknown")  # registered without limits: the plain claim takes them
    assert _keys(db_url, keyed) == [None, None]
    assert sorted(j.id for j in _claim(backend, 10, plan=ClaimPlan())) == keyed


def test_a_damaged_limit_row_does_not_stop_the_claim(sqlite_url: str) -> None:
    """SQLite keeps whatever a column is given: text where a rate or a queue's limit belongs
    must not break every claim of every worker (the limit is then not applied, until a
    worker registers the task again)."""
    import sqlite3

    backend = open_backend(sqlite_url)
    try:
        _register(backend, "t.rated", rate=Rate(5, 1.0), concurrency=1)
        backend.set_queue("gpu", concurrency=1)
        _enqueue(backend, "t.rated", 2)
        _enqueue(backend, "t.train", 1, key=None, queue="gpu")
        with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as con:
            con.execute("UPDATE conveyor_tasks SET rate_per = 'soon', concurrency = 'x'")
            con.execute("UPDATE conveyor_queues SET concurrency = 'many'")
        plan = ClaimPlan(limited=True, capped=frozenset({"gpu"}))
        got = _claim(backend, 10, queues=("default", "gpu"), plan=plan)
        assert sorted(j.task for j in got) == ["t.rated", "t.rated", "t.train"]
        # Still listed as limited (its jobs keep waiting where the limited claim looks), its
        # damaged limits read as none.
        [info] = backend.inspector.limited_tasks()
        assert (info.name, info.rate, info.concurrency) == ("t.rated", None, None)
    finally:
        backend.close()


def test_a_key_in_two_queues_is_limited_once(backend: Backend) -> None:
    _register(backend, "t.pipeline", concurrency=1, rate=Rate(1, 60.0))
    _enqueue(backend, "t.pipeline", 2, "k", queue="a")
    _enqueue(backend, "t.pipeline", 2, "k", queue="b")
    assert len(_claim(backend, 10, queues=("a", "b"))) == 1
    assert _claim(backend, 10, queues=("a", "b")) == []


def test_a_keyed_job_is_claimed_after_its_task_lost_its_limits(app: Conveyor) -> None:
    """A retry, or an old enqueuer, can queue a keyed job once no task has limits: workers
    still claim it (without limits), never leave it queued."""
    backend = app.backend
    _register(backend, "t.add")  # registered without limits, before the job comes
    [result] = backend.enqueue_many([NewJob("t.add", "default", "[1, 2]", "{}",
                                            limit_key="tenant")])
    assert backend.inspector.limited_tasks() == []
    assert backend.inspector.limited_jobs_waiting()
    with worker_thread(app):
        assert app.get_job(result.record.id).result(timeout=20) == 3
    assert not backend.inspector.limited_jobs_waiting()


def test_a_worker_whose_limits_are_gone_does_not_wake_for_them(backend: Backend) -> None:
    _register(backend, "t.download", rate=Rate(1, 60.0))
    _enqueue(backend, "t.download", 2)
    assert len(_claim(backend, 10)) == 1
    assert _claim(backend, 10) == []
    due = backend.next_due()
    assert due is not None and due - time.time() > 30  # the next token, a minute away
    _claim(backend, 10, plan=ClaimPlan())  # the limits are gone from this worker's plan
    assert backend.next_due() is None


def test_a_capped_queue_s_plain_and_limited_jobs_take_turns(backend: Backend) -> None:
    backend.set_queue("heavy", concurrency=1)
    _register(backend, "t.pipeline", concurrency=5)
    _enqueue(backend, "t.pipeline", 4, queue="heavy")
    _enqueue(backend, "t.other", 4, key=None, queue="heavy")
    plan = ClaimPlan(limited=True, capped=frozenset({"heavy"}))
    ran: list[str] = []
    for _ in range(4):
        [job] = _claim(backend, 10, queues=("heavy",), plan=plan)
        ran.append(job.task)
        _finish(backend, [job])
    assert sorted(ran) == ["t.other", "t.other", "t.pipeline", "t.pipeline"]


def test_a_ready_key_behind_many_throttled_ones_is_found_without_waiting(
        backend: Backend) -> None:
    _register(backend, "t.tenant", rate=Rate(1, 3600.0), keyed=True)
    for i in range(12):
        _enqueue(backend, "t.tenant", 2, f"k{i:02d}")
    used = 0
    for _ in range(12):  # each key's one token an hour
        used += len(_claim(backend, 1))
    assert used == 12
    [late] = _enqueue(backend, "t.tenant", 1, "zz")  # last in key order, its token free
    rounds = 0
    while not (got := _claim(backend, 1)) and rounds < 20:  # 1 slot: 2 keys read a round
        rounds += 1
        due = backend.next_due()
        # Read on soon (10 ms), not in an hour (the bound leaves room for a loaded machine).
        assert due is not None and due - time.time() < 5.0
    assert [j.id for j in got] == [late] and rounds <= 8
    # Once every key was read and none can start, the worker sleeps until the earliest start.
    for _ in range(10):
        assert _claim(backend, 1) == []
        due = backend.next_due()
        if due is not None and due - time.time() > 60:
            break
    else:
        raise AssertionError("still reading on: the read cycle never ended")


def test_a_read_on_is_still_owed_to_a_caller_that_asks_late(backend: Backend) -> None:
    # On a loaded machine the worker may ask for its next wake-up after the read-on time
    # (10 ms) has passed: it must read on at once, not sleep as if nothing were due.
    _register(backend, "t.tenant", rate=Rate(1, 3600.0), keyed=True)
    for i in range(12):
        _enqueue(backend, "t.tenant", 2, f"k{i:02d}")
    assert sum(len(_claim(backend, 1)) for _ in range(12)) == 12
    _enqueue(backend, "t.tenant", 1, "zz")
    assert _claim(backend, 1) == []  # two keys read, more to read this cycle
    time.sleep(0.05)  # the fault: the caller is late
    due = backend.next_due()
    assert due is not None and due <= time.time()


def test_a_worker_waiting_on_busy_keys_does_not_poll(backend: Backend) -> None:
    """Two keys at their concurrency limit and one free slot (two keys read a round): the
    reads end, and nothing calls the worker back before an ack or its idle recheck."""
    _register(backend, "t.tenant", concurrency=1, keyed=True)
    for key in ("a", "b"):
        _enqueue(backend, "t.tenant", 2, key)
    assert len(_claim(backend, 2, owner="holder")) == 2
    for _ in range(4):
        assert _claim(backend, 1) == []
    assert backend.next_due() is None


def test_a_full_capped_queue_does_not_hold_back_the_key_elsewhere(backend: Backend) -> None:
    backend.set_queue("a", concurrency=1)
    _register(backend, "t.k", concurrency=5)
    _enqueue(backend, "t.busy", 1, key=None, queue="a")
    plan = ClaimPlan(limited=True, capped=frozenset({"a"}))
    assert len(_claim(backend, 1, owner="holder", queues=("a",), plan=plan)) == 1  # a: full
    _enqueue(backend, "t.k", 1, queue="a")
    [elsewhere] = _enqueue(backend, "t.k", 1, queue="b")
    got = _claim(backend, 5, queues=("a", "b"), plan=plan)
    assert [j.id for j in got] == [elsewhere]


def test_a_job_back_in_the_queue_takes_the_limits_its_task_gained(
        backend: Backend, db_url: str) -> None:
    [job] = _enqueue(backend, "t.late", 1, key=None)  # no limits when it was enqueued
    [claimed] = _claim(backend, 1, plan=ClaimPlan())
    _register(backend, "t.late", concurrency=1)  # limits came while it ran
    assert backend.release([Lease(claimed.id, claimed.token)]) == 1  # handed back
    assert _keys(db_url, [job]) == [""]


def test_a_key_function_reads_a_var_keyword_task_s_arguments(db_url: str) -> None:
    with Conveyor(db_url) as app:
        @app.task(name="t.flexible", concurrency=1, limit_key=lambda tenant, **_: tenant)
        def flexible(**kwargs: object) -> None: ...

        assert _keys(db_url, [flexible.enqueue(tenant="acme", size=3).id]) == ["acme"]
