"""`conveyor limits`: the rate and concurrency limits workers enforce, and their use now."""

from __future__ import annotations

from ..views import limit_uses, limit_view
from .group import ConveyorGroup, cli
from .options import connection_options, json_option, open_app
from .output import Output
from .tables import limits_table


@cli.group("limits", cls=ConveyorGroup)
def limits_group() -> None:
    """Rate and concurrency limits (of tasks and queues) and how much of each is used."""


@limits_group.command("list")
@connection_options
@json_option
def list_command(app_path: str | None, url: str | None, as_json: bool) -> None:
    """One row per limit: each task's rate and concurrency limits as workers registered them
    (keyed: each key has its own budget), and each queue's concurrency limit. For each: its
    keys with queued or running jobs, its jobs running now (against the limit), the keys its
    rate holds back now (throttled), its queued jobs and when a throttled key next starts."""
    out = Output(as_json)
    with open_app(app_path, url) as app:
        now, uses = limit_uses(app.inspector)
    if as_json:
        out.data([limit_view(use, now) for use in uses])
        return
    if not uses:
        out.line("no limits: no worker registered a task with rate_limit= or concurrency=, "
                 "and no queue has a concurrency limit")
        return
    out.show(limits_table(uses, now))
