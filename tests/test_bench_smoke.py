"""The benchmark still runs: bench/run_all.py --smoke does every step of conveyor's run with
tiny counts (a few seconds; its figures mean nothing and are never recorded). The full runs stay
out of the suite (bench/README.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _run_all(*args: str) -> str:
    paths = [str(BENCH.parent / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    done = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--smoke", *args],
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout


def _recorded() -> str:
    return (BENCH / "RESULTS.md").read_text(encoding="utf-8")


def _conveyor_column(output: str) -> dict[str, str]:
    """The main table's rows: workload -> conveyor's figure."""
    lines = output[output.index("| workload"):].split("\n\n")[0].splitlines()[2:]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return {row[0]: row[1] for row in cells}


@pytest.mark.parametrize(("backend", "system"), [("sqlite", "conveyor"),
                                                 ("postgresql", "conveyor-pg")])
def test_the_bench_runs(backend: str, system: str, request: pytest.FixtureRequest) -> None:
    if backend == "postgresql":
        request.getfixturevalue("postgres_server")  # skips (or fails, in CI) without one
    before = _recorded()
    output = _run_all("--backend", backend, "--only", system)
    figures = _conveyor_column(output)
    assert any(row.startswith("process 300 queued no-ops") for row in figures), figures
    assert "n/a" not in figures.values(), figures  # every step measured something
    assert "not measured" not in output
    assert _recorded() == before  # a smoke run is never recorded


def test_the_postgresql_enqueue_floor_runs(request: pytest.FixtureRequest) -> None:
    # bench/pg_enqueue_floor.py sends conveyor's own enqueue statement with the parameters a
    # single enqueue sends: a change to that statement must not leave the script behind.
    request.getfixturevalue("postgres_server")  # skips (or fails, in CI) without one
    before = _recorded()
    paths = [str(BENCH.parent / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    done = subprocess.run([sys.executable, str(BENCH / "pg_enqueue_floor.py"), "--smoke"],
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    for variant in ("conveyor `task.enqueue()`", "conveyor's statement, psycopg",
                    "a one-column insert, psycopg"):
        assert f"| {variant} " in done.stdout, done.stdout
    assert _recorded() == before  # a smoke run is never recorded
