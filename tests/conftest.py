from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))

from jobs_app import make_app

from conveyor import Conveyor


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture
def app(db_url: str) -> Iterator[Conveyor]:
    application = make_app(db_url, lease_timeout=5.0)
    yield application
    application.close()


@pytest.fixture
def exec_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "executions.log"
    monkeypatch.setenv("CONVEYOR_TEST_LOG", str(path))
    return path
