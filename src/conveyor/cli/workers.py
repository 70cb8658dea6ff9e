"""`conveyor workers`: list workers, and stop them gracefully through the database."""

from __future__ import annotations

import math
import time

import click

from ..app import Conveyor
from ..backends.base import WorkerRecord
from ..views import worker_view
from .durations import format_duration
from .group import ConveyorGroup, cli
from .options import connection_options, json_option, open_app
from .output import Output
from .params import FOREVER, WAIT_TIME
from .tables import workers_table


@cli.group("workers", cls=ConveyorGroup)
def workers_group() -> None:
    """List workers; stop them gracefully."""


def _stale_after(app: Conveyor) -> float:
    return max(app.lease_timeout, 1.0)


@workers_group.command("list")
@connection_options
@json_option
def list_command(app_path: str | None, url: str | None, as_json: bool) -> None:
    """Registered workers: host, pid, queues, busy/total slots, last heartbeat, status
    (alive, stopping, or stale when the heartbeat is older than the lease timeout)."""
    out = Output(as_json)
    with open_app(app_path, url) as app:
        workers = app.inspector.workers()
        stale_after = _stale_after(app)
    now = time.time()
    if as_json:
        out.data([worker_view(worker, now, stale_after) for worker in workers])
    else:
        out.show(workers_table(workers, now, stale_after))


@workers_group.command("stop")
@click.argument("name", required=False)
@click.option("--all", "stop_all", is_flag=True, help="Stop every worker.")
@click.option("--wait", type=WAIT_TIME, is_flag=False, flag_value=FOREVER, default=None,
              metavar="[SECONDS]",
              help="Wait until the workers have stopped (at most SECONDS); exit 1 on timeout.")
@connection_options
@json_option
def stop_command(name: str | None, stop_all: bool, wait: float | None, app_path: str | None,
                 url: str | None, as_json: bool) -> None:
    """Ask worker NAME (or --all) to stop gracefully. Works across machines: the request goes
    through the database, a worker sees it on its next heartbeat, stops claiming, finishes
    its running jobs and exits 0."""
    if name and stop_all:
        raise click.UsageError("give a worker NAME or --all, not both")
    if not name and not stop_all:
        raise click.UsageError("give a worker NAME (see: conveyor workers list) or --all")
    out = Output(as_json)
    with open_app(app_path, url) as app:
        registered = app.inspector.workers()
        if name and name not in {worker.name for worker in registered}:
            known = ", ".join(worker.name for worker in registered) or "none"
            raise click.UsageError(f"no worker named {name!r}; registered workers: {known}")
        targets = [w.name for w in registered if stop_all or w.name == name]
        asked = app.stop_workers(None if stop_all else name)
        if wait is None:
            _print_asked(out, targets, asked, stopped=None)
            return
        remaining = _wait_gone(out, app, targets, wait)
    _print_asked(out, targets, asked, stopped=[t for t in targets if t not in remaining])
    if remaining:
        out.note(f"still running after {format_duration(wait)}: {', '.join(remaining)}")
        click.get_current_context().exit(1)


def _wait_gone(out: Output, app: Conveyor, names: list[str], timeout: float) -> list[str]:
    deadline = math.inf if math.isinf(timeout) else time.monotonic() + timeout
    pending = list(names)
    with out.activity(f"waiting for {len(pending)} worker(s) to finish their jobs") as status:
        while pending:
            alive: list[WorkerRecord] = app.inspector.workers()
            pending = [n for n in pending if n in {w.name for w in alive}]
            if not pending or time.monotonic() >= deadline:
                break
            if status is not None:
                busy = sum(w.busy for w in alive if w.name in pending)
                status.update(f"waiting for {len(pending)} worker(s) to stop "
                              f"({busy} job(s) still running)")
            time.sleep(0.1)
    return pending


def _print_asked(out: Output, targets: list[str], asked: int,
                 stopped: list[str] | None) -> None:
    if out.as_json:
        payload: dict[str, object] = {"asked": asked, "workers": targets}
        if stopped is not None:
            payload["stopped"] = stopped
        out.data(payload)
        return
    if not targets:
        out.line("no workers are registered; nothing to stop")
        return
    verb = "stopped" if stopped is not None else "asked to stop"
    for target in targets:
        if stopped is None or target in stopped:
            out.line(f"{verb}: {target}")
