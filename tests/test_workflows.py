"""Workflows on both backends, run by a real worker: chains, groups, chords and their nesting,
`depends_on`, failure policies, callbacks, cancel and retry, result reuse, and atomic enqueue.
What ran, and in which order, is read from the log the tasks write themselves."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from helpers import read_executions, wait_until, worker_thread

import conveyor
from conveyor import Conveyor, JobState
from conveyor.errors import InvalidInput, JobCancelled, JobFailed


def _order(log: Path) -> dict[int, tuple[float, float | None]]:
    """Each job's (start, end) from the execution log (its last attempt)."""
    return {run.job_id: (run.start, run.end) for run in read_executions(log)}


def _after(log: Path, parent: int, child: int) -> bool:
    runs = _order(log)
    end = runs[parent][1]
    return end is not None and runs[child][0] >= end


def test_a_chain_passes_each_result_on(wapp: Conveyor, exec_log: Path) -> None:
    add, double = wapp.tasks["w.add"], wapp.tasks["w.double"]
    flow = conveyor.chain(add.s(1, 2), double.s(), double.s()).enqueue()
    assert flow.progress == {JobState.QUEUED: 1, JobState.WAITING: 2}
    first, second, third = flow.jobs
    assert (second.state, second.record.pending_parents) == (JobState.WAITING, 1)
    with worker_thread(wapp, concurrency=4):
        assert flow.result(timeout=20) == 12
    assert flow.refresh().state == "succeeded"
    assert [job.refresh().args for job in flow.jobs] == [[1, 2], [3], [6]]
    assert _after(exec_log, first.id, second.id) and _after(exec_log, second.id, third.id)
    assert wapp.get_workflow(flow.id).result(timeout=1) == 12


def test_a_group_of_100_runs_side_by_side_and_gives_a_list(wapp: Conveyor) -> None:
    double = wapp.tasks["w.double"]
    flow = conveyor.group([double.s(i) for i in range(100)]).enqueue()
    assert flow.progress == {JobState.QUEUED: 100}
    with worker_thread(wapp, concurrency=8):
        assert flow.result(timeout=30) == [2 * i for i in range(100)]


def test_nesting_a_chain_of_groups_a_chord_and_an_immutable_step(
        wapp: Conveyor, exec_log: Path) -> None:
    add, double, total, echo = (wapp.tasks[n] for n in ("w.add", "w.double", "w.total",
                                                          "w.echo"))
    flow = conveyor.chain(
        add.s(1, 1),                                        # 2
        conveyor.group([double.s(), add.s(10)]),            # [4, 12]
        total.s(),                                          # 16 (a step after a group)
        conveyor.chord([double.s(), add.s(1)], total.s()),  # [32, 17] -> 49
        echo.si("done"),                                    # ignores 49
    ).enqueue()
    with worker_thread(wapp, concurrency=4):
        assert flow.result(timeout=30) == [["done"], {}]
    results = [job.refresh().record.result for job in flow.jobs]
    assert results == [2, 4, 12, 16, 32, 17, 49, [["done"], {}]]
    runs = _order(exec_log)
    ids = [job.id for job in flow.jobs]
    assert runs[ids[3]][0] >= max(runs[ids[1]][1] or 0, runs[ids[2]][1] or 0)


def test_a_chord_callback_gets_every_result_in_member_order(wapp: Conveyor) -> None:
    double, total, echo = wapp.tasks["w.double"], wapp.tasks["w.total"], wapp.tasks["w.echo"]
    flow = conveyor.chord([double.s(i) for i in range(20)], echo.s("tail")).enqueue()
    callback = flow.jobs[-1]
    assert callback.refresh().args == [None, "tail"]  # fed once every member ended
    with worker_thread(wapp, concurrency=4):
        assert flow.result(timeout=30) == [[[2 * i for i in range(20)], "tail"], {}]
    summed = conveyor.chord(conveyor.group([double.s(1), double.s(2)]), total.s()).enqueue()
    with worker_thread(wapp):
        assert summed.result(timeout=20) == 6


def test_depends_on_waits_for_every_parent(wapp: Conveyor, exec_log: Path) -> None:
    slow, node = wapp.tasks["w.slow"], wapp.tasks["w.node"]
    a, b = slow.enqueue(1), node.enqueue(2)
    child = node.options(depends_on=[a, b.id]).enqueue(3)
    assert child.state is JobState.WAITING and child.record.pending_parents == 2
    assert wapp.inspector.job_links(child.id) == (
        [conveyor.JobLink(a.id, "w.slow", JobState.QUEUED),
         conveyor.JobLink(b.id, "w.node", JobState.QUEUED)], [])
    with worker_thread(wapp, concurrency=4):
        assert child.result(timeout=20) == 3
    assert _after(exec_log, a.id, child.id) and _after(exec_log, b.id, child.id)
    # A parent that already succeeded counts as ended at once.
    late = node.options(depends_on=a).enqueue(4)
    assert late.state is JobState.QUEUED


