"""The command line, in-process with CliRunner plus real subprocess runs."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import worker_env

from conveyor import Conveyor, JobState
from conveyor.cli import cli


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert "conveyor, version" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no app given"),
        (["-A", "no_such_module_xyz:app"], "cannot import the app module 'no_such_module_xyz'"),
        (["-A", "jobs_app:nothing"], "has no attribute 'nothing'"),
        (["-A", "jobs_app:make_app"], "not a Conveyor app"),
        (["-A", "jobs_app:app", "-q", "bad queue"], "may only contain"),
        (["-A", "jobs_app:app", "--url", "redis://x"], "unsupported database URL"),
        (["-A", "jobs_app:app", "-c", "0"], "0 is not in the range"),
        (["-A", "jobs_app:app", "--pool", "gevent"], "'gevent' is not one of"),
    ],
)
def test_worker_usage_errors_exit_2_without_traceback(runner: CliRunner, tmp_path: Path,
                                                      args: list[str], message: str) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    if "--url" not in args:
        args = [*args, "--url", url]
    result = runner.invoke(cli, ["worker", *args, "--burst"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_worker_burst_in_process(runner: CliRunner, app: Conveyor, db_url: str) -> None:
    jobs = [app.tasks["t.add"].enqueue(n, 1) for n in range(10)]
    result = runner.invoke(cli, ["worker", "-A", "jobs_app:app", "--url", db_url, "--burst",
                                 "-c", "2", "-q", "default"])
    assert result.exit_code == 0, result.output
    assert [job.result(timeout=1) for job in jobs] == [n + 1 for n in range(10)]


def test_worker_burst_horizon(runner: CliRunner, app: Conveyor, db_url: str) -> None:
    soon = app.tasks["t.add"].options(delay=0.3).enqueue(1, 1)
    later = app.tasks["t.add"].options(delay=120).enqueue(2, 2)
    result = runner.invoke(cli, ["worker", "-A", "jobs_app:app", "--url", db_url, "--burst",
                                 "--burst-horizon", "10s"])
    assert result.exit_code == 0, result.output
    assert soon.refresh().state is JobState.SUCCEEDED
    assert later.refresh().state is JobState.SCHEDULED
    result = runner.invoke(cli, ["worker", "-A", "jobs_app:app", "--url", db_url,
                                 "--burst-horizon", "10s"])
    assert result.exit_code == 2, result.output
    assert "--burst-horizon is for --burst" in result.output


def test_worker_reads_app_and_url_from_the_environment(runner: CliRunner, app: Conveyor,
                                                       db_url: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    job = app.tasks["t.add"].enqueue(40, 2)
    monkeypatch.setenv("CONVEYOR_APP", "jobs_app:app")
    monkeypatch.setenv("CONVEYOR_URL", db_url)
    result = runner.invoke(cli, ["worker", "--burst"])
    assert result.exit_code == 0, result.output
    assert job.result(timeout=1) == 42


def test_demo_in_process(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    levels = [logging.getLogger(name).level for name in ("conveyor.sqlite", "conveyor.jobs")]
    result = runner.invoke(cli, ["demo", "--images", "20", "--db", str(db)])
    assert result.exit_code == 0, result.output
    # It quiets worker warnings for itself only: the process's logging is as it was.
    assert [logging.getLogger(n).level for n in ("conveyor.sqlite", "conveyor.jobs")] == levels
    assert "What happened" in result.output
    with Conveyor(f"sqlite:///{db}") as app:
        counts = app.inspector.count_by_state()
    states: dict[JobState, int] = {}
    for queue in counts.values():
        for state, n in queue.items():
            states[state] = states.get(state, 0) + n
    assert states[JobState.FAILED] == 1
    assert states[JobState.CANCELLED] == 1
    assert states[JobState.SUCCEEDED] == 20 + 3 + 3 + 2 + 5  # (and a chord of 4 + 1)
    assert "album: 4 thumbnails" in result.output  # the chord's callback got every result
    # It ends with the commands to explore what it left, and they work as printed.
    lines = [line.strip() for line in result.output.splitlines()]
    assert f"export CONVEYOR_URL=sqlite:///{db.resolve()}" in lines
    show = next(line for line in lines if line.startswith("conveyor jobs show "))
    shown = runner.invoke(cli, [*show.split()[1:], "--url", f"sqlite:///{db}", "--json"])
    assert shown.exit_code == 0, shown.output
    assert '"failed"' in shown.output
    tree = next(line for line in lines if line.startswith("conveyor workflows show "))
    shown = runner.invoke(cli, [*tree.split()[1:], "--url", f"sqlite:///{db}", "--json"])
    assert shown.exit_code == 0 and '"succeeded"' in shown.output, shown.output
    again = runner.invoke(cli, ["demo", "--db", str(db)])
    assert again.exit_code == 2
    assert "already exists" in again.output


def test_demo_as_a_real_command(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "conveyor", "demo", "--images", "10"],
                            env=worker_env("sqlite:///unused.db"), cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "What happened" in result.stdout
    assert "demo.fetch" in result.stdout
    assert "conveyor demo --db demo.db" in result.stdout  # how to keep the database


def test_worker_as_a_real_command_rejects_a_missing_app(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "conveyor", "worker", "-A", "nope_mod:app",
                             "--url", f"sqlite:///{tmp_path / 'x.db'}"],
                            env=worker_env("sqlite:///unused.db"), cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "cannot import the app module 'nope_mod'" in result.stderr
    assert "Traceback" not in result.stderr
