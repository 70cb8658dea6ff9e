"""The options every command shares (--url, -A/--app, --json) and opening the app from them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..app import Conveyor

F = TypeVar("F", bound=Callable[..., Any])


def app_option(fn: F) -> F:
    return click.option(
        "-A", "--app", "app_path", envvar="CONVEYOR_APP", metavar="MODULE:ATTR",
        help="Your Conveyor app, e.g. myproject.jobs:app (or set CONVEYOR_APP). Optional here: "
             "it supplies the database URL and lease timeout when --url is not given.",
    )(fn)


def url_option(fn: F) -> F:
    return click.option(
        "--url", envvar="CONVEYOR_URL", metavar="URL",
        help="Database URL, e.g. sqlite:///jobs.db (or set CONVEYOR_URL) "
             "[default: the app's, else ./conveyor.db].",
    )(fn)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON for scripts instead of tables.")(fn)


def connection_options(fn: F) -> F:
    """--url and -A/--app."""
    return app_option(url_option(fn))


def missing_database(url: str) -> str | None:
    """Why `url` names no existing database (so a read would create one), or None."""
    from ..backends import sqlite_path

    if url.split(":", 1)[0].lower() != "sqlite":
        return None
    path = sqlite_path(url)
    if path.exists():
        return None
    where = repr(os.path.abspath(path))
    if not path.is_absolute():
        where += f" (relative to the current directory {os.getcwd()})"
    return (f"no conveyor database at {where}; check --url or CONVEYOR_URL "
            "(a database is created by the first enqueue or worker)")


def build_app(app_path: str | None, url: str | None) -> Conveyor:
    """The user's app when -A names one (task code, settings), else a bare app on `url`.
    --url, when given, wins over the app's own URL."""
    from ..app import Conveyor
    from ..backends import resolve_url
    from ..worker.loader import load_app

    if app_path:
        app = load_app(app_path)
        if url:
            app.close()
            app.url = resolve_url(url)
        return app
    return Conveyor(url)


@contextmanager
def open_app(app_path: str | None, url: str | None, *,
             create: bool = False) -> Iterator[Conveyor]:
    """An app for one command, closed afterwards. Unless `create`, a database that does not
    exist yet is refused rather than created by a read."""
    app = build_app(app_path, url)
    try:
        if not create:
            problem = missing_database(app.url)
            if problem:
                raise ConfigurationError(problem)
        yield app
    finally:
        app.close()
