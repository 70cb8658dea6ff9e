"""`conveyor status`: queues and workers at a glance, once or refreshing in place."""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from typing import Any

import click
from rich.live import Live

from ..app import Conveyor
from ..views import Snapshot
from .durations import format_duration
from .group import cli
from .options import connection_options, json_option, open_app
from .output import Output
from .params import DURATION
from .tables import status_view


@cli.command("status", short_help="Queues and workers at a glance; -i refreshes in place.")
@click.option("-i", "--interval", type=DURATION, metavar="SECONDS",
              help="Refresh in place every SECONDS (e.g. 2 or 0.5) until Ctrl+C; "
                   "with --json, print one JSON line per refresh.")
@click.option("--count", type=click.IntRange(1), metavar="N",
              help="With --interval: stop after N refreshes.")
@connection_options
@json_option
def status_command(interval: float | None, count: int | None, app_path: str | None,
                   url: str | None, as_json: bool) -> None:
    """Where the database is (the SQLite file's absolute path, or PostgreSQL's host, port,
    database and schema). Per queue: jobs in each state, the oldest waiting job's age and jobs
    finished in the last minute. Limits with queued jobs: how many wait and why (rate limited,
    at a concurrency limit; `conveyor limits list` shows every limit). Workers: host, pid,
    queues, busy/total slots, last heartbeat.

    A worker is shown `stale` when its last heartbeat is older than the lease timeout
    (the app's, with -A; else 30 s) and `stopping` once asked to stop."""
    if interval is not None and interval < 0.1:
        raise click.BadParameter("refresh at most every 0.1 s", param_hint="'-i' / '--interval'")
    if count is not None and interval is None:
        raise click.UsageError("--count needs --interval")
    out = Output(as_json)
    with open_app(app_path, url) as app:
        if interval is None:
            snapshot = _take(app)
            if as_json:
                out.data(_view(app, snapshot))
            else:
                out.show(status_view(snapshot, _title(app, snapshot, None)))
            return
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C is how a watch ends: exit 0
            _watch(out, app, interval, count)


def _take(app: Conveyor) -> Snapshot:
    return Snapshot.take(app.inspector, stale_after=max(app.lease_timeout, 1.0))


def _view(app: Conveyor, snapshot: Snapshot) -> dict[str, Any]:
    location = app.location
    return {**snapshot.view(),
            "database": {"dialect": location.dialect, "location": location.text,
                         **location.details}}


def _title(app: Conveyor, snapshot: Snapshot, interval: float | None) -> str:
    clock = datetime.fromtimestamp(snapshot.at).strftime("%H:%M:%S")
    title = f"conveyor status at {clock}"
    if interval is not None:
        title += f", every {format_duration(interval)} (Ctrl+C to stop)"
    return f"{title}\ndatabase {app.location}"


def _watch(out: Output, app: Conveyor, interval: float, count: int | None) -> None:
    shown = 0
    if out.as_json or not out.out.is_terminal:
        # Scripts and pipes get one frame after another, never cursor movement.
        while True:
            snapshot = _take(app)
            if out.as_json:
                out.data(_view(app, snapshot), compact=True)
            else:
                out.show(status_view(snapshot, _title(app, snapshot, interval)))
            shown += 1
            if count is not None and shown >= count:
                return
            time.sleep(interval)
    snapshot = _take(app)
    with Live(status_view(snapshot, _title(app, snapshot, interval)), console=out.out,
              auto_refresh=False) as live:
        shown = 1
        while count is None or shown < count:
            time.sleep(interval)
            snapshot = _take(app)
            live.update(status_view(snapshot, _title(app, snapshot, interval)), refresh=True)
            shown += 1
