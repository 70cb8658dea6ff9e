"""Pidfiles and the processes they name, portably (POSIX and Windows).

A pidfile holds the worker's pid on its first line and, on the second, when that process
started (its identity). A pid can be reused by any program once the worker is gone; the start
time tells them apart, so `conveyor worker stop` never signals a process the pidfile does not
really name. Where no start time was recorded, the process must show a `conveyor worker`
command line instead."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
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


def process_identity(pid: int) -> str | None:
    """When process `pid` started, as a token that another process reusing the pid later
    cannot have; None where that cannot be found out (or the process is gone)."""
    if pid <= 0:
        return None
    if sys.platform == "win32":
        return _windows_start(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        if Path("/proc/self/stat").exists():
            return None  # Linux, and the process is gone
        return _ps(pid, "lstart", "start:")
    # Field 22, the start time in clock ticks since boot; the boot id makes it unique across
    # reboots (a pidfile on a disk outlives them). The command name (field 2) may hold spaces
    # and parentheses, so count from its closing parenthesis.
    fields = stat.rsplit(")", 1)[1].split()
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "?"
    return f"linux:{boot}:{fields[19]}"


def _windows_start(pid: int) -> str | None:
    if sys.platform != "win32":
        return None
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return None
    try:
        times = [wintypes.FILETIME() for _ in range(4)]
        if not kernel32.GetProcessTimes(handle, *(ctypes.byref(t) for t in times)):
            return None
        created = times[0]
        return f"windows:{(created.dwHighDateTime << 32) | created.dwLowDateTime}"
    finally:
        kernel32.CloseHandle(handle)


def _ps(pid: int, column: str, prefix: str) -> str | None:
    """One column of `ps` for `pid` (macOS, BSD: no /proc), or None."""
    try:
        result = subprocess.run(["ps", "-p", str(pid), "-o", f"{column}="],
                                capture_output=True, text=True, timeout=5,
                                env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    value = " ".join(result.stdout.split())
    return f"{prefix}{value}" if result.returncode == 0 and value else None


def process_argv(pid: int) -> list[str] | None:
    """The command line of `pid` where it can be read, else None."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        if sys.platform == "win32" or Path("/proc/self/cmdline").exists():
            return None
        line = _ps(pid, "args", "")
        return line.split() if line else None  # ps joins argv with spaces: best effort
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]] or None


def _base(path: str) -> str:
    return re.split(r"[\\/]", path)[-1].lower()


_CONVEYOR_SCRIPTS = frozenset({"conveyor", "conveyor.exe", "conveyor-script.py"})
_PYTHON_OPTIONS_WITH_VALUE = frozenset({"-W", "-X", "--check-hash-based-pycs"})


def is_worker_argv(argv: Sequence[str]) -> bool:
    """Whether `argv` runs `conveyor worker`: the conveyor script (alone or after a Python
    interpreter and its options) or `python -m conveyor`, followed by `worker`. Mentioning
    "conveyor" anywhere else (a folder, an argument) does not count."""
    if not argv:
        return False
    if _base(argv[0]) in _CONVEYOR_SCRIPTS:
        return list(argv[1:2]) == ["worker"]
    interpreter = _base(argv[0])
    if not interpreter.startswith("python") and interpreter not in ("py", "py.exe"):
        return False
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg == "-m":
            return list(argv[index + 1:index + 3]) == ["conveyor", "worker"]
        if arg.startswith("-m"):
            return arg == "-mconveyor" and list(argv[index + 1:index + 2]) == ["worker"]
        if arg.startswith("-c") or arg == "-":
            return False
        if arg in _PYTHON_OPTIONS_WITH_VALUE:
            index += 2
            continue
        if arg.startswith("-"):
            index += 1
            continue
        return _base(arg) in _CONVEYOR_SCRIPTS and list(argv[index + 1:index + 2]) == ["worker"]
    return False


@dataclass(frozen=True, slots=True)
class PidfileEntry:
    pid: int
    identity: str | None  # process_identity() of the worker when the pidfile was written


@dataclass(frozen=True, slots=True)
class Verdict:
    is_worker: bool
    certain: bool  # the recorded start time decided (not a command line, not a guess)
    reason: str


def check_worker(entry: PidfileEntry) -> Verdict:
    """Whether the running process `entry.pid` is the worker that wrote the pidfile."""
    current = process_identity(entry.pid)
    if entry.identity is not None and current is not None:
        if current == entry.identity:
            return Verdict(True, True, "its start time matches the pidfile's")
        return Verdict(False, True, "it started after the pidfile was written: the worker "
                                    "that wrote it is gone and its pid was reused by another "
                                    "program")
    argv = process_argv(entry.pid)
    if argv is None:
        return Verdict(False, False, "its start time and command line cannot be read here, so "
                                     "it cannot be told to be a conveyor worker")
    if is_worker_argv(argv):
        return Verdict(True, False, "its command line is a conveyor worker's")
    return Verdict(False, False, f"its command line is not a conveyor worker's "
                                 f"({' '.join(argv)[:120]!r}); its pid was probably reused")


def read_pidfile_entry(path: Path) -> PidfileEntry:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise PidfileError(f"no pidfile at {str(path)!r}: no worker was started with it, or it "
                           "has stopped (a worker removes its pidfile when it exits)") from None
    except OSError as exc:
        raise PidfileError(f"cannot read pidfile {str(path)!r}: {exc.strerror}") from None
    text = lines[0].strip() if lines else ""
    try:
        pid = int(text)
    except ValueError:
        raise PidfileError(f"pidfile {str(path)!r} does not hold a process id "
                           f"(it holds {text[:40]!r})") from None
    if pid <= 0:
        raise PidfileError(f"pidfile {str(path)!r} holds {pid}, not a process id")
    identity = lines[1].strip() if len(lines) > 1 and lines[1].strip() else None
    return PidfileEntry(pid, identity)


def read_pidfile(path: Path) -> int:
    return read_pidfile_entry(path).pid


def live_pid(path: Path) -> int | None:
    """The pid in `path` if that process runs and may be the worker that wrote it; None when
    the file is absent or stale (the process is gone, or its recorded start time shows the
    pid now belongs to another program)."""
    try:
        entry = read_pidfile_entry(path)
    except PidfileError:
        return None
    if not pid_alive(entry.pid):
        return None
    verdict = check_worker(entry)
    if verdict.certain and not verdict.is_worker:
        return None
    return entry.pid


def write_pidfile(path: Path, pid: int) -> None:
    """Write `pid` and its start time atomically (a reader never sees a half-written file),
    readable by its owner only."""
    if not path.parent.is_dir():
        raise ConfigurationError(f"cannot write pidfile {str(path)!r}: the folder "
                                 f"{str(path.parent)!r} does not exist")
    identity = process_identity(pid)
    text = f"{pid}\n" + (f"{identity}\n" if identity else "")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()  # left by a crash: O_EXCL below must create a fresh file
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
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
