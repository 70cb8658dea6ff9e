"""Storage backends, chosen by URL. A backend's module is imported when one is opened: a
process pool's process imports the app, and opens no database unless a job enqueues."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .base import Backend, Durability, Inspector

if TYPE_CHECKING:
    from .sqlite import SQLiteBackend

__all__ = ["Backend", "Inspector", "SQLiteBackend", "known_migrations", "open_backend",
           "resolve_url", "sqlite_path"]

DEFAULT_URL = "sqlite:///conveyor.db"


def resolve_url(url: str | None) -> str:
    """The URL to use: the one given, else $CONVEYOR_URL, else ./conveyor.db."""
    if url is None:
        url = os.environ.get("CONVEYOR_URL") or DEFAULT_URL
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(
            "the database URL is empty; use sqlite:///relative.db or sqlite:////abs/path.db"
        )
    return url.strip()


def sqlite_path(url: str) -> Path:
    """sqlite:///relative.db -> relative.db; sqlite:////abs/path.db -> /abs/path.db."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ConfigurationError(
            f"{url!r} is not a SQLite URL; write sqlite:///relative.db or sqlite:////abs/path.db"
        )
    path = url[len(prefix):]
    if not path or path.endswith("/"):
        raise ConfigurationError(f"{url!r} names no database file; e.g. sqlite:///conveyor.db")
    if path == ":memory:" or path.startswith("file::memory:"):
        raise ConfigurationError(
            "an in-memory SQLite database cannot be shared with worker processes; "
            "use a file, e.g. sqlite:///conveyor.db"
        )
    return Path(path)


def open_backend(
    url: str | None, *, durability: Durability = "normal", auto_migrate: bool = True
) -> Backend:
    """The backend for `url`. With auto_migrate, a missing schema is created (and on SQLite
    an older one upgraded); without, the schema is left for `migrate()`."""
    resolved = resolve_url(url)
    scheme = resolved.split(":", 1)[0].lower() if ":" in resolved else ""
    if scheme == "sqlite":
        from .sqlite import SQLiteBackend

        return SQLiteBackend(
            sqlite_path(resolved), durability=durability, auto_migrate=auto_migrate
        )
    if scheme in ("postgres", "postgresql"):
        try:
            from .postgres import PostgresBackend
        except ImportError as exc:
            raise ConfigurationError(
                f"{resolved.split('://')[0]}:// URLs need the PostgreSQL extra: "
                f"pip install 'conveyor[postgres]' ({exc})"
            ) from None
        return PostgresBackend(resolved, auto_migrate=auto_migrate)
    raise ConfigurationError(
        f"unsupported database URL {resolved!r}; use sqlite:///relative.db, "
        "sqlite:////abs/path.db or postgresql://user@host/dbname"
    )


def known_migrations(backend: Backend) -> tuple[tuple[int, str], ...]:
    """(version, name) of every schema migration this conveyor ships for `backend`'s dialect,
    in order: the last version is the one the code expects."""
    from .. import sql

    return tuple((version, name) for version, name, _ in sql.migrations(backend.dialect))


if not TYPE_CHECKING:  # (so a type checker still refuses a misspelled name)
    def __getattr__(name: str) -> Any:
        if name == "SQLiteBackend":
            from .sqlite import SQLiteBackend

            return SQLiteBackend
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
