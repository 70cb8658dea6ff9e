"""`conveyor` command group. Users' mistakes end with a message and exit code 2, no traceback."""

from __future__ import annotations

import logging
import sqlite3
import sys
from typing import Any

import click

from .. import __version__
from ..errors import ConfigurationError, DatabaseUnavailable, InvalidInput, JobNotFound
from .logformat import formatter

USER_ERRORS = (ConfigurationError, InvalidInput, JobNotFound)


def _invoke_translating(invoke: Any, ctx: click.Context) -> Any:
    try:
        return invoke(ctx)
    except USER_ERRORS as exc:
        raise click.UsageError(str(exc), ctx) from None
    except DatabaseUnavailable as exc:  # not the user's mistake: exit 1, say what is wrong
        raise click.ClickException(str(exc)) from None
    except sqlite3.DatabaseError as exc:  # e.g. the URL names a file that is not a database
        raise click.ClickException(f"database error: {exc}") from None
    except UnicodeEncodeError as exc:  # e.g. a filter taken from a file name that is not UTF-8
        text = exc.object if isinstance(exc.object, str) else ""
        shown = repr(text if len(text) <= 60 else text[:57] + "...")
        raise click.UsageError(
            f"the value {shown} holds {text[exc.start:exc.end]!r}, which is not valid text "
            "(bytes that are not UTF-8); no database takes it", ctx) from None


class ConveyorCommand(click.Command):
    """Turns conveyor's own configuration and input errors into clean usage errors that show
    this command's usage line."""

    def invoke(self, ctx: click.Context) -> Any:
        return _invoke_translating(super().invoke, ctx)


class ConveyorGroup(click.Group):
    """Like ConveyorCommand, for groups; its commands and subgroups get the same treatment."""

    command_class = ConveyorCommand
    group_class = type  # subgroups are ConveyorGroups too

    def invoke(self, ctx: click.Context) -> Any:
        return _invoke_translating(super().invoke, ctx)


def setup_logging(level: str, log_format: str = "text") -> None:
    """Log to stderr at `level`, as text or as JSON lines (cli/logformat.py)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])


@click.group(cls=ConveyorGroup)
@click.version_option(__version__, prog_name="conveyor")
def cli() -> None:
    """conveyor: durable background jobs on SQLite.

    Every command takes --url (or CONVEYOR_URL) and -A/--app (or CONVEYOR_APP), and --json
    for scripts. Exit codes: 0 ok, 1 failed, 2 bad usage.
    """


def main() -> None:
    cli(prog_name="conveyor", obj={"own_process": True})


# Commands register themselves on `cli`.
from . import (  # noqa: E402
    db,
    demo,
    enqueue,
    health,
    jobs,
    purge,
    status,
    worker,
    workers,
)

__all__ = ["cli", "db", "demo", "enqueue", "health", "jobs", "main", "purge", "status", "worker",
           "workers"]
