"""The README's quickstart and API tour run as written: its files are taken from the README
itself, a real worker is started in their folder as the README says, and the usage script runs
to the end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import SRC, kill_all, wait_until

README = SRC.parent / "README.md"
BLOCK = re.compile(r"```python\n# (?P<name>\w+\.py)\n(?P<body>.*?)```", re.S)


def _files() -> dict[str, str]:
    return {m["name"]: f"# {m['name']}\n{m['body']}" for m in BLOCK.finditer(README.read_text())}


def _run_as_written(tmp_path: Path, app_module: str, script: str) -> str:
    files = _files()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONVEYOR_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    err = tmp_path / "worker.err"
    with open(err, "wb") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "worker", "-A", f"{app_module}:app"],
            cwd=tmp_path, env=env, stdout=stderr, stderr=stderr)
    try:
        result = subprocess.run([sys.executable, script], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=90)
    finally:
        kill_all([worker])
    assert result.returncode == 0, f"{result.stderr}\n--- worker:\n{err.read_text()}"
    return result.stdout


@pytest.mark.parametrize("module, script", [("jobs", "enqueue.py"), ("tour", "use_tour.py"),
                                            ("pipeline", "use_pipeline.py")])
def test_the_readme_runs_as_written(tmp_path: Path, module: str, script: str) -> None:
    assert {f"{module}.py", script} <= set(_files()), "the README lost one of its files"
    out = _run_as_written(tmp_path, module, script)
    if module == "jobs":
        assert "'ok': True" in out and "queued" in out
    elif module == "pipeline":  # the Celery examples' conveyor versions
        assert out.splitlines() == ["10", str([9] * 10), "30", "7 True"]
    else:
        lines = out.splitlines()
        assert lines[1] == "3"  # the tour's job.result()
        assert lines[-1] == "cancelled"


def test_the_readme_beat_schedule_runs_on_two_workers(tmp_path: Path) -> None:
    """The README's Celery-beat example: two workers started as it says write its schedules,
    and `conveyor schedules list` shows what runs next."""
    (tmp_path / "beat.py").write_text(_files()["beat.py"])
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONVEYOR_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    err = tmp_path / "workers.err"
    with open(err, "wb") as stderr:
        workers = [subprocess.Popen(
            [sys.executable, "-m", "conveyor", "worker", "-A", "beat:app"],
            cwd=tmp_path, env=env, stdout=stderr, stderr=stderr) for _ in range(2)]

    def listed() -> list[dict[str, Any]]:
        if not (tmp_path / "conveyor.db").exists():
            return []
        result = subprocess.run(
            [sys.executable, "-m", "conveyor", "schedules", "list", "--json"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            return []
        schedules: list[dict[str, Any]] = json.loads(result.stdout)["schedules"]
        return schedules if len(schedules) == 5 else []

    try:
        schedules = wait_until(listed, timeout=60, interval=0.2,
                               message="the README's schedules to be listed")
    finally:
        kill_all(workers)
    by_name = {str(s["name"]): s for s in schedules}
    assert set(by_name) == {"beat.cleanup", "beat.purge_temp_files", "beat.health_check",
                            "backup-main", "backup-logs"}, err.read_text()
    assert by_name["beat.cleanup"]["description"] == "At 02:00 every day (Europe/Berlin)"
    assert by_name["beat.purge_temp_files"]["description"] == "Every 6 hours"
    assert by_name["beat.health_check"]["description"] == "Every 15 minutes"
    assert all(len(s["next_runs"]) == 3 for s in schedules)


def test_the_readme_celery_port_and_limits_run_as_written(tmp_path: Path) -> None:
    """The line-by-line Celery port (`archive.py`) runs on the worker command it gives, and the
    Limits example (`limits.py`) declares and enqueues as written."""
    files = _files()
    assert {"archive.py", "limits.py"} <= set(files), "the README lost one of its files"
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONVEYOR_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    command = re.search(r"# (conveyor worker -A archive:app .*)\n", files["archive.py"])
    assert command is not None
    err = tmp_path / "worker.err"
    with open(err, "wb") as stderr:
        worker = subprocess.Popen([sys.executable, "-m", *command[1].split()],
                                  cwd=tmp_path, env=env, stdout=stderr, stderr=stderr)
    script = ("from archive import download\n"
              "print(download.enqueue('SRR1').result(timeout=30))\n"
              "import limits\n"
              "job = limits.qsiprep.enqueue('sub-01', 'ses-1')\n"
              "print(limits.app.get_job(job.id).state)\n")
    try:
        result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=90)
    finally:
        kill_all([worker])
    assert result.returncode == 0, f"{result.stderr}\n--- worker:\n{err.read_text()}"
    assert result.stdout.splitlines() == ["SRR1.fastq", "queued"]
