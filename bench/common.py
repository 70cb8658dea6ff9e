"""Shared helpers for the benchmark scripts: machine line, recording, processes, statistics.

Linux only (reads /proc); no dependency beyond the standard library, so the scripts that
measure conveyor alone still run in the project's own virtualenv.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
import timeit
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "RESULTS.md"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- where and how ---------------------------------------------------------------------


def machine() -> str:
    return (f"{platform.node()} ({os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}; {python_speed()})")


def python_speed() -> str:
    """How fast this machine runs Python right now: its speed moves 2-3x from boot to boot
    here, so figures from different days compare only with this beside them."""
    best = min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000
    return f"sum(range(1000)) in {best * 1e6:.1f} us"


def conveyor_revision() -> str:
    """The commit conveyor was measured at, and whether src/ had uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO,
                               text=True, capture_output=True, timeout=10,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown revision"
    return f"commit {head}" + (" with uncommitted changes in src/" if dirty else "")


def now_utc() -> str:
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


def command_line() -> str:
    """The command that ran this script, as someone would type it from the repository root."""
    executable = sys.executable
    with contextlib.suppress(ValueError):
        relative = os.path.relpath(executable, Path.cwd())
        if not relative.startswith(".."):
            executable = relative
    return shlex.join([executable, *sys.argv])


def record(text: str) -> None:
    """Append a block to bench/RESULTS.md."""
    with open(RESULTS, "a", encoding="utf-8") as results:
        results.write(text.rstrip("\n") + "\n\n")


# -- statistics --------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


# -- processes ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    fields = Path(f"/proc/{pid}/statm").read_text().split()
    return int(fields[1]) * PAGE_SIZE


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def tree_cpu_seconds(roots: Sequence[int]) -> dict[int, float]:
    usage: dict[int, float] = {}
    for root in roots:
        for pid in descendants(root):
            with contextlib.suppress(OSError):
                usage[pid] = cpu_seconds(pid)
    return usage


def tree_rss(roots: Sequence[int]) -> dict[int, int]:
    usage: dict[int, int] = {}
    for root in roots:
        for pid in descendants(root):
            with contextlib.suppress(OSError):
                usage[pid] = rss_bytes(pid)
    return usage


def idle_cpu(roots: Sequence[int], seconds: float) -> tuple[float, float]:
    """CPU used by the process trees under `roots` over `seconds`, as a fraction of one core:
    (all processes together, the busiest single process)."""
    before = tree_cpu_seconds(roots)
    time.sleep(seconds)
    after = tree_cpu_seconds(roots)
    deltas = [after[pid] - before.get(pid, 0.0) for pid in after]
    if not deltas:
        return math.nan, math.nan
    return sum(deltas) / seconds, max(deltas) / seconds


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the benchmark dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


_LIVE: list[Spawned] = []


@atexit.register
def _stop_all() -> None:
    for spawned in list(_LIVE):
        spawned.stop(timeout=5.0)


class Spawned:
    """Processes this benchmark started, each in a session of its own, so a whole tree
    (a consumer and its pool) can be signalled by the id of the process we started.
    Whatever is still running when the benchmark exits is stopped then."""

    def __init__(self) -> None:
        _LIVE.append(self)
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[Path] = []
        self._commands: list[str] = []

    def start(self, command: Sequence[str], env: Mapping[str, str], log: Path) -> int:
        with open(log, "ab") as output:
            proc = subprocess.Popen(
                list(command), env=dict(env), stdout=output, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(REPO),
                preexec_fn=_die_with_parent,
            )
        self.procs.append(proc)
        self._logs.append(log)
        self._commands.append(shlex.join(command))
        return proc.pid

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def check_alive(self) -> None:
        for proc, log, command in zip(self.procs, self._logs, self._commands, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"process {proc.pid} ({command}) exited with "
                    f"{proc.returncode}; last output:\n{tail(log)}"
                )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        """Ask each started process to stop, wait, then kill what is left of its group."""
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs:
            # The group is the session this process leads: its pool processes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.procs.clear()
        self._logs.clear()
        self._commands.clear()


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    interval: float = 0.005,
    check: Callable[[], None] | None = None,
) -> float:
    """Poll until `condition()` holds; returns time.perf_counter() when it did. Bounded."""
    deadline = time.perf_counter() + timeout
    polls = 0
    while True:
        if condition():
            return time.perf_counter()
        now = time.perf_counter()
        if now > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        polls += 1
        if check is not None and polls % 100 == 0:
            check()
        time.sleep(interval)


# -- tables --------------------------------------------------------------------------------


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                   right: Sequence[bool] | None = None) -> str:
    """A Markdown table padded for reading as text; numbers (all but the first column, unless
    `right` says otherwise) right-aligned."""
    if right is None:
        right = [False] + [True] * (len(header) - 1)
    widths = [len(cell) for cell in header]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if align_right else cell.ljust(width)
            for cell, width, align_right in zip(cells, widths, right, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    separator = "| " + " | ".join(
        "-" * (width - 1) + ":" if align_right else "-" * width
        for width, align_right in zip(widths, right, strict=True)
    ) + " |"
    return "\n".join([line(header), separator, *(line(row) for row in rows)])
