"""`conveyor queues`: list queues with their settings, pause and resume them."""

from __future__ import annotations

import click

from .. import validation
from ..app import Conveyor
from ..views import queues_overview
from .group import ConveyorGroup, cli
from .options import connection_options, json_option, open_app
from .output import Output
from .tables import queue_settings_table


@cli.group("queues", cls=ConveyorGroup)
def queues_group() -> None:
    """List queues; pause and resume them (every worker on every host honours it)."""


def _known(app: Conveyor) -> set[str]:
    """Queues this app's tasks or declarations name (with -A)."""
    return {task.settings.queue for task in app.tasks.values()} | set(app.queues)


@queues_group.command("list")
@connection_options
@json_option
def list_command(app_path: str | None, url: str | None, as_json: bool) -> None:
    """Every known queue (with a setting, holding jobs, or used by a task: the app's, with -A,
    or one a worker registered): paused or running, its order (fifo/lifo), and its queued,
    scheduled, waiting (for their parents to end) and running jobs."""
    out = Output(as_json)
    with open_app(app_path, url) as app:
        rows = queues_overview(app.inspector, _known(app))
    if as_json:
        out.data(rows)
        return
    if not rows:
        out.line("no queues yet: none holds a job or has a setting")
        return
    out.show(queue_settings_table(rows))


def _set_paused(name: str, paused: bool, app_path: str | None, url: str | None,
                as_json: bool) -> None:
    out = Output(as_json)
    validation.queue_name(name)  # refused before any database is opened
    with open_app(app_path, url) as app:
        if paused:
            app.pause_queue(name)
        else:
            app.resume_queue(name)
        used = (name in _known(app) or name in app.inspector.task_queues()
                or name in app.inspector.count_by_state())
    if as_json:
        out.data({"queue": name, "paused": paused})
    else:
        out.line(f"queue {name!r} paused: no worker claims its jobs until it is resumed"
                 if paused else f"queue {name!r} resumed")
    if not used:
        out.note(f"note: no job or task uses queue {name!r} yet (the setting is kept for "
                 "when one does)")


@queues_group.command("pause")
@click.argument("name", metavar="NAME")
@connection_options
@json_option
def pause_command(name: str, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Stop every worker from claiming jobs of queue NAME; jobs can still be enqueued and
    running ones finish."""
    _set_paused(name, True, app_path, url, as_json)


@queues_group.command("resume")
@click.argument("name", metavar="NAME")
@connection_options
@json_option
def resume_command(name: str, app_path: str | None, url: str | None, as_json: bool) -> None:
    """Let workers claim jobs of queue NAME again (waiting workers wake at once)."""
    _set_paused(name, False, app_path, url, as_json)
