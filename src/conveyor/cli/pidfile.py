"""Pidfiles and the processes they name, portably (POSIX and Windows)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

from ..errors import ConfigurationError


class PidfileError(Exception):
    """A pidfile that is missing, unreadable or names no running process."""


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie waiting to be reaped counts as gone)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        try:
            code = ctypes.c_ulong()
            kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
            return bool(code.value == 259)  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS, BSD): os.kill said it exists
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def looks_like_conveyor(pid: int) -> bool:
    """False only when we can see the process's command line and it is not conveyor's (the
    pid was reused by something else). Where we cannot look, trust the pidfile."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return b"conveyor" in cmdline


def read_pidfile(path: Path) -> int:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise PidfileError(f"no pidfile at {str(path)!r}: no worker was started with it, or it "
                           "has stopped (a worker removes its pidfile when it exits)") from None
    except OSError as exc:
        raise PidfileError(f"cannot read pidfile {str(path)!r}: {exc.strerror}") from None
    try:
        pid = int(text)
    except ValueError:
        raise PidfileError(f"pidfile {str(path)!r} does not hold a process id "
                           f"(it holds {text[:40]!r})") from None
    if pid <= 0:
        raise PidfileError(f"pidfile {str(path)!r} holds {pid}, not a process id")
    return pid


def live_pid(path: Path) -> int | None:
    """The pid in `path` if that process runs; None when the file is absent or stale."""
    try:
        pid = read_pidfile(path)
    except PidfileError:
        return None
    return pid if pid_alive(pid) else None


def write_pidfile(path: Path, pid: int) -> None:
    """Write `pid` atomically (a reader never sees a half-written file)."""
    if not path.parent.is_dir():
        raise ConfigurationError(f"cannot write pidfile {str(path)!r}: the folder "
                                 f"{str(path.parent)!r} does not exist")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(f"{pid}\n")
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise ConfigurationError(f"cannot write pidfile {str(path)!r}: {exc.strerror}") from None


def remove_pidfile(path: Path, pid: int) -> None:
    """Remove `path` if it still names `pid` (never another process's pidfile)."""
    try:
        if read_pidfile(path) == pid:
            path.unlink()
    except (PidfileError, OSError):
        pass


def terminate(pid: int) -> None:
    """Ask `pid` to stop: SIGTERM on POSIX (a conveyor worker drains; sent again, it hands its
    jobs back at once). Windows has no SIGTERM: the process is ended outright, and jobs it
    was running come back when their leases expire."""
    os.kill(pid, signal.SIGTERM)
