"""`conveyor worker`: run a worker in the foreground, or detached with a pidfile; and
`conveyor worker stop --pidfile P` to stop a detached one."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import ConfigurationError
from ..worker.pools import POOLS
from .detach import log_tail, spawn_detached
from .durations import format_duration
from .group import LOG_FORMATS, ConveyorGroup, cli, setup_logging
from .options import json_option
from .params import BYTE_SIZE, DURATION, PREFETCH
from .pidfile import (
    PidfileError,
    check_worker,
    live_pid,
    pid_alive,
    read_pidfile_entry,
    remove_pidfile,
    terminate,
    write_pidfile,
)

if TYPE_CHECKING:
    from ..worker import Worker
    from ..worker.pools.spawn import Launcher
    from .output import Output

# The runtime and rich (cli/output.py) are imported where they are used: `conveyor worker`
# starts the sooner for it, and a foreground worker writes a log, not rich output.

START_TIMEOUT = 30.0  # how long --detach waits for the worker to register


@cli.group("worker", cls=ConveyorGroup, invoke_without_command=True,
           subcommand_metavar="[stop --pidfile P]",
           short_help="Run a worker (or --detach one); `worker stop` stops a detached one.")
@click.option("-A", "--app", "app_path", envvar="CONVEYOR_APP", metavar="MODULE:ATTR",
              help="Your Conveyor app, e.g. myproject.jobs:app (or set CONVEYOR_APP).")
@click.option("--url", envvar="CONVEYOR_URL", metavar="URL",
              help="Database URL, e.g. sqlite:///jobs.db (or set CONVEYOR_URL).")
@click.option("-q", "--queues", metavar="A,B",
              help="Comma-separated queues to work on, each NAME or NAME:WEIGHT (e.g. "
                   "high:3,default:1: about 3 jobs of high for 1 of default while both have "
                   "work) [default: every queue the app's tasks use].")
@click.option("-c", "--concurrency", type=click.IntRange(1, 1000), metavar="N",
              help="Jobs run at once [default: 16 threads, one process per core, or 100 "
                   "coroutines].")
@click.option("--pool", type=click.Choice(POOLS), default="thread", show_default=True,
              help="Run jobs in threads, in processes (CPU work, hard timeouts), or as "
                   "coroutines on one event loop (asyncio: many async def jobs at once).")
@click.option("--prefetch", type=PREFETCH, default="auto", show_default=True,
              help="thread pool: claimed jobs held beyond the threads, so short jobs are "
                   "claimed in big rounds. auto: about 10 ms of work per thread, none for "
                   "long jobs; 0: none. Not-started ones are handed back on SIGTERM.")
@click.option("--max-tasks-per-child", type=click.IntRange(1), metavar="N",
              help="process pool: replace a pool process after it ran N jobs.")
@click.option("--max-memory-per-child", type=BYTE_SIZE, metavar="SIZE",
              help="process pool: replace a pool process after a job that left its peak RSS "
                   "over SIZE (512MB, 1GiB, 200k).")
@click.option("--burst", is_flag=True,
              help="Exit once no job is left to claim and none of the worker's queues is due "
                   "within --burst-horizon (retries waiting on their backoff included).")
@click.option("--burst-horizon", type=DURATION, metavar="SECONDS",
              help="With --burst: wait for jobs due within this long (30, 2m...); a job due "
                   "later does not keep the worker. [default: 60]")
@click.option("--shutdown-timeout", type=click.FloatRange(0), default=30.0, show_default=True,
              metavar="SECONDS", help="On SIGTERM, how long running jobs may take to finish.")
@click.option("--name", metavar="NAME", help="Worker name [default: host.pid.random].")
@click.option("--no-scheduler", is_flag=True,
              help="Do not fire the app's schedules from this worker (others, or `conveyor "
                   "scheduler`, do; each slot fires once however many run).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text", show_default=True,
              help="text for people; json: one JSON object per line (time, level, logger, "
                   "message, and fields such as job_id, task, attempt, state, duration, "
                   "error_type) for log shippers.")
@click.option("--detach", is_flag=True,
              help="Run in the background (new session; no systemd needed) and return once "
                   "the worker has registered. Needs --pidfile.")
@click.option("--pidfile", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="Write the worker's pid here (refused if it names a running process); "
                   "removed when the worker exits. Stop it with: conveyor worker stop --pidfile.")
@click.option("--logfile", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="With --detach: append the worker's output here [default: the pidfile's "
                   "name with .log].")
@click.option("--json", "as_json", is_flag=True,
              help="With --detach: print the started worker (name, pid, files) as JSON.")
@click.pass_context
def worker_command(
    ctx: click.Context,
    app_path: str | None,
    url: str | None,
    queues: str | None,
    concurrency: int | None,
    pool: str,
    prefetch: int | str,
    max_tasks_per_child: int | None,
    max_memory_per_child: int | None,
    burst: bool,
    burst_horizon: float | None,
    shutdown_timeout: float,
    name: str | None,
    no_scheduler: bool,
    log_level: str,
    log_format: str,
    detach: bool,
    pidfile: Path | None,
    logfile: Path | None,
    as_json: bool,
) -> None:
    """Claim and run jobs until stopped (SIGTERM/SIGINT drain; a second signal stops now).

    \b
    conveyor worker -A jobs:app -q media -c 8
    conveyor worker -A jobs:app --detach --pidfile w.pid --logfile w.log
    conveyor worker stop --pidfile w.pid
    """
    if ctx.invoked_subcommand is not None:
        return
    if logfile is not None and not detach:
        raise click.UsageError("--logfile is for --detach; a foreground worker logs to stderr")
    if as_json and not detach:
        raise click.UsageError("--json is for --detach; a foreground worker writes a log")
    if detach and pidfile is None:
        raise click.UsageError("--detach needs --pidfile PATH, so that `conveyor worker stop "
                               "--pidfile PATH` can find the worker")
    if (max_tasks_per_child is not None or max_memory_per_child is not None) \
            and pool != "process":
        raise click.UsageError("--max-tasks-per-child and --max-memory-per-child replace pool "
                               f"processes; the {pool} pool has none (use --pool process)")
    if burst_horizon is not None and not burst:
        raise click.UsageError("--burst-horizon is for --burst")
    if not app_path:
        raise ConfigurationError("no app given: pass --app module:attr or set CONVEYOR_APP")
    if url:
        os.environ["CONVEYOR_URL"] = url  # pool processes and the app's default URL follow it
    # A process pool's first processes start now, so that they import the app while this
    # process imports it and the runtime (pools/spawn.py).
    launcher = (_launch_ahead(app_path, concurrency, bool((ctx.obj or {}).get("fresh_process")))
                if pool == "process" and not detach else None)
    try:
        from ..worker import Worker, load_app
        from ..worker.dispatcher import BURST_HORIZON

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
            owns_process=True,
            burst_horizon=BURST_HORIZON if burst_horizon is None else burst_horizon,
            scheduler=not no_scheduler,
            max_tasks_per_child=max_tasks_per_child,
            max_memory_per_child=max_memory_per_child,
            prefetch=prefetch,
            launcher=launcher,
        )  # validates every option before anything starts
        if pidfile is not None:
            pidfile = pidfile.absolute()
            running = live_pid(pidfile)
            if running is not None and running != os.getpid():
                raise click.ClickException(
                    f"pidfile {str(pidfile)!r} names process {running}, which is running: stop it "
                    f"first (conveyor worker stop --pidfile {pidfile}) or use another pidfile"
                )
        if detach:
            assert pidfile is not None
            from .output import Output

            try:
                _detach(ctx, Output(as_json), app_path, app.url, pidfile,
                        (logfile or pidfile.with_suffix(".log")).absolute())
            finally:
                app.close()
            return
        _run_foreground(ctx, worker, log_level, log_format, pidfile)
    finally:
        if launcher is not None:
            launcher.close()  # any the pool did not take: the worker failed before its start


def _launch_ahead(app_path: str, concurrency: int | None, fresh_process: bool) -> Launcher:
    """The process pool's first processes, started: one per core but the one this process
    keeps busy meanwhile (a process more would only slow the first one down). `fresh_process`:
    this process was started to run the command alone (then the first may be forked)."""
    from ..worker.pools import default_concurrency
    from ..worker.pools.spawn import Launcher

    launcher = Launcher(app_path, concurrency or default_concurrency("process"))
    launcher.launch_ahead(max(1, (os.cpu_count() or 1) - 1), fresh_process=fresh_process)
    return launcher


def _run_foreground(ctx: click.Context, worker: Worker, log_level: str, log_format: str,
                    pidfile: Path | None) -> None:
    from ..worker import WorkerStopped

    setup_logging(log_level, log_format)
    # Only the `conveyor` command owns its process; under CliRunner (tests) it is not ours.
    in_own_process = bool((ctx.obj or {}).get("own_process"))
    if pidfile is not None:
        write_pidfile(pidfile, os.getpid())
    try:
        worker.run()
    except WorkerStopped as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        worker.app.close()
        if pidfile is not None:
            remove_pidfile(pidfile, os.getpid())
    if worker.abandoned_threads and in_own_process:
        # Handed-back jobs' threads are still running: end them with the process, now.
        import logging

        logging.shutdown()
        os._exit(0)


def _child_argv(ctx: click.Context, app_path: str, url: str, pidfile: Path) -> list[str]:
    """This same command line, minus --detach and --logfile."""
    params = ctx.params
    argv = [sys.executable, "-m", "conveyor", "worker", "--app", app_path, "--url", url,
            "--pool", params["pool"], "--prefetch", str(params["prefetch"]),
            "--shutdown-timeout", repr(params["shutdown_timeout"]),
            "--log-level", params["log_level"], "--log-format", params["log_format"],
            "--pidfile", str(pidfile)]
    if params["queues"]:
        argv += ["--queues", params["queues"]]
    if params["concurrency"] is not None:
        argv += ["--concurrency", str(params["concurrency"])]
    if params["name"]:
        argv += ["--name", params["name"]]
    for option in ("max_tasks_per_child", "max_memory_per_child"):
        if params[option] is not None:
            argv += ["--" + option.replace("_", "-"), str(params[option])]
    if params["no_scheduler"]:
        argv.append("--no-scheduler")
    if params["burst"]:
        argv.append("--burst")
        if params["burst_horizon"] is not None:
            argv += ["--burst-horizon", repr(params["burst_horizon"])]
    return argv


def _detach(ctx: click.Context, out: Output, app_path: str, url: str, pidfile: Path,
            logfile: Path) -> None:
    from ..app import Conveyor

    if not pidfile.parent.is_dir():
        raise ConfigurationError(f"cannot write pidfile {str(pidfile)!r}: the folder "
                                 f"{str(pidfile.parent)!r} does not exist")
    host = socket.gethostname()
    with Conveyor(url) as watcher:
        watcher.inspector.schema_version()  # a bad URL fails here, before anything starts
        child = spawn_detached(_child_argv(ctx, app_path, url, pidfile), logfile)
        write_pidfile(pidfile, child.pid)
        deadline = time.monotonic() + START_TIMEOUT
        name: str | None = None
        with out.activity("starting the worker"):
            while name is None:
                code = child.poll()
                if code is not None:
                    remove_pidfile(pidfile, child.pid)
                    raise click.ClickException(f"the worker exited at once with code {code}; "
                                               f"the end of its log {logfile}:\n"
                                               f"{log_tail(logfile)}")
                name = next((w.name for w in watcher.inspector.workers()
                             if w.pid == child.pid and w.host == host), None)
                if name is None:
                    if time.monotonic() > deadline:
                        raise click.ClickException(
                            f"the worker (pid {child.pid}) has not registered after "
                            f"{START_TIMEOUT:.0f} s; it is still running: see {logfile}")
                    time.sleep(0.05)
    # Detached on purpose: not ours to wait for. Tell Popen so, or it warns that the child
    # is still running when this process lets go of it.
    child.returncode = 0
    if out.as_json:
        out.data({"name": name, "pid": child.pid, "pidfile": str(pidfile),
                  "logfile": str(logfile)})
    else:
        out.line(f"worker {name} started in the background: pid {child.pid}, "
                 f"pidfile {pidfile}, log {logfile}")


@worker_command.command("stop")
@click.option("--pidfile", required=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="PATH", help="The pidfile the worker was started with.")
@click.option("--timeout", type=DURATION, default=60.0, show_default=True, metavar="SECONDS",
              help="How long to wait for the worker to finish its running jobs and exit.")
@json_option
def stop_command(pidfile: Path, timeout: float, as_json: bool) -> None:
    """Stop a worker started with --detach --pidfile: send it SIGTERM (it stops claiming,
    finishes running jobs, exits), wait for it to exit, remove the pidfile.

    If it is still running after --timeout, run this again: a second SIGTERM makes it hand
    its running jobs back at once. (Windows has no SIGTERM: the process is ended at once and
    its running jobs come back when their leases expire.)"""
    from .output import Output

    out = Output(as_json)
    try:
        entry = read_pidfile_entry(pidfile)
    except PidfileError as exc:
        raise click.ClickException(str(exc)) from None
    pid = entry.pid
    if not pid_alive(pid):
        remove_pidfile(pidfile, pid)
        raise click.ClickException(f"no process {pid} is running: the pidfile {str(pidfile)!r} "
                                   "was stale (the worker died without removing it); removed it")
    verdict = check_worker(entry)
    if not verdict.is_worker:
        if verdict.certain:
            remove_pidfile(pidfile, pid)
            advice = "the pidfile was stale; removed it"
        else:
            advice = ("if it is a worker, stop it yourself; else remove the stale pidfile by "
                      "hand")
        raise click.ClickException(f"process {pid} named by {str(pidfile)!r} is not a conveyor "
                                   f"worker: {verdict.reason}. Not signalling it; {advice}.")
    terminate(pid)
    deadline = time.monotonic() + timeout
    with out.activity(f"waiting for worker {pid} to finish its jobs and exit"):
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    stopped = not pid_alive(pid)
    if stopped:
        remove_pidfile(pidfile, pid)
    if as_json:
        out.data({"pid": pid, "stopped": stopped, "pidfile": str(pidfile)})
    elif stopped:
        out.line(f"worker {pid} stopped")
    if not stopped:
        out.note(f"worker {pid} is still running after {format_duration(timeout)} (finishing "
                 "its jobs); run this again to make it hand them back at once")
        click.get_current_context().exit(1)
