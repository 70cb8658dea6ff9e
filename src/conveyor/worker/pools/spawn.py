"""Starting the process pool's processes (spawned; the very first forked where that is safe,
see Launcher.launch_ahead): the launcher, on the worker's side, and the entry point of each
process.

A process imports the app by its import path, says it is ready, takes its settings (the
database URL, the lease) and then runs the jobs its slot sends it. Its start needs nothing
but the app's import path and the pool's size, so `conveyor worker` launches the first ones
as soon as it has read its options, before it imports the app and the runtime itself: on two
cores, the worker's imports and a pool process's run side by side. This module imports only
what launching needs; a process imports what runs a job once it runs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

DEADLINE_POLL = 0.05

Started = tuple[multiprocessing.process.BaseProcess, multiprocessing.connection.Connection]


def import_path(path: str) -> str:
    """`module:attr` as the loader reads it (attr defaults to `app`)."""
    module_name, _, attr = path.strip().partition(":")
    return f"{module_name}:{attr or 'app'}"


class Launcher:
    """Starts pool processes for the app at `app_path`, one per slot of a pool of `size`, and
    holds those started ahead of the pool (`launch_ahead`) until the pool takes them."""

    def __init__(self, app_path: str, size: int) -> None:
        self.app_path = import_path(app_path)
        self.size = size
        self.context = multiprocessing.get_context("spawn")
        # Per slot, the id of the job asked to cancel: a flag naming the job cannot leak into
        # the next job that slot runs.
        self.cancel_flags: Any = self.context.Array("q", size, lock=False)
        # Per slot, the monotonic time by which its job must have stopped (0: none); the
        # process enforces it itself (_keep_deadline). A double is written whole on the
        # platforms Python runs on.
        self.deadlines: Any = self.context.Array("d", size, lock=False)
        self._ahead: dict[int, Started] = {}
        self._lock = threading.Lock()

    def launch(self, slot: int, *, fork: bool = False) -> Started:
        """Start a process for `slot`; it imports the app, then says it is ready. `fork`:
        by forking this process rather than starting a fresh interpreter (see launch_ahead)."""
        parent_end, child_end = self.context.Pipe()
        args: tuple[Any, ...] = (self.app_path, self.cancel_flags, self.deadlines, slot,
                                 child_end)
        make: Callable[..., multiprocessing.process.BaseProcess] = self.context.Process
        target: Callable[..., None] = child_main
        if fork:
            make = multiprocessing.get_context("fork").Process
            target, args = _forked_child_main, (parent_end, *args)
        process = make(target=target, args=args, name=f"conveyor-pool-{slot}", daemon=True)
        process.start()
        child_end.close()
        return process, parent_end

    def launch_ahead(self, count: int, *, fresh_process: bool = False) -> None:
        """Start the first `count` slots' processes now, before the pool exists.

        With `fresh_process` (this process was started to run the `conveyor` command and holds
        nothing of an application's: no connection, no module of its), the first is forked
        where that is safe (_fork_is_safe): a spawned process spends
        80-120 ms (a loaded machine here) starting Python and multiprocessing before it
        reaches the app, and the first job waits for it; a fork starts at once. Only the
        first: a process forked after it would inherit its pipe's ends and keep it from
        seeing them close."""
        fork = fresh_process and _fork_is_safe()
        for slot in range(min(count, self.size)):
            started = self.launch(slot, fork=fork and slot == 0)
            with self._lock:
                self._ahead[slot] = started

    def take(self, slot: int) -> Started | None:
        """The process launched ahead for `slot`, once (None if there is none)."""
        with self._lock:
            return self._ahead.pop(slot, None)

    def close(self) -> None:
        """Kill the processes launched ahead that no pool took."""
        with self._lock:
            left, self._ahead = list(self._ahead.values()), {}
        for process, conn in left:
            process.kill()
            process.join(5)
            conn.close()


def _fork_is_safe() -> bool:
    """Whether a fork of this process can be trusted: on Linux, with one thread (counted by
    the OS: a C thread such as faulthandler's watchdog counts too, for a fork copies only the
    thread that forks, and a lock another one held stays held in the copy), and before any
    conveyor database was opened here (its backends not even imported: a SQLite connection
    must never cross a fork)."""
    if not sys.platform.startswith("linux") or "conveyor.backends" in sys.modules:
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def settings_message(url: str, lease: float) -> bytes:
    """What a process needs once it has imported the app, sent before its first job."""
    return json.dumps({"url": url, "lease": lease}).encode()


def _keep_deadline(deadlines: Any, slot: int, lease: float) -> None:
    """Keep this process's hard deadline (lease_guard.HardDeadline, faulthandler's C thread)
    on the deadline the worker sets for this slot's job: if the worker freezes, dies or
    stops renewing, this process exits by itself before the job's lease can be taken over.
    0 means no job."""
    from ..lease_guard import HardDeadline

    hard = HardDeadline(lease)
    while True:
        deadline = float(deadlines[slot])
        hard.arm(deadline if deadline > 0 else None)
        time.sleep(DEADLINE_POLL)


def _forked_child_main(parent_end: multiprocessing.connection.Connection, *args: Any) -> None:
    """child_main in a forked process, which also holds the worker's end of its pipe: closed
    first, so that the pipe reads as closed once the worker closes it or dies. Its jobs start
    processes as a spawned one's do (multiprocessing set "fork" as it started this one)."""
    parent_end.close()
    multiprocessing.set_start_method("spawn", force=True)
    child_main(*args)


