"""`conveyor health`: a probe for orchestrators. Exit 0 healthy, 1 not."""

from __future__ import annotations

import click

from ..app import Conveyor
from .group import cli
from .options import build_app, connection_options, json_option, missing_database
from .output import Output


@cli.command("health", short_help="Probe: exit 0 when healthy, 1 when not.")
@click.option("--worker", "worker_name", metavar="NAME",
              help="Also require this worker's heartbeat to be fresh (within the lease "
                   "timeout: the app's with -A, else 30 s).")
@connection_options
@json_option
def health_command(worker_name: str | None, app_path: str | None, url: str | None,
                   as_json: bool) -> None:
    """Exit 0 when the database is reachable and its schema current (and, with --worker,
    that worker's heartbeat is fresh); else print the problems and exit 1."""
    out = Output(as_json)
    app = build_app(app_path, url)
    try:
        problems = _problems(app, worker_name)
    finally:
        app.close()
    if as_json:
        out.data({"healthy": not problems, "url": app.url, "worker": worker_name,
                  "problems": problems})
    elif problems:
        for problem in problems:
            out.note(f"unhealthy: {problem}")
    else:
        out.line("healthy" + (f": worker {worker_name} is alive" if worker_name else ""))
    if problems:
        click.get_current_context().exit(1)


def _problems(app: Conveyor, worker_name: str | None) -> list[str]:
    missing = missing_database(app.url)  # a probe must not create the database it checks
    if missing:
        return [missing]
    return app.health(worker_name)
