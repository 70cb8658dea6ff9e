"""Tasks the tests run, importable by worker processes as `jobs_app:app`.

Every execution of `record`/`gate` appends "start|end job pid time" lines to $CONVEYOR_TEST_LOG
with O_APPEND, so tests check what really ran rather than trusting the queue's own state.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from task_log import log_event

from conveyor import (
    Conveyor,
    JobCancelled,
    Retry,
    Snooze,
    SoftTimeLimitExceeded,
    TimeLimitExceeded,
    current_job,
)
from conveyor.backends import Backend

# A worker process whose wall clock is off (a clock step): CONVEYOR_TEST_CLOCK_SHIFT seconds.
_SHIFT = float(os.environ.get("CONVEYOR_TEST_CLOCK_SHIFT", "0"))
if _SHIFT:
    _real_time = time.time

    def _shifted_time() -> float:
        return _real_time() + _SHIFT

    time.time = _shifted_time


def _now() -> float:
    """The true wall clock, for the execution log, whatever the worker's clock says."""
    return time.time() - _SHIFT


def _log(event: str) -> None:
    log_event(event, _now())


# What os.listdir() gives for a file name that is not UTF-8 (the byte 0xff).
BAD_NAME = b"report-\xff.csv".decode("utf-8", "surrogateescape")


