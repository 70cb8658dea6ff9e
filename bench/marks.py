"""Tiny, cheap marks that benchmark tasks leave in $BENCH_DIR, readable by the driver.

Each worker process appends to a file opened once with O_APPEND: one `write` system call per
mark, atomic between processes. Used the same way by every framework's tasks so no framework
pays more to be observed than another.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_fds: dict[tuple[int, str], int] = {}


def _fd(name: str) -> int:
    key = (os.getpid(), name)
    fd = _fds.get(key)
    if fd is None:
        folder = os.environ.get("BENCH_DIR")
        if not folder:
            raise RuntimeError("BENCH_DIR is not set")
        fd = os.open(Path(folder) / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        _fds[key] = fd
    return fd


def mark_done() -> None:
    """One byte per finished no-op job: the file's size is the count."""
    os.write(_fd("done"), b".")


def mark_stamp(tag: int) -> None:
    """`tag time` when a stamp job's code starts."""
    os.write(_fd("stamps"), f"{tag} {time.time():.6f}\n".encode())


def mark_ready(who: str) -> None:
    os.write(_fd("ready"), f"{who} {os.getpid()} {time.time():.6f}\n".encode())
