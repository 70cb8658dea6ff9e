"""`conveyor schedules`: list the stored schedules and what runs next; run one now; pause and
resume. Reads the schedules table, so no app import is needed (schedulers write it)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from rich.table import Table
from rich.text import Text

from ..views import schedule_view
from .group import ConveyorGroup, cli
from .options import connection_options, json_option, open_app
from .output import Output
from .tables import plain_table, styled


@cli.group("schedules", cls=ConveyorGroup)
def schedules_group() -> None:
    """Periodic jobs: list them, run one now, pause or resume one."""


@schedules_group.command("list")
@click.option("--all", "show_all", is_flag=True,
              help="Also show inactive schedules (gone from the code).")
@connection_options
@json_option
def list_command(show_all: bool, app_path: str | None, url: str | None,
                 as_json: bool) -> None:
    """Schedules: task, timing (in words), timezone, the next 3 runs, the last run and its
    state, paused. Written by each worker or `conveyor scheduler` when it starts."""
    out = Output(as_json)
    with open_app(app_path, url) as app:
        records = app.inspector.schedules()
    now = time.time()
    views = [schedule_view(r, now) for r in records if r.active or show_all]
    if as_json:
        out.data({"schedules": views})
        return
    if not views:
        hidden = len(records) - len(views)
        out.line("no schedules" + (f" ({hidden} inactive: --all shows them)" if hidden else
                                   "; declare them with @app.periodic or app.schedule, then "
                                   "start a worker or `conveyor scheduler`"))
        return
    out.show(_table(views, now))


def _table(views: list[dict[str, Any]], now: float) -> Table:
    table = plain_table("Schedules")
    for column in ("name", "task", "when", "tz", "next runs", "last run", "state"):
        table.add_column(column)
    for view in views:
        last = view["last_run"]
        last_text = Text("-")
        if last is not None:
            last_text = Text(f"job {last['job_id']} ")
            last_text.append_text(styled(last["state"]))
            last_text.append(f" {_local(last['slot'], view['timezone'])}" if last["slot"]
                             else " (by hand)")
        state = ("inactive" if not view["active"] else "paused" if view["paused"] else "active")
        table.add_row(Text(view["name"]), Text(view["task"]),
                      Text(view["description"] or view["spec"] or "?"), Text(view["timezone"]),
                      Text("\n".join(_local(run, view["timezone"])
                                     for run in view["next_runs"]) or "-"),
                      last_text, styled(state))
    return table


def _local(when: str | None, tz: str) -> str:
    """An ISO time as the schedule's timezone shows it (slots are set in it)."""
    if when is None:
        return "?"
    try:
        moment = datetime.fromisoformat(when).astimezone(ZoneInfo(tz))
    except (ValueError, ZoneInfoNotFoundError):
        return when
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


@schedules_group.command("run")
@click.argument("name")
@connection_options
@json_option
def run_command(name: str, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Enqueue one run of schedule NAME now, outside its slots (its slots are unchanged)."""
    out = Output(as_json)
    with open_app(app_path, url) as app:
        job = app.run_schedule(name)
    if as_json:
        out.data({"schedule": name, "job": job.id})
    else:
        out.line(f"enqueued job {job.id} ({job.task}) for schedule {name!r}")


def _pause(name: str, paused: bool, app_path: str | None, url: str | None,
           as_json: bool) -> None:
    out = Output(as_json)
    with open_app(app_path, url) as app:
        if paused:
            app.pause_schedule(name)
        else:
            app.resume_schedule(name)
    if as_json:
        out.data({"schedule": name, "paused": paused})
    elif paused:
        out.line(f"schedule {name!r} paused: no scheduler fires it until it is resumed")
    else:
        out.line(f"schedule {name!r} resumed: it fires from its next slot (missed slots are "
                 "skipped)")


@schedules_group.command("pause")
@click.argument("name")
@connection_options
@json_option
def pause_command(name: str, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Stop schedule NAME from firing, on every scheduler, until resumed."""
    _pause(name, True, app_path, url, as_json)


@schedules_group.command("resume")
@click.argument("name")
@connection_options
@json_option
def resume_command(name: str, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Fire schedule NAME again, from its next slot."""
    _pause(name, False, app_path, url, as_json)

