"""Fixtures of the contract suite.

Every test that takes `db_url` (directly, or through `app` or `backend`) runs once per backend:
`[sqlite]` on a fresh SQLite file, `[postgresql]` on a fresh schema of the PostgreSQL server at
$CONVEYOR_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres).
`@pytest.mark.backends("sqlite")` keeps a test that is about SQLite itself on SQLite.

A PostgreSQL server that cannot be reached skips the `[postgresql]` tests locally, and fails
them when $CI is set: `postgres_server` below is the one place that decides.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))

from databases import (
    POSTGRES_URL,
    drop_abandoned_schemas,
    fresh_schema,
    in_ci,
    postgres_problem,
)
from jobs_app import make_app
from workflow_app import make_app as make_workflow_app

from conveyor import Conveyor
from conveyor.backends import Backend, open_backend

BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    # The CLI's tables fit COLUMNS when it is set (pytest-xdist's workers set 80): the tests
    # read the width a pipe gets, whatever terminal the suite was started from.
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)
    config.addinivalue_line(
        "markers", "backends(*names): run this test only on these backends (sqlite, postgresql)")
    config.addinivalue_line("markers", "postgresql: the test's PostgreSQL variant (automatic)")
    config.addinivalue_line(
        "markers", "known_bug(*backends, reason): a src bug makes this test fail on these "
        "backends: strict xfail there, so the fix is noticed")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise every test that needs a database over the backends it may run on."""
    if "backend_name" not in metafunc.fixturenames:
        return
    allowed: tuple[str, ...] = BACKENDS
    for marker in metafunc.definition.iter_markers("backends"):
        unknown = set(marker.args) - set(BACKENDS)
        if unknown:
            raise pytest.UsageError(f"{metafunc.definition.nodeid}: unknown backends {unknown}")
        allowed = tuple(name for name in allowed if name in marker.args)
    bugs = {
        name: marker.kwargs["reason"]
        for marker in metafunc.definition.iter_markers("known_bug")
        for name in marker.args
    }

    def marks(name: str) -> list[pytest.MarkDecorator]:
        found = [pytest.mark.postgresql] if name == "postgresql" else []
        if name in bugs:
            found.append(pytest.mark.xfail(strict=True, reason=bugs[name]))
        return found

    metafunc.parametrize(
        "backend_name", [pytest.param(name, id=name, marks=marks(name)) for name in allowed])


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL server URL; skips (locally) or fails (under CI) when it is missing."""
    problem = postgres_problem(POSTGRES_URL)
    if problem is not None:
        if in_ci():
            pytest.fail(f"PostgreSQL is required in CI (CI is set): {problem}", pytrace=False)
        pytest.skip(f"PostgreSQL not available: {problem}")
    drop_abandoned_schemas(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
def db_url(backend_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database for this test: a SQLite file URL or a PostgreSQL schema URL."""
    if backend_name == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobs.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    with fresh_schema(server) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file URL, for tests about SQLite itself (never parametrised)."""
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture
def app(db_url: str) -> Iterator[Conveyor]:
    application = make_app(db_url, lease_timeout=5.0)
    yield application
    application.close()


@pytest.fixture
def wapp(db_url: str) -> Iterator[Conveyor]:
    """The workflow tests' app (tests/support/workflow_app.py) on this test's database."""
    application = make_workflow_app(db_url, lease_timeout=5.0)
    yield application
    application.close()


@pytest.fixture
def backend(db_url: str) -> Iterator[Backend]:
    """The storage layer alone, opened the way an app opens it."""
    store = open_backend(db_url)
    yield store
    store.close()


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """click's CliRunner, in-process, with no app or URL taken from the environment."""
    monkeypatch.delenv("CONVEYOR_APP", raising=False)
    monkeypatch.delenv("CONVEYOR_URL", raising=False)
    return CliRunner()


@pytest.fixture
def exec_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "executions.log"
    monkeypatch.setenv("CONVEYOR_TEST_LOG", str(path))
    return path
