"""`conveyor worker`: run a worker process in the foreground."""

from __future__ import annotations

import logging
import os

import click

from ..errors import ConfigurationError
from ..worker import Worker, WorkerStopped, load_app
from .main import cli, setup_logging


@cli.command("worker")
@click.option("-A", "--app", "app_path", envvar="CONVEYOR_APP", metavar="MODULE:ATTR",
              help="Your Conveyor app, e.g. myproject.jobs:app (or set CONVEYOR_APP).")
@click.option("--url", envvar="CONVEYOR_URL", metavar="URL",
              help="Database URL, e.g. sqlite:///jobs.db (or set CONVEYOR_URL).")
@click.option("-q", "--queues", metavar="A,B",
              help="Comma-separated queues to work on [default: every queue the app's tasks use].")
@click.option("-c", "--concurrency", type=click.IntRange(1, 1000), metavar="N",
              help="Jobs run at once [default: 4 threads, or one process per core].")
@click.option("--pool", type=click.Choice(["thread", "process"]), default="thread",
              show_default=True,
              help="Run jobs in threads, or in processes (CPU work, hard timeouts).")
@click.option("--burst", is_flag=True, help="Exit once no job is left to claim.")
@click.option("--shutdown-timeout", type=click.FloatRange(0), default=30.0, show_default=True,
              metavar="SECONDS", help="On SIGTERM, how long running jobs may take to finish.")
@click.option("--name", metavar="NAME", help="Worker name [default: host.pid.random].")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)
def worker_command(
    app_path: str | None,
    url: str | None,
    queues: str | None,
    concurrency: int | None,
    pool: str,
    burst: bool,
    shutdown_timeout: float,
    name: str | None,
    log_level: str,
) -> None:
    """Claim and run jobs until stopped (SIGTERM/SIGINT drain; a second signal stops now)."""
    setup_logging(log_level)
    # Only the `conveyor` command owns its process; under CliRunner (tests) it is not ours.
    in_own_process = bool((click.get_current_context().obj or {}).get("own_process"))
    if not app_path:
        raise ConfigurationError("no app given: pass --app module:attr or set CONVEYOR_APP")
    if url:
        os.environ["CONVEYOR_URL"] = url  # pool processes and the app's default URL follow it
    app = load_app(app_path)
    if url:
        app.close()
        app.url = url
    queue_list = [part.strip() for part in queues.split(",")] if queues else None
    worker = Worker(
        app,
        queues=queue_list,
        concurrency=concurrency,
        pool=pool,
        burst=burst,
        shutdown_timeout=shutdown_timeout,
        name=name,
    )
    try:
        worker.run()
    except WorkerStopped as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        app.close()
    if worker.abandoned_threads and in_own_process:
        # Handed-back jobs' threads are still running: end them with the process, now.
        logging.shutdown()
        os._exit(0)
