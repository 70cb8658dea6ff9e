"""An app that keeps succeeded jobs KEEP_SUCCEEDED seconds (failed and cancelled ones as
conveyor's defaults do), importable by worker processes as `retention_app:app`.

`python -c "import retention_app; retention_app.install(); from conveyor.cli import main;
main()" worker -A retention_app:app ...` runs a worker whose pruner looks every 0.1 s and
prunes every 0.3 s (the knobs of worker/duties/pruner.py) rather than every minute."""

from __future__ import annotations

import time
from pathlib import Path

from conveyor import Conveyor
from conveyor.worker.duties import pruner

KEEP_SUCCEEDED = 2.0

app = Conveyor(keep_succeeded=KEEP_SUCCEEDED)


@app.task(name="r.quick")
def quick() -> int:
    return 1


@app.task(name="r.fail", max_attempts=1)
def fail() -> None:
    raise ValueError("fails for good")


@app.task(name="r.gate")
def gate(gate_file: str, timeout: float = 120.0) -> str:
    """Runs until `gate_file` exists: a job that stays running while the test looks."""
    deadline = time.monotonic() + timeout
    while not Path(gate_file).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate_file} never opened")
        time.sleep(0.01)
    return "opened"


def install() -> None:
    pruner.CHECK_EVERY = 0.1
    pruner.PRUNE_EVERY = 0.3
