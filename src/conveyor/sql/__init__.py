"""Named SQL files, one folder per dialect, so SQLite and PostgreSQL can be diffed side by side."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load(dialect: str, name: str) -> str:
    """Text of `sql/<dialect>/<name>.sql`."""
    return (resources.files(__package__) / dialect / f"{name}.sql").read_text(encoding="utf-8")


@cache
def migrations(dialect: str) -> tuple[tuple[int, str, str], ...]:
    """(version, name, sql) of every numbered migration, in order."""
    folder = resources.files(__package__) / dialect / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            found.append((number, entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    return tuple(found)


def latest_version(dialect: str) -> int:
    return migrations(dialect)[-1][0]
