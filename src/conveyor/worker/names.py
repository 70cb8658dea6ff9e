"""A worker's name is its own: a second worker started under the name of a live one is refused,
not merged with it. A name whose worker is gone may be taken over."""

from __future__ import annotations

import os
import sys
import time

from ..backends.base import Backend, WorkerInfo, WorkerRecord
from ..errors import ConfigurationError

# A name is free once its worker has not heartbeaten for this many leases (it heartbeats
# three times a lease), or at once when its process, on this host, has exited.
TAKEOVER_LEASES = 3


class WorkerNameTaken(ConfigurationError):
    """Another live worker is registered under the name this worker was given."""


def register(backend: Backend, info: WorkerInfo, lease: float) -> None:
    """Register the worker `info`, or raise WorkerNameTaken naming the live holder."""
    takeover_after = TAKEOVER_LEASES * lease
    holder = backend.register_worker(info, takeover_after=takeover_after)
    if holder is not None and _exited(holder, info):
        holder = backend.register_worker(info, takeover_after=takeover_after, gone=holder)
    if holder is None:
        return
    age = max(0.0, time.time() - holder.heartbeat_at)
    raise WorkerNameTaken(
        f"worker name {info.name!r} is taken by a live worker: pid {holder.pid} on host "
        f"{holder.host!r}, last heartbeat {age:.1f} s ago; give this worker another --name, or "
        f"stop that one first (a worker's name is freed when it exits, or {takeover_after:g} s "
        "after its last heartbeat)")


def _exited(holder: WorkerRecord, info: WorkerInfo) -> bool:
    """Whether the holder's process is known to have exited: it ran on this host (so its pid
    means something here) and no process has that pid now."""
    return holder.host == info.host and holder.pid != info.pid and not pid_alive(holder.pid)


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this host. Where that cannot be told (Windows), it
    is assumed alive, so the name waits for the heartbeat to age."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by someone else
        return True
    return True
