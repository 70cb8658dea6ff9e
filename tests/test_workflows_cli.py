"""Workflows seen by operators (issue 12), in-process (CliRunner) on both backends: the
`waiting` state in `status`, `queues list` and `jobs list`, why a waiting job waits and its
parents and children in `jobs show`, and `conveyor workflows list / show / cancel` with their
--json forms and usage errors. The tree of members is also checked as pure data."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helpers import assert_usage_error, worker_thread

import conveyor
from conveyor import Conveyor, JobState
from conveyor.cli import cli
from conveyor.cli.tables import id_ranges
from conveyor.job import JobRecord
from conveyor.workflow_views import member_tree


@pytest.fixture
def invoke(runner: CliRunner, db_url: str) -> Any:
    def run(*args: str) -> Result:
        return runner.invoke(cli, [*args, "--url", db_url])

    return run


def data(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def text(result: Result) -> str:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.output


def chord_flow(app: Conveyor) -> conveyor.Workflow:
    """add(1, 2) -> [double, double, double] -> total: ids a, b, c, d, e."""
    add, double, total = app.tasks["w.add"], app.tasks["w.double"], app.tasks["w.total"]
    flow: conveyor.Workflow = conveyor.chain(
        add.s(1, 2), conveyor.group([double.s(), double.s(), double.s()]), total.s()).enqueue()
    return flow


# -- the tree, as pure data ------------------------------------------------------------------


def job(job_id: int) -> JobRecord:
    return JobRecord(job_id, "t", "default", JobState.WAITING, 0, "[]", "{}", None, 0, 3,
                     0.0, 0.0)


def test_a_member_with_several_parents_hangs_under_the_first() -> None:
    jobs = [job(i) for i in (1, 2, 3, 4, 5)]
    edges = [(1, 2), (1, 3), (1, 4), (2, 5), (3, 5), (4, 5)]
    tree = [(m.job.id, m.depth, m.under, m.also_waits_on) for m in member_tree(jobs, edges)]
    assert tree == [(1, 0, None, ()), (2, 1, 1, ()), (5, 2, 2, (3, 4)), (3, 1, 1, ()),
                    (4, 1, 1, ())]


def test_a_long_chain_needs_no_recursion() -> None:
    count = 5000
    jobs = [job(i) for i in range(1, count + 1)]
    tree = member_tree(jobs, [(i, i + 1) for i in range(1, count)])
    assert [m.depth for m in tree] == list(range(count))
    assert tree[-1].under == count - 1 and tree[0].children == (2,)


def test_id_ranges() -> None:
    assert id_ranges([9, 4, 5, 6, 7, 11, 12]) == "4-7, 9, 11, 12"
    assert id_ranges([3]) == "3"


# -- the waiting state everywhere ------------------------------------------------------------


def test_waiting_jobs_are_counted_listed_and_explained(wapp: Conveyor, invoke: Any) -> None:
    flow = chord_flow(wapp)
    a, b, c, d, e = (j.id for j in flow.jobs)
    [queue] = data(invoke("queues", "list", "--json"))
    assert queue["counts"] == {"queued": 1, "scheduled": 0, "waiting": 4, "running": 0}
    assert "waiting" in text(invoke("queues", "list"))
    [stats] = data(invoke("status", "--json"))["queues"]
    assert (stats["counts"]["waiting"], stats["counts"]["queued"]) == (4, 1)
    assert "waiting" in text(invoke("status"))
    listed = data(invoke("jobs", "list", "--state", "waiting", "--json"))
    assert [row["id"] for row in listed] == [e, d, c, b]
    assert {(row["workflow"], row["state"]) for row in listed} == {(flow.id, "waiting")}
    assert [row["pending_parents"] for row in listed] == [3, 1, 1, 1]
    assert "waits for 3 parents to end" in text(invoke("jobs", "list", "--state", "waiting"))

    shown = data(invoke("jobs", "show", str(e), "--json"))
    assert (shown["workflow"], shown["pending_parents"]) == (flow.id, 3)
    [reason] = shown["waiting_on"]
    assert reason["reason"] == "parents"
    assert reason["message"] == f"waiting for its 3 parents to end: jobs {b}, {c}, {d}"
    assert shown["parents"] == [{"id": i, "task": "w.double", "state": "waiting"}
                                for i in (b, c, d)]
    assert shown["children"] == []
    first = data(invoke("jobs", "show", str(a), "--json"))
    assert first["waiting_on"] == [] and first["parents"] == []
    assert [child["id"] for child in first["children"]] == [b, c, d]
    human = text(invoke("jobs", "show", str(b)))
    for expected in ("waiting for its parent to end: job", "Parents", "Children", "w.total",
                     f"workflow  {flow.id}"):
        assert expected in human, human

    # Some parents ended: the reason counts those still to end.
    wapp.cancel(c)  # (cancels e too, by the default policy; b and d still wait)
    with worker_thread(wapp, concurrency=2):
        assert wapp.get_job(b).result(timeout=10) == 6
    node = wapp.tasks["w.node"]
    held = node.options(depends_on=[b, a, wapp.tasks["w.slow"].enqueue(0).id]).enqueue(9)
    [reason] = data(invoke("jobs", "show", str(held.id), "--json"))["waiting_on"]
    assert reason["message"] == f"waiting for 1 of its 3 parents to end: job {held.id - 1}"


# -- conveyor workflows ----------------------------------------------------------------------


def test_workflows_list_and_show_a_running_then_finished_workflow(
        wapp: Conveyor, invoke: Any) -> None:
    flow = chord_flow(wapp)
    a, b, c, d, e = (j.id for j in flow.jobs)
    group = conveyor.group([wapp.tasks["w.double"].s(i) for i in range(3)]).enqueue()
    listed = data(invoke("workflows", "list", "--json"))
    assert [row["id"] for row in listed] == [group.id, flow.id]
    assert listed[1]["state"] == "running" and listed[1]["jobs"] == 5
    assert listed[1]["counts"]["waiting"] == 4 and listed[1]["counts"]["queued"] == 1
    assert listed[1]["created_at"] is not None
    assert [row["id"] for row in data(invoke("workflows", "list", "--limit", "1",
                                             "--json"))] == [group.id]
    human = text(invoke("workflows", "list"))
    assert "4 waiting" in human and "running" in human and "group(w.double" in human

    shown = data(invoke("workflows", "show", str(flow.id), "--json"))
    assert (shown["state"], shown["result_from"], shown["jobs"]) == ("running", e, 5)
    tree = [(m["id"], m["depth"], m["under"], m["also_waits_on"]) for m in shown["members"]]
    assert tree == [(a, 0, None, []), (b, 1, a, []), (e, 2, b, [c, d]), (c, 1, a, []),
                    (d, 1, a, [])]
    assert shown["members"][0]["duration"] is None
    assert shown["members"][2]["parents"] == [b, c, d]
    assert data(invoke("workflows", "show", str(group.id), "--json"))["result_from"] == [
        j.id for j in group.jobs]

    with worker_thread(wapp, concurrency=4):
        assert flow.result(timeout=10) == 18
        group.result(timeout=10)
    finished = data(invoke("workflows", "show", str(flow.id), "--json"))
    assert finished["state"] == "succeeded" and finished["counts"]["succeeded"] == 5
    assert all(m["attempts"] == 1 and m["duration"] is not None
               for m in finished["members"])
    human = text(invoke("workflows", "show", str(flow.id)))
    for expected in (f"Workflow {flow.id}", "succeeded", f"the result of job {e}",
                     f"├─ {b} w.double", f"└─ {e} w.total", f"also waits on jobs {c}, {d}",
                     f"└─ {d} w.double"):
        assert expected in human, human
    assert "a list of the results of jobs" in text(invoke("workflows", "show", str(group.id)))
    assert {row["id"]: row["state"] for row in data(invoke("workflows", "list", "--json"))} == {
        flow.id: "succeeded", group.id: "succeeded"}


def test_a_failed_workflow_shows_failed(wapp: Conveyor, invoke: Any) -> None:
    fail, double = wapp.tasks["w.fail"], wapp.tasks["w.double"]
    flow = conveyor.chain(fail.s(), double.s()).enqueue()
    with worker_thread(wapp), pytest.raises(conveyor.JobFailed):
        flow.result(timeout=10)
    [row] = data(invoke("workflows", "list", "--json"))
    assert row["state"] == "failed"
    assert (row["counts"]["failed"], row["counts"]["cancelled"]) == (1, 1)
    human = text(invoke("workflows", "show", str(flow.id)))
    assert "failed" in human and "cancelled" in human


def test_workflows_cancel(wapp: Conveyor, invoke: Any) -> None:
    flow = chord_flow(wapp)
    cancelled = data(invoke("workflows", "cancel", str(flow.id), "--json"))
    assert cancelled["ok"] is True and cancelled["state"] == "cancelled"
    assert cancelled["cancelled"] == [j.id for j in flow.jobs]
    assert flow.refresh().progress == {JobState.CANCELLED: 5}
    again = invoke("workflows", "cancel", str(flow.id))
    assert again.exit_code == 0 and "already cancelled" in again.output
    other = chord_flow(wapp)
    human = invoke("workflows", "cancel", str(other.id))
    assert human.exit_code == 0 and "5 job(s) cancelled" in human.output
    done = conveyor.group([wapp.tasks["w.double"].s(1)]).enqueue()
    with worker_thread(wapp):
        done.result(timeout=10)
    late = invoke("workflows", "cancel", str(done.id))
    assert late.exit_code == 1 and "not cancelled: it already succeeded" in late.output


def test_workflow_usage_errors(wapp: Conveyor, invoke: Any) -> None:
    chord_flow(wapp)
    for command in ("show", "cancel"):
        assert_usage_error(invoke("workflows", command, "99"), "no workflow with id 99")
        assert_usage_error(invoke("workflows", command, "x"), "'x' is not a workflow id")
    as_json = invoke("workflows", "show", "99", "--json")
    assert as_json.exit_code == 2
    assert json.loads(as_json.stderr) == {"error": "no workflow with id 99", "exit_code": 2}
    assert_usage_error(invoke("workflows", "list", "--limit", "0"), "--limit")


def test_no_workflows_yet(wapp: Conveyor, invoke: Any) -> None:
    wapp.inspector.schema_version()  # creates the database
    assert data(invoke("workflows", "list", "--json")) == []
    assert "no workflows yet" in text(invoke("workflows", "list"))


def test_enqueue_depends_on_and_reuse_from_the_command_line(wapp: Conveyor, invoke: Any) -> None:
    parent = wapp.tasks["w.node"].options(delay=600).enqueue(1)
    made = data(invoke("enqueue", "w.node", "[2]", "--depends-on", str(parent.id), "--json"))
    assert made["job"]["state"] == "waiting" and made["job"]["pending_parents"] == 1
    human = text(invoke("enqueue", "w.node", "[3]", "--depends-on", str(parent.id),
                        "--on-parent-failure", "run"))
    assert "waiting for 1 job(s) to end" in human
    wapp.cancel(parent.id)
    child, runs_anyway = (wapp.get_job(made["job"]["id"]),
                          wapp.get_job(int(human.split()[2].rstrip(":"))))
    assert (child.state, runs_anyway.state) == (JobState.CANCELLED, JobState.QUEUED)
    missing = invoke("enqueue", "w.node", "[4]", "--depends-on", "999999")
    assert_usage_error(missing, "depends_on names job 999999, which does not exist")
    assert_usage_error(invoke("enqueue", "w.node", "[4]", "--reuse-for", "1d"),
                       "reuse_for reuses the result of a job with the same unique_key")