def test_a_failed_parent_cancels_its_dependents_by_default(wapp: Conveyor) -> None:
    fail, node, double = wapp.tasks["w.fail"], wapp.tasks["w.node"], wapp.tasks["w.double"]
    flow = conveyor.chain(fail.s(), double.s(), double.s()).enqueue()
    with worker_thread(wapp), pytest.raises(JobFailed, match="boom") as failed:
        flow.result(timeout=20)  # (the failure its result was cancelled for)
    assert failed.value.job_id == flow.jobs[0].id
    states = [job.refresh().state for job in flow.jobs]
    assert states == [JobState.FAILED, JobState.CANCELLED, JobState.CANCELLED]
    assert flow.jobs[1].error is not None and flow.jobs[2].error is not None
    assert flow.jobs[1].error.message == f"dependency {flow.jobs[0].id} failed"
    assert flow.jobs[2].error.message == f"dependency {flow.jobs[1].id} was cancelled"
    assert flow.refresh().state == "failed"
    # Cancelling a parent cancels a job that depends on it, too.
    parent = node.options(delay=60).enqueue(1)
    child = node.options(depends_on=[parent]).enqueue(2)
    parent.cancel()
    assert child.refresh().state is JobState.CANCELLED


def test_the_run_policy_feeds_a_failed_member_s_error(wapp: Conveyor) -> None:
    fail, double, echo = wapp.tasks["w.fail"], wapp.tasks["w.double"], wapp.tasks["w.echo"]
    flow = conveyor.chord([double.s(1), fail.s(), double.s(3)], echo.s()).enqueue(
        on_parent_failure="run")
    failed = flow.jobs[1].id if flow.jobs[1].task == "w.fail" else None
    with worker_thread(wapp, concurrency=2):
        [[values], _] = flow.result(timeout=20)
    failed = next(job.id for job in flow.jobs if job.task == "w.fail")
    assert values == [2, {"job": failed, "state": "failed",
                          "error": {"type": "ValueError", "message": "boom"}}, 6]
    assert flow.refresh().state == "succeeded"


def test_callbacks_on_success_and_on_failure(wapp: Conveyor) -> None:
    add, fail, echo = wapp.tasks["w.add"], wapp.tasks["w.fail"], wapp.tasks["w.echo"]
    good = add.options(on_success=echo.s("ok"), on_failure=echo.s("alert")).enqueue(2, 3)
    bad = fail.options(on_success=echo.s("ok"), on_failure=echo.s("alert")).enqueue()
    with worker_thread(wapp):
        wait_until(lambda: len(wapp.inspector.list_jobs(task="w.echo", state=JobState.SUCCEEDED))
                   == 2, message="both callbacks")
    by_parent = {}
    for parent in (good, bad):
        _, children = wapp.inspector.job_links(parent.id)
        assert len(children) == 1  # exactly one of its two callbacks ran
        by_parent[parent.id] = wapp.get_job(children[0].id).result(timeout=1)
    assert by_parent[good.id] == [[5, "ok"], {}]
    assert by_parent[bad.id] == [[bad.id, {"type": "ValueError", "message": "boom"}, "alert"],
                                 {}]


def test_cancelling_a_workflow_cancels_what_has_not_run(wapp: Conveyor) -> None:
    double, node = wapp.tasks["w.double"], wapp.tasks["w.node"]
    flow = conveyor.chain(double.s(1), conveyor.group([double.s(), double.s()]),
                          node.s(1)).enqueue()
    outside = node.options(depends_on=[flow.jobs[-1]]).enqueue(9)
    assert flow.cancel() == "cancelled"
    assert all(job.refresh().state is JobState.CANCELLED for job in flow.jobs)
    assert outside.refresh().state is JobState.CANCELLED
    with pytest.raises(JobCancelled):
        flow.result(timeout=1)


