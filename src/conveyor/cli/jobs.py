"""`conveyor jobs`: list, show, retry, cancel and delete jobs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

from ..app import Conveyor
from ..job import JobRecord, JobState
from ..views import attempt_view, job_attempts, job_view, job_waits, link_view, reason_view
from .group import ConveyorGroup, cli
from .options import connection_options, json_option, open_app
from .output import Output
from .params import JOB_ID
from .states import STATE
from .tables import job_detail, jobs_table

RETRY_BATCH = 500
JOB_IDS = click.argument("ids", metavar="ID...", nargs=-1, type=JOB_ID)


@cli.group("jobs", cls=ConveyorGroup)
def jobs_group() -> None:
    """List, show, retry, cancel and delete jobs."""


@jobs_group.command("list")
@click.option("--state", type=STATE, help="Only jobs in this state.")
@click.option("-q", "--queue", metavar="QUEUE", help="Only jobs on this queue.")
@click.option("--task", metavar="TASK", help="Only jobs of this task.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True,
              help="At most this many, newest first.")
@connection_options
@json_option
def list_command(state: JobState | None, queue: str | None, task: str | None, limit: int,
                 app_path: str | None, url: str | None, as_json: bool) -> None:
    """Jobs, newest first."""
    out = Output(as_json)
    with open_app(app_path, url) as app:
        records = app.inspector.list_jobs(state=state, queue=queue, task=task, limit=limit)
    if as_json:
        out.data([job_view(record) for record in records])
        return
    if not records:
        out.line("no jobs match")
        return
    out.show(jobs_table(records, time.time()))
    if len(records) == limit:
        out.note(f"showing the newest {limit}; pass --limit to see more")


@jobs_group.command("show")
@click.argument("job_id", metavar="ID", type=JOB_ID)
@connection_options
@json_option
def show_command(job_id: int, app_path: str | None, url: str | None, as_json: bool) -> None:
    """One job: arguments, result, progress, timings, and every attempt with its error and
    traceback; its workflow, the jobs it waits for (parents) and those that wait for it
    (children). A job that has not started says what holds it back: parents that have not
    ended, a paused queue, a rate or concurrency limit of its task, its queue's concurrency
    limit."""
    out = Output(as_json)
    with open_app(app_path, url) as app:
        record = app.get_job(job_id).record
        attempts = job_attempts(record, app.inspector.attempts(job_id))
        waits = job_waits(app.inspector, record)
        parents, children = app.inspector.job_links(job_id)
    if as_json:
        out.data({**job_view(record),
                  "queue_paused": any(wait.kind == "queue_paused" for wait in waits),
                  "waiting_on": [reason_view(wait) for wait in waits],
                  "parents": [link_view(link) for link in parents],
                  "children": [link_view(link) for link in children],
                  "attempt_history": [attempt_view(a) for a in attempts]})
    else:
        out.show(job_detail(record, attempts, time.time(), waits=waits, parents=parents,
                            children=children))


@dataclass(frozen=True)
class Change:
    """What one job-changing command did to one job."""

    id: int
    ok: bool
    state: str | None
    message: str
    held_by: int | None = None  # retry: the job holding this job's unique key

    def view(self) -> dict[str, Any]:
        view = {"id": self.id, "ok": self.ok, "state": self.state, "message": self.message}
        if self.held_by is not None:
            view["held_by"] = self.held_by
        return view


def _existing(app: Conveyor, ids: Sequence[int]) -> dict[int, JobRecord]:
    """Records for every id, in order; an unknown id refuses the whole command (exit 2)."""
    records = {job_id: app.inspector.get(job_id) for job_id in dict.fromkeys(ids)}
    missing = [str(job_id) for job_id, record in records.items() if record is None]
    if missing:
        raise click.UsageError(f"no job with id {', '.join(missing)}; nothing was changed")
    return {job_id: record for job_id, record in records.items() if record is not None}


def _it_is(state: JobState) -> str:
    return f"it {state}" if state.is_terminal else f"it is {state}"


def _report(out: Output, verb: str, changes: list[Change]) -> None:
    """Print what happened; exit 1 when some job could not be changed."""
    failed = [change for change in changes if not change.ok]
    if out.as_json:
        out.data({verb: [c.id for c in changes if c.ok], "not_" + verb: [c.id for c in failed],
                  "jobs": [change.view() for change in changes]})
    else:
        for change in changes:
            if change.ok:
                out.line(f"job {change.id}: {change.message}")
            else:
                out.note(f"job {change.id}: {change.message}")
    if failed:
        click.get_current_context().exit(1)


@jobs_group.command("retry")
@JOB_IDS
@click.option("--failed", "all_failed", is_flag=True, help="Retry every failed job (of -q/--task).")
@click.option("-q", "--queue", metavar="QUEUE", help="With --failed: only this queue.")
@click.option("--task", metavar="TASK", help="With --failed: only this task.")
@connection_options
@json_option
def retry_command(ids: tuple[int, ...], all_failed: bool, queue: str | None, task: str | None,
                  app_path: str | None, url: str | None, as_json: bool) -> None:
    """Run failed or cancelled jobs again, each with a fresh set of attempts: the jobs ID...,
    or with --failed every failed job (of a queue, of a task).

    A job whose unique key another waiting or running job holds stays as it is (the holder
    is named); the others are still retried. Exit code 1 when some job was not retried."""
    if ids and all_failed:
        raise click.UsageError("give job ids or --failed, not both")
    if not ids and not all_failed:
        raise click.UsageError("give the ids of the jobs to retry, or --failed")
    if (queue or task) and not all_failed:
        raise click.UsageError("-q/--queue and --task select jobs for --failed; "
                               "with ids, leave them out")
    out = Output(as_json)
    with open_app(app_path, url) as app:
        if all_failed:
            _retry_failed(out, app, queue, task)
            return
        records = _existing(app, ids)
        report = app.retry_report(list(records))
    retried = set(report.retried)
    changes = []
    for job_id, record in records.items():
        if job_id in retried:
            changes.append(Change(job_id, True, JobState.QUEUED.value, "queued again"))
        elif job_id in report.held:
            holder = report.held[job_id]
            changes.append(Change(job_id, False, record.state.value,
                                  _held_message(record, holder), held_by=holder.id))
        else:
            changes.append(Change(job_id, False, record.state.value,
                                  f"not retried: {_it_is(record.state)}; only failed or "
                                  "cancelled jobs can be retried"))
    _report(out, "retried", changes)


def _held_message(record: JobRecord, holder: JobRecord) -> str:
    return (f"not retried: its unique key {record.unique_key!r} is held by job {holder.id} "
            f"({holder.state}); retry it once job {holder.id} has ended")


def _retry_failed(out: Output, app: Conveyor, queue: str | None, task: str | None) -> None:
    # Snapshot the failed jobs first: a job that fails again while we work is not retried
    # twice in one command.
    counts = app.inspector.count_by_state()
    total = sum(states.get(JobState.FAILED, 0) for name, states in counts.items()
                if queue is None or name == queue)
    ids: list[int] = []
    if total:
        ids = [record.id for record in app.inspector.list_jobs(
            state=JobState.FAILED, queue=queue, task=task, limit=total)]
    retried: list[int] = []
    held: dict[int, JobRecord] = {}
    with out.progress("retrying failed jobs", len(ids)) as advance:
        for start in range(0, len(ids), RETRY_BATCH):
            batch = ids[start:start + RETRY_BATCH]
            report = app.retry_report(batch)
            retried += report.retried
            held.update(report.held)
            advance(len(batch))
    blocked = {job_id: app.inspector.get(job_id) for job_id in held}
    if out.as_json:
        data: dict[str, Any] = {"retried": retried, "count": len(retried)}
        if held:
            data["held"] = [{"id": job_id, "held_by": holder.id}
                            for job_id, holder in held.items()]
        out.data(data)
    else:
        scope = " ".join(part for part in (f"on queue {queue}" if queue else "",
                                           f"of task {task}" if task else "") if part)
        out.line(f"retried {len(retried)} failed job(s){' ' + scope if scope else ''}")
        for job_id, holder in held.items():
            record = blocked[job_id]
            reason = (_held_message(record, holder) if record is not None else
                      f"not retried: job {holder.id} holds its unique key")
            out.note(f"job {job_id}: {reason}")
    if held:
        click.get_current_context().exit(1)


@jobs_group.command("cancel")
@JOB_IDS
@connection_options
@json_option
def cancel_command(ids: tuple[int, ...], app_path: str | None, url: str | None,
                   as_json: bool) -> None:
    """Cancel jobs: a waiting job is cancelled at once; a running one is asked to stop (its
    task sees the cancel flag). Exit code 1 when a job had already ended."""
    if not ids:
        raise click.UsageError("give the ids of the jobs to cancel")
    out = Output(as_json)
    changes = []
    with open_app(app_path, url) as app:
        for job_id, record in _existing(app, ids).items():
            if record.state is JobState.CANCELLED:
                changes.append(Change(job_id, True, record.state.value, "already cancelled"))
                continue
            if record.state.is_terminal:
                changes.append(Change(job_id, False, record.state.value,
                                      f"not cancelled: it already {record.state}"))
                continue
            state = app.cancel(job_id)
            if state is JobState.CANCELLED:
                changes.append(Change(job_id, True, state.value, "cancelled"))
            elif state is JobState.RUNNING:
                changes.append(Change(job_id, True, state.value,
                                      "running: asked to stop (cancel requested)"))
            else:
                changes.append(Change(job_id, False, state.value,
                                      f"not cancelled: it already {state}"))
    _report(out, "cancelled", changes)


@jobs_group.command("delete")
@JOB_IDS
@connection_options
@json_option
def delete_command(ids: tuple[int, ...], app_path: str | None, url: str | None,
                   as_json: bool) -> None:
    """Delete jobs and their attempt history. A running job is never deleted under its
    worker: cancel it first. Exit code 1 when a job could not be deleted."""
    if not ids:
        raise click.UsageError("give the ids of the jobs to delete")
    out = Output(as_json)
    with open_app(app_path, url) as app:
        records = _existing(app, ids)
        deleted = set(app.delete(list(records)))
    changes = [
        Change(job_id, True, None, "deleted") if job_id in deleted else
        Change(job_id, False, JobState.RUNNING.value,
               "not deleted: it is running; cancel it first")
        for job_id, record in records.items()
    ]
    _report(out, "deleted", changes)
