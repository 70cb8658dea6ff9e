"""The files of a SQLite database as an operator sees them: who may read them."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from jobs_app import make_app

from conveyor.backends import sqlite_path

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


@contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_and_its_wal_and_shm_are_readable_by_their_owner_only(
        sqlite_url: str) -> None:
    db = sqlite_path(sqlite_url)
    with umask(0o022), make_app(sqlite_url) as app:  # the usual umask: files 0644
        app.enqueue("t.add", 1, 2)
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            assert mode(path) == 0o600, path
    # An existing database keeps the mode its owner gave it (and so do its -wal and -shm).
    db.chmod(0o640)
    with umask(0o022), make_app(sqlite_url) as app:
        app.enqueue("t.add", 1, 2)
        assert [mode(path) for path in (db, Path(f"{db}-wal"))] == [0o640, 0o640]

