"""The runtime: workers that claim jobs and run them.

`Worker` is imported when first asked for: a process pool's child imports this package on its
way to the pool's module (pools/process.py) and needs none of the worker's machinery."""

from typing import TYPE_CHECKING, Any

from .loader import load_app

if TYPE_CHECKING:
    from .worker import Worker, WorkerStopped


if not TYPE_CHECKING:  # (so a type checker still refuses a misspelled name)
    def __getattr__(name: str) -> Any:
        if name in ("Worker", "WorkerStopped"):
            from . import worker

            return getattr(worker, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Worker", "WorkerStopped", "load_app"]