def make_app(url: str | None = None, lease_timeout: float | None = None,
             max_payload_bytes: int | None = None, backend: Backend | None = None) -> Conveyor:
    lease = lease_timeout or float(os.environ.get("CONVEYOR_TEST_LEASE", "30"))
    limit = max_payload_bytes or int(os.environ.get("CONVEYOR_TEST_MAX_PAYLOAD", 4 * 1024 * 1024))
    app = Conveyor(url, backend=backend, lease_timeout=lease, max_payload_bytes=limit)

    @app.task(name="t.add")
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="t.echo")
    def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"args": list(args), "kwargs": kwargs}

    @app.task(name="t.record")
    def record(tag: str = "", sleep: float = 0.0) -> int:
        _log("start")
        if sleep:
            time.sleep(sleep)
        _log("end")
        return os.getpid()

    @app.task(name="t.gate", max_attempts=5)
    def gate(gate_file: str, timeout: float = 60.0) -> int:
        """Runs until `gate_file` exists: lets a test hold a job mid-run."""
        _log("start")
        deadline = time.monotonic() + timeout
        while not Path(gate_file).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"gate {gate_file} never opened")
            time.sleep(0.01)
        _log("end")
        return os.getpid()

    @app.task(name="t.gate_pid", max_attempts=5)
    def gate_pid(gate_dir: str, timeout: float = 60.0, ticks_file: str | None = None) -> int:
        """Like `gate`, but each process waits for its own file `gate_dir/<pid>`: lets a test
        finish one run of a job while another run of the same job is still held. With
        `ticks_file`, appends "pid time" to it every 10 ms while it waits: a test can tell when
        a run last made progress, e.g. before its process was killed."""
        _log("start")
        gate_file = Path(gate_dir) / str(os.getpid())
        deadline = time.monotonic() + timeout
        while not gate_file.exists():
            if ticks_file is not None:
                fd = os.open(ticks_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, f"{os.getpid()} {_now():.6f}\n".encode())
                finally:
                    os.close(fd)
            if time.monotonic() > deadline:
                raise TimeoutError(f"gate {gate_file} never opened")
            time.sleep(0.01)
        _log("end")
        return os.getpid()

    @app.task(name="t.fail", max_attempts=3, backoff=0.2)
    def fail(message: str = "boom") -> None:
        _log("start")
        raise ValueError(message)

    @app.task(name="t.flaky", max_attempts=3, backoff=0.05)
    def flaky(succeed_on: int) -> int:
        attempt = current_job().attempt
        if attempt < succeed_on:
            raise ConnectionError(f"attempt {attempt} failed")
        return attempt

    @app.task(name="t.until_cancelled")
    def until_cancelled(timeout: float = 30.0) -> str:
        job = current_job()
        _log("start")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if job.cancel_requested:
                raise JobCancelled("stopping as asked")
            time.sleep(0.01)
        return "never cancelled"

    @app.task(name="t.cancellable")
    def cancellable(timeout: float = 60.0) -> str:
        """Looks at cancel_requested every 10 ms; logs its end when it sees it."""
        job = current_job()
        _log("start")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if job.cancel_requested:
                _log("end")
                raise JobCancelled("stopping as asked")
            time.sleep(0.01)
        return "never cancelled"

    @app.task(name="t.progress")
    def progress(steps: int) -> int:
        job = current_job()
        for step in range(steps):
            job.progress(step + 1, steps, f"step {step + 1}")
        return steps

    @app.task(name="t.progress_gate")
    def progress_gate(steps: int, gate_file: str, timeout: float = 60.0) -> int:
        """Reports `steps` steps of progress, then runs until `gate_file` exists."""
        job = current_job()
        for step in range(steps):
            job.progress(step + 1, steps, f"step {step + 1}")
        deadline = time.monotonic() + timeout
        while not Path(gate_file).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"gate {gate_file} never opened")
            time.sleep(0.01)
        return steps

    @app.task(name="t.spin", max_attempts=5, backoff=0.1)
    def spin(seconds: float) -> int:
        """Busy on the CPU, holding the GIL as Python code does, for `seconds`."""
        _log("start")
        deadline = time.monotonic() + seconds
        count = 0
        while time.monotonic() < deadline:
            count += sum(range(200))
        _log("end")
        return os.getpid()

    @app.task(name="t.bad_result")
    def bad_result() -> object:
        return {1, 2}

    @app.task(name="t.poison_result")
    def poison_result() -> list[str]:
        return ["fine", BAD_NAME]

    @app.task(name="t.poison_key")
    def poison_key() -> dict[str, Any]:
        return {"files": {BAD_NAME: 1}}

    @app.task(name="t.poison_error", max_attempts=2, backoff=0.01)
    def poison_error() -> None:
        raise FileNotFoundError(f"no such file: {BAD_NAME}")

    @app.task(name="t.nul_error", max_attempts=1)
    def nul_error() -> None:
        raise ValueError("a NUL \x00 in the message")

    @app.task(name="t.unprintable_error", max_attempts=1)
    def unprintable_error() -> None:
        class Unprintable(Exception):
            def __str__(self) -> str:
                raise RuntimeError("no str for you")

        raise Unprintable()

    @app.task(name="t.huge_error", max_attempts=1)
    def huge_error(size: int) -> None:
        raise ValueError("x" * size)

    @app.task(name="t.poison_progress", max_attempts=1)
    def poison_progress() -> str:
        current_job().progress(1, 2, f"reading {BAD_NAME}")
        return "unreachable"

    @app.task(name="t.big_result")
    def big_result(size: int) -> str:
        return "x" * size

    @app.task(name="t.slow_timeout", timeout=0.3, max_attempts=1)
    def slow_timeout(seconds: float) -> str:
        time.sleep(seconds)
        return "done"

    @app.task(name="t.async_sleep")
    async def async_sleep(seconds: float) -> str:
        import asyncio

        _log("start")
        await asyncio.sleep(seconds)
        _log("end")
        return "slept"

    @app.task(name="t.async_add")
    async def async_add(a: int, b: int) -> int:
        import asyncio

        await asyncio.sleep(0.01)
        return a + b

    @app.task(name="t.async_gate", max_attempts=5)
    async def async_gate(gate_file: str, timeout: float = 60.0) -> int:
        """Awaits until `gate_file` exists, without blocking its event loop."""
        import asyncio

        _log("start")
        deadline = time.monotonic() + timeout
        while not Path(gate_file).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"gate {gate_file} never opened")
            await asyncio.sleep(0.02)
        _log("end")
        return os.getpid()

    @app.task(name="t.async_blocking_gate_pid", max_attempts=5)
    async def async_blocking_gate_pid(gate_dir: str, timeout: float = 60.0) -> int:
        """A coroutine that blocks its event loop (time.sleep, never awaiting) until
        `gate_dir/<pid>` exists: nothing can cancel it."""
        _log("start")
        gate_file = Path(gate_dir) / str(os.getpid())
        deadline = time.monotonic() + timeout
        while not gate_file.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"gate {gate_file} never opened")
            time.sleep(0.01)
        _log("end")
        return os.getpid()

    @app.task(name="t.async_whoami")
    async def async_whoami(gate_file: str, timeout: float = 60.0) -> dict[str, Any]:
        """Reports progress naming its job, then awaits `gate_file` (other jobs run
        meanwhile on the same loop) and says which job current_job() names after it."""
        import asyncio

        job = current_job()
        job.progress(1, 2, f"job {job.id}")
        deadline = time.monotonic() + timeout
        while not Path(gate_file).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"gate {gate_file} never opened")
            await asyncio.sleep(0.02)
        after = current_job()
        return {"id": after.id, "same": after is job, "attempt": after.attempt}

    @app.task(name="t.async_fail", max_attempts=3, backoff=0.05)
    async def async_fail(message: str = "boom") -> None:
        import asyncio

        _log("start")
        await asyncio.sleep(0)
        raise ValueError(message)

    @app.task(name="t.async_slow_timeout", timeout=0.3, max_attempts=1)
    async def async_slow_timeout(seconds: float) -> str:
        import asyncio

        _log("start")
        await asyncio.sleep(seconds)
        _log("end")
        return "done"

    _retry_control_tasks(app)
    _time_limit_tasks(app)
    return app


