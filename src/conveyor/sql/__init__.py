"""Named SQL files, one folder per dialect, written in one style so a pair diffs to its dialect.

Every file uses named placeholders (`:name`) and reads the database's clock as `:now`. SQLite
runs the files as they are (the SQLite dialect binds `now` from this process's clock);
PostgreSQL gets them translated here: `:name` becomes psycopg's `%(name)s` and `:now` the
server's clock as the statement started (one instant per statement, as SQLite has one per
transaction).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

# The server's clock, one instant for the whole statement (a stable function, so an index on
# a time column still serves a comparison with it).
NOW = "CAST(extract(epoch FROM statement_timestamp()) AS DOUBLE PRECISION)"

# A string literal, a quoted identifier, a comment, a `::` cast, or a placeholder.
_TOKENS = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|::|%|:([A-Za-z_][A-Za-z0-9_]*)""")


def _pyformat(match: re.Match[str]) -> str:
    text, name = match.group(0), match.group(1)
    if name is None:  # psycopg reads `%` everywhere, in literals and comments too
        return text.replace("%", "%%")
    if name == "now":
        return NOW
    return f"%({name})s"


def to_pyformat(text: str) -> str:
    """`:name` placeholders as psycopg's `%(name)s`; `:now` as the server's clock."""
    return _TOKENS.sub(_pyformat, text)


def numbered(text: str) -> tuple[str, tuple[str, ...]]:
    """`text` with its `:name` placeholders as SQLite's numbered `?N`, and the name of each N
    (binding by position spares the driver a lookup by name per parameter). `:now`, when
    read, is always ?1."""
    names: dict[str, int] = {"now": 1} if uses_now(text) else {}

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        return f"?{names.setdefault(name, len(names) + 1)}"

    return _TOKENS.sub(number, text), tuple(names)


def replace_now(text: str, replacement: str) -> str:
    """`text` with each `:now` (outside literals and comments) replaced."""
    return _TOKENS.sub(
        lambda match: replacement if match.group(1) == "now" else match.group(0), text)


def count_now(text: str) -> int:
    return sum(match.group(1) == "now" for match in _TOKENS.finditer(text))


def uses_now(text: str) -> bool:
    """Whether a statement reads the clock (`:now` outside literals and comments)."""
    return any(match.group(1) == "now" for match in _TOKENS.finditer(text))


@cache
def source(dialect: str, name: str) -> str:
    """Text of `sql/<dialect>/<name>.sql` as written."""
    return (resources.files(__package__) / dialect / f"{name}.sql").read_text(encoding="utf-8")


@cache
def load(dialect: str, name: str) -> str:
    """Statement `name` ready for the dialect's driver."""
    text = source(dialect, name)
    return to_pyformat(text) if dialect == "postgresql" else text


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
