"""The files of a SQLite database as an operator sees them: who may read them, and how large
the write-ahead log stays."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import wait_until, worker_thread
from jobs_app import make_app

from conveyor import Job, JobState
from conveyor.backends import sqlite_path
from conveyor.backends.sqlite import WAL_TRUNCATE_ABOVE

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


def wait_for_end(job: Job) -> None:
    wait_until(lambda: job.refresh().state.is_terminal, message=f"job {job.id} to end")


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


def test_the_wal_shrinks_back_after_a_long_reader_once_the_worker_is_idle(
        sqlite_url: str) -> None:
    """A connection that keeps a read transaction open stops checkpoints from reaching the end
    of the WAL, so it grows while jobs are enqueued and run; once the reader is done and the
    worker idles, the WAL is cut back instead of staying that size for good."""
    db = sqlite_path(sqlite_url)
    wal = Path(f"{db}-wal")
    app = make_app(sqlite_url)
    try:
        app.inspector.schema_version()  # creates the database
        reader = sqlite3.connect(db, isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM conveyor_jobs").fetchone()  # holds a snapshot
            payload = "x" * 1500
            with worker_thread(app, concurrency=8):
                for _ in range(8):
                    jobs = app.enqueue_many(
                        [app.tasks["t.echo"].prepare(payload, n) for n in range(250)])
                    wait_for_end(jobs[-1])
                grown = wal.stat().st_size
                assert grown > WAL_TRUNCATE_ABOVE
                reader.execute("COMMIT")
                wait_until(lambda: wal.stat().st_size < 256 * 1024, timeout=15,
                           message=f"the WAL ({grown} bytes) to be cut back")
        finally:
            reader.close()
        assert all(job.refresh().state is JobState.SUCCEEDED for job in jobs)
    finally:
        app.close()


def test_a_sqlite_library_too_old_for_conveyor_is_refused_before_the_file_is_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Debian 11's Python, for one, links SQLite 3.34.1: no RETURNING.
    from conveyor import Conveyor
    from conveyor.errors import ConfigurationError

    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.34.1")
    path = tmp_path / "jobs.db"
    app = Conveyor(f"sqlite:///{path}")
    with pytest.raises(ConfigurationError, match=r"conveyor needs SQLite 3\.35\.0 or newer, "
                                                 r"and this Python's sqlite3 module uses SQLite "
                                                 r"3\.34\.1"):
        app.backend  # noqa: B018
    assert not path.exists()
    monkeypatch.undo()
    with Conveyor(f"sqlite:///{path}") as app:  # the SQLite this Python has is new enough
        app.backend  # noqa: B018
    assert path.exists()
