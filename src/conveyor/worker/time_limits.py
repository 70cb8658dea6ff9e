"""Raising SoftTimeLimitExceeded (or TimeLimitExceeded) inside running task code.

Three ways, one per kind of code:
- a thread: an asynchronous exception (PyThreadState_SetAsyncExc), delivered at the thread's
  next Python bytecode, so not while it is blocked in one C call (a long time.sleep, a read);
- a pool process's main thread: SIGALRM (signal.setitimer), which also interrupts a blocking
  call; where there is no SIGALRM (Windows) it falls back to the thread way;
- a coroutine: its asyncio task is cancelled and the CancelledError is replaced, inside the
  task's coroutine, by SoftTimeLimitExceeded (`SoftLimited`).

An arm function takes the seconds to wait and returns the function that disarms it; disarming
also drops an exception fired but not yet delivered, so it cannot leak into the next job.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from collections.abc import Callable, Coroutine, Generator
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..errors import SoftTimeLimitExceeded

if TYPE_CHECKING:
    import asyncio

Disarm = Callable[[], None]
Arm = Callable[[float], Disarm]

def raise_in_thread(ident: int, exc_type: type[BaseException] | None) -> bool:
    """Make the thread `ident` raise `exc_type` at its next bytecode (None: drop a pending
    one). True if the thread exists."""
    # No argtypes: None goes as NULL, the value that clears.
    value = None if exc_type is None else ctypes.py_object(exc_type)
    return bool(ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), value))


def arm_thread(seconds: float, exc_type: type[BaseException] = SoftTimeLimitExceeded) -> Disarm:
    """Raise `exc_type` in the calling thread after `seconds`, unless disarmed first."""
    ident = threading.get_ident()
    lock = threading.Lock()
    state = {"armed": True, "fired": False}

    def fire() -> None:
        with lock:
            if state["armed"]:
                state["fired"] = raise_in_thread(ident, exc_type)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()

    def disarm() -> None:
        timer.cancel()
        with lock:
            state["armed"] = False
            if state["fired"]:
                raise_in_thread(ident, None)

    return disarm


def arm_alarm(seconds: float) -> Disarm:
    """SIGALRM in this process's main thread (a pool process); else the thread way."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not \
            threading.main_thread():
        return arm_thread(seconds)

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)

    def disarm() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    return disarm


def call_with_limit(arm: Arm | None, soft: float | None, fn: Callable[..., Any],
                    *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs) with the soft limit armed around it (none: just the call)."""
    if arm is None or soft is None:
        return fn(*args, **kwargs)
    disarm = arm(soft)
    try:
        return fn(*args, **kwargs)
    finally:
        disarm()


class SoftLimited:
    """Awaits a task's coroutine; `fire` cancels the asyncio task awaiting it, and the
    CancelledError that brings is thrown into the coroutine as SoftTimeLimitExceeded, so the
    task can catch it and clean up (any other cancellation passes through unchanged)."""

    def __init__(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        self._coroutine = coroutine
        self._pending = False
        self._task: asyncio.Task[Any] | None = None

    def arm(self, seconds: float) -> asyncio.TimerHandle:
        import asyncio  # (loaded: a coroutine runs) not at the top, for plain jobs' processes

        self._task = asyncio.current_task()
        return asyncio.get_running_loop().call_later(seconds, self._fire)

    def _fire(self) -> None:
        if self._task is not None and not self._task.done():
            self._pending = True
            self._task.cancel()

    def __await__(self) -> Generator[Any, Any, Any]:
        import asyncio

        coroutine = self._coroutine
        send: Any = None
        throw: BaseException | None = None
        while True:
            try:
                yielded = coroutine.send(send) if throw is None else coroutine.throw(throw)
            except StopIteration as stop:
                return stop.value
            send, throw = None, None
            try:
                send = yield yielded
            except asyncio.CancelledError as exc:
                throw = exc
                if self._pending:
                    self._pending = False
                    if self._task is not None:
                        self._task.uncancel()  # the cancel became this exception
                    throw = SoftTimeLimitExceeded()
            except BaseException as exc:
                throw = exc


async def soft_limited(coroutine: Coroutine[Any, Any, Any], soft: float | None) -> Any:
    """Await `coroutine` with SoftTimeLimitExceeded raised in it after `soft` seconds."""
    if soft is None:
        return await coroutine
    limited = SoftLimited(coroutine)
    timer = limited.arm(soft)
    try:
        return await limited
    finally:
        timer.cancel()
