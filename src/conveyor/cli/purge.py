"""`conveyor purge`: delete a queue's jobs (of one state), after a dry run."""

from __future__ import annotations

import click

from ..job import JobState
from .group import cli
from .options import connection_options, json_option, open_app
from .output import Output
from .states import STATE


@cli.command("purge", short_help="Delete a queue's jobs (only counts them without --yes).")
@click.option("-q", "--queue", required=True, metavar="QUEUE", help="The queue to purge.")
@click.option("--state", type=STATE, help="Only jobs in this state [default: every state "
                                          "except running].")
@click.option("--yes", is_flag=True, help="Really delete. Without it, only count.")
@connection_options
@json_option
def purge_command(queue: str, state: JobState | None, yes: bool, app_path: str | None,
                  url: str | None, as_json: bool) -> None:
    """Delete a queue's jobs that are not running (of one state, with --state).

    Without --yes, prints how many it would delete and deletes nothing."""
    if state is JobState.RUNNING:
        raise click.BadParameter("running jobs are never purged under their workers; cancel "
                                 "them first (conveyor jobs cancel ID...)",
                                 param_hint="'--state'")
    out = Output(as_json)
    which = f"{state} jobs" if state is not None else "jobs (any state but running)"
    with open_app(app_path, url) as app:
        if not yes:
            count = app.purge(queue, state, dry_run=True)
            if as_json:
                out.data({"queue": queue, "state": state, "dry_run": True, "count": count})
            else:
                out.line(f"would delete {count} {which} from queue {queue!r}; nothing was "
                         "deleted: run again with --yes to delete them")
            return
        with out.activity(f"purging queue {queue!r}"):
            count = app.purge(queue, state)
    if as_json:
        out.data({"queue": queue, "state": state, "dry_run": False, "count": count})
    else:
        out.line(f"deleted {count} {which} from queue {queue!r}")
