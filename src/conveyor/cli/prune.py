"""`conveyor prune`: delete old finished jobs by hand, as a worker's pruner does on its own."""

from __future__ import annotations

import click

from ..job import TERMINAL_STATES, JobState
from .durations import format_duration
from .group import cli
from .options import connection_options, json_option, open_app
from .output import Output
from .params import DURATION
from .states import STATE

ORDER = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@cli.command("prune", short_help="Delete old finished jobs (the app's keep_* settings).")
@click.option("--older-than", "older_than", type=DURATION, metavar="DURATION",
              help="Delete jobs that ended longer ago than this (7d, 12h, 90s) [default: the "
                   "app's keep_succeeded / keep_failed / keep_cancelled].")
@click.option("--state", "states", type=STATE, multiple=True,
              help="Only jobs in this final state: succeeded, failed or cancelled (repeat for "
                   "several) [default: all three].")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@connection_options
@json_option
def prune_command(older_than: float | None, states: tuple[JobState, ...], dry_run: bool,
                  app_path: str | None, url: str | None, as_json: bool) -> None:
    """Delete finished jobs that ended longer ago than their state's age: --older-than, else
    the app's keep_* settings (the app of -A, else conveyor's defaults: succeeded and
    cancelled 7 days, failed 30 days). Waiting and running jobs are never pruned, nor the
    newest job of a schedule. Deletes in small batches: workers keep running meanwhile."""
    for state in states:
        if state not in TERMINAL_STATES:
            raise click.BadParameter(
                f"{state} jobs are never pruned, only finished ones (succeeded, failed, "
                "cancelled); cancel a waiting job, or delete it (conveyor jobs delete ID...)",
                param_hint="'--state'")
    chosen = [state for state in ORDER if not states or state in states]
    out = Output(as_json)
    with open_app(app_path, url) as app:
        kept = app.retention.ages()
        ages = {state: older_than if older_than is not None else kept.get(state)
                for state in chosen}
        asked = {state: age for state, age in ages.items() if age is not None}
        with out.activity("pruning finished jobs"):
            counts = app.prune(asked, dry_run=dry_run) if asked else {}
    if as_json:
        out.data({"dry_run": dry_run,
                  "older_than": {str(state): age for state, age in ages.items()},
                  "counts": {str(state): counts.get(state, 0) for state in chosen},
                  "total": sum(counts.values())})
        return
    verb = "would delete" if dry_run else "deleted"
    for state, age in ages.items():
        if age is None:
            out.line(f"{state}: kept forever (keep_{state}=None), nothing {verb}")
        else:
            out.line(f"{state}: {verb} {counts[state]} ended more than "
                     f"{format_duration(age)} ago")
    if dry_run:
        out.note("nothing was deleted (--dry-run)")
