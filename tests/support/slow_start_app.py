"""An app whose process-pool children import it one after the other, as a test decides:
importable by worker processes as `slow_start_app:app`, with $SLOW_START_DIR set.

In a pool process (a process with a multiprocessing parent), the first import to claim the
folder's `first` file goes on at once; every later one is held until the folder's `gate` file
exists (at most $SLOW_START_HOLD seconds, so a regression fails a test rather than hangs it).
The `s.open_gate` task opens the gate. Each step appends "event pid time" to the folder's
`events` file with O_APPEND (whole lines, in the order they happened): `held` and `imported`
from the imports, `job` from the task. The worker process itself is never held. With
$SLOW_START_BROKEN set, the import fails in every pool process instead.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

from conveyor import Conveyor

HOLD_POLL = 0.01


def log_event(folder: Path, event: str) -> None:
    fd = os.open(folder / "events", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{event} {os.getpid()} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)


def is_first(folder: Path) -> bool:
    """Whether this process is the first to ask (the `first` file is created once)."""
    try:
        os.close(os.open(folder / "first", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return False
    return True


def hold_until_gate(folder: Path) -> None:
    log_event(folder, "held")
    deadline = time.monotonic() + float(os.environ.get("SLOW_START_HOLD", "30"))
    while not (folder / "gate").exists() and time.monotonic() < deadline:
        time.sleep(HOLD_POLL)


def import_in_pool_process() -> None:
    folder = Path(os.environ["SLOW_START_DIR"])
    if os.environ.get("SLOW_START_BROKEN"):
        raise RuntimeError("slow_start_app cannot be imported in a pool process")
    if not is_first(folder):
        hold_until_gate(folder)
    log_event(folder, "imported")


def make_app(url: str | None = None) -> Conveyor:
    app = Conveyor(url, lease_timeout=30.0)

    @app.task(name="s.open_gate")
    def open_gate() -> int:
        folder = Path(os.environ["SLOW_START_DIR"])
        log_event(folder, "job")
        (folder / "gate").touch()
        return os.getpid()

    return app


if multiprocessing.parent_process() is not None:
    import_in_pool_process()

app = make_app()
