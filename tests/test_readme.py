"""The README's quickstart and API tour run as written: its files are taken from the README
itself, a real worker is started in their folder as the README says, and the usage script runs
to the end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SRC, kill_all

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


@pytest.mark.parametrize("module, script", [("jobs", "enqueue.py"), ("tour", "use_tour.py")])
def test_the_readme_runs_as_written(tmp_path: Path, module: str, script: str) -> None:
    assert {f"{module}.py", script} <= set(_files()), "the README lost one of its files"
    out = _run_as_written(tmp_path, module, script)
    if module == "jobs":
        assert "'ok': True" in out and "queued" in out
    else:
        lines = out.splitlines()
        assert lines[1] == "3"  # the tour's job.result()
        assert lines[-1] == "cancelled"
