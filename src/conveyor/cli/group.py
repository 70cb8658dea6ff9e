"""`conveyor` command group. Users' mistakes end with a message and exit code 2, no traceback."""

from __future__ import annotations

import importlib
import json
import sqlite3
import sys
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Any

import click

from .._version import __version__
from ..errors import ConfigurationError, DatabaseUnavailable, InvalidInput, JobNotFound

USER_ERRORS = (ConfigurationError, InvalidInput, JobNotFound)
JSON_ERRORS = "conveyor.json_errors"  # ctx.meta: --json was given, so errors are JSON too
LOG_FORMATS = ("text", "json")  # --log-format: cli/logformat.py
NOTES = "conveyor.notes"  # ctx.meta: notes held back under --json (cli/output.py)


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


def _echo_json_error(message: str, exit_code: int) -> None:
    click.echo(json.dumps({"error": message, "exit_code": exit_code}, ensure_ascii=False),
               err=True)


class JsonError(click.ClickException):
    """An error of a command run with --json: one JSON object on stderr,
    {"error": "...", "exit_code": N}, and the same exit code as without --json."""

    def show(self, file: Any = None) -> None:
        _echo_json_error(self.message, self.exit_code)


def json_error(message: str, exit_code: int) -> JsonError:
    """A JsonError that exits with `exit_code` (click reads it from the class)."""
    error: JsonError = type("JsonError", (JsonError,), {"exit_code": exit_code})(message)
    return error


def _wants_json(args: Sequence[str]) -> bool:
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def _flush_notes(ctx: click.Context, exit_code: int) -> None:
    """Under --json, what a command said on stderr, as JSON: the error of a failed command,
    or its notes."""
    notes: list[str] = ctx.meta.pop(NOTES, [])
    if not notes:
        return
    if exit_code:
        _echo_json_error("\n".join(notes), exit_code)
        return
    for note in notes:
        click.echo(json.dumps({"note": note}, ensure_ascii=False), err=True)


class RootGroup(ConveyorGroup):
    """The `conveyor` group. When the command line holds --json, every error (bad usage
    found while parsing, a conveyor error, a failed command's messages) is reported as JSON
    on stderr, so scripts read stdout as the result and stderr as JSON alike."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        as_json = _wants_json(args)
        try:
            ctx = super().make_context(info_name, args, parent=parent, **extra)
        except click.ClickException as exc:
            if as_json:
                raise json_error(exc.format_message(), exc.exit_code) from None
            raise
        ctx.meta[JSON_ERRORS] = as_json
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        if not ctx.meta.get(JSON_ERRORS):
            return super().invoke(ctx)
        try:
            result = super().invoke(ctx)
        except click.exceptions.Exit as exc:
            _flush_notes(ctx, exc.exit_code)
            raise
        except click.ClickException as exc:
            notes: list[str] = ctx.meta.pop(NOTES, [])
            raise json_error("\n".join([*notes, exc.format_message()]),
                             exc.exit_code) from None
        _flush_notes(ctx, 0)
        return result


def setup_logging(level: str, log_format: str = "text") -> None:
    """Log to stderr at `level`, as text or as JSON lines (cli/logformat.py)."""
    import logging  # here: `conveyor worker` launches its pool's processes before this

    from .logformat import formatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])


@click.group(cls=RootGroup)
@click.version_option(__version__, prog_name="conveyor")
def cli() -> None:
    """conveyor: durable background jobs on SQLite.

    Every command takes --url (or CONVEYOR_URL) and -A/--app (or CONVEYOR_APP), and --json
    for scripts (then errors too are JSON, on stderr: {"error": ..., "exit_code": ...}).
    Exit codes: 0 ok, 1 failed, 2 bad usage.
    """


def main(fresh_process: bool = False) -> None:
    """`own_process`: the command may end this process; `fresh_process`: this process was
    started to run the command and holds nothing else (cli.entry_point)."""
    cli(prog_name="conveyor", obj={"own_process": True, "fresh_process": fresh_process})


# `conveyor NAME` lives in conveyor/cli/NAME.py, which registers it on `cli`. A module is
# imported when its command is first read, so that `conveyor worker` imports the worker's
# command alone, not every other command's imports (rich, the views...).
COMMANDS = ("db", "demo", "enqueue", "health", "jobs", "limits", "prune", "purge", "queues",
            "scheduler", "schedules", "status", "worker", "workers", "workflows")


class LazyCommands(MutableMapping[str, click.Command]):
    """`cli.commands`: every command's name at once (click lists and sorts names without
    reading the commands), each command's module imported when the command is read (by
    help, or to run it)."""

    def __init__(self, names: Sequence[str]) -> None:
        self._unloaded = set(names)
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name in self._unloaded:
            importlib.import_module(f"{__package__}.{name}")  # registers it: __setitem__
            if name in self._unloaded:
                raise RuntimeError(f"{__package__}.{name} did not register `conveyor {name}`")
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._unloaded.discard(name)
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        if name in self._unloaded:
            self._unloaded.discard(name)
        else:
            del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._unloaded | self._loaded.keys()))

    def __len__(self) -> int:
        return len(self._unloaded) + len(self._loaded)

    def __contains__(self, name: object) -> bool:
        return name in self._unloaded or name in self._loaded


cli.commands = LazyCommands(COMMANDS)

__all__ = ["COMMANDS", "LOG_FORMATS", "NOTES", "cli", "main"]