def child_main(
    app_path: str,
    cancel_flags: Any,
    deadlines: Any,
    slot: int,
    conn: multiprocessing.connection.Connection,
) -> None:
    """Entry point of a pool process (spawn-safe: everything arrives as plain values)."""
    # The worker decides when jobs stop: a terminal's Ctrl+C or a service manager's SIGTERM
    # sent to the whole process group must not kill the job mid-way.
    for name in ("SIGINT", "SIGTERM"):
        signum = getattr(signal, name, None)
        if signum is not None:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signum, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        # If the worker dies (even by kill -9), this process must not run on unsupervised.
        def watch_parent() -> None:
            parent.join()
            os._exit(70)

        threading.Thread(target=watch_parent, daemon=True).start()

    from ...backends.base import ClaimedJob
    from ...job import Progress
    from ...outcomes import outcome_to_dict
    from ..executor import execute
    from ..lease_guard import has_fileno
    from ..loader import load_app
    from ..time_limits import arm_alarm
    from .base import crash_outcome

    app = load_app(app_path)
    tasks = app.tasks
    conn.send_bytes(b'{"ready":true}')
    settings = _receive(conn)
    if settings is None:
        return
    app.url = settings["url"]  # tasks that enqueue follow-up jobs write where the worker reads
    if has_fileno(sys.stderr):
        threading.Thread(target=_keep_deadline, args=(deadlines, slot, settings["lease"]),
                         daemon=True).start()
    while True:
        message = _receive(conn)
        if message is None:
            return
        job = ClaimedJob(**message)

        def report(progress: Progress) -> None:
            conn.send_bytes(json.dumps({"progress": asdict(progress)}).encode())

        started = time.time()
        try:
            outcome = execute(
                job,
                tasks,
                is_cancel_requested=functools.partial(_flag_names, cancel_flags, slot, job.id),
                report_progress=report,
                max_result_bytes=app.max_payload_bytes,  # the child loaded the app itself
                arm_soft=arm_alarm,
            )
        except BaseException as exc:
            outcome = crash_outcome(job, tasks, exc, started)
        conn.send_bytes(json.dumps({"outcome": outcome_to_dict(outcome),
                                    "rss": peak_rss()}).encode())


def peak_rss() -> int | None:
    """This process's peak resident set size in bytes (None where it cannot be read).

    On Linux, VmHWM: getrusage's ru_maxrss also counts what the process was before its exec,
    and a spawned process is a fork of the worker until then, so it reported at least the
    worker's own size (a worker of 300 MB: 315 MB for a process that used 15)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, ValueError, IndexError), \
                open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS: bytes; else KiB


def _flag_names(cancel_flags: Any, slot: int, job_id: int) -> bool:
    return bool(cancel_flags[slot] == job_id)


def _receive(conn: multiprocessing.connection.Connection) -> Any:
    """The worker's next message, or None once it said stop (null) or closed the pipe."""
    try:
        return json.loads(conn.recv_bytes())
    except (EOFError, OSError):
        return None
