"""`conveyor scheduler`: fire the app's schedules without running jobs (Celery beat style).
Every worker runs a scheduler too unless started with --no-scheduler; any number may run,
each slot fires once."""

from __future__ import annotations

import os
import secrets
import socket
import threading

import click

from ..errors import ConfigurationError
from ..worker import load_app
from ..worker.scheduling import Scheduler, run_scheduler
from ..worker.signals import SignalRelay
from .group import LOG_FORMATS, cli, setup_logging


@cli.command("scheduler", short_help="Fire the app's schedules (no jobs run here).")
@click.option("-A", "--app", "app_path", envvar="CONVEYOR_APP", metavar="MODULE:ATTR",
              help="Your Conveyor app, e.g. myproject.jobs:app (or set CONVEYOR_APP).")
@click.option("--url", envvar="CONVEYOR_URL", metavar="URL",
              help="Database URL (or set CONVEYOR_URL) [default: the app's].")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text", show_default=True)
def scheduler_command(app_path: str | None, url: str | None, log_level: str,
                      log_format: str) -> None:
    """Write the app's schedules to the database and fire their slots until SIGTERM/SIGINT.

    Jobs run on workers; this process only enqueues them. Run it where the workers run
    with --no-scheduler, or beside workers that schedule too: each slot fires once."""
    if not app_path:
        raise ConfigurationError("no app given: pass --app module:attr or set CONVEYOR_APP")
    app = load_app(app_path)
    if url:
        app.close()
        app.url = url
    if not app.schedules:
        click.echo(f"note: {app_path} declares no schedules: every stored schedule will be "
                   "marked inactive (declare them with @app.periodic or app.schedule)",
                   err=True)
    setup_logging(log_level, log_format)
    owner = f"scheduler.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(3)}"
    stop = threading.Event()

    # (Set from a thread of its own, never in the handler: see worker/signals.py.)
    signals = SignalRelay(lambda signum: stop.set())
    signals.install()
    try:
        run_scheduler(Scheduler(app, app.backend, owner), stop)
    finally:
        signals.restore()
        app.close()
