"""`conveyor db migrate|status`: the database schema, for both backends."""

from __future__ import annotations

import click

from ..app import SchemaStatus
from .group import cli
from .options import build_app, connection_options, json_option
from .output import Output


@cli.group("db")
def db_group() -> None:
    """The database schema: its version, and migrations to apply."""


def _view(status: SchemaStatus) -> dict[str, object]:
    return {"current": status.current, "latest": status.latest,
            "pending": list(status.pending), "up_to_date": status.is_current}


@db_group.command("status")
@connection_options
@json_option
def status_command(app_path: str | None, url: str | None, as_json: bool) -> None:
    """Show the schema version and pending migrations. Exit 1 when not up to date."""
    out = Output(as_json)
    app = build_app(app_path, url)
    try:
        status = app.schema_status()
    finally:
        app.close()
    if as_json:
        out.data(_view(status))
    elif status.is_current:
        out.line(f"schema version {status.current}: up to date")
    else:
        out.line(f"schema version {status.current}; this conveyor knows {status.latest}")
        if status.current > status.latest:
            out.line("the database is newer than this conveyor: upgrade conveyor here")
        for name in status.pending:
            out.line(f"pending: {name}")
        if status.pending:
            out.line("run `conveyor db migrate` to apply them")
    if not status.is_current:
        click.get_current_context().exit(1)


@db_group.command("migrate")
@connection_options
@json_option
def migrate_command(app_path: str | None, url: str | None, as_json: bool) -> None:
    """Apply pending migrations (safe to run from several hosts at once)."""
    out = Output(as_json)
    app = build_app(app_path, url)
    try:
        before = app.schema_status()
        after = app.migrate()
    finally:
        app.close()
    if as_json:
        out.data({"before": before.current, **_view(after), "applied": list(before.pending)})
    elif before.pending:
        for name in before.pending:
            out.line(f"applied {name}")
        out.line(f"schema version {after.current}: up to date")
    else:
        out.line(f"schema version {after.current}: already up to date")