def test_retrying_a_failed_member_resumes_the_workflow(wapp: Conveyor) -> None:
    fail, double, echo = wapp.tasks["w.fail"], wapp.tasks["w.double"], wapp.tasks["w.echo"]
    flow = conveyor.chain(echo.s(1), fail.s(), double.si(5), echo.s()).enqueue()
    with worker_thread(wapp):
        wait_until(lambda: flow.refresh().state != "running", message="workflow end")
    assert [job.state for job in flow.jobs] == [
        JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.CANCELLED]
    failed = flow.jobs[1]
    # (No worker runs now: one could run the retried job, and fail it again, before the
    # states below are read.)
    assert wapp.retry([failed.id]) == [failed.id]
    assert [job.refresh().state for job in flow.jobs[2:]] == [JobState.WAITING] * 2
    with worker_thread(wapp):
        # Fails again (the task always fails): its dependents are cancelled again, once.
        wait_until(lambda: flow.refresh().state != "running", message="workflow end")
    assert [job.state for job in flow.jobs[2:]] == [JobState.CANCELLED] * 2


def test_a_retried_member_that_succeeds_completes_the_workflow(wapp: Conveyor) -> None:
    slow, double = wapp.tasks["w.slow"], wapp.tasks["w.double"]
    flow = conveyor.chain(slow.s(3), double.s()).enqueue()
    first = flow.jobs[0]
    assert wapp.cancel(first.id) is JobState.CANCELLED
    assert flow.jobs[1].refresh().state is JobState.CANCELLED
    assert wapp.retry([first.id]) == [first.id]
    assert flow.jobs[1].refresh().state is JobState.WAITING
    with worker_thread(wapp):
        assert flow.result(timeout=20) == 6


def test_result_reuse_within_and_after_the_window(wapp: Conveyor, db_url: str) -> None:
    double = wapp.tasks["w.double"]
    first = double.options(unique_key="sub-01/ses-1", reuse_for=timedelta(days=30)).enqueue(4)
    with worker_thread(wapp):
        assert first.result(timeout=20) == 8
    again = double.options(unique_key="sub-01/ses-1", reuse_for=timedelta(days=30)).enqueue(4)
    assert (again.id, again.state, again.record.result) == (first.id, JobState.SUCCEEDED, 8)
    # A chain whose first step is reused starts at its second.
    flow = conveyor.chain(double.options(unique_key="sub-01/ses-1", reuse_for=3600).s(4),
                          double.s()).enqueue()
    assert flow.jobs[0].id == first.id and flow.jobs[1].state is JobState.QUEUED
    with worker_thread(wapp):
        assert flow.result(timeout=20) == 16
    # Outside the window (the job finished long ago), it runs again.
    _age(db_url, first.id, 31 * 86400)
    later = double.options(unique_key="sub-01/ses-1", reuse_for=timedelta(days=30)).enqueue(4)
    assert later.id != first.id and later.state is JobState.QUEUED
    # Without reuse_for, a finished job's key is free as before.
    plain = double.options(unique_key="other").enqueue(1)
    with worker_thread(wapp):
        plain.result(timeout=20)
    assert double.options(unique_key="other").enqueue(1).id != plain.id


def _age(db_url: str, job_id: int, seconds: float) -> None:
    from databases import execute
    marker = "?" if db_url.startswith("sqlite") else "%s"
    execute(db_url, f"UPDATE conveyor_jobs SET finished_at = finished_at - {marker} "
                    f"WHERE id = {marker}", (seconds, job_id))


def test_a_workflow_whose_enqueue_fails_halfway_stores_nothing(
        wapp: Conveyor, db_url: str) -> None:
    from databases import execute, query
    double, node = wapp.tasks["w.double"], wapp.tasks["w.node"]
    # The database refuses the last step's row, after the others were written.
    wapp.inspector.list_jobs()  # (the tables exist)
    if db_url.startswith("sqlite"):
        execute(db_url, "CREATE TRIGGER refuse BEFORE INSERT ON conveyor_jobs "
                        "WHEN NEW.task = 'w.node' BEGIN SELECT RAISE(ABORT, 'refused'); END")
    else:
        execute(db_url, "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
                        "BEGIN IF NEW.task = 'w.node' THEN RAISE EXCEPTION 'refused'; END IF; "
                        "RETURN NEW; END $$")
        execute(db_url, "CREATE TRIGGER refuse BEFORE INSERT ON conveyor_jobs "
                        "FOR EACH ROW EXECUTE FUNCTION refuse()")
    broken = conveyor.chain(conveyor.group([double.s(1), double.s(2)]), double.s(),
                            node.s(1))
    with pytest.raises(Exception, match="refused"):
        broken.enqueue()
    with pytest.raises(InvalidInput, match="depends_on names job 999999"):
        double.options(depends_on=[wapp.tasks["w.add"].enqueue(1, 1), 999999]).enqueue(1)
    assert query(db_url, "SELECT task FROM conveyor_jobs") == [("w.add",)]
    assert query(db_url, "SELECT count(*) FROM conveyor_edges") == [(0,)]
    assert query(db_url, "SELECT count(*) FROM conveyor_workflows") == [(0,)]