def _runs(counter: str) -> int:
    """Count this run in `counter` (a file, shared by pool processes); the runs so far."""
    fd = os.open(counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)
    return Path(counter).stat().st_size


def _retry_control_tasks(app: Conveyor) -> None:
    """Tasks that steer their own job (conveyor.Retry, conveyor.Snooze, retry_on)."""

    @app.task(name="t.ask_retry", max_attempts=3, backoff=0.01)
    def ask_retry(delay: float | None = None, succeed_on: int = 0) -> int:
        _log("start")
        attempt = current_job().attempt
        _log("end")
        if attempt != succeed_on:
            raise Retry(delay, reason=f"not ready at attempt {attempt}")
        return attempt

    @app.task(name="t.snooze", max_attempts=1)
    def snooze(counter: str, times: int, delay: float = 0.2) -> int:
        _log("start")
        _log("end")
        if _runs(counter) <= times:
            raise Snooze(delay, reason="waiting for the resource")
        return current_job().attempt

    @app.task(name="t.picky", max_attempts=3, backoff=0.01, retry_on=(OSError,),
              no_retry_on=(FileNotFoundError,))
    def picky(kind: str) -> None:
        """OSError and its subclasses retry, except FileNotFoundError; nothing else retries."""
        _log("start")
        _log("end")
        raise {"os": OSError, "connection": ConnectionError, "missing": FileNotFoundError,
               "value": ValueError}[kind](f"{kind} trouble")

    @app.task(name="t.async_steer", max_attempts=3, backoff=0.01, no_retry_on=(KeyError,))
    async def async_steer(counter: str, snoozes: int) -> int:
        _log("start")
        _log("end")
        runs = _runs(counter)
        if runs <= snoozes:
            raise Snooze(0.05)
        if runs == snoozes + 1:
            raise Retry(0.05, exc=ConnectionError("flaky"))
        raise KeyError("never retried")


def _time_limit_tasks(app: Conveyor) -> None:
    """Tasks with soft and hard time limits (tests/test_time_limits.py), and a memory hog."""
    import asyncio

    @app.task(name="t.soft", timeout=10, soft_timeout=0.3, max_attempts=1)
    def soft(keep: bool = True) -> str:
        _log("start")
        try:
            while True:
                time.sleep(0.02)
        except SoftTimeLimitExceeded:
            _log("soft")
            if not keep:
                raise
        return "cleaned up"

    @app.task(name="t.soft_free", timeout=20, max_attempts=1)
    def soft_free() -> str:
        """No soft limit of its own: a job given one (task.options) cleans up at it."""
        _log("start")
        try:
            while True:
                time.sleep(0.02)
        except SoftTimeLimitExceeded:
            _log("soft")
        return "cleaned up"

    @app.task(name="t.soft_async", timeout=10, soft_timeout=0.3, max_attempts=1)
    async def soft_async(keep: bool = True) -> str:
        _log("start")
        try:
            await asyncio.sleep(30)
        except SoftTimeLimitExceeded:
            _log("soft")
            if not keep:
                raise
        return "cleaned up"

    @app.task(name="t.hard", timeout=0.4, max_attempts=2, backoff=0)
    def hard() -> None:
        _log("start")
        try:
            while True:
                time.sleep(0.02)
        except TimeLimitExceeded:
            _log("hard")  # the thread pool's way to stop it
            raise

    @app.task(name="t.stubborn", timeout=0.3, max_attempts=1)
    def stubborn() -> str:
        _log("start")
        try:
            while True:
                time.sleep(0.02)
        except TimeLimitExceeded:
            time.sleep(0.3)  # ignores it for a while, then returns
            _log("end")
            return "late"

    @app.task(name="t.hard_async", timeout=0.4, max_attempts=2, backoff=0)
    async def hard_async() -> None:
        _log("start")
        await asyncio.sleep(30)

    @app.task(name="t.pid")
    def pid() -> int:
        _log("pid")
        return os.getpid()

    @app.task(name="t.hog")
    def hog(megabytes: int) -> int:
        _log("hog")
        data = b"x" * (megabytes * 1024 * 1024)  # written, so resident
        return len(data)


app = make_app()
