"""`conveyor workflows`: list workflows, show one as a tree of its jobs, cancel one."""

from __future__ import annotations

import time
from typing import Any

import click

from ..job import JobState
from ..workflow import RUNNING, Workflow
from ..workflow_views import member_tree, workflow_view, workflows_overview
from .group import ConveyorGroup, cli
from .options import connection_options, json_option, open_app
from .output import Output
from .params import WORKFLOW_ID
from .tables import workflow_detail, workflows_table


@cli.group("workflows", cls=ConveyorGroup)
def workflows_group() -> None:
    """List workflows (chains, groups, chords), show one as a tree of its jobs, cancel one."""


@workflows_group.command("list")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True,
              help="At most this many, newest first.")
@connection_options
@json_option
def list_command(limit: int, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Workflows, newest first: name, state (running while a job of it has not ended, then
    succeeded, failed or cancelled), its jobs counted by state, when it was created."""
    out = Output(as_json)
    with open_app(app_path, url) as app:
        rows = workflows_overview(app.inspector, limit)
    if as_json:
        out.data(rows)
        return
    if not rows:
        out.line("no workflows yet")
        return
    out.show(workflows_table(rows, time.time()))
    if len(rows) == limit:
        out.note(f"showing the newest {limit}; pass --limit to see more")


@workflows_group.command("show")
@click.argument("workflow_id", metavar="ID", type=WORKFLOW_ID)
@connection_options
@json_option
def show_command(workflow_id: int, app_path: str | None, url: str | None,
                 as_json: bool) -> None:
    """One workflow: its state, the jobs its result comes from, and a tree of its jobs
    (each under the job it waits for; a job that waits for several is shown under the first
    and marked as also waiting on the others) with state, attempts and how long it ran."""
    out = Output(as_json)
    with open_app(app_path, url) as app:
        record = app.get_workflow(workflow_id).record
        edges = app.inspector.workflow_edges(workflow_id)
    now = time.time()
    if as_json:
        out.data(workflow_view(record, edges, now))
    else:
        out.show(workflow_detail(record, member_tree(record.jobs, edges), now))


def _cancel_report(before: Workflow, after: Workflow) -> tuple[bool, str, dict[str, Any]]:
    """Whether the cancel did what was asked, a line for people, and the JSON of it."""
    was = {job.id: job.state for job in before.record.jobs}
    cancelled = [job.id for job in after.record.jobs
                 if job.state is JobState.CANCELLED and was.get(job.id) is not JobState.CANCELLED]
    stopping = [job.id for job in after.record.jobs
                if job.state is JobState.RUNNING and job.cancel_requested]
    state = after.state
    data: dict[str, Any] = {"id": after.id, "state": state, "cancelled": cancelled,
                            "stopping": stopping}
    if before.state != RUNNING:
        ok = before.state == "cancelled"
        message = ("already cancelled" if ok else
                   f"not cancelled: it already {before.state}")
        return ok, f"workflow {after.id}: {message}", {**data, "ok": ok, "message": message}
    parts = [f"{len(cancelled)} job(s) cancelled"]
    if stopping:
        parts.append(f"{len(stopping)} running job(s) asked to stop (cancel requested)")
    message = f"{'; '.join(parts)}; the workflow is {state}"
    return True, f"workflow {after.id}: {message}", {**data, "ok": True, "message": message}


@workflows_group.command("cancel")
@click.argument("workflow_id", metavar="ID", type=WORKFLOW_ID)
@connection_options
@json_option
def cancel_command(workflow_id: int, app_path: str | None, url: str | None,
                   as_json: bool) -> None:
    """Cancel a workflow: its waiting and queued jobs are cancelled at once, running ones are
    asked to stop (their tasks see the cancel flag). Exit code 1 when it had already ended
    (succeeded or failed)."""
    out = Output(as_json)
    with open_app(app_path, url) as app:
        before = app.get_workflow(workflow_id)
        if before.state == RUNNING:
            app.cancel_workflow(workflow_id)
        after = app.get_workflow(workflow_id)
    ok, line, data = _cancel_report(before, after)
    if as_json:
        out.data(data)
    elif ok:
        out.line(line)
    else:
        out.note(line)
    if not ok:
        click.get_current_context().exit(1)