def test_a_job_never_waits_for_itself(wapp: Conveyor) -> None:
    """depends_on names stored jobs only, so a new job comes after them and no cycle can be
    written; the one way to name itself (its unique key held by the parent) returns the
    holder, which waits for nothing."""
    node = wapp.tasks["w.node"]
    first = node.options(unique_key="k").enqueue(1)
    again = node.options(unique_key="k", depends_on=[first]).enqueue(1)
    assert again.id == first.id and again.state is JobState.QUEUED
    assert wapp.inspector.job_links(first.id) == ([], [])


def test_bad_workflows_are_refused_with_a_clear_message(wapp: Conveyor) -> None:
    double = wapp.tasks["w.double"]
    with pytest.raises(InvalidInput, match="a chord needs at least one member"):
        conveyor.chord([], double.s())
    with pytest.raises(InvalidInput, match="callback must be a signature"):
        conveyor.chord([double.s(1)], "w.double")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="on_success must be a signature"):
        double.options(on_success=print)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"no task named .w\.nobody."):
        conveyor.chain(double.s(1), wapp.signature("w.nobody")).enqueue()
    with pytest.raises(InvalidInput, match="a workflow's name is printable text"):
        conveyor.chain(double.s(1)).enqueue(name="")
    assert conveyor.chain(double.s(1)).enqueue(name="my run 1").name == "my run 1"
    wapp.delete([job.id for job in wapp.inspector.list_jobs()])
    with pytest.raises(InvalidInput, match="takes jobs"):
        double.options(depends_on=["12"])  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match=r"reuse_for.*unique_key"):
        double.options(reuse_for=60)
    with pytest.raises(InvalidInput, match="double"):
        conveyor.chain(double.s(1, 2)).enqueue()  # (too many arguments, checked at enqueue)
    assert wapp.inspector.list_jobs() == []


def test_a_parent_that_gained_children_while_running_releases_them(
        wapp: Conveyor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker claimed the parent before it had children: its ack finds them (the plain
    ack refuses a job with followers, and the store acks it again, releasing them)."""
    gate = tmp_path / "gate"
    monkeypatch.setenv("CONVEYOR_TEST_GATE", str(gate))
    slow, fail, node = wapp.tasks["w.slow"], wapp.tasks["w.fail"], wapp.tasks["w.node"]
    parent = slow.enqueue(5)
    with worker_thread(wapp, concurrency=2):
        wait_until(lambda: parent.refresh().state is JobState.RUNNING, message="parent runs")
        child = node.options(depends_on=[parent]).enqueue(1)
        assert child.state is JobState.WAITING
        gate.touch()
        assert child.result(timeout=20) == 1
        # The same for a parent that fails: its dependents are cancelled at its end.
        failing = fail.options(delay=0.3).enqueue()
        blocked = node.options(depends_on=[failing]).enqueue(2)
        wait_until(lambda: blocked.refresh().state is JobState.CANCELLED,
                   message="dependent of a failed job cancelled")


def test_pruning_a_finished_workflow_s_jobs_forgets_the_workflow(
        wapp: Conveyor, db_url: str) -> None:
    from databases import execute
    double = wapp.tasks["w.double"]
    flow = conveyor.chain(double.s(1), double.s()).enqueue()
    with worker_thread(wapp):
        flow.result(timeout=20)
        kept = conveyor.chain(double.s(1), double.s()).enqueue()  # (ends after flow)
        kept.result(timeout=20)
    execute(db_url, "UPDATE conveyor_workflows SET created_at = created_at - 120")
    wapp.prune({"succeeded": 0}, max_rows=2)  # flow's two jobs only (the oldest)
    assert [s.id for s in wapp.workflows()] == [kept.id]
    with pytest.raises(conveyor.JobNotFound, match=f"no workflow with id {flow.id}"):
        wapp.get_workflow(flow.id)
    assert kept.refresh().state == "succeeded"


def test_a_chord_of_a_group_and_a_job_feeds_a_nested_list(wapp: Conveyor) -> None:
    double, echo = wapp.tasks["w.double"], wapp.tasks["w.echo"]
    flow = conveyor.chord([conveyor.group([double.s(1), double.s(2)]), double.s(3)],
                          echo.s()).enqueue()
    with worker_thread(wapp, concurrency=2):
        assert flow.result(timeout=20) == [[[[2, 4], 6]], {}]
